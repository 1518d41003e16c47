//! Recursive-descent parser with precedence climbing, checking types as it builds each node so
//! that every error points at the operator or operand at fault.
//!
//! Precedence, loosest first — spansets: `|`, `||`, `&&`, structural (`> >> < << ~` and their
//! `!`/`&` forms); fields (`field.rs`): `||`, `&&`, comparisons, `+ -`, `* / %`, `^`
//! (right-associative), unary `! -`. Types are checked in `check.rs`; how deep a query may
//! nest, in `nesting.rs`.

mod check;
mod field;
mod nesting;

use crate::ast::*;
use crate::error::ParseError;
use crate::lexer::{lex, Spanned, Token};

pub use nesting::MAX_QUERY_DEPTH;

/// Parses and checks a search query.
pub fn parse(text: &str) -> Result<Query, ParseError> {
    let mut parser = Parser::new(text, lex(text)?);
    let query = parser.query()?;
    Ok(query)
}

pub(crate) struct Parser<'a> {
    pub(crate) text: &'a str,
    pub(crate) tokens: Vec<Spanned>,
    pub(crate) pos: usize,
    /// The tree level being parsed (0: the query's root); see `nesting.rs`.
    pub(crate) depth: usize,
    /// The deepest level reached since the innermost `begin_measure`.
    pub(crate) deepest: usize,
}

fn describe(token: &Token) -> String {
    match token {
        Token::Str(value) => format!("string {value:?}"),
        Token::Int(value) => format!("integer {value}"),
        Token::Float(value) => format!("float {value}"),
        Token::Duration(_) => "duration".to_owned(),
        Token::Word(word) => format!("`{word}`"),
        Token::Attribute {
            scope,
            parent,
            name,
        } => {
            format!(
                "attribute `{}`",
                Field::Attribute {
                    scope: *scope,
                    parent: *parent,
                    name: name.clone()
                }
            )
        }
        Token::Intrinsic(intrinsic) => format!("`{}`", intrinsic.name()),
        other => format!("`{}`", symbol(other)),
    }
}

fn symbol(token: &Token) -> &'static str {
    match token {
        Token::LBrace => "{",
        Token::RBrace => "}",
        Token::LParen => "(",
        Token::RParen => ")",
        Token::Comma => ",",
        Token::Pipe => "|",
        Token::And => "&&",
        Token::Or => "||",
        Token::Bang => "!",
        Token::Eq => "=",
        Token::Neq => "!=",
        Token::Gt => ">",
        Token::Gte => ">=",
        Token::Lt => "<",
        Token::Lte => "<=",
        Token::Re => "=~",
        Token::BangTilde => "!~",
        Token::Plus => "+",
        Token::Minus => "-",
        Token::Star => "*",
        Token::Slash => "/",
        Token::Percent => "%",
        Token::Caret => "^",
        Token::Tilde => "~",
        Token::Descendant => ">>",
        Token::Ancestor => "<<",
        Token::NotChild => "!>",
        Token::NotParent => "!<",
        Token::NotDescendant => "!>>",
        Token::NotAncestor => "!<<",
        Token::UnionChild => "&>",
        Token::UnionParent => "&<",
        Token::UnionDescendant => "&>>",
        Token::UnionAncestor => "&<<",
        Token::UnionSibling => "&~",
        _ => "?",
    }
}

fn is_aggregate(word: &str) -> Option<Aggregate> {
    Some(match word {
        "count" => Aggregate::Count,
        "avg" => Aggregate::Avg,
        "min" => Aggregate::Min,
        "max" => Aggregate::Max,
        "sum" => Aggregate::Sum,
        _ => return None,
    })
}

/// A spanset operator and its precedence: `||` 0, `&&` 1, structural 2.
fn spanset_operator(token: &Token) -> Option<(SpansetOp, u8)> {
    Some(match token {
        Token::Or => (SpansetOp::Or, 0),
        Token::And => (SpansetOp::And, 1),
        Token::Gt => (SpansetOp::Child, 2),
        Token::Lt => (SpansetOp::Parent, 2),
        Token::Descendant => (SpansetOp::Descendant, 2),
        Token::Ancestor => (SpansetOp::Ancestor, 2),
        Token::Tilde => (SpansetOp::Sibling, 2),
        Token::NotChild => (SpansetOp::NotChild, 2),
        Token::NotParent => (SpansetOp::NotParent, 2),
        Token::NotDescendant => (SpansetOp::NotDescendant, 2),
        Token::NotAncestor => (SpansetOp::NotAncestor, 2),
        Token::BangTilde => (SpansetOp::NotSibling, 2),
        Token::UnionChild => (SpansetOp::UnionChild, 2),
        Token::UnionParent => (SpansetOp::UnionParent, 2),
        Token::UnionDescendant => (SpansetOp::UnionDescendant, 2),
        Token::UnionAncestor => (SpansetOp::UnionAncestor, 2),
        Token::UnionSibling => (SpansetOp::UnionSibling, 2),
        _ => return None,
    })
}

pub(crate) fn comparison_op(token: &Token) -> Option<BinaryOp> {
    Some(match token {
        Token::Eq => BinaryOp::Eq,
        Token::Neq => BinaryOp::Neq,
        Token::Gt => BinaryOp::Gt,
        Token::Gte => BinaryOp::Gte,
        Token::Lt => BinaryOp::Lt,
        Token::Lte => BinaryOp::Lte,
        Token::Re => BinaryOp::Regex,
        Token::BangTilde => BinaryOp::NotRegex,
        _ => return None,
    })
}

impl<'a> Parser<'a> {
    pub(crate) fn new(text: &'a str, tokens: Vec<Spanned>) -> Parser<'a> {
        Parser {
            text,
            tokens,
            pos: 0,
            depth: 0,
            deepest: 0,
        }
    }

    pub(crate) fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|spanned| &spanned.token)
    }

    pub(crate) fn peek_at(&self, offset: usize) -> Option<&Token> {
        self.tokens
            .get(self.pos + offset)
            .map(|spanned| &spanned.token)
    }

    pub(crate) fn offset(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map_or(self.text.len(), |spanned| spanned.start)
    }

    pub(crate) fn advance(&mut self) -> Option<Token> {
        let token = self
            .tokens
            .get(self.pos)
            .map(|spanned| spanned.token.clone());
        self.pos += 1;
        token
    }

    pub(crate) fn eat(&mut self, token: &Token) -> bool {
        if self.peek() == Some(token) {
            self.pos += 1;
            return true;
        }
        false
    }

    pub(crate) fn unexpected(&self) -> ParseError {
        match self.peek() {
            None => ParseError::at(
                self.text,
                self.text.len(),
                "syntax error: unexpected end of query",
            ),
            Some(token) => ParseError::at(
                self.text,
                self.offset(),
                format!("syntax error: unexpected {}", describe(token)),
            ),
        }
    }

    pub(crate) fn expect(&mut self, token: Token) -> Result<(), ParseError> {
        if self.eat(&token) {
            return Ok(());
        }
        let found = match self.peek() {
            None => "end of query".to_owned(),
            Some(other) => describe(other),
        };
        Err(ParseError::at(
            self.text,
            self.offset(),
            format!("syntax error: expected `{}`, found {found}", symbol(&token)),
        ))
    }

    pub(crate) fn invalid(&self, offset: usize, message: impl Into<String>) -> ParseError {
        ParseError::invalid(self.text, offset, message)
    }

    fn query(&mut self) -> Result<Query, ParseError> {
        if self.peek().is_none() {
            return Err(ParseError::at(
                self.text,
                0,
                "syntax error: empty query, expected a spanset filter such as `{ }`",
            ));
        }
        let root = self.pipeline()?;
        if self.at_metrics_function() {
            // A metrics query given to search: point at the function, not at the pipe.
            self.pos += 1;
            return Err(self.unexpected());
        }
        let hints = self.hints()?;
        if self.peek().is_some() {
            return Err(self.unexpected());
        }
        Ok(Query { root, hints })
    }

    pub(crate) fn hints(&mut self) -> Result<Vec<Hint>, ParseError> {
        if self.peek() != Some(&Token::Word("with".to_owned())) {
            return Ok(Vec::new());
        }
        self.pos += 1;
        self.expect(Token::LParen)?;
        let mut hints = Vec::new();
        loop {
            let at = self.offset();
            let Some(Token::Word(name)) = self.advance() else {
                return Err(ParseError::at(
                    self.text,
                    at,
                    "syntax error: expected a hint name",
                ));
            };
            self.expect(Token::Eq)?;
            let value_at = self.offset();
            let value = match self.advance() {
                Some(Token::Int(value)) => Static::Int(value),
                Some(Token::Float(value)) => Static::Float(value),
                Some(Token::Str(value)) => Static::String(value),
                Some(Token::Duration(value)) => Static::Duration(value),
                Some(Token::Word(word)) if word == "true" || word == "false" => {
                    Static::Bool(word == "true")
                }
                _ => {
                    return Err(ParseError::at(
                        self.text,
                        value_at,
                        format!("syntax error: hint `{name}` needs a literal value"),
                    ))
                }
            };
            check_hint(self, &name, &value, at)?;
            hints.push(Hint { name, value });
            if !self.eat(&Token::Comma) {
                break;
            }
        }
        self.expect(Token::RParen)?;
        Ok(hints)
    }

    /// `element ('|' element)*`; a single spanset expression stays unwrapped.
    pub(crate) fn pipeline(&mut self) -> Result<SpansetExpr, ParseError> {
        let at = self.offset();
        let outer = self.begin_measure();
        let first = self.stage();
        let first_height = self.end_measure(outer);
        match first? {
            // It merges the spansets of the stages before it: there are none yet.
            Stage::Coalesce => Err(self.invalid(at, "coalesce() cannot start a pipeline: it merges the spansets of the stages before it")),
            Stage::Spanset(expr) if self.at_metrics_function() || self.peek() != Some(&Token::Pipe) => Ok(expr),
            // The first stage, parsed before the pipeline was known, sits one level down too.
            first => {
                self.reach(self.depth + 1 + first_height, at)?;
                self.later_stages(first)
            }
        }
    }

    /// The stages after the first (kept out of `pipeline`, whose frame is on the path of every
    /// parenthesised spanset).
    fn later_stages(&mut self, first: Stage) -> Result<SpansetExpr, ParseError> {
        let mut stages = vec![first];
        while !self.at_metrics_function() && self.eat(&Token::Pipe) {
            let stage_at = self.offset();
            self.descend(stage_at)?;
            let stage = self.stage();
            self.ascend();
            stages.push(stage?);
        }
        Ok(SpansetExpr::Pipeline(stages))
    }

    /// Whether the tokens from here are `| fn(` with `fn` a metrics function: where the spanset
    /// part of a metrics query ends.
    pub(crate) fn at_metrics_function(&self) -> bool {
        matches!((self.peek_at(0), self.peek_at(1), self.peek_at(2)), (Some(Token::Pipe), Some(Token::Word(word)), Some(Token::LParen)) if crate::metrics::is_metrics_function(word))
    }

    /// Whether the tokens from here start a scalar expression rather than a spanset.
    fn starts_scalar(&self) -> bool {
        // Past the nesting limit the parse fails either way: looking further would make every
        // level rescan a long run of parentheses.
        let mut offset = 0;
        while self.peek_at(offset) == Some(&Token::LParen) && offset <= MAX_QUERY_DEPTH {
            offset += 1;
        }
        match self.peek_at(offset) {
            Some(Token::Word(word)) => {
                is_aggregate(word).is_some() && self.peek_at(offset + 1) == Some(&Token::LParen)
            }
            Some(Token::Int(_) | Token::Float(_) | Token::Duration(_) | Token::Minus) => true,
            _ => false,
        }
    }

    /// One stage; spansets (the recursive case) are read here, the rest in their own functions
    /// so that this frame, one per nested pipeline, stays small.
    fn stage(&mut self) -> Result<Stage, ParseError> {
        if let Some(Token::Word(word)) = self.peek() {
            match word.as_str() {
                "by" => return self.by_stage(),
                "coalesce" => return self.coalesce_stage(),
                "select" => return self.select_stage(),
                _ => {}
            }
        }
        if self.starts_scalar() {
            return self.scalar_filter_stage();
        }
        Ok(Stage::Spanset(self.spanset_binary(0)?))
    }

    fn by_stage(&mut self) -> Result<Stage, ParseError> {
        self.pos += 1;
        self.expect(Token::LParen)?;
        let mut groups = Vec::new();
        loop {
            let group_at = self.offset();
            let group = self.nested(group_at, Self::field_expr)?;
            check::group(self, &group, group_at)?;
            groups.push(group);
            if !self.eat(&Token::Comma) {
                break;
            }
        }
        self.expect(Token::RParen)?;
        Ok(Stage::By(groups))
    }

    fn coalesce_stage(&mut self) -> Result<Stage, ParseError> {
        self.pos += 1;
        self.expect(Token::LParen)?;
        self.expect(Token::RParen)?;
        Ok(Stage::Coalesce)
    }

    fn select_stage(&mut self) -> Result<Stage, ParseError> {
        self.pos += 1;
        self.expect(Token::LParen)?;
        let mut fields = Vec::new();
        loop {
            let field_at = self.offset();
            match self.nested(field_at, Self::field_expr)? {
                FieldExpr::Field(field) => fields.push(field),
                _ => {
                    return Err(
                        self.invalid(field_at, "select() takes attributes and intrinsics only")
                    )
                }
            }
            if !self.eat(&Token::Comma) {
                break;
            }
        }
        self.expect(Token::RParen)?;
        Ok(Stage::Select(fields))
    }

    /// `count() > 2`, `avg(duration) * 2 >= 1s`: the sides sit one level below the stage.
    fn scalar_filter_stage(&mut self) -> Result<Stage, ParseError> {
        let at = self.offset();
        let lhs = self.nested(at, Self::scalar_expr)?;
        let op_at = self.offset();
        let op = match self.peek().and_then(comparison_op) {
            Some(op @ (BinaryOp::Regex | BinaryOp::NotRegex)) => {
                return Err(self.invalid(
                    op_at,
                    format!("operator `{}` cannot compare aggregates", op.symbol()),
                ));
            }
            Some(op) => op,
            None => {
                return Err(self.invalid(
                    at,
                    "an aggregate must be compared with a value, e.g. `count() > 2`",
                ))
            }
        };
        self.pos += 1;
        let rhs = self.nested(op_at, Self::scalar_expr)?;
        if !lhs.has_aggregate() && !rhs.has_aggregate() {
            return Err(self.invalid(
                at,
                "a scalar filter needs an aggregate such as count() or avg(duration)",
            ));
        }
        Ok(Stage::ScalarFilter { op, lhs, rhs })
    }

    /// Spanset operators of at least `min_precedence` (`||` 0, `&&` 1, structural 2), all
    /// left-associative.
    fn spanset_binary(&mut self, min_precedence: u8) -> Result<SpansetExpr, ParseError> {
        let outer = self.begin_measure();
        let first = self.spanset_primary();
        let mut height = self.end_measure(outer);
        let mut lhs = first?;
        while let Some((op, precedence)) = self.peek().and_then(spanset_operator) {
            if precedence < min_precedence {
                break;
            }
            let at = self.offset();
            self.pos += 1;
            self.descend(at)?;
            let outer = self.begin_measure();
            let rhs = self.spanset_binary(precedence + 1);
            let rhs_height = self.end_measure(outer);
            self.ascend();
            let rhs = rhs?;
            height = self.grow(height, rhs_height, at)?;
            lhs = SpansetExpr::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
        Ok(lhs)
    }

    /// `{ … }` or a parenthesised pipeline.
    pub(crate) fn spanset_primary(&mut self) -> Result<SpansetExpr, ParseError> {
        match self.peek() {
            Some(Token::LBrace) => self.filter(),
            Some(Token::LParen) => self.parenthesised_pipeline(),
            _ => Err(self.unexpected()),
        }
    }

    fn filter(&mut self) -> Result<SpansetExpr, ParseError> {
        let at = self.offset();
        self.pos += 1;
        if self.eat(&Token::RBrace) {
            return Ok(SpansetExpr::Filter(None));
        }
        let condition_at = self.offset();
        self.descend(at)?;
        let condition = self.field_expr();
        self.ascend();
        let condition = condition?;
        check::filter_condition(self, &condition, condition_at)?;
        self.expect(Token::RBrace)?;
        Ok(SpansetExpr::Filter(Some(condition)))
    }

    fn parenthesised_pipeline(&mut self) -> Result<SpansetExpr, ParseError> {
        let at = self.offset();
        self.pos += 1;
        self.descend(at)?;
        let inner = self.pipeline();
        self.ascend();
        let inner = inner?;
        self.expect(Token::RParen)?;
        Ok(inner)
    }

    fn scalar_expr(&mut self) -> Result<ScalarExpr, ParseError> {
        self.scalar_binary(0)
    }

    /// Arithmetic of aggregates and numbers at or above `min_level` (`+ -` 0, `* / %` 1, `^` 2).
    fn scalar_binary(&mut self, min_level: u8) -> Result<ScalarExpr, ParseError> {
        let outer = self.begin_measure();
        let first = self.scalar_primary();
        let mut height = self.end_measure(outer);
        let mut lhs = first?;
        while let Some((op, level)) = self.peek().and_then(arithmetic_op) {
            if level < min_level {
                break;
            }
            let at = self.offset();
            self.pos += 1;
            let next_level = if op == BinaryOp::Pow {
                level
            } else {
                level + 1
            };
            self.descend(at)?;
            let outer = self.begin_measure();
            let rhs = self.scalar_binary(next_level);
            let rhs_height = self.end_measure(outer);
            self.ascend();
            let rhs = rhs?;
            height = self.grow(height, rhs_height, at)?;
            lhs = ScalarExpr::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
        Ok(lhs)
    }

    fn scalar_primary(&mut self) -> Result<ScalarExpr, ParseError> {
        let at = self.offset();
        let parenthesised = match self.peek() {
            Some(Token::LParen) => true,
            Some(Token::Minus) => false,
            _ => return self.scalar_leaf(),
        };
        self.pos += 1;
        self.descend(at)?;
        let inner = if parenthesised {
            self.scalar_binary(0)
        } else {
            self.scalar_primary()
        };
        self.ascend();
        let inner = inner?;
        if parenthesised {
            self.expect(Token::RParen)?;
            return Ok(inner);
        }
        Ok(negated(inner))
    }

    /// A number, a duration or an aggregate.
    fn scalar_leaf(&mut self) -> Result<ScalarExpr, ParseError> {
        let at = self.offset();
        match self.advance() {
            Some(Token::Int(value)) => Ok(ScalarExpr::Static(Static::Int(value))),
            Some(Token::Float(value)) => Ok(ScalarExpr::Static(Static::Float(value))),
            Some(Token::Duration(value)) => Ok(ScalarExpr::Static(Static::Duration(value))),
            Some(Token::Word(word)) if is_aggregate(&word).is_some() => {
                let function = is_aggregate(&word).unwrap_or(Aggregate::Count);
                self.expect(Token::LParen)?;
                if self.eat(&Token::RParen) {
                    return check::aggregate(self, &word, function, None, at, at);
                }
                let argument_at = self.offset();
                let argument = self.nested(argument_at, Self::field_expr)?;
                self.expect(Token::RParen)?;
                check::aggregate(self, &word, function, Some(argument), at, argument_at)
            }
            Some(Token::Str(_))
            | Some(Token::Word(_))
            | Some(Token::Attribute { .. })
            | Some(Token::Intrinsic(_)) => Err(self.invalid(
                at,
                "aggregates can only be compared with numbers and durations",
            )),
            _ => {
                self.pos -= 1;
                Err(self.unexpected())
            }
        }
    }
}

/// `-inner`: a literal folds, anything else becomes `0 - inner`.
fn negated(inner: ScalarExpr) -> ScalarExpr {
    match inner {
        ScalarExpr::Static(Static::Int(value)) => ScalarExpr::Static(Static::Int(-value)),
        ScalarExpr::Static(Static::Float(value)) => ScalarExpr::Static(Static::Float(-value)),
        ScalarExpr::Static(Static::Duration(value)) => ScalarExpr::Static(Static::Duration(-value)),
        other => ScalarExpr::Binary {
            op: BinaryOp::Sub,
            lhs: Box::new(ScalarExpr::Static(Static::Int(0))),
            rhs: Box::new(other),
        },
    }
}

/// `+ -` (0), `* / %` (1) and `^` (2) with their precedence.
fn arithmetic_op(token: &Token) -> Option<(BinaryOp, u8)> {
    Some(match token {
        Token::Plus => (BinaryOp::Add, 0),
        Token::Minus => (BinaryOp::Sub, 0),
        Token::Star => (BinaryOp::Mul, 1),
        Token::Slash => (BinaryOp::Div, 1),
        Token::Percent => (BinaryOp::Mod, 1),
        Token::Caret => (BinaryOp::Pow, 2),
        _ => return None,
    })
}

fn check_hint(
    parser: &Parser<'_>,
    name: &str,
    value: &Static,
    at: usize,
) -> Result<(), ParseError> {
    let ok = match name {
        "most_recent" | "exemplars" => matches!(value, Static::Bool(_) | Static::Int(_)),
        "sample" | "span_sample" | "trace_sample" => match value {
            Static::Bool(_) => true,
            Static::Float(fraction) => *fraction > 0.0 && *fraction <= 1.0,
            Static::Int(_) => true,
            _ => false,
        },
        // Hints Tempo knows but that change nothing here are accepted so shared queries run.
        _ => true,
    };
    if !ok {
        return Err(parser.invalid(at, format!("invalid value {value} for hint `{name}`")));
    }
    Ok(())
}

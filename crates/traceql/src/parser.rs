//! Recursive-descent parser with precedence climbing, checking types as it builds each node so
//! that every error points at the operator or operand at fault.
//!
//! Precedence, loosest first — spansets: `|`, `||`, `&&`, structural (`> >> < << ~` and their
//! `!`/`&` forms); fields: `||`, `&&`, comparisons, `+ -`, `* / %`, `^` (right-associative),
//! unary `! -`.

use regex::Regex;

use crate::ast::*;
use crate::error::ParseError;
use crate::lexer::{lex, Spanned, Token};

/// Parses and checks a search query.
pub fn parse(text: &str) -> Result<Query, ParseError> {
    let tokens = lex(text)?;
    let mut parser = Parser {
        text,
        tokens,
        pos: 0,
    };
    let query = parser.query()?;
    Ok(query)
}

pub(crate) struct Parser<'a> {
    pub(crate) text: &'a str,
    pub(crate) tokens: Vec<Spanned>,
    pub(crate) pos: usize,
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

fn keyword_static(word: &str) -> Option<Static> {
    Some(match word {
        "true" => Static::Bool(true),
        "false" => Static::Bool(false),
        "nil" => Static::Nil,
        "ok" => Static::Status(StatusCode::Ok),
        "error" => Static::Status(StatusCode::Error),
        "unset" => Static::Status(StatusCode::Unset),
        "unspecified" => Static::Kind(SpanKind::Unspecified),
        "internal" => Static::Kind(SpanKind::Internal),
        "server" => Static::Kind(SpanKind::Server),
        "client" => Static::Kind(SpanKind::Client),
        "producer" => Static::Kind(SpanKind::Producer),
        "consumer" => Static::Kind(SpanKind::Consumer),
        _ => return None,
    })
}

fn spanset_op(token: &Token) -> Option<SpansetOp> {
    Some(match token {
        Token::Gt => SpansetOp::Child,
        Token::Lt => SpansetOp::Parent,
        Token::Descendant => SpansetOp::Descendant,
        Token::Ancestor => SpansetOp::Ancestor,
        Token::Tilde => SpansetOp::Sibling,
        Token::NotChild => SpansetOp::NotChild,
        Token::NotParent => SpansetOp::NotParent,
        Token::NotDescendant => SpansetOp::NotDescendant,
        Token::NotAncestor => SpansetOp::NotAncestor,
        Token::BangTilde => SpansetOp::NotSibling,
        Token::UnionChild => SpansetOp::UnionChild,
        Token::UnionParent => SpansetOp::UnionParent,
        Token::UnionDescendant => SpansetOp::UnionDescendant,
        Token::UnionAncestor => SpansetOp::UnionAncestor,
        Token::UnionSibling => SpansetOp::UnionSibling,
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

/// The static type of a field expression.
pub fn field_type(expr: &FieldExpr) -> ValueType {
    match expr {
        FieldExpr::Static(value) => value.value_type(),
        FieldExpr::Field(Field::Intrinsic(intrinsic)) => intrinsic.value_type(),
        FieldExpr::Field(Field::Attribute { .. }) => ValueType::Attribute,
        FieldExpr::Not(_) | FieldExpr::Regex { .. } => ValueType::Bool,
        FieldExpr::Negate(inner) => field_type(inner),
        FieldExpr::Binary { op, lhs, rhs } => {
            if !op.is_arithmetic() {
                return ValueType::Bool;
            }
            arithmetic_type(field_type(lhs), field_type(rhs))
        }
    }
}

fn arithmetic_type(lhs: ValueType, rhs: ValueType) -> ValueType {
    match (lhs, rhs) {
        (ValueType::Attribute, _) | (_, ValueType::Attribute) => ValueType::Attribute,
        (ValueType::Duration, _) | (_, ValueType::Duration) => ValueType::Duration,
        (ValueType::Float, _) | (_, ValueType::Float) => ValueType::Float,
        _ => ValueType::Int,
    }
}

/// Whether two static types may be compared with `=`/`!=` (`ordered` adds `< <= > >=`).
fn comparable(lhs: ValueType, rhs: ValueType, ordered: bool) -> bool {
    use ValueType::*;
    if lhs == Attribute || rhs == Attribute {
        return !ordered || (lhs != Nil && rhs != Nil && lhs != Bool && rhs != Bool);
    }
    if lhs == Nil || rhs == Nil {
        return !ordered;
    }
    let numeric = |t: ValueType| matches!(t, Int | Float | Duration);
    if numeric(lhs) && numeric(rhs) {
        return true;
    }
    if lhs != rhs {
        return false;
    }
    !ordered || lhs == String
}

impl Parser<'_> {
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
        let mut stages = vec![self.stage()?];
        while !self.at_metrics_function() && self.eat(&Token::Pipe) {
            stages.push(self.stage()?);
        }
        if stages.len() == 1 {
            if let Some(Stage::Spanset(_)) = stages.first() {
                if let Some(Stage::Spanset(expr)) = stages.pop() {
                    return Ok(expr);
                }
            }
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
        let mut offset = 0;
        while self.peek_at(offset) == Some(&Token::LParen) {
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

    fn stage(&mut self) -> Result<Stage, ParseError> {
        let at = self.offset();
        if let Some(Token::Word(word)) = self.peek() {
            match word.as_str() {
                "by" => {
                    self.pos += 1;
                    self.expect(Token::LParen)?;
                    let mut groups = vec![self.field_expr()?];
                    while self.eat(&Token::Comma) {
                        groups.push(self.field_expr()?);
                    }
                    self.expect(Token::RParen)?;
                    return Ok(Stage::By(groups));
                }
                "coalesce" => {
                    self.pos += 1;
                    self.expect(Token::LParen)?;
                    self.expect(Token::RParen)?;
                    return Ok(Stage::Coalesce);
                }
                "select" => {
                    self.pos += 1;
                    self.expect(Token::LParen)?;
                    let mut fields = Vec::new();
                    loop {
                        let field_at = self.offset();
                        match self.field_expr()? {
                            FieldExpr::Field(field) => fields.push(field),
                            _ => {
                                return Err(self.invalid(
                                    field_at,
                                    "select() takes attributes and intrinsics only",
                                ))
                            }
                        }
                        if !self.eat(&Token::Comma) {
                            break;
                        }
                    }
                    self.expect(Token::RParen)?;
                    return Ok(Stage::Select(fields));
                }
                _ => {}
            }
        }
        if self.starts_scalar() {
            let lhs = self.scalar_expr()?;
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
            let rhs = self.scalar_expr()?;
            if !lhs.has_aggregate() && !rhs.has_aggregate() {
                return Err(self.invalid(
                    at,
                    "a scalar filter needs an aggregate such as count() or avg(duration)",
                ));
            }
            return Ok(Stage::ScalarFilter { op, lhs, rhs });
        }
        Ok(Stage::Spanset(self.spanset_or()?))
    }

    fn spanset_or(&mut self) -> Result<SpansetExpr, ParseError> {
        let mut lhs = self.spanset_and()?;
        while self.eat(&Token::Or) {
            let rhs = self.spanset_and()?;
            lhs = SpansetExpr::Binary {
                op: SpansetOp::Or,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
        Ok(lhs)
    }

    fn spanset_and(&mut self) -> Result<SpansetExpr, ParseError> {
        let mut lhs = self.spanset_structural()?;
        while self.eat(&Token::And) {
            let rhs = self.spanset_structural()?;
            lhs = SpansetExpr::Binary {
                op: SpansetOp::And,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
        Ok(lhs)
    }

    fn spanset_structural(&mut self) -> Result<SpansetExpr, ParseError> {
        let mut lhs = self.spanset_primary()?;
        while let Some(op) = self.peek().and_then(spanset_op) {
            self.pos += 1;
            let rhs = self.spanset_primary()?;
            lhs = SpansetExpr::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
        Ok(lhs)
    }

    pub(crate) fn spanset_primary(&mut self) -> Result<SpansetExpr, ParseError> {
        match self.peek() {
            Some(Token::LBrace) => {
                self.pos += 1;
                if self.eat(&Token::RBrace) {
                    return Ok(SpansetExpr::Filter(None));
                }
                let at = self.offset();
                let expr = self.field_expr()?;
                let value_type = field_type(&expr);
                if !matches!(value_type, ValueType::Bool | ValueType::Attribute) {
                    return Err(self.invalid(
                        at,
                        format!(
                            "a spanset filter must be a boolean expression, this is {}",
                            value_type.name()
                        ),
                    ));
                }
                self.expect(Token::RBrace)?;
                Ok(SpansetExpr::Filter(Some(expr)))
            }
            Some(Token::LParen) => {
                self.pos += 1;
                let inner = self.pipeline()?;
                self.expect(Token::RParen)?;
                Ok(inner)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn scalar_expr(&mut self) -> Result<ScalarExpr, ParseError> {
        self.scalar_binary(0)
    }

    fn scalar_binary(&mut self, min_level: u8) -> Result<ScalarExpr, ParseError> {
        let mut lhs = self.scalar_primary()?;
        while let Some((op, level)) = self.peek().and_then(arithmetic_op) {
            if level < min_level {
                break;
            }
            self.pos += 1;
            let next_level = if op == BinaryOp::Pow {
                level
            } else {
                level + 1
            };
            let rhs = self.scalar_binary(next_level)?;
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
        match self.advance() {
            Some(Token::LParen) => {
                let inner = self.scalar_expr()?;
                self.expect(Token::RParen)?;
                Ok(inner)
            }
            Some(Token::Int(value)) => Ok(ScalarExpr::Static(Static::Int(value))),
            Some(Token::Float(value)) => Ok(ScalarExpr::Static(Static::Float(value))),
            Some(Token::Duration(value)) => Ok(ScalarExpr::Static(Static::Duration(value))),
            Some(Token::Minus) => match self.scalar_primary()? {
                ScalarExpr::Static(Static::Int(value)) => {
                    Ok(ScalarExpr::Static(Static::Int(-value)))
                }
                ScalarExpr::Static(Static::Float(value)) => {
                    Ok(ScalarExpr::Static(Static::Float(-value)))
                }
                ScalarExpr::Static(Static::Duration(value)) => {
                    Ok(ScalarExpr::Static(Static::Duration(-value)))
                }
                other => Ok(ScalarExpr::Binary {
                    op: BinaryOp::Sub,
                    lhs: Box::new(ScalarExpr::Static(Static::Int(0))),
                    rhs: Box::new(other),
                }),
            },
            Some(Token::Word(word)) if is_aggregate(&word).is_some() => {
                let function = is_aggregate(&word).unwrap_or(Aggregate::Count);
                self.expect(Token::LParen)?;
                if self.eat(&Token::RParen) {
                    if function != Aggregate::Count {
                        return Err(self.invalid(
                            at,
                            format!("{word}() needs an argument, e.g. {word}(duration)"),
                        ));
                    }
                    return Ok(ScalarExpr::Aggregate {
                        function,
                        argument: None,
                    });
                }
                let argument_at = self.offset();
                let argument = self.field_expr()?;
                self.expect(Token::RParen)?;
                if function == Aggregate::Count {
                    return Err(self.invalid(argument_at, "count() takes no argument"));
                }
                let argument_type = field_type(&argument);
                if !argument_type.is_numeric() {
                    return Err(self.invalid(
                        argument_at,
                        format!(
                            "{word}() needs a numeric argument, this is {}",
                            argument_type.name()
                        ),
                    ));
                }
                Ok(ScalarExpr::Aggregate {
                    function,
                    argument: Some(argument),
                })
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

    pub(crate) fn field_expr(&mut self) -> Result<FieldExpr, ParseError> {
        self.field_or()
    }

    fn field_or(&mut self) -> Result<FieldExpr, ParseError> {
        let mut lhs = self.field_and()?;
        loop {
            let at = self.offset();
            if !self.eat(&Token::Or) {
                return Ok(lhs);
            }
            let rhs = self.field_and()?;
            lhs = self.logical(BinaryOp::Or, lhs, rhs, at)?;
        }
    }

    fn field_and(&mut self) -> Result<FieldExpr, ParseError> {
        let mut lhs = self.field_comparison()?;
        loop {
            let at = self.offset();
            if !self.eat(&Token::And) {
                return Ok(lhs);
            }
            let rhs = self.field_comparison()?;
            lhs = self.logical(BinaryOp::And, lhs, rhs, at)?;
        }
    }

    fn logical(
        &self,
        op: BinaryOp,
        lhs: FieldExpr,
        rhs: FieldExpr,
        at: usize,
    ) -> Result<FieldExpr, ParseError> {
        for side in [&lhs, &rhs] {
            let side_type = field_type(side);
            if !matches!(side_type, ValueType::Bool | ValueType::Attribute) {
                return Err(self.invalid(
                    at,
                    format!(
                        "operator `{}` needs boolean operands, found {}",
                        op.symbol(),
                        side_type.name()
                    ),
                ));
            }
        }
        Ok(FieldExpr::Binary {
            op,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        })
    }

    fn field_comparison(&mut self) -> Result<FieldExpr, ParseError> {
        let mut lhs = self.field_arithmetic(0)?;
        while let Some(op) = self.peek().and_then(comparison_op) {
            let at = self.offset();
            self.pos += 1;
            if matches!(op, BinaryOp::Regex | BinaryOp::NotRegex) {
                lhs = self.regex(op, lhs, at)?;
                continue;
            }
            let rhs = self.field_arithmetic(0)?;
            let (lhs_type, rhs_type) = (field_type(&lhs), field_type(&rhs));
            let ordered = !matches!(op, BinaryOp::Eq | BinaryOp::Neq);
            if !comparable(lhs_type, rhs_type, ordered) {
                return Err(self.invalid(
                    at,
                    format!(
                        "cannot compare {} with {} using `{}`",
                        lhs_type.name(),
                        rhs_type.name(),
                        op.symbol()
                    ),
                ));
            }
            // `nil` goes on the right: `compare` reads a right-hand nil as an existence test.
            lhs = match (lhs, rhs) {
                (FieldExpr::Static(Static::Nil), other) => FieldExpr::Binary {
                    op,
                    lhs: Box::new(other),
                    rhs: Box::new(FieldExpr::Static(Static::Nil)),
                },
                (lhs, rhs) => FieldExpr::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
            };
        }
        Ok(lhs)
    }

    fn regex(&mut self, op: BinaryOp, lhs: FieldExpr, at: usize) -> Result<FieldExpr, ParseError> {
        let lhs_type = field_type(&lhs);
        if !matches!(lhs_type, ValueType::String | ValueType::Attribute) {
            return Err(self.invalid(
                at,
                format!(
                    "regular expressions match strings, found {}",
                    lhs_type.name()
                ),
            ));
        }
        let pattern_at = self.offset();
        let Some(Token::Str(pattern)) = self.advance() else {
            return Err(self.invalid(
                pattern_at,
                format!("`{}` needs a string literal on the right", op.symbol()),
            ));
        };
        let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|error| {
            self.invalid(
                pattern_at,
                format!(
                    "invalid regular expression: {}",
                    first_line(&error.to_string())
                ),
            )
        })?;
        Ok(FieldExpr::Regex {
            negated: op == BinaryOp::NotRegex,
            lhs: Box::new(lhs),
            pattern,
            regex,
        })
    }

    fn field_arithmetic(&mut self, min_level: u8) -> Result<FieldExpr, ParseError> {
        let mut lhs = self.field_unary()?;
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
            let rhs = self.field_arithmetic(next_level)?;
            for side in [&lhs, &rhs] {
                let side_type = field_type(side);
                if !side_type.is_numeric() {
                    return Err(self.invalid(
                        at,
                        format!(
                            "operator `{}` needs numeric operands, found {}",
                            op.symbol(),
                            side_type.name()
                        ),
                    ));
                }
            }
            lhs = FieldExpr::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
        Ok(lhs)
    }

    fn field_unary(&mut self) -> Result<FieldExpr, ParseError> {
        let at = self.offset();
        if self.eat(&Token::Bang) {
            let inner = self.field_unary()?;
            let inner_type = field_type(&inner);
            if !matches!(inner_type, ValueType::Bool | ValueType::Attribute) {
                return Err(self.invalid(
                    at,
                    format!("`!` needs a boolean, found {}", inner_type.name()),
                ));
            }
            return Ok(FieldExpr::Not(Box::new(inner)));
        }
        if self.eat(&Token::Minus) {
            let inner = self.field_unary()?;
            return match inner {
                FieldExpr::Static(Static::Int(value)) => Ok(FieldExpr::Static(Static::Int(-value))),
                FieldExpr::Static(Static::Float(value)) => {
                    Ok(FieldExpr::Static(Static::Float(-value)))
                }
                FieldExpr::Static(Static::Duration(value)) => {
                    Ok(FieldExpr::Static(Static::Duration(-value)))
                }
                other if field_type(&other).is_numeric() => Ok(FieldExpr::Negate(Box::new(other))),
                other => Err(self.invalid(
                    at,
                    format!("`-` needs a number, found {}", field_type(&other).name()),
                )),
            };
        }
        self.field_primary()
    }

    fn field_primary(&mut self) -> Result<FieldExpr, ParseError> {
        let at = self.offset();
        match self.advance() {
            Some(Token::LParen) => {
                let inner = self.field_expr()?;
                self.expect(Token::RParen)?;
                Ok(inner)
            }
            Some(Token::Str(value)) => Ok(FieldExpr::Static(Static::String(value))),
            Some(Token::Int(value)) => Ok(FieldExpr::Static(Static::Int(value))),
            Some(Token::Float(value)) => Ok(FieldExpr::Static(Static::Float(value))),
            Some(Token::Duration(value)) => Ok(FieldExpr::Static(Static::Duration(value))),
            Some(Token::Attribute {
                scope,
                parent,
                name,
            }) => Ok(FieldExpr::Field(Field::Attribute {
                scope,
                parent,
                name,
            })),
            Some(Token::Intrinsic(intrinsic)) => Ok(FieldExpr::Field(Field::Intrinsic(intrinsic))),
            Some(Token::Word(word)) => {
                if let Some(value) = keyword_static(&word) {
                    return Ok(FieldExpr::Static(value));
                }
                if let Some(intrinsic) = Intrinsic::from_name(&word) {
                    return Ok(FieldExpr::Field(Field::Intrinsic(intrinsic)));
                }
                Err(ParseError::at(
                    self.text,
                    at,
                    format!("syntax error: unexpected `{word}`; attributes need a scope such as `.{word}` or `span.{word}`"),
                ))
            }
            _ => {
                self.pos -= 1;
                Err(self.unexpected())
            }
        }
    }
}

fn first_line(message: &str) -> String {
    message
        .lines()
        .rfind(|line| !line.trim().is_empty())
        .unwrap_or(message)
        .trim()
        .to_owned()
}

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

//! Field expressions: what is evaluated for one span inside `{ … }`, in `by()` and in aggregate
//! arguments. One precedence-climbing loop reads every binary operator — loosest first `||`,
//! `&&`, comparisons, `+ -`, `* / %`, `^` (right-associative) — and unary `! -` bind tightest.
//! A parenthesis costs three stack frames (`primary` → `binary` → `unary`) where a function per
//! precedence level cost seven: that is what lets `MAX_QUERY_DEPTH` levels fit a small stack.

use crate::ast::*;
use crate::error::ParseError;
use crate::lexer::Token;

use super::{check, comparison_op, Parser};

/// A binary operator of field expressions and its precedence (higher binds tighter).
fn field_operator(token: &Token) -> Option<(BinaryOp, u8)> {
    if let Some(op) = comparison_op(token) {
        return Some((op, 2));
    }
    Some(match token {
        Token::Or => (BinaryOp::Or, 0),
        Token::And => (BinaryOp::And, 1),
        other => {
            let (op, level) = super::arithmetic_op(other)?;
            (op, level + 3)
        }
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

impl Parser<'_> {
    pub(crate) fn field_expr(&mut self) -> Result<FieldExpr, ParseError> {
        self.field_binary(0)
    }

    /// Operators of at least `min_precedence`, left-associative except `^`.
    fn field_binary(&mut self, min_precedence: u8) -> Result<FieldExpr, ParseError> {
        let outer = self.begin_measure();
        let first = self.field_unary();
        let mut height = self.end_measure(outer);
        let mut lhs = first?;
        // Only as loose an operator as the last one may follow: tighter ones were taken by its
        // right operand, except after a regex, whose right side is one string (so
        // `.a =~ "x" + 1` stays a syntax error).
        let mut ceiling = u8::MAX;
        while let Some((op, precedence)) = self.peek().and_then(field_operator) {
            if precedence < min_precedence || precedence > ceiling {
                break;
            }
            ceiling = precedence;
            let at = self.offset();
            self.pos += 1;
            if matches!(op, BinaryOp::Regex | BinaryOp::NotRegex) {
                height = self.grow(height, 0, at)?;
                lhs = self.regex(op, lhs, at)?;
                continue;
            }
            let next_precedence = if op == BinaryOp::Pow {
                precedence
            } else {
                precedence + 1
            };
            self.descend(at)?;
            let outer = self.begin_measure();
            let rhs = self.field_binary(next_precedence);
            let rhs_height = self.end_measure(outer);
            self.ascend();
            let rhs = rhs?;
            height = self.grow(height, rhs_height, at)?;
            lhs = check::binary(self, op, lhs, rhs, at)?;
        }
        Ok(lhs)
    }

    fn regex(&mut self, op: BinaryOp, lhs: FieldExpr, at: usize) -> Result<FieldExpr, ParseError> {
        check::check_regex_subject(self, &lhs, at)?;
        let pattern_at = self.offset();
        let Some(Token::Str(pattern)) = self.advance() else {
            return Err(self.invalid(
                pattern_at,
                format!("`{}` needs a string literal on the right", op.symbol()),
            ));
        };
        check::regex(self, op, lhs, pattern, pattern_at)
    }

    fn field_unary(&mut self) -> Result<FieldExpr, ParseError> {
        let negation = match self.peek() {
            Some(Token::Bang) => true,
            Some(Token::Minus) => false,
            _ => return self.field_primary(),
        };
        let at = self.offset();
        self.pos += 1;
        self.descend(at)?;
        let inner = self.field_unary();
        self.ascend();
        check::unary(self, negation, inner?, at)
    }

    fn field_primary(&mut self) -> Result<FieldExpr, ParseError> {
        if self.peek() != Some(&Token::LParen) {
            return self.field_leaf();
        }
        let at = self.offset();
        self.pos += 1;
        self.descend(at)?;
        let inner = self.field_binary(0);
        self.ascend();
        let inner = inner?;
        self.expect(Token::RParen)?;
        Ok(inner)
    }

    /// A literal, an attribute or an intrinsic.
    fn field_leaf(&mut self) -> Result<FieldExpr, ParseError> {
        let at = self.offset();
        match self.advance() {
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

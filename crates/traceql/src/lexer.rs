//! The TraceQL lexer: turns query text into tokens with byte offsets. Attribute references are
//! lexed whole (`resource.service.name`, `span."a b"`, `parent.span.x`, `span:name`) because
//! attribute names may contain dots, dashes and slashes that are operators elsewhere.

use crate::ast::{Intrinsic, Scope};
use crate::error::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    Pipe,
    And,
    Or,
    Bang,
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    Re,
    /// `!~`: a negated regex inside a filter, the negated sibling operator between spansets.
    BangTilde,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Caret,
    Tilde,
    Descendant,
    Ancestor,
    NotChild,
    NotParent,
    NotDescendant,
    NotAncestor,
    UnionChild,
    UnionParent,
    UnionDescendant,
    UnionAncestor,
    UnionSibling,
    Str(String),
    Int(i64),
    Float(f64),
    Duration(i64),
    /// A bare word: keyword, enum literal, function name or legacy intrinsic.
    Word(String),
    Attribute {
        scope: Scope,
        parent: bool,
        name: String,
    },
    Intrinsic(Intrinsic),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Spanned {
    pub token: Token,
    pub start: usize,
    pub end: usize,
}

/// Characters that end a bare attribute name.
fn ends_attribute(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '{' | '}' | '(' | ')' | '=' | '~' | '!' | '<' | '>' | '&' | '|' | '^' | ',' | '"' | '`'
        )
}

pub fn lex(text: &str) -> Result<Vec<Spanned>, ParseError> {
    Lexer { text, pos: 0 }.run()
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.text[self.pos..].chars().nth(offset)
    }

    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn error(&self, at: usize, message: impl Into<String>) -> ParseError {
        ParseError::at(self.text, at, message)
    }

    fn run(mut self) -> Result<Vec<Spanned>, ParseError> {
        let mut tokens = Vec::new();
        loop {
            while self.peek().is_some_and(char::is_whitespace) {
                self.pos += self.peek().map_or(1, char::len_utf8);
            }
            let Some(c) = self.peek() else { break };
            let start = self.pos;
            let token = self.next_token(c)?;
            tokens.push(Spanned {
                token,
                start,
                end: self.pos,
            });
        }
        Ok(tokens)
    }

    fn take_operator(&mut self) -> Option<Token> {
        const OPERATORS: &[(&str, Token)] = &[
            ("&>>", Token::UnionDescendant),
            ("&<<", Token::UnionAncestor),
            ("!>>", Token::NotDescendant),
            ("!<<", Token::NotAncestor),
            ("&&", Token::And),
            ("||", Token::Or),
            ("!=", Token::Neq),
            ("!~", Token::BangTilde),
            ("!>", Token::NotChild),
            ("!<", Token::NotParent),
            ("&>", Token::UnionChild),
            ("&<", Token::UnionParent),
            ("&~", Token::UnionSibling),
            (">>", Token::Descendant),
            ("<<", Token::Ancestor),
            (">=", Token::Gte),
            ("<=", Token::Lte),
            ("=~", Token::Re),
            ("{", Token::LBrace),
            ("}", Token::RBrace),
            ("(", Token::LParen),
            (")", Token::RParen),
            (",", Token::Comma),
            ("|", Token::Pipe),
            ("!", Token::Bang),
            ("=", Token::Eq),
            (">", Token::Gt),
            ("<", Token::Lt),
            ("+", Token::Plus),
            ("-", Token::Minus),
            ("*", Token::Star),
            ("/", Token::Slash),
            ("%", Token::Percent),
            ("^", Token::Caret),
            ("~", Token::Tilde),
        ];
        for (text, token) in OPERATORS {
            if self.rest().starts_with(text) {
                self.pos += text.len();
                return Some(token.clone());
            }
        }
        None
    }

    fn next_token(&mut self, c: char) -> Result<Token, ParseError> {
        if c == '"' || c == '`' {
            return Ok(Token::Str(self.string()?));
        }
        if c.is_ascii_digit() {
            return self.number();
        }
        if c == '.' {
            self.pos += 1;
            let name = self.attribute_name()?;
            return Ok(Token::Attribute {
                scope: Scope::Unscoped,
                parent: false,
                name,
            });
        }
        if c.is_alphabetic() || c == '_' {
            return self.word();
        }
        if let Some(token) = self.take_operator() {
            return Ok(token);
        }
        Err(self.error(self.pos, format!("unexpected character `{c}`")))
    }

    /// A quoted string; `"` strings take Go-style escapes, backtick strings are raw.
    fn string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let quote = self.peek().unwrap_or('"');
        self.pos += 1;
        let mut value = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error(start, "unterminated string"));
            };
            self.pos += c.len_utf8();
            if c == quote {
                return Ok(value);
            }
            if c != '\\' || quote == '`' {
                value.push(c);
                continue;
            }
            let escape_at = self.pos - 1;
            let Some(escaped) = self.peek() else {
                return Err(self.error(start, "unterminated string"));
            };
            self.pos += escaped.len_utf8();
            match escaped {
                '"' => value.push('"'),
                '\'' => value.push('\''),
                '\\' => value.push('\\'),
                'n' => value.push('\n'),
                't' => value.push('\t'),
                'r' => value.push('\r'),
                '0' => value.push('\0'),
                'u' => {
                    // Exactly four ASCII hex digits (so `pos += 4` stays on a character
                    // boundary); `from_str_radix` alone would also take a sign such as `+12`.
                    let hex = self
                        .rest()
                        .get(..4)
                        .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()));
                    let code = hex.and_then(|hex| u32::from_str_radix(hex, 16).ok());
                    let Some(ch) = code.and_then(char::from_u32) else {
                        return Err(
                            self.error(escape_at, "invalid unicode escape, expected \\uXXXX")
                        );
                    };
                    self.pos += 4;
                    value.push(ch);
                }
                other => {
                    return Err(
                        self.error(escape_at, format!("invalid escape sequence `\\{other}`"))
                    )
                }
            }
        }
    }

    fn digits(&mut self) -> &str {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    /// Ints, floats and durations (`1.5s`, `100ms`, `1h30m`).
    fn number(&mut self) -> Result<Token, ParseError> {
        let start = self.pos;
        self.digits();
        let mut is_float = false;
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
            self.digits();
            is_float = true;
        }
        if matches!(self.peek(), Some('e' | 'E'))
            && (self.peek_at(1).is_some_and(|c| c.is_ascii_digit())
                || (matches!(self.peek_at(1), Some('+' | '-'))
                    && self.peek_at(2).is_some_and(|c| c.is_ascii_digit())))
        {
            self.pos += 2;
            self.digits();
            is_float = true;
        }
        let numeral = &self.text[start..self.pos];
        if self.peek().is_some_and(|c| c.is_alphabetic() || c == 'µ') {
            return self.duration(start);
        }
        if is_float {
            let value = numeral
                .parse::<f64>()
                .map_err(|_| self.error(start, format!("invalid number `{numeral}`")))?;
            return Ok(Token::Float(value));
        }
        numeral
            .parse::<i64>()
            .map(Token::Int)
            .map_err(|_| self.error(start, format!("integer `{numeral}` is out of range")))
    }

    /// A duration literal's extent is found here, its value by the one Go duration parser.
    fn duration(&mut self, start: usize) -> Result<Token, ParseError> {
        self.pos = start;
        loop {
            self.digits();
            if self.peek() == Some('.') {
                self.pos += 1;
                self.digits();
            }
            while self.peek().is_some_and(|c| c.is_alphabetic() || c == 'µ') {
                self.pos += self.peek().map_or(1, char::len_utf8);
            }
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                break;
            }
        }
        andante_model::parse_go_duration(&self.text[start..self.pos])
            .map(Token::Duration)
            .map_err(|error| self.error(start + error.offset, error.message))
    }

    fn attribute_name(&mut self) -> Result<String, ParseError> {
        if self.peek() == Some('"') {
            return self.string();
        }
        let start = self.pos;
        while self.peek().is_some_and(|c| !ends_attribute(c)) {
            self.pos += self.peek().map_or(1, char::len_utf8);
        }
        if self.pos == start {
            return Err(self.error(start, "expected an attribute name"));
        }
        Ok(self.text[start..self.pos].to_owned())
    }

    fn word(&mut self) -> Result<Token, ParseError> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
            self.pos += self.peek().map_or(1, char::len_utf8);
        }
        let word = &self.text[start..self.pos];
        match self.peek() {
            Some(':') if self.peek_at(1).is_some_and(|c| c.is_alphabetic()) => {
                let scope = word.to_owned();
                self.pos += 1;
                let name_start = self.pos;
                // Advance by whole characters: a name such as `é` is more than one byte.
                while let Some(c) = self.peek().filter(|c| c.is_alphanumeric() || *c == '_') {
                    self.pos += c.len_utf8();
                }
                let full = format!("{scope}:{}", &self.text[name_start..self.pos]);
                match Intrinsic::from_name(&full) {
                    Some(intrinsic) => Ok(Token::Intrinsic(intrinsic)),
                    None => Err(self.error(start, format!("unknown intrinsic `{full}`"))),
                }
            }
            Some('.') => {
                let scope = match word {
                    "parent" => None,
                    other => match Scope::from_prefix(other) {
                        Some(scope) => Some(scope),
                        None => return Err(self.error(start, format!("unknown attribute scope `{word}`, expected span, resource, event, link, instrumentation or parent"))),
                    },
                };
                self.pos += 1;
                if let Some(scope) = scope {
                    let name = self.attribute_name()?;
                    return Ok(Token::Attribute {
                        scope,
                        parent: false,
                        name,
                    });
                }
                // `parent.` may be followed by `span.`/`resource.` or an unscoped name.
                for (prefix, inner) in [("span.", Scope::Span), ("resource.", Scope::Resource)] {
                    if self.rest().starts_with(prefix) {
                        self.pos += prefix.len();
                        let name = self.attribute_name()?;
                        return Ok(Token::Attribute {
                            scope: inner,
                            parent: true,
                            name,
                        });
                    }
                }
                let name = self.attribute_name()?;
                Ok(Token::Attribute {
                    scope: Scope::Unscoped,
                    parent: true,
                    name,
                })
            }
            _ => Ok(Token::Word(word.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex_error(text: &str) -> String {
        match lex(text) {
            Ok(tokens) => panic!("`{text}` should not lex, got {tokens:?}"),
            Err(error) => error.to_string(),
        }
    }

    /// Issue 10: a scoped intrinsic whose name holds a multi-byte character advanced one byte
    /// at a time and sliced inside the character ("byte index is not a char boundary").
    #[test]
    fn non_ascii_intrinsic_names_are_errors_not_panics() {
        assert_eq!(
            lex_error("{ trace:é }"),
            "parse error at line 1, col 3: unknown intrinsic `trace:é`"
        );
        assert_eq!(
            lex_error("{ span:nameé = 1 }"),
            "parse error at line 1, col 3: unknown intrinsic `span:nameé`"
        );
        assert_eq!(
            lex_error("{ event:é = 1 }"),
            "parse error at line 1, col 3: unknown intrinsic `event:é`"
        );
        assert_eq!(
            lex_error("{ span:日本 = 1 }"),
            "parse error at line 1, col 3: unknown intrinsic `span:日本`"
        );
        // The column counts characters, the offset bytes.
        let error = lex("{ .üü = 1 } && { é:x }").expect_err("unknown intrinsic");
        assert_eq!((error.column, error.offset), (18, 19));
    }

    #[test]
    fn non_ascii_text_lexes_everywhere_a_character_may_stand() {
        let tokens = lex("{ .naïve = \"ça\" && span.日本 = `ü` && 5µs > 1ms }").expect("lexes");
        let naive = Token::Attribute {
            scope: Scope::Unscoped,
            parent: false,
            name: "naïve".to_owned(),
        };
        assert!(tokens.contains(&Spanned {
            token: naive,
            start: 2,
            end: 9
        }));
        let japanese = Token::Attribute {
            scope: Scope::Span,
            parent: false,
            name: "日本".to_owned(),
        };
        assert!(tokens.iter().any(|spanned| spanned.token == japanese));
        assert!(tokens
            .iter()
            .any(|spanned| spanned.token == Token::Duration(5_000)));
        assert_eq!(lex_error("{ 5é }"), "parse error at line 1, col 4: unknown duration unit `é`, expected ns, us, ms, s, m or h");
        assert_eq!(
            lex_error("{ § }"),
            "parse error at line 1, col 3: unexpected character `§`"
        );
    }

    /// A `\u` escape takes exactly four hex digits; fewer characters, multi-byte characters or
    /// a sign are refused rather than sliced or parsed leniently.
    #[test]
    fn unicode_escapes_take_four_hex_digits() {
        assert_eq!(
            lex("\"\\u00e9\"").expect("lexes")[0].token,
            Token::Str("é".to_owned())
        );
        for text in [
            "\"\\u+0e9\"",
            "\"\\u00é\"",
            "\"\\uéééé\"",
            "\"\\u1\"",
            "\"\\u",
        ] {
            let message = lex_error(text);
            assert!(
                message.contains("invalid unicode escape") || message.contains("unterminated"),
                "{text}: {message}"
            );
        }
    }
}

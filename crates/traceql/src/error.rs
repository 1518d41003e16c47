//! Errors with positions. Messages follow Tempo's shape (`parse error at line 1, col 8: …`) so
//! people who know Tempo recognise them, and carry the byte offset for editors to underline.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text is not TraceQL.
    Syntax,
    /// The text parses but means nothing (type errors, misplaced aggregates, bad regexes).
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub kind: ErrorKind,
    pub message: String,
    /// Byte offset into the query.
    pub offset: usize,
    /// 1-based line and column (in characters) of `offset`.
    pub line: usize,
    pub column: usize,
}

impl ParseError {
    pub fn at(text: &str, offset: usize, message: impl Into<String>) -> ParseError {
        Self::new(ErrorKind::Syntax, text, offset, message)
    }

    pub fn invalid(text: &str, offset: usize, message: impl Into<String>) -> ParseError {
        Self::new(ErrorKind::Invalid, text, offset, message)
    }

    fn new(kind: ErrorKind, text: &str, offset: usize, message: impl Into<String>) -> ParseError {
        // Offsets come from token boundaries; flooring to a character boundary keeps a wrong
        // one from turning an error report into a panic.
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |index| index + 1);
        let column = text[line_start..offset].chars().count() + 1;
        ParseError {
            kind,
            message: message.into(),
            offset,
            line,
            column,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::Syntax => "parse error",
            ErrorKind::Invalid => "invalid query",
        };
        write!(
            f,
            "{what} at line {}, col {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::ParseError;

    #[test]
    fn an_offset_inside_a_character_is_floored_to_its_start() {
        let error = ParseError::at("{ é }", 3, "x");
        assert_eq!((error.offset, error.line, error.column), (2, 1, 3));
    }
}

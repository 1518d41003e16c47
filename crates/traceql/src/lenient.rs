//! Lenient parsing for autocomplete: Grafana sends the filter being typed (`{ .a = "x" && .b = `)
//! with tag-value requests. A query that parses is used as is; otherwise the complete `&&`
//! clauses inside the first `{ … }` are kept and the incomplete ones dropped, which can only
//! widen the match — right for suggesting values.

use crate::ast::{BinaryOp, FieldExpr, Query, SpansetExpr};
use crate::parser::{parse, MAX_QUERY_DEPTH};

/// The usable part of `text`, or `None` when nothing in it is a complete condition.
pub fn parse_lenient(text: &str) -> Option<Query> {
    if let Ok(query) = parse(text) {
        return Some(query);
    }
    let open = text.find('{')?;
    let body = &text[open + 1..];
    let body = match last_unquoted(body, '}') {
        Some(close) => &body[..close],
        None => body,
    };
    let mut kept: Option<FieldExpr> = None;
    // Each clause was parsed alone, within the nesting limit; joined they form a chain one
    // level deeper per `&&`, which must stay within the limit too (the filter's braces are one
    // more level). Clauses past it are dropped, which only widens the match.
    let mut kept_height = 0;
    for clause in split_unquoted(body, "&&") {
        let Ok(query) = parse(&format!("{{{clause}}}")) else {
            continue;
        };
        let SpansetExpr::Filter(Some(condition)) = query.root else {
            continue;
        };
        let height = match kept {
            None => condition.height(),
            Some(_) => kept_height.max(condition.height()) + 1,
        };
        if 1 + height > MAX_QUERY_DEPTH {
            break;
        }
        kept_height = height;
        kept = Some(match kept {
            None => condition,
            Some(previous) => FieldExpr::Binary {
                op: BinaryOp::And,
                lhs: Box::new(previous),
                rhs: Box::new(condition),
            },
        });
    }
    kept.map(|condition| Query {
        root: SpansetExpr::Filter(Some(condition)),
        hints: Vec::new(),
    })
}

/// Byte offsets outside string literals, with the characters found there.
fn unquoted_positions(text: &str) -> Vec<(usize, char)> {
    let mut positions = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (index, c) in text.char_indices() {
        match quote {
            Some(open) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && open == '"' {
                    escaped = true;
                } else if c == open {
                    quote = None;
                }
            }
            None if c == '"' || c == '`' => quote = Some(c),
            None => positions.push((index, c)),
        }
    }
    positions
}

fn last_unquoted(text: &str, wanted: char) -> Option<usize> {
    unquoted_positions(text)
        .into_iter()
        .rev()
        .find(|(_, c)| *c == wanted)
        .map(|(index, _)| index)
}

fn split_unquoted<'a>(text: &'a str, separator: &str) -> Vec<&'a str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut depth = 0i32;
    let positions = unquoted_positions(text);
    let mut skip_until = 0;
    for (index, c) in positions {
        if index < skip_until {
            continue;
        }
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ if depth == 0 && text[index..].starts_with(separator) => {
                parts.push(&text[start..index]);
                start = index + separator.len();
                skip_until = start;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

//! Golden tests: every query in `golden/queries.txt` runs over the fixture (see `fixture.rs`)
//! and must give exactly the spansets written after it. The expected results were worked out
//! by hand from the fixture's tree, not recorded from the engine.

mod fixture;

use andante_traceql::{evaluate, parse, TraceView, Value};

fn render(query_text: &str) -> String {
    let query = parse(query_text).unwrap_or_else(|error| panic!("`{query_text}`: {error}"));
    let mut parts = Vec::new();
    for (name, number, resource_spans) in fixture::traces() {
        let view = TraceView::new(fixture::trace_id(number), &resource_spans);
        for spanset in evaluate(&query, &view) {
            let spans: Vec<String> = spanset
                .spans
                .iter()
                .map(|index| fixture::label(&view.spans[*index as usize].span.span_id))
                .collect();
            let mut text = format!("{name}:{}", spans.join(","));
            for (key, value) in &spanset.attributes {
                let rendered = match value {
                    Value::Str(text) => text.to_string(),
                    Value::Int(number) => number.to_string(),
                    Value::Float(number) => number.to_string(),
                    Value::Duration(nanos) => format!("{}ms", *nanos as f64 / 1e6),
                    other => format!("{other:?}"),
                };
                text.push_str(&format!(" {key}={rendered}"));
            }
            parts.push(text);
        }
    }
    if parts.is_empty() {
        return "none".to_owned();
    }
    parts.join(" ; ")
}

#[test]
fn golden_queries() {
    let text = include_str!("golden/queries.txt");
    let mut failures = Vec::new();
    let mut count = 0;
    for line in text
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
    {
        let (query, expected) = line
            .split_once(" => ")
            .unwrap_or_else(|| panic!("malformed line `{line}`"));
        let actual = render(query.trim());
        if actual != expected.trim() {
            failures.push(format!(
                "{query}\n   expected {expected}\n   actual   {actual}"
            ));
        }
        count += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {count} golden queries differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

//! Recent traces are decoded with only the fields a query reads (`projection.rs`). These tests
//! run every golden query, some extra ones and metrics queries over the fixture twice, once on a
//! full decode and once on a projected decode of the same protobuf, and require the same answers:
//! a field the evaluator reads but the projection skips shows up here as a difference.

mod fixture;

use andante_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use andante_model::otlp::trace::v1::ResourceSpans;
use andante_model::projected::{decode_projected, Projection};
use andante_traceql::metrics::MetricsQuery;
use andante_traceql::{
    evaluate, evaluated_fields, parse, parse_metrics, projection_of, Accumulator, Intervals,
    TraceCondition, TraceView,
};
use prost::Message;

fn projected(resource_spans: &[ResourceSpans], projection: &Projection) -> Vec<ResourceSpans> {
    let bytes = ExportTraceServiceRequest {
        resource_spans: resource_spans.to_vec(),
    }
    .encode_to_vec();
    decode_projected(&bytes, projection).expect("the fixture decodes")
}

/// The spansets of `query` over one trace, as text (span IDs, then attributes).
fn answer(query: &andante_traceql::Query, trace: u8, resource_spans: &[ResourceSpans]) -> String {
    let view = TraceView::new(fixture::trace_id(trace), resource_spans);
    evaluate(query, &view)
        .into_iter()
        .map(|set| {
            let spans: Vec<String> = set
                .spans
                .iter()
                .map(|index| fixture::label(&view.spans[*index as usize].span.span_id))
                .collect();
            format!("{} {:?}", spans.join(","), set.attributes)
        })
        .collect::<Vec<_>>()
        .join(" ; ")
}

/// For each of the condition's predicates, which spans of the trace satisfy it.
fn found(condition: &TraceCondition, trace: u8, resource_spans: &[ResourceSpans]) -> Vec<Vec<u32>> {
    let view = TraceView::new(fixture::trace_id(trace), resource_spans);
    condition
        .predicates()
        .iter()
        .map(|predicate| {
            (0..view.spans.len() as u32)
                .filter(|span| predicate.matches_span(&view, *span))
                .collect()
        })
        .collect()
}

const EXTRA_QUERIES: &[&str] = &[
    "{ .http.route = \"/cart\" }",
    "{ .service.name = \"cart\" }",
    "{ parent.span.http.route = \"/cart\" }",
    "{ parent.resource.service.name = \"frontend\" }",
    "{ trace:rootName = \"GET /cart\" }",
    "{ trace:rootService = \"frontend\" }",
    "{ statusMessage = \"boom\" }",
    "{ instrumentation:version != \"\" }",
    "{ span:childCount > 1 && trace:duration > 10ms }",
    "{ link:spanID != \"\" }",
    "{ } | select(span.db.system, resource.service.name, name)",
    "{ } | avg(span.items) > 1",
    "{ } | by(resource.service.name) | count() > 1",
    "{ status = error } >> { span.db.system = \"redis\" }",
    "{ nestedSetParent > 0 }",
];

#[test]
fn queries_answer_the_same_over_projected_spans() {
    let golden = include_str!("golden/queries.txt")
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| line.split_once(" => ").expect("golden line").0.trim());
    let mut checked = 0;
    for text in golden.chain(EXTRA_QUERIES.iter().copied()) {
        let query = parse(text).unwrap_or_else(|error| panic!("`{text}`: {error}"));
        let condition = TraceCondition::of(&query);
        let for_query = projection_of(&evaluated_fields(&query));
        let for_condition = condition.projection();
        for (name, number, resource_spans) in fixture::traces() {
            assert_eq!(
                answer(&query, number, &projected(&resource_spans, &for_query)),
                answer(&query, number, &resource_spans),
                "`{text}` over {name}, projected with {for_query:?}"
            );
            assert_eq!(
                found(
                    &condition,
                    number,
                    &projected(&resource_spans, &for_condition)
                ),
                found(&condition, number, &resource_spans),
                "the condition of `{text}` over {name}, projected with {for_condition:?}"
            );
            checked += 1;
        }
    }
    assert!(checked > 300, "only {checked} query-trace pairs");
}

fn fold(query: &MetricsQuery, traces: &[(u8, Vec<ResourceSpans>)]) -> String {
    let mut accumulator =
        Accumulator::new(Intervals::range(0, 3600 * 1_000_000_000, 1_000_000_000_000));
    for (number, resource_spans) in traces {
        accumulator.observe(
            query,
            &TraceView::new(fixture::trace_id(*number), resource_spans),
        );
    }
    format!("{:?}", accumulator.finish(query))
}

#[test]
fn metrics_answer_the_same_over_projected_spans() {
    let queries = [
        "{ } | rate() by (resource.service.name)",
        "{ status = error } | count_over_time() by (name)",
        "{ } | quantile_over_time(duration, .5, .9) by (span.db.system)",
        "{ kind = server } | avg_over_time(span.http.status_code) by (.service.name)",
        "{ } | sum_over_time(span.items) by (instrumentation:name)",
        "{ } | histogram_over_time(duration) by (status)",
        "{ event:name = \"exception\" } | max_over_time(duration) by (resource.service.name)",
        "{ link.relation = \"follows\" } | count_over_time() by (trace:rootService)",
        "{ span.db.system != nil } | min_over_time(duration) by (parent.name)",
        "{ } | compare({ status = error })",
        "{ resource.service.name = \"cart\" } | count_over_time() by (statusMessage, kind)",
    ];
    let full: Vec<(u8, Vec<ResourceSpans>)> = fixture::traces()
        .into_iter()
        .map(|(_, number, resource_spans)| (number, resource_spans))
        .collect();
    for text in queries {
        let query = parse_metrics(text).unwrap_or_else(|error| panic!("`{text}`: {error}"));
        let projection = query.projection();
        let projected: Vec<(u8, Vec<ResourceSpans>)> = full
            .iter()
            .map(|(number, resource_spans)| (*number, projected(resource_spans, &projection)))
            .collect();
        let expected = fold(&query, &full);
        assert!(expected.len() > 20, "`{text}` gives no series: {expected}");
        assert_eq!(
            fold(&query, &projected),
            expected,
            "`{text}` with {projection:?}"
        );
    }
}

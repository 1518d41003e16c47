//! TraceQL metrics over the hand-drawn fixture (T1 at 1000 s, T2 at 2000 s, T3 at 3000 s), with
//! series and samples worked out by hand; plus the parse rules of the metrics stages.

mod fixture;

use andante_traceql::metrics::{LabelValue, MetricsSeries, SecondStage};
use andante_traceql::{parse_metrics, Accumulator, Intervals, TraceView};

const SECOND: u64 = 1_000_000_000;

fn run(query: &str, intervals: Intervals) -> Vec<MetricsSeries> {
    let query = parse_metrics(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    let traces = fixture::traces();
    // Fold traces in two accumulators and merge them: the order must not matter.
    let mut first = Accumulator::new(intervals);
    let mut second = Accumulator::new(intervals);
    for (i, (_, number, resource_spans)) in traces.iter().enumerate() {
        let view = TraceView::new(fixture::trace_id(*number), resource_spans);
        if i % 2 == 0 {
            first.observe(&query, &view)
        } else {
            second.observe(&query, &view)
        }
    }
    first.merge(second);
    first.finish(&query)
}

/// Intervals ending at 0, 1000, 2000, 3000, 4000 s.
fn thousands() -> Intervals {
    Intervals::range(0, 3600 * SECOND, 1000 * SECOND)
}

fn s(text: &str) -> LabelValue {
    LabelValue::String(text.to_owned())
}

fn series<'a>(result: &'a [MetricsSeries], label: &str, value: &LabelValue) -> &'a MetricsSeries {
    result
        .iter()
        .find(|s| s.labels.iter().any(|(k, v)| k == label && v == value))
        .unwrap_or_else(|| panic!("no {label}={value:?} in {result:?}"))
}

#[test]
fn intervals_are_right_closed_and_labelled_by_their_end() {
    let intervals = thousands();
    assert_eq!(intervals.count, 5);
    assert_eq!(
        intervals.index(1000 * SECOND),
        Some(1),
        "a span at exactly T belongs to (T-step, T]"
    );
    assert_eq!(intervals.index(1000 * SECOND + 1), Some(2));
    assert_eq!(intervals.index(4000 * SECOND + 1), None);
    assert_eq!(intervals.end_millis(2), 2_000_000);
    let instant = Intervals::instant(1000 * SECOND, 2000 * SECOND);
    assert_eq!(
        (
            instant.index(1000 * SECOND),
            instant.index(1500 * SECOND),
            instant.index(2000 * SECOND)
        ),
        (None, Some(0), Some(0))
    );
}

#[test]
fn count_over_time_counts_every_span_by_its_start() {
    let result = run("{ } | count_over_time()", thousands());
    assert_eq!(result.len(), 1);
    assert_eq!(
        result[0].labels,
        vec![("__name__".to_owned(), s("count_over_time"))]
    );
    // r1 starts at exactly 1000 s; c1 s1 d1 k1 just after, with r2 at 2000 s; n2 and p3; q3 and o3.
    assert_eq!(
        result[0].samples,
        vec![Some(0.0), Some(1.0), Some(5.0), Some(2.0), Some(2.0)]
    );
}

#[test]
fn rate_by_service_and_filters() {
    let result = run("{ } | rate() by (resource.service.name)", thousands());
    let frontend = series(&result, "resource.service.name", &s("frontend"));
    assert_eq!(
        frontend.samples,
        vec![Some(0.0), Some(0.001), Some(0.002), Some(0.001), Some(0.0)]
    );
    assert_eq!(
        series(&result, "resource.service.name", &s("billing")).samples[4],
        Some(0.002)
    );
    assert_eq!(result.len(), 4);
    let errors = run(
        "{ status = error } | count_over_time() by (name, kind)",
        thousands(),
    );
    assert_eq!(errors.len(), 2);
    let cart = series(&errors, "name", &s("GetCart"));
    assert_eq!(cart.labels[1], ("kind".to_owned(), s("server")));
    assert_eq!(cart.samples[2], Some(1.0));
    // A comparison drops the samples that fail it; series with none left disappear.
    let busy = run(
        "{ } | count_over_time() by (resource.service.name) > 2",
        thousands(),
    );
    assert_eq!(busy.len(), 1);
    assert_eq!(
        busy[0].samples,
        vec![None, None, Some(3.0), None, None],
        "cart's three spans at 1000 s"
    );
}

#[test]
fn over_time_aggregates_of_a_field() {
    let cart = |query: &str| {
        series(
            &run(query, thousands()),
            "resource.service.name",
            &s("cart"),
        )
        .samples[2]
            .unwrap_or(f64::NAN)
    };
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    // cart at k=2: GetCart 70 ms, SELECT 30 ms, GET key 5 ms.
    assert!(close(
        cart("{ } | sum_over_time(duration) by (resource.service.name)"),
        0.105
    ));
    assert!(close(
        cart("{ } | min_over_time(duration) by (resource.service.name)"),
        0.005
    ));
    assert!(close(
        cart("{ } | max_over_time(duration) by (resource.service.name)"),
        0.07
    ));
    assert!(close(
        cart("{ } | avg_over_time(duration) by (resource.service.name)"),
        0.035
    ));
    let avg = run(
        "{ } | avg_over_time(duration) by (resource.service.name)",
        thousands(),
    );
    assert_eq!(
        series(&avg, "resource.service.name", &s("cart")).samples[3],
        None,
        "no spans: no average, not zero"
    );
    // Non-numeric values are skipped, numeric attributes work.
    let items = run("{ } | sum_over_time(span.items)", thousands());
    assert_eq!(items[0].samples[3], Some(3.0));
}

#[test]
fn quantiles_are_exact_and_histograms_use_power_of_two_buckets() {
    let result = run(
        "{ } | quantile_over_time(duration, .5, 1) by (resource.service.name)",
        thousands(),
    );
    let median = result
        .iter()
        .find(|s| {
            s.labels[0].1 == s_("cart") && s.labels[1] == ("p".to_owned(), LabelValue::float(0.5))
        })
        .unwrap();
    assert_eq!(median.samples[2], Some(0.03));
    assert_eq!(
        median.samples[1],
        Some(0.0),
        "an empty interval reads 0, as Tempo writes it"
    );
    let max = result
        .iter()
        .find(|s| {
            s.labels[0].1 == s_("cart") && s.labels[1] == ("p".to_owned(), LabelValue::float(1.0))
        })
        .unwrap();
    assert_eq!(max.samples[2], Some(0.07));
    let histogram = run(
        "{ name = \"GET /cart\" } | histogram_over_time(duration)",
        thousands(),
    );
    // 100 ms = 1e8 ns → the next power of two is 2^27 ns = 0.134217728 s.
    assert_eq!(histogram.len(), 1);
    assert_eq!(
        histogram[0].labels,
        vec![("__bucket".to_owned(), LabelValue::float(0.134217728))]
    );
    assert_eq!(histogram[0].samples[1], Some(1.0));
}

fn s_(text: &str) -> LabelValue {
    s(text)
}

#[test]
fn topk_keeps_the_highest_series_at_each_timestamp() {
    let result = run(
        "{ } | count_over_time() by (resource.service.name) | topk(1)",
        thousands(),
    );
    let at = |k: usize| {
        result
            .iter()
            .filter_map(|s| s.samples[k].map(|v| (s.labels[0].1.clone(), v)))
            .collect::<Vec<_>>()
    };
    assert_eq!(at(2), vec![(s("cart"), 3.0)]);
    assert_eq!(at(4), vec![(s("billing"), 2.0)]);
    let bottom = run(
        "{ } | count_over_time() by (resource.service.name) | bottomk(1)",
        Intervals::instant(0, 4000 * SECOND),
    );
    assert_eq!(bottom.len(), 1);
    assert_eq!(bottom[0].labels[0].1, s("orders"));
}

#[test]
fn metrics_parse_rules() {
    let query = parse_metrics("{ span.http.route = \"/cart\" } >> { status = error } | rate() by (resource.service.name, name) | topk(5) > 1 with(sample=true)").unwrap();
    assert_eq!(query.by.len(), 2);
    assert_eq!(
        query.second_stages,
        vec![
            SecondStage::TopK(5),
            SecondStage::Filter(andante_traceql::ast::BinaryOp::Gt, 1.0)
        ]
    );
    assert!(query.search.hint("sample").is_some());
    assert!(parse_metrics("{ } | select(span.a) | count_over_time()").is_ok());
    for (text, message) in [
        ("{ }", "not a metrics query"),
        ("{ } | rate(duration)", "expected `)`"),
        (
            "{ } | quantile_over_time(duration)",
            "needs at least one quantile",
        ),
        ("{ } | quantile_over_time(duration, 1.5)", "outside [0, 1]"),
        (
            "{ } | sum_over_time(1 + 2)",
            "takes an attribute or intrinsic",
        ),
        ("{ } | rate() | topk(0)", "positive whole number"),
        ("{ } | rate() =~ 3", "not regular expressions"),
        (
            "{ } | compare(status = error)",
            "takes a spanset filter first",
        ),
        ("{ } | compare({ status = error }, 0)", "greater than 0"),
        (
            "{ } | compare({ status = error }, 5, 100)",
            "a start and an end timestamp",
        ),
        (
            "{ } | compare({ status = error }, 5, 200, 100)",
            "greater than its start",
        ),
        (
            "{ } | compare({ status = error }, 5, -1, 100)",
            "expected a whole number",
        ),
        (
            "{ } | compare({ status = error }) by (name)",
            "takes no by()",
        ),
    ] {
        let error = parse_metrics(text).expect_err(text).to_string();
        assert!(error.contains(message), "{text}: {error}");
    }
}

#[test]
fn exemplars_point_at_a_span_per_interval() {
    let query = parse_metrics("{ } | count_over_time() by (resource.service.name)").unwrap();
    let mut accumulator = Accumulator::new(thousands()).with_exemplars(100);
    for (_, number, resource_spans) in fixture::traces() {
        accumulator.observe(
            &query,
            &TraceView::new(fixture::trace_id(number), &resource_spans),
        );
    }
    let result = accumulator.finish(&query);
    let cart = series(&result, "resource.service.name", &s("cart"));
    assert_eq!(cart.exemplars.len(), 1);
    let exemplar = cart.exemplars[0];
    assert_eq!(exemplar.trace_id, fixture::trace_id(1));
    assert_eq!(
        exemplar.value, 3.0,
        "a count's exemplar shows the interval's value"
    );
    assert_eq!(
        exemplar.timestamp_ms, 1_000_010,
        "the first cart span (GetCart) starts at 1000.010 s"
    );
    let frontend = series(&result, "resource.service.name", &s("frontend"));
    assert_eq!(frontend.exemplars.len(), 3, "one per interval with data");
    // Over-time functions keep the span's own value; without the option there are none.
    let query =
        parse_metrics("{ resource.service.name = \"cart\" } | max_over_time(duration)").unwrap();
    let mut accumulator = Accumulator::new(thousands()).with_exemplars(100);
    let plain = run(
        "{ resource.service.name = \"cart\" } | max_over_time(duration)",
        thousands(),
    );
    assert!(plain[0].exemplars.is_empty());
    for (_, number, resource_spans) in fixture::traces() {
        accumulator.observe(
            &query,
            &TraceView::new(fixture::trace_id(number), &resource_spans),
        );
    }
    let result = accumulator.finish(&query);
    assert!(
        (result[0].exemplars[0].value - 0.07).abs() < 1e-12,
        "GetCart's 70 ms"
    );
}

#[test]
fn arithmetic_between_metrics_queries() {
    use andante_traceql::metrics::{combine, MetricsOp, Operand};
    use andante_traceql::{parse_metrics_expr, MetricsExpr};
    let expr = parse_metrics_expr(
        "({ status = error } | count_over_time()) / ({ } | count_over_time()) * 100",
    )
    .unwrap();
    let MetricsExpr::Binary {
        op: MetricsOp::Mul,
        lhs,
        rhs,
    } = &expr
    else {
        panic!("{expr:?}")
    };
    assert!(matches!(rhs.as_ref(), MetricsExpr::Number(n) if *n == 100.0));
    assert!(matches!(
        lhs.as_ref(),
        MetricsExpr::Binary {
            op: MetricsOp::Div,
            ..
        }
    ));
    assert_eq!(expr.queries().len(), 2);
    // Evaluate by hand over the fixture: errors are r2 (k=2) and s1 (k=2), all spans per interval 0,1,5,2,2.
    let evaluate =
        |query: &andante_traceql::MetricsQuery| Operand::Series(run_query(query, thousands()));
    let [errors, all] = [expr.queries()[0], expr.queries()[1]].map(evaluate);
    let Operand::Series(ratio) = combine(
        MetricsOp::Mul,
        combine(MetricsOp::Div, errors, all),
        Operand::Number(100.0),
    ) else {
        panic!()
    };
    assert_eq!(ratio.len(), 1);
    assert_eq!(
        ratio[0].labels,
        vec![(
            "__name__".to_owned(),
            s("(count_over_time / count_over_time)")
        )]
    );
    let k2 = ratio[0].samples[2].unwrap();
    assert!((k2 - 40.0).abs() < 1e-9, "2 of 5 spans: {k2}");
    assert_eq!(ratio[0].samples[1], Some(0.0), "no errors among 1 span");
    assert!(
        ratio[0].samples[0].unwrap().is_nan(),
        "0/0 is NaN, not a division error"
    );
    // Constant folding and by-label matching.
    assert!(
        matches!(combine(MetricsOp::Div, Operand::Number(1.0), Operand::Number(0.0)), Operand::Number(n) if n.is_nan())
    );
    let by = parse_metrics_expr("({ } | count_over_time() by (resource.service.name)) - ({ kind = server } | count_over_time() by (resource.service.name))").unwrap();
    let [a, b] = [by.queries()[0], by.queries()[1]].map(evaluate);
    let Operand::Series(diff) = combine(MetricsOp::Sub, a, b) else {
        panic!()
    };
    assert_eq!(
        diff.len(),
        2,
        "only services with server spans pair up: {diff:?}"
    );
    // Errors: a plain query's message when the text is not arithmetic; an operand error otherwise.
    assert!(parse_metrics_expr("{ } | rate(")
        .unwrap_err()
        .to_string()
        .contains("expected `)`"));
    assert!(parse_metrics_expr("({ } | rate()) / ").is_err());
    assert!(
        parse_metrics_expr("(1 + 2)").is_err(),
        "no metrics query at all"
    );
}

fn run_query(query: &andante_traceql::MetricsQuery, intervals: Intervals) -> Vec<MetricsSeries> {
    let mut accumulator = Accumulator::new(intervals);
    for (_, number, resource_spans) in fixture::traces() {
        accumulator.observe(
            query,
            &TraceView::new(fixture::trace_id(number), &resource_spans),
        );
    }
    accumulator.finish(query)
}

/// compare() over the fixture: errors (s1 in T1, r2 in T2) against the eight other spans.
#[test]
fn compare_counts_every_attribute_value_in_selection_and_baseline() {
    let all = Intervals::instant(0, 3600 * SECOND);
    let result = run("{ } | compare({ status = error }, 2)", all);
    let nil = LabelValue::Nil;
    let one = |meta: &str, attribute: &str, value: &LabelValue| -> Option<f64> {
        result
            .iter()
            .find(|s| {
                s.labels
                    == vec![
                        ("__meta_type".to_owned(), s_(meta)),
                        (attribute.to_owned(), value.clone()),
                    ]
            })
            .map(|s| s.samples[0].unwrap_or(f64::NAN))
    };
    assert_eq!(one("selection", "status", &s("error")), Some(2.0));
    assert_eq!(one("selection", "kind", &s("server")), Some(2.0));
    assert_eq!(one("selection", "statusMessage", &s("boom")), Some(1.0));
    assert_eq!(
        one("selection", "resource.service.name", &s("cart")),
        Some(1.0)
    );
    assert_eq!(
        one("selection", "resource.service.name", &s("frontend")),
        Some(1.0)
    );
    assert_eq!(one("selection_total", "status", &nil), Some(2.0));
    assert_eq!(
        one("selection_total", "span.db.system", &nil),
        None,
        "no error span has db.system"
    );
    assert_eq!(one("baseline_total", "name", &nil), Some(8.0));
    assert_eq!(one("baseline_total", "span.db.system", &nil), Some(2.0));
    assert_eq!(
        one("baseline", "span.db.system", &s("postgresql")),
        Some(1.0)
    );
    assert_eq!(one("baseline", "span.db.system", &s("redis")), Some(1.0));
    // Eight baseline names and four baseline services exceed topN = 2: the two most frequent
    // stay (ties by value) and the attribute gets an error marker without samples.
    assert_eq!(
        one("baseline", "resource.service.name", &s("frontend")),
        Some(3.0)
    );
    assert_eq!(
        one("baseline", "resource.service.name", &s("billing")),
        Some(2.0)
    );
    assert_eq!(one("baseline", "resource.service.name", &s("cart")), None);
    let baseline_names: Vec<&LabelValue> = result
        .iter()
        .filter(|s| {
            s.labels[0] == ("__meta_type".to_owned(), s_("baseline")) && s.labels[1].0 == "name"
        })
        .map(|s| &s.labels[1].1)
        .collect();
    assert_eq!(baseline_names, vec![&s("GET /cart"), &s("GET key")]);
    let errors: Vec<&str> = result
        .iter()
        .filter(|s| s.labels[0] == ("__meta_error".to_owned(), s_("__too_many_values__")))
        .map(|s| {
            assert!(s.samples.is_empty() && s.labels[1].1 == LabelValue::Nil);
            s.labels[1].0.as_str()
        })
        .collect();
    assert!(
        errors.contains(&"name")
            && errors.contains(&"resource.service.name")
            && !errors.contains(&"status"),
        "{errors:?}"
    );

    // A window narrows the selection: only r2 (2000 s) is inside [1500 s, 2500 s).
    let windowed = run(
        &format!(
            "{{ }} | compare({{ status = error }}, 10, {}, {})",
            1500 * SECOND,
            2500 * SECOND
        ),
        all,
    );
    let total = |meta: &str| {
        windowed
            .iter()
            .find(|s| {
                s.labels
                    == vec![
                        ("__meta_type".to_owned(), s_(meta)),
                        ("status".to_owned(), LabelValue::Nil),
                    ]
            })
            .map(|s| s.samples[0])
    };
    assert_eq!(total("selection_total"), Some(Some(1.0)));
    assert_eq!(total("baseline_total"), Some(Some(9.0)));
}

/// Issue 10: `{} | compare({status=error}) | topk(10)` panicked ranking compare()'s series, whose
/// `__too_many_values__` markers have no samples. The parser now refuses second stages after
/// compare(), as Tempo does; the accumulator still ranks series of any length.
#[test]
fn ranking_compare_series_does_not_panic() {
    let refused = parse_metrics("{} | compare({status=error}) | topk(10)")
        .expect_err("compare() takes no second stage");
    assert!(refused.to_string().contains("compare()"), "{refused}");
    let mut query = parse_metrics("{ } | compare({ status = error }, 2)").expect("parses");
    query.second_stages.push(SecondStage::TopK(10));
    let result = run_query(&query, Intervals::range(0, 3600 * SECOND, 1000 * SECOND));
    assert!(result.iter().any(|s| s.labels[0]
        == ("__meta_error".to_owned(), s_("__too_many_values__"))
        && s.samples.is_empty()));
    assert!(result
        .iter()
        .any(|s| s.samples.iter().flatten().count() > 0));
}

/// Evaluates an expression the way the query crate does: each query on its own, then every
/// `Binary` node through `combine`, knowing nothing of which operator it is.
fn evaluate_expr(text: &str, intervals: Intervals) -> Vec<MetricsSeries> {
    use andante_traceql::metrics::{combine, Operand};
    use andante_traceql::{parse_metrics_expr, MetricsExpr};
    fn reduce(expr: &MetricsExpr, intervals: Intervals) -> Operand {
        match expr {
            MetricsExpr::Query(query) => Operand::Series(run_query(query, intervals)),
            MetricsExpr::Number(number) => Operand::Number(*number),
            MetricsExpr::Binary { op, lhs, rhs } => {
                combine(*op, reduce(lhs, intervals), reduce(rhs, intervals))
            }
        }
    }
    let expr = parse_metrics_expr(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    match reduce(&expr, intervals) {
        Operand::Series(series) => series,
        Operand::Number(number) => panic!("{text} gave the number {number}"),
    }
}

/// Issue 10: comparisons, ranks and scalar arithmetic on metrics results parse and evaluate
/// (over the fixture: all spans per interval 0, 1, 5, 2, 2; errors 0, 0, 2, 0, 0).
#[test]
fn comparisons_and_ranks_on_metrics_results() {
    let kept = |series: &MetricsSeries| series.samples.clone();
    // On one query, the comparison is the query's own second stage.
    let plain = run("{ } | count_over_time() > 1", thousands());
    let wrapped = evaluate_expr("({ } | count_over_time()) > 1", thousands());
    assert_eq!(wrapped.len(), 1);
    assert_eq!(
        kept(&wrapped[0]),
        vec![None, None, Some(5.0), Some(2.0), Some(2.0)]
    );
    assert_eq!(kept(&wrapped[0]), kept(&plain[0]));
    // Over arithmetic, it filters the result: 0/0 (NaN) and 0 % fail `> 30`, 40 % passes.
    let ratio = evaluate_expr(
        "({ status = error } | count_over_time()) / ({ } | count_over_time()) * 100 > 30",
        thousands(),
    );
    assert_eq!(ratio.len(), 1);
    assert_eq!(ratio[0].samples.len(), 5);
    assert_eq!(
        ratio[0].samples.iter().flatten().collect::<Vec<_>>(),
        vec![&40.0]
    );
    let none_left = evaluate_expr(
        "({ status = error } | count_over_time()) / ({ } | count_over_time()) * 100 > 50",
        thousands(),
    );
    assert!(
        none_left.is_empty(),
        "no sample left, no series: {none_left:?}"
    );
    // Constants fold with TraceQL's integer division: `1 / 2` is 0, so every count passes `> 0` but zero.
    let folded = evaluate_expr("({ } | count_over_time()) > 1 / 2", thousands());
    assert_eq!(
        kept(&folded[0]),
        vec![None, Some(1.0), Some(5.0), Some(2.0), Some(2.0)]
    );
    let scaled = evaluate_expr("2 * 3 + ({ } | count_over_time()) * 10", thousands());
    assert_eq!(
        kept(&scaled[0]),
        vec![Some(6.0), Some(16.0), Some(56.0), Some(26.0), Some(26.0)]
    );
    // A duration threshold is in seconds, as metrics report durations (GetCart's 70 ms).
    let cart = "({ resource.service.name = \"cart\" } | max_over_time(duration))";
    assert_eq!(
        evaluate_expr(&format!("{cart} > 50ms"), thousands())[0].samples[2],
        Some(0.07)
    );
    assert!(evaluate_expr(&format!("{cart} > 70ms"), thousands()).is_empty());
    // A rank after arithmetic ranks the result: at 2000 s cart (3 spans) leads, at 4000 s billing (2).
    let top = evaluate_expr(
        "({ } | count_over_time() by (resource.service.name)) * 2 | topk(1)",
        thousands(),
    );
    let at = |k: usize| {
        top.iter()
            .filter_map(|s| s.samples[k].map(|v| (s.labels[0].1.clone(), v)))
            .collect::<Vec<_>>()
    };
    assert_eq!(at(2), vec![(s("cart"), 6.0)]);
    assert_eq!(at(4), vec![(s("billing"), 4.0)]);
    // Stages apply in order: the two smallest services (orders 1, billing 2), then `> 1`.
    let bottom = evaluate_expr(
        "({ } | count_over_time() by (resource.service.name)) + 0 | bottomk(2) > 1",
        Intervals::instant(0, 4000 * SECOND),
    );
    assert_eq!(
        bottom
            .iter()
            .map(|s| (s.labels[0].1.clone(), s.samples.clone()))
            .collect::<Vec<_>>(),
        vec![(s("billing"), vec![Some(2.0)])]
    );
}

#[test]
fn metrics_expression_parse_rules() {
    use andante_traceql::parse_metrics_expr;
    for (text, threshold) in [
        ("({ } | rate()) > .5", 0.5),
        ("{ } | rate() > -3", -3.0),
        ("{ } | max_over_time(duration) > 10ms", 0.01),
        ("({ } | rate()) >= 7 / 2", 3.0),
    ] {
        let query = parse_metrics(text).or_else(|_| match parse_metrics_expr(text) {
            Ok(andante_traceql::MetricsExpr::Query(query)) => Ok(*query),
            other => Err(format!("{other:?}")),
        });
        let stages = query
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .second_stages;
        assert!(
            matches!(stages.as_slice(), [SecondStage::Filter(_, value)] if *value == threshold),
            "{text}: {stages:?}"
        );
    }
    for (text, message) in [
        ("2 * 3", "arithmetic needs a metrics query"),
        (
            "({ } | rate()) * 10s",
            "durations cannot take part in metrics arithmetic",
        ),
        (
            "({ } | rate()) > (10s * 2)",
            "durations cannot take part in metrics arithmetic",
        ),
        ("({ } | rate()) / (1 / 0)", "division by zero"),
        (
            "({ } | rate()) * (9223372036854775807 + 1)",
            "integer overflow",
        ),
        ("-({ } | rate())", "`-` negates numbers only"),
        ("({ } | rate()) > ({ } | rate())", "compare with a number"),
        ("({ } | rate()) % 10", "unexpected `%`"),
        (
            "({ } | rate(duration)) * 2",
            "expected `)`, found `duration`",
        ),
        (
            "({ } | compare({ status = error })) | topk(2)",
            "compare() cannot be followed",
        ),
        (
            "({ } | compare({ status = error })) + ({ } | rate())",
            "compare() cannot be followed",
        ),
        (
            "{ } | compare({ status = error }) > 1",
            "compare() cannot be followed",
        ),
    ] {
        let error = parse_metrics_expr(text).expect_err(text).to_string();
        assert!(error.contains(message), "{text}: {error}");
    }
}

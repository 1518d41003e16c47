//! The exemplar ring's cost on the ingest path and at query time: 100,000 exemplars (the default
//! ring) appended over 5,000 latency-bucket series, then `query_exemplars` lookups for one
//! operation's buckets and for every series. Prints the median of 7 runs of each.
//! Run: `cargo bench -p andante-tsdb --bench exemplars`.

use std::time::Instant;

use andante_tsdb::exemplars::ExemplarStore;
use andante_tsdb::{Exemplar, Labels, METRIC_NAME};
use promql_parser::label::{MatchOp, Matcher, Matchers};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SERIES: usize = 5_000;
const EXEMPLARS: usize = 100_000;
const RUNS: usize = 7;

fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn main() {
    let series: Vec<Labels> = (0..SERIES)
        .map(|i| {
            Labels::new([
                (
                    METRIC_NAME.to_owned(),
                    "traces_spanmetrics_latency_bucket".to_owned(),
                ),
                ("service".to_owned(), format!("service-{}", i / 250)),
                ("span_name".to_owned(), format!("GET /route/{}", i / 25)),
                (
                    "le".to_owned(),
                    format!("{}", 0.001 * (1 << (i % 25)) as f64),
                ),
            ])
        })
        .collect();
    let exemplars: Vec<(usize, Exemplar)> = (0..EXEMPLARS)
        .map(|i| {
            let exemplar = Exemplar {
                labels: Labels::new([("trace_id", format!("{:032x}", i * 7919))]),
                value: 0.001 * i as f64,
                t_ms: 1_700_000_000_000 + i as i64,
            };
            (i % SERIES, exemplar)
        })
        .collect();

    let mut append_ns = Vec::new();
    let mut store = ExemplarStore::new(EXEMPLARS);
    for _ in 0..RUNS {
        store = ExemplarStore::new(EXEMPLARS);
        let started = Instant::now();
        for (index, exemplar) in &exemplars {
            store.append("t", &series[*index], exemplar.clone());
        }
        append_ns.push(started.elapsed().as_nanos() as f64 / EXEMPLARS as f64);
    }
    println!(
        "append: {:.0} ns per exemplar (median of {RUNS}; {EXEMPLARS} over {SERIES} series)",
        median(append_ns)
    );

    let one_service = Matchers::new(vec![
        Matcher::new(
            MatchOp::Equal,
            METRIC_NAME,
            "traces_spanmetrics_latency_bucket",
        ),
        Matcher::new(MatchOp::Equal, "service", "service-3"),
    ]);
    let everything = Matchers::new(vec![Matcher::new(
        MatchOp::Equal,
        METRIC_NAME,
        "traces_spanmetrics_latency_bucket",
    )]);
    for (what, matchers) in [("one service", &one_service), ("every series", &everything)] {
        let mut runs = Vec::new();
        let mut found = 0;
        for _ in 0..RUNS {
            let started = Instant::now();
            found = store
                .select("t", &[matchers], i64::MIN, i64::MAX)
                .iter()
                .map(|s| s.exemplars.len())
                .sum::<usize>();
            runs.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "select {what}: {:.2} ms for {found} exemplars (median of {RUNS})",
            median(runs)
        );
    }
}

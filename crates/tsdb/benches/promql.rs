//! The read API's dashboard cost: 24 h of generated series at the 15 s collection interval (the
//! span-metrics and service-graph series of a 40-operation, 20-edge system), then Grafana's
//! service-graph and APM-table queries with `$__range` = 24 h and a 24 h `histogram_quantile`
//! range query. Prints the median of 7 runs per query and the store's bytes per sample.
//! Run: `cargo bench -p andante-tsdb --bench promql`.

use std::time::Instant;

use andante_tsdb::promql::{instant_query, range_query};
use andante_tsdb::{Labels, Store, StoreConfig, METRIC_NAME};

/// The same allocator as the `andante` binary (glibc's returns each day's decoded samples to
/// the kernel and faults them back in on the next query; the server never sees that cost).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const STEP_MS: i64 = 15_000;
const DAY_MS: i64 = 24 * 3600 * 1000;
const RUNS: usize = 7;

fn series(name: &str, pairs: &[(&str, String)]) -> Labels {
    Labels::new(
        std::iter::once((METRIC_NAME.to_owned(), name.to_owned()))
            .chain(pairs.iter().map(|(k, v)| (k.to_string(), v.clone()))),
    )
}

/// (labels, per-second rate) of every series; histograms as cumulative buckets.
fn shape() -> Vec<(Labels, f64)> {
    let mut out = Vec::new();
    let latency_bounds: Vec<String> = (0..14)
        .map(|i| format!("{}", 0.002 * f64::from(1u32 << i)))
        .chain(["+Inf".to_owned()])
        .collect();
    for operation in 0..40 {
        let labels = vec![
            ("service", format!("svc-{}", operation % 9)),
            ("span_name", format!("op-{operation}")),
            (
                "span_kind",
                if operation % 2 == 0 {
                    "SPAN_KIND_SERVER"
                } else {
                    "SPAN_KIND_CLIENT"
                }
                .to_owned(),
            ),
            (
                "status_code",
                if operation % 5 == 0 {
                    "STATUS_CODE_ERROR"
                } else {
                    "STATUS_CODE_UNSET"
                }
                .to_owned(),
            ),
        ];
        let rate = 1.0 + operation as f64;
        out.push((series("traces_spanmetrics_calls_total", &labels), rate));
        out.push((
            series("traces_spanmetrics_size_total", &labels),
            rate * 900.0,
        ));
        out.push((series("traces_spanmetrics_latency_count", &labels), rate));
        out.push((
            series("traces_spanmetrics_latency_sum", &labels),
            rate * 0.05,
        ));
        for (i, le) in latency_bounds.iter().enumerate() {
            let mut with_le = labels.clone();
            with_le.push(("le", le.clone()));
            out.push((
                series("traces_spanmetrics_latency_bucket", &with_le),
                rate * ((i + 1) as f64 / 15.0).min(1.0),
            ));
        }
    }
    let edge_bounds: Vec<String> = (0..8)
        .map(|i| format!("{}", 0.1 * f64::from(1u32 << i)))
        .chain(["+Inf".to_owned()])
        .collect();
    for edge in 0..20 {
        let labels = vec![
            ("client", format!("svc-{}", edge % 9)),
            ("server", format!("svc-{}", (edge + 1) % 9)),
            ("connection_type", String::new()),
        ];
        let rate = 2.0 + edge as f64;
        out.push((series("traces_service_graph_request_total", &labels), rate));
        out.push((
            series("traces_service_graph_request_failed_total", &labels),
            rate * 0.01,
        ));
        for histogram in [
            "traces_service_graph_request_server_seconds",
            "traces_service_graph_request_client_seconds",
        ] {
            out.push((series(&format!("{histogram}_count"), &labels), rate));
            out.push((series(&format!("{histogram}_sum"), &labels), rate * 0.2));
            for (i, le) in edge_bounds.iter().enumerate() {
                let mut with_le = labels.clone();
                with_le.push(("le", le.clone()));
                out.push((
                    series(&format!("{histogram}_bucket"), &with_le),
                    rate * ((i + 1) as f64 / 9.0).min(1.0),
                ));
            }
        }
    }
    out
}

fn median_ms(mut work: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[RUNS / 2]
}

fn main() {
    let store = Store::new(StoreConfig::default());
    let shape = shape();
    let end = 1_800_000_000_000i64;
    let start = end - DAY_MS;
    let started = Instant::now();
    let mut t = start;
    while t <= end {
        let elapsed_s = (t - start) as f64 / 1000.0;
        store.append(
            "t",
            shape
                .iter()
                .map(|(labels, rate)| (labels.clone(), t, (rate * elapsed_s).floor())),
        );
        t += STEP_MS;
    }
    let (series_count, bytes) = store.totals();
    let samples = series_count as i64 * (DAY_MS / STEP_MS + 1);
    println!("store: {series_count} series, {samples} samples, {bytes} bytes ({:.2} B/sample), filled in {:.1} s", bytes as f64 / samples as f64, started.elapsed().as_secs_f64());

    let range = "86400s";
    let queries = [
        format!("sum by (client, server) (rate(traces_service_graph_request_server_seconds_sum[{range}]))"),
        format!("sum by (client, server) (rate(traces_service_graph_request_total[{range}]))"),
        format!("sum by (client, server) (rate(traces_service_graph_request_failed_total[{range}]))"),
        format!("sum by (client, server) (rate(traces_service_graph_request_server_seconds_bucket[{range}]))"),
        "group by (client, connection_type, server) (traces_service_graph_request_total)".to_owned(),
        format!("topk(5, sum(rate(traces_spanmetrics_calls_total{{span_kind=\"SPAN_KIND_SERVER\"}}[{range}])) by (span_name))"),
        format!("topk(5, sum(rate(traces_spanmetrics_calls_total{{status_code=\"STATUS_CODE_ERROR\",span_name=~\"op-0|op-10|op-20\"}}[{range}])) by (span_name))"),
        format!("histogram_quantile(.9, sum(rate(traces_spanmetrics_latency_bucket{{span_name=~\"op-0\"}}[{range}])) by (le))"),
    ];
    let mut dashboard = 0.0;
    for query in &queries {
        let ms = median_ms(|| {
            instant_query(&store, "t", query, end).expect("query");
        });
        dashboard += ms;
        println!("{ms:>9.2} ms  instant  {query}");
    }
    println!("{dashboard:>9.2} ms  the whole service-graph + APM dashboard (sum of medians)");
    let whole_day = "sum(count_over_time(traces_spanmetrics_latency_bucket[1d]))";
    let ms = median_ms(|| {
        instant_query(&store, "t", whole_day, end).expect("query");
    });
    println!("{ms:>9.2} ms  instant  {whole_day}  (reads every bucket sample of the day)");
    for query in [
        "sum(rate(traces_spanmetrics_latency_bucket[5m]))",
        "sum by (le, service) (rate(traces_spanmetrics_latency_bucket[5m]))",
    ] {
        let ms = median_ms(|| {
            range_query(&store, "t", query, start, end, 300_000).expect("range");
        });
        println!("{ms:>9.2} ms  range 24h step 5m  {query}");
    }
    let histogram = "histogram_quantile(0.99, sum by (le, service) (rate(traces_spanmetrics_latency_bucket[5m])))";
    let ms = median_ms(|| {
        range_query(&store, "t", histogram, start, end, 300_000).expect("range");
    });
    println!("{ms:>9.2} ms  range 24h step 5m  {histogram}");
}

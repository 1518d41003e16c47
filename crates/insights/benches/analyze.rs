//! How long one analysis takes: a 30-minute window of 50k spans (the RCA target, ≤ 1 s)
//! over a four-service chain with a database, one of them slower for the last third. Prints the
//! median and spread of 7 runs of `analyze` + `rca` + `graph`. Then continuous insights over a
//! 5-minute window of 600k spans (2,000 spans/s): the fold's cost per span as spans are offered,
//! and the median of 7 evaluations of the filled window (assertions + rca, as the server runs).
//! Run: `cargo bench -p andante-insights --bench analyze`.

use std::time::Instant;

use andante_insights::{analyze, Continuous, SpanKind, SpanRecord};

const WINDOW_NANOS: u64 = 30 * 60 * 1_000_000_000;
const LIVE_WINDOW_NANOS: u64 = 5 * 60 * 1_000_000_000;
const START: u64 = 1_800_000_000_000_000_000;

/// A small deterministic generator (xorshift) so the bench needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn jitter_ms(&mut self, base: u64) -> u64 {
        (base + self.next() % (base / 2 + 1)) * 1_000_000
    }
}

fn window(count: usize, window_nanos: u64) -> Vec<SpanRecord> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let services = ["gateway", "orders", "inventory", "pricing"];
    let mut spans = Vec::with_capacity(count);
    let mut trace = 0u64;
    while spans.len() < count {
        trace += 1;
        let start = START + (trace * 7_919_000_000) % window_nanos;
        let slow = start > START + window_nanos * 2 / 3;
        let mut trace_id = [0u8; 16];
        trace_id[8..].copy_from_slice(&trace.to_be_bytes());
        let mut parent: Option<[u8; 8]> = None;
        let mut at = start;
        let mut span_no = 0u8;
        let mut depth_ms = 40u64;
        for (level, service) in services.iter().enumerate() {
            for kind in [SpanKind::Server, SpanKind::Client] {
                if level == services.len() - 1 && kind == SpanKind::Client {
                    break;
                }
                span_no += 1;
                let mut span_id = [0u8; 8];
                span_id[0] = span_no;
                span_id[1..].copy_from_slice(&trace.to_be_bytes()[1..]);
                let extra = if slow && *service == "inventory" {
                    300
                } else {
                    0
                };
                let duration = rng.jitter_ms(depth_ms + extra);
                spans.push(SpanRecord {
                    trace_id,
                    span_id,
                    parent_id: parent,
                    service: service.to_string(),
                    name: format!("{service} op"),
                    kind,
                    start_nanos: at,
                    end_nanos: at + duration,
                    instance: Some(format!("{service}-{}", trace % 3)),
                    node: Some(format!("node-{}", trace % 2)),
                    ..Default::default()
                });
                parent = Some(span_id);
                at += 1_000_000;
                depth_ms = depth_ms.saturating_sub(8).max(5);
            }
        }
    }
    spans
}

fn median(mut runs: Vec<f64>) -> (f64, f64, f64) {
    runs.sort_by(f64::total_cmp);
    (runs[runs.len() / 2], runs[0], runs[runs.len() - 1])
}

fn continuous() {
    let mut spans = window(600_000, LIVE_WINDOW_NANOS);
    spans.sort_by_key(|span| span.end_nanos);
    let end = START + LIVE_WINDOW_NANOS;
    let mut live = Continuous::new(LIVE_WINDOW_NANOS, 5_000_000_000);
    live.seed("bench", Vec::new());
    let count = spans.len();
    let started = Instant::now();
    let mut batch = Vec::with_capacity(100);
    for span in spans {
        let arrived = span.end_nanos;
        batch.push(span);
        if batch.len() == 100 {
            live.offer("bench", std::mem::take(&mut batch), arrived);
        }
    }
    live.offer("bench", batch, end);
    let fold_nanos = started.elapsed().as_nanos() as f64 / count as f64;
    let mut runs = Vec::new();
    for round in 0..7 {
        let started = Instant::now();
        let (analysis, _) = live.analyze("bench", end + 6_000_000_000 + round);
        let answer = (analysis.assertions(None), analysis.rca(None));
        runs.push(started.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(answer);
    }
    let size = live.size("bench");
    let (mid, low, high) = median(runs);
    println!(
        "continuous insights, {count} spans over 5 min: fold {fold_nanos:.0} ns/span; evaluation median {mid:.1} ms (min {low:.1}, max {high:.1}, 7 runs); {} samples in {} cells; the fold holds ~{:.1} MiB ({:.0} B/span)",
        size.samples, size.cells, size.heap_bytes as f64 / 1048576.0, size.heap_bytes as f64 / count as f64
    );
}

fn main() {
    let spans = window(50_000, WINDOW_NANOS);
    let mut runs = Vec::new();
    for _ in 0..7 {
        let input = spans.clone();
        let started = Instant::now();
        let analysis = analyze(input, START, START + WINDOW_NANOS);
        let rca = analysis.rca(None);
        let graph = analysis.graph();
        runs.push(started.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box((rca, graph));
    }
    let (mid, low, high) = median(runs);
    println!("insights analyze+rca+graph, {} spans over 30 min: median {mid:.1} ms (min {low:.1}, max {high:.1}, 7 runs)", spans.len());
    continuous();
}

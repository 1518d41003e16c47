//! PromQL over a small fixed store: `instant_query` and `range_query` with query text and times
//! from the input. Errors are answers; a panic, a hang or a runaway allocation is a bug.
//!
//! Input layout: the query text runs up to the first NUL byte (a plain text file is a query with
//! default times); the bytes after it choose the times:
//! `mode: u8 | instant: i64 | start: i64 | end: i64 | step: i64` (little endian, missing bytes
//! are zero). `mode` even: times are offsets in milliseconds around the store's hour of data,
//! odd: raw milliseconds. Either way they are clamped to what the HTTP API accepts (±9.2e12 s,
//! step in (0, 9.2e12 s]), because `range_query` relies on its caller for that bound.

#![no_main]

use std::sync::OnceLock;

use andante_tsdb::promql::{instant_query, range_query, QueryValue};
use andante_tsdb::{Labels, Store, StoreConfig, METRIC_NAME};
use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

const STEP_MS: i64 = 15_000;
const HOUR_MS: i64 = 3_600_000;
/// The API's bound on times and steps (`api/src/prometheus.rs`, `MAX_TIME_SECS`), in ms.
const MAX_TIME_MS: i64 = 9_200_000_000_000_000;
const TENANT: &str = "t";

fn labels(name: &str, pairs: &[(&str, &str)]) -> Labels {
    Labels::new(std::iter::once((METRIC_NAME, name)).chain(pairs.iter().copied()))
}

/// Counters, histogram buckets and gauges sampled every 15 s over [0, 1 h], as the generator
/// writes them, plus a gauge with NaN/±Inf and a series with a gap.
fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        let store = Store::new(StoreConfig::default());
        let counters: Vec<(Labels, f64)> = vec![
            (
                labels(
                    "traces_spanmetrics_calls_total",
                    &[
                        ("service", "a"),
                        ("span_name", "GET /"),
                        ("span_kind", "SPAN_KIND_SERVER"),
                        ("status_code", "STATUS_CODE_UNSET"),
                    ],
                ),
                1.0,
            ),
            (
                labels(
                    "traces_spanmetrics_calls_total",
                    &[
                        ("service", "b"),
                        ("span_name", "query"),
                        ("span_kind", "SPAN_KIND_CLIENT"),
                        ("status_code", "STATUS_CODE_ERROR"),
                    ],
                ),
                0.5,
            ),
            (
                labels(
                    "traces_service_graph_request_total",
                    &[("client", "a"), ("server", "b"), ("connection_type", "")],
                ),
                2.0,
            ),
            (
                labels(
                    "traces_service_graph_request_failed_total",
                    &[("client", "user"), ("server", "a"), ("connection_type", "virtual_node")],
                ),
                0.2,
            ),
        ];
        let mut series = counters;
        for (le, cumulative) in [("0.1", 0.5), ("0.2", 0.8), ("0.4", 1.0), ("+Inf", 1.0)] {
            series.push((
                labels(
                    "traces_spanmetrics_latency_bucket",
                    &[("service", "a"), ("span_name", "GET /"), ("le", le)],
                ),
                cumulative,
            ));
        }
        let mut samples: Vec<(Labels, i64, f64)> = Vec::new();
        for (labels, per_second) in &series {
            for i in 0..=HOUR_MS / STEP_MS {
                let t = i * STEP_MS;
                // A counter reset half-way through the first series.
                let value = if i > 120 && *per_second == 1.0 {
                    (t - 120 * STEP_MS) as f64 / 1000.0
                } else {
                    per_second * t as f64 / 1000.0
                };
                samples.push((labels.clone(), t, value));
            }
        }
        let odd_gauge = labels("odd_gauge", &[("kind", "special \"values\"\n")]);
        let specials = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 1e308, -1e-308];
        for i in 0..=HOUR_MS / STEP_MS {
            samples.push((odd_gauge.clone(), i * STEP_MS, specials[i as usize % specials.len()]));
        }
        // A gauge with a 20-minute gap (longer than the 5-minute lookback).
        let gappy = labels("gappy_gauge", &[("service", "a")]);
        for i in (0..=HOUR_MS / STEP_MS).filter(|i| !(80..160).contains(i)) {
            samples.push((gappy.clone(), i * STEP_MS, (i % 7) as f64 - 3.0));
        }
        store.append(TENANT, samples);
        store
    })
}

struct Times {
    instant_ms: i64,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
}

fn times(parameters: &[u8]) -> Times {
    let mut u = Unstructured::new(parameters);
    let mode: u8 = u.arbitrary().unwrap_or(0);
    let mut next = || -> i64 { u.arbitrary().unwrap_or(0) };
    let (instant, start, end, step) = (next(), next(), next(), next());
    let clamp = |t: i64| t.clamp(-MAX_TIME_MS, MAX_TIME_MS);
    if mode % 2 == 1 {
        return Times {
            instant_ms: clamp(instant),
            start_ms: clamp(start),
            end_ms: clamp(end),
            step_ms: step.clamp(1, MAX_TIME_MS),
        };
    }
    // Offsets of at most ±2^20 ms around the store's data; the step at least 1 ms.
    let offset = |value: i64| value % (1 << 20);
    Times {
        instant_ms: HOUR_MS + offset(instant),
        start_ms: offset(start),
        end_ms: HOUR_MS + offset(end),
        step_ms: (STEP_MS + offset(step)).max(1),
    }
}

fn check(value: QueryValue) {
    // Everything the JSON encoder reads.
    let text = match &value {
        QueryValue::Scalar(t, v) => format!("{t} {v}"),
        QueryValue::String(t, s) => format!("{t} {s}"),
        QueryValue::Vector(t, samples) => {
            let mut text = format!("{t}");
            for sample in samples {
                text.push_str(&format!("{} {}", sample.labels, sample.value));
            }
            text
        }
        QueryValue::Matrix(series) => {
            let mut text = String::new();
            for one in series {
                text.push_str(&format!("{} {:?}", one.labels, one.samples));
                assert!(
                    one.samples.windows(2).all(|pair| pair[0].0 < pair[1].0),
                    "range result samples out of time order for {}",
                    one.labels
                );
            }
            text
        }
    };
    std::hint::black_box(text);
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|byte| *byte == 0).unwrap_or(data.len());
    let Ok(query) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    if query.len() > 4096 {
        return;
    }
    let times = times(data.get(split + 1..).unwrap_or_default());
    let store = store();
    match instant_query(store, TENANT, query, times.instant_ms) {
        Ok(value) => check(value),
        Err(error) => {
            std::hint::black_box(format!("{error} {:?}", error.kind));
        }
    }
    match range_query(
        store,
        TENANT,
        query,
        times.start_ms,
        times.end_ms,
        times.step_ms,
    ) {
        Ok(value) => check(value),
        Err(error) => {
            std::hint::black_box(format!("{error} {:?}", error.kind));
        }
    }
});

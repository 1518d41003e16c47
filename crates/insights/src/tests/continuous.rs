//! Continuous folding against the on-demand analysis: the same traces, arriving in pieces and
//! evaluated every 15 s as they come, must give the answer a request over the window gives.

use super::sim::{Fault, Sim, MS, WINDOW_NANOS, WINDOW_START};
use crate::{analyze, Analysis, Continuous, SpanRecord};

const SECOND: u64 = 1_000_000_000;

/// The simulated window moved onto the continuous grid (cells of window / 30 from the epoch).
fn aligned(fault: Fault, seed: u64) -> (Vec<SpanRecord>, u64, u64) {
    let width = WINDOW_NANOS / 30;
    let shift = (width - WINDOW_START % width) % width;
    let mut records = Sim::run(fault, seed);
    for record in &mut records {
        record.start_nanos += shift;
        record.end_nanos += shift;
    }
    (
        records,
        WINDOW_START + shift,
        WINDOW_START + shift + WINDOW_NANOS,
    )
}

/// Every answer an analysis gives, as JSON.
fn answers(analysis: &Analysis) -> serde_json::Value {
    serde_json::json!({
        "assertions": analysis.assertions(None),
        "rca": analysis.rca(None),
        "graph": analysis.graph(),
    })
}

/// Feeds `records` as a receiver would see them: each span when it ends, in batches, with an
/// evaluation every 15 s of span time; returns the last evaluation at `end`. The simulated
/// traces last well under a second and the last one starts 2 s before `end`, so with a 1 s
/// settle time every trace is folded whole and all of them by `end`.
fn fed_live(records: &[SpanRecord], end: u64) -> (Analysis, u64, Continuous) {
    fed_live_checking(records, end, |_, _| {})
}

/// [`fed_live`], showing every evaluation on the way to `check` with its time.
fn fed_live_checking(
    records: &[SpanRecord],
    end: u64,
    check: impl FnMut(&Analysis, u64),
) -> (Analysis, u64, Continuous) {
    let mut live = Continuous::new(WINDOW_NANOS, SECOND);
    let (analysis, start) = feed(&mut live, records, end, check);
    (analysis, start, live)
}

/// Feeds `records` to `live` as [`fed_live`] describes; returns the evaluation at `end`.
fn feed(
    live: &mut Continuous,
    records: &[SpanRecord],
    end: u64,
    mut check: impl FnMut(&Analysis, u64),
) -> (Analysis, u64) {
    live.seed("t", Vec::new());
    let mut arriving = records.to_vec();
    arriving.sort_by_key(|record| (record.end_nanos, record.span_id));
    let mut next_evaluation = arriving[0].end_nanos + 15 * SECOND;
    for batch in arriving.chunks(37) {
        let now = batch[batch.len() - 1].end_nanos;
        live.offer("t", batch.to_vec(), now);
        if now >= next_evaluation {
            check(&live.analyze("t", now).0, now);
            next_evaluation = now + 15 * SECOND;
        }
    }
    live.analyze("t", end)
}

#[test]
fn folding_as_spans_arrive_gives_the_on_demand_answer() {
    let faults = [
        Fault::None,
        Fault::Latency("checkout", 60),
        Fault::Errors("catalog", 0.2),
        Fault::EdgeDelay("frontend", "catalog", 50),
        Fault::ExternalDown,
        Fault::InstanceSlow("payments-1", 100),
        Fault::BadDeploy(0.2),
        Fault::TrafficSpike,
    ];
    for fault in faults {
        let (records, start, end) = aligned(fault.clone(), 31);
        let on_demand = answers(&analyze(records.clone(), start, end));
        let (live, live_start, _) = fed_live(&records, end);
        assert_eq!(
            live_start, start,
            "{fault:?}: the window starts on the grid"
        );
        let live = answers(&live);
        assert!(
            on_demand["assertions"]
                .as_array()
                .is_some_and(|list| !list.is_empty())
                || matches!(fault, Fault::None | Fault::TrafficSpike),
            "{fault:?}: the fault shows"
        );
        assert_eq!(live, on_demand, "{fault:?}");
    }
}

/// A server that starts with the load: every evaluation's window reaches back before the
/// tenant's first span for the first 30 minutes. Those intervals are no history, so the
/// chronic errors and the ramp-up are not compared with an empty past.
#[test]
fn a_fresh_start_is_no_incident_while_the_window_fills() {
    for seed in [3, 17, 31, 5, 8, 11, 13, 21, 29, 37, 41, 43] {
        let (records, _, end) = aligned(Fault::None, seed);
        let mut evaluations = 0;
        fed_live_checking(&records, end, |analysis, now| {
            evaluations += 1;
            let rca = analysis.rca(None);
            assert!(
                !rca.incident,
                "seed {seed}, {} s after the first span: {rca:#?}",
                (now - records[0].start_nanos) / SECOND
            );
        });
        assert!(evaluations > 90, "{evaluations}");
    }
}

/// Once a third of the window holds history, a fault after a fresh start is found against
/// it, on request as continuously.
#[test]
fn a_fault_soon_after_a_fresh_start_is_found_once_a_baseline_exists() {
    let (records, start, _) = aligned(Fault::Errors("catalog", 0.2), 31);
    let onset = super::sim::ONSET + (start - WINDOW_START);
    // Ten minutes of history before the fault (the baseline's third is 10 minutes), and
    // four minutes of fault; the window reaches 16 minutes back before the first span.
    let end = onset + 4 * 60 * SECOND;
    let seen: Vec<SpanRecord> = records
        .iter()
        .filter(|record| record.end_nanos < end - 2 * SECOND)
        .cloned()
        .collect();
    let on_demand = analyze(seen.clone(), end - WINDOW_NANOS, end).rca(None);
    let (live, _, _) = fed_live(&seen, end);
    for rca in [on_demand, live.rca(None)] {
        assert!(rca.incident, "{rca:#?}");
        assert_eq!(rca.causes[0].service, "catalog", "{rca:#?}");
    }
}

/// An outage longer than two thirds of the live window: the window's own baseline is all
/// outage by then, so the baselines learned when it began are kept while it lasts, and the
/// onset stays where it was although it has left the window.
#[test]
fn an_incident_longer_than_the_window_stays_an_incident() {
    let (records, start, end) = aligned(Fault::Errors("catalog", 0.6), 31);
    let onset = super::sim::ONSET + (start - WINDOW_START);
    let window = 6 * 60 * SECOND;
    let mut live = Continuous::new(window, SECOND);
    let (analysis, _) = feed(&mut live, &records, end, |_, _| {});
    let rca = analysis.rca(None);
    assert!(rca.incident, "{rca:#?}");
    assert_eq!(rca.causes[0].service, "catalog", "{rca:#?}");
    let reported: u64 = rca
        .onset
        .as_deref()
        .unwrap_or_default()
        .parse()
        .unwrap_or(0);
    assert!(
        reported.abs_diff(onset) <= window / 30,
        "{reported} vs {onset}"
    );
    // That onset lies before the window: only the held baselines can have given it.
    assert!(reported < end - window);
    // Once the outage is over and the window holds only recovered traffic, it is released.
    let recovered: Vec<SpanRecord> = super::sim::Sim::run(Fault::None, 32)
        .into_iter()
        .map(|mut record| {
            let shift = end - WINDOW_START + SECOND;
            record.start_nanos += shift;
            record.end_nanos += shift;
            record
        })
        .filter(|record| record.end_nanos < end + 10 * 60 * SECOND)
        .collect();
    let (analysis, _) = feed(&mut live, &recovered, end + 10 * 60 * SECOND, |_, _| {});
    assert!(!analysis.rca(None).incident, "{:#?}", analysis.rca(None));
}

fn server_span(trace: u64, service: &str, start: u64) -> SpanRecord {
    let mut trace_id = [0; 16];
    trace_id[..8].copy_from_slice(&trace.to_be_bytes());
    SpanRecord {
        trace_id,
        span_id: [1; 8],
        service: service.into(),
        name: "GET /".into(),
        kind: crate::SpanKind::Server,
        start_nanos: start,
        end_nanos: start + 5 * MS,
        ..SpanRecord::default()
    }
}

#[test]
fn what_leaves_the_window_is_forgotten() {
    let (records, _, end) = aligned(Fault::None, 5);
    let (_, _, mut live) = fed_live(&records, end);
    // Pods come and go: 100 short-lived services.
    let churn: Vec<SpanRecord> = (0..100)
        .map(|n| server_span(1_000 + n, &format!("job-{n}"), end - 30 * SECOND))
        .collect();
    live.offer("t", churn, end - 20 * SECOND);
    live.analyze("t", end);
    let before = live.size("t");
    assert!(before.entities > 200 && before.cells > 200, "{before:?}");
    // A window later only one new service talks: everything else has left.
    let later = end + WINDOW_NANOS + 60 * SECOND;
    live.offer(
        "t",
        vec![server_span(1, "lone", later - 30 * SECOND)],
        later - 20 * SECOND,
    );
    let (analysis, _) = live.analyze("t", later);
    let after = live.size("t");
    assert_eq!(after.entities, 2, "service:lone and operation:lone:GET /");
    assert_eq!(after.cells, 2, "{after:?}");
    let ids: Vec<String> = analysis
        .graph()
        .entities
        .iter()
        .map(|e| e.id.clone())
        .collect();
    assert_eq!(ids, ["operation:lone:GET /", "service:lone"]);
}

#[test]
fn a_trace_is_folded_once_it_has_settled() {
    let mut live = Continuous::new(WINDOW_NANOS, 5 * SECOND);
    live.seed("t", Vec::new());
    let now = 1_800_000_000 * SECOND;
    let span = |id: u8, parent: Option<u8>, kind| SpanRecord {
        trace_id: [3; 16],
        span_id: [id; 8],
        parent_id: parent.map(|parent| [parent; 8]),
        service: if id == 2 { "api" } else { "web" }.into(),
        name: "GET /".into(),
        kind,
        start_nanos: now - 20 * SECOND,
        end_nanos: now - 19 * SECOND,
        ..SpanRecord::default()
    };
    live.offer(
        "t",
        vec![span(2, Some(3), crate::SpanKind::Server)],
        now - 4 * SECOND,
    );
    live.offer(
        "t",
        vec![
            span(3, Some(1), crate::SpanKind::Client),
            span(1, None, crate::SpanKind::Server),
        ],
        now - 2 * SECOND,
    );
    let (analysis, _) = live.analyze("t", now);
    assert_eq!(live.size("t").pending_spans, 3, "quiet for 2 s only");
    assert!(analysis.graph().entities.is_empty());
    let (analysis, _) = live.analyze("t", now + 3 * SECOND);
    assert_eq!(live.size("t").pending_spans, 0);
    let entities: Vec<String> = analysis
        .graph()
        .entities
        .iter()
        .map(|e| e.id.clone())
        .collect();
    assert!(
        entities.contains(&"service:web".to_string()),
        "{entities:?}"
    );
    assert!(
        analysis.graph().relations.iter().any(|r| r.kind == "CALLS"),
        "folded as one trace: web calls api"
    );
}

#[test]
fn a_seed_skips_the_traces_that_came_in_live() {
    let (records, start, end) = aligned(Fault::Errors("catalog", 0.2), 8);
    let on_demand = answers(&analyze(records.clone(), start, end));
    // Half the traces came in live before the read from storage finished; the read has all.
    let mut live = Continuous::new(WINDOW_NANOS, 5 * SECOND);
    assert!(live.needs_seed("t"));
    let (early, _): (Vec<SpanRecord>, Vec<SpanRecord>) = records
        .iter()
        .cloned()
        .partition(|record| record.trace_id[7] % 2 == 0);
    live.offer("t", early, end);
    live.seed("t", records.clone());
    assert!(!live.needs_seed("t"));
    let (analysis, _) = live.analyze("t", end + 5 * SECOND);
    let mut live_answers = answers(&analysis);
    // The window ends 5 s later on the live side: compare what does not depend on its end.
    live_answers["graph"] = serde_json::Value::Null;
    let mut expected = on_demand;
    expected["graph"] = serde_json::Value::Null;
    assert_eq!(
        live_answers["assertions"].as_array().map(Vec::len),
        expected["assertions"].as_array().map(Vec::len)
    );
    assert_eq!(
        live_answers["rca"]["causes"][0]["name"],
        expected["rca"]["causes"][0]["name"]
    );
}

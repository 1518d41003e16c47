//! What the target costs: 10,000 rules (1,000 groups of 10: alerting thresholds on a
//! service's request rate, error-ratio recording rules, instant selectors) evaluated at one
//! timestamp over 2,000 counter series holding an hour of 15 s samples. Prints the median of 5
//! evaluation rounds and the share of one core that rounds every 15 s would take.
//! Run: `cargo bench -p andante-rules --bench evaluate`.

use std::sync::Arc;
use std::time::Instant;

use andante_rules::{parse_rule_file, EvalSettings, GroupState, SampleSink};
use andante_tsdb::{AppendMode, Labels, SeriesSamples, Store, StoreConfig};

const SERVICES: usize = 100;
const INSTANCES: usize = 10;
const HOUR_MS: i64 = 3_600_000;
const STEP_MS: i64 = 15_000;
const START_MS: i64 = 1_800_000_000_000;

struct StoreSink<'a>(&'a Store);

impl SampleSink for StoreSink<'_> {
    fn append(&mut self, tenant: &str, batch: Vec<SeriesSamples>) {
        self.0.append_series(tenant, batch, AppendMode::Replay);
    }
}

fn store() -> Store {
    let store = Store::new(StoreConfig {
        retention_ms: 10 * HOUR_MS,
        max_series_per_tenant: 1_000_000,
        ..StoreConfig::default()
    });
    let mut batch = Vec::new();
    for service in 0..SERVICES {
        for instance in 0..INSTANCES {
            for (code, per_step) in [("200", 150.0), ("500", 3.0)] {
                let labels = Labels::new([
                    ("__name__", "http_requests_total".to_owned()),
                    ("service", format!("s{service}")),
                    ("instance", format!("i{instance}")),
                    ("code", code.to_owned()),
                ]);
                let samples = (0..=HOUR_MS / STEP_MS)
                    .map(|k| {
                        (
                            START_MS + k * STEP_MS,
                            per_step * k as f64 * (1.0 + service as f64 / 100.0),
                        )
                    })
                    .collect();
                batch.push(SeriesSamples { labels, samples });
            }
        }
    }
    store.append_series("bench", batch, AppendMode::Replay);
    store
}

fn rule_groups() -> Vec<Arc<andante_rules::RuleGroup>> {
    let mut text = String::from("groups:\n");
    for group in 0..1_000 {
        text.push_str(&format!("- name: g{group}\n  rules:\n"));
        for rule in 0..10 {
            let service = (group * 10 + rule) % SERVICES;
            match rule % 3 {
                0 => text.push_str(&format!(
                    "  - alert: HighRate{group}_{rule}\n    expr: sum by (service) (rate(http_requests_total{{service=\"s{service}\"}}[5m])) > 50\n    for: 5m\n    annotations: {{summary: '{{{{ $labels.service }}}} at {{{{ $value | humanize }}}}'}}\n"
                )),
                1 => text.push_str(&format!(
                    "  - record: service:errors:ratio_{group}_{rule}\n    expr: sum by (service) (rate(http_requests_total{{service=\"s{service}\", code=\"500\"}}[5m])) / sum by (service) (rate(http_requests_total{{service=\"s{service}\"}}[5m]))\n"
                )),
                _ => text.push_str(&format!(
                    "  - alert: Reset{group}_{rule}\n    expr: http_requests_total{{service=\"s{service}\", instance=\"i{}\"}} < 0\n",
                    rule % INSTANCES
                )),
            }
        }
    }
    parse_rule_file("bench.yaml", &text)
        .expect("the bench's rules are valid")
        .into_iter()
        .map(Arc::new)
        .collect()
}

fn main() {
    let store = store();
    let groups = rule_groups();
    let rules: usize = groups.iter().map(|group| group.rules.len()).sum();
    let settings = EvalSettings::new(Default::default(), String::new(), 0);
    let mut states: Vec<GroupState> = groups
        .iter()
        .map(|group| GroupState::new("bench", group.clone(), STEP_MS))
        .collect();
    let mut rounds = Vec::new();
    for round in 0..5 {
        let t = START_MS + HOUR_MS - 4 * STEP_MS + round * STEP_MS;
        let started = Instant::now();
        let mut failures = 0;
        for state in &mut states {
            failures += state.evaluate(&store, &settings, t, &mut StoreSink(&store));
        }
        assert_eq!(failures, 0);
        rounds.push(started.elapsed().as_secs_f64());
    }
    rounds.sort_by(f64::total_cmp);
    let median = rounds[rounds.len() / 2];
    println!(
        "{rules} rules over {} series: median round {:.1} ms (min {:.1}, max {:.1}); every 15 s that is {:.1} % of one core",
        SERVICES * INSTANCES * 2,
        median * 1e3,
        rounds[0] * 1e3,
        rounds[rounds.len() - 1] * 1e3,
        median / 15.0 * 100.0
    );
}

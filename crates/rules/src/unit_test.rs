//! `andante rules test`: promtool's rule unit-test files (`rule_files`, `evaluation_interval`,
//! `tests` with `input_series` in the expanding notation, `alert_rule_test`,
//! `promql_expr_test`), evaluated with Andante's own rule engine over a private store and a
//! controlled clock: from time 0 every evaluation interval up to the last `eval_time`, as
//! promtool steps. The same file can then be checked by `promtool test rules`, which is how the
//! engine is compared with Prometheus' (see `tests/blackbox/test_rules_diff.py`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use andante_tsdb::promql::{self, QueryValue};
use andante_tsdb::{AppendMode, Labels, SeriesSamples, Store, StoreConfig, METRIC_NAME, STALE_NAN};
use promql_parser::parser::Expr;
use serde::{Deserialize, Serialize};

use crate::alert::AlertState;
use crate::file::{parse_duration_ms, parse_rule_file, RuleKind};
use crate::group::{EvalSettings, GroupState, SampleSink};
use crate::RulesError;

#[derive(Deserialize)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default)]
    evaluation_interval: Option<String>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Deserialize)]
struct TestGroup {
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct InputSeries {
    series: String,
    values: String,
}

#[derive(Deserialize)]
struct AlertTest {
    eval_time: String,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpectedAlert>,
}

#[derive(Deserialize, Serialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpectedAlert {
    #[serde(default)]
    pub exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub exp_annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct ExprTest {
    expr: String,
    eval_time: String,
    #[serde(default)]
    exp_samples: Vec<ExpectedSample>,
}

#[derive(Deserialize, Serialize, Debug, Clone)]
pub struct ExpectedSample {
    #[serde(default)]
    pub labels: String,
    pub value: f64,
}

/// What Andante computed for one check of a test file.
#[derive(Serialize, Debug)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    Alerts {
        test: usize,
        eval_time: String,
        alertname: String,
        got: Vec<ExpectedAlert>,
        expected: Vec<ExpectedAlert>,
    },
    Expr {
        test: usize,
        eval_time: String,
        expr: String,
        got: Vec<ExpectedSample>,
        expected: Vec<ExpectedSample>,
        error: Option<String>,
    },
}

impl Outcome {
    pub fn passed(&self) -> bool {
        match self {
            Outcome::Alerts { got, expected, .. } => {
                let mut expected = expected.clone();
                expected.sort();
                *got == expected
            }
            Outcome::Expr {
                got,
                expected,
                error,
                ..
            } => {
                if error.is_some() || got.len() != expected.len() {
                    return false;
                }
                let key = |sample: &ExpectedSample| series_labels(&sample.labels).ok();
                let mut wanted: Vec<(Option<Labels>, f64)> =
                    expected.iter().map(|s| (key(s), s.value)).collect();
                wanted.sort_by(|a, b| a.0.cmp(&b.0));
                let mut have: Vec<(Option<Labels>, f64)> =
                    got.iter().map(|s| (key(s), s.value)).collect();
                have.sort_by(|a, b| a.0.cmp(&b.0));
                wanted.iter().zip(&have).all(|((l1, v1), (l2, v2))| {
                    l1 == l2
                        && (v1 == v2
                            || (v1.is_nan() && v2.is_nan())
                            || ((v1 - v2).abs() <= 1e-6 * v1.abs().max(v2.abs())))
                })
            }
        }
    }
}

struct StoreSink<'a>(&'a Store);

impl SampleSink for StoreSink<'_> {
    fn append(&mut self, tenant: &str, batch: Vec<SeriesSamples>) {
        self.0.append_series(tenant, batch, AppendMode::Replay);
    }
}

const TENANT: &str = "test";

/// Runs every test of a promtool unit-test file; rule files are found relative to it.
pub fn run_test_file(path: &Path) -> Result<Vec<Outcome>, RulesError> {
    let invalid = |message: String| RulesError::Invalid {
        message: format!("{}: {message}", path.display()),
    };
    let text = std::fs::read_to_string(path).map_err(|error| invalid(error.to_string()))?;
    let file: TestFile = serde_yaml::from_str(&text).map_err(|error| invalid(error.to_string()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut groups = Vec::new();
    for rule_file in &file.rule_files {
        let rule_path = base.join(rule_file);
        let rule_text = std::fs::read_to_string(&rule_path)
            .map_err(|error| invalid(format!("{}: {error}", rule_path.display())))?;
        groups.extend(parse_rule_file(rule_file, &rule_text)?);
    }
    if !file.group_eval_order.is_empty() {
        groups.sort_by_key(|group| {
            file.group_eval_order
                .iter()
                .position(|name| *name == group.name)
                .unwrap_or(usize::MAX)
        });
    }
    let evaluation_ms = match &file.evaluation_interval {
        Some(text) => parse_duration_ms(text).map_err(&invalid)?,
        None => 60_000,
    };
    let groups: Vec<Arc<_>> = groups.into_iter().map(Arc::new).collect();
    let mut outcomes = Vec::new();
    for (index, test) in file.tests.iter().enumerate() {
        let context =
            |message: String| invalid(format!("test {} {:?}: {message}", index + 1, test.name));
        outcomes.extend(run_test(index, test, &groups, evaluation_ms).map_err(context)?);
    }
    Ok(outcomes)
}

fn run_test(
    index: usize,
    test: &TestGroup,
    groups: &[Arc<crate::file::RuleGroup>],
    evaluation_ms: i64,
) -> Result<Vec<Outcome>, String> {
    let store = Store::new(StoreConfig {
        retention_ms: i64::MAX / 4,
        max_series_per_tenant: usize::MAX,
        out_of_order_window_ms: i64::MAX / 4,
        ..StoreConfig::default()
    });
    let interval_ms = match &test.interval {
        Some(text) => parse_duration_ms(text)?,
        None => evaluation_ms,
    };
    let mut batch = Vec::new();
    for input in &test.input_series {
        let labels = series_labels(&input.series)?;
        let values = expand_values(&input.values)
            .map_err(|error| format!("series {:?}: {error}", input.series))?;
        let samples: Vec<(i64, f64)> = values
            .into_iter()
            .enumerate()
            .filter_map(|(step, value)| value.map(|v| (step as i64 * interval_ms, v)))
            .collect();
        batch.push(SeriesSamples { labels, samples });
    }
    store.append_series(TENANT, batch, AppendMode::Replay);
    let settings = EvalSettings::new(test.external_labels.clone(), test.external_url.clone(), 0);
    let mut states: Vec<GroupState> = groups
        .iter()
        .map(|group| GroupState::new(TENANT, group.clone(), evaluation_ms))
        .collect();
    let mut alert_times: Vec<(i64, &AlertTest)> = test
        .alert_rule_test
        .iter()
        .map(|check| parse_duration_ms(&check.eval_time).map(|t| (t, check)))
        .collect::<Result<_, _>>()?;
    alert_times.sort_by_key(|(t, _)| *t);
    let mut max_time = alert_times.last().map_or(0, |(t, _)| *t);
    for check in &test.promql_expr_test {
        max_time = max_time.max(parse_duration_ms(&check.eval_time)?);
    }
    let mut outcomes = Vec::new();
    let mut next_check = 0;
    let mut t = 0;
    while t <= max_time {
        for state in &mut states {
            state.evaluate(&store, &settings, t, &mut StoreSink(&store));
        }
        while let Some((at, check)) = alert_times.get(next_check) {
            if !(t <= *at && *at < t + evaluation_ms) {
                break;
            }
            outcomes.push(Outcome::Alerts {
                test: index,
                eval_time: check.eval_time.clone(),
                alertname: check.alertname.clone(),
                got: firing(&states, &check.alertname),
                expected: check
                    .exp_alerts
                    .iter()
                    .map(|alert| with_alertname(alert, &check.alertname))
                    .collect(),
            });
            next_check += 1;
        }
        t += evaluation_ms;
    }
    for check in &test.promql_expr_test {
        let at = parse_duration_ms(&check.eval_time)?;
        let (got, error) = match evaluate_expr(&store, &check.expr, at) {
            Ok(samples) => (samples, None),
            Err(error) => (Vec::new(), Some(error)),
        };
        outcomes.push(Outcome::Expr {
            test: index,
            eval_time: check.eval_time.clone(),
            expr: check.expr.clone(),
            got,
            expected: check.exp_samples.clone(),
            error,
        });
    }
    Ok(outcomes)
}

fn with_alertname(alert: &ExpectedAlert, name: &str) -> ExpectedAlert {
    let mut alert = alert.clone();
    alert.exp_labels.insert("alertname".into(), name.into());
    alert
}

fn firing(states: &[GroupState], alertname: &str) -> Vec<ExpectedAlert> {
    let mut got = Vec::new();
    for state in states {
        for (rule, rule_state) in state.group.rules.iter().zip(&state.rules) {
            if !matches!(&rule.kind, RuleKind::Alerting { alert, .. } if alert == alertname) {
                continue;
            }
            for alert in rule_state
                .alerts
                .alerts
                .values()
                .filter(|alert| alert.state == AlertState::Firing)
            {
                got.push(ExpectedAlert {
                    exp_labels: alert
                        .labels
                        .iter()
                        .map(|(n, v)| (n.to_owned(), v.to_owned()))
                        .collect(),
                    exp_annotations: alert.annotations.clone(),
                });
            }
        }
    }
    got.sort();
    got
}

fn evaluate_expr(store: &Store, expr: &str, at_ms: i64) -> Result<Vec<ExpectedSample>, String> {
    let samples =
        match promql::instant_query(store, TENANT, expr, at_ms).map_err(|error| error.message)? {
            QueryValue::Vector(_, samples) => samples,
            QueryValue::Scalar(_, value) => vec![promql::Sample {
                labels: Labels::default(),
                value,
            }],
            _ => return Err("expression must give a vector or a scalar".into()),
        };
    Ok(samples
        .into_iter()
        .map(|sample| ExpectedSample {
            labels: series_text(&sample.labels),
            value: sample.value,
        })
        .collect())
}

/// `name{a="b"}` as promtool writes series.
fn series_text(labels: &Labels) -> String {
    let name = labels.metric_name().unwrap_or_default();
    let pairs: Vec<String> = labels
        .iter()
        .filter(|(label, _)| *label != METRIC_NAME)
        .map(|(label, value)| {
            format!(
                "{label}={}",
                serde_json::to_string(value).unwrap_or_default()
            )
        })
        .collect();
    format!("{name}{{{}}}", pairs.join(", "))
}

/// A series written as a selector with equality matchers (`up{job="api"}`).
fn series_labels(text: &str) -> Result<Labels, String> {
    if text.trim().is_empty() {
        return Ok(Labels::default());
    }
    let expr =
        promql_parser::parser::parse(text).map_err(|error| format!("series {text:?}: {error}"))?;
    let Expr::VectorSelector(selector) = expr else {
        return Err(format!("series {text:?} is not a series"));
    };
    let mut pairs = Vec::new();
    if let Some(name) = selector.name {
        pairs.push((METRIC_NAME.to_owned(), name));
    }
    for matcher in selector.matchers.matchers {
        if matcher.op != promql_parser::label::MatchOp::Equal {
            return Err(format!(
                "series {text:?}: only `=` matchers describe a series"
            ));
        }
        pairs.push((matcher.name, matcher.value));
    }
    Ok(Labels::new(pairs))
}

/// promtool's expanding notation: `1 2 _ stale 0+10x3 5-1x2 _x2 7x2`; `None` is a missing step.
pub fn expand_values(text: &str) -> Result<Vec<Option<f64>>, String> {
    let mut values = Vec::new();
    for item in text.split_whitespace() {
        if item == "_" {
            values.push(None);
            continue;
        }
        if item == "stale" {
            values.push(Some(STALE_NAN));
            continue;
        }
        if let Some((start, repeat)) = item.split_once('x') {
            let count: usize = repeat
                .parse()
                .map_err(|_| format!("bad repeat count in {item:?}"))?;
            if count > 1_000_000 {
                return Err(format!("repeat count too large in {item:?}"));
            }
            if start == "_" {
                values.extend(std::iter::repeat_n(None, count));
                continue;
            }
            let split = start
                .char_indices()
                .skip(1)
                .find(|(_, c)| *c == '+' || *c == '-')
                .map(|(at, _)| at);
            let (first, step) = match split {
                Some(at) if !start[..at].ends_with(['e', 'E']) => {
                    (number(&start[..at])?, number(&start[at..])?)
                }
                _ => (number(start)?, 0.0),
            };
            values.extend((0..=count).map(|k| Some(first + step * k as f64)));
            continue;
        }
        values.push(Some(number(item)?));
    }
    Ok(values)
}

fn number(text: &str) -> Result<f64, String> {
    match text {
        "Inf" | "+Inf" | "inf" | "+inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        "NaN" | "nan" => Ok(f64::NAN),
        _ => text
            .trim_start_matches('+')
            .parse()
            .map_err(|_| format!("bad number {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expanding_notation() {
        let got = expand_values("1 _ 0+10x2 5-1x2 _x2 7x1 stale").unwrap();
        let shown: Vec<String> = got
            .iter()
            .map(|v| {
                v.map_or("_".into(), |v| {
                    if v.is_nan() {
                        "stale".into()
                    } else {
                        v.to_string()
                    }
                })
            })
            .collect();
        assert_eq!(shown.join(" "), "1 _ 0 10 20 5 4 3 _ _ 7 7 stale");
        assert!(expand_values("1+x3").is_err());
        assert!(expand_values("abc").is_err());
    }

    #[test]
    fn a_test_file_runs_end_to_end() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("rules.yaml"),
            "groups:\n- name: g\n  rules:\n  - record: job:up:sum\n    expr: sum by (job) (up)\n  - alert: Down\n    expr: up == 0\n    for: 2m\n    labels: {severity: page}\n    annotations: {summary: '{{ $labels.instance }} down'}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("test.yaml"),
            "rule_files: [rules.yaml]\nevaluation_interval: 1m\ntests:\n- interval: 1m\n  input_series:\n  - series: 'up{job=\"api\", instance=\"a\"}'\n    values: '1 0 0 0 0'\n  - series: 'up{job=\"api\", instance=\"b\"}'\n    values: '1x4'\n  alert_rule_test:\n  - eval_time: 2m\n    alertname: Down\n  - eval_time: 3m\n    alertname: Down\n    exp_alerts:\n    - exp_labels: {severity: page, instance: a, job: api}\n      exp_annotations: {summary: a down}\n  promql_expr_test:\n  - expr: job:up:sum\n    eval_time: 4m\n    exp_samples:\n    - labels: 'job:up:sum{job=\"api\"}'\n      value: 1\n",
        )
        .unwrap();
        let outcomes = run_test_file(&dir.path().join("test.yaml")).unwrap();
        assert_eq!(outcomes.len(), 3);
        for outcome in &outcomes {
            assert!(outcome.passed(), "{outcome:?}");
        }
    }
}

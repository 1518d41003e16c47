//! Service-level objectives turned into rules, the way Sloth and Pyrra do it: an SLO names what
//! counts as an error (server spans of a service or operation that fail, or that take longer
//! than a latency threshold — both from the generated span metrics — or any PromQL ratio), an
//! objective and a window. From it come recording rules for the error ratio over the standard
//! windows (5m 30m 1h 2h 6h 1d 3d and the SLO window), the objective and the remaining error
//! budget, and the multi-window, multi-burn-rate alerts of Google's SRE workbook: page when the
//! budget burns 14.4× too fast over 1h and 5m or 6× over 6h and 30m, ticket at 3× over 1d and
//! 2h or 1× over 3d and 6h. The rules are generated as rule-file text and read back through the
//! rule-file parser, so an SLO is validated exactly as a hand-written rule would be.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::file::{parse_duration_ms, parse_rule_file, valid_label_name, RuleGroup};
use crate::RulesError;

/// Error-ratio windows recorded for every SLO (`slo:sli_error:ratio_rate<window>`).
pub const WINDOWS: [&str; 7] = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"];

/// (severity, factor, long window, short window): the SRE workbook's alerts for a 30-day SLO.
pub const BURN_ALERTS: [(&str, f64, &str, &str); 4] = [
    ("page", 14.4, "1h", "5m"),
    ("page", 6.0, "6h", "30m"),
    ("ticket", 3.0, "1d", "2h"),
    ("ticket", 1.0, "3d", "6h"),
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    pub name: String,
    /// `availability` (server spans in error), `latency` (server spans slower than
    /// `latency_threshold`) or `ratio` (`error_query` / `total_query`).
    #[serde(default = "default_kind")]
    pub kind: String,
    /// The service (span metrics' `service` label); required for availability and latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// One operation (span metrics' `span_name`); all of the service's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Percent of good events, e.g. 99.9.
    pub objective: f64,
    #[serde(default = "default_window")]
    pub window: String,
    /// For `latency`: a bucket boundary of `traces_spanmetrics_latency`, e.g. `512ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_threshold: Option<String>,
    /// For `ratio`: PromQL giving the rate of bad and of all events, with `$window` where the
    /// range goes (`sum(rate(http_requests_total{code=~"5.."}[$window]))`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_query: Option<String>,
    /// Added to every generated series and alert.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A ratio rounded to 12 decimals, so that 99.9 % reads 0.999 and its budget 0.001 (not
/// 0.0010000000000000009) in expressions and reports.
fn rounded(ratio: f64) -> f64 {
    (ratio * 1e12).round() / 1e12
}

impl SloSpec {
    pub fn objective_ratio(&self) -> f64 {
        rounded(self.objective / 100.0)
    }

    pub fn error_budget(&self) -> f64 {
        rounded((100.0 - self.objective) / 100.0)
    }
}

fn default_kind() -> String {
    "availability".into()
}

fn default_window() -> String {
    "30d".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SloFile {
    #[serde(default)]
    slos: Vec<SloSpec>,
}

/// What SLO validation needs from the rest of the process.
#[derive(Debug, Clone)]
pub struct SloContext {
    /// The span-metrics latency buckets (seconds): a latency threshold must be one of them.
    pub latency_buckets: Vec<f64>,
    /// `rules.max_slos_per_tenant`: SLOs one tenant may define through the API.
    pub max_slos_per_tenant: usize,
}

/// A validated SLO and its generated rule group.
#[derive(Debug, Clone)]
pub struct Slo {
    pub spec: SloSpec,
    pub window_ms: i64,
    pub group: RuleGroup,
}

/// Reads a file of `slos:`; `file` names it in errors.
pub fn parse_slo_file(
    file: &str,
    text: &str,
    context: &SloContext,
) -> Result<Vec<Slo>, RulesError> {
    let parsed: SloFile =
        serde_yaml::from_str(text).map_err(|error| invalid(format!("{file}: {error}")))?;
    let mut seen = std::collections::HashSet::new();
    let mut slos = Vec::with_capacity(parsed.slos.len());
    for spec in parsed.slos {
        if !seen.insert(spec.name.clone()) {
            return Err(invalid(format!(
                "{file}: slo {:?}: defined twice",
                spec.name
            )));
        }
        slos.push(build(spec, context).map_err(|error| invalid(format!("{file}: {error}")))?);
    }
    Ok(slos)
}

/// Reads one SLO (YAML or JSON, the body of `PUT /api/slos/{name}`).
pub fn parse_slo(name: &str, text: &str, context: &SloContext) -> Result<Slo, RulesError> {
    let mut value: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|error| invalid(format!("slo {name:?}: {error}")))?;
    if let Some(map) = value.as_mapping_mut() {
        let key = serde_yaml::Value::String("name".into());
        match map.get(&key).and_then(|given| given.as_str()) {
            Some(given) if given != name => {
                return Err(invalid(format!(
                    "slo {name:?}: the body names it {given:?}"
                )));
            }
            Some(_) => {}
            None => {
                map.insert(key, serde_yaml::Value::String(name.to_owned()));
            }
        }
    }
    let spec: SloSpec =
        serde_yaml::from_value(value).map_err(|error| invalid(format!("slo {name:?}: {error}")))?;
    build(spec, context).map_err(|error| invalid(error.to_string()))
}

fn invalid(message: String) -> RulesError {
    RulesError::Invalid { message }
}

fn quote(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn build(spec: SloSpec, context: &SloContext) -> Result<Slo, RulesError> {
    let name = spec.name.clone();
    let fail = |message: String| invalid(format!("slo {name:?}: {message}"));
    if name.trim().is_empty()
        || name.len() > 200
        || name.chars().any(|c| c.is_control() || c == '/')
    {
        return Err(fail("the name must be 1–200 characters without `/`".into()));
    }
    if !(spec.objective > 0.0 && spec.objective < 100.0) {
        return Err(fail(format!(
            "objective {} must be a percentage between 0 and 100, exclusive",
            spec.objective
        )));
    }
    let window_ms =
        parse_duration_ms(&spec.window).map_err(|error| fail(format!("window: {error}")))?;
    if !(3_600_000..=366 * 86_400_000).contains(&window_ms) {
        return Err(fail("window must be between 1h and 366d".into()));
    }
    for name in spec.labels.keys().chain(spec.annotations.keys()) {
        if !valid_label_name(name) || name.starts_with("__") || name == "slo" {
            return Err(fail(format!("invalid label or annotation name {name:?}")));
        }
    }
    let (errors, total) = match spec.kind.as_str() {
        "availability" | "latency" => {
            let service = spec
                .service
                .as_deref()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| fail(format!("a {} SLO needs `service`", spec.kind)))?;
            let mut selector =
                format!("service={}, span_kind=\"SPAN_KIND_SERVER\"", quote(service));
            if let Some(operation) = spec.operation.as_deref().filter(|o| !o.is_empty()) {
                let _ = write!(selector, ", span_name={}", quote(operation));
            }
            if spec.kind == "availability" {
                (
                    format!("sum(rate(traces_spanmetrics_calls_total{{{selector}, status_code=\"STATUS_CODE_ERROR\"}}[$window]))"),
                    format!("sum(rate(traces_spanmetrics_calls_total{{{selector}}}[$window]))"),
                )
            } else {
                let text = spec
                    .latency_threshold
                    .as_deref()
                    .ok_or_else(|| fail("a latency SLO needs `latency_threshold`".into()))?;
                let seconds = parse_duration_ms(text)
                    .map_err(|error| fail(format!("latency_threshold: {error}")))?
                    as f64
                    / 1000.0;
                let bucket = context
                    .latency_buckets
                    .iter()
                    .find(|bucket| (**bucket - seconds).abs() < 1e-9)
                    .ok_or_else(|| {
                        let known: Vec<String> = context.latency_buckets.iter().map(|b| format!("{}ms", b * 1000.0)).collect();
                        fail(format!("latency_threshold {text} is not a bucket boundary of traces_spanmetrics_latency ({})", known.join(", ")))
                    })?;
                let le = andante_tsdb::labels::float_text(*bucket);
                (
                    format!(
                        "(sum(rate(traces_spanmetrics_latency_count{{{selector}}}[$window])) - sum(rate(traces_spanmetrics_latency_bucket{{{selector}, le=\"{le}\"}}[$window])))"
                    ),
                    format!("sum(rate(traces_spanmetrics_latency_count{{{selector}}}[$window]))"),
                )
            }
        }
        "ratio" => {
            let errors = spec
                .error_query
                .clone()
                .filter(|q| q.contains("$window"))
                .ok_or_else(|| fail("a ratio SLO needs `error_query` with `$window`".into()))?;
            let total = spec
                .total_query
                .clone()
                .filter(|q| q.contains("$window"))
                .ok_or_else(|| fail("a ratio SLO needs `total_query` with `$window`".into()))?;
            (format!("({errors})"), format!("({total})"))
        }
        other => {
            return Err(fail(format!(
                "kind {other:?} is not one of availability, latency, ratio"
            )))
        }
    };
    let group = generate(&spec, &errors, &total)?;
    Ok(Slo {
        spec,
        window_ms,
        group,
    })
}

fn label_block(labels: &BTreeMap<String, String>, indent: &str) -> String {
    let mut text = format!("{indent}labels:\n");
    for (name, value) in labels {
        let _ = writeln!(text, "{indent}  {name}: {}", quote(value));
    }
    text
}

/// The rule group of one SLO, as rule-file text read back by the rule-file parser.
fn generate(spec: &SloSpec, errors: &str, total: &str) -> Result<RuleGroup, RulesError> {
    let budget = spec.error_budget();
    let mut labels = spec.labels.clone();
    labels.insert("slo".into(), spec.name.clone());
    if let Some(service) = &spec.service {
        labels
            .entry("service".into())
            .or_insert_with(|| service.clone());
    }
    let selector: Vec<String> = [("slo", spec.name.as_str())]
        .iter()
        .map(|(k, v)| format!("{k}={}", quote(v)))
        .collect();
    let selector = selector.join(", ");
    // No interval of its own: SLO groups run at `rules.evaluation_interval` like other groups.
    let mut text = format!(
        "groups:\n- name: {}\n  rules:\n",
        quote(&format!("slo:{}", spec.name))
    );
    let record = |text: &mut String, name: &str, expr: &str| {
        let _ = writeln!(text, "  - record: {name}\n    expr: {}", quote(expr));
        text.push_str(&label_block(&labels, "    "));
    };
    for window in WINDOWS
        .iter()
        .copied()
        .chain(std::iter::once(spec.window.as_str()))
    {
        let ratio = format!(
            "{} / {}",
            errors.replace("$window", window),
            total.replace("$window", window)
        );
        record(
            &mut text,
            &format!("slo:sli_error:ratio_rate{window}"),
            &ratio,
        );
        if window == spec.window {
            break;
        }
    }
    record(
        &mut text,
        "slo:objective:ratio",
        &format!("vector({})", spec.objective_ratio()),
    );
    record(
        &mut text,
        "slo:error_budget:ratio",
        &format!("vector({budget})"),
    );
    record(
        &mut text,
        "slo:error_budget_remaining:ratio",
        &format!(
            "1 - slo:sli_error:ratio_rate{}{{{selector}}} / {budget}",
            spec.window
        ),
    );
    for severity in ["page", "ticket"] {
        let conditions: Vec<String> = BURN_ALERTS
            .iter()
            .filter(|(level, ..)| *level == severity)
            .map(|(_, factor, long, short)| {
                format!(
                    "(slo:sli_error:ratio_rate{long}{{{selector}}} > ({factor} * {budget}) and slo:sli_error:ratio_rate{short}{{{selector}}} > ({factor} * {budget}))"
                )
            })
            .collect();
        let alert = if severity == "page" {
            "SLOErrorBudgetBurnFast"
        } else {
            "SLOErrorBudgetBurnSlow"
        };
        let _ = writeln!(
            text,
            "  - alert: {alert}\n    expr: {}",
            quote(&conditions.join(" or "))
        );
        let mut alert_labels = labels.clone();
        alert_labels.insert("severity".into(), severity.into());
        text.push_str(&label_block(&alert_labels, "    "));
        let mut annotations = spec.annotations.clone();
        annotations.entry("summary".into()).or_insert_with(|| {
            format!("SLO {} is burning its error budget {} (error ratio {{{{ $value | humanizePercentage }}}} over the long window; objective {}%)", spec.name, if severity == "page" { "fast" } else { "steadily" }, spec.objective)
        });
        let _ = writeln!(text, "    annotations:");
        for (name, value) in &annotations {
            let _ = writeln!(text, "      {name}: {}", quote(value));
        }
    }
    let mut groups = parse_rule_file(&format!("slo/{}", spec.name), &text)?;
    groups
        .pop()
        .ok_or_else(|| invalid(format!("slo {:?}: generated no rules", spec.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> SloContext {
        SloContext {
            latency_buckets: (0..14).map(|i| 0.002 * f64::from(1u32 << i)).collect(),
            max_slos_per_tenant: 10,
        }
    }

    #[test]
    fn an_availability_slo_becomes_recording_rules_and_burn_rate_alerts() {
        let slos = parse_slo_file(
            "f",
            "slos:\n- name: checkout\n  service: checkout\n  objective: 99.9\n",
            &context(),
        )
        .unwrap();
        let group = &slos[0].group;
        assert_eq!(group.name, "slo:checkout");
        let names: Vec<&str> = group.rules.iter().map(|rule| rule.name()).collect();
        assert_eq!(
            names,
            [
                "slo:sli_error:ratio_rate5m",
                "slo:sli_error:ratio_rate30m",
                "slo:sli_error:ratio_rate1h",
                "slo:sli_error:ratio_rate2h",
                "slo:sli_error:ratio_rate6h",
                "slo:sli_error:ratio_rate1d",
                "slo:sli_error:ratio_rate3d",
                "slo:sli_error:ratio_rate30d",
                "slo:objective:ratio",
                "slo:error_budget:ratio",
                "slo:error_budget_remaining:ratio",
                "SLOErrorBudgetBurnFast",
                "SLOErrorBudgetBurnSlow",
            ]
        );
        assert_eq!(
            group.rules[0].expr_text,
            "sum(rate(traces_spanmetrics_calls_total{service=\"checkout\", span_kind=\"SPAN_KIND_SERVER\", status_code=\"STATUS_CODE_ERROR\"}[5m])) / sum(rate(traces_spanmetrics_calls_total{service=\"checkout\", span_kind=\"SPAN_KIND_SERVER\"}[5m]))"
        );
        let page = &group.rules[11].expr_text;
        assert!(
            page.contains("slo:sli_error:ratio_rate1h{slo=\"checkout\"} > (14.4 * 0.001)"),
            "{page}"
        );
        assert!(
            page.contains("slo:sli_error:ratio_rate30m{slo=\"checkout\"} > (6 * "),
            "{page}"
        );
        let labels: Vec<(&str, &str)> = group.rules[11]
            .labels
            .iter()
            .map(|(n, t)| (n.as_str(), t.source()))
            .collect();
        assert_eq!(
            labels,
            [
                ("service", "checkout"),
                ("severity", "page"),
                ("slo", "checkout")
            ]
        );
    }

    #[test]
    fn latency_and_ratio_slos() {
        let latency = parse_slo("fast", "kind: latency\nservice: cart\noperation: GET /cart\nobjective: 99\nlatency_threshold: 512ms\nwindow: 7d\n", &context()).unwrap();
        assert!(
            latency.group.rules[0].expr_text.contains("le=\"0.512\""),
            "{}",
            latency.group.rules[0].expr_text
        );
        assert!(latency.group.rules[0]
            .expr_text
            .contains("span_name=\"GET /cart\""));
        assert_eq!(latency.group.rules[7].name(), "slo:sli_error:ratio_rate7d");
        let ratio = parse_slo("api", "kind: ratio\nobjective: 99.5\nerror_query: sum(rate(errors_total[$window]))\ntotal_query: sum(rate(requests_total[$window]))\n", &context()).unwrap();
        assert_eq!(
            ratio.group.rules[2].expr_text,
            "(sum(rate(errors_total[1h]))) / (sum(rate(requests_total[1h])))"
        );
    }

    #[test]
    fn refusals_name_the_slo_and_the_field() {
        let check = |body: &str, expected: &str| {
            let error = parse_slo("s", body, &context()).unwrap_err().to_string();
            assert!(error.contains(expected), "{body}: {error}");
        };
        check("service: a\nobjective: 100\n", "objective 100");
        check("service: a\nobjective: 99\nwindow: 10m\n", "window must be");
        check("objective: 99\n", "needs `service`");
        check(
            "kind: latency\nservice: a\nobjective: 99\nlatency_threshold: 500ms\n",
            "not a bucket boundary",
        );
        check(
            "kind: ratio\nobjective: 99\nerror_query: sum(x)\ntotal_query: sum(y[$window])\n",
            "`error_query` with `$window`",
        );
        check("kind: ratio\nobjective: 99\nerror_query: 'sum(x[$window]'\ntotal_query: sum(y[$window])\n", "could not parse expression");
        check("kind: nope\nobjective: 99\n", "not one of");
        check("name: other\nservice: a\nobjective: 99\n", "names it");
        check(
            "service: a\nobjective: 99\nlabels: {slo: x}\n",
            "invalid label",
        );
        check("service: a\nobjective: 99\nbogus: 1\n", "unknown field");
    }
}

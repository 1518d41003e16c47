//! Prometheus' rule-file format (`groups:` of recording and alerting rules), read into validated
//! groups: every expression parsed, every template parsed, every duration checked, so evaluation
//! never meets a malformed rule. An error names the file, the group, the rule and a position
//! (the YAML line of the rule, and the parser's position inside the expression), the way
//! `promtool check rules` does, so a person can go straight to it.

use std::collections::HashSet;

use promql_parser::parser::value::ValueType;
use promql_parser::parser::Expr;
use serde::Deserialize;

use crate::template::Template;
use crate::RulesError;

/// One group as written, for listing back (`/api/v1/rules`, the ruler API).
#[derive(Debug, Clone)]
pub struct RuleGroup {
    pub name: String,
    /// The file (or ruler namespace) the group came from.
    pub file: String,
    /// 0 means "the manager's default evaluation interval".
    pub interval_ms: i64,
    /// Most series one rule of the group may produce; 0 is no limit.
    pub limit: usize,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub kind: RuleKind,
    /// The expression as written, for listing and for `generatorURL`.
    pub expr_text: String,
    pub query: RuleQuery,
    /// Label templates (only alerting rules expand them; recording labels are plain text).
    pub labels: Vec<(String, Template)>,
}

/// What a rule evaluates: PromQL over the series store (`expr:`), or a TraceQL metrics query
/// over the traces of the last `window` (`traceql:`), one value per series.
#[derive(Debug, Clone)]
pub enum RuleQuery {
    PromQL(Expr),
    TraceQL { window_ms: i64 },
}

impl RuleQuery {
    /// The language's name as the UI's metrics page takes it (`lang=`).
    pub fn language(&self) -> &'static str {
        match self {
            RuleQuery::PromQL(_) => "promql",
            RuleQuery::TraceQL { .. } => "traceql",
        }
    }
}

/// The window a `traceql:` rule reads when it names none.
pub const DEFAULT_TRACEQL_WINDOW_MS: i64 = 5 * 60_000;

#[derive(Debug, Clone)]
pub enum RuleKind {
    Recording {
        record: String,
    },
    Alerting {
        alert: String,
        for_ms: i64,
        keep_firing_for_ms: i64,
        annotations: Vec<(String, Template)>,
    },
}

impl Rule {
    pub fn name(&self) -> &str {
        match &self.kind {
            RuleKind::Recording { record } => record,
            RuleKind::Alerting { alert, .. } => alert,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileYaml {
    #[serde(default)]
    groups: Vec<GroupYaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupYaml {
    name: String,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    rules: Vec<RuleYaml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleYaml {
    #[serde(default)]
    record: Option<String>,
    #[serde(default)]
    alert: Option<String>,
    #[serde(default)]
    expr: Option<String>,
    /// A TraceQL metrics query instead of `expr` (Andante's extension).
    #[serde(default)]
    traceql: Option<String>,
    /// The span of traces a `traceql:` rule reads at each evaluation (default 5m).
    #[serde(default)]
    window: Option<String>,
    #[serde(default, rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: Option<indexmap_like::OrderedMap>,
    #[serde(default)]
    annotations: Option<indexmap_like::OrderedMap>,
}

/// Label and annotation maps keep the file's order, so listings read like the file.
mod indexmap_like {
    use serde::de::{MapAccess, Visitor};
    use serde::{Deserialize, Deserializer};

    #[derive(Default)]
    pub struct OrderedMap(pub Vec<(String, String)>);

    impl<'de> Deserialize<'de> for OrderedMap {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct MapVisitor;
            impl<'de> Visitor<'de> for MapVisitor {
                type Value = OrderedMap;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a map of strings")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedMap, A::Error> {
                    let mut pairs = Vec::new();
                    while let Some((key, value)) = map.next_entry::<String, ScalarText>()? {
                        pairs.push((key, value.0));
                    }
                    Ok(OrderedMap(pairs))
                }
            }
            deserializer.deserialize_map(MapVisitor)
        }
    }

    /// YAML writes `severity: 2` as a number; Prometheus takes it as the text `2`.
    struct ScalarText(String);
    impl<'de> Deserialize<'de> for ScalarText {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let value = serde_yaml::Value::deserialize(deserializer)?;
            match value {
                serde_yaml::Value::String(text) => Ok(ScalarText(text)),
                serde_yaml::Value::Number(number) => Ok(ScalarText(number.to_string())),
                serde_yaml::Value::Bool(flag) => Ok(ScalarText(flag.to_string())),
                _ => Err(serde::de::Error::custom("expected a string")),
            }
        }
    }
}

/// The shortest group interval accepted.
pub const MIN_INTERVAL_MS: i64 = 1_000;

/// Parses a rule file's text; `file` names it in errors and in the groups' `file`.
pub fn parse_rule_file(file: &str, text: &str) -> Result<Vec<RuleGroup>, RulesError> {
    let parsed: FileYaml = serde_yaml::from_str(text).map_err(|error| RulesError::Invalid {
        message: format!("{file}: {error}"),
    })?;
    let mut seen_groups = HashSet::new();
    let mut groups = Vec::with_capacity(parsed.groups.len());
    for group in parsed.groups {
        if !seen_groups.insert(group.name.clone()) {
            return Err(RulesError::Invalid {
                message: format!(
                    "{file}: {}: repeated in the same file",
                    quoted_group(&group.name)
                ),
            });
        }
        groups.push(validate_group(file, text, group)?);
    }
    Ok(groups)
}

/// Parses one group as the ruler API receives it (the body of `POST .../rules/{namespace}`).
pub fn parse_group(namespace: &str, text: &str) -> Result<RuleGroup, RulesError> {
    let group: GroupYaml = serde_yaml::from_str(text).map_err(|error| RulesError::Invalid {
        message: format!("{namespace}: {error}"),
    })?;
    validate_group(namespace, text, group)
}

fn quoted_group(name: &str) -> String {
    format!("group \"{name}\"")
}

fn validate_group(file: &str, text: &str, group: GroupYaml) -> Result<RuleGroup, RulesError> {
    let group_name = group.name.clone();
    let invalid = |message: String| RulesError::Invalid {
        message: format!("{file}: {}: {message}", quoted_group(&group_name)),
    };
    if group.name.trim().is_empty() {
        return Err(RulesError::Invalid {
            message: format!("{file}: a group has no name"),
        });
    }
    let interval_ms = match &group.interval {
        Some(text) => {
            parse_duration_ms(text).map_err(|error| invalid(format!("interval: {error}")))?
        }
        None => 0,
    };
    // A tenant's group (ruler API) must not make the server evaluate without pause.
    if group.interval.is_some() && interval_ms < MIN_INTERVAL_MS {
        return Err(invalid("interval: must be at least 1s".into()));
    }
    let mut rules = Vec::with_capacity(group.rules.len());
    for (index, rule) in group.rules.into_iter().enumerate() {
        let rule_name = rule
            .record
            .clone()
            .or(rule.alert.clone())
            .unwrap_or_default();
        let rule = validate_rule(rule).map_err(|message| {
            // Only a failing rule pays for finding its line (a scan of the file).
            let at = match rule_line(text, &group_name, index) {
                Some(line) => format!("{file}:{line}: "),
                None => format!("{file}: "),
            };
            RulesError::Invalid {
                message: format!(
                    "{at}{}, rule {} ({rule_name:?}): {message}",
                    quoted_group(&group_name),
                    index + 1
                ),
            }
        })?;
        rules.push(rule);
    }
    Ok(RuleGroup {
        name: group.name,
        file: file.to_owned(),
        interval_ms,
        limit: group.limit.unwrap_or(0),
        rules,
    })
}

fn validate_rule(rule: RuleYaml) -> Result<Rule, String> {
    let (expr_text, query) = match (&rule.expr, &rule.traceql) {
        (Some(_), Some(_)) => return Err("only one of 'expr' and 'traceql' must be set".into()),
        (None, Some(text)) => {
            andante_traceql::metrics::parse_metrics_expr(text)
                .map_err(|error| format!("could not parse TraceQL: {error}"))?;
            let window_ms = match &rule.window {
                Some(text) => {
                    parse_duration_ms(text).map_err(|error| format!("window: {error}"))?
                }
                None => DEFAULT_TRACEQL_WINDOW_MS,
            };
            if !(1_000..=86_400_000).contains(&window_ms) {
                return Err("window must be between 1s and 24h".into());
            }
            (text.clone(), RuleQuery::TraceQL { window_ms })
        }
        (expr, None) => {
            let expr_text = expr.clone().unwrap_or_default();
            if expr_text.trim().is_empty() {
                return Err("field 'expr' must be set in rule".into());
            }
            if rule.window.is_some() {
                return Err("'window' belongs to 'traceql' rules".into());
            }
            let expr = andante_tsdb::promql::parse(&expr_text)
                .map_err(|error| format!("could not parse expression: {error}"))?;
            let value_type = expr.value_type();
            if !matches!(value_type, ValueType::Vector | ValueType::Scalar) {
                return Err(format!(
                    "expression must be an instant vector or a scalar, not a {value_type}"
                ));
            }
            (expr_text, RuleQuery::PromQL(expr))
        }
    };
    let labels_yaml = rule.labels.unwrap_or_default().0;
    let mut labels = Vec::with_capacity(labels_yaml.len());
    for (name, value) in labels_yaml {
        if !valid_label_name(&name) {
            return Err(format!("invalid label name: {name:?}"));
        }
        if name == "__name__" {
            return Err("labels may not set `__name__`".into());
        }
        let template = Template::parse(&value)
            .map_err(|error| format!("label {name:?}: template: {error}"))?;
        labels.push((name, template));
    }
    let kind = match (rule.record, rule.alert) {
        (Some(_), Some(_)) => return Err("only one of 'record' and 'alert' must be set".into()),
        (None, None) => return Err("one of 'record' or 'alert' must be set".into()),
        (Some(record), None) => {
            if !valid_metric_name(&record) {
                return Err(format!("invalid recording rule name: {record:?}"));
            }
            if rule.for_.is_some() || rule.keep_firing_for.is_some() {
                return Err("invalid field 'for' or 'keep_firing_for' in recording rule".into());
            }
            if rule.annotations.is_some() {
                return Err("invalid field 'annotations' in recording rule".into());
            }
            if labels.iter().any(|(_, template)| !template.is_plain()) {
                return Err("recording rule labels are not templates".into());
            }
            RuleKind::Recording { record }
        }
        (None, Some(alert)) => {
            if alert.trim().is_empty() {
                return Err("alert name must not be empty".into());
            }
            let for_ms = match &rule.for_ {
                Some(text) => parse_duration_ms(text).map_err(|error| format!("for: {error}"))?,
                None => 0,
            };
            let keep_firing_for_ms = match &rule.keep_firing_for {
                Some(text) => {
                    parse_duration_ms(text).map_err(|error| format!("keep_firing_for: {error}"))?
                }
                None => 0,
            };
            let mut annotations = Vec::new();
            for (name, value) in rule.annotations.unwrap_or_default().0 {
                if !valid_label_name(&name) {
                    return Err(format!("invalid annotation name: {name:?}"));
                }
                let template = Template::parse(&value)
                    .map_err(|error| format!("annotation {name:?}: template: {error}"))?;
                annotations.push((name, template));
            }
            RuleKind::Alerting {
                alert,
                for_ms,
                keep_firing_for_ms,
                annotations,
            }
        }
    };
    Ok(Rule {
        kind,
        expr_text,
        query,
        labels,
    })
}

/// The 1-based line of the `index`-th rule of group `group` in a rule file: found by reading the
/// YAML's list items after the group's `name:`, good enough to point an editor at the rule.
fn rule_line(text: &str, group: &str, index: usize) -> Option<usize> {
    let mut lines = text.lines().enumerate();
    let is_group_line = |line: &str| {
        let trimmed = line.trim_start().trim_start_matches("- ").trim_start();
        trimmed
            .strip_prefix("name:")
            .map(|value| value.trim().trim_matches(['"', '\'']) == group)
            .unwrap_or(false)
    };
    lines.find(|(_, line)| is_group_line(line))?;
    let mut rules_indent = None;
    let mut seen = 0;
    for (number, line) in lines {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if rules_indent.is_none() {
            if trimmed.starts_with("rules:") {
                rules_indent = Some(indent);
            }
            continue;
        }
        if trimmed.starts_with("- ") && indent >= rules_indent.unwrap_or(0) {
            if trimmed.starts_with("- name:") && indent < rules_indent.unwrap_or(0) + 1 {
                return None;
            }
            if seen == index {
                return Some(number + 1);
            }
            seen += 1;
        }
    }
    None
}

/// Prometheus' duration syntax (`model.ParseDuration`): units y, w, d, h, m, s, ms in that order,
/// integers only; `0` alone is zero.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    if text == "0" {
        return Ok(0);
    }
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let invalid = || format!("not a valid duration string: {text:?}");
    let mut rest = text;
    let mut next_unit = 0;
    let mut total: i64 = 0;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let number: i64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let position = UNITS[next_unit..]
            .iter()
            .position(|(name, _)| *name == unit)
            .ok_or_else(invalid)?;
        let (_, unit_ms) = UNITS[next_unit + position];
        next_unit += position + 1;
        total = number
            .checked_mul(unit_ms)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| format!("duration out of range: {text:?}"))?;
    }
    Ok(total)
}

pub(crate) fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_prometheus() {
        assert_eq!(parse_duration_ms("0"), Ok(0));
        assert_eq!(parse_duration_ms("0s"), Ok(0));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("1d"), Ok(86_400_000));
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        for bad in [
            "",
            "1.5h",
            "1m1h",
            "5",
            "1x",
            "h",
            "1h1h",
            "-1m",
            "99999999999999999y",
        ] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bad_rule_is_named_with_its_line() {
        let text = "groups:\n- name: api\n  rules:\n  - record: a:b\n    expr: up\n  - alert: Broken\n    expr: sum(up\n";
        let error = parse_rule_file("x.yaml", text).unwrap_err().to_string();
        assert!(
            error.starts_with(
                "x.yaml:6: group \"api\", rule 2 (\"Broken\"): could not parse expression"
            ),
            "{error}"
        );
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let check = |rule: &str, expected: &str| {
            let text = format!("groups:\n- name: g\n  rules:\n  - {rule}\n");
            let error = parse_rule_file("f", &text).unwrap_err().to_string();
            assert!(error.contains(expected), "{rule}: {error}");
        };
        check(
            "alert: A\n    expr: up\n    for: 1.5m",
            "for: not a valid duration",
        );
        check("record: a\n    alert: b\n    expr: up", "only one of");
        check("expr: up", "one of 'record' or 'alert'");
        check("record: 1bad\n    expr: up", "invalid recording rule name");
        check("record: a\n    expr: up[5m]", "instant vector or a scalar");
        check("record: a\n    expr: up\n    for: 1m", "in recording rule");
        check(
            "alert: A\n    expr: up\n    annotations:\n      x: '{{ $value | nosuch }}'",
            "annotation \"x\"",
        );
        check("alert: A\n    expr: up\n    bogus: 1", "unknown field");
        check("alert: A", "'expr' must be set");
        let fast = "groups:\n- name: g\n  interval: 10ms\n  rules: []\n";
        assert!(parse_rule_file("f", fast)
            .unwrap_err()
            .to_string()
            .contains("at least 1s"));
        check(
            "alert: A\n    traceql: '{ status = error } | rate() >'",
            "could not parse TraceQL",
        );
        check(
            "alert: A\n    expr: up\n    traceql: '{ } | rate()'",
            "only one of 'expr' and 'traceql'",
        );
        check(
            "alert: A\n    expr: up\n    window: 5m",
            "belongs to 'traceql'",
        );
        check(
            "alert: A\n    traceql: '{ } | rate()'\n    window: 2d",
            "between 1s and 24h",
        );
        let twice = "groups:\n- name: g\n  rules: []\n- name: g\n  rules: []\n";
        assert!(parse_rule_file("f", twice)
            .unwrap_err()
            .to_string()
            .contains("repeated"));
    }

    #[test]
    fn a_good_file_reads_in_order() {
        let text = "groups:\n- name: g\n  interval: 15s\n  limit: 10\n  rules:\n  - alert: High\n    expr: rate(x[5m]) > 1\n    for: 2m\n    keep_firing_for: 1m\n    labels: {severity: page, tier: 1}\n    annotations:\n      summary: 'value {{ $value }}'\n";
        let groups = parse_rule_file("f", text).unwrap();
        assert_eq!(groups[0].interval_ms, 15_000);
        assert_eq!(groups[0].limit, 10);
        let rule = &groups[0].rules[0];
        assert_eq!(rule.name(), "High");
        assert_eq!(rule.labels[1].0, "tier");
        match &rule.kind {
            RuleKind::Alerting {
                for_ms,
                keep_firing_for_ms,
                annotations,
                ..
            } => {
                assert_eq!((*for_ms, *keep_firing_for_ms), (120_000, 60_000));
                assert_eq!(annotations[0].0, "summary");
            }
            RuleKind::Recording { .. } => panic!("an alerting rule"),
        }
    }
}

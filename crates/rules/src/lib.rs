//! Rules and alerts: Prometheus rule files (recording and alerting rules) evaluated over the
//! series store on each group's interval, alert state (pending, firing, resolved) kept the way
//! Prometheus keeps it, and notifications to Alertmanager. `file` reads and validates rule
//! files, `template` renders annotations, `alert` is one rule's alert life, `group` evaluates a
//! group at a timestamp, `load` reads rule files, `ruler` keeps the groups of Mimir's ruler
//! API in object storage, `slo` turns SLOs into rules and `slos` keeps every tenant's SLOs, `manager` schedules every tenant's groups, `listing` answers
//! Prometheus' rules and alerts APIs, `notify` delivers alerts, and `unit_test` runs promtool's
//! rule unit-test files on this engine.

pub mod alert;
pub mod file;
mod gofmt;
pub mod group;
mod listing;
pub mod load;
pub mod manager;
pub mod notify;
pub mod ruler;
pub mod slo;
pub mod slos;
pub mod template;
pub mod unit_test;

pub use file::{parse_group, parse_rule_file, Rule, RuleGroup, RuleKind, RuleQuery};
pub use gofmt::rfc3339;
pub use group::{EvalSettings, GroupState, RootCauseSource, SampleSink, TraceqlSource};
pub use manager::{GroupKey, Manager, Source};
pub use notify::{Notifier, NotifierConfig};

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// A rule file or group that does not validate; the message names file, group and rule.
    #[error("{message}")]
    Invalid { message: String },
    #[error("failed to read rules from `{path}`: {error}")]
    Read { path: String, error: String },
    #[error("{0}")]
    NotFound(String),
    /// A per-tenant limit refused the change; the message names the limit's key.
    #[error("{0}")]
    Limit(String),
    /// Object storage failed while reading or writing ruler groups.
    #[error("rule storage failed: {0}")]
    Storage(String),
}

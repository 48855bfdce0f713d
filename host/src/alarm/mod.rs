//! Alarms with Aodh's semantics: rules evaluated by Wasm `alarm-rule`
//! components over the rollup engine's recent aggregates, and a state
//! machine, notifications and history owned by the host.
//!
//! Consumes: validated [`AlarmConfig`]s, the [`RollupEngine`]'s open
//! buckets and the rows it closes. Emits: [`Notification`]s (sent by the
//! [`Notifier`]: `log:` lines and JSON webhooks), state-transition records
//! appended to `ARCHIVE_ROOT/alarm-history.jsonl`, and the current states in
//! `DATA_DIR/alarms.json`.
//!
//! ```text
//!  every evaluation_interval, per alarm:
//!    time constraints ─ outside all? skip (nothing changes)
//!    recent buckets (closed + still open) at granularity/method
//!      ─ resource_id glob ─> per series, or aggregated across series
//!      ─ last evaluation_periods points ─> alarm-rule plugin (threshold)
//!      ─ verdict ─> Aodh state machine ─> history + notifications
//! ```
//!
//! Semantics: reference `telemetry-semantics.md` §2.3 (threshold rules,
//! transitions, reasons), §2.4 (composite rules), §2.5 (webhook payload),
//! §2.6 (history).
//!
//! [`RollupEngine`]: crate::rollup::RollupEngine

mod composite;
mod evaluator;
mod history;
mod notify;
mod state;
mod time_constraint;

pub use composite::{CompositeLeaf, evaluate_composite};
pub use evaluator::{
    AlarmEvaluator, AlarmSetupError, AlarmStatus, EvaluatorReport, STATE_FILE, StateKey,
    check_target, load_states,
};
pub use history::{HISTORY_FILE, HistoryRecord, read_history};
pub use notify::{Notification, Notifier, NotifierCounters, NotifierSettings};
pub use state::{Outcome, Refresh, python_float, threshold_transition};
pub use time_constraint::TimeConstraint;

use std::fmt;
use std::time::Duration;

use crate::plugin::PluginSource;
use crate::rollup::{AggregationMethod, BaseMethod};

/// Aodh's alarm states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlarmState {
    /// The rule's condition does not hold.
    Ok,
    /// The rule's condition holds.
    Alarm,
    /// Too few data points to decide (Aodh's `insufficient data`).
    InsufficientData,
}

impl AlarmState {
    /// Aodh's spelling: `ok`, `alarm`, `insufficient data`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "ok",
            AlarmState::Alarm => "alarm",
            AlarmState::InsufficientData => "insufficient data",
        }
    }

    /// Parses Aodh's spelling (also `insufficient_data`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ok" => Some(AlarmState::Ok),
            "alarm" => Some(AlarmState::Alarm),
            "insufficient data" | "insufficient_data" => Some(AlarmState::InsufficientData),
            _ => None,
        }
    }
}

impl fmt::Display for AlarmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Aodh's severities, carried in notifications and history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Severity {
    /// The default.
    #[default]
    Low,
    /// Needs attention.
    Moderate,
    /// Needs attention now.
    Critical,
}

impl Severity {
    /// `low`, `moderate`, `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Moderate => "moderate",
            Severity::Critical => "critical",
        }
    }

    /// Parses `low`, `moderate`, `critical`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "low" => Some(Severity::Low),
            "moderate" => Some(Severity::Moderate),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// What to do when an alarm enters (or, with `repeat_actions`, stays in)
/// a state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// `log:` (or `log://`): one `tracing` line at WARN for `alarm`, INFO
    /// otherwise.
    Log,
    /// `http://…` or `https://…`: a JSON POST (see [`Notification`]).
    Webhook(String),
}

impl Action {
    /// Parses an action URL.
    ///
    /// # Errors
    /// A message naming the action when its scheme is not `log`, `http` or
    /// `https`, or the URL does not parse.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "log:" || s == "log://" || s.starts_with("log://") {
            return Ok(Action::Log);
        }
        match reqwest::Url::parse(s) {
            Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => {
                Ok(Action::Webhook(s.to_owned()))
            }
            Ok(u) => Err(format!(
                "action {s:?}: unknown scheme {:?} (expected log:, http:// or https://)",
                u.scheme()
            )),
            Err(e) => Err(format!(
                "action {s:?}: {e} (expected log:, http:// or https://)"
            )),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Log => f.write_str("log:"),
            Action::Webhook(u) => f.write_str(u),
        }
    }
}

/// How the matching series are evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Each matching series has its own state (Aodh's
    /// `gnocchi_resources_threshold`, one alarm per resource).
    PerSeries,
    /// The matching series are aggregated into one by this method at each
    /// bucket, over the series present there (Gnocchi's aggregates API with
    /// `needed_overlap=0`, as Aodh's
    /// `gnocchi_aggregation_by_resources_threshold`).
    Aggregated(BaseMethod),
}

/// One threshold rule: which aggregates, and what the plugin is told.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdRule {
    /// The `alarm-rule` component (default `builtin:threshold`).
    pub plugin: PluginSource,
    /// Metric name (exact).
    pub metric: String,
    /// Glob over `resource_id` (`*` for all).
    pub resource_id: String,
    /// The aggregation method compared; must be one of the metric's
    /// archive policy.
    pub aggregation_method: AggregationMethod,
    /// The granularity compared; must be one of the metric's archive
    /// policy.
    pub granularity: Duration,
    /// How many recent aggregates must agree (1..100).
    pub evaluation_periods: u32,
    /// Extra look-back for late data (Aodh's `additional_ingestion_lag`).
    pub additional_ingestion_lag: Duration,
    /// Per series or aggregated.
    pub selection: Selection,
    /// Parameters passed to the plugin's `evaluate`: for `threshold`,
    /// `comparison_operator`, `threshold` and `evaluation_periods`.
    pub params: Vec<(String, String)>,
}

impl ThresholdRule {
    /// Aodh's rule fields as JSON (for composite `causative_rules`).
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("metric".into(), self.metric.clone().into());
        m.insert("resource_id".into(), self.resource_id.clone().into());
        m.insert(
            "aggregation_method".into(),
            self.aggregation_method.to_string().into(),
        );
        m.insert("granularity".into(), self.granularity.as_secs().into());
        m.insert("evaluation_periods".into(), self.evaluation_periods.into());
        for (k, v) in &self.params {
            if k == "threshold"
                && let Ok(f) = v.parse::<f64>()
            {
                m.insert(k.clone(), f.into());
            } else if k != "evaluation_periods" {
                m.insert(k.clone(), v.clone().into());
            }
        }
        serde_json::Value::Object(m)
    }
}

/// An `and` / `or` tree of threshold rules (Aodh's `composite_rule`).
#[derive(Debug, Clone, PartialEq)]
pub enum CompositeRule {
    /// Alarm when every child alarms; ok when any child is ok.
    And(Vec<CompositeRule>),
    /// Alarm when any child alarms; ok when every child is ok.
    Or(Vec<CompositeRule>),
    /// A threshold rule, always aggregated across its matching series.
    Leaf(ThresholdRule),
}

impl CompositeRule {
    /// The leaves, depth first (Aodh numbers them `rule1`, `rule2`, … in
    /// this order).
    pub fn leaves(&self) -> Vec<&ThresholdRule> {
        let mut out = Vec::new();
        fn walk<'a>(r: &'a CompositeRule, out: &mut Vec<&'a ThresholdRule>) {
            match r {
                CompositeRule::And(c) | CompositeRule::Or(c) => c.iter().for_each(|c| walk(c, out)),
                CompositeRule::Leaf(l) => out.push(l),
            }
        }
        walk(self, &mut out);
        out
    }
}

/// An alarm's rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// One threshold rule.
    Threshold(ThresholdRule),
    /// A composite of threshold rules.
    Composite(CompositeRule),
}

impl Rule {
    /// Every threshold rule of the alarm.
    pub fn leaves(&self) -> Vec<&ThresholdRule> {
        match self {
            Rule::Threshold(t) => vec![t],
            Rule::Composite(c) => c.leaves(),
        }
    }
}

/// One `[[alarm]]` of the config.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmConfig {
    /// Unique name (the key of its state and history).
    pub name: String,
    /// Free text; generated from the rule when not given.
    pub description: String,
    /// Disabled alarms are not evaluated (their state is kept).
    pub enabled: bool,
    /// Carried in notifications and history.
    pub severity: Severity,
    /// What is evaluated.
    pub rule: Rule,
    /// Time between two evaluations; default: the rule's (smallest)
    /// granularity. Evaluations are aligned to multiples of it since the
    /// Unix epoch.
    pub evaluation_interval: Duration,
    /// Notify on every evaluation, not only on transitions.
    pub repeat_actions: bool,
    /// Actions when entering `alarm`.
    pub alarm_actions: Vec<Action>,
    /// Actions when entering `ok`.
    pub ok_actions: Vec<Action>,
    /// Actions when entering `insufficient data`.
    pub insufficient_data_actions: Vec<Action>,
    /// When the alarm is evaluated at all (empty: always).
    pub time_constraints: Vec<TimeConstraint>,
}

impl AlarmConfig {
    /// The actions for entering `state`.
    pub fn actions(&self, state: AlarmState) -> &[Action] {
        match state {
            AlarmState::Ok => &self.ok_actions,
            AlarmState::Alarm => &self.alarm_actions,
            AlarmState::InsufficientData => &self.insufficient_data_actions,
        }
    }
}

/// A stable id for an alarm's state (one per series in per-series mode),
/// shaped as a UUID: the first 16 bytes of SHA-256 of `name`, NUL,
/// `series`.
pub fn alarm_id(name: &str, series: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0]);
    h.update(series.as_bytes());
    let d = h.finalize();
    let x: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

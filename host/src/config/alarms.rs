//! The `[[alarm]]` and `[notifier]` sections.
//!
//! ```toml
//! [[alarm]]
//! name = "cpu-high"
//! metric = "cpu.util"               # exact metric name
//! resource_id = "*"                 # glob; default "*"
//! aggregation_method = "mean"       # one of the metric's archive policy
//! granularity = "1m"                # one of the metric's archive policy
//! comparison_operator = "gt"        # lt le eq ne ge gt; default eq (Aodh)
//! threshold = 90.0
//! evaluation_periods = 3            # 1..100; default 1
//! # aggregate_series = "mean"       # one state for all matching series
//! severity = "moderate"             # low (default), moderate, critical
//! alarm_actions = ["log:", "http://127.0.0.1:9000/hook"]
//! ok_actions = ["log:"]
//! repeat_actions = false
//! # evaluation_interval = "1m"      # default: the granularity
//! # time_constraints = [{ name = "office", start = "0 9 * * 1-5", duration = "8h", timezone = "Europe/Paris" }]
//!
//! [[alarm]]
//! name = "busy-and-swapping"
//! composite_rule = { and = [
//!   { metric = "cpu.util", aggregation_method = "mean", granularity = "1m", comparison_operator = "gt", threshold = 90.0 },
//!   { metric = "memory.swap.used", aggregation_method = "max", granularity = "1m", comparison_operator = "gt", threshold = 0.0 },
//! ] }
//!
//! [notifier]
//! timeout = "5s"                    # per webhook attempt
//! retries = 3                       # attempts after the first
//! backoff = "1s"                    # doubled before each retry
//! ```

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Source};
use crate::alarm::{
    Action, AlarmConfig, CompositeRule, NotifierSettings, Rule, Selection, Severity, ThresholdRule,
    TimeConstraint,
};
use crate::plugin::PluginSource;
use crate::rollup::{AggregationMethod, ArchivePolicy, PolicyRules};

/// Aodh's comparison operators.
const OPERATORS: [&str; 6] = ["lt", "le", "eq", "ne", "ge", "gt"];

/// One `[[alarm]]` as written: the common fields; the rule's fields are
/// in `rule` (checked by [`RawRule`]).
#[derive(Deserialize)]
pub(super) struct RawAlarm {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default = "super::yes")]
    enabled: bool,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    evaluation_interval: Option<String>,
    #[serde(default)]
    repeat_actions: bool,
    #[serde(default)]
    alarm_actions: Vec<String>,
    #[serde(default)]
    ok_actions: Vec<String>,
    #[serde(default)]
    insufficient_data_actions: Vec<String>,
    #[serde(default)]
    time_constraints: Vec<RawTimeConstraint>,
    #[serde(default)]
    composite_rule: Option<toml::Value>,
    /// The threshold rule's fields.
    #[serde(flatten)]
    rule: toml::Table,
}

/// A threshold rule's fields (an alarm's, or a composite leaf's).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRule {
    /// `builtin:threshold` (default) or a `.wasm` alarm-rule component.
    plugin: Option<String>,
    metric: Option<String>,
    resource_id: Option<String>,
    aggregation_method: Option<String>,
    granularity: Option<String>,
    comparison_operator: Option<String>,
    threshold: Option<f64>,
    evaluation_periods: Option<i64>,
    /// Aggregate the matching series with this method (one state).
    aggregate_series: Option<String>,
    additional_ingestion_lag: Option<String>,
    /// Extra parameters for a custom rule plugin.
    params: Option<toml::Table>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeConstraint {
    name: String,
    #[serde(default)]
    description: String,
    start: String,
    /// Seconds, or a duration string (`8h`).
    duration: toml::Value,
    #[serde(default)]
    timezone: String,
}

/// `[notifier]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotifier {
    timeout: Option<String>,
    retries: Option<u32>,
    backoff: Option<String>,
}

struct Ctx<'a, 'b> {
    src: &'a Source<'b>,
    span: Range<usize>,
    errors: &'a mut Vec<ConfigError>,
}

impl Ctx<'_, '_> {
    /// An error at `field`: located at the line where the alarm's table
    /// sets the field (`alarm[1].threshold` → its `threshold = …` line), or
    /// at the alarm's `[[alarm]]` header when the field is nested or not
    /// written there.
    fn err(&mut self, field: String, message: impl Into<String>) {
        let span = self.field_span(&field).unwrap_or_else(|| self.span.clone());
        self.errors.push(self.src.error(Some(span), field, message));
    }

    fn field_span(&self, field: &str) -> Option<Range<usize>> {
        let mut parts = field.split('.');
        let (_, key) = (parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let key = key.split('[').next()?;
        // The entry's span may be its header only: read on to the next
        // table header.
        let text = self.src.text.get(self.span.start..)?;
        let mut offset = 0;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            let trimmed = line.trim_start();
            if i > 0 && trimmed.starts_with('[') {
                break;
            }
            if let Some(rest) = trimmed.strip_prefix(key)
                && rest.trim_start().starts_with('=')
            {
                let start = self.span.start + offset + (line.len() - trimmed.len());
                return Some(start..start + key.len());
            }
            offset += line.len();
        }
        None
    }

    fn duration(&mut self, field: String, v: &str) -> Option<Duration> {
        match humantime::parse_duration(v) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(
                    field,
                    format!("bad duration {v:?}: {e} (expected e.g. 60s, 5m)"),
                );
                None
            }
        }
    }
}

fn threshold_rule(
    raw: RawRule,
    field: &str,
    base: &Path,
    composite_leaf: bool,
    cx: &mut Ctx<'_, '_>,
) -> Option<ThresholdRule> {
    let before = cx.errors.len();
    if let Some(k) = &raw.kind
        && k != "threshold"
    {
        cx.err(
            format!("{field}.type"),
            format!("{k:?}: a rule leaf must be a threshold rule"),
        );
    }
    let metric = raw.metric.unwrap_or_else(|| {
        cx.err(
            format!("{field}.metric"),
            "missing: the metric the alarm watches",
        );
        String::new()
    });
    let aggregation_method = match raw.aggregation_method.as_deref() {
        None => {
            cx.err(
                format!("{field}.aggregation_method"),
                "missing: one of the aggregation methods of the metric's archive policy",
            );
            None
        }
        Some(m) => AggregationMethod::parse(m).or_else(|| {
            cx.err(
                format!("{field}.aggregation_method"),
                format!("unknown aggregation method {m:?}"),
            );
            None
        }),
    };
    let granularity = match raw.granularity.as_deref() {
        None => Some(Duration::from_secs(60)),
        Some(g) => cx.duration(format!("{field}.granularity"), g),
    };
    if granularity.is_some_and(|g| g.is_zero() || g.subsec_nanos() != 0 || g.as_secs() > 31_536_000)
    {
        cx.err(
            format!("{field}.granularity"),
            "must be whole seconds in 1s..365d",
        );
    }
    let op = raw.comparison_operator.unwrap_or_else(|| "eq".to_owned());
    if !OPERATORS.contains(&op.as_str()) {
        cx.err(
            format!("{field}.comparison_operator"),
            format!("{op:?} is not one of {}", OPERATORS.join(", ")),
        );
    }
    let threshold = raw.threshold.unwrap_or_else(|| {
        cx.err(
            format!("{field}.threshold"),
            "missing: the value compared with",
        );
        0.0
    });
    if !threshold.is_finite() {
        cx.err(
            format!("{field}.threshold"),
            format!("{threshold} is not a finite number"),
        );
    }
    let periods = raw.evaluation_periods.unwrap_or(1);
    if !(1..=100).contains(&periods) {
        cx.err(
            format!("{field}.evaluation_periods"),
            format!("{periods} is outside 1..100"),
        );
    }
    let resource_id = raw.resource_id.unwrap_or_else(|| "*".to_owned());
    if let Err(e) = globset::Glob::new(&resource_id) {
        cx.err(
            format!("{field}.resource_id"),
            format!("bad glob {resource_id:?}: {e}"),
        );
    }
    let cross = match raw.aggregate_series.as_deref() {
        Some(m) => match AggregationMethod::parse(m) {
            Some(AggregationMethod { rate: false, base }) => Some(base),
            _ => {
                cx.err(
                    format!("{field}.aggregate_series"),
                    format!("{m:?} is not an aggregation method without rate:"),
                );
                None
            }
        },
        None => None,
    };
    let lag = match raw.additional_ingestion_lag.as_deref() {
        None => Duration::ZERO,
        Some(l) => {
            let d = cx
                .duration(format!("{field}.additional_ingestion_lag"), l)
                .unwrap_or_default();
            if d > Duration::from_secs(86_400) {
                cx.err(
                    format!("{field}.additional_ingestion_lag"),
                    "must be at most 1d",
                );
            }
            d
        }
    };
    let mut params = vec![
        ("comparison_operator".to_owned(), op),
        ("threshold".to_owned(), threshold.to_string()),
        ("evaluation_periods".to_owned(), periods.to_string()),
    ];
    for (k, v) in raw.params.unwrap_or_default() {
        let s = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => {
                cx.err(
                    format!("{field}.params.{k}"),
                    "must be a string, number or boolean",
                );
                continue;
            }
        };
        params.retain(|(p, _)| *p != k);
        params.push((k, s));
    }
    let aggregation_method = aggregation_method?;
    let selection = match (cross, composite_leaf) {
        (Some(m), _) => Selection::Aggregated(m),
        // Composite leaves are one series each: aggregated, with the
        // rule's own method (as Aodh's by-resources rules).
        (None, true) => Selection::Aggregated(aggregation_method.base),
        (None, false) => Selection::PerSeries,
    };
    if cx.errors.len() > before {
        return None;
    }
    Some(ThresholdRule {
        plugin: PluginSource::parse(raw.plugin.as_deref().unwrap_or("builtin:threshold"), base),
        metric,
        resource_id,
        aggregation_method,
        granularity: granularity?,
        evaluation_periods: periods as u32,
        additional_ingestion_lag: lag,
        selection,
        params,
    })
}

fn raw_rule(value: toml::Value, field: &str, cx: &mut Ctx<'_, '_>) -> Option<RawRule> {
    RawRule::deserialize(value)
        .map_err(|e| cx.err(field.to_owned(), e.message().to_owned()))
        .ok()
}

fn composite(
    value: &toml::Value,
    field: &str,
    base: &Path,
    cx: &mut Ctx<'_, '_>,
) -> Option<CompositeRule> {
    if let toml::Value::Table(t) = value
        && t.len() == 1
        && let Some((op, children)) = t.iter().next()
        && (op == "and" || op == "or")
    {
        let Some(items) = children.as_array() else {
            cx.err(format!("{field}.{op}"), "must be a list of rules");
            return None;
        };
        if items.is_empty() {
            cx.err(format!("{field}.{op}"), "must not be empty");
            return None;
        }
        let parsed: Vec<Option<CompositeRule>> = items
            .iter()
            .enumerate()
            .map(|(i, c)| composite(c, &format!("{field}.{op}[{i}]"), base, cx))
            .collect();
        let children: Option<Vec<CompositeRule>> = parsed.into_iter().collect();
        let children = children?;
        return Some(if op == "and" {
            CompositeRule::And(children)
        } else {
            CompositeRule::Or(children)
        });
    }
    if !value.is_table() {
        cx.err(
            field.to_owned(),
            "must be a table: { and = [...] }, { or = [...] } or a threshold rule",
        );
        return None;
    }
    let raw = raw_rule(value.clone(), field, cx)?;
    threshold_rule(raw, field, base, true, cx).map(CompositeRule::Leaf)
}

fn actions(list: &[String], field: &str, cx: &mut Ctx<'_, '_>) -> Vec<Action> {
    let mut out: Vec<Action> = Vec::new();
    for (i, a) in list.iter().enumerate() {
        match Action::parse(a) {
            Ok(a) if !out.contains(&a) => out.push(a),
            Ok(_) => {} // Aodh removes duplicates.
            Err(msg) => cx.err(format!("{field}[{i}]"), msg),
        }
    }
    out
}

/// Validates the `[[alarm]]` entries (`raw`, with their spans).
pub(super) fn build_alarms(
    src: &Source<'_>,
    raw: Vec<toml::Spanned<RawAlarm>>,
    base: &Path,
    archive: (&[ArchivePolicy], &PolicyRules),
    errors: &mut Vec<ConfigError>,
) -> Vec<AlarmConfig> {
    let mut out = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, a) in raw.into_iter().enumerate() {
        let span = a.span();
        let a = a.into_inner();
        let field = format!("alarm[{i}]");
        let mut cx = Ctx {
            src,
            span,
            errors: &mut *errors,
        };
        let before = cx.errors.len();
        if a.name.is_empty() {
            cx.err(format!("{field}.name"), "must not be empty");
        } else if let Some(first) = names.insert(a.name.clone(), i) {
            cx.err(
                format!("{field}.name"),
                format!("duplicate alarm name {:?} (also alarm[{first}])", a.name),
            );
        }
        let kind = a.kind.clone().unwrap_or_else(|| {
            if a.composite_rule.is_some() {
                "composite".into()
            } else {
                "threshold".into()
            }
        });
        let rule = match (kind.as_str(), a.composite_rule) {
            ("composite", Some(tree)) => {
                if !a.rule.is_empty() {
                    let keys: Vec<&str> = a.rule.keys().map(String::as_str).collect();
                    cx.err(
                        field.clone(),
                        format!(
                            "a composite alarm has its rule fields in composite_rule, not {}",
                            keys.join(", ")
                        ),
                    );
                }
                composite(&tree, &format!("{field}.composite_rule"), base, &mut cx)
                    .map(Rule::Composite)
            }
            ("composite", None) => {
                cx.err(
                    format!("{field}.composite_rule"),
                    "missing for type composite",
                );
                None
            }
            ("threshold", None) => raw_rule(toml::Value::Table(a.rule), &field, &mut cx)
                .and_then(|r| threshold_rule(r, &field, base, false, &mut cx))
                .map(Rule::Threshold),
            ("threshold", Some(_)) => {
                cx.err(format!("{field}.composite_rule"), "only for type composite");
                None
            }
            (other, _) => {
                cx.err(
                    format!("{field}.type"),
                    format!("unknown alarm type {other:?} (expected threshold or composite)"),
                );
                None
            }
        };
        let severity = match a.severity.as_deref() {
            None => Severity::Low,
            Some(s) => Severity::parse(s).unwrap_or_else(|| {
                cx.err(
                    format!("{field}.severity"),
                    format!("{s:?} is not one of low, moderate, critical"),
                );
                Severity::Low
            }),
        };
        let alarm_actions = actions(&a.alarm_actions, &format!("{field}.alarm_actions"), &mut cx);
        let ok_actions = actions(&a.ok_actions, &format!("{field}.ok_actions"), &mut cx);
        let insufficient_data_actions = actions(
            &a.insufficient_data_actions,
            &format!("{field}.insufficient_data_actions"),
            &mut cx,
        );
        let mut time_constraints: Vec<TimeConstraint> = Vec::new();
        for (j, tc) in a.time_constraints.iter().enumerate() {
            let f = format!("{field}.time_constraints[{j}]");
            let duration = match &tc.duration {
                toml::Value::Integer(s) if *s >= 0 => Some(Duration::from_secs(*s as u64)),
                toml::Value::String(s) => cx.duration(format!("{f}.duration"), s),
                _ => {
                    cx.err(
                        format!("{f}.duration"),
                        "must be seconds ≥ 0 or a duration like 8h",
                    );
                    None
                }
            };
            if time_constraints.iter().any(|t| t.name == tc.name) {
                cx.err(
                    format!("{f}.name"),
                    format!("duplicate time constraint {:?}", tc.name),
                );
            }
            if let Some(d) = duration {
                match TimeConstraint::new(&tc.name, &tc.description, &tc.start, d, &tc.timezone) {
                    Ok(t) => time_constraints.push(t),
                    Err(msg) => cx.err(f, msg),
                }
            }
        }
        let Some(rule) = rule else { continue };
        for leaf in rule.leaves() {
            if let Err(msg) = crate::alarm::check_target(leaf, archive.0, archive.1) {
                cx.err(field.clone(), msg);
            }
        }
        let smallest = rule
            .leaves()
            .iter()
            .map(|l| l.granularity)
            .min()
            .unwrap_or(Duration::from_secs(60));
        let evaluation_interval = match a.evaluation_interval.as_deref() {
            None => smallest,
            Some(s) => match cx.duration(format!("{field}.evaluation_interval"), s) {
                Some(d) if d > Duration::from_secs(31_536_000) => {
                    cx.err(
                        format!("{field}.evaluation_interval"),
                        "must be at most 365d",
                    );
                    smallest
                }
                Some(d) if !d.is_zero() => d,
                Some(_) => {
                    cx.err(
                        format!("{field}.evaluation_interval"),
                        "must be greater than zero",
                    );
                    smallest
                }
                None => smallest,
            },
        };
        if cx.errors.len() > before {
            continue;
        }
        let description = a.description.unwrap_or_else(|| describe(&rule));
        out.push(AlarmConfig {
            name: a.name,
            description,
            enabled: a.enabled,
            severity,
            rule,
            evaluation_interval,
            repeat_actions: a.repeat_actions,
            alarm_actions,
            ok_actions,
            insufficient_data_actions,
            time_constraints,
        });
    }
    out
}

/// Aodh's generated description, e.g. "Alarm when cpu.util is gt a mean of
/// 90 over 60 seconds".
fn describe(rule: &Rule) -> String {
    let leaf = |t: &ThresholdRule| {
        let get = |k: &str| {
            t.params
                .iter()
                .find(|(p, _)| p == k)
                .map_or("", |(_, v)| v.as_str())
                .to_owned()
        };
        format!(
            "Alarm when {} is {} a {} of {} over {} seconds",
            t.metric,
            get("comparison_operator"),
            t.aggregation_method,
            get("threshold"),
            t.granularity.as_secs()
        )
    };
    match rule {
        Rule::Threshold(t) => leaf(t),
        Rule::Composite(c) => format!("Composite alarm over {} threshold rules", c.leaves().len()),
    }
}

/// Validates `[notifier]`.
pub(super) fn build_notifier(
    src: &Source<'_>,
    raw: Option<&toml::Spanned<RawNotifier>>,
    errors: &mut Vec<ConfigError>,
) -> NotifierSettings {
    let mut s = NotifierSettings::default();
    let Some(raw) = raw else { return s };
    let mut cx = Ctx {
        src,
        span: raw.span(),
        errors,
    };
    let raw = raw.get_ref();
    if let Some(t) = &raw.timeout
        && let Some(d) = cx.duration("notifier.timeout".into(), t)
    {
        s.timeout = d;
    }
    if let Some(r) = raw.retries {
        s.retries = r;
    }
    if let Some(b) = &raw.backoff
        && let Some(d) = cx.duration("notifier.backoff".into(), b)
    {
        s.backoff = d;
    }
    s
}

//! The alarm evaluator: schedules alarms, fetches their aggregates from
//! the rollup engine, runs the rule plugins and applies Aodh's state
//! machine. Runs on the sink's thread, beside the rollup engine.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use globset::GlobMatcher;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::composite::{CompositeLeaf, evaluate_composite};
use super::history::{self, HISTORY_FILE, HistoryRecord};
use super::notify::Notification;
use super::state::{Outcome, Refresh, threshold_transition};
use super::time_constraint::{rfc3339, within};
use super::{AlarmConfig, AlarmState, Rule, Selection, ThresholdRule, alarm_id};
use crate::bindings::alarm_rule::wasmeter::plugin::alarm::{self as wit, SeriesAggregates};
use crate::bindings::{SampleType, WitSeries};
use crate::config::PipelineConfig;
use crate::plugin::{AlarmRule, Grants, Limits, Plugin, PluginError, PluginSource, Runtime};
use crate::rollup::{
    ArchivePolicy, BucketScratch, ClosedRow, ClosedRows, PolicyRules, RollupEngine, SeriesInfo,
    aggregate, floor,
};

/// The current-state file's name under the data directory.
pub const STATE_FILE: &str = "alarms.json";

/// Which state: an alarm, and in per-series mode one of its series
/// (`resource_id{k=v,…}`; `""` otherwise).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StateKey {
    /// Alarm name.
    pub alarm: String,
    /// Series key, `""` for aggregated and composite alarms.
    pub series: String,
}

/// The current state of one alarm (series), as kept in
/// `DATA_DIR/alarms.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmStatus {
    /// Alarm name.
    pub alarm_name: String,
    /// Series key, `""` for aggregated and composite alarms.
    pub series: String,
    /// Stable id ([`alarm_id`]).
    pub alarm_id: String,
    /// `ok`, `alarm` or `insufficient data`.
    pub state: String,
    /// Why.
    pub reason: String,
    /// Aodh's reason data.
    pub reason_data: Value,
    /// When the state last changed, RFC 3339 UTC (`""`: never).
    pub state_timestamp: String,
    /// When it was last evaluated, RFC 3339 UTC (`""`: never).
    pub evaluate_timestamp: String,
}

impl AlarmStatus {
    /// A state never evaluated: `insufficient data`, "Not evaluated yet".
    pub fn new(alarm: &str, series: &str) -> Self {
        AlarmStatus {
            alarm_name: alarm.to_owned(),
            series: series.to_owned(),
            alarm_id: alarm_id(alarm, series),
            state: AlarmState::InsufficientData.as_str().to_owned(),
            reason: "Not evaluated yet".to_owned(),
            reason_data: Value::Null,
            state_timestamp: String::new(),
            evaluate_timestamp: String::new(),
        }
    }

    /// The state, parsed.
    pub fn state(&self) -> AlarmState {
        AlarmState::parse(&self.state).unwrap_or(AlarmState::InsufficientData)
    }
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    alarms: Vec<AlarmStatus>,
    /// The recent closed aggregates alarms look at, so that an alarm over
    /// several periods keeps its data across a restart.
    #[serde(default)]
    recent: Vec<RecentSeries>,
}

/// One series' recent closed rows at one policy granularity.
#[derive(Serialize, Deserialize)]
struct RecentSeries {
    policy: String,
    granularity_s: u64,
    /// The policy's methods, in row order (rows are dropped at load when
    /// the policy changed).
    methods: Vec<String>,
    metric: String,
    resource_id: String,
    unit: String,
    attributes: Vec<(String, String)>,
    /// (bucket start ns, one value per method; NaN is saved as null).
    rows: Vec<(i64, Vec<Option<f64>>)>,
}

/// Reads the whole state file (absent: empty).
fn read_state_file(data_dir: &Path) -> anyhow::Result<StateFile> {
    let path = data_dir.join(STATE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(StateFile {
                version: 1,
                alarms: Vec::new(),
                recent: Vec::new(),
            });
        }
        Err(e) => anyhow::bail!("reading {}: {e}", path.display()),
    };
    serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not an alarm state file: {e}", path.display()))
}

/// Reads `DATA_DIR/alarms.json` (absent: no states).
///
/// # Errors
/// A file that exists but cannot be read or parsed, with its path.
pub fn load_states(data_dir: &Path) -> anyhow::Result<Vec<AlarmStatus>> {
    Ok(read_state_file(data_dir)?.alarms)
}

/// One series and its (bucket start, aggregate) points, time order.
type SeriesPoints = (Arc<SeriesInfo>, Vec<(i64, f64)>);

/// Where a leaf's aggregates are in the engine.
#[derive(Debug, Clone)]
struct Target {
    policy: usize,
    granularity: usize,
    method: usize,
    granularity_ns: i64,
    glob: GlobMatcher,
}

struct Scheduled {
    config: AlarmConfig,
    targets: Vec<Target>,
    next_due: Option<i64>,
}

struct RuleSlot {
    plugin: Arc<Plugin>,
    instance: Option<AlarmRule>,
}

/// Counters of the evaluator, totals since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvaluatorReport {
    /// Alarm evaluations run (skipped ones excluded).
    pub evaluations: u64,
    /// Evaluations skipped by time constraints.
    pub skipped: u64,
    /// State transitions.
    pub transitions: u64,
    /// Rule plugin calls that failed.
    pub rule_failures: u64,
}

/// Evaluates every alarm of a config on schedule.
pub struct AlarmEvaluator {
    runtime: Runtime,
    alarms: Vec<Scheduled>,
    rules: HashMap<PluginSource, RuleSlot>,
    policies: Vec<ArchivePolicy>,
    /// Recent closed rows per (policy, granularity index) and series.
    recent: HashMap<(usize, usize), HashMap<Arc<SeriesInfo>, VecDeque<ClosedRow>>>,
    /// Rows to keep per series, and the metrics alarms look at, per
    /// (policy, granularity index).
    keep: HashMap<(usize, usize), (usize, HashSet<String>)>,
    states: BTreeMap<StateKey, AlarmStatus>,
    data_dir: PathBuf,
    history_path: PathBuf,
    report: EvaluatorReport,
    last_save: Option<std::time::Instant>,
}

/// How often states are saved when nothing transitions.
const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Why an alarm could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AlarmSetupError {
    /// The rule plugin failed to load or refused the alarm's parameters.
    #[error("alarm {alarm}: {source}")]
    Plugin {
        /// The alarm.
        alarm: String,
        /// The plugin's error.
        source: PluginError,
    },
    /// The alarm's metric, granularity or method are not archived.
    #[error("alarm {alarm}: {message}")]
    Target {
        /// The alarm.
        alarm: String,
        /// What is missing.
        message: String,
    },
    /// The state file cannot be read.
    #[error("{0:#}")]
    State(anyhow::Error),
}

/// Checks that the aggregates `rule` compares are archived: its metric has
/// an archive policy with its granularity and aggregation method, and its
/// `resource_id` glob is valid.
///
/// # Errors
/// A message naming the policy and what it has instead.
pub fn check_target(
    rule: &ThresholdRule,
    policies: &[ArchivePolicy],
    rules: &PolicyRules,
) -> Result<(), String> {
    resolve(rule, policies, rules).map(|_| ())
}

fn resolve(
    rule: &ThresholdRule,
    policies: &[ArchivePolicy],
    rules: &PolicyRules,
) -> Result<Target, String> {
    let pi = rules.policy_for(&rule.metric).ok_or_else(|| {
        format!(
            "no archive policy rule matches metric {:?}, so it has no aggregates",
            rule.metric
        )
    })?;
    let p = &policies[pi];
    let gi = p
        .definition
        .iter()
        .position(|d| d.granularity == rule.granularity)
        .ok_or_else(|| {
            let gs: Vec<String> = p
                .definition
                .iter()
                .map(|d| humantime::format_duration(d.granularity).to_string())
                .collect();
            format!(
                "granularity {} is not in archive policy {:?} of metric {:?} (granularities: {})",
                humantime::format_duration(rule.granularity),
                p.name,
                rule.metric,
                gs.join(", ")
            )
        })?;
    let method = p
        .aggregation_methods
        .iter()
        .position(|m| *m == rule.aggregation_method)
        .ok_or_else(|| {
            let ms: Vec<String> = p
                .aggregation_methods
                .iter()
                .map(|m| m.to_string())
                .collect();
            format!(
                "aggregation method {} is not in archive policy {:?} of metric {:?} (methods: {})",
                rule.aggregation_method,
                p.name,
                rule.metric,
                ms.join(", ")
            )
        })?;
    let glob = globset::Glob::new(&rule.resource_id)
        .map_err(|e| format!("resource_id: bad glob {:?}: {e}", rule.resource_id))?
        .compile_matcher();
    Ok(Target {
        policy: pi,
        granularity: gi,
        method,
        granularity_ns: p.definition[gi].granularity_ns(),
        glob,
    })
}

/// `resource_id`, or `resource_id{k=v,…}` with attributes.
fn series_key(s: &SeriesInfo) -> String {
    if s.attributes.is_empty() {
        s.resource_id.clone()
    } else {
        let attrs: Vec<String> = s
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{}{{{}}}", s.resource_id, attrs.join(","))
    }
}

impl AlarmEvaluator {
    /// An evaluator for `config`'s alarms: loads their rule plugins,
    /// checks each alarm's parameters with its plugin (an `evaluate` call
    /// over no series), and restores the states saved in
    /// `DATA_DIR/alarms.json`.
    ///
    /// # Errors
    /// [`AlarmSetupError`] for the first alarm whose plugin cannot load
    /// or refuses its parameters, or whose aggregates are not archived.
    pub fn new(config: &PipelineConfig, runtime: &Runtime) -> Result<Self, AlarmSetupError> {
        let mut e = AlarmEvaluator {
            runtime: runtime.clone(),
            alarms: Vec::new(),
            rules: HashMap::new(),
            policies: Vec::new(),
            recent: HashMap::new(),
            keep: HashMap::new(),
            states: BTreeMap::new(),
            data_dir: config.archive.data_dir.clone(),
            history_path: config.archive.root.join(HISTORY_FILE),
            report: EvaluatorReport::default(),
            last_save: None,
        };
        e.configure(config)?;
        let file = match read_state_file(&e.data_dir) {
            Ok(f) => f,
            Err(err) => {
                // A damaged file must not keep the pipeline from starting:
                // keep it aside and start from `insufficient data`.
                let path = e.data_dir.join(STATE_FILE);
                let aside = path.with_extension("json.damaged");
                tracing::error!(
                    "{err:#}; moved to {} and starting without alarm states",
                    aside.display()
                );
                let _ = std::fs::rename(&path, &aside);
                StateFile {
                    version: 1,
                    alarms: Vec::new(),
                    recent: Vec::new(),
                }
            }
        };
        e.restore_recent(file.recent);
        for s in file.alarms {
            if e.alarms.iter().any(|a| a.config.name == s.alarm_name) {
                e.states.insert(
                    StateKey {
                        alarm: s.alarm_name.clone(),
                        series: s.series.clone(),
                    },
                    s,
                );
            }
        }
        Ok(e)
    }

    /// Puts saved recent rows back where the current policies have them.
    fn restore_recent(&mut self, saved: Vec<RecentSeries>) {
        for r in saved {
            let Some(pi) = self.policies.iter().position(|p| p.name == r.policy) else {
                continue;
            };
            let p = &self.policies[pi];
            let Some(gi) = p
                .definition
                .iter()
                .position(|d| d.granularity.as_secs() == r.granularity_s)
            else {
                continue;
            };
            let methods = method_names(p);
            if methods != r.methods || !self.keep.contains_key(&(pi, gi)) {
                continue;
            }
            let info = Arc::new(SeriesInfo {
                metric: r.metric,
                resource_id: r.resource_id,
                unit: r.unit,
                attributes: r.attributes,
            });
            let q = self
                .recent
                .entry((pi, gi))
                .or_default()
                .entry(info.clone())
                .or_default();
            for (timestamp, values) in r.rows {
                q.push_back(ClosedRow {
                    timestamp,
                    series: info.clone(),
                    values,
                });
            }
        }
    }

    /// Saves the states and the recent rows now (`DATA_DIR/alarms.json`);
    /// the sink calls this when the pipeline stops.
    pub fn persist(&mut self) {
        self.save_states();
    }

    /// Applies a reloaded config: alarms are matched by name; an unchanged
    /// alarm keeps its schedule, every alarm keeps its state (states of
    /// removed alarms are dropped); rule plugins whose bytes did not change
    /// keep their instance.
    ///
    /// # Errors
    /// As [`AlarmEvaluator::new`]; the evaluator is then unchanged.
    pub fn reconfigure(&mut self, config: &PipelineConfig) -> Result<(), AlarmSetupError> {
        self.reconfigure_in(config, &config.archive.data_dir, &config.archive.root)
    }

    /// [`AlarmEvaluator::reconfigure`] keeping the states in `data_dir` and
    /// the history in archive `root` (the sink's, which a reload may have
    /// refused to move).
    ///
    /// # Errors
    /// As [`AlarmEvaluator::new`]; the evaluator is then unchanged.
    pub fn reconfigure_in(
        &mut self,
        config: &PipelineConfig,
        data_dir: &std::path::Path,
        root: &std::path::Path,
    ) -> Result<(), AlarmSetupError> {
        self.configure(config)?;
        let names: HashSet<&str> = self.alarms.iter().map(|a| a.config.name.as_str()).collect();
        self.states.retain(|k, _| names.contains(k.alarm.as_str()));
        self.data_dir = data_dir.to_path_buf();
        self.history_path = root.join(HISTORY_FILE);
        self.save_states();
        Ok(())
    }

    /// Keeps the states in `data_dir` and the history in archive `root`
    /// from now on (saving the states there if they move): where the sink
    /// moved while the alarms' reload failed.
    pub fn use_dirs(&mut self, data_dir: &std::path::Path, root: &std::path::Path) {
        let history = root.join(HISTORY_FILE);
        if self.data_dir != data_dir || self.history_path != history {
            self.data_dir = data_dir.to_path_buf();
            self.history_path = history;
            self.save_states();
        }
    }

    fn configure(&mut self, config: &PipelineConfig) -> Result<(), AlarmSetupError> {
        let mut rules: HashMap<PluginSource, RuleSlot> = HashMap::new();
        let mut alarms = Vec::new();
        for a in &config.alarms {
            let mut targets = Vec::new();
            for leaf in a.rule.leaves() {
                let t = resolve(leaf, &config.policies, &config.rules).map_err(|message| {
                    AlarmSetupError::Target {
                        alarm: a.name.clone(),
                        message,
                    }
                })?;
                targets.push(t);
                if !rules.contains_key(&leaf.plugin) {
                    let err = |source| AlarmSetupError::Plugin {
                        alarm: a.name.clone(),
                        source,
                    };
                    let bytes = leaf.plugin.read().map_err(err)?;
                    let digest = crate::plugin::digest(&bytes);
                    // Reuse the compiled plugin (not the instance: the old
                    // map stays intact until everything succeeded).
                    let slot = match self.rules.get(&leaf.plugin) {
                        Some(old) if old.plugin.digest() == digest => RuleSlot {
                            plugin: old.plugin.clone(),
                            instance: None,
                        },
                        _ => {
                            let plugin = Arc::new(
                                Plugin::from_bytes(&self.runtime, &leaf.plugin.to_string(), &bytes)
                                    .map_err(err)?,
                            );
                            RuleSlot {
                                plugin,
                                instance: None,
                            }
                        }
                    };
                    rules.insert(leaf.plugin.clone(), slot);
                }
                // The plugin checks the parameters.
                let slot = rules.get_mut(&leaf.plugin).expect("inserted above");
                let instance =
                    instance(slot, &leaf.plugin).map_err(|source| AlarmSetupError::Plugin {
                        alarm: a.name.clone(),
                        source,
                    })?;
                instance
                    .evaluate(&leaf.params, &[])
                    .map_err(|source| AlarmSetupError::Plugin {
                        alarm: a.name.clone(),
                        source,
                    })?;
            }
            let next_due = self
                .alarms
                .iter()
                .find(|o| o.config == *a)
                .and_then(|o| o.next_due);
            alarms.push(Scheduled {
                config: a.clone(),
                targets,
                next_due,
            });
        }
        let mut keep: HashMap<(usize, usize), (usize, HashSet<String>)> = HashMap::new();
        for s in &alarms {
            for (leaf, t) in s.config.rule.leaves().iter().zip(&s.targets) {
                let k = keep.entry((t.policy, t.granularity)).or_default();
                k.0 = k.0.max(leaf.evaluation_periods as usize + 2);
                k.1.insert(leaf.metric.clone());
            }
        }
        if self.policies != config.policies {
            self.recent.clear();
        }
        self.recent.retain(|k, _| keep.contains_key(k));
        self.policies = config.policies.clone();
        self.keep = keep;
        // Instances of unchanged plugins carry over (their state too).
        for (source, slot) in rules.iter_mut() {
            if let Some(old) = self.rules.remove(source)
                && old.plugin.digest() == slot.plugin.digest()
                && old.instance.is_some()
            {
                slot.instance = old.instance;
            }
        }
        self.rules = rules;
        self.alarms = alarms;
        Ok(())
    }

    /// Counters so far.
    pub fn report(&self) -> &EvaluatorReport {
        &self.report
    }

    /// Every known state, by alarm and series.
    pub fn states(&self) -> &BTreeMap<StateKey, AlarmStatus> {
        &self.states
    }

    /// Keeps the recent closed rows alarms need (call with every
    /// [`RollupEngine::take_closed`] result, before it is written).
    pub fn observe_closed(&mut self, closed: &[Vec<ClosedRows>]) {
        for (&(p, g), (n, metrics)) in &self.keep {
            let Some(rows) = closed.get(p).and_then(|c| c.get(g)) else {
                continue;
            };
            let per_series = self.recent.entry((p, g)).or_default();
            // Per run of one series' rows: one lookup, and only the last
            // `n` rows copied (a daily close brings 1,440 per series).
            for (series, run) in rows.runs() {
                if !metrics.contains(&series.metric) {
                    continue;
                }
                let q = per_series.entry(series.clone()).or_default();
                let from = run.end - run.len().min(*n);
                q.extend((from..run.end).map(|i| rows.row(i).to_owned()));
                while q.len() > *n {
                    q.pop_front();
                }
            }
        }
    }

    /// The earliest time an enabled alarm is due: `Some(i64::MIN)` when one
    /// was never evaluated, `None` without enabled alarms.
    pub fn next_due(&self) -> Option<i64> {
        self.alarms
            .iter()
            .filter(|a| a.config.enabled)
            .map(|a| a.next_due.unwrap_or(i64::MIN))
            .min()
    }

    /// Event time (`wasmeter import`): runs, in order, every evaluation due
    /// at or before `until_ns`, each at its own due time, as a live run
    /// would have (the first one, of alarms never evaluated, at
    /// `until_ns`). Call it before ingesting samples stamped `until_ns` or
    /// later.
    pub fn evaluate_until(
        &mut self,
        until_ns: i64,
        engine: &mut RollupEngine,
    ) -> Vec<Notification> {
        let mut notes = Vec::new();
        while let Some(t) = self.next_due() {
            if t > until_ns {
                break;
            }
            let at = if t == i64::MIN { until_ns } else { t };
            notes.extend(self.evaluate_due(at, engine));
        }
        notes
    }

    /// Evaluates every enabled alarm whose evaluation is due at `now_ns`
    /// (ns since the Unix epoch: the wall clock, or event time on import),
    /// records transitions in the history and saves the states; returns
    /// the notifications to send. The first call evaluates every alarm;
    /// after that each runs at the multiples of its evaluation interval.
    pub fn evaluate_due(&mut self, now_ns: i64, engine: &mut RollupEngine) -> Vec<Notification> {
        if engine.policies() != self.policies.as_slice() {
            // A reload changed the policies but the alarms could not
            // follow: their targets would point into the wrong policies.
            tracing::error!("alarms not evaluated: their archive policies are not the engine's");
            return Vec::new();
        }
        let mut open: HashMap<(usize, usize), Vec<ClosedRow>> = HashMap::new();
        let mut notes = Vec::new();
        let mut records = Vec::new();
        let mut evaluated = false;
        for i in 0..self.alarms.len() {
            let a = &mut self.alarms[i];
            if !a.config.enabled || a.next_due.is_some_and(|d| d > now_ns) {
                continue;
            }
            a.next_due = Some(crate::pipeline::next_tick(
                now_ns,
                a.config.evaluation_interval,
            ));
            if !within(&a.config.time_constraints, now_ns) {
                self.report.skipped += 1;
                continue;
            }
            evaluated = true;
            self.report.evaluations += 1;
            self.evaluate_alarm(i, now_ns, engine, &mut open, &mut notes, &mut records);
        }
        if let Err(e) = history::append(&self.history_path, &records) {
            tracing::error!("cannot record alarm history: {e:#}");
        }
        // Transitions are saved at once; evaluation times and recent rows
        // at most every SAVE_EVERY (and when the pipeline stops).
        let due = self.last_save.is_none_or(|t| t.elapsed() >= SAVE_EVERY);
        if !records.is_empty() || (evaluated && due) {
            self.save_states();
        }
        notes
    }

    fn evaluate_alarm(
        &mut self,
        i: usize,
        now: i64,
        engine: &mut RollupEngine,
        open: &mut HashMap<(usize, usize), Vec<ClosedRow>>,
        notes: &mut Vec<Notification>,
        records: &mut Vec<HistoryRecord>,
    ) {
        let config = self.alarms[i].config.clone();
        let targets = self.alarms[i].targets.clone();
        match &config.rule {
            Rule::Threshold(rule) => {
                let outcomes = match rule.selection {
                    Selection::PerSeries => {
                        let known: Vec<String> = self
                            .states
                            .keys()
                            .filter(|k| k.alarm == config.name)
                            .map(|k| k.series.clone())
                            .collect();
                        let out = self.per_series(rule, &targets[0], now, engine, open, &known);
                        // Once series match, the alarm-level placeholder
                        // state (no series yet) is gone.
                        if out.iter().any(|o| !o.0.is_empty()) {
                            self.states.remove(&StateKey {
                                alarm: config.name.clone(),
                                series: String::new(),
                            });
                        }
                        out
                    }
                    Selection::Aggregated(_) => {
                        let (detail, o) = self.aggregated(rule, &targets[0], now, engine, open);
                        vec![(String::new(), detail, o)]
                    }
                };
                for (series, detail, outcome) in outcomes {
                    let key = StateKey {
                        alarm: config.name.clone(),
                        series: series.clone(),
                    };
                    let current = self
                        .states
                        .get(&key)
                        .map_or(AlarmState::InsufficientData, AlarmStatus::state);
                    let refresh = threshold_transition(
                        current,
                        config.repeat_actions,
                        rule.evaluation_periods,
                        &outcome,
                    );
                    self.apply(&config, key, detail, now, refresh, notes, records);
                }
            }
            Rule::Composite(tree) => {
                let mut leaves = Vec::new();
                for (leaf, t) in tree.leaves().into_iter().zip(&targets) {
                    let (_, outcome) = self.aggregated(leaf, t, now, engine, open);
                    leaves.push(CompositeLeaf {
                        rule: leaf.to_json(),
                        outcome,
                    });
                }
                let key = StateKey {
                    alarm: config.name.clone(),
                    series: String::new(),
                };
                let current = self
                    .states
                    .get(&key)
                    .map_or(AlarmState::InsufficientData, AlarmStatus::state);
                let refresh = evaluate_composite(tree, current, config.repeat_actions, &leaves);
                self.apply(&config, key, Value::Null, now, refresh, notes, records);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        config: &AlarmConfig,
        key: StateKey,
        detail: Value,
        now: i64,
        refresh: Option<Refresh>,
        notes: &mut Vec<Notification>,
        records: &mut Vec<HistoryRecord>,
    ) {
        let status = self
            .states
            .entry(key.clone())
            .or_insert_with(|| AlarmStatus::new(&key.alarm, &key.series));
        status.evaluate_timestamp = rfc3339(now);
        let Some(r) = refresh else {
            return;
        };
        if r.changed() {
            self.report.transitions += 1;
            status.state = r.current.as_str().to_owned();
            status.reason = r.reason.clone();
            status.reason_data = r.reason_data.clone();
            status.state_timestamp = rfc3339(now);
            tracing::info!(alarm = %config.name, series = %key.series, previous = %r.previous, current = %r.current, "alarm transition: {}", r.reason);
            records.push(HistoryRecord {
                event_id: uuid::Uuid::new_v4().to_string(),
                alarm_id: status.alarm_id.clone(),
                alarm_name: config.name.clone(),
                series: key.series.clone(),
                kind: "state transition".to_owned(),
                detail: json!({"state": r.current.as_str(), "transition_reason": r.reason})
                    .to_string(),
                previous: r.previous.as_str().to_owned(),
                state: r.current.as_str().to_owned(),
                reason: r.reason.clone(),
                reason_data: r.reason_data.clone(),
                severity: config.severity.as_str().to_owned(),
                timestamp: rfc3339(now),
            });
        }
        let actions = config.actions(r.current);
        if !actions.is_empty() {
            notes.push(Notification {
                actions: actions.to_vec(),
                alarm_name: config.name.clone(),
                alarm_id: status.alarm_id.clone(),
                series: key.series,
                series_detail: detail,
                severity: config.severity,
                previous: r.previous,
                current: r.current,
                reason: r.reason,
                reason_data: r.reason_data,
                timestamp: now,
            });
        }
    }

    /// The points of every series of `rule` in its query window: closed
    /// recent rows and the open buckets, `[start, now)`, time order.
    fn points(
        &mut self,
        rule: &ThresholdRule,
        t: &Target,
        now: i64,
        engine: &mut RollupEngine,
        open: &mut HashMap<(usize, usize), Vec<ClosedRow>>,
    ) -> Vec<SeriesPoints> {
        let g = t.granularity_ns;
        let periods = i64::from(rule.evaluation_periods);
        let lag = rule.additional_ingestion_lag.as_nanos() as i64;
        // Aodh's window: granularity × (periods + 1) + lag, start floored
        // to the granularity (Gnocchi's read).
        let start = floor(now - g * (periods + 1) - lag, g);
        let open_rows = open
            .entry((t.policy, t.granularity))
            .or_insert_with(|| engine.open_rows(t.policy, t.granularity));
        let mut by_series: HashMap<Arc<SeriesInfo>, BTreeMap<i64, f64>> = HashMap::new();
        let matches = |s: &SeriesInfo| s.metric == rule.metric && t.glob.is_match(&s.resource_id);
        let closed = self.recent.get(&(t.policy, t.granularity));
        let closed_rows = closed.into_iter().flat_map(|m| m.values().flatten());
        for row in closed_rows.chain(open_rows.iter()) {
            if !matches(&row.series) {
                continue;
            }
            let entry = by_series.entry(row.series.clone()).or_default();
            if row.timestamp >= start
                && row.timestamp < now
                && let Some(Some(v)) = row.values.get(t.method)
            {
                entry.insert(row.timestamp, *v);
            }
        }
        let mut out: Vec<SeriesPoints> = by_series
            .into_iter()
            .map(|(s, m)| (s, m.into_iter().collect()))
            .collect();
        out.sort_by_key(|a| series_key(&a.0));
        out
    }

    fn per_series(
        &mut self,
        rule: &ThresholdRule,
        t: &Target,
        now: i64,
        engine: &mut RollupEngine,
        open: &mut HashMap<(usize, usize), Vec<ClosedRow>>,
        known: &[String],
    ) -> Vec<(String, Value, Outcome)> {
        let series = self.points(rule, t, now, engine, open);
        let no_data = || Outcome::Unknown {
            reason: format!(
                "No datapoint for granularity {}",
                t.granularity_ns / 1_000_000_000
            ),
            points: 0,
            most_recent: None,
        };
        let mut out: Vec<(String, Value, Outcome)> = Vec::new();
        let mut input = Vec::new();
        let mut slots = Vec::new();
        for (info, points) in &series {
            let key = series_key(info);
            let detail = json!({"metric": info.metric, "resource_id": info.resource_id, "attributes": info.attributes.iter().cloned().collect::<BTreeMap<_,_>>()});
            if points.is_empty() {
                out.push((key, detail, no_data()));
            } else {
                slots.push(out.len());
                out.push((key, detail, no_data()));
                input.push(aggregates(
                    wit_series(info),
                    points,
                    rule.evaluation_periods,
                ));
            }
        }
        let verdicts = self.run_rule(rule, &input);
        for (slot, v) in slots.into_iter().zip(verdicts) {
            out[slot].2 = v;
        }
        // Series seen before that have no row at all any more, and the
        // alarm itself before any series matched.
        for k in known {
            if !out.iter().any(|(s, _, _)| s == k) && (!k.is_empty() || out.is_empty()) {
                out.push((k.clone(), Value::Null, no_data()));
            }
        }
        if out.is_empty() {
            out.push((String::new(), Value::Null, no_data()));
        }
        out
    }

    fn aggregated(
        &mut self,
        rule: &ThresholdRule,
        t: &Target,
        now: i64,
        engine: &mut RollupEngine,
        open: &mut HashMap<(usize, usize), Vec<ClosedRow>>,
    ) -> (Value, Outcome) {
        let method = match rule.selection {
            Selection::Aggregated(m) => m,
            Selection::PerSeries => rule.aggregation_method.base,
        };
        let series = self.points(rule, t, now, engine, open);
        // Gnocchi's aggregates with needed_overlap=0: at each bucket, the
        // method over the series that have a point there.
        let mut at: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        for (_, points) in &series {
            for &(ts, v) in points {
                at.entry(ts).or_default().push(v);
            }
        }
        let mut scratch = BucketScratch::default();
        let points: Vec<(i64, f64)> = at
            .into_iter()
            .filter_map(|(ts, vs)| {
                scratch.reset();
                aggregate(method, &vs, &mut scratch).map(|v| (ts, v))
            })
            .collect();
        let detail =
            json!({"metric": rule.metric, "resource_id": rule.resource_id, "series": series.len()});
        if points.is_empty() {
            return (
                detail,
                Outcome::Unknown {
                    reason: format!(
                        "No datapoint for granularity {}",
                        t.granularity_ns / 1_000_000_000
                    ),
                    points: 0,
                    most_recent: None,
                },
            );
        }
        let info = WitSeries {
            metric: rule.metric.clone(),
            resource_id: rule.resource_id.clone(),
            unit: series.first().map(|s| s.0.unit.clone()).unwrap_or_default(),
            type_: SampleType::Gauge,
            attributes: Vec::new(),
        };
        let input = [aggregates(info, &points, rule.evaluation_periods)];
        let outcome = self
            .run_rule(rule, &input)
            .pop()
            .expect("one verdict per series");
        (detail, outcome)
    }

    /// One plugin call for every series of `input`; a failing call gives
    /// every series an unknown outcome naming the failure (Aodh treats
    /// evaluation errors as insufficient data).
    fn run_rule(&mut self, rule: &ThresholdRule, input: &[SeriesAggregates]) -> Vec<Outcome> {
        if input.is_empty() {
            return Vec::new();
        }
        let periods = rule.evaluation_periods;
        let result = match self.rules.get_mut(&rule.plugin) {
            Some(slot) => {
                instance(slot, &rule.plugin).and_then(|i| i.evaluate(&rule.params, input))
            }
            None => Err(PluginError::new(
                rule.plugin.to_string(),
                crate::plugin::PluginErrorKind::Internal,
                "rule plugin not loaded",
            )),
        };
        match result {
            Ok(evals) => evals
                .into_iter()
                .map(|e| match e.state {
                    wit::State::InsufficientData => Outcome::Unknown {
                        reason: if e.reason.is_empty() {
                            format!("{periods} datapoints are unknown")
                        } else {
                            e.reason
                        },
                        points: e.points,
                        most_recent: e.most_recent,
                    },
                    s if e.equivocal => Outcome::Equivocal {
                        trend: state(s),
                        points: e.points,
                        outside: e.outside.min(e.points),
                        most_recent: e.most_recent,
                    },
                    s => Outcome::Decided {
                        state: state(s),
                        points: e.points,
                        outside: e.outside.min(e.points),
                        most_recent: e.most_recent,
                    },
                })
                .collect(),
            Err(e) => {
                self.report.rule_failures += 1;
                tracing::error!("alarm rule failed: {e}");
                if e.kind.poisons_instance()
                    && let Some(slot) = self.rules.get_mut(&rule.plugin)
                {
                    slot.instance = None;
                }
                input
                    .iter()
                    .map(|s| Outcome::Unknown {
                        reason: format!("rule evaluation failed: {e}"),
                        points: s.values.len() as u32,
                        most_recent: s.values.last().copied(),
                    })
                    .collect()
            }
        }
    }

    /// Writes `DATA_DIR/alarms.json` (atomically: a temporary file renamed).
    fn save_states(&mut self) {
        self.last_save = Some(std::time::Instant::now());
        let mut recent = Vec::new();
        for (&(pi, gi), per_series) in &self.recent {
            let Some(p) = self.policies.get(pi) else {
                continue;
            };
            let methods = method_names(p);
            for (info, rows) in per_series {
                recent.push(RecentSeries {
                    policy: p.name.clone(),
                    granularity_s: p.definition[gi].granularity.as_secs(),
                    methods: methods.clone(),
                    metric: info.metric.clone(),
                    resource_id: info.resource_id.clone(),
                    unit: info.unit.clone(),
                    attributes: info.attributes.clone(),
                    rows: rows
                        .iter()
                        .map(|r| (r.timestamp, r.values.clone()))
                        .collect(),
                });
            }
        }
        let file = StateFile {
            version: 1,
            alarms: self.states.values().cloned().collect(),
            recent,
        };
        let path = self.data_dir.join(STATE_FILE);
        let write = || -> anyhow::Result<()> {
            std::fs::create_dir_all(&self.data_dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(&self.data_dir)?;
            serde_json::to_writer_pretty(&mut tmp, &file)?;
            tmp.as_file().sync_all()?;
            tmp.persist(&path)?;
            crate::archive::sync_dir(&self.data_dir)?;
            Ok(())
        };
        if let Err(e) = write() {
            tracing::error!("cannot save alarm states to {}: {e:#}", path.display());
        }
    }
}

fn instance<'a>(
    slot: &'a mut RuleSlot,
    source: &PluginSource,
) -> Result<&'a mut AlarmRule, PluginError> {
    if slot.instance.is_none() {
        slot.instance = Some(AlarmRule::new(
            slot.plugin.clone(),
            &source.to_string(),
            &[],
            &Grants::default(),
            Limits::default(),
        )?);
    }
    Ok(slot.instance.as_mut().expect("set above"))
}

/// A policy's aggregation methods by name, in row order.
fn method_names(p: &ArchivePolicy) -> Vec<String> {
    p.aggregation_methods
        .iter()
        .map(|m| m.to_string())
        .collect()
}

fn state(s: wit::State) -> AlarmState {
    match s {
        wit::State::Ok => AlarmState::Ok,
        wit::State::Alarm => AlarmState::Alarm,
        wit::State::InsufficientData => AlarmState::InsufficientData,
    }
}

fn wit_series(s: &SeriesInfo) -> WitSeries {
    WitSeries {
        metric: s.metric.clone(),
        resource_id: s.resource_id.clone(),
        unit: s.unit.clone(),
        type_: SampleType::Gauge,
        attributes: s.attributes.clone(),
    }
}

/// The last `periods` points (Aodh's sanitize).
fn aggregates(series: WitSeries, points: &[(i64, f64)], periods: u32) -> SeriesAggregates {
    let from = points.len().saturating_sub(periods as usize);
    SeriesAggregates {
        series,
        timestamps: points[from..].iter().map(|p| p.0).collect(),
        values: points[from..].iter().map(|p| p.1).collect(),
    }
}

//! The stage graph: collectors on their interval, transformers fed through
//! bounded channels, and the sink that receives what leaves the graph.
//!
//! Consumes: a validated [`PipelineConfig`] and a plugin [`Runtime`].
//! Emits: Arrow sample batches to a [`Sink`], and a [`RunReport`] of what
//! each stage did.
//!
//! ```text
//!  collector ──┐                       ┌──> transformer ──> … ──┐
//!  collector ──┴─(bounded channel)──> transformer ──────────────┴──> sink
//! ```
//!
//! Every stage is a tokio task; Wasm calls run on the blocking pool, one
//! call per batch. Channels are bounded ([`CHANNEL_CAPACITY`] batches), so
//! a slow stage slows its producers instead of queueing without end.
//! Shutdown stops the collectors; each downstream stage then finishes the
//! batches already sent to it and closes its outputs in turn, so nothing in
//! flight is lost.

mod backoff;
mod dead_letter;

pub use backoff::Backoff;
pub use dead_letter::DeadLetter;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::Int32Type;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::batch::columns;
use crate::config::{MeterFilter, PipelineConfig};
use crate::plugin::{self, CallStats, Plugin, PluginError, PluginErrorKind, PluginSource, Runtime};

/// Batches a stage's input channel holds before its producers wait.
pub const CHANNEL_CAPACITY: usize = 16;

/// Where the samples leaving the graph go.
pub trait Sink: Send + 'static {
    /// Receives one batch produced by a leaf stage (`stage`).
    fn write(&mut self, stage: &str, batch: &RecordBatch);

    /// Called about once a second with the wall clock, ns since the Unix
    /// epoch (for time-driven work: closing idle buckets, flushing).
    fn tick(&mut self, _now_ns: i64) {}

    /// Called once, after the last batch, when the pipeline stops.
    fn finish(&mut self) {}
}

/// How often the sink's [`Sink::tick`] runs.
pub const SINK_TICK: Duration = Duration::from_secs(1);

/// What a stage did during a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageReport {
    /// Batches received (collectors: ticks).
    pub batches: u64,
    /// Samples received (0 for collectors).
    pub samples_in: u64,
    /// Samples emitted.
    pub samples_out: u64,
    /// The plugin's counters over every instance the stage had; `errors`
    /// also counts batches refused while the plugin was backed off.
    pub plugin: CallStats,
    /// Samples kept in dead-letter files.
    pub dead_lettered: u64,
    /// Instances replaced after a trap, deadline or memory-cap hit, or
    /// recycled above the memory high-water mark.
    pub replaced_instances: u64,
}

/// What every stage did, by stage name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// One entry per stage.
    pub stages: HashMap<String, StageReport>,
    /// Samples the sink received.
    pub samples_to_sink: u64,
}

/// Why a pipeline could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// A plugin failed to load or to initialise.
    #[error("stage {stage}: {source}")]
    Stage {
        /// The stage.
        stage: String,
        /// The plugin's error.
        source: PluginError,
    },
}

/// How to stop a running pipeline.
#[derive(Clone)]
pub struct Shutdown(watch::Sender<bool>);

impl Shutdown {
    /// Asks the collectors to stop; the graph then drains.
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

enum Output {
    Stage(mpsc::Sender<RecordBatch>),
    Sink(mpsc::Sender<(Arc<str>, RecordBatch)>),
}

impl Output {
    async fn send(&self, stage: &Arc<str>, batch: RecordBatch) -> bool {
        match self {
            Output::Stage(tx) => tx.send(batch).await.is_ok(),
            Output::Sink(tx) => tx.send((stage.clone(), batch)).await.is_ok(),
        }
    }
}

async fn send_all(outputs: &[Output], stage: &Arc<str>, batch: RecordBatch) {
    if batch.num_rows() == 0 {
        return;
    }
    for out in outputs {
        out.send(stage, batch.clone()).await;
    }
}

/// A pipeline ready to run: plugins loaded and instantiated.
pub struct Pipeline {
    tasks: JoinSet<(String, StageReport)>,
    sink_task: tokio::task::JoinHandle<u64>,
    shutdown: Shutdown,
}

impl Pipeline {
    /// Loads every plugin, instantiates every stage and starts the tasks.
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`PipelineError::Stage`] for the first stage whose plugin fails to
    /// load, is of the wrong world, or refuses its settings.
    pub fn start(
        config: &PipelineConfig,
        runtime: &Runtime,
        mut sink: impl Sink,
    ) -> Result<Self, PipelineError> {
        let dead_letter = DeadLetter::new(&config.archive.data_dir.join("dead-letter"));
        let mut plugins: HashMap<PluginSource, Arc<Plugin>> = HashMap::new();
        let mut load =
            |stage: &str, source: &PluginSource| -> Result<Arc<Plugin>, PipelineError> {
                if let Some(p) = plugins.get(source) {
                    return Ok(p.clone());
                }
                let p = Arc::new(Plugin::load(runtime, &source.to_string(), source).map_err(
                    |e| PipelineError::Stage {
                        stage: stage.to_owned(),
                        source: e,
                    },
                )?);
                plugins.insert(source.clone(), p.clone());
                Ok(p)
            };

        // Input channels of the transformers, and who feeds whom.
        let mut inboxes: HashMap<String, (mpsc::Sender<RecordBatch>, mpsc::Receiver<RecordBatch>)> =
            config
                .transformers
                .iter()
                .map(|t| (t.name.clone(), mpsc::channel(CHANNEL_CAPACITY)))
                .collect();
        let mut consumers: HashMap<&str, Vec<&str>> = HashMap::new();
        for t in &config.transformers {
            for input in &t.inputs {
                consumers
                    .entry(input.as_str())
                    .or_default()
                    .push(t.name.as_str());
            }
        }
        let (sink_tx, mut sink_rx) = mpsc::channel::<(Arc<str>, RecordBatch)>(CHANNEL_CAPACITY);
        let outputs_of = |name: &str,
                          inboxes: &HashMap<
            String,
            (mpsc::Sender<RecordBatch>, mpsc::Receiver<RecordBatch>),
        >|
         -> Vec<Output> {
            match consumers.get(name) {
                Some(cs) => cs
                    .iter()
                    .map(|c| Output::Stage(inboxes[*c].0.clone()))
                    .collect(),
                None => vec![Output::Sink(sink_tx.clone())],
            }
        };

        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();

        for t in &config.transformers {
            let plugin = load(&t.name, &t.plugin)?;
            let instance =
                plugin::Transformer::new(plugin, &t.name, &t.settings, &t.grants, t.limits)
                    .map_err(|e| PipelineError::Stage {
                        stage: t.name.clone(),
                        source: e,
                    })?;
            let outputs = outputs_of(&t.name, &inboxes);
            let stage = TransformerStage {
                name: Arc::from(t.name.as_str()),
                instance: Some(instance),
                meters: t.meters.clone(),
                pass_unmatched: t.pass_unmatched,
                settings: t.settings.clone(),
                grants: t.grants.clone(),
                limits: t.limits,
                outputs,
                report: StageReport::default(),
                dead_letter: dead_letter.clone(),
                backoff: Backoff::default(),
            };
            let rx = inboxes
                .get_mut(&t.name)
                .map(|(_, rx)| std::mem::replace(rx, mpsc::channel(1).1))
                .unwrap();
            tasks.spawn(stage.run(rx));
        }
        for c in &config.collectors {
            let plugin = load(&c.name, &c.plugin)?;
            let instance =
                plugin::Collector::new(plugin, &c.name, &c.settings, &c.grants, c.limits).map_err(
                    |e| PipelineError::Stage {
                        stage: c.name.clone(),
                        source: e,
                    },
                )?;
            let stage = CollectorStage {
                name: Arc::from(c.name.as_str()),
                instance: Some(instance),
                interval: c.interval,
                settings: c.settings.clone(),
                grants: c.grants.clone(),
                limits: c.limits,
                outputs: outputs_of(&c.name, &inboxes),
                report: StageReport::default(),
                backoff: Backoff::default(),
            };
            tasks.spawn(stage.run(stop_rx.clone()));
        }
        // Only the stages hold senders now: when they finish, channels close.
        drop(inboxes);
        drop(sink_tx);

        // The sink does blocking work (Parquet files): its own thread.
        let handle = tokio::runtime::Handle::current();
        let sink_task = tokio::task::spawn_blocking(move || {
            handle.block_on(async move {
                let mut samples = 0u64;
                let mut tick = tokio::time::interval(SINK_TICK);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        received = sink_rx.recv() => match received {
                            Some((stage, batch)) => {
                                samples += batch.num_rows() as u64;
                                sink.write(&stage, &batch);
                            }
                            None => break,
                        },
                        _ = tick.tick() => sink.tick(now_ns()),
                    }
                }
                sink.finish();
                samples
            })
        });
        Ok(Pipeline {
            tasks,
            sink_task,
            shutdown: Shutdown(stop_tx),
        })
    }

    /// A handle that stops the pipeline.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Waits until every stage has finished (after [`Shutdown::trigger`])
    /// and the sink has received everything.
    pub async fn wait(mut self) -> RunReport {
        let mut report = RunReport::default();
        while let Some(done) = self.tasks.join_next().await {
            if let Ok((name, stage)) = done {
                report.stages.insert(name, stage);
            }
        }
        report.samples_to_sink = self.sink_task.await.unwrap_or(0);
        report
    }
}

/// The wall clock, ns since the Unix epoch, UTC.
pub fn wall_clock_ns() -> i64 {
    now_ns()
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// The first multiple of `interval` (since the Unix epoch) after `now_ns`.
pub fn next_tick(now_ns: i64, interval: Duration) -> i64 {
    let step = interval.as_nanos().max(1) as i64;
    (now_ns.div_euclid(step) + 1) * step
}

struct CollectorStage {
    name: Arc<str>,
    instance: Option<plugin::Collector>,
    interval: Duration,
    settings: Vec<(String, String)>,
    grants: plugin::Grants,
    limits: plugin::Limits,
    outputs: Vec<Output>,
    report: StageReport,
    backoff: Backoff,
}

impl CollectorStage {
    async fn run(mut self, mut stop: watch::Receiver<bool>) -> (String, StageReport) {
        loop {
            // Ticks sit on multiples of the interval: no drift.
            let tick = next_tick(now_ns(), self.interval);
            let wait = Duration::from_nanos((tick - now_ns()).max(0) as u64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            self.report.batches += 1;
            if self.backoff.resting(Instant::now()) {
                self.report.plugin.count_error(PluginErrorKind::BackedOff);
                continue;
            }
            let Some(mut instance) = self.instance.take() else {
                break;
            };
            let (instance, result) = tokio::task::spawn_blocking(move || {
                let r = instance.collect(tick);
                (instance, r)
            })
            .await
            .expect("collector call panicked");
            self.instance = Some(instance);
            match result {
                Ok(batch) => {
                    self.backoff.success();
                    self.report.samples_out += batch.num_rows() as u64;
                    send_all(&self.outputs, &self.name, batch).await;
                }
                Err(e) => {
                    tracing::error!(stage = %self.name, kind = %e.kind, "collect failed: {e}");
                    if let Some(rest) = self.backoff.failure(Instant::now()) {
                        tracing::warn!(stage = %self.name, failures = self.backoff.failures(), "backing off for {rest:?}");
                    }
                    if e.kind.poisons_instance() {
                        self.replace_instance();
                    }
                }
            }
            if self.instance.as_ref().is_some_and(|i| i.needs_recycling()) {
                self.replace_instance();
            }
        }
        if let Some(i) = &self.instance {
            self.report.plugin.merge(i.stats());
        }
        (self.name.to_string(), self.report)
    }

    /// Starts a fresh instance (the old one trapped or grew too large).
    fn replace_instance(&mut self) {
        let Some(old) = self.instance.take() else {
            return;
        };
        match plugin::Collector::new(
            old.plugin().clone(),
            &self.name,
            &self.settings,
            &self.grants,
            self.limits,
        ) {
            Ok(fresh) => {
                self.report.plugin.merge(old.stats());
                self.report.replaced_instances += 1;
                self.instance = Some(fresh);
            }
            Err(e) => {
                tracing::error!(stage = %self.name, "cannot start a fresh instance, keeping the old one: {e}");
                self.instance = Some(old);
            }
        }
    }
}

struct TransformerStage {
    name: Arc<str>,
    instance: Option<plugin::Transformer>,
    meters: MeterFilter,
    pass_unmatched: bool,
    settings: Vec<(String, String)>,
    grants: plugin::Grants,
    limits: plugin::Limits,
    outputs: Vec<Output>,
    report: StageReport,
    dead_letter: DeadLetter,
    backoff: Backoff,
}

impl TransformerStage {
    async fn run(mut self, mut rx: mpsc::Receiver<RecordBatch>) -> (String, StageReport) {
        while let Some(batch) = rx.recv().await {
            self.report.batches += 1;
            self.report.samples_in += batch.num_rows() as u64;
            let (matched, unmatched) = split_by_meters(&batch, &self.meters);
            if let Some(rest) = unmatched.filter(|_| self.pass_unmatched) {
                self.report.samples_out += rest.num_rows() as u64;
                send_all(&self.outputs, &self.name, rest).await;
            }
            if matched.num_rows() == 0 {
                continue;
            }
            if self.backoff.resting(Instant::now()) {
                let e = PluginError::new(
                    &*self.name,
                    PluginErrorKind::BackedOff,
                    "the plugin failed repeatedly and is resting",
                );
                self.keep_dead_letter(&e, &matched);
                self.report.plugin.count_error(e.kind);
                continue;
            }
            let Some(mut instance) = self.instance.take() else {
                break;
            };
            let (instance, input, result) = tokio::task::spawn_blocking(move || {
                let r = instance.transform(&matched);
                (instance, matched, r)
            })
            .await
            .expect("transformer call panicked");
            self.instance = Some(instance);
            match result {
                Ok(out) => {
                    self.backoff.success();
                    self.report.samples_out += out.num_rows() as u64;
                    send_all(&self.outputs, &self.name, out).await;
                }
                Err(e) => {
                    tracing::error!(stage = %self.name, kind = %e.kind, "transform failed: {e}");
                    self.keep_dead_letter(&e, &input);
                    if let Some(rest) = self.backoff.failure(Instant::now()) {
                        tracing::warn!(stage = %self.name, failures = self.backoff.failures(), "backing off for {rest:?}");
                    }
                    if e.kind.poisons_instance() {
                        self.replace_instance();
                    }
                }
            }
            if self.instance.as_ref().is_some_and(|i| i.needs_recycling()) {
                self.replace_instance();
            }
        }
        if let Some(i) = &self.instance {
            self.report.plugin.merge(i.stats());
        }
        (self.name.to_string(), self.report)
    }

    fn keep_dead_letter(&mut self, error: &PluginError, batch: &RecordBatch) {
        let plugin = self.instance.as_ref().map_or("", |i| i.plugin().name());
        match self.dead_letter.write(&self.name, plugin, error, batch) {
            Ok(path) => {
                self.report.dead_lettered += batch.num_rows() as u64;
                tracing::warn!(stage = %self.name, samples = batch.num_rows(), file = %path.display(), "input batch kept as a dead letter");
            }
            Err(io) => {
                tracing::error!(stage = %self.name, samples = batch.num_rows(), "cannot write a dead letter, the batch is lost: {io:#}")
            }
        }
    }

    /// Starts a fresh instance (the old one trapped or grew too large).
    fn replace_instance(&mut self) {
        let Some(old) = self.instance.take() else {
            return;
        };
        match plugin::Transformer::new(
            old.plugin().clone(),
            &self.name,
            &self.settings,
            &self.grants,
            self.limits,
        ) {
            Ok(fresh) => {
                self.report.plugin.merge(old.stats());
                self.report.replaced_instances += 1;
                self.instance = Some(fresh);
            }
            Err(e) => {
                tracing::error!(stage = %self.name, "cannot start a fresh instance, keeping the old one: {e}");
                self.instance = Some(old);
            }
        }
    }
}

/// Splits a batch into the rows whose metric the filter takes and the rest
/// (`None` when nothing is rejected). One filter test per distinct metric,
/// not per sample.
fn split_by_meters(
    batch: &RecordBatch,
    meters: &MeterFilter,
) -> (RecordBatch, Option<RecordBatch>) {
    if meters.is_all() || batch.num_rows() == 0 {
        return (batch.clone(), None);
    }
    let Some(metric) = batch
        .column_by_name(columns::METRIC)
        .and_then(|c| c.as_dictionary_opt::<Int32Type>())
    else {
        return (batch.clone(), None);
    };
    let names = metric.values().as_string::<i32>();
    let take: Vec<bool> = (0..names.len())
        .map(|i| meters.matches(names.value(i)))
        .collect();
    if take.iter().all(|t| *t) {
        return (batch.clone(), None);
    }
    let mask: BooleanArray = metric
        .keys()
        .values()
        .iter()
        .map(|&k| Some(take[k as usize]))
        .collect();
    let not_mask = arrow::compute::not(&mask).expect("not of a boolean array");
    let matched = filter_record_batch(batch, &mask).expect("filter by a mask of equal length");
    let rest = filter_record_batch(batch, &not_mask).expect("filter by a mask of equal length");
    (matched, (rest.num_rows() > 0).then_some(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_align_to_the_interval() {
        let s = 1_000_000_000i64;
        assert_eq!(next_tick(0, Duration::from_secs(10)), 10 * s);
        assert_eq!(next_tick(17 * s + 3, Duration::from_secs(10)), 20 * s);
        assert_eq!(next_tick(20 * s, Duration::from_secs(10)), 30 * s);
    }
}

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
mod graph;
mod scrape;
mod stages;
mod telemetry;

pub use backoff::Backoff;
pub use dead_letter::DeadLetter;
pub(crate) use graph::check_source_world;
pub use scrape::{ACCEPT, MAX_BODY_BYTES, check_scrape_target};
pub use stages::log_rejected;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::batch::Samples;
use tokio::sync::{mpsc, watch};

use crate::config::PipelineConfig;
use crate::plugin::{CallStats, Plugin, PluginError, PluginSource, Runtime};
use graph::{Graph, Ready};

/// Batches a stage's input channel holds before its producers wait.
pub const CHANNEL_CAPACITY: usize = 16;

/// Where the samples leaving the graph go.
pub trait Sink: Send + 'static {
    /// Receives one batch produced by a leaf stage (`stage`), with its
    /// series table when the batch knows it ([`Samples::wit_columns`]
    /// then borrows it).
    fn write(&mut self, stage: &str, batch: &Samples);

    /// Called about once a second with the wall clock, ns since the Unix
    /// epoch (for time-driven work: closing idle buckets, flushing).
    fn tick(&mut self, _now_ns: i64) {}

    /// Called on every reload with the new config (archive settings,
    /// policies, rules or alarms may have changed, or nothing that
    /// concerns the sink).
    fn reconfigure(&mut self, _config: &PipelineConfig) {}

    /// Called once, after the last batch, when the pipeline stops.
    fn finish(&mut self) {}
}

/// How often the sink's [`Sink::tick`] runs.
pub const SINK_TICK: Duration = Duration::from_secs(1);

/// What travels to the sink's thread.
pub(crate) enum SinkMsg {
    /// Samples from a leaf stage.
    Batch(Arc<str>, Samples),
    /// A reload's new config.
    Reconfigure(Arc<PipelineConfig>),
}

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
    /// Input lines a decoder refused (each logged with its line number).
    pub rejected_lines: u64,
    /// Scrapes whose fetch failed (connection, timeout, HTTP status).
    pub scrape_failures: u64,
}

impl StageReport {
    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &StageReport) {
        self.batches += other.batches;
        self.samples_in += other.samples_in;
        self.samples_out += other.samples_out;
        self.plugin.merge(&other.plugin);
        self.dead_lettered += other.dead_lettered;
        self.replaced_instances += other.replaced_instances;
        self.rejected_lines += other.rejected_lines;
        self.scrape_failures += other.scrape_failures;
    }
}

/// What every stage did, by stage name, over all the graphs of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// One entry per stage that ever ran.
    pub stages: HashMap<String, StageReport>,
    /// Samples the sink received (self-telemetry included).
    pub samples_to_sink: u64,
    /// Reloads applied.
    pub reloads: u64,
}

/// Why a pipeline could not start or reload.
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
    /// A scraping collector's target cannot be set up: e.g. a
    /// `tls_config` file that cannot be read or holds no certificate.
    #[error("stage {stage}: {reason}")]
    Scrape {
        /// The stage.
        stage: String,
        /// One line naming the field and file.
        reason: String,
    },
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Stages that kept their instance and state.
    pub unchanged: Vec<String>,
    /// Stages whose config or plugin changed: new instances.
    pub changed: Vec<String>,
    /// New stages.
    pub added: Vec<String>,
    /// Stages that were drained and stopped.
    pub removed: Vec<String>,
    /// Whether the archive settings, policies or rules changed, so that
    /// the rollup engine was rebuilt (its open buckets carried over).
    /// `max_future`, `checkpoint_interval`, `wal` and `wal_fsync_delay`
    /// alone are applied to the engine in place and do not count.
    pub archive_changed: bool,
    /// From the call to the new graph serving.
    pub elapsed: Duration,
}

impl std::fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[String]| {
            if v.is_empty() {
                "-".to_owned()
            } else {
                v.join(",")
            }
        };
        write!(
            f,
            "changed={} added={} removed={} unchanged={} archive_changed={} in {:?}",
            list(&self.changed),
            list(&self.added),
            list(&self.removed),
            list(&self.unchanged),
            self.archive_changed,
            self.elapsed
        )
    }
}

/// How to stop a running pipeline.
#[derive(Clone)]
pub struct Shutdown(watch::Sender<bool>);

impl Shutdown {
    /// Asks the pipeline to stop; [`Pipeline::wait`] then drains it.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

/// Counters shared with the self-telemetry task.
#[derive(Default)]
pub(crate) struct Counters {
    /// Totals of stages of graphs that have ended, by name.
    pub(crate) finished: HashMap<String, StageReport>,
    /// The running graph's live counters.
    pub(crate) live: graph::LiveReports,
}

impl Counters {
    /// Finished plus live, by stage.
    pub(crate) fn snapshot(&self) -> BTreeMap<String, StageReport> {
        let mut out: BTreeMap<String, StageReport> = self
            .finished
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, live) in &self.live {
            if let Ok(r) = live.lock() {
                out.entry(name.clone()).or_default().merge(&r);
            }
        }
        out
    }
}

/// A running pipeline: the stage graph, the sink, self-telemetry, and
/// reloads that swap the graph without losing a sample.
pub struct Pipeline {
    graph: Option<Graph>,
    config: PipelineConfig,
    runtime: Runtime,
    plugins: HashMap<PluginSource, Arc<Plugin>>,
    sink_tx: mpsc::Sender<SinkMsg>,
    sink_task: tokio::task::JoinHandle<u64>,
    telemetry_task: tokio::task::JoinHandle<()>,
    counters: Arc<Mutex<Counters>>,
    shutdown: watch::Sender<bool>,
    reloads: u64,
}

/// Reads and compiles every plugin of `config`, reusing `known` ones whose
/// bytes are unchanged (by SHA-256).
fn load_plugins(
    runtime: &Runtime,
    config: &PipelineConfig,
    known: &HashMap<PluginSource, Arc<Plugin>>,
) -> Result<HashMap<PluginSource, Arc<Plugin>>, PipelineError> {
    let mut out: HashMap<PluginSource, Arc<Plugin>> = HashMap::new();
    let stages = config
        .collectors
        .iter()
        .map(|c| (&c.name, &c.plugin))
        .chain(config.transformers.iter().map(|t| (&t.name, &t.plugin)));
    for (stage, source) in stages {
        if out.contains_key(source) {
            continue;
        }
        let err = |e| PipelineError::Stage {
            stage: stage.clone(),
            source: e,
        };
        let bytes = source.read().map_err(err)?;
        let digest = crate::plugin::digest(&bytes);
        let plugin = match known.values().find(|p| p.digest() == digest) {
            Some(p) => p.clone(),
            None => {
                Arc::new(Plugin::from_bytes(runtime, &source.to_string(), &bytes).map_err(err)?)
            }
        };
        out.insert(source.clone(), plugin);
    }
    Ok(out)
}

impl Pipeline {
    /// Loads every plugin, instantiates every stage, and starts the stage
    /// tasks, the sink thread and the self-telemetry task. Must be called
    /// inside a tokio runtime.
    ///
    /// # Errors
    /// [`PipelineError::Stage`] for the first stage whose plugin fails to
    /// load, is of the wrong world, or refuses its settings.
    pub fn start(
        config: &PipelineConfig,
        runtime: &Runtime,
        sink: impl Sink,
    ) -> Result<Self, PipelineError> {
        Self::start_with_feeds(config, runtime, sink, Vec::new())
    }

    /// Starts the pipeline with `feed` as a source stage fed by the
    /// returned sender instead of a collector (`wasmeter import`): batches
    /// sent there flow to the transformers whose `inputs` name `feed`, or
    /// to the sink when none does. No collector runs. Dropping the sender
    /// and calling [`Pipeline::stop`] drains everything.
    ///
    /// # Errors
    /// As [`Pipeline::start`].
    pub fn start_fed(
        config: &PipelineConfig,
        runtime: &Runtime,
        sink: impl Sink,
        feed: &str,
    ) -> Result<(Self, mpsc::Sender<Samples>), PipelineError> {
        let mut config = config.clone();
        config.collectors.clear();
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let p = Self::start_with_feeds(&config, runtime, sink, vec![(feed.to_owned(), rx)])?;
        Ok((p, tx))
    }

    fn start_with_feeds(
        config: &PipelineConfig,
        runtime: &Runtime,
        mut sink: impl Sink,
        feeds: Vec<(String, mpsc::Receiver<Samples>)>,
    ) -> Result<Self, PipelineError> {
        let plugins = load_plugins(runtime, config, &HashMap::new())?;
        let mut ready = Ready::new();
        graph::instantiate(config, &plugins, &mut ready, &HashSet::new())?;

        let (sink_tx, mut sink_rx) = mpsc::channel::<SinkMsg>(CHANNEL_CAPACITY);
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
                            Some(SinkMsg::Batch(stage, batch)) => {
                                samples += batch.num_rows() as u64;
                                sink.write(&stage, &batch);
                            }
                            Some(SinkMsg::Reconfigure(config)) => sink.reconfigure(&config),
                            None => break,
                        },
                        _ = tick.tick() => sink.tick(now_ns()),
                    }
                }
                sink.finish();
                samples
            })
        });
        let fed = !feeds.is_empty();
        let graph = Graph::start(config, ready, &sink_tx, feeds);
        let counters = Arc::new(Mutex::new(Counters {
            finished: HashMap::new(),
            live: graph.live.clone(),
        }));
        // Self-telemetry is stamped with the wall clock: not for a fed
        // (event-time) pipeline, whose sink's clock is the data's.
        let telemetry_task = if fed {
            tokio::spawn(std::future::ready(()))
        } else {
            tokio::spawn(telemetry::run(
                counters.clone(),
                sink_tx.clone(),
                config.telemetry_interval,
            ))
        };
        let (shutdown, _) = watch::channel(false);
        Ok(Pipeline {
            graph: Some(graph),
            config: config.clone(),
            runtime: runtime.clone(),
            plugins,
            sink_tx,
            sink_task,
            telemetry_task,
            counters,
            shutdown,
            reloads: 0,
        })
    }

    /// A handle that stops the pipeline (see [`Pipeline::wait`]).
    pub fn shutdown_handle(&self) -> Shutdown {
        Shutdown(self.shutdown.clone())
    }

    /// The config the pipeline runs.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Swaps in `new`: plugins are read and compiled and new or changed
    /// stages instantiated first, while the old graph keeps running; if
    /// that fails, nothing changes. Then the old graph drains (in-flight
    /// batches are delivered), unchanged stages hand their instance and
    /// state to the new graph, and the new graph starts.
    ///
    /// # Errors
    /// [`PipelineError::Stage`]; the old graph is then still running.
    pub async fn reload(&mut self, new: PipelineConfig) -> Result<ReloadReport, PipelineError> {
        let start = Instant::now();
        let runtime = self.runtime.clone();
        let (known, cfg) = (self.plugins.clone(), new.clone());
        let plugins = tokio::task::spawn_blocking(move || load_plugins(&runtime, &cfg, &known))
            .await
            .expect("plugin loading panicked")?;
        let mut report = ReloadReport::default();
        let mut keep: HashSet<String> = HashSet::new();
        let old = &self.config;
        let same_plugin =
            |a: &PluginSource, b: &PluginSource| match (self.plugins.get(a), plugins.get(b)) {
                (Some(x), Some(y)) => x.digest() == y.digest(),
                _ => false,
            };
        for c in &new.collectors {
            match old.collectors.iter().find(|o| o.name == c.name) {
                Some(o) if o == c && same_plugin(&o.plugin, &c.plugin) => {
                    keep.insert(c.name.clone());
                }
                Some(_) => report.changed.push(c.name.clone()),
                None => report.added.push(c.name.clone()),
            }
        }
        for t in &new.transformers {
            match old.transformers.iter().find(|o| o.name == t.name) {
                Some(o) if o == t && same_plugin(&o.plugin, &t.plugin) => {
                    keep.insert(t.name.clone());
                }
                Some(_) => report.changed.push(t.name.clone()),
                None => report.added.push(t.name.clone()),
            }
        }
        let new_names: HashSet<&str> = new.stage_names().collect();
        report.removed = old
            .stage_names()
            .filter(|n| !new_names.contains(n))
            .map(str::to_owned)
            .collect();
        let mut ready = Ready::new();
        let cfg = new.clone();
        let plugins_for_init = plugins.clone();
        let keep_for_init = keep.clone();
        let ready_result = tokio::task::spawn_blocking(move || {
            graph::instantiate(&cfg, &plugins_for_init, &mut ready, &keep_for_init).map(|()| ready)
        })
        .await
        .expect("instantiation panicked");
        let mut ready = ready_result?;

        // Point of no return: drain the old graph, keep unchanged instances.
        if let Some(graph) = self.graph.take() {
            for exit in graph.drain().await {
                if let Ok(mut c) = self.counters.lock() {
                    c.finished
                        .entry(exit.name.clone())
                        .or_default()
                        .merge(&exit.report);
                }
                if keep.contains(&exit.name)
                    && let Some(instance) = exit.instance
                {
                    ready.insert(exit.name, instance);
                }
            }
        }
        // As the sink decides whether to build a new engine.
        report.archive_changed =
            crate::archive::archive_config(old) != crate::archive::archive_config(&new);
        // The sink compares what concerns it (archive settings, policies,
        // rules, alarms and their plugins' bytes) itself.
        let _ = self
            .sink_tx
            .send(SinkMsg::Reconfigure(Arc::new(new.clone())))
            .await;
        let graph = Graph::start(&new, ready, &self.sink_tx, Vec::new());
        if let Ok(mut c) = self.counters.lock() {
            c.live = graph.live.clone();
        }
        self.graph = Some(graph);
        self.plugins = plugins;
        self.config = new;
        self.reloads += 1;
        report.unchanged = keep.into_iter().collect();
        for v in [
            &mut report.unchanged,
            &mut report.changed,
            &mut report.added,
            &mut report.removed,
        ] {
            v.sort();
        }
        report.elapsed = start.elapsed();
        Ok(report)
    }

    /// Waits for [`Shutdown::trigger`], then stops (see [`Pipeline::stop`]).
    pub async fn wait(self) -> RunReport {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|s| *s).await;
        self.stop().await
    }

    /// Stops now: the collectors stop, every stage drains, the sink gets
    /// everything in flight and finishes (the archive sink saves the open
    /// buckets).
    pub async fn stop(mut self) -> RunReport {
        if let Some(graph) = self.graph.take() {
            for exit in graph.drain().await {
                if let Ok(mut c) = self.counters.lock() {
                    c.finished
                        .entry(exit.name.clone())
                        .or_default()
                        .merge(&exit.report);
                }
            }
        }
        self.telemetry_task.abort();
        let _ = self.telemetry_task.await;
        drop(self.sink_tx);
        let samples_to_sink = self.sink_task.await.unwrap_or(0);
        let stages = self
            .counters
            .lock()
            .map(|c| c.finished.clone())
            .unwrap_or_default();
        RunReport {
            stages,
            samples_to_sink,
            reloads: self.reloads,
        }
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

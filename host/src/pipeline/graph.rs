//! One running stage graph: its tasks, channels and stop signal.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::batch::Samples;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::scrape::Scraper;
use super::stages::{
    CollectorStage, FeedStage, Output, Source, StageCommon, StageExit, StageInstance,
    TransformerStage,
};
use super::{Backoff, CHANNEL_CAPACITY, DeadLetter, PipelineError, SinkMsg, StageReport};
use crate::config::{CollectorConfig, PipelineConfig};
use crate::plugin::{self, Plugin, PluginSource, World};

/// The live counters of the stages of a graph, by name.
pub(super) type LiveReports = Vec<(String, Arc<Mutex<StageReport>>)>;

pub(super) struct Graph {
    tasks: JoinSet<StageExit>,
    stop: watch::Sender<bool>,
    pub(super) live: LiveReports,
}

/// A stage's instance made ready before the graph starts.
pub(super) type Ready = HashMap<String, StageInstance>;

/// Instantiates every stage of `config` that `ready` does not already hold
/// and `skip` does not name (calling `init`), so a reload can fail before
/// anything stops.
///
/// # Errors
/// The first stage whose plugin is missing, of the wrong world, or whose
/// `init` fails; or whose scrape target cannot be set up.
pub(super) fn instantiate(
    config: &PipelineConfig,
    plugins: &HashMap<PluginSource, Arc<Plugin>>,
    ready: &mut Ready,
    skip: &HashSet<String>,
) -> Result<(), PipelineError> {
    let plugin_of = |stage: &str, source: &PluginSource| {
        plugins
            .get(source)
            .cloned()
            .ok_or_else(|| PipelineError::Stage {
                stage: stage.to_owned(),
                source: plugin::PluginError::load(source.to_string(), "not loaded"),
            })
    };
    for c in &config.collectors {
        if !ready.contains_key(&c.name) && !skip.contains(&c.name) {
            let p = plugin_of(&c.name, &c.plugin)?;
            let scraper = c.scrape.as_ref().map(Scraper::new).transpose();
            let scraper = scraper.map_err(|reason| PipelineError::Scrape {
                stage: c.name.clone(),
                reason,
            })?;
            let i = source(p, c, scraper).map_err(|e| PipelineError::Stage {
                stage: c.name.clone(),
                source: e,
            })?;
            ready.insert(c.name.clone(), StageInstance::Collector(i));
        }
    }
    for t in &config.transformers {
        if !ready.contains_key(&t.name) && !skip.contains(&t.name) {
            let p = plugin_of(&t.name, &t.plugin)?;
            let i = plugin::Transformer::new(p, &t.name, &t.settings, &t.grants, t.limits)
                .map_err(|e| PipelineError::Stage {
                    stage: t.name.clone(),
                    source: e,
                })?;
            ready.insert(t.name.clone(), StageInstance::Transformer(i));
        }
    }
    Ok(())
}

/// Fails unless a collector's plugin suits it: a decoder when it has a
/// `url` to scrape, a collector otherwise.
///
/// # Errors
/// `Load`, saying what to change.
pub(crate) fn check_source_world(p: &Plugin, scrapes: bool) -> Result<(), plugin::PluginError> {
    match (scrapes, p.world()) {
        (true, World::Decoder) | (false, World::Collector) => Ok(()),
        (false, World::Decoder) => Err(plugin::PluginError::load(
            p.name(),
            "the plugin is a decoder: give the collector a `url` to scrape",
        )),
        (true, world) => Err(plugin::PluginError::load(
            p.name(),
            format!("`url` needs a decoder plugin, this one is a {world}"),
        )),
        (false, _) => p.expect_world(World::Collector),
    }
}

/// A collector stage's instance: a pollster, or a decoder when the stage
/// has a `url` (its settings then get `resource_id` = the target's
/// `host:port` unless they set one) with `scraper`, the stage's target.
fn source(
    p: Arc<Plugin>,
    c: &CollectorConfig,
    scraper: Option<Scraper>,
) -> Result<Source, plugin::PluginError> {
    check_source_world(&p, c.scrape.is_some())?;
    match (&c.scrape, scraper) {
        (Some(target), Some(scraper)) => {
            let settings = scrape_settings(&c.settings, &target.instance());
            plugin::Decoder::new(p, &c.name, &settings, &c.grants, c.limits)
                .map(|d| Source::Scrape(d, Arc::new(scraper)))
        }
        _ => plugin::Collector::new(p, &c.name, &c.settings, &c.grants, c.limits).map(Source::Poll),
    }
}

/// A scraping collector's settings: `resource_id` defaults to `instance`.
pub(super) fn scrape_settings(
    settings: &[(String, String)],
    instance: &str,
) -> Vec<(String, String)> {
    let mut out = settings.to_vec();
    if !out.iter().any(|(k, _)| k == "resource_id") {
        out.push(("resource_id".to_owned(), instance.to_owned()));
    }
    out
}

impl Graph {
    /// Starts the tasks of `config` with the instances in `ready` (one per
    /// stage, see [`instantiate`]). Leaf stages send to `sink`. Each of
    /// `feeds` is a source stage fed through its channel (a collector of
    /// that name, if any, is not started).
    pub(super) fn start(
        config: &PipelineConfig,
        mut ready: Ready,
        sink: &mpsc::Sender<SinkMsg>,
        feeds: Vec<(String, mpsc::Receiver<Samples>)>,
    ) -> Graph {
        let dead_letter = DeadLetter::new(&config.archive.data_dir.join("dead-letter"));
        // Per transformer: its input's sender, and the receiver until its
        // task takes it.
        type Inbox = (mpsc::Sender<Samples>, Option<mpsc::Receiver<Samples>>);
        let mut inboxes: HashMap<&str, Inbox> = config
            .transformers
            .iter()
            .map(|t| {
                let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
                (t.name.as_str(), (tx, Some(rx)))
            })
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
        let outputs_of = |name: &str, inboxes: &HashMap<&str, Inbox>| -> Vec<Output> {
            match consumers.get(name) {
                Some(cs) => cs
                    .iter()
                    .map(|c| Output::Stage(inboxes[*c].0.clone()))
                    .collect(),
                None => vec![Output::Sink(sink.clone())],
            }
        };
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut live = Vec::new();
        let mut fed = HashSet::new();
        for (name, rx) in feeds {
            let report = Arc::new(Mutex::new(StageReport::default()));
            live.push((name.clone(), report.clone()));
            let stage = FeedStage {
                outputs: outputs_of(&name, &inboxes),
                name: Arc::from(name.as_str()),
                live: report,
            };
            tasks.spawn(stage.run(rx));
            fed.insert(name);
        }
        let mut common = |name: &str,
                          settings: &[(String, String)],
                          grants: &plugin::Grants,
                          limits: plugin::Limits,
                          outputs| {
            let report = Arc::new(Mutex::new(StageReport::default()));
            live.push((name.to_owned(), report.clone()));
            StageCommon {
                name: Arc::from(name),
                settings: settings.to_vec(),
                grants: grants.clone(),
                limits,
                outputs,
                report: StageReport::default(),
                live: report,
                backoff: Backoff::default(),
            }
        };
        for t in &config.transformers {
            let Some(StageInstance::Transformer(instance)) = ready.remove(&t.name) else {
                unreachable!("instantiate() made every transformer");
            };
            let outputs = outputs_of(&t.name, &inboxes);
            let stage = TransformerStage {
                common: common(&t.name, &t.settings, &t.grants, t.limits, outputs),
                instance: Some(instance),
                meters: t.meters.clone(),
                pass_unmatched: t.pass_unmatched,
                dead_letter: dead_letter.clone(),
            };
            let rx = inboxes
                .get_mut(t.name.as_str())
                .and_then(|(_, rx)| rx.take())
                .expect("one inbox per transformer");
            tasks.spawn(stage.run(rx));
        }
        for c in &config.collectors {
            if fed.contains(&c.name) {
                continue;
            }
            let Some(StageInstance::Collector(instance)) = ready.remove(&c.name) else {
                unreachable!("instantiate() made every collector");
            };
            let outputs = outputs_of(&c.name, &inboxes);
            let settings = match &c.scrape {
                Some(t) => scrape_settings(&c.settings, &t.instance()),
                None => c.settings.clone(),
            };
            let stage = CollectorStage {
                common: common(&c.name, &settings, &c.grants, c.limits, outputs),
                instance: Some(instance),
                interval: c.interval,
            };
            tasks.spawn(stage.run(stop_rx.clone()));
        }
        // Only the stages hold senders now: when they finish, channels close.
        drop(inboxes);
        Graph { tasks, stop, live }
    }

    /// Stops the collectors and waits until every stage has drained.
    pub(super) async fn drain(mut self) -> Vec<StageExit> {
        self.stop.send_replace(true);
        let mut exits = Vec::new();
        while let Some(done) = self.tasks.join_next().await {
            match done {
                Ok(exit) => exits.push(exit),
                Err(e) => tracing::error!("a stage task failed: {e}"),
            }
        }
        exits
    }
}

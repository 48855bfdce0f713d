//! The stage tasks: collectors on their tick, transformers on their input.
//! Each returns its plugin instance when it ends, so a reload can hand an
//! unchanged stage's instance (and its state) to the new graph.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::datatypes::Int32Type;
use tokio::sync::{mpsc, watch};

use super::scrape::Scraper;
use super::{Backoff, DeadLetter, SinkMsg, StageReport, next_tick, now_ns};
use crate::batch::{Samples, columns};
use crate::config::MeterFilter;
use crate::plugin::{self, Instance as _, PluginError, PluginErrorKind};

/// Rejected lines logged one by one per document; the rest are summed up.
const REJECTED_LINES_LOGGED: usize = 20;

/// A running plugin instance of a stage.
pub(super) enum StageInstance {
    Collector(Source),
    Transformer(plugin::Transformer),
}

/// What a collector stage runs: a pollster, or a decoder of scraped bodies.
pub(super) enum Source {
    Poll(plugin::Collector),
    /// The decoder and the target it decodes.
    Scrape(plugin::Decoder, Arc<Scraper>),
}

impl Source {
    fn needs_recycling(&self) -> bool {
        match self {
            Source::Poll(c) => c.needs_recycling(),
            Source::Scrape(d, _) => d.needs_recycling(),
        }
    }
}

impl plugin::Instance for Source {
    fn respawn(
        &self,
        name: &str,
        settings: &[(String, String)],
        grants: &plugin::Grants,
        limits: plugin::Limits,
    ) -> Result<Self, PluginError> {
        Ok(match self {
            Source::Poll(c) => Source::Poll(c.respawn(name, settings, grants, limits)?),
            Source::Scrape(d, s) => {
                Source::Scrape(d.respawn(name, settings, grants, limits)?, s.clone())
            }
        })
    }

    fn stats(&self) -> &plugin::CallStats {
        match self {
            Source::Poll(c) => c.stats(),
            Source::Scrape(d, _) => d.stats(),
        }
    }

    fn reset_stats(&mut self) {
        match self {
            Source::Poll(c) => c.reset_stats(),
            Source::Scrape(d, _) => d.reset_stats(),
        }
    }
}

/// What a stage task hands back when it ends.
pub(super) struct StageExit {
    pub(super) name: String,
    pub(super) report: StageReport,
    pub(super) instance: Option<StageInstance>,
}

/// Where a stage sends its output.
pub(super) enum Output {
    Stage(mpsc::Sender<Samples>),
    Sink(mpsc::Sender<SinkMsg>),
}

impl Output {
    async fn send(&self, stage: &Arc<str>, batch: Samples) -> bool {
        match self {
            Output::Stage(tx) => tx.send(batch).await.is_ok(),
            Output::Sink(tx) => tx.send(SinkMsg::Batch(stage.clone(), batch)).await.is_ok(),
        }
    }
}

async fn send_all(outputs: &[Output], stage: &Arc<str>, batch: Samples) {
    if batch.num_rows() == 0 {
        return;
    }
    for out in outputs {
        out.send(stage, batch.clone()).await;
    }
}

/// What every stage shares: its identity, config and counters.
pub(super) struct StageCommon {
    pub(super) name: Arc<str>,
    pub(super) settings: Vec<(String, String)>,
    pub(super) grants: plugin::Grants,
    pub(super) limits: plugin::Limits,
    pub(super) outputs: Vec<Output>,
    pub(super) report: StageReport,
    /// Published after every batch for self-telemetry.
    pub(super) live: Arc<Mutex<StageReport>>,
    pub(super) backoff: Backoff,
}

impl StageCommon {
    /// Publishes the counters, the current instance's included.
    fn publish(&self, current: Option<&plugin::CallStats>) {
        let mut snapshot = self.report.clone();
        if let Some(s) = current {
            snapshot.plugin.merge(s);
        }
        if let Ok(mut live) = self.live.lock() {
            *live = snapshot;
        }
    }

    /// Replaces the instance in `slot` by a fresh one of the same plugin
    /// (keeping the old one if that fails), counting the replacement.
    fn replace<I: plugin::Instance>(&mut self, slot: &mut Option<I>) {
        let Some(old) = slot.take() else { return };
        match old.respawn(&self.name, &self.settings, &self.grants, self.limits) {
            Ok(fresh) => {
                self.report.plugin.merge(old.stats());
                self.report.replaced_instances += 1;
                *slot = Some(fresh);
            }
            Err(e) => {
                tracing::error!(stage = %self.name, "cannot start a fresh instance, keeping the old one: {e}");
                *slot = Some(old);
            }
        }
    }

    /// The stage's exit: the instance goes on (a reload may keep it); its
    /// counters so far are in the report, and it starts the next graph from
    /// zero.
    fn exit<I: plugin::Instance>(
        mut self,
        mut instance: Option<I>,
        wrap: fn(I) -> StageInstance,
    ) -> StageExit {
        if let Some(i) = &mut instance {
            self.report.plugin.merge(i.stats());
            i.reset_stats();
        }
        StageExit {
            name: self.name.to_string(),
            report: self.report,
            instance: instance.map(wrap),
        }
    }

    fn failed(&mut self, e: &PluginError) {
        tracing::error!(stage = %self.name, kind = %e.kind, "{e}");
        if let Some(rest) = self.backoff.failure(Instant::now()) {
            tracing::warn!(stage = %self.name, failures = self.backoff.failures(), "backing off for {rest:?}");
        }
    }
}

pub(super) struct CollectorStage {
    pub(super) common: StageCommon,
    pub(super) instance: Option<Source>,
    pub(super) interval: Duration,
}

impl CollectorStage {
    pub(super) async fn run(mut self, mut stop: watch::Receiver<bool>) -> StageExit {
        loop {
            // Ticks sit on multiples of the interval: no drift.
            let tick = next_tick(now_ns(), self.interval);
            let wait = Duration::from_nanos((tick - now_ns()).max(0) as u64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            let c = &mut self.common;
            c.report.batches += 1;
            if c.backoff.resting(Instant::now()) {
                c.report.plugin.count_error(PluginErrorKind::BackedOff);
                // A resting scrape is still a scrape that failed: `up` 0.
                if let Some(Source::Scrape(_, scraper)) = &self.instance
                    && let Some(health) = scraper.health(&c.name, tick, false, Duration::ZERO, 0)
                {
                    send_all(&c.outputs, &c.name, health).await;
                }
                continue;
            }
            let Some(instance) = self.instance.take() else {
                break;
            };
            let scrapes = matches!(instance, Source::Scrape(..));
            let result = match instance {
                Source::Poll(mut instance) => {
                    let (instance, result) = tokio::task::spawn_blocking(move || {
                        let r = instance.collect(tick);
                        (instance, r)
                    })
                    .await
                    .expect("collector call panicked");
                    self.instance = Some(Source::Poll(instance));
                    Some(result)
                }
                Source::Scrape(decoder, scraper) => self.scrape(decoder, scraper, tick).await,
            };
            match result {
                Some(Ok(batch)) => {
                    self.common.backoff.success();
                    self.common.report.samples_out += batch.num_rows() as u64;
                    send_all(&self.common.outputs, &self.common.name, batch).await;
                }
                // A body the decoder refuses is the target's fault, as a
                // failed fetch is: logged and counted, no back-off.
                Some(Err(e)) if scrapes && e.kind == PluginErrorKind::InvalidInput => {
                    tracing::error!(stage = %self.common.name, kind = %e.kind, "{e}");
                }
                Some(Err(e)) => {
                    self.common.failed(&e);
                    if e.kind.poisons_instance() {
                        self.replace_instance();
                    }
                }
                None => {}
            }
            if self.instance.as_ref().is_some_and(|i| i.needs_recycling()) {
                self.replace_instance();
            }
            self.common
                .publish(self.instance.as_ref().map(|i| i.stats()));
        }
        self.exit()
    }

    /// Fetches the target and decodes the body (one Wasm call), sends the
    /// scrape's health samples; `None` when the fetch failed (the target's
    /// fault, not the plugin's: counted, logged, `up` 0, no back-off).
    async fn scrape(
        &mut self,
        mut decoder: plugin::Decoder,
        scraper: Arc<Scraper>,
        tick: i64,
    ) -> Option<Result<Samples, PluginError>> {
        let started = Instant::now();
        let body = match scraper.fetch().await {
            Ok(body) => body,
            Err(reason) => {
                let c = &mut self.common;
                c.report.scrape_failures += 1;
                tracing::warn!(stage = %c.name, url = %scraper.shown_url(), "scrape failed: {reason}");
                if let Some(health) = scraper.health(&c.name, tick, false, started.elapsed(), 0) {
                    send_all(&c.outputs, &c.name, health).await;
                }
                self.instance = Some(Source::Scrape(decoder, scraper));
                return None;
            }
        };
        let (decoder, result) = tokio::task::spawn_blocking(move || {
            let r = decoder.decode(&body.bytes, &body.content_type, tick);
            (decoder, r)
        })
        .await
        .expect("decoder call panicked");
        let c = &mut self.common;
        let result = result.map(|decoded| {
            log_rejected(&c.name, scraper.shown_url(), &decoded.rejected);
            c.report.rejected_lines += decoded.rejected.len() as u64;
            decoded.batch
        });
        let samples = result.as_ref().map_or(0, |b| b.num_rows());
        if let Some(health) =
            scraper.health(&c.name, tick, result.is_ok(), started.elapsed(), samples)
        {
            send_all(&c.outputs, &c.name, health).await;
        }
        self.instance = Some(Source::Scrape(decoder, scraper));
        Some(result)
    }

    fn exit(self) -> StageExit {
        self.common.exit(self.instance, StageInstance::Collector)
    }

    /// Starts a fresh instance (the old one trapped or grew too large).
    fn replace_instance(&mut self) {
        self.common.replace(&mut self.instance);
    }
}

/// Logs the lines a decoder refused in `source`: the first
/// [`REJECTED_LINES_LOGGED`] one by one, then how many more.
pub fn log_rejected(stage: &str, source: &str, rejected: &[plugin::RejectedLine]) {
    for r in rejected.iter().take(REJECTED_LINES_LOGGED) {
        tracing::warn!(stage, source, line = r.line, "line rejected: {}", r.reason);
    }
    if rejected.len() > REJECTED_LINES_LOGGED {
        tracing::warn!(
            stage,
            source,
            "{} more lines rejected",
            rejected.len() - REJECTED_LINES_LOGGED
        );
    }
}

/// A source fed from outside (`wasmeter import`): forwards the batches it
/// receives to its consumers, as a collector would send what it collects.
pub(super) struct FeedStage {
    pub(super) name: Arc<str>,
    pub(super) outputs: Vec<Output>,
    pub(super) live: Arc<Mutex<StageReport>>,
}

impl FeedStage {
    pub(super) async fn run(self, mut rx: mpsc::Receiver<Samples>) -> StageExit {
        let mut report = StageReport::default();
        while let Some(batch) = rx.recv().await {
            report.batches += 1;
            report.samples_out += batch.num_rows() as u64;
            send_all(&self.outputs, &self.name, batch).await;
            if let Ok(mut live) = self.live.lock() {
                *live = report.clone();
            }
        }
        StageExit {
            name: self.name.to_string(),
            report,
            instance: None,
        }
    }
}

pub(super) struct TransformerStage {
    pub(super) common: StageCommon,
    pub(super) instance: Option<plugin::Transformer>,
    pub(super) meters: MeterFilter,
    pub(super) pass_unmatched: bool,
    pub(super) dead_letter: DeadLetter,
}

impl TransformerStage {
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Samples>) -> StageExit {
        while let Some(batch) = rx.recv().await {
            self.handle(batch).await;
            self.common
                .publish(self.instance.as_ref().map(|i| i.stats()));
        }
        self.exit()
    }

    async fn handle(&mut self, batch: Samples) {
        let c = &mut self.common;
        c.report.batches += 1;
        c.report.samples_in += batch.num_rows() as u64;
        let (matched, unmatched) = split_by_meters(&batch, &self.meters);
        if let Some(rest) = unmatched.filter(|_| self.pass_unmatched) {
            c.report.samples_out += rest.num_rows() as u64;
            send_all(&c.outputs, &c.name, rest).await;
        }
        if matched.num_rows() == 0 {
            return;
        }
        if c.backoff.resting(Instant::now()) {
            let e = PluginError::new(
                &*c.name,
                PluginErrorKind::BackedOff,
                "the plugin failed repeatedly and is resting",
            );
            self.keep_dead_letter(&e, &matched);
            self.common.report.plugin.count_error(e.kind);
            return;
        }
        let Some(mut instance) = self.instance.take() else {
            return;
        };
        let (instance, input, result) = tokio::task::spawn_blocking(move || {
            let r = instance.transform_samples(&matched);
            (instance, matched, r)
        })
        .await
        .expect("transformer call panicked");
        self.instance = Some(instance);
        match result {
            Ok(out) => {
                self.common.backoff.success();
                self.common.report.samples_out += out.num_rows() as u64;
                send_all(&self.common.outputs, &self.common.name, out).await;
            }
            Err(e) => {
                self.common.failed(&e);
                self.keep_dead_letter(&e, &input);
                if e.kind.poisons_instance() {
                    self.replace_instance();
                }
            }
        }
        if self.instance.as_ref().is_some_and(|i| i.needs_recycling()) {
            self.replace_instance();
        }
    }

    fn exit(self) -> StageExit {
        self.common.exit(self.instance, StageInstance::Transformer)
    }

    fn keep_dead_letter(&mut self, error: &PluginError, batch: &Samples) {
        let plugin = self.instance.as_ref().map_or("", |i| i.plugin().name());
        let c = &mut self.common;
        match self.dead_letter.write(&c.name, plugin, error, batch) {
            Ok(path) => {
                c.report.dead_lettered += batch.num_rows() as u64;
                tracing::warn!(stage = %c.name, samples = batch.num_rows(), file = %path.display(), "input batch kept as a dead letter");
            }
            Err(io) => {
                tracing::error!(stage = %c.name, samples = batch.num_rows(), "cannot write a dead letter, the batch is lost: {io:#}")
            }
        }
    }

    /// Starts a fresh instance (the old one trapped or grew too large).
    fn replace_instance(&mut self) {
        self.common.replace(&mut self.instance);
    }
}

/// Splits a batch into the rows whose metric the filter takes and the rest
/// (`None` when nothing is rejected). One filter test per distinct metric,
/// not per sample.
pub(super) fn split_by_meters(batch: &Samples, meters: &MeterFilter) -> (Samples, Option<Samples>) {
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
    let matched = batch
        .filter(&mask)
        .expect("filter by a mask of equal length");
    let rest = batch
        .filter(&not_mask)
        .expect("filter by a mask of equal length");
    (matched, (rest.num_rows() > 0).then_some(rest))
}

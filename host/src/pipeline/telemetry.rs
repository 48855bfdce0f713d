//! Self-telemetry: the pipeline's own counters as `wasmeter.*` samples,
//! sent to the sink like any other (so they are rolled up and archived),
//! and a periodic one-line summary in the log.
//!
//! | metric                         | unit | type       | attributes |
//! |--------------------------------|------|------------|------------|
//! | `wasmeter.stage.batches`       | `1`  | cumulative |            |
//! | `wasmeter.stage.samples.in`    | `1`  | cumulative |            |
//! | `wasmeter.stage.samples.out`   | `1`  | cumulative |            |
//! | `wasmeter.stage.dead_lettered` | `1`  | cumulative |            |
//! | `wasmeter.stage.instances.replaced` | `1` | cumulative |         |
//! | `wasmeter.stage.lines.rejected` | `1` | cumulative |            |
//! | `wasmeter.stage.scrape.failures` | `1` | cumulative |           |
//! | `wasmeter.plugin.calls`        | `1`  | cumulative |            |
//! | `wasmeter.plugin.errors`       | `1`  | cumulative | `kind`     |
//! | `wasmeter.plugin.busy`         | `s`  | cumulative |            |
//! | `wasmeter.plugin.memory.peak`  | `B`  | gauge      |            |
//!
//! The resource is the stage name; `kind` is a [`PluginErrorKind`] name,
//! so label cardinality is bounded by stages × kinds.
//!
//! [`PluginErrorKind`]: crate::plugin::PluginErrorKind

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::{Counters, SinkMsg, next_tick, now_ns};
use crate::batch::Samples;
use crate::bindings::{SampleType, WitBatch, WitSeries};

/// Summary lines are logged every this many telemetry intervals.
const SUMMARY_EVERY: u64 = 6;

pub(super) async fn run(
    counters: Arc<Mutex<Counters>>,
    sink: mpsc::Sender<SinkMsg>,
    interval: Duration,
) {
    let stage: Arc<str> = Arc::from("wasmeter");
    let mut n = 0u64;
    loop {
        let tick = next_tick(now_ns(), interval);
        tokio::time::sleep(Duration::from_nanos((tick - now_ns()).max(0) as u64)).await;
        let snapshot = match counters.lock() {
            Ok(c) => c.snapshot(),
            Err(_) => return,
        };
        let mut b = Builder::default();
        let (mut batches, mut samples_in, mut samples_out, mut errors, mut dead) = (0, 0, 0, 0, 0);
        for (name, r) in &snapshot {
            b.push(
                "wasmeter.stage.batches",
                name,
                "1",
                SampleType::Cumulative,
                &[],
                tick,
                r.batches as f64,
            );
            b.push(
                "wasmeter.stage.samples.in",
                name,
                "1",
                SampleType::Cumulative,
                &[],
                tick,
                r.samples_in as f64,
            );
            b.push(
                "wasmeter.stage.samples.out",
                name,
                "1",
                SampleType::Cumulative,
                &[],
                tick,
                r.samples_out as f64,
            );
            b.push(
                "wasmeter.stage.dead_lettered",
                name,
                "1",
                SampleType::Cumulative,
                &[],
                tick,
                r.dead_lettered as f64,
            );
            b.push(
                "wasmeter.stage.instances.replaced",
                name,
                "1",
                SampleType::Cumulative,
                &[],
                tick,
                r.replaced_instances as f64,
            );
            b.push(
                "wasmeter.stage.lines.rejected",
                name,
                "1",
                SampleType::Cumulative,
                &[],
                tick,
                r.rejected_lines as f64,
            );
            b.push(
                "wasmeter.stage.scrape.failures",
                name,
                "1",
                SampleType::Cumulative,
                &[],
                tick,
                r.scrape_failures as f64,
            );
            b.push(
                "wasmeter.plugin.calls",
                name,
                "1",
                SampleType::Cumulative,
                &[],
                tick,
                r.plugin.calls as f64,
            );
            for (kind, count) in &r.plugin.errors {
                b.push(
                    "wasmeter.plugin.errors",
                    name,
                    "1",
                    SampleType::Cumulative,
                    &[("kind", kind.as_str())],
                    tick,
                    *count as f64,
                );
            }
            b.push(
                "wasmeter.plugin.busy",
                name,
                "s",
                SampleType::Cumulative,
                &[],
                tick,
                r.plugin.busy.as_secs_f64(),
            );
            b.push(
                "wasmeter.plugin.memory.peak",
                name,
                "B",
                SampleType::Gauge,
                &[],
                tick,
                r.plugin.peak_memory_bytes as f64,
            );
            batches += r.batches;
            samples_in += r.samples_in;
            samples_out += r.samples_out;
            errors += r.plugin.error_count();
            dead += r.dead_lettered;
        }
        n += 1;
        if n.is_multiple_of(SUMMARY_EVERY) {
            tracing::info!(
                stages = snapshot.len(),
                batches,
                samples_in,
                samples_out,
                errors,
                dead_lettered = dead,
                "summary"
            );
        }
        match Samples::from_wit(b.finish()) {
            Ok(rb) => {
                if sink.send(SinkMsg::Batch(stage.clone(), rb)).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::error!("self-telemetry batch: {e}"),
        }
    }
}

/// Builds a small host-made batch (self-telemetry, a scrape's `up`), one
/// series per pushed sample.
pub(super) struct Builder {
    batch: WitBatch,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            batch: WitBatch {
                series: Vec::new(),
                series_index: Vec::new(),
                timestamps: Vec::new(),
                values: Vec::new(),
            },
        }
    }
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn push(
        &mut self,
        metric: &str,
        stage: &str,
        unit: &str,
        t: SampleType,
        attrs: &[(&str, &str)],
        ts: i64,
        v: f64,
    ) {
        self.batch.series.push(WitSeries {
            metric: metric.to_owned(),
            resource_id: stage.to_owned(),
            unit: unit.to_owned(),
            type_: t,
            attributes: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        });
        self.batch
            .series_index
            .push(self.batch.series.len() as u32 - 1);
        self.batch.timestamps.push(ts);
        self.batch.values.push(v);
    }

    pub(super) fn finish(self) -> WitBatch {
        self.batch
    }
}

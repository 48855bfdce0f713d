//! Running plugin instances: one `Store` each, limits applied per call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use wasmtime::Store;

use super::host::HostState;
use super::{
    EPOCH_TICK, Grants, Limits, Plugin, PluginError, PluginErrorKind, RECYCLE_AFTER_CALLS, World,
};
use crate::batch::Samples;
use crate::bindings::alarm_rule::wasmeter::plugin::alarm::{Evaluation, SeriesAggregates};
use crate::bindings::{WitBatch, WitError, alarm_rule, collector, decoder, transformer};

pub use crate::bindings::decoder::wasmeter::plugin::decode::RejectedLine;

/// Counters of plugin calls (one instance's, or a stage's over all the
/// instances it had).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Calls made (init excluded).
    pub calls: u64,
    /// Failed calls by error kind.
    pub errors: BTreeMap<PluginErrorKind, u64>,
    /// Time spent inside the plugin.
    pub busy: Duration,
    /// Largest linear memory seen, in bytes.
    pub peak_memory_bytes: usize,
}

impl CallStats {
    /// Failed calls of any kind.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Adds `other`'s counts to these (peak memory: the larger).
    pub fn merge(&mut self, other: &CallStats) {
        self.calls += other.calls;
        for (k, n) in &other.errors {
            *self.errors.entry(*k).or_default() += n;
        }
        self.busy += other.busy;
        self.peak_memory_bytes = self.peak_memory_bytes.max(other.peak_memory_bytes);
    }

    /// Counts one failed call of `kind`.
    pub fn count_error(&mut self, kind: PluginErrorKind) {
        *self.errors.entry(kind).or_default() += 1;
    }
}

/// A store with the sandbox and limits of one instance.
struct Sandbox {
    name: String,
    store: Store<HostState>,
    limits: Limits,
    stats: CallStats,
    /// Consecutive calls that ended above the recycling high-water mark.
    calls_above_high_water: u32,
}

impl Sandbox {
    fn new(
        plugin: &Plugin,
        name: &str,
        grants: &Grants,
        limits: Limits,
    ) -> Result<Self, PluginError> {
        let state = HostState::new(name, grants, &limits)?;
        let mut store = Store::new(plugin.pre.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_trap();
        Ok(Sandbox {
            name: name.to_owned(),
            store,
            limits,
            stats: CallStats::default(),
            calls_above_high_water: 0,
        })
    }

    /// Runs `f` under the call deadline; classifies a failure.
    fn call<R>(
        &mut self,
        f: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let ticks = (self.limits.call_timeout.as_nanos() / EPOCH_TICK.as_nanos()).max(1) as u64;
        self.store.set_epoch_deadline(ticks);
        self.store.data_mut().limiter.denied = false;
        let start = Instant::now();
        let result = f(&mut self.store);
        self.store.data().flush_output();
        self.stats.calls += 1;
        self.stats.busy += start.elapsed();
        let limiter = &self.store.data().limiter;
        self.stats.peak_memory_bytes = self.stats.peak_memory_bytes.max(limiter.peak_bytes);
        if limiter.peak_bytes > self.limits.recycle_above_bytes {
            self.calls_above_high_water += 1;
        }
        let denied = limiter.denied;
        result.map_err(|e| self.fail(PluginError::from_call(&self.name, e, denied)))
    }

    fn fail(&mut self, e: PluginError) -> PluginError {
        self.stats.count_error(e.kind);
        e
    }

    /// Opens the sandbox, instantiates and calls `init`: the start of every
    /// role's instance (the caller has checked the world).
    fn start<B>(
        plugin: &Plugin,
        name: &str,
        grants: &Grants,
        limits: Limits,
        instantiate: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<B>,
        init: impl FnOnce(&B, &mut Store<HostState>) -> wasmtime::Result<Result<(), WitError>>,
    ) -> Result<(Sandbox, B), PluginError> {
        let mut sandbox = Sandbox::new(plugin, name, grants, limits)?;
        let bindings = sandbox.call(instantiate)?;
        sandbox
            .call(|s| init(&bindings, s))?
            .map_err(|e| PluginError::from_guest(name, e))?;
        sandbox.stats = CallStats::default();
        Ok((sandbox, bindings))
    }

    /// The guest's own error, counted.
    fn guest<R>(&mut self, result: Result<R, WitError>) -> Result<R, PluginError> {
        result.map_err(|e| {
            let e = PluginError::from_guest(&self.name, e);
            self.fail(e)
        })
    }

    /// Validates a batch the plugin returned; a malformed one is counted.
    fn output(&mut self, out: WitBatch) -> Result<Samples, PluginError> {
        Samples::from_wit(out).map_err(|e| {
            let e = PluginError::bad_output(&self.name, e);
            self.fail(e)
        })
    }

    fn needs_recycling(&self) -> bool {
        self.calls_above_high_water >= RECYCLE_AFTER_CALLS
    }
}

/// Checks the world, pre-links the world's bindings and starts a sandboxed
/// instance through `init`: the constructor of every role.
macro_rules! start_role {
    ($plugin:expr, $world:expr, $pre:ty, $name:expr, $settings:expr, $grants:expr, $limits:expr) => {{
        $plugin.expect_world($world)?;
        let pre = <$pre>::new($plugin.pre.clone())
            .map_err(|e| PluginError::load($name, format!("{e:#}")))?;
        let settings = $settings.to_vec();
        Sandbox::start(
            &$plugin,
            $name,
            $grants,
            $limits,
            |s| pre.instantiate(s),
            |b, s| b.call_init(s, &settings),
        )?
    }};
}

/// A running transformer instance.
pub struct Transformer {
    plugin: Arc<Plugin>,
    sandbox: Sandbox,
    bindings: transformer::Transformer,
}

impl Transformer {
    /// Instantiates `plugin` (which must be a transformer) as stage `name`
    /// and calls its `init` with `settings`.
    ///
    /// # Errors
    /// `Load` for a plugin of another world; the guest's own error from
    /// `init` (usually `InvalidSettings`); `Trap`, `Deadline`, `Memory`.
    pub fn new(
        plugin: Arc<Plugin>,
        name: &str,
        settings: &[(String, String)],
        grants: &Grants,
        limits: Limits,
    ) -> Result<Self, PluginError> {
        let (sandbox, bindings) = start_role!(
            plugin,
            World::Transformer,
            transformer::TransformerPre<HostState>,
            name,
            settings,
            grants,
            limits
        );
        Ok(Transformer {
            plugin,
            sandbox,
            bindings,
        })
    }

    /// Transforms one Arrow sample batch (one Wasm call).
    ///
    /// # Errors
    /// `InvalidInput` (or another guest kind) when the plugin refuses the
    /// batch; `Trap`, `Deadline`, `Memory`; `BadOutput` for a malformed
    /// result; `Internal` when the input does not have the sample schema.
    pub fn transform(&mut self, input: &RecordBatch) -> Result<RecordBatch, PluginError> {
        self.transform_samples(&Samples::from(input.clone()))
            .map(Samples::into_batch)
    }

    /// [`Transformer::transform`] of samples that may know their series
    /// table (a plugin's output does): the input's series are then not
    /// looked up row by row, and the output keeps its own table.
    ///
    /// # Errors
    /// As [`Transformer::transform`].
    pub fn transform_samples(&mut self, input: &Samples) -> Result<Samples, PluginError> {
        let wit = input.to_wit().map_err(|e| {
            PluginError::new(
                &self.sandbox.name,
                PluginErrorKind::Internal,
                format!("input batch: {e}"),
            )
        })?;
        let out = self.transform_wit(&wit)?;
        self.sandbox.output(out)
    }

    /// Transforms one batch in the contract's own columnar form, without
    /// the Arrow conversion (one Wasm call). The output is not validated:
    /// [`crate::batch::from_wit`] does that.
    ///
    /// # Errors
    /// As [`Transformer::transform`], except `BadOutput`.
    pub fn transform_wit(&mut self, input: &WitBatch) -> Result<WitBatch, PluginError> {
        let bindings = &self.bindings;
        let out = self.sandbox.call(|s| bindings.call_transform(s, input))?;
        self.sandbox.guest(out)
    }

    /// Counters of this instance.
    pub fn stats(&self) -> &CallStats {
        &self.sandbox.stats
    }

    /// True when the instance's memory has stayed above
    /// [`Limits::recycle_above_bytes`] for [`RECYCLE_AFTER_CALLS`] calls:
    /// replace it with a fresh one between batches.
    pub fn needs_recycling(&self) -> bool {
        self.sandbox.needs_recycling()
    }

    /// The plugin this instance runs.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }
}

/// A running collector instance.
pub struct Collector {
    plugin: Arc<Plugin>,
    sandbox: Sandbox,
    bindings: collector::Collector,
}

impl Collector {
    /// Instantiates `plugin` (which must be a collector) as stage `name`
    /// and calls its `init` with `settings`.
    ///
    /// # Errors
    /// As [`Transformer::new`].
    pub fn new(
        plugin: Arc<Plugin>,
        name: &str,
        settings: &[(String, String)],
        grants: &Grants,
        limits: Limits,
    ) -> Result<Self, PluginError> {
        let (sandbox, bindings) = start_role!(
            plugin,
            World::Collector,
            collector::CollectorPre<HostState>,
            name,
            settings,
            grants,
            limits
        );
        Ok(Collector {
            plugin,
            sandbox,
            bindings,
        })
    }

    /// Collects one batch; `now_ns` is the tick time, ns since the Unix
    /// epoch, UTC.
    ///
    /// # Errors
    /// As [`Transformer::transform`].
    pub fn collect(&mut self, now_ns: i64) -> Result<Samples, PluginError> {
        let bindings = &self.bindings;
        let out = self.sandbox.call(|s| bindings.call_collect(s, now_ns))?;
        let out = self.sandbox.guest(out)?;
        self.sandbox.output(out)
    }

    /// Counters of this instance.
    pub fn stats(&self) -> &CallStats {
        &self.sandbox.stats
    }

    /// True when the instance's memory has stayed above
    /// [`Limits::recycle_above_bytes`] for [`RECYCLE_AFTER_CALLS`] calls:
    /// replace it with a fresh one between batches.
    pub fn needs_recycling(&self) -> bool {
        self.sandbox.needs_recycling()
    }

    /// The plugin this instance runs.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }
}

/// A running alarm-rule instance.
pub struct AlarmRule {
    plugin: Arc<Plugin>,
    sandbox: Sandbox,
    bindings: alarm_rule::AlarmRule,
}

impl AlarmRule {
    /// Instantiates `plugin` (which must be an alarm rule) as `name` and
    /// calls its `init` with `settings`.
    ///
    /// # Errors
    /// As [`Transformer::new`].
    pub fn new(
        plugin: Arc<Plugin>,
        name: &str,
        settings: &[(String, String)],
        grants: &Grants,
        limits: Limits,
    ) -> Result<Self, PluginError> {
        let (sandbox, bindings) = start_role!(
            plugin,
            World::AlarmRule,
            alarm_rule::AlarmRulePre<HostState>,
            name,
            settings,
            grants,
            limits
        );
        Ok(AlarmRule {
            plugin,
            sandbox,
            bindings,
        })
    }

    /// Evaluates one alarm (`params`) over its series (one Wasm call);
    /// returns one evaluation per input entry, in input order.
    ///
    /// # Errors
    /// The guest's own error (`InvalidSettings` for bad parameters);
    /// `Trap`, `Deadline`, `Memory`; `BadOutput` when the plugin returns
    /// a different number of evaluations than series.
    pub fn evaluate(
        &mut self,
        params: &[(String, String)],
        input: &[SeriesAggregates],
    ) -> Result<Vec<Evaluation>, PluginError> {
        let bindings = &self.bindings;
        let params = params.to_vec();
        let out = self
            .sandbox
            .call(|s| bindings.call_evaluate(s, &params, input))?;
        let out = self.sandbox.guest(out)?;
        if out.len() != input.len() {
            let e = PluginError::new(
                &self.sandbox.name,
                PluginErrorKind::BadOutput,
                format!(
                    "returned {} evaluations for {} series",
                    out.len(),
                    input.len()
                ),
            );
            return Err(self.sandbox.fail(e));
        }
        Ok(out)
    }

    /// Counters of this instance.
    pub fn stats(&self) -> &CallStats {
        &self.sandbox.stats
    }

    /// The plugin this instance runs.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }
}

/// What one decode call produced: the samples and the refused lines.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The samples of the accepted lines (the sample schema).
    pub batch: Samples,
    /// The refused lines, in input order, with 1-based line numbers.
    pub rejected: Vec<RejectedLine>,
}

/// A running decoder instance.
pub struct Decoder {
    plugin: Arc<Plugin>,
    sandbox: Sandbox,
    bindings: decoder::Decoder,
}

impl Decoder {
    /// Instantiates `plugin` (which must be a decoder) as stage `name` and
    /// calls its `init` with `settings`.
    ///
    /// # Errors
    /// As [`Transformer::new`].
    pub fn new(
        plugin: Arc<Plugin>,
        name: &str,
        settings: &[(String, String)],
        grants: &Grants,
        limits: Limits,
    ) -> Result<Self, PluginError> {
        let (sandbox, bindings) = start_role!(
            plugin,
            World::Decoder,
            decoder::DecoderPre<HostState>,
            name,
            settings,
            grants,
            limits
        );
        Ok(Decoder {
            plugin,
            sandbox,
            bindings,
        })
    }

    /// Decodes one document (one Wasm call): `content_type` as the source
    /// declared it ("" when unknown), `now_ns` for samples without a time
    /// of their own (ns since the Unix epoch, UTC).
    ///
    /// # Errors
    /// The guest's own error (`InvalidInput` for a document it cannot use,
    /// naming the line); `Trap`, `Deadline`, `Memory`; `BadOutput` for a
    /// malformed batch.
    pub fn decode(
        &mut self,
        input: &[u8],
        content_type: &str,
        now_ns: i64,
    ) -> Result<Decoded, PluginError> {
        let bindings = &self.bindings;
        let out = self
            .sandbox
            .call(|s| bindings.call_decode(s, input, content_type, now_ns))?;
        let out = self.sandbox.guest(out)?;
        let batch = self.sandbox.output(out.batch)?;
        Ok(Decoded {
            batch,
            rejected: out.rejected,
        })
    }

    /// Counters of this instance.
    pub fn stats(&self) -> &CallStats {
        &self.sandbox.stats
    }

    /// True when the instance's memory has stayed above
    /// [`Limits::recycle_above_bytes`] for [`RECYCLE_AFTER_CALLS`] calls:
    /// replace it with a fresh one between documents.
    pub fn needs_recycling(&self) -> bool {
        self.sandbox.needs_recycling()
    }

    /// The plugin this instance runs.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }
}

/// What the pipeline needs of an instance of either role.
pub trait Instance: Sized {
    /// A fresh instance of the same plugin, through `init` again.
    ///
    /// # Errors
    /// As the role's `new`.
    fn respawn(
        &self,
        name: &str,
        settings: &[(String, String)],
        grants: &Grants,
        limits: Limits,
    ) -> Result<Self, PluginError>;

    /// Counters of this instance.
    fn stats(&self) -> &CallStats;

    /// Zeroes the counters (after they were handed on).
    fn reset_stats(&mut self);
}

impl Instance for Transformer {
    fn respawn(
        &self,
        name: &str,
        settings: &[(String, String)],
        grants: &Grants,
        limits: Limits,
    ) -> Result<Self, PluginError> {
        Transformer::new(self.plugin.clone(), name, settings, grants, limits)
    }

    fn stats(&self) -> &CallStats {
        &self.sandbox.stats
    }

    fn reset_stats(&mut self) {
        self.sandbox.stats = CallStats::default();
    }
}

impl Instance for Collector {
    fn respawn(
        &self,
        name: &str,
        settings: &[(String, String)],
        grants: &Grants,
        limits: Limits,
    ) -> Result<Self, PluginError> {
        Collector::new(self.plugin.clone(), name, settings, grants, limits)
    }

    fn stats(&self) -> &CallStats {
        &self.sandbox.stats
    }

    fn reset_stats(&mut self) {
        self.sandbox.stats = CallStats::default();
    }
}

impl Instance for Decoder {
    fn respawn(
        &self,
        name: &str,
        settings: &[(String, String)],
        grants: &Grants,
        limits: Limits,
    ) -> Result<Self, PluginError> {
        Decoder::new(self.plugin.clone(), name, settings, grants, limits)
    }

    fn stats(&self) -> &CallStats {
        &self.sandbox.stats
    }

    fn reset_stats(&mut self) {
        self.sandbox.stats = CallStats::default();
    }
}

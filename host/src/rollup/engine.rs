//! The rollup engine: raw measures in, closed aggregate rows out.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use rustc_hash::FxBuildHasher;
use smallvec::SmallVec;

use arrow::array::RecordBatch;

use super::methods::{BucketScratch, aggregate};
use super::policy::{ArchivePolicy, PolicyRules};
use super::rows::{ClosedRow, ClosedRows};
use crate::batch::{BatchError, Samples};
use crate::bindings::WitSeries;

/// Identity and description of one series.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeriesInfo {
    /// Meter name.
    pub metric: String,
    /// What is measured.
    pub resource_id: String,
    /// Unit of the series (of its first sample).
    pub unit: String,
    /// Labels, sorted by key.
    pub attributes: Vec<(String, String)>,
}

impl SeriesInfo {
    /// True when `s` is this series: same metric, resource and attributes
    /// (sorted, as a WIT batch from `batch` has them); the unit is not part
    /// of the identity.
    fn is(&self, s: &WitSeries) -> bool {
        self.metric == s.metric
            && self.resource_id == s.resource_id
            && self.attributes == s.attributes
    }
}

/// One raw measure: (ns since the Unix epoch, value).
type Point = (i64, f64);

/// The open state of one series.
#[derive(Debug, Clone)]
pub(super) struct SeriesState {
    pub(super) info: Arc<SeriesInfo>,
    pub(super) policy: usize,
    /// Raw measures of the open buckets: sorted by time, one per timestamp.
    pub(super) points: Vec<Point>,
    /// The newest raw measure before `points` (the predecessor `rate:`
    /// needs for the first of them).
    pub(super) pred: Option<Point>,
    /// The newest timestamp ever stored for the series.
    pub(super) last: Option<i64>,
    /// Per policy granularity: start of the first bucket not yet written
    /// (inline: one cache line less per series and batch).
    pub(super) open_from: SmallVec<[i64; 4]>,
    /// The latest `close_at` the series was closed to: a close to it or
    /// before is a no-op (`open_from` only moves forward), and most
    /// batches do not move it (it moves once per coarsest block).
    pub(super) closed_to: i64,
}

impl SeriesState {
    /// The oldest open bucket's start: no measure before it is needed.
    pub(super) fn keep_from(&self) -> i64 {
        self.open_from.iter().copied().min().unwrap_or(i64::MIN)
    }

    /// Drops the measures before [`Self::keep_from`], remembering the
    /// newest of them as the predecessor `rate:` needs.
    pub(super) fn drop_before_open(&mut self) {
        let cut = first_at_or_after_from_start(&self.points, self.keep_from());
        if cut > 0 {
            self.pred = Some(self.points[cut - 1]);
            self.points.drain(..cut);
        }
    }
}

/// What the engine refused, by reason and metric, and what it accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollupReport {
    /// Measures merged into open buckets.
    pub accepted: u64,
    /// Measures older than the back window allows (Gnocchi drops these
    /// silently; wasmeter counts them), by metric.
    pub late: BTreeMap<String, u64>,
    /// Measures of metrics no archive policy rule matches, by metric.
    pub no_policy: BTreeMap<String, u64>,
    /// Measures stamped before 1970-01-01 (Gnocchi refuses them), by metric.
    pub before_epoch: BTreeMap<String, u64>,
    /// Measures older than the clock of the last [`RollupEngine::advance`]
    /// minus the policy's forgetting horizon, for a series whose own
    /// back-window cutoff does not refuse them (a new or forgotten series):
    /// retention would delete their rows, and for a forgotten series they
    /// could repeat a bucket already written. By metric.
    pub expired: BTreeMap<String, u64>,
    /// Measures stamped after the limit of [`RollupEngine::refuse_after`]
    /// (the sink's: the wall clock plus `[archive] max_future`): one clock
    /// gone wrong would otherwise close its series' buckets at once, refuse
    /// its real measures as late and, through the clock of `import`, let
    /// retention delete the archive. By metric.
    pub future: BTreeMap<String, u64>,
    /// Rows closed (one per series, granularity and non-empty bucket).
    pub rows_closed: u64,
    /// Series forgotten after a silence longer than their policy's
    /// longest timespan (see [`RollupEngine::advance`]).
    pub series_forgotten: u64,
}

impl RollupReport {
    /// All refused measures.
    pub fn refused(&self) -> u64 {
        [
            &self.late,
            &self.no_policy,
            &self.before_epoch,
            &self.expired,
            &self.future,
        ]
        .iter()
        .flat_map(|m| m.values())
        .sum()
    }
}

/// Rows (per granularity) whose buffers `recycle` always keeps.
const RECYCLE_LIMIT: usize = 1 << 16;

/// Gnocchi's retention over one aggregate series: keeps the rows whose
/// bucket is strictly after `newest bucket − timespan` (exactly `points`
/// buckets when the data is dense). `rows` must be in time order.
pub fn retain(rows: &mut Vec<ClosedRow>, timespan_ns: i64) {
    if let Some(newest) = rows.iter().map(|r| r.timestamp).max() {
        rows.retain(|r| r.timestamp > newest - timespan_ns);
    }
}

/// A hash of a series' identity (metric, resource, attributes), seeded by
/// `seed`. The names come from scrape targets and plugins: an unseeded
/// hash would let them pick colliding names and make every lookup a scan.
/// foldhash: fast on short strings; equality is checked after the lookup.
fn identity_hash(
    seed: &foldhash::fast::RandomState,
    metric: &str,
    resource_id: &str,
    attributes: &[(String, String)],
) -> u64 {
    let mut h = seed.build_hasher();
    metric.hash(&mut h);
    resource_id.hash(&mut h);
    attributes.hash(&mut h);
    h.finish()
}

/// The index of the first of `points` (sorted by time) stamped at or after
/// `t`, found by galloping back from the end: O(log k) for an answer k
/// places from the end, touching only the (cache-warm) tail.
fn first_at_or_after_from_end(points: &[Point], t: i64) -> usize {
    let n = points.len();
    let mut step = 1;
    let mut hi = n; // points[hi..] are all >= t
    loop {
        let probe = n.saturating_sub(step);
        if probe == 0 || points[probe].0 < t {
            return probe + points[probe..hi].partition_point(|p| p.0 < t);
        }
        hi = probe;
        step *= 2;
    }
}

/// As [`first_at_or_after_from_end`], galloping forward from the start:
/// O(log k) for an answer k places from the start.
fn first_at_or_after_from_start(points: &[Point], t: i64) -> usize {
    let n = points.len();
    let mut lo = 0; // points[..lo] are all < t
    let mut step = 1;
    loop {
        let probe = (lo + step).min(n);
        if probe == n || points[probe - 1].0 >= t {
            return lo + points[lo..probe].partition_point(|p| p.0 < t);
        }
        lo = probe;
        step *= 2;
    }
}

/// The horizon of `p` (see [`RollupEngine::advance`]): the longest
/// timespan of the policy, and at least the back window plus one block (so
/// a `rate:` predecessor the window may need is kept); `None` (never
/// forget, never expire) when an item has unlimited points.
fn forget_horizon(p: &ArchivePolicy) -> Option<i64> {
    let longest = p
        .definition
        .iter()
        .map(|i| i.timespan().map(|t| t.as_nanos() as i64))
        .try_fold(0i64, |m, t| t.map(|t| m.max(t)))?;
    Some(longest.max(p.block_ns().saturating_mul(p.effective_back_window() + 1)))
}

/// Floor `ts` to a multiple of `g` since the Unix epoch.
pub fn floor(ts: i64, g: i64) -> i64 {
    ts.div_euclid(g) * g
}

/// Aggregates samples by archive policy with Gnocchi's semantics.
///
/// Ingest is event-time driven, per series, as Gnocchi's metricd:
///
/// ```text
/// cutoff = floor(last, block) − block × (back_window + [1 if rate:*])
///          last: newest stored timestamp of the series; block: coarsest
///          granularity of its policy
/// a measure older than the cutoff is refused (and counted)
/// a bucket [b, b+g) is closed, computed and emitted once b+g ≤ cutoff
/// ```
///
/// Besides, [`RollupEngine::advance`] closes the buckets of idle series
/// as if a measure had arrived at `now`, so the last bucket of a series
/// that stops reporting is still written; a measure arriving later for a
/// bucket closed that way is refused as late. That is the one deviation
/// from Gnocchi, which rewrites aggregates instead of writing them once.
///
/// Duplicate timestamps follow Gnocchi's code: within one ingested batch
/// the smallest value wins; across batches the later batch replaces the
/// stored value.
///
/// Memory per open series: 16 bytes per raw measure within the open
/// buckets, i.e. at most `(back_window + 2) × block` worth of measures,
/// plus its strings; quantiles need no other state. Closed rows until
/// taken ([`ClosedRows`]): 12 bytes plus 8 per method each, and 8 per run
/// of one series' rows; `recycle` keeps a larger row buffer than
/// `RECYCLE_LIMIT` rows only while it holds no more than the raw measures
/// do.
#[derive(Debug)]
pub struct RollupEngine {
    pub(super) policies: Arc<[ArchivePolicy]>,
    rules: PolicyRules,
    pub(super) series: Vec<SeriesState>,
    /// Series ids by a hash of (metric, resource_id, attributes); inline,
    /// so a lookup touches one table slot (collisions are rare).
    index: HashMap<u64, SmallVec<[u32; 2]>, FxBuildHasher>,
    /// The seed of `index`'s identity hashes, random per engine.
    seed: foldhash::fast::RandomState,
    closed: Vec<Vec<ClosedRows>>,
    /// Emptied buffers of an earlier take, for the next (see `recycle`).
    spare: Option<Vec<Vec<ClosedRows>>>,
    /// Rows per granularity whose buffers `recycle` always keeps.
    recycle_rows: usize,
    report: RollupReport,
    /// Per policy: how long a silent series is kept (see
    /// [`RollupEngine::advance`]); `None` never forgets.
    horizons: Vec<Option<i64>>,
    /// The newest `now_ns` given to [`RollupEngine::advance`].
    clock: i64,
    /// Per policy: measures older than this are refused as expired. The
    /// clock minus the horizon, and never lower than it has been (a reload
    /// that lengthens the horizon keeps the old floor: a series forgotten
    /// under the old one may have written buckets up to it).
    expired_before: Vec<i64>,
    /// Measures stamped after this are refused as future.
    refuse_after: i64,
    /// Set while replaying the write-ahead log: ingestion closes nothing
    /// (see [`RollupEngine::replay_samples`]).
    hold_closing: bool,
    // Scratch buffers reused across batches.
    group_offsets: Vec<usize>,
    group_points: Vec<Point>,
    batch_ids: Vec<Option<u32>>,
    scratch: BucketScratch,
    values: Vec<f64>,
    row: Vec<Option<f64>>,
}

impl RollupEngine {
    /// An engine for `policies`, choosing each metric's policy by `rules`.
    pub fn new(policies: Vec<ArchivePolicy>, rules: PolicyRules) -> Self {
        let closed = policies
            .iter()
            .map(|p| vec![ClosedRows::new(p.aggregation_methods.len()); p.definition.len()])
            .collect();
        let horizons = policies.iter().map(forget_horizon).collect();
        RollupEngine {
            horizons,
            clock: i64::MIN,
            expired_before: vec![i64::MIN; policies.len()],
            refuse_after: i64::MAX,
            hold_closing: false,
            policies: policies.into(),
            rules,
            series: Vec::new(),
            index: HashMap::default(),
            seed: foldhash::fast::RandomState::default(),
            closed,
            spare: None,
            recycle_rows: RECYCLE_LIMIT,
            report: RollupReport::default(),
            group_offsets: Vec::new(),
            group_points: Vec::new(),
            batch_ids: Vec::new(),
            scratch: BucketScratch::default(),
            values: Vec::new(),
            row: Vec::new(),
        }
    }

    /// The policies, by index.
    pub fn policies(&self) -> &[ArchivePolicy] {
        &self.policies
    }

    /// The newest `now_ns` given to [`RollupEngine::advance`] (or restored
    /// by [`RollupEngine::load_state`]), ns since the Unix epoch, UTC;
    /// `None` before the first.
    pub fn clock(&self) -> Option<i64> {
        (self.clock != i64::MIN).then_some(self.clock)
    }

    /// Per policy (by index): measures older than this are refused as
    /// [`RollupReport::expired`]; `i64::MIN` refuses none.
    pub fn expired_before(&self) -> &[i64] {
        &self.expired_before
    }

    /// Moves the clock to `clock` and policy `p`'s expiry floor to
    /// `expired_before[p]` where those are newer; then raises every floor
    /// to the clock minus its policy's horizon. Closes and forgets nothing
    /// (the next [`RollupEngine::advance`] does).
    pub(super) fn restore_clock(&mut self, clock: i64, expired_before: &[Option<i64>]) {
        self.clock = self.clock.max(clock);
        for (floor, saved) in self.expired_before.iter_mut().zip(expired_before) {
            *floor = (*floor).max(saved.unwrap_or(i64::MIN));
        }
        self.raise_expiry_floors();
    }

    /// Sets a clock ahead of `to` back to `to`, and lowers each policy's
    /// expiry floor to at most `to` minus its horizon (or `to`, for a policy
    /// that never expires). For a clock an import of future-stamped samples
    /// left behind, which would otherwise refuse every measure up to then as
    /// expired. What this gives up: a series forgotten under the old clock
    /// whose newest bucket ends after the new floor could write that bucket
    /// again.
    pub fn rewind_clock(&mut self, to: i64) {
        if self.clock <= to {
            return;
        }
        self.clock = to;
        for (floor, h) in self.expired_before.iter_mut().zip(&self.horizons) {
            *floor = (*floor).min(to.saturating_sub(h.unwrap_or(0)));
        }
    }

    fn raise_expiry_floors(&mut self) {
        if self.clock == i64::MIN {
            return;
        }
        for (floor, h) in self.expired_before.iter_mut().zip(&self.horizons) {
            if let Some(h) = h {
                *floor = (*floor).max(self.clock.saturating_sub(*h));
            }
        }
    }

    /// Refuses the measures of later batches stamped after `t` (ns since the
    /// Unix epoch, UTC), counting them as [`RollupReport::future`];
    /// `i64::MAX`, the default, refuses none. The archive sink sets it to
    /// the wall clock plus `[archive] max_future` before each batch.
    pub fn refuse_after(&mut self, t: i64) {
        self.refuse_after = t;
    }

    /// Counters so far.
    pub fn report(&self) -> &RollupReport {
        &self.report
    }

    /// Number of series with open state.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// The series that hold raw measures, by id: identity, policy index,
    /// the oldest measure held (ns) and, per granularity of the policy, the
    /// start of the first bucket not yet written (ns).
    pub fn open_series(&self) -> impl Iterator<Item = (usize, &SeriesInfo, usize, i64, &[i64])> {
        self.series.iter().enumerate().filter_map(|(id, st)| {
            let first = st.points.first()?.0;
            Some((id, &*st.info, st.policy, first, &st.open_from[..]))
        })
    }

    /// [`RollupEngine::ingest_samples`] that closes no bucket: for the
    /// write-ahead log's batches at start, replayed before the buckets the
    /// archive already holds are marked written (a bucket closed during the
    /// replay would be written again). The next [`RollupEngine::advance`]
    /// closes what is due. The back-window cutoff is each series' own, as
    /// when the measures first came; the expiry floors are those restored
    /// (so a measure refused as expired then may be taken now), and the
    /// buckets the wall clock closed then are still open (their late
    /// measures are taken: the archive check drops those it holds).
    ///
    /// # Errors
    /// As [`RollupEngine::ingest`].
    pub fn replay_samples(&mut self, samples: &Samples) -> Result<(), BatchError> {
        self.hold_closing = true;
        let result = self.ingest_samples(samples);
        self.hold_closing = false;
        result
    }

    /// Zeroes the counters (after a replay, so that they count what this
    /// run received).
    pub fn clear_report(&mut self) {
        self.report = RollupReport::default();
    }

    /// Records that the buckets of series `id` at granularity index `gi`
    /// up to the one starting at `bucket` are in the archive already (a
    /// run that crashed after its last checkpoint wrote them): they are
    /// never written again, and measures before the next bucket are
    /// refused as late.
    pub fn mark_written(&mut self, id: usize, gi: usize, bucket: i64) {
        let st = &mut self.series[id];
        let g = self.policies[st.policy].definition[gi].granularity_ns();
        let next = floor(bucket, g).saturating_add(g);
        if next > st.open_from[gi] {
            st.open_from[gi] = next;
            st.drop_before_open();
        }
    }

    /// Ingests one Arrow sample batch (one ingestion pass per series, as a
    /// metricd batch), then closes what the new cutoffs allow.
    ///
    /// # Errors
    /// [`BatchError`] when the batch does not have the sample schema.
    pub fn ingest(&mut self, batch: &RecordBatch) -> Result<(), BatchError> {
        self.ingest_samples(&Samples::from(batch.clone()))
    }

    /// [`RollupEngine::ingest`] of samples that may know their series
    /// table (a plugin's output does): its series are then not looked up
    /// row by row, and no column is copied.
    ///
    /// # Errors
    /// As [`RollupEngine::ingest`].
    pub fn ingest_samples(&mut self, samples: &Samples) -> Result<(), BatchError> {
        let c = samples.wit_columns()?;
        self.ingest_columns(&c.series, &c.series_index, c.timestamps, c.values);
        Ok(())
    }

    /// Ingests samples given as columns (see [`RollupEngine::ingest`]).
    pub fn ingest_columns(
        &mut self,
        series: &[WitSeries],
        series_index: &[u32],
        timestamps: &[i64],
        values: &[f64],
    ) {
        // Map the batch's series to engine series (per series, not sample).
        // Each position still holds the previous batch's id: the hint.
        self.batch_ids.truncate(series.len());
        for (pos, s) in series.iter().enumerate() {
            let hint = self.batch_ids.get(pos).copied().flatten();
            let id = self.series_id(hint, s);
            match self.batch_ids.get_mut(pos) {
                Some(slot) => *slot = id,
                None => self.batch_ids.push(id),
            }
        }
        // Group samples by series: a counting sort into reused buffers.
        let n = series.len();
        self.group_offsets.clear();
        self.group_offsets.resize(n + 1, 0);
        for &i in series_index {
            self.group_offsets[i as usize + 1] += 1;
        }
        for i in 0..n {
            self.group_offsets[i + 1] += self.group_offsets[i];
        }
        self.group_points.clear();
        self.group_points.resize(series_index.len(), (0, 0.0));
        let mut fill = self.group_offsets.clone();
        for ((&i, &t), &v) in series_index.iter().zip(timestamps).zip(values) {
            let slot = &mut fill[i as usize];
            self.group_points[*slot] = (t, v);
            *slot += 1;
        }
        // Touch each series' raw-buffer tail first. The loads are
        // independent, so the CPU overlaps their cache and TLB misses (one
        // per series: the buffers are spread over gigabytes); the pass
        // below then finds them in cache.
        let mut touched = 0i64;
        for id in self.batch_ids.iter().flatten() {
            touched ^= self.series[*id as usize].points.last().map_or(0, |p| p.0);
        }
        std::hint::black_box(touched);
        for (s, wit) in series.iter().enumerate() {
            let (a, b) = (self.group_offsets[s], self.group_offsets[s + 1]);
            if a == b {
                continue;
            }
            let mut points = std::mem::take(&mut self.group_points);
            match self.batch_ids[s] {
                Some(id) => self.ingest_series(id as usize, &mut points[a..b]),
                None => {
                    *self.report.no_policy.entry(wit.metric.clone()).or_default() += (b - a) as u64;
                }
            }
            self.group_points = points;
        }
    }

    /// The engine id of `s`, registering it; `None` when no rule matches.
    /// Looked up by a hash of the borrowed identity: no allocation for a
    /// known series.
    ///
    /// A source sends its series in the same order batch after batch:
    /// `hint`, the id at the same position in the previous batch, is tried
    /// first (a sequential read instead of a hash-table probe, which
    /// misses cache).
    fn series_id(&mut self, hint: Option<u32>, s: &WitSeries) -> Option<u32> {
        if let Some(id) = hint
            && let Some(st) = self.series.get(id as usize)
            && st.info.is(s)
        {
            return Some(id);
        }
        let h = identity_hash(&self.seed, &s.metric, &s.resource_id, &s.attributes);
        if let Some(ids) = self.index.get(&h)
            && let Some(&id) = ids.iter().find(|&&id| self.series[id as usize].info.is(s))
        {
            return Some(id);
        }
        let policy = self.rules.policy_for(&s.metric)?;
        let info = Arc::new(SeriesInfo {
            metric: s.metric.clone(),
            resource_id: s.resource_id.clone(),
            unit: s.unit.clone(),
            attributes: s.attributes.clone(),
        });
        let id = self.register(info, policy);
        self.index_series(id);
        Some(id)
    }

    pub(super) fn rules_policy_for(&self, metric: &str) -> Option<usize> {
        self.rules.policy_for(metric)
    }

    pub(super) fn register(&mut self, info: Arc<SeriesInfo>, policy: usize) -> u32 {
        let id = self.series.len() as u32;
        let granularities = self.policies[policy].definition.len();
        self.series.push(SeriesState {
            info,
            policy,
            points: Vec::new(),
            pred: None,
            last: None,
            open_from: smallvec::smallvec![i64::MIN; granularities],
            closed_to: i64::MIN,
        });
        id
    }

    pub(super) fn index_series(&mut self, id: u32) {
        let info = &self.series[id as usize].info;
        let h = identity_hash(
            &self.seed,
            &info.metric,
            &info.resource_id,
            &info.attributes,
        );
        self.index.entry(h).or_default().push(id);
    }

    fn ingest_series(&mut self, id: usize, new: &mut [Point]) {
        // 1. Sort by (time, value): ties keep the smallest value.
        if !new.is_sorted_by(|a, b| (a.0, a.1) <= (b.0, b.1)) {
            new.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        }
        let policy = &self.policies[self.series[id].policy];
        let (block, ebw) = (policy.block_ns(), policy.effective_back_window());
        let st = &mut self.series[id];
        // 2. The cutoff from the stored state, and the written buckets.
        let mut accept_from = st
            .last
            .map_or(i64::MIN, |last| floor(last, block) - block * ebw);
        accept_from = st.open_from.iter().copied().fold(accept_from, i64::max);
        let expire_before = self.expired_before[st.policy];
        let refuse_after = self.refuse_after;
        let mut prev: Option<i64> = None;
        let mut appended_in_order = true;
        for &(t, v) in new.iter() {
            if prev == Some(t) {
                continue; // a duplicate within the batch: the first (smallest) stays
            }
            prev = Some(t);
            if t < 0 {
                *self
                    .report
                    .before_epoch
                    .entry(st.info.metric.clone())
                    .or_default() += 1;
                continue;
            }
            if t > refuse_after {
                *self
                    .report
                    .future
                    .entry(st.info.metric.clone())
                    .or_default() += 1;
                continue;
            }
            if t < accept_from {
                *self.report.late.entry(st.info.metric.clone()).or_default() += 1;
                continue;
            }
            if t < expire_before {
                *self
                    .report
                    .expired
                    .entry(st.info.metric.clone())
                    .or_default() += 1;
                continue;
            }
            self.report.accepted += 1;
            // `last` bounds every stored point and lives in the (warm)
            // state, unlike the buffer's tail.
            appended_in_order &= st.last.is_none_or(|l| l < t);
            st.points.push((t, v));
            st.last = Some(st.last.map_or(t, |l| l.max(t)));
        }
        if !appended_in_order {
            // 3. Merge: for equal timestamps the new value replaces the
            // stored one. New points were appended after the stored ones; a
            // stable sort by time keeps that order, so keep the last of each.
            st.points.sort_by_key(|p| p.0);
            let mut merged: Vec<Point> = Vec::with_capacity(st.points.len());
            for p in st.points.drain(..) {
                match merged.last_mut() {
                    Some(last) if last.0 == p.0 => *last = p,
                    _ => merged.push(p),
                }
            }
            st.points = merged;
        }
        if let Some(last) = st.last
            && !self.hold_closing
        {
            let cutoff = floor(last, block) - block * ebw;
            self.close_series(id, cutoff);
        }
    }

    /// Closes, for every series, the buckets that a measure at `now_ns`
    /// would close (idle series included). Run mode passes the wall clock,
    /// import mode the newest event time.
    ///
    /// Then forgets every series with no open measure whose newest measure
    /// is older than `now_ns` minus its policy's horizon minus one block
    /// (`block`: the coarsest granularity; horizon: the longest timespan,
    /// at least the back window plus one block; never, for a policy with
    /// an item of unlimited points). So churning resources (pods, VMs) do
    /// not grow the engine without bound. A series that comes back opens
    /// as a new one: its first bucket has no `rate:` predecessor, and its
    /// old back-window cutoff is replaced by the engine's: every series
    /// refuses measures older than the newest `now_ns` minus the horizon
    /// (counted as [`RollupReport::expired`]). The forgotten series' buckets
    /// all end before that, so none is written twice; retention would
    /// delete such rows anyway.
    pub fn advance(&mut self, now_ns: i64) {
        for id in 0..self.series.len() {
            let p = &self.policies[self.series[id].policy];
            let (block, ebw) = (p.block_ns(), p.effective_back_window());
            self.close_series(id, floor(now_ns, block) - block * ebw);
        }
        self.clock = self.clock.max(now_ns);
        self.raise_expiry_floors();
        self.forget_silent(now_ns);
    }

    /// Removes the series [`RollupEngine::advance`] forgets at `now_ns`.
    fn forget_silent(&mut self, now_ns: i64) {
        // Downwards, so the series `swap_remove` moves in was checked.
        for id in (0..self.series.len()).rev() {
            let st = &self.series[id];
            // A series that never stored a measure (all before the epoch,
            // or none in the batch that named it) holds nothing either.
            // One block more than the horizon: the bucket of its newest
            // measure then ends before `clock − horizon`, so what
            // `expired` lets through for it can never land in a bucket
            // already written.
            let block = self.policies[st.policy].block_ns();
            let silent = st.points.is_empty()
                && self.horizons[st.policy].is_some_and(|h| {
                    let before = now_ns.saturating_sub(h).saturating_sub(block);
                    st.last.is_none_or(|last| last < before)
                });
            if silent {
                self.forget(id as u32);
            }
        }
    }

    /// Removes series `id`; the last series takes its id.
    fn forget(&mut self, id: u32) {
        let hash = |st: &SeriesState| {
            let i = &st.info;
            identity_hash(&self.seed, &i.metric, &i.resource_id, &i.attributes)
        };
        let h = hash(&self.series[id as usize]);
        if let Some(ids) = self.index.get_mut(&h) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                self.index.remove(&h);
            }
        }
        let last = (self.series.len() - 1) as u32;
        self.series.swap_remove(id as usize);
        if id != last {
            let h = hash(&self.series[id as usize]);
            if let Some(slot) = self
                .index
                .get_mut(&h)
                .and_then(|ids| ids.iter_mut().find(|i| **i == last))
            {
                *slot = id;
            }
        }
        self.report.series_forgotten += 1;
    }

    /// Emits every bucket of series `id` that ends at or before `close_at`
    /// and drops the raw measures no open bucket needs.
    fn close_series(&mut self, id: usize, close_at: i64) {
        let st = &mut self.series[id];
        if close_at <= st.closed_to {
            return;
        }
        st.closed_to = close_at;
        // A field borrow, not a clone of the Arc: no shared counter
        // touched per series and batch.
        let policy = &self.policies[st.policy];
        let keep_before = st.keep_from();
        for (gi, item) in policy.definition.iter().enumerate() {
            let g = item.granularity_ns();
            // The first bucket still open after closing: its end > close_at.
            let new_open = floor(close_at.saturating_sub(g), g).saturating_add(g);
            if new_open <= st.open_from[gi] {
                continue;
            }
            // Both bounds lie near the end for all but the coarsest
            // granularity: search from there (the front is cold memory).
            let lo = first_at_or_after_from_end(&st.points, st.open_from[gi]);
            let hi = lo + first_at_or_after_from_end(&st.points[lo..], new_open);
            let mut i = lo;
            while i < hi {
                let bucket = floor(st.points[i].0, g);
                // Galloping from the bucket's first point: O(log k) for a
                // bucket of k points (a binary search over the whole range
                // cost log n cache misses per bucket).
                let end = i + first_at_or_after_from_start(&st.points[i..hi], bucket + g);
                let pred = if i > 0 {
                    Some(st.points[i - 1])
                } else {
                    st.pred
                };
                compute_bucket(
                    &policy.aggregation_methods,
                    &st.points[i..end],
                    pred,
                    &mut self.values,
                    &mut self.scratch,
                    &mut self.row,
                );
                self.closed[st.policy][gi].push(bucket, &st.info, self.row.iter().copied());
                self.report.rows_closed += 1;
                i = end;
            }
            st.open_from[gi] = new_open;
        }
        // Keep only what open buckets need; remember the predecessor. The
        // buffer holds nothing before the oldest open bucket (ingest refuses
        // what is older), so only a move of that bucket can free points.
        if st.keep_from() != keep_before {
            st.drop_before_open();
        }
    }

    /// The earliest bucket start still open among the series of
    /// `policy` at granularity index `gi` (`i64::MAX` when there is none):
    /// archive partitions that end before it can no longer change.
    pub fn min_open_from(&self, policy: usize, gi: usize) -> i64 {
        let g = self.policies[policy].definition[gi].granularity_ns();
        self.series
            .iter()
            .filter(|s| s.policy == policy)
            .map(|s| match s.open_from[gi] {
                // Nothing closed yet: open from its first measure.
                i64::MIN => s.points.first().map_or(i64::MAX, |p| floor(p.0, g)),
                open => open,
            })
            .min()
            .unwrap_or(i64::MAX)
    }

    /// Takes the rows closed so far, per policy and granularity index.
    pub fn take_closed(&mut self) -> Vec<Vec<ClosedRows>> {
        if let Some(spare) = self.spare.take() {
            return std::mem::replace(&mut self.closed, spare);
        }
        // Sized as the previous take, up to `recycle_rows`: one allocation
        // per batch instead of a chain of doublings for a steady stream;
        // a larger take grows past it.
        let empty = self
            .closed
            .iter()
            .map(|per_g| {
                per_g
                    .iter()
                    .map(|c| {
                        let mut e = ClosedRows::new(c.width());
                        e.reserve(c.len().min(self.recycle_rows));
                        e
                    })
                    .collect()
            })
            .collect();
        std::mem::replace(&mut self.closed, empty)
    }

    /// Gives back the buffers of a [`RollupEngine::take_closed`] result
    /// once its rows are consumed: the next take reuses them, so a steady
    /// stream of batches allocates no new row buffers (fresh pages cost
    /// more than the aggregation). A result of another shape is dropped.
    pub fn recycle(&mut self, mut closed: Vec<Vec<ClosedRows>>) {
        let same_shape = closed.len() == self.closed.len()
            && closed.iter().zip(&self.closed).all(|(a, b)| {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.width() == y.width())
            });
        if !same_shape {
            return;
        }
        // Buffers of up to `recycle_rows` rows are kept. Larger ones (a
        // daily close of every series) are kept while they hold no more
        // memory than the raw measures do, so a close that recurs (every
        // coarsest block) faults in no fresh pages, while a one-off (an
        // import's catch-up) does not pin its memory. With the swap below,
        // the large buffer of a granularity is the one filled next, so only
        // one is held (two only if rows closed between take and recycle).
        let mut budget: Option<usize> = None;
        for rows in closed.iter_mut().flatten() {
            if rows.capacity() <= self.recycle_rows {
                rows.clear_keeping(usize::MAX);
                continue;
            }
            let bytes = rows.capacity_bytes();
            let left = budget.get_or_insert_with(|| {
                self.series
                    .iter()
                    .map(|s| s.points.capacity() * size_of::<Point>())
                    .sum()
            });
            if bytes <= *left {
                *left -= bytes;
                rows.clear_keeping(usize::MAX);
            } else {
                rows.clear_keeping(self.recycle_rows);
            }
        }
        // The larger empty buffer becomes the one filled next, so one
        // large buffer per granularity serves every recurring close
        // (rather than two, taken in turns).
        for (mine, back) in self
            .closed
            .iter_mut()
            .flatten()
            .zip(closed.iter_mut().flatten())
        {
            if mine.is_empty() && back.capacity() > mine.capacity() {
                std::mem::swap(mine, back);
            }
        }
        self.spare = Some(closed);
    }

    /// Sets the rows per granularity whose buffers `recycle` always keeps.
    #[cfg(test)]
    pub(super) fn set_recycle_rows(&mut self, rows: usize) {
        self.recycle_rows = rows;
    }

    /// Row capacity of the buffers the next closes fill, per policy and
    /// granularity.
    #[cfg(test)]
    pub(super) fn closed_capacity(&self) -> Vec<Vec<usize>> {
        self.closed
            .iter()
            .map(|g| g.iter().map(|r| r.capacity()).collect())
            .collect()
    }

    /// The aggregates of the open (not yet closed) buckets of every series
    /// at `policy`/`granularity index`, computed now: for alarms, which
    /// look at the still-filling bucket as Aodh does.
    pub fn open_rows(&mut self, policy: usize, gi: usize) -> Vec<ClosedRow> {
        let policies = self.policies.clone();
        let p = &policies[policy];
        let g = p.definition[gi].granularity_ns();
        let mut out = Vec::new();
        for st in self.series.iter().filter(|s| s.policy == policy) {
            let lo = st.points.partition_point(|x| x.0 < st.open_from[gi]);
            let mut i = lo;
            while i < st.points.len() {
                let bucket = floor(st.points[i].0, g);
                let end = st.points.partition_point(|x| x.0 < bucket + g);
                let pred = if i > 0 {
                    Some(st.points[i - 1])
                } else {
                    st.pred
                };
                let mut values = Vec::new();
                compute_bucket(
                    &p.aggregation_methods,
                    &st.points[i..end],
                    pred,
                    &mut self.values,
                    &mut self.scratch,
                    &mut values,
                );
                out.push(ClosedRow {
                    timestamp: bucket,
                    series: st.info.clone(),
                    values,
                });
                i = end;
            }
        }
        out
    }
}

/// Computes every method of a bucket from its raw points (time order) and
/// the raw point before them (`pred`, for `rate:`) into `out`, one per
/// method. `methods` is in canonical order: plain methods first, then
/// `rate:` ones.
fn compute_bucket(
    methods: &[super::policy::AggregationMethod],
    points: &[Point],
    pred: Option<Point>,
    values: &mut Vec<f64>,
    scratch: &mut BucketScratch,
    out: &mut Vec<Option<f64>>,
) {
    out.clear();
    out.reserve(methods.len());
    values.clear();
    values.extend(points.iter().map(|p| p.1));
    let plain_len = values.len();
    scratch.reset();
    let mut diffs_done = false;
    for m in methods {
        if m.rate && !diffs_done {
            // Differences of consecutive raw values, stamped at the later
            // point; the first point of a series has none.
            let mut prev = pred.map(|p| p.1);
            for p in points {
                if let Some(prev) = prev {
                    values.push(p.1 - prev);
                }
                prev = Some(p.1);
            }
            diffs_done = true;
            scratch.reset();
        }
        let data = if m.rate {
            &values[plain_len..]
        } else {
            &values[..plain_len]
        };
        out.push(if data.is_empty() {
            None
        } else {
            aggregate(m.base, data, scratch)
        });
    }
}

#[cfg(test)]
mod search_tests {
    use super::*;

    #[test]
    fn galloping_searches_agree_with_binary_search() {
        for n in 0..40usize {
            // Timestamps 0, 2, 4, … with a run of duplicates in the middle.
            let points: Vec<Point> = (0..n)
                .map(|i| (2 * i as i64 - i64::from(i > n / 2), 0.0))
                .collect();
            for t in -2..=(2 * n as i64 + 2) {
                let want = points.partition_point(|p| p.0 < t);
                assert_eq!(first_at_or_after_from_end(&points, t), want, "n={n} t={t}");
                assert_eq!(
                    first_at_or_after_from_start(&points, t),
                    want,
                    "n={n} t={t}"
                );
            }
        }
    }
}

#[cfg(test)]
mod hash_tests {
    use super::*;

    /// Series hashes are seeded per engine: names a scrape target picks
    /// cannot be chosen to collide in every wasmeter.
    #[test]
    fn identity_hashes_differ_between_engines_and_agree_within_one() {
        let (a, b) = (
            foldhash::fast::RandomState::default(),
            foldhash::fast::RandomState::default(),
        );
        let attrs = [("mode".to_string(), "user".to_string())];
        let h = |s| identity_hash(s, "cpu.time", "host-1", &attrs);
        assert_eq!(h(&a), h(&a));
        assert_ne!(h(&a), h(&b));
    }
}

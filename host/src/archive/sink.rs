//! The pipeline's sink: samples into the rollup engine, closed rows into the
//! archive, open buckets saved on shutdown.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int32Type, TimestampNanosecondType};

use anyhow::Context;

use super::ArchiveWriter;
use super::wal::{self, Wal};
use crate::alarm::{AlarmEvaluator, Notifier};
use crate::batch::{Samples, columns};
use crate::config::{ArchiveSettings, PipelineConfig};
use crate::pipeline::Sink;
use crate::rollup::{RollupEngine, RollupReport};

/// Ticks between two compaction and retention passes.
const MAINTENANCE_EVERY_TICKS: u64 = 60;
/// Ticks between two `wasmeter.rollup.*` self-telemetry samples.
const TELEMETRY_EVERY_TICKS: u64 = 10;

/// Finishes the compactions of the archive at `root` that a crash cut
/// short, restores `engine`'s open state from `data_dir`, replays the write-ahead
/// log over it (measures stamped after `refuse_after` refused as future),
/// then marks as written the buckets the archive at `root` already holds (a
/// crash after the last checkpoint leaves the state file older than the
/// archive: those buckets are never written twice). Returns the series
/// restored and what the log gave. The files stay: the state file is the
/// checkpoint until the next one, or a clean stop, rewrites it.
fn restore_state(
    engine: &mut RollupEngine,
    data_dir: &std::path::Path,
    root: &std::path::Path,
    refuse_after: i64,
) -> anyhow::Result<(usize, wal::Replayed)> {
    match crate::archive::finish_compactions(root) {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            partitions = n,
            "finished compactions a crash cut short (their inputs removed, or the compaction \
             left to be done again)"
        ),
        Err(e) => tracing::error!("cannot look for compactions a crash cut short: {e:#}"),
    }
    let restored = engine.load_state(data_dir)?;
    engine.refuse_after(refuse_after);
    let mut refused_batches = 0usize;
    let replayed = wal::replay(data_dir, |batch| {
        if let Err(e) = engine.replay_samples(&Samples::from(batch)) {
            refused_batches += 1;
            tracing::error!("write-ahead log: a batch the rollup refuses: {e}");
        }
    })?;
    let log = data_dir.join(wal::WAL_FILE);
    if let Some(torn) = &replayed.torn {
        tracing::warn!(
            "{}: the batches after the last whole one are left out \
             (cut off by a crash in the middle of a write): {torn}",
            log.display()
        );
    }
    if replayed.batches > 0 {
        let r = engine.report();
        tracing::info!(
            batches = replayed.batches,
            samples = replayed.samples,
            accepted = r.accepted,
            refused = r.refused(),
            refused_batches,
            "replayed the write-ahead log {}",
            log.display()
        );
    }
    // The counters are this run's: what the log gave was counted before.
    engine.clear_report();
    if restored > 0 || replayed.batches > 0 {
        match skip_written(engine, root) {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                series = n,
                "restored open buckets older than the archive (a crash after the last checkpoint): \
                 the buckets already written are kept as they are"
            ),
            Err(e) => tracing::error!(
                "cannot read the archive to check the restored open buckets against it \
                 (a crash after the last checkpoint may write some bucket twice): {e:#}"
            ),
        }
    }
    Ok((restored, replayed))
}

/// Marks, for every series of `engine` and granularity, the buckets from
/// its first unwritten one on that the archive at `root` holds as written;
/// returns how many series had some.
fn skip_written(engine: &mut RollupEngine, root: &std::path::Path) -> anyhow::Result<usize> {
    use crate::query::reader::{self, Selection, SeriesKey};
    use std::collections::HashMap;
    if !root.exists() {
        // Nothing written yet (a restart within the first block).
        return Ok(0);
    }
    // The first bucket that can be written twice: not written yet, and
    // holding a measure.
    let unwritten = |policy: usize, gi: usize, first: i64, open_from: i64| {
        let g = engine.policies()[policy].definition[gi].granularity_ns();
        open_from.max(crate::rollup::floor(first, g))
    };
    // (metric, policy, granularity index) → the earliest such bucket.
    let mut wanted: BTreeMap<(String, usize, usize), i64> = BTreeMap::new();
    for (_, info, policy, first, open_from) in engine.open_series() {
        for (gi, &open) in open_from.iter().enumerate() {
            let from = unwritten(policy, gi, first, open);
            let e = wanted
                .entry((info.metric.clone(), policy, gi))
                .or_insert(from);
            *e = (*e).min(from);
        }
    }
    let mut newest: HashMap<(SeriesKey, usize, usize), i64> = HashMap::new();
    for ((metric, policy, gi), from) in wanted {
        let p = &engine.policies()[policy];
        let Some(&method) = p.aggregation_methods.first() else {
            continue;
        };
        let sel = Selection {
            metric,
            resource: None,
            granularity: Some(p.definition[gi].granularity_ns()),
            start: Some(from),
            stop: None,
        };
        let series = match reader::read(root, &sel, method) {
            Ok((series, _)) => series,
            Err(reader::ReadError::Archive(e)) => return Err(e),
            // A policy whose archive lacks the method's column: nothing
            // of this policy was written with it.
            Err(_) => continue,
        };
        for s in series {
            if let Some(&last) = s.timestamps.last() {
                newest.insert((s.key, policy, gi), last);
            }
        }
    }
    let mut marks = Vec::new();
    for (id, info, policy, first, open_from) in engine.open_series() {
        let mut attributes = info.attributes.clone();
        attributes.sort();
        let key = SeriesKey {
            metric: info.metric.clone(),
            resource_id: info.resource_id.clone(),
            attributes,
        };
        for (gi, &open) in open_from.iter().enumerate() {
            if let Some(&last) = newest.get(&(key.clone(), policy, gi))
                && last >= unwritten(policy, gi, first, open)
            {
                marks.push((id, gi, last));
            }
        }
    }
    let series: std::collections::BTreeSet<usize> = marks.iter().map(|m| m.0).collect();
    for (id, gi, last) in marks {
        engine.mark_written(id, gi, last);
    }
    Ok(series.len())
}

impl Drop for ArchiveSink {
    /// A sink dropped without `finish` (an error or panic before a clean
    /// stop) still saves its open buckets, newer than the last checkpoint.
    fn drop(&mut self) {
        if !self.saved {
            match self.save_state() {
                Ok(()) => tracing::warn!(
                    series = self.engine.series_count(),
                    "open buckets saved as the sink was dropped (no clean stop, or its save failed)"
                ),
                Err(e) => tracing::error!("cannot save the open buckets: {e:#}"),
            }
        }
    }
}

/// `d` in ns, saturated to `i64::MAX`.
fn duration_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Which clock closes idle buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The wall clock (`wasmeter run`).
    Wall,
    /// The newest event time seen (`wasmeter import`, tests).
    EventTime,
}

/// Rolls samples up and archives the closed buckets.
pub struct ArchiveSink {
    engine: RollupEngine,
    writer: ArchiveWriter,
    data_dir: PathBuf,
    /// `[archive] max_future` in ns.
    max_future: i64,
    /// `[archive] checkpoint_interval` in ns.
    checkpoint_every: i64,
    /// Wall time of the last checkpoint (or the start), ns.
    last_checkpoint: i64,
    /// The write-ahead log (`[archive] wal`).
    wal: Option<Wal>,
    /// The last append to the log failed (logged once until one succeeds).
    wal_failing: bool,
    /// The last `fsync` of the log failed (logged once until one succeeds).
    fsync_failing: bool,
    /// Appends to the log and `fsync`s of it that failed.
    wal_failures: u64,
    /// `[archive] wal_fsync_delay` in ns.
    wal_fsync_delay: i64,
    clock: Clock,
    newest_event: i64,
    ticks: u64,
    tee: Option<PrintTee>,
    logged_refused: u64,
    alarms: Option<(AlarmEvaluator, Notifier)>,
    /// The archive settings, policies and rules in force (a reload that
    /// changes none of them keeps the engine as it is).
    archive_config: Option<ArchiveConfig>,
    /// The open buckets were saved by `finish` (else `drop` saves them).
    saved: bool,
    /// The locks on the data directory and the archive root, released by
    /// a `finish` that saved.
    lock: Option<ArchiveLock>,
}

/// The lock file in the data directory: one `wasmeter run` or `import`
/// at a time uses a data directory (an exclusive `flock` on it, which the
/// kernel releases when the process ends, crashed or not).
pub const DATA_DIR_LOCK: &str = "lock";

/// The lock file in the archive root (hidden: readers skip it), for two
/// configs with other data directories but one archive.
pub const ROOT_LOCK: &str = ".lock";

/// The locks of a data directory and an archive root ([`DATA_DIR_LOCK`],
/// [`ROOT_LOCK`]) held by the one `run` or `import` using them.
#[derive(Debug)]
pub struct ArchiveLock {
    data_dir: std::fs::File,
    root: std::fs::File,
}

impl ArchiveLock {
    /// Takes the locks of `data_dir` and archive `root`, creating the
    /// directories, before anything in them is read or written.
    ///
    /// # Errors
    /// As [`lock_dir`]: another process holds one (named by its pid), or a
    /// lock file cannot be made.
    pub fn take(data_dir: &std::path::Path, root: &std::path::Path) -> anyhow::Result<Self> {
        Ok(ArchiveLock {
            data_dir: lock_dir(data_dir, DATA_DIR_LOCK)?,
            root: lock_dir(root, ROOT_LOCK)?,
        })
    }
}

/// Whether `a` and `b` name the same directory (also when spelled
/// differently: a symlink, `..`).
fn same_dir(a: &std::path::Path, b: &std::path::Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// Takes the lock file `name` in `dir` (created, as `dir`), and writes
/// this process's id into it.
///
/// # Errors
/// Another process holds it (named by its pid), or it cannot be made.
fn lock_dir(dir: &std::path::Path, name: &str) -> anyhow::Result<std::fs::File> {
    let what = match name {
        DATA_DIR_LOCK => "data directory",
        _ => "archive",
    };
    crate::archive::create_dir_synced(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(name);
    let mut file = std::fs::File::options()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = std::io::Read::read_to_string(&mut file, &mut holder);
            let holder = match holder.trim() {
                "" => String::new(),
                pid => format!(" (pid {pid})"),
            };
            anyhow::bail!(
                "the {what} {} is in use by another wasmeter run or import{holder}: \
                 stop it first (its lock: {})",
                dir.display(),
                path.display()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    file.set_len(0)
        .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(file)
}

type ArchiveConfig = (
    ArchiveSettings,
    Vec<crate::rollup::ArchivePolicy>,
    crate::rollup::PolicyRules,
);

/// What of `config` the engine and writer are built from (`max_future`,
/// `checkpoint_interval`, `wal` and `wal_fsync_delay` are applied without a
/// new engine).
pub(crate) fn archive_config(config: &PipelineConfig) -> ArchiveConfig {
    let settings = ArchiveSettings {
        max_future: Duration::ZERO,
        checkpoint_interval: Duration::ZERO,
        wal: false,
        wal_fsync_delay: Duration::ZERO,
        ..config.archive.clone()
    };
    (settings, config.policies.clone(), config.rules.clone())
}

impl ArchiveSink {
    /// A sink over `engine` (whose open state is restored from
    /// `settings.data_dir`, the write-ahead log replayed over it), writing
    /// with `writer`, refusing measures stamped more than
    /// `settings.max_future` after the wall clock, appending every batch to
    /// the write-ahead log when `settings.wal`.
    ///
    /// # Errors
    /// The directories are in use by another `run` or `import`
    /// ([`ArchiveLock::take`]); a state file or log that exists but cannot
    /// be read; a replayed log whose measures cannot be saved in the state
    /// file.
    pub fn new(
        engine: RollupEngine,
        writer: ArchiveWriter,
        settings: &ArchiveSettings,
        clock: Clock,
    ) -> anyhow::Result<Self> {
        let lock = ArchiveLock::take(&settings.data_dir, &settings.root)?;
        Self::new_locked(lock, engine, writer, settings, clock)
    }

    /// [`ArchiveSink::new`] with the directories' `lock` taken already
    /// (by `run` and `import`, before the alarms read their state).
    ///
    /// # Errors
    /// As [`ArchiveSink::new`], but for the lock.
    pub fn new_locked(
        lock: ArchiveLock,
        mut engine: RollupEngine,
        writer: ArchiveWriter,
        settings: &ArchiveSettings,
        clock: Clock,
    ) -> anyhow::Result<Self> {
        let data_dir = settings.data_dir.clone();
        let max_future = duration_ns(settings.max_future);
        let wall = crate::pipeline::wall_clock_ns();
        let (restored, replayed) = restore_state(
            &mut engine,
            &data_dir,
            &settings.root,
            wall.saturating_add(max_future),
        )?;
        if restored > 0 {
            tracing::info!(series = restored, "restored open buckets");
        }
        let mut wal = Wal::new(&data_dir);
        if replayed.batches > 0 || replayed.torn.is_some() {
            // The log's measures are the state's now: a checkpoint of them,
            // and a new log (a torn tail would hide what came after it).
            engine
                .save_state(&data_dir)
                .context("cannot save the open buckets after replaying the write-ahead log")?;
            wal.reset()?;
        }
        // A clock saved ahead of the wall clock (the wall clock was set
        // back, `max_future` shortened, or an older wasmeter imported
        // future-stamped samples) would refuse every live measure as
        // expired.
        if clock == Clock::Wall
            && let Some(saved) = engine.clock()
            && saved > wall.saturating_add(max_future)
        {
            engine.rewind_clock(wall);
            tracing::warn!(
                saved_clock_s = saved / 1_000_000_000,
                wall_clock_s = wall / 1_000_000_000,
                "the rollup clock saved in {} is more than max_future ahead of the wall clock: \
                 set back to the wall clock",
                data_dir.join(crate::rollup::STATE_FILE).display()
            );
        }
        Ok(ArchiveSink {
            engine,
            writer,
            data_dir,
            max_future,
            checkpoint_every: duration_ns(settings.checkpoint_interval),
            last_checkpoint: wall,
            wal: settings.wal.then_some(wal),
            wal_failing: false,
            fsync_failing: false,
            wal_failures: 0,
            wal_fsync_delay: duration_ns(settings.wal_fsync_delay),
            clock,
            newest_event: i64::MIN,
            ticks: 0,
            tee: None,
            logged_refused: 0,
            alarms: None,
            archive_config: None,
            saved: false,
            lock: Some(lock),
        })
    }

    /// Saves the open buckets when `checkpoint_interval` has passed since
    /// the last checkpoint (`wall`: ns). After a flush: the file then holds
    /// no bucket the archive has.
    fn checkpoint_if_due(&mut self, wall: i64) {
        if wall.saturating_sub(self.last_checkpoint) < self.checkpoint_every {
            return;
        }
        self.last_checkpoint = wall;
        if let Err(e) = self.save_state() {
            tracing::error!("checkpoint: cannot save the open buckets: {e:#}");
        }
    }

    /// Saves the open buckets in the state file, then starts a new
    /// write-ahead log (the state holds what the old one had).
    fn save_state(&mut self) -> anyhow::Result<()> {
        self.engine.save_state(&self.data_dir)?;
        if let Some(wal) = &mut self.wal {
            wal.reset()?;
        }
        Ok(())
    }

    /// Appends `batch` to the write-ahead log, if there is one, but for
    /// its samples stamped after `refuse_after` (`ts`: its timestamps),
    /// which the engine refuses as future now and a replay later would
    /// take. A failure is logged (once until an append succeeds again); the
    /// batch is rolled up all the same.
    fn log_ahead(
        &mut self,
        batch: &Samples,
        ts: Option<&arrow::array::TimestampNanosecondArray>,
        wall: i64,
        refuse_after: i64,
    ) {
        let Some(wal) = &mut self.wal else {
            return;
        };
        let future = ts.is_some_and(|ts| ts.values().iter().any(|&t| t > refuse_after));
        let result = if future {
            let ts = ts.expect("checked");
            let now: arrow::array::BooleanArray = ts
                .values()
                .iter()
                .map(|&t| Some(t <= refuse_after))
                .collect();
            arrow::compute::filter_record_batch(batch.batch(), &now)
                .map_err(anyhow::Error::from)
                .and_then(|b| {
                    if b.num_rows() == 0 {
                        return Ok(());
                    }
                    wal.append(&b)
                })
        } else {
            wal.append(batch.batch())
        };
        if result.is_err() {
            self.wal_failures += 1;
        }
        match result {
            Ok(()) => self.wal_failing = false,
            Err(e) if !self.wal_failing => {
                self.wal_failing = true;
                tracing::error!(
                    "{e:#}: the measures rolled up from now until the log can be written again, \
                     or the next checkpoint, are lost if the process crashes"
                );
            }
            Err(_) => {}
        }
        self.sync_wal(wall);
    }

    /// `fsync`s the write-ahead log if it is due at wall time `wall` (ns;
    /// see [`Wal::sync_if_due`]). A failure is counted and logged (once
    /// until an `fsync` succeeds again), and the next tick checkpoints: the
    /// kernel may have dropped the pages that failed, so a later `fsync`
    /// that succeeds does not make the log whole again; the state file
    /// does.
    fn sync_wal(&mut self, wall: i64) {
        let Some(wal) = &mut self.wal else {
            return;
        };
        match wal.sync_if_due(wall, self.wal_fsync_delay) {
            Ok(false) => {}
            Ok(true) => self.fsync_failing = false,
            Err(e) => {
                self.wal_failures += 1;
                self.last_checkpoint = i64::MIN;
                if !self.fsync_failing {
                    self.fsync_failing = true;
                    tracing::error!(
                        "{e:#}: the measures logged since the last checkpoint may be lost if the \
                         machine crashes; checkpointing at the next tick"
                    );
                }
            }
        }
    }

    /// Records the archive settings, policies and rules `config` has, so a
    /// reload that leaves them unchanged keeps the engine as it is.
    pub fn for_config(mut self, config: &PipelineConfig) -> Self {
        self.archive_config = Some(archive_config(config));
        self
    }

    /// Also evaluates alarms: after every flush of closed rows (wall
    /// clock: each tick; event time: each batch), the alarms due are
    /// evaluated over the engine's recent buckets and their notifications
    /// handed to `notifier`.
    pub fn with_alarms(mut self, evaluator: AlarmEvaluator, notifier: Notifier) -> Self {
        self.alarms = Some((evaluator, notifier));
        self
    }

    /// The alarm evaluator, if any.
    pub fn alarms(&self) -> Option<&AlarmEvaluator> {
        self.alarms.as_ref().map(|(e, _)| e)
    }

    /// Evaluates the alarms due at `now` and sends their notifications.
    fn evaluate_alarms(&mut self, now: i64) {
        if let Some((evaluator, notifier)) = &mut self.alarms {
            for n in evaluator.evaluate_due(now, &mut self.engine) {
                notifier.dispatch(&n);
            }
        }
    }

    /// Also prints every sample to `tee`.
    pub fn with_tee(mut self, tee: PrintTee) -> Self {
        self.tee = Some(tee);
        self
    }

    /// The engine's counters.
    pub fn report(&self) -> &RollupReport {
        self.engine.report()
    }

    /// Writes the closed rows; then, every so often, compacts and applies
    /// retention.
    fn flush(&mut self, now_ns: i64, maintenance: bool) {
        let closed = self.engine.take_closed();
        if let Some((evaluator, _)) = &mut self.alarms {
            evaluator.observe_closed(&closed);
        }
        for (pi, per_g) in closed.iter().enumerate() {
            for (gi, rows) in per_g.iter().enumerate() {
                if let Err(e) = self.writer.write(pi, gi, rows) {
                    tracing::error!(rows = rows.len(), "cannot write archive rows: {e:#}");
                }
            }
        }
        self.engine.recycle(closed);
        if maintenance {
            for pi in 0..self.engine.policies().len() {
                for gi in 0..self.engine.policies()[pi].definition.len() {
                    let closed_before = self.engine.min_open_from(pi, gi);
                    match self.writer.compact(pi, gi, closed_before) {
                        Ok(done) => done
                            .iter()
                            .for_each(|d| tracing::debug!(partition = %d.display(), "compacted")),
                        Err(e) => tracing::error!("compaction failed: {e:#}"),
                    }
                }
            }
            match self.writer.apply_retention(now_ns) {
                Ok(removed) => removed.iter().for_each(
                    |d| tracing::info!(partition = %d.display(), "removed past its timespan"),
                ),
                Err(e) => tracing::error!("retention failed: {e:#}"),
            }
        }
        let refused = self.engine.report().refused();
        if refused != self.logged_refused {
            let r = self.engine.report();
            tracing::warn!(late = ?r.late, no_policy = ?r.no_policy, before_epoch = ?r.before_epoch, expired = ?r.expired, future = ?r.future, "measures refused by the rollup engine");
            self.logged_refused = refused;
        }
    }

    /// The engine's own counters as `wasmeter.rollup.*` samples, rolled up
    /// like any other: `accepted`, `rows_closed`, `series_forgotten`,
    /// `refused` with attributes `reason` (late, no_policy, before_epoch,
    /// expired, future) and `metric`, all cumulative; and the gauge `series`, the series the
    /// engine holds (before this ingestion).
    fn self_telemetry(&mut self, ts: i64) {
        // Stamped by the sink's own clock: never refused as future, however
        // long ago the last batch set the limit.
        self.engine.refuse_after(ts.saturating_add(self.max_future));
        use crate::bindings::{SampleType, WitSeries};
        let r = self.engine.report().clone();
        let mut series = Vec::new();
        let mut values = Vec::new();
        let mut push = |metric: &str, attrs: Vec<(String, String)>, v: f64| {
            series.push(WitSeries {
                metric: metric.to_owned(),
                resource_id: "rollup".to_owned(),
                unit: "1".to_owned(),
                type_: SampleType::Cumulative,
                attributes: attrs,
            });
            values.push(v);
        };
        push("wasmeter.rollup.accepted", vec![], r.accepted as f64);
        if let Some((evaluator, notifier)) = &self.alarms {
            use std::sync::atomic::Ordering::Relaxed;
            let (e, c) = (evaluator.report(), notifier.counters());
            push("wasmeter.alarm.evaluations", vec![], e.evaluations as f64);
            push("wasmeter.alarm.transitions", vec![], e.transitions as f64);
            push(
                "wasmeter.alarm.rule_failures",
                vec![],
                e.rule_failures as f64,
            );
            for (outcome, n) in [
                ("logged", c.logged.load(Relaxed)),
                ("delivered", c.delivered.load(Relaxed)),
                ("failed", c.failed.load(Relaxed)),
            ] {
                let attrs = vec![("outcome".to_owned(), outcome.to_owned())];
                push("wasmeter.alarm.notifications", attrs, n as f64);
            }
            push(
                "wasmeter.alarm.webhook_attempts",
                vec![],
                c.attempts.load(Relaxed) as f64,
            );
        }
        push("wasmeter.rollup.rows_closed", vec![], r.rows_closed as f64);
        push(
            "wasmeter.rollup.series_forgotten",
            vec![],
            r.series_forgotten as f64,
        );
        for (reason, by_metric) in [
            ("late", &r.late),
            ("no_policy", &r.no_policy),
            ("before_epoch", &r.before_epoch),
            ("expired", &r.expired),
            ("future", &r.future),
        ] {
            for (metric, n) in by_metric {
                let attrs = vec![
                    ("metric".to_owned(), metric.clone()),
                    ("reason".to_owned(), reason.to_owned()),
                ];
                push("wasmeter.rollup.refused", attrs, *n as f64);
            }
        }
        if let Some(wal) = &self.wal {
            push(
                "wasmeter.rollup.wal_failures",
                vec![],
                self.wal_failures as f64,
            );
            push("wasmeter.rollup.wal_fsyncs", vec![], wal.syncs() as f64);
            series.push(WitSeries {
                metric: "wasmeter.rollup.wal_size".to_owned(),
                resource_id: "rollup".to_owned(),
                unit: "B".to_owned(),
                type_: SampleType::Gauge,
                attributes: vec![],
            });
            values.push(wal.size() as f64);
        }
        series.push(WitSeries {
            metric: "wasmeter.rollup.series".to_owned(),
            resource_id: "rollup".to_owned(),
            unit: "1".to_owned(),
            type_: SampleType::Gauge,
            attributes: vec![],
        });
        values.push(self.engine.series_count() as f64);
        let n = values.len();
        let index: Vec<u32> = (0..n as u32).collect();
        self.engine
            .ingest_columns(&series, &index, &vec![ts; n], &values);
    }

    fn now(&self, wall_ns: i64) -> i64 {
        match self.clock {
            Clock::Wall => wall_ns,
            Clock::EventTime => self.newest_event,
        }
    }
}

impl Sink for ArchiveSink {
    fn write(&mut self, _stage: &str, batch: &Samples) {
        let wall = crate::pipeline::wall_clock_ns();
        let refuse_after = wall.saturating_add(self.max_future);
        let ts = batch
            .column_by_name(columns::TIMESTAMP)
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>());
        // Logged first: a sample printed is one a crash does not lose.
        self.log_ahead(batch, ts, wall, refuse_after);
        if let Some(tee) = &mut self.tee {
            tee.write(batch);
        }
        self.engine.refuse_after(refuse_after);
        if let Some(ts) = ts
            && let Some((min, max)) = event_time_range(ts, refuse_after)
        {
            // Event time: the evaluations due before these samples run
            // first, each at its due time, over what came before.
            if self.clock == Clock::EventTime
                && let Some((evaluator, notifier)) = &mut self.alarms
            {
                for n in evaluator.evaluate_until(min, &mut self.engine) {
                    notifier.dispatch(&n);
                }
            }
            self.newest_event = self.newest_event.max(max);
        }
        if let Err(e) = self.engine.ingest_samples(batch) {
            tracing::error!(samples = batch.num_rows(), "rollup refused a batch: {e}");
        }
        if self.clock == Clock::EventTime {
            self.engine.advance(self.newest_event);
            if self.alarms.is_some() {
                // The evaluator keeps the rows it needs from each flush.
                self.flush(self.newest_event, false);
            }
        }
    }

    fn tick(&mut self, now_ns: i64) {
        self.ticks += 1;
        let now = self.now(now_ns);
        if self.clock == Clock::Wall {
            if self.ticks.is_multiple_of(TELEMETRY_EVERY_TICKS) {
                self.self_telemetry(crate::rollup::floor(now, 1_000_000_000));
            }
            self.engine.advance(now);
        }
        self.flush(now, self.ticks.is_multiple_of(MAINTENANCE_EVERY_TICKS));
        if self.clock == Clock::Wall {
            self.evaluate_alarms(now);
        }
        let wall = crate::pipeline::wall_clock_ns();
        self.checkpoint_if_due(wall);
        // A batch appended since the last fsync waits at most the delay
        // plus a tick.
        self.sync_wal(wall);
    }

    fn reconfigure(&mut self, config: &PipelineConfig) {
        self.max_future = duration_ns(config.archive.max_future);
        self.checkpoint_every = duration_ns(config.archive.checkpoint_interval);
        self.wal_fsync_delay = duration_ns(config.archive.wal_fsync_delay);
        match (&self.wal, config.archive.wal) {
            (None, true) => {
                // From a checkpoint on: the log holds what comes after it.
                // Rows the engine closed since the last tick are written
                // first (the checkpoint no longer holds them).
                self.wal = Some(Wal::new(&self.data_dir));
                let now = self.now(crate::pipeline::wall_clock_ns());
                self.flush(now, false);
                if let Err(e) = self.save_state() {
                    tracing::error!("reload: cannot save the open buckets: {e:#}");
                }
            }
            // Turned off: what it holds goes into the state file first.
            (Some(_), false) => match self.save_state() {
                Ok(()) => self.wal = None,
                Err(e) => tracing::error!(
                    "reload: cannot save the open buckets, keeping the write-ahead log on: {e:#}"
                ),
            },
            _ => {}
        }
        let wanted = archive_config(config);
        if self.archive_config.as_ref() != Some(&wanted) {
            // Close what is closed under the old policies (the evaluator,
            // still on them, keeps its rows), hand the open buckets over
            // through the state file.
            let now = self.now(crate::pipeline::wall_clock_ns());
            self.flush(now, false);
            if let Err(e) = self.save_state() {
                tracing::error!(
                    "reload: cannot save the open buckets, keeping the old archive settings and alarms: {e:#}"
                );
                return;
            }
            // A directory the reload moves to is locked first (another
            // wasmeter may use it).
            let (new_data, new_root) = (&config.archive.data_dir, &config.archive.root);
            let data_lock = (!same_dir(&self.data_dir, new_data))
                .then(|| lock_dir(new_data, DATA_DIR_LOCK))
                .transpose();
            let root_lock = (!same_dir(self.writer.root(), new_root))
                .then(|| lock_dir(new_root, ROOT_LOCK))
                .transpose();
            let (data_lock, root_lock) = match (data_lock, root_lock) {
                (Ok(d), Ok(r)) => (d, r),
                (Err(e), _) | (Ok(_), Err(e)) => {
                    tracing::error!("reload: keeping the old archive settings and alarms: {e:#}");
                    return;
                }
            };
            let mut engine = RollupEngine::new(config.policies.clone(), config.rules.clone());
            let refuse_after = crate::pipeline::wall_clock_ns().saturating_add(self.max_future);
            match restore_state(
                &mut engine,
                &self.data_dir,
                &config.archive.root,
                refuse_after,
            ) {
                Ok((series, _)) => tracing::info!(
                    series,
                    "reload: archive policies applied, open buckets carried over"
                ),
                Err(e) => {
                    tracing::error!(
                        "reload: cannot restore the open buckets, keeping the old archive settings and alarms: {e:#}"
                    );
                    // The old engine goes on; the file, saved just now, is
                    // its checkpoint.
                    return;
                }
            }
            self.engine = engine;
            debug_assert!(self.lock.is_some(), "no reload after finish");
            if let Some(lock) = &mut self.lock {
                if let Some(file) = data_lock {
                    lock.data_dir = file;
                }
                if let Some(file) = root_lock {
                    lock.root = file;
                }
            }
            self.writer = ArchiveWriter::new(
                &config.archive.root,
                config.policies.clone().into(),
                self.writer.plugins().clone(),
            );
            let moved = self.data_dir != config.archive.data_dir;
            self.data_dir = config.archive.data_dir.clone();
            if let Some(wal) = &mut self.wal {
                *wal = Wal::new(&self.data_dir);
            }
            if moved && let Err(e) = self.save_state() {
                // The old directory's state file holds them still.
                tracing::error!(
                    "reload: cannot save the open buckets in the new data_dir {}: {e:#}",
                    self.data_dir.display()
                );
            }
            self.archive_config = Some(wanted);
        }
        // The alarms follow the engine now in force, in the directories
        // this sink holds (the old ones where it kept them).
        if let Some((evaluator, _)) = &mut self.alarms {
            let root = self.writer.root();
            if let Err(e) = evaluator.reconfigure_in(config, &self.data_dir, root) {
                tracing::error!("reload: keeping the old alarms: {e}");
                evaluator.use_dirs(&self.data_dir, root);
            }
        }
    }

    fn finish(&mut self) {
        let now = self.now(crate::pipeline::wall_clock_ns());
        self.flush(now, true);
        if let Some((evaluator, notifier)) = &mut self.alarms {
            if self.clock == Clock::EventTime {
                for n in evaluator.evaluate_until(self.newest_event, &mut self.engine) {
                    notifier.dispatch(&n);
                }
            }
            evaluator.persist();
            let left = notifier.wait_idle(Duration::from_secs(10));
            if left > 0 {
                tracing::warn!(
                    in_flight = left,
                    "stopping with alarm notifications still being delivered"
                );
            }
        }
        match self.save_state() {
            Ok(()) => {
                self.saved = true;
                // Done with the directories: another run may start.
                self.lock = None;
            }
            Err(e) => tracing::error!("cannot save the open buckets: {e:#}"),
        }
        let outcome = if self.saved {
            "rollup stopped, open buckets saved"
        } else {
            "rollup stopped, open buckets NOT saved"
        };
        let (files, rows) = self.writer.written();
        let r = self.engine.report();
        tracing::info!(
            accepted = r.accepted,
            refused = r.refused(),
            rows_closed = r.rows_closed,
            series_forgotten = r.series_forgotten,
            files,
            rows,
            open_series = self.engine.series_count(),
            archive = %self.writer.root().display(),
            "{outcome}"
        );
    }
}

/// The oldest and newest timestamps of `ts` not after `refuse_after` (the
/// others are refused): one future-stamped sample must not move the event
/// time clock of `import`. `None` when there are none.
fn event_time_range(
    ts: &arrow::array::PrimitiveArray<TimestampNanosecondType>,
    refuse_after: i64,
) -> Option<(i64, i64)> {
    let (min, max) = (arrow::compute::min(ts)?, arrow::compute::max(ts)?);
    if max <= refuse_after {
        return Some((min, max));
    }
    // Rare: some are refused.
    ts.iter()
        .flatten()
        .filter(|&t| t <= refuse_after)
        .fold(None, |r, t| {
            Some(r.map_or((t, t), |(lo, hi): (i64, i64)| (lo.min(t), hi.max(t))))
        })
}

/// Prints samples as text lines: `TIME METRIC RESOURCE VALUE UNIT [k=v,…]`
/// (time RFC 3339, UTC). A closed output (e.g. `| head`) stops printing
/// without an error.
pub struct PrintTee {
    out: Box<dyn Write + Send>,
    open: bool,
}

impl PrintTee {
    /// Prints to stdout.
    pub fn stdout() -> Self {
        PrintTee {
            out: Box::new(std::io::BufWriter::new(std::io::stdout())),
            open: true,
        }
    }

    /// Prints one batch.
    pub fn write(&mut self, batch: &RecordBatch) {
        if self.open
            && write_lines(&mut self.out, batch)
                .and_then(|_| self.out.flush())
                .is_err()
        {
            self.open = false;
        }
    }
}

fn write_lines(out: &mut impl Write, batch: &RecordBatch) -> std::io::Result<()> {
    let col = |name| batch.column_by_name(name).expect("sample schema");
    let ts = col(columns::TIMESTAMP).as_primitive::<TimestampNanosecondType>();
    let dict = |name| {
        let d = col(name).as_dictionary::<Int32Type>();
        (d.keys().clone(), d.values().as_string::<i32>().clone())
    };
    let (mk, mv) = dict(columns::METRIC);
    let (rk, rv) = dict(columns::RESOURCE_ID);
    let (uk, uv) = dict(columns::UNIT);
    let attrs = col(columns::ATTRIBUTES).as_map();
    let values = col(columns::VALUE).as_primitive::<Float64Type>();
    for i in 0..batch.num_rows() {
        let t = std::time::UNIX_EPOCH + Duration::from_nanos(ts.value(i).max(0) as u64);
        write!(
            out,
            "{} {} {} {} {}",
            humantime::format_rfc3339_nanos(t),
            mv.value(mk.value(i) as usize),
            rv.value(rk.value(i) as usize),
            values.value(i),
            uv.value(uk.value(i) as usize),
        )?;
        let entries = attrs.value(i);
        if !entries.is_empty() {
            let k = entries.column(0).as_string::<i32>();
            let v = entries.column(1).as_string::<i32>();
            let pairs: Vec<String> = (0..entries.len())
                .map(|j| format!("{}={}", k.value(j), v.value(j)))
                .collect();
            write!(out, " {}", pairs.join(","))?;
        }
        writeln!(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::bindings::{SampleType, WitBatch, WitSeries};
    use crate::rollup::PolicyRules;
    use crate::rollup::policy::{RawArchivePolicy, RawDuration, RawPolicyItem, RawPolicyRule};

    const S: i64 = 1_000_000_000;
    /// (metric, attributes) of a self-telemetry series.
    type TelemetryKey = (String, Vec<(String, String)>);
    /// 2014-01-01T00:00:00Z in ns.
    const T0: i64 = 1_388_534_400 * S;

    /// A sink over one policy of one-minute buckets kept for one minute (a
    /// series is forgotten a minute after its last measure once its bucket
    /// is closed), archive and data directory in `dir`.
    fn one_minute_sink(dir: &std::path::Path) -> ArchiveSink {
        sink_with_clock(dir, Clock::Wall)
    }

    fn sink_with_clock(dir: &std::path::Path, clock: Clock) -> ArchiveSink {
        sink_with(dir, clock, true)
    }

    fn sink_with(dir: &std::path::Path, clock: Clock, wal: bool) -> ArchiveSink {
        let (engine, writer, settings) = parts(dir, wal);
        ArchiveSink::new(engine, writer, &settings, clock).unwrap()
    }

    /// What [`sink_with`] makes its sink of.
    fn parts(dir: &std::path::Path, wal: bool) -> (RollupEngine, ArchiveWriter, ArchiveSettings) {
        let policy = RawArchivePolicy {
            name: "p".into(),
            back_window: 0,
            definition: vec![RawPolicyItem {
                granularity: Some(RawDuration::Seconds(60.0)),
                points: Some(1),
                timespan: None,
            }],
            aggregation_methods: Some(vec!["last".into()]),
            precision_bits: None,
        }
        .build()
        .unwrap();
        let rule = RawPolicyRule {
            name: "all".into(),
            metric_pattern: "*".into(),
            archive_policy_name: "p".into(),
        };
        let rules = PolicyRules::new(&[rule], std::slice::from_ref(&policy)).unwrap();
        let engine = RollupEngine::new(vec![policy.clone()], rules);
        let writer = ArchiveWriter::new(dir, vec![policy].into(), BTreeMap::new());
        let settings = ArchiveSettings {
            root: dir.to_path_buf(),
            data_dir: dir.to_path_buf(),
            max_future: crate::config::DEFAULT_MAX_FUTURE,
            checkpoint_interval: crate::config::DEFAULT_CHECKPOINT_INTERVAL,
            wal,
            wal_fsync_delay: crate::config::DEFAULT_WAL_FSYNC_DELAY,
        };
        (engine, writer, settings)
    }

    fn one_series(timestamps: Vec<i64>, values: Vec<f64>) -> Samples {
        series_of("r", timestamps, values)
    }

    fn series_of(resource: &str, timestamps: Vec<i64>, values: Vec<f64>) -> Samples {
        let batch = WitBatch {
            series: vec![WitSeries {
                metric: "m".into(),
                resource_id: resource.into(),
                unit: "1".into(),
                type_: SampleType::Gauge,
                attributes: vec![],
            }],
            series_index: vec![0; timestamps.len()],
            timestamps,
            values,
        };
        Samples::from_wit(batch).unwrap()
    }

    /// Series in the state file.
    fn saved_series(dir: &std::path::Path) -> usize {
        let file = std::fs::File::open(dir.join(crate::rollup::STATE_FILE)).unwrap();
        let reader = arrow::ipc::reader::FileReader::try_new(file, None).unwrap();
        reader.map(|b| b.unwrap().num_rows()).sum::<usize>()
    }

    #[test]
    fn the_state_file_stays_at_start_and_is_saved_again_even_without_a_clean_stop() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = one_minute_sink(dir.path());
        sink.write("s", &one_series(vec![T0 + S], vec![1.0]));
        sink.finish();
        drop(sink);
        assert_eq!(saved_series(dir.path()), 1);

        // Restored; the file stays as the checkpoint until the next one.
        let mut sink = one_minute_sink(dir.path());
        assert_eq!(saved_series(dir.path()), 1);
        assert_eq!(sink.engine.series_count(), 1);
        sink.write("s", &one_series(vec![T0 + 2 * S], vec![2.0]));
        // Dropped without finish (an error before a clean stop): saved.
        drop(sink);
        let mut sink = one_minute_sink(dir.path());
        let rows = sink.engine.open_rows(0, 0);
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].timestamp, rows[0].values[0]), (T0, Some(2.0)));
    }

    #[test]
    fn restored_buckets_with_no_archive_yet_have_nothing_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = one_minute_sink(dir.path());
        sink.write("s", &one_series(vec![T0 + S], vec![1.0]));
        let missing = dir.path().join("no-archive-yet");
        assert_eq!(skip_written(&mut sink.engine, &missing).unwrap(), 0);
        assert_eq!(sink.engine.open_rows(0, 0).len(), 1);
        crash(sink);
    }

    #[test]
    fn a_tick_saves_a_checkpoint_once_the_interval_has_passed() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join(crate::rollup::STATE_FILE);
        let mut sink = one_minute_sink(dir.path());
        sink.write("s", &one_series(vec![T0 + S], vec![1.0]));
        sink.checkpoint_if_due(sink.last_checkpoint + sink.checkpoint_every - 1);
        assert!(!state.exists());
        let due = sink.last_checkpoint + sink.checkpoint_every;
        sink.checkpoint_if_due(due);
        assert_eq!(saved_series(dir.path()), 1);
        assert_eq!(sink.last_checkpoint, due);
        crash(sink);
    }

    /// The archive's `last` values of metric `m`: (resource, timestamps,
    /// values) per series.
    fn archived_last(dir: &std::path::Path) -> Vec<(String, Vec<i64>, Vec<f64>)> {
        use crate::query::reader::{Selection, read};
        let sel = Selection {
            metric: "m".into(),
            resource: None,
            granularity: None,
            start: None,
            stop: None,
        };
        let last = crate::rollup::AggregationMethod::parse("last").unwrap();
        let (series, _) = read(dir, &sel, last).unwrap();
        series
            .into_iter()
            .map(|s| (s.key.resource_id, s.timestamps, s.values))
            .collect()
    }

    #[test]
    fn a_crash_loses_none_of_the_measures_the_write_ahead_log_holds() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join(super::wal::WAL_FILE);
        let mut sink = sink_with_clock(dir.path(), Clock::EventTime);
        sink.write("s", &one_series(vec![T0 + S], vec![1.0]));
        let due = sink.last_checkpoint + sink.checkpoint_every;
        sink.checkpoint_if_due(due);
        assert!(!wal.exists(), "a checkpoint starts a new log");
        // After the checkpoint, into T0's open bucket and a new series;
        // then the process dies (no drop, no save).
        sink.write("s", &one_series(vec![T0 + 30 * S], vec![2.0]));
        sink.write("s", &series_of("new", vec![T0 + 10 * S], vec![5.0]));
        assert!(wal.exists());
        crash(sink);

        let mut sink = sink_with_clock(dir.path(), Clock::EventTime);
        // Replayed, checkpointed, and the log started anew.
        assert!(!wal.exists());
        assert_eq!(saved_series(dir.path()), 2);
        assert_eq!(sink.report(), &RollupReport::default());
        sink.write("s", &one_series(vec![T0 + 61 * S], vec![3.0]));
        sink.write("s", &series_of("new", vec![T0 + 61 * S], vec![6.0]));
        sink.finish();
        // T0's rows have the measures sent after the checkpoint.
        assert_eq!(
            archived_last(dir.path()),
            [
                ("new".to_owned(), vec![T0], vec![5.0]),
                ("r".to_owned(), vec![T0], vec![2.0]),
            ]
        );
    }

    #[test]
    fn the_write_ahead_log_is_fsynced_by_the_append_or_the_tick_once_due() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = sink_with_clock(dir.path(), Clock::EventTime);
        let syncs = |sink: &ArchiveSink| sink.wal.as_ref().unwrap().syncs();
        // The first append is synced at once; the next waits for the delay
        // to pass since.
        sink.wal_fsync_delay = 3600 * S;
        sink.write("s", &one_series(vec![T0 + S], vec![1.0]));
        assert_eq!(syncs(&sink), 1);
        sink.write("s", &one_series(vec![T0 + 2 * S], vec![2.0]));
        sink.tick(T0 + 3 * S);
        assert_eq!(syncs(&sink), 1);
        // A tick once the delay has passed syncs it.
        sink.wal_fsync_delay = 0;
        sink.tick(T0 + 4 * S);
        assert_eq!(syncs(&sink), 2);
        sink.tick(T0 + 5 * S);
        assert_eq!(syncs(&sink), 2, "nothing new to sync");
        // `wal_fsync_delay = "0s"`: every append.
        sink.write("s", &one_series(vec![T0 + 5 * S], vec![3.0]));
        sink.write("s", &one_series(vec![T0 + 6 * S], vec![4.0]));
        assert_eq!(syncs(&sink), 4);
    }

    /// A crash of `sink`'s process: nothing saved, its locks released (by
    /// the kernel, for a real one).
    fn crash(mut sink: ArchiveSink) {
        sink.lock = None;
        std::mem::forget(sink);
    }

    #[test]
    fn one_sink_at_a_time_uses_a_data_directory_and_an_archive() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = sink_with_clock(dir.path(), Clock::EventTime);
        let lock = dir.path().join(DATA_DIR_LOCK);
        assert_eq!(
            std::fs::read_to_string(&lock).unwrap(),
            format!("{}\n", std::process::id())
        );
        let (engine, writer, settings) = parts(dir.path(), true);
        let err = ArchiveSink::new(engine, writer, &settings, Clock::EventTime)
            .err()
            .unwrap();
        assert_eq!(
            format!("{err:#}"),
            format!(
                "the data directory {} is in use by another wasmeter run or import (pid {}): \
                 stop it first (its lock: {})",
                dir.path().display(),
                std::process::id(),
                lock.display()
            )
        );
        // Another data directory, the same archive.
        let other = tempfile::tempdir().unwrap();
        let err = ArchiveLock::take(other.path(), dir.path()).err().unwrap();
        assert!(
            format!("{err:#}").starts_with(&format!(
                "the archive {} is in use by another wasmeter run or import (pid ",
                dir.path().display()
            )),
            "{err:#}"
        );
        // A clean stop releases both.
        first.finish();
        let second = sink_with_clock(dir.path(), Clock::EventTime);
        drop(second);
        ArchiveLock::take(other.path(), dir.path()).unwrap();
    }

    #[test]
    fn samples_refused_as_future_are_not_logged() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = sink_with_clock(dir.path(), Clock::EventTime);
        let wall = crate::pipeline::wall_clock_ns();
        let limit = wall + duration_ns(crate::config::DEFAULT_MAX_FUTURE);
        sink.write(
            "s",
            &one_series(
                vec![T0 + S, limit + 3_600 * S, T0 + 2 * S],
                vec![1.0, 9.0, 2.0],
            ),
        );
        assert_eq!(sink.report().future.get("m"), Some(&1));
        let mut logged = Vec::new();
        super::wal::replay(dir.path(), |b| logged.push(b)).unwrap();
        assert_eq!(logged.len(), 1);
        let values = logged[0]
            .column_by_name(columns::VALUE)
            .unwrap()
            .as_primitive::<Float64Type>()
            .values()
            .to_vec();
        assert_eq!(values, [1.0, 2.0]);
        crash(sink);
    }

    #[test]
    fn a_replayed_log_writes_no_bucket_the_crashed_run_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = sink_with_clock(dir.path(), Clock::EventTime);
        sink.write("s", &one_series(vec![T0 + S], vec![1.0]));
        let due = sink.last_checkpoint + sink.checkpoint_every;
        sink.checkpoint_if_due(due);
        // After the checkpoint: T0's bucket of `r` closes and is written,
        // and so is that of a series the checkpoint does not know.
        sink.write("s", &one_series(vec![T0 + 61 * S], vec![2.0]));
        sink.write(
            "s",
            &series_of("new", vec![T0 + 5 * S, T0 + 62 * S], vec![5.0, 6.0]),
        );
        sink.tick(0);
        assert_eq!(sink.writer.written().1, 2);
        crash(sink);

        // The replay closes nothing; the archive marks both T0 buckets as
        // written; what was open at the crash is kept.
        let mut sink = sink_with_clock(dir.path(), Clock::EventTime);
        sink.write("s", &one_series(vec![T0 + 121 * S], vec![3.0]));
        sink.write("s", &series_of("new", vec![T0 + 121 * S], vec![7.0]));
        sink.finish();
        assert_eq!(
            archived_last(dir.path()),
            [
                ("new".to_owned(), vec![T0, T0 + 60 * S], vec![5.0, 6.0]),
                ("r".to_owned(), vec![T0, T0 + 60 * S], vec![1.0, 2.0]),
            ]
        );
    }

    /// A config of one policy `p` for every metric (one-minute buckets, one
    /// point, `count` and `last`), archive in `root`, working files in
    /// `data_dir`.
    fn config_of(root: &std::path::Path, data_dir: &std::path::Path, wal: bool) -> PipelineConfig {
        let text = format!(
            r#"
[archive]
root = "{}"
data_dir = "{}"
wal = {wal}

[[archive_policy]]
name = "p"
back_window = 0
aggregation_methods = ["count", "last"]
definition = [{{ granularity = "1m", points = 1 }}]

[[archive_policy_rule]]
name = "all"
metric_pattern = "*"
archive_policy_name = "p"
"#,
            root.display(),
            data_dir.display()
        );
        PipelineConfig::parse(&root.join("wasmeter.toml"), &text).unwrap()
    }

    /// A sink built from `config` as `wasmeter run` builds it, on event
    /// time.
    fn sink_for(config: &PipelineConfig) -> ArchiveSink {
        let engine = RollupEngine::new(config.policies.clone(), config.rules.clone());
        let writer = ArchiveWriter::new(
            &config.archive.root,
            config.policies.clone().into(),
            BTreeMap::new(),
        );
        ArchiveSink::new(engine, writer, &config.archive, Clock::EventTime)
            .unwrap()
            .for_config(config)
    }

    /// (count, last) of the open bucket of `r`'s series starting at `T0`.
    fn open_t0(sink: &mut ArchiveSink) -> (Option<f64>, Option<f64>) {
        let p = sink
            .engine
            .policies()
            .iter()
            .position(|p| p.name == "p")
            .unwrap();
        let rows = sink.engine.open_rows(p, 0);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].timestamp, T0);
        (rows[0].values[0], rows[0].values[1])
    }

    #[test]
    fn a_reload_that_moves_data_dir_checkpoints_and_logs_in_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (dir.path().join("old"), dir.path().join("new"));
        let before = config_of(dir.path(), &old, true);
        let after = config_of(dir.path(), &new, true);
        let mut sink = sink_for(&before);
        sink.write("s", &one_series(vec![T0 + S], vec![1.0]));
        assert!(old.join(super::wal::WAL_FILE).exists());
        sink.reconfigure(&after);
        // The old log is folded into a checkpoint; the new directory has
        // its own, and the log goes on there.
        assert!(!old.join(super::wal::WAL_FILE).exists());
        assert_eq!(saved_series(&new), 1);
        sink.write("s", &one_series(vec![T0 + 30 * S], vec![2.0]));
        assert!(new.join(super::wal::WAL_FILE).exists());
        crash(sink);

        // A crash: the new directory's checkpoint and log hold both.
        let mut sink = sink_for(&after);
        assert_eq!(open_t0(&mut sink), (Some(2.0), Some(2.0)));
        crash(sink);
    }

    #[test]
    fn a_reload_to_a_data_dir_another_wasmeter_uses_keeps_the_old_one_and_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (dir.path().join("old"), dir.path().join("new"));
        let mut sink = sink_for(&config_of(dir.path(), &old, true));
        let held = lock_dir(&new, DATA_DIR_LOCK).unwrap();
        sink.write("s", &one_series(vec![T0 + S], vec![1.0]));
        sink.reconfigure(&config_of(dir.path(), &new, true));
        assert_eq!(sink.data_dir, old, "kept");
        assert!(!new.join(crate::rollup::STATE_FILE).exists());
        // The old directory is still this sink's; the new one is free
        // once the other lets it go, and the reload then moves.
        assert!(lock_dir(&old, DATA_DIR_LOCK).is_err());
        drop(held);
        sink.reconfigure(&config_of(dir.path(), &new, true));
        assert_eq!(sink.data_dir, new);
        lock_dir(&old, DATA_DIR_LOCK).unwrap();
        assert!(lock_dir(&new, DATA_DIR_LOCK).is_err());
        assert_eq!(open_t0(&mut sink), (Some(1.0), Some(1.0)));
        // The same directory spelled otherwise is this sink's already.
        let same = new.join("..").join("new");
        sink.reconfigure(&config_of(dir.path(), &same, true));
        assert_eq!(sink.data_dir, same);
        assert!(lock_dir(&new, DATA_DIR_LOCK).is_err());
        assert_eq!(open_t0(&mut sink), (Some(1.0), Some(1.0)));
    }

    #[test]
    fn a_reload_that_turns_the_log_on_checkpoints_and_logs_from_then_on() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let off = config_of(dir.path(), &data, false);
        let on = config_of(dir.path(), &data, true);
        let mut sink = sink_for(&off);
        sink.write("s", &one_series(vec![T0 + S], vec![1.0]));
        assert!(!data.join(super::wal::WAL_FILE).exists());
        sink.reconfigure(&on);
        assert_eq!(saved_series(&data), 1);
        sink.write("s", &one_series(vec![T0 + 30 * S], vec![2.0]));
        assert!(data.join(super::wal::WAL_FILE).exists());
        crash(sink);

        let mut sink = sink_for(&on);
        assert_eq!(open_t0(&mut sink), (Some(2.0), Some(2.0)));
        crash(sink);
    }

    #[test]
    fn a_reload_that_turns_the_log_off_checkpoints_what_it_held() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let on = config_of(dir.path(), &data, true);
        let off = config_of(dir.path(), &data, false);
        let mut sink = sink_for(&on);
        sink.write("s", &one_series(vec![T0 + S], vec![1.0]));
        sink.reconfigure(&off);
        assert!(!data.join(super::wal::WAL_FILE).exists());
        assert_eq!(saved_series(&data), 1);
        // Not logged any more: a crash loses it, as documented.
        sink.write("s", &one_series(vec![T0 + 30 * S], vec![2.0]));
        assert!(!data.join(super::wal::WAL_FILE).exists());
        crash(sink);

        let mut sink = sink_for(&off);
        assert_eq!(open_t0(&mut sink), (Some(1.0), Some(1.0)));
        crash(sink);
    }

    #[test]
    fn a_crash_after_a_checkpoint_writes_no_bucket_twice() {
        use crate::query::reader::{Selection, read};
        let dir = tempfile::tempdir().unwrap();
        // Without the write-ahead log.
        let sink_with_clock = |dir: &std::path::Path, clock| sink_with(dir, clock, false);
        let mut sink = sink_with_clock(dir.path(), Clock::EventTime);
        sink.write("s", &one_series(vec![T0 + S], vec![1.0]));
        let due = sink.last_checkpoint + sink.checkpoint_every;
        sink.checkpoint_if_due(due);
        // After the checkpoint: T0's bucket is closed and written, 2.0
        // opens the next one; then the process dies (no drop, no save).
        sink.write("s", &one_series(vec![T0 + 61 * S], vec![2.0]));
        sink.tick(0);
        assert_eq!(sink.writer.written(), (1, 1));
        crash(sink);

        // The checkpoint still has T0's bucket open: the archive says it
        // is written, so it is not written again, and a late measure for
        // it is refused.
        let mut sink = sink_with_clock(dir.path(), Clock::EventTime);
        sink.write("s", &one_series(vec![T0 + 30 * S], vec![9.0]));
        assert_eq!(sink.report().late, BTreeMap::from([("m".to_owned(), 1)]));
        sink.write("s", &one_series(vec![T0 + 121 * S], vec![3.0]));
        sink.finish();
        let sel = Selection {
            metric: "m".into(),
            resource: None,
            granularity: None,
            start: None,
            stop: None,
        };
        let last = crate::rollup::AggregationMethod::parse("last").unwrap();
        let (series, _) = read(dir.path(), &sel, last).unwrap();
        assert_eq!(series.len(), 1);
        // One row for T0, as written before the crash; 2.0 came after the
        // checkpoint into a bucket not yet written: lost with the crash.
        assert_eq!(series[0].timestamps, [T0]);
        assert_eq!(series[0].values, [1.0]);
    }

    #[test]
    fn run_sets_back_a_saved_clock_ahead_of_the_wall_clock_and_import_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let wall = crate::pipeline::wall_clock_ns();
        let save_clock = |at: i64| {
            let mut sink = sink_with_clock(dir.path(), Clock::EventTime);
            sink.engine.advance(at);
            sink.finish();
        };
        // Within the hour allowed: kept, in both modes.
        let max_future = duration_ns(crate::config::DEFAULT_MAX_FUTURE);
        save_clock(wall + max_future / 2);
        let sink = one_minute_sink(dir.path());
        assert_eq!(sink.engine.clock(), Some(wall + max_future / 2));
        drop(sink);
        // Past it: run sets it back to its start's wall clock, and the
        // expiry floor to a minute (the horizon) before.
        let future = wall + 10 * max_future;
        save_clock(future);
        let sink = sink_with_clock(dir.path(), Clock::EventTime);
        assert_eq!(sink.engine.clock(), Some(future));
        drop(sink);
        let sink = one_minute_sink(dir.path());
        let after = crate::pipeline::wall_clock_ns();
        let clock = sink.engine.clock().unwrap();
        assert!(
            (wall..=after).contains(&clock),
            "{clock} not in {wall}..={after}"
        );
        assert_eq!(sink.engine.expired_before(), [clock - 60 * S]);
    }

    #[test]
    fn a_future_stamped_sample_is_refused_and_moves_neither_the_import_clock_nor_retention() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = sink_with_clock(dir.path(), Clock::EventTime);
        let max_future = duration_ns(crate::config::DEFAULT_MAX_FUTURE);
        let future = crate::pipeline::wall_clock_ns() + 2 * max_future;
        sink.write("s", &one_series(vec![T0 + S, T0 + 61 * S], vec![1.0, 2.0]));
        sink.write("s", &one_series(vec![T0 + 62 * S, future], vec![3.0, 4.0]));
        assert_eq!(sink.report().future, BTreeMap::from([("m".to_owned(), 1)]));
        assert_eq!(sink.report().accepted, 3);
        assert_eq!(sink.newest_event, T0 + 62 * S);
        assert_eq!(sink.engine.clock(), Some(T0 + 62 * S));
        // The stop's retention runs at the import's clock, 2014-01-01
        // 00:01:02: the day's row is kept (at the future sample's clock,
        // the whole archive would have been removed).
        sink.finish();
        let policy = &sink.engine.policies()[0];
        let day = sink.writer.partition_dir(policy, 0, "2014-01-01");
        assert_eq!(super::super::parquet_files(&day).unwrap().len(), 1);
        assert_eq!(sink.writer.written(), (1, 1));
    }

    #[test]
    fn self_telemetry_is_not_refused_as_future_long_after_the_last_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = one_minute_sink(dir.path());
        let wall = crate::pipeline::wall_clock_ns();
        sink.write("s", &one_series(vec![wall], vec![1.0]));
        // Two hours without a batch: the limit the batch left (its wall
        // clock plus an hour) is behind the counters' stamp.
        for _ in 0..TELEMETRY_EVERY_TICKS {
            sink.tick(wall + 7200 * S);
        }
        assert!(
            sink.report().future.is_empty(),
            "{:?}",
            sink.report().future
        );
        // The batch's sample, then accepted, rows_closed, series_forgotten,
        // wal_failures, wal_fsyncs, wal_size and series.
        assert_eq!(sink.report().accepted, 1 + 7);
    }

    #[test]
    fn self_telemetry_counts_what_the_engine_did_and_the_series_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = one_minute_sink(dir.path());
        sink.write("s", &one_series(vec![T0, -S], vec![1.0, 2.0]));
        let wal_size = std::fs::metadata(dir.path().join(super::wal::WAL_FILE))
            .unwrap()
            .len();
        assert!(wal_size > 0);
        // The first tick closes m's bucket and forgets m (silent for an
        // hour); the tenth ingests the counters, stamped at its second.
        let now = T0 + 3600 * S + S / 2;
        for _ in 0..TELEMETRY_EVERY_TICKS {
            sink.tick(now);
        }
        let rows = sink.engine.open_rows(0, 0);
        let got: BTreeMap<TelemetryKey, (i64, Option<f64>)> = rows
            .iter()
            .map(|r| {
                (
                    (r.series.metric.clone(), r.series.attributes.clone()),
                    (r.timestamp, r.values[0]),
                )
            })
            .collect();
        let at = T0 + 3600 * S;
        let refused = vec![
            ("metric".to_owned(), "m".to_owned()),
            ("reason".to_owned(), "before_epoch".to_owned()),
        ];
        let want: BTreeMap<_, _> = [
            (("wasmeter.rollup.accepted".into(), vec![]), (at, Some(1.0))),
            (
                ("wasmeter.rollup.rows_closed".into(), vec![]),
                (at, Some(1.0)),
            ),
            (
                ("wasmeter.rollup.series_forgotten".into(), vec![]),
                (at, Some(1.0)),
            ),
            (("wasmeter.rollup.refused".into(), refused), (at, Some(1.0))),
            (("wasmeter.rollup.series".into(), vec![]), (at, Some(0.0))),
            (
                ("wasmeter.rollup.wal_failures".into(), vec![]),
                (at, Some(0.0)),
            ),
            (
                ("wasmeter.rollup.wal_size".into(), vec![]),
                (at, Some(wal_size as f64)),
            ),
            // The one append, synced at once (nothing was appended since).
            (
                ("wasmeter.rollup.wal_fsyncs".into(), vec![]),
                (at, Some(1.0)),
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(got, want);
    }
}

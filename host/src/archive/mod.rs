//! The Parquet archive: layout, writer, compaction and retention.
//!
//! Consumes: closed rollup rows ([`ClosedRows`]) per archive policy and
//! granularity. Emits: Parquet files that DuckDB, DataFusion, pandas,
//! polars, Spark and Trino read directly.
//!
//! ```text
//! ROOT/policy=<name>/granularity=<seconds>/date=<YYYY-MM-DD>/part-*.parquet
//! ```
//!
//! One row per (series, bucket), sorted by (metric, resource_id,
//! attributes, timestamp):
//!
//! ```text
//! column        Parquet type                            notes
//! timestamp     INT64 TIMESTAMP(MICROS, UTC)            bucket start
//! granularity   INT64                                   seconds
//! metric        BYTE_ARRAY UTF8, dictionary-encoded
//! resource_id   BYTE_ARRAY UTF8, dictionary-encoded
//! unit          BYTE_ARRAY UTF8, dictionary-encoded
//! attributes    MAP<UTF8, UTF8>                         labels
//! <method>…     DOUBLE, nullable                        mean, pct95, rate_mean…
//! ```
//!
//! Every file is zstd-compressed with page statistics, and its key-value
//! metadata records `wasmeter.policy` (the definition), `wasmeter.version`
//! and `wasmeter.plugins` (stage → SHA-256 of the component). Files are
//! written under a hidden temporary name, `fsync`ed and renamed (and the
//! directory `fsync`ed), so readers never see a partial file and a file
//! is on disk before a checkpoint records its buckets as written. A partition no open bucket can reach any more is
//! compacted into one file; partitions wholly older than the policy's
//! timespan are deleted.
//!
//! A policy with `precision_bits = N` stores its values rounded to `N` bits
//! of binary fraction ([`round_to_precision`]), `count` and `rate:count`
//! excepted; such a file's metadata has `wasmeter.precision_bits = N`
//! ([`PRECISION_KEY`]). A compacted file keeps the coarsest of its inputs'.

mod sink;
pub mod wal;

pub(crate) use sink::archive_config;
pub use sink::{ArchiveLock, ArchiveSink, Clock, PrintTee};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use arrow::array::{
    Array, ArrayRef, Float64Builder, Int64Array, MapBuilder, MapFieldNames, RecordBatch,
    StringBuilder, StringDictionaryBuilder, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{
    DEFAULT_DATA_PAGE_ROW_COUNT_LIMIT, EnabledStatistics, WriterProperties,
};
use parquet::schema::types::ColumnPath;

use crate::rollup::{ArchivePolicy, BaseMethod, ClosedRows};

/// `fsync`s directory `dir`, so that the files created, renamed or removed
/// in it are too (a crash of the machine could lose them otherwise).
///
/// # Errors
/// `dir` cannot be opened or synced.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// [`std::fs::create_dir_all`] that also `fsync`s the parent of every
/// directory it creates.
///
/// # Errors
/// As `create_dir_all`, or a parent cannot be synced.
pub(crate) fn create_dir_synced(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut d = dir;
    while !d.exists() {
        missing.push(d);
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    std::fs::create_dir_all(dir)?;
    for d in missing {
        match d.parent() {
            Some(p) if p.as_os_str().is_empty() => sync_dir(Path::new("."))?,
            Some(p) => sync_dir(p)?,
            None => {}
        }
    }
    Ok(())
}

/// Nanoseconds in a day.
pub(crate) const DAY_NS: i64 = 86_400 * 1_000_000_000;

/// Rows per Parquet row group at most.
pub const ROW_GROUP_ROWS: usize = 65_536;

/// File metadata key of a file whose values are rounded: the bits of
/// fraction kept ([`round_to_precision`]); absent when they are exact.
pub const PRECISION_KEY: &str = "wasmeter.precision_bits";

/// The name suffix of a compaction's journal in its partition,
/// `.NAME.compaction` for compacted file `NAME`: a hidden text file, `NAME`
/// on its first line and the names of the files it replaces on the next,
/// written before the compacted file is renamed into place and removed
/// after its inputs. A compaction a crash cut short is finished by the
/// next compaction of the partition ([`finish_compaction`]), which removes
/// the inputs instead of merging their rows in twice.
pub const COMPACTION_JOURNAL_SUFFIX: &str = ".compaction";

/// The `wasmeter.precision_bits` of a file, if its values are rounded.
fn file_precision_bits(meta: &parquet::file::metadata::FileMetaData) -> Option<u32> {
    meta.key_value_metadata()?
        .iter()
        .find(|kv| kv.key == PRECISION_KEY)?
        .value
        .as_deref()?
        .parse()
        .ok()
}

/// Writes closed rollup rows into the archive.
#[derive(Debug)]
pub struct ArchiveWriter {
    root: PathBuf,
    policies: Arc<[ArchivePolicy]>,
    plugins: BTreeMap<String, String>,
    /// Random, this writer's part of its file names.
    token: String,
    seq: u64,
    files_written: u64,
    rows_written: u64,
    row_group_rows: usize,
    /// Tests: the step of [`ArchiveWriter::compact`] after which it fails
    /// as a crash there would stop it (1: journal written, 2: new file in
    /// place, 3: inputs removed).
    #[cfg(test)]
    pub(crate) crash_after: Option<u8>,
}

/// The date partition (`YYYY-MM-DD`, UTC) of a timestamp in ns.
pub fn date_of(ts_ns: i64) -> String {
    let secs = ts_ns.div_euclid(1_000_000_000).max(0) as u64;
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(t).to_string()[..10].to_owned()
}

/// Parses a `date=YYYY-MM-DD` partition value into its start, ns.
pub(crate) fn date_start(date: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339(&format!("{date}T00:00:00Z")).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos() as i64)
}

impl ArchiveWriter {
    /// A writer into `root` for `policies`; `plugins` (stage → digest) goes
    /// into every file's metadata.
    pub fn new(
        root: &Path,
        policies: Arc<[ArchivePolicy]>,
        plugins: BTreeMap<String, String>,
    ) -> Self {
        ArchiveWriter {
            root: root.to_path_buf(),
            policies,
            plugins,
            token: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
            seq: 0,
            files_written: 0,
            rows_written: 0,
            row_group_rows: ROW_GROUP_ROWS,
            #[cfg(test)]
            crash_after: None,
        }
    }

    /// Rows per Parquet row group at most (default [`ROW_GROUP_ROWS`]).
    pub fn with_row_group_rows(mut self, rows: usize) -> Self {
        self.row_group_rows = rows.max(1);
        self
    }

    /// The archive root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The stage → plugin digest map recorded in every file.
    pub fn plugins(&self) -> &BTreeMap<String, String> {
        &self.plugins
    }

    /// Files and rows written so far.
    pub fn written(&self) -> (u64, u64) {
        (self.files_written, self.rows_written)
    }

    /// The folder of one partition.
    pub fn partition_dir(&self, policy: &ArchivePolicy, gi: usize, date: &str) -> PathBuf {
        self.granularity_dir(policy, gi)
            .join(format!("date={date}"))
    }

    fn granularity_dir(&self, policy: &ArchivePolicy, gi: usize) -> PathBuf {
        self.root
            .join(format!("policy={}", policy.name))
            .join(format!(
                "granularity={}",
                policy.definition[gi].granularity.as_secs()
            ))
    }

    /// The Arrow schema of `policy`'s archive files.
    pub fn schema(policy: &ArchivePolicy) -> SchemaRef {
        let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let mut fields = vec![
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("granularity", DataType::Int64, false),
            Field::new("metric", dict.clone(), false),
            Field::new("resource_id", dict.clone(), false),
            Field::new("unit", dict, false),
            Field::new(
                "attributes",
                attributes_builder().finish().data_type().clone(),
                false,
            ),
        ];
        fields.extend(
            policy
                .aggregation_methods
                .iter()
                .map(|m| Field::new(m.column_name(), DataType::Float64, true)),
        );
        Arc::new(Schema::new(fields))
    }

    fn properties(
        &self,
        policy: &ArchivePolicy,
        precision_bits: Option<u32>,
        batches: &[RecordBatch],
    ) -> WriterProperties {
        let mut meta = vec![
            KeyValue::new(
                "wasmeter.version".into(),
                env!("CARGO_PKG_VERSION").to_owned(),
            ),
            KeyValue::new(
                "wasmeter.policy".into(),
                format!("{}: {}", policy.name, policy.describe()),
            ),
        ];
        let plugins: Vec<String> = self
            .plugins
            .iter()
            .map(|(s, d)| format!("{s}={d}"))
            .collect();
        meta.push(KeyValue::new("wasmeter.plugins".into(), plugins.join(",")));
        if let Some(bits) = precision_bits {
            meta.push(KeyValue::new(PRECISION_KEY.into(), bits.to_string()));
        }
        // A file of at most one data page per column chunk (a day of one
        // or a few series) gets chunk statistics and no page index: its
        // column and offset indexes would repeat the chunk statistics and
        // the column metadata, ~400 bytes for nothing. Larger files get
        // page statistics on the columns readers filter by.
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let single_page = rows <= DEFAULT_DATA_PAGE_ROW_COUNT_LIMIT;
        let mut b = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(9).expect("valid level"),
            ))
            .set_dictionary_enabled(true)
            .set_statistics_enabled(if single_page {
                EnabledStatistics::Chunk
            } else {
                EnabledStatistics::Page
            })
            .set_offset_index_disabled(single_page)
            .set_key_value_metadata(Some(meta))
            // Row groups small enough that a one-series read skips most of
            // a day's file by its metric and timestamp statistics.
            .set_max_row_group_row_count(Some(self.row_group_rows))
            .set_column_dictionary_enabled(ColumnPath::from("timestamp"), false)
            .set_column_encoding(ColumnPath::from("timestamp"), Encoding::DELTA_BINARY_PACKED);
        // Floats: a dictionary where values repeat (counts, integer or
        // few-decimal gauges, flat lines), else byte-stream split, which
        // makes their bytes compress. Statistics per column chunk: row
        // groups are pruned by metric and time, not by aggregate values.
        for m in &policy.aggregation_methods {
            let name = m.column_name();
            let col = ColumnPath::from(name.as_str());
            let repeats = values_repeat(batches, &name);
            b = b
                .set_column_dictionary_enabled(col.clone(), repeats)
                .set_column_statistics_enabled(col.clone(), EnabledStatistics::Chunk);
            if !repeats {
                b = b.set_column_encoding(col, Encoding::BYTE_STREAM_SPLIT);
            }
        }
        for leaf in [
            &["attributes", "entries", "keys"][..],
            &["attributes", "entries", "values"],
            &["granularity"],
            &["unit"],
        ] {
            let path = ColumnPath::new(leaf.iter().map(|p| p.to_string()).collect());
            b = b.set_column_statistics_enabled(path, EnabledStatistics::Chunk);
        }
        b.build()
    }

    /// Writes `rows` of `policy`/granularity `gi`: one new file per date
    /// partition they touch. Returns the files written.
    ///
    /// # Errors
    /// I/O and Parquet errors, naming the file.
    pub fn write(
        &mut self,
        policy_idx: usize,
        gi: usize,
        rows: &ClosedRows,
    ) -> anyhow::Result<Vec<PathBuf>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let policy = self.policies[policy_idx].clone();
        anyhow::ensure!(
            rows.width() == policy.aggregation_methods.len(),
            "policy {}: closed rows with {} values for {} aggregation methods",
            policy.name,
            rows.width(),
            policy.aggregation_methods.len()
        );
        // Row indices by date partition (UTC day, as `date_of`).
        let mut by_day: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for i in 0..rows.len() {
            let day = rows.timestamp(i).max(0).div_euclid(DAY_NS);
            by_day.entry(day).or_default().push(i);
        }
        let mut files = Vec::new();
        for (day, mut part) in by_day {
            let date = date_of(day * DAY_NS);
            part.sort_by(|&a, &b| {
                let (sa, sb) = (rows.series(a), rows.series(b));
                let by_series = if Arc::ptr_eq(sa, sb) {
                    std::cmp::Ordering::Equal
                } else {
                    (&sa.metric, &sa.resource_id, &sa.attributes).cmp(&(
                        &sb.metric,
                        &sb.resource_id,
                        &sb.attributes,
                    ))
                };
                by_series.then(rows.timestamp(a).cmp(&rows.timestamp(b)))
            });
            let batch = rows_to_batch(&policy, gi, rows, &part)?;
            let dir = self.partition_dir(&policy, gi, &date);
            let name = self.unused_name(&dir, "part", rows.timestamp(part[0]) / 1000);
            let path = self.write_file(&policy, policy.precision_bits, &dir, &name, &[batch])?;
            self.rows_written += part.len() as u64;
            files.push(path);
        }
        Ok(files)
    }

    /// A file name in `dir` that no file has: `PREFIX-FIRST_TS-TOKEN-SEQ`,
    /// `TOKEN` 12 random hex digits of this writer (a reload or a restart
    /// makes a new one; a pid would repeat, PID 1 in a container), so that
    /// no name comes back after its file was compacted away: a
    /// compaction journal never names a later file. A name taken
    /// all the same is skipped rather than overwritten.
    fn unused_name(&mut self, dir: &Path, prefix: &str, first_ts_us: i64) -> String {
        loop {
            self.seq += 1;
            let name = format!("{prefix}-{first_ts_us}-{}-{}.parquet", self.token, self.seq);
            if !dir.join(&name).exists() {
                return name;
            }
        }
    }

    /// Writes `batches` as `dir/name`: under a hidden name, `fsync`ed,
    /// renamed, and the directory `fsync`ed.
    fn write_file(
        &mut self,
        policy: &ArchivePolicy,
        precision_bits: Option<u32>,
        dir: &Path,
        name: &str,
        batches: &[RecordBatch],
    ) -> anyhow::Result<PathBuf> {
        create_dir_synced(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        let file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut w = ArrowWriter::try_new(
            file,
            Self::schema(policy),
            Some(self.properties(policy, precision_bits, batches)),
        )?;
        for b in batches {
            w.write(b)?;
        }
        w.into_inner()
            .map_err(anyhow::Error::from)
            .and_then(|f| Ok(f.sync_all()?))
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot rename {}", tmp.display()))?;
        sync_dir(dir).with_context(|| format!("cannot fsync {}", dir.display()))?;
        self.files_written += 1;
        Ok(path)
    }

    /// Compacts every partition of `policy`/`gi` that ends at or before
    /// `closed_before` (ns; no open bucket can reach it) and has more than
    /// one file, into one file, after finishing any compaction of it that
    /// a crash cut short ([`COMPACTION_JOURNAL_SUFFIX`]). Returns the
    /// partitions compacted. A partition that fails is logged and skipped:
    /// it is left as it was, or, after a failure once the new file is in
    /// place, with its inputs beside it (rows seen twice by readers) until
    /// the next compaction or start finishes it.
    ///
    /// # Errors
    /// The granularity's folder cannot be listed.
    pub fn compact(
        &mut self,
        policy_idx: usize,
        gi: usize,
        closed_before: i64,
    ) -> anyhow::Result<Vec<PathBuf>> {
        let policy = self.policies[policy_idx].clone();
        let mut done = Vec::new();
        for (date, dir) in partitions(&self.granularity_dir(&policy, gi))? {
            let Some(start) = date_start(&date) else {
                continue;
            };
            if start + DAY_NS > closed_before {
                continue;
            }
            match self.compact_partition(&policy, &dir) {
                Ok(true) => done.push(dir),
                Ok(false) => {}
                Err(e) => tracing::error!(partition = %dir.display(), "compaction failed: {e:#}"),
            }
        }
        Ok(done)
    }

    /// Compacts partition `dir` of `policy` if it has more than one file
    /// (see [`ArchiveWriter::compact`]); returns whether it did.
    fn compact_partition(&mut self, policy: &ArchivePolicy, dir: &Path) -> anyhow::Result<bool> {
        finish_compaction(dir)?;
        let files = parquet_files(dir)?;
        if files.len() < 2 {
            return Ok(false);
        }
        let mut batches = Vec::new();
        // The coarsest precision of the inputs: a reload may have changed
        // the policy's between them.
        let mut precision_bits: Option<u32> = None;
        for f in &files {
            let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(f)?)?;
            if let Some(bits) = file_precision_bits(builder.metadata().file_metadata()) {
                precision_bits = Some(precision_bits.map_or(bits, |p| p.min(bits)));
            }
            for b in builder.build()? {
                batches.push(b?);
            }
        }
        let all = arrow::compute::concat_batches(&Self::schema(policy), &batches)?;
        let sorted = sort_rows(&all)?;
        let first_ts = sorted
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .map_or(0, |t| if t.is_empty() { 0 } else { t.value(0) });
        let name = self.unused_name(dir, "compacted", first_ts);
        // The journal first: a crash from here on is finished by the next
        // compaction or start, whether the new file made it or not.
        let journal = dir.join(format!(".{name}{COMPACTION_JOURNAL_SUFFIX}"));
        let mut lines = name.clone();
        for f in &files {
            lines.push('\n');
            lines.push_str(&f.file_name().unwrap_or_default().to_string_lossy());
        }
        write_synced(&journal, lines.as_bytes())?;
        sync_dir(dir).with_context(|| format!("cannot fsync {}", dir.display()))?;
        self.crash_point(1)?;
        self.write_file(policy, precision_bits, dir, &name, &[sorted])?;
        self.crash_point(2)?;
        remove_files(dir, &files)?;
        self.crash_point(3)?;
        std::fs::remove_file(&journal)
            .with_context(|| format!("cannot remove {}", journal.display()))?;
        Ok(true)
    }

    /// Fails as a crash after `step` of a compaction would stop it, where
    /// a test asks for it.
    #[cfg(test)]
    fn crash_point(&self, step: u8) -> anyhow::Result<()> {
        match self.crash_after == Some(step) {
            true => anyhow::bail!("crash after step {step}"),
            false => Ok(()),
        }
    }

    #[cfg(not(test))]
    fn crash_point(&self, _step: u8) -> anyhow::Result<()> {
        Ok(())
    }

    /// Deletes the partitions that lie wholly before `now − timespan` for
    /// every granularity with a retention. Returns the folders deleted.
    ///
    /// # Errors
    /// I/O errors.
    pub fn apply_retention(&self, now_ns: i64) -> anyhow::Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for policy in self.policies.iter() {
            for (gi, item) in policy.definition.iter().enumerate() {
                let Some(span) = item.timespan() else {
                    continue;
                };
                let horizon = now_ns.saturating_sub(span.as_nanos() as i64);
                for (date, dir) in partitions(&self.granularity_dir(policy, gi))? {
                    if date_start(&date).is_some_and(|s| s + DAY_NS <= horizon) {
                        std::fs::remove_dir_all(&dir)
                            .with_context(|| format!("cannot remove {}", dir.display()))?;
                        removed.push(dir);
                    }
                }
            }
        }
        Ok(removed)
    }
}

fn attributes_builder() -> MapBuilder<StringBuilder, StringBuilder> {
    MapBuilder::new(
        Some(MapFieldNames {
            entry: "entries".into(),
            key: "keys".into(),
            value: "values".into(),
        }),
        StringBuilder::new(),
        StringBuilder::new(),
    )
    .with_values_field(Field::new("values", DataType::Utf8, false))
}

/// Rounds `x` to `bits` bits of its 52-bit binary fraction, to nearest
/// (a tie rounds away from zero). The zeroed low bits are what makes the
/// archive's byte-stream-split pages compress. `bits` 0 keeps only the
/// power of two; 52 or more returns `x`.
///
/// Bound: for a normal `x`, `|result - x| ≤ 2^-(bits+1) × |x|` (half a unit
/// in the last kept bit; N bits are about 0.3 × (N + 1) decimal digits).
/// Within that distance of `f64::MAX` the fraction is truncated instead
/// (error below `2^-bits × |x|`), so a finite value never becomes
/// infinite. Subnormals round on the grid of the smallest normal exponent:
/// their error is absolute (at most `2^-(1022+bits+1)`), and tiny ones
/// become 0. NaN (payload kept) and ±infinity are returned unchanged; ±0.0
/// keeps its sign. Rounding a result again at the same `bits` changes
/// nothing.
///
/// ```
/// use wasmeter::archive::round_to_precision;
/// // 1 + 2^-13 is half a unit of the 12th bit: it rounds up to 1 + 2^-12.
/// assert_eq!(round_to_precision(1.0 + 2f64.powi(-13), 12), 1.0 + 2f64.powi(-12));
/// assert_eq!(round_to_precision(1.0 + 2f64.powi(-14), 12), 1.0);
/// assert_eq!(round_to_precision(-3.0, 1), -3.0);
/// ```
pub fn round_to_precision(x: f64, bits: u32) -> f64 {
    if bits >= 52 || !x.is_finite() {
        return x;
    }
    let dropped = 52 - bits;
    let mask = !((1u64 << dropped) - 1);
    let raw = x.to_bits();
    // A carry out of the fraction moves into the exponent: exactly the next
    // power of two, or infinity past the largest finite exponent.
    let rounded = f64::from_bits((raw + (1u64 << (dropped - 1))) & mask);
    if rounded.is_finite() {
        rounded
    } else {
        f64::from_bits(raw & mask)
    }
}

/// The Arrow batch of `rows`' rows `part`, in that order; values rounded
/// to the policy's `precision_bits`, counts excepted.
fn rows_to_batch(
    policy: &ArchivePolicy,
    gi: usize,
    rows: &ClosedRows,
    part: &[usize],
) -> anyhow::Result<RecordBatch> {
    let g = policy.definition[gi].granularity.as_secs() as i64;
    let ts: TimestampMicrosecondArray = part
        .iter()
        .map(|&i| Some(rows.timestamp(i) / 1000))
        .collect::<TimestampMicrosecondArray>()
        .with_timezone("UTC");
    let gran = Int64Array::from(vec![g; part.len()]);
    let mut metric = StringDictionaryBuilder::<Int32Type>::new();
    let mut resource = StringDictionaryBuilder::<Int32Type>::new();
    let mut unit = StringDictionaryBuilder::<Int32Type>::new();
    let mut attrs = attributes_builder();
    for &i in part {
        let s = rows.series(i);
        metric.append_value(&s.metric);
        resource.append_value(&s.resource_id);
        unit.append_value(&s.unit);
        for (k, v) in &s.attributes {
            attrs.keys().append_value(k);
            attrs.values().append_value(v);
        }
        attrs.append(true)?;
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(ts),
        Arc::new(gran),
        Arc::new(metric.finish()),
        Arc::new(resource.finish()),
        Arc::new(unit.finish()),
        Arc::new(attrs.finish()),
    ];
    for (mi, method) in policy.aggregation_methods.iter().enumerate() {
        let mut b = Float64Builder::with_capacity(part.len());
        // Counts are integers, kept exact whatever the precision.
        match policy.precision_bits {
            Some(bits) if method.base != BaseMethod::Count => {
                for &i in part {
                    b.append_option(rows.value(i, mi).map(|v| round_to_precision(v, bits)));
                }
            }
            _ => {
                for &i in part {
                    b.append_option(rows.value(i, mi));
                }
            }
        }
        columns.push(Arc::new(b.finish()));
    }
    Ok(RecordBatch::try_new(
        ArchiveWriter::schema(policy),
        columns,
    )?)
}

/// Whether the Float64 column `name` of `batches` has at most one distinct
/// value (by bit pattern) per four values: then a dictionary beats
/// byte-stream split.
fn values_repeat(batches: &[RecordBatch], name: &str) -> bool {
    // Seeded: the values come from outside and must not pick collisions.
    let mut distinct: std::collections::HashSet<u64, foldhash::fast::RandomState> =
        std::collections::HashSet::default();
    let mut n = 0usize;
    for b in batches {
        let Some(col) = b
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<arrow::array::Float64Array>())
        else {
            continue;
        };
        for v in col.iter().flatten() {
            n += 1;
            distinct.insert(v.to_bits());
        }
    }
    n > 0 && distinct.len() * 4 <= n
}

/// Sorts archive rows by (metric, resource_id, attributes, timestamp).
fn sort_rows(batch: &RecordBatch) -> anyhow::Result<RecordBatch> {
    use arrow::row::{RowConverter, SortField};
    let keys = ["metric", "resource_id", "attributes", "timestamp"];
    let cols: Vec<ArrayRef> = keys
        .iter()
        .map(|k| batch.column_by_name(k).cloned().context("archive column"))
        .collect::<anyhow::Result<_>>()?;
    let converter = RowConverter::new(
        cols.iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect(),
    )?;
    let rows = converter.convert_columns(&cols)?;
    let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
    order.sort_by(|&a, &b| rows.row(a as usize).cmp(&rows.row(b as usize)));
    let indices = arrow::array::UInt32Array::from(order);
    Ok(arrow::compute::take_record_batch(batch, &indices)?)
}

/// `(date, folder)` of every `date=` partition under `dir`.
pub(crate) fn partitions(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    for e in entries {
        let path = e?.path();
        if let Some(date) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("date="))
        {
            out.push((date.to_owned(), path.clone()));
        }
    }
    out.sort();
    Ok(out)
}

/// Removes `files` from `dir`, then `fsync`s `dir`.
fn remove_files(dir: &Path, files: &[PathBuf]) -> anyhow::Result<()> {
    for f in files {
        std::fs::remove_file(f).with_context(|| format!("cannot remove {}", f.display()))?;
    }
    sync_dir(dir).with_context(|| format!("cannot fsync {}", dir.display()))
}

/// Writes `bytes` to a new file `path` and `fsync`s it.
fn write_synced(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Finishes every compaction under archive `root` that a crash cut short
/// (see [`finish_compaction`]), whatever the policies now are: a start
/// does it before anything else, so readers see no row twice from then
/// on. A partition that fails is logged and skipped (its next compaction
/// tries again). Returns the partitions that had a journal.
///
/// # Errors
/// A policy or granularity folder cannot be listed.
pub fn finish_compactions(root: &Path) -> anyhow::Result<usize> {
    let mut finished = 0;
    let subdirs = |dir: &Path, prefix: &str| -> anyhow::Result<Vec<PathBuf>> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
        };
        let mut out = Vec::new();
        for e in entries {
            let path = e
                .with_context(|| format!("cannot list {}", dir.display()))?
                .path();
            let named = path.file_name().and_then(|n| n.to_str());
            if named.is_some_and(|n| n.starts_with(prefix)) && path.is_dir() {
                out.push(path);
            }
        }
        Ok(out)
    };
    for policy in subdirs(root, "policy=")? {
        for granularity in subdirs(&policy, "granularity=")? {
            for (_, dir) in partitions(&granularity)? {
                match finish_compaction(&dir) {
                    Ok(true) => finished += 1,
                    Ok(false) => {}
                    Err(e) => tracing::error!(
                        partition = %dir.display(),
                        "cannot finish a compaction a crash cut short: {e:#}"
                    ),
                }
            }
        }
    }
    Ok(finished)
}

/// Finishes the compactions of partition `dir` that a crash cut short
/// (see [`COMPACTION_JOURNAL_SUFFIX`]): where the compacted file is in
/// place, removes the inputs still there; where it is not, leaves them
/// (and removes the compaction's hidden temporary file). Then removes the
/// journal. Returns whether there was one.
///
/// # Errors
/// A journal or file that cannot be read or removed.
fn finish_compaction(dir: &Path) -> anyhow::Result<bool> {
    let mut found = false;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let journal = entry?.path();
        let Some(name) = journal.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !(name.starts_with('.') && name.ends_with(COMPACTION_JOURNAL_SUFFIX)) {
            continue;
        }
        found = true;
        let text = std::fs::read_to_string(&journal)
            .with_context(|| format!("cannot read {}", journal.display()))?;
        let mut names = text.lines();
        let output = names.next().unwrap_or_default();
        // Names only: a line with a path separator is not ours.
        let ours = |n: &&str| !n.is_empty() && !n.contains(['/', '\\']);
        if dir.join(output).is_file() && ours(&output) {
            let inputs: Vec<PathBuf> = names
                .filter(ours)
                .map(|n| dir.join(n))
                .filter(|p| p.exists())
                .collect();
            tracing::warn!(
                partition = %dir.display(),
                files = inputs.len(),
                "finishing a compaction a crash cut short: removing its inputs"
            );
            remove_files(dir, &inputs)?;
        } else if ours(&output) {
            let _ = std::fs::remove_file(dir.join(format!(".{output}.tmp")));
        }
        std::fs::remove_file(&journal)
            .with_context(|| format!("cannot remove {}", journal.display()))?;
    }
    Ok(found)
}

/// The visible `.parquet` files of a partition, sorted.
pub(crate) fn parquet_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "parquet")
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests;

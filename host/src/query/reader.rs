//! Reading series out of the Parquet archive, touching only what a query
//! needs: partitions are pruned by their `granularity=` and `date=` folders,
//! row groups by their `metric` and `timestamp` statistics (rows are sorted
//! by metric, resource, attributes, time), and only the needed columns are
//! decoded. [`ScanStats`] counts what was touched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::statistics::Statistics;

use crate::archive::{date_start, parquet_files, partitions};
use crate::rollup::AggregationMethod;

use crate::archive::DAY_NS;

/// What to read.
#[derive(Debug, Clone)]
pub struct Selection {
    /// The metric, exactly.
    pub metric: String,
    /// A glob over resource ids; `None` takes every resource.
    pub resource: Option<globset::GlobMatcher>,
    /// Only this granularity (ns); `None` takes every one.
    pub granularity: Option<i64>,
    /// Buckets starting at or after this time (ns since the Unix epoch, UTC).
    pub start: Option<i64>,
    /// Buckets starting before this time (exclusive).
    pub stop: Option<i64>,
}

/// One series' identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeriesKey {
    /// The metric name.
    pub metric: String,
    /// The resource id.
    pub resource_id: String,
    /// Labels, sorted by key.
    pub attributes: Vec<(String, String)>,
}

impl SeriesKey {
    /// `resource_id` and, when there are any, `{k=v,…}`: how a series is
    /// named in output.
    pub fn label(&self) -> String {
        let mut out = format!("{}/{}", self.metric, self.resource_id);
        if !self.attributes.is_empty() {
            let attrs: Vec<String> = self
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push_str(&format!("{{{}}}", attrs.join(",")));
        }
        out
    }
}

/// One series at one granularity, for one aggregation method: bucket
/// starts (ns, ascending) and values. Buckets where the method has no
/// point (`std` of one value) are absent.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesPoints {
    /// Whose points.
    pub key: SeriesKey,
    /// The unit of the series.
    pub unit: String,
    /// Bucket width, ns.
    pub granularity: i64,
    /// The calendar group of a calendar resample (then the buckets are
    /// months, weeks…, and `granularity` is the width they were made of).
    pub calendar: Option<super::time::CalendarGroup>,
    /// Bucket starts, ns since the Unix epoch, UTC, ascending.
    pub timestamps: Vec<i64>,
    /// One value per bucket.
    pub values: Vec<f64>,
}

/// What a read touched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Parquet files whose footer was read (after folder pruning).
    pub files: u64,
    /// Row groups in those files.
    pub row_groups_total: u64,
    /// Row groups decoded (the rest were pruned by statistics).
    pub row_groups_read: u64,
    /// Rows decoded.
    pub rows_read: u64,
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The metric is archived, but no policy holding it has the method.
    #[error("the archive policy of {metric} has no method column {column} (it has: {available})")]
    MissingMethod {
        /// The metric.
        metric: String,
        /// The method's column name (`pct95`, `rate_mean`).
        column: String,
        /// The method columns the metric's files have, comma-separated.
        available: String,
    },
    /// The archive cannot be read (I/O, Parquet, a foreign file), naming
    /// the file.
    #[error("{0:#}")]
    Archive(#[from] anyhow::Error),
}

/// The earliest bucket start any granularity under `root` floors `start`
/// to: where a read from `start` must begin so that every granularity's
/// floored start is included (granularities need not divide each other).
///
/// # Errors
/// I/O errors.
pub fn earliest_floor(root: &Path, start: i64) -> Result<i64, ReadError> {
    Ok(granularities(root)?
        .into_iter()
        .map(|g| crate::rollup::floor(start, g))
        .min()
        .unwrap_or(start))
}

/// Reads `method` of the series `sel` picks from every policy under
/// `root`. Returns the series sorted by granularity (coarsest first), then
/// series key, and what was touched.
///
/// # Errors
/// [`ReadError::Archive`] for I/O and Parquet errors, naming the file;
/// [`ReadError::MissingMethod`] when files hold the metric but none of
/// them has the method (files of other policies that merely may hold it
/// are skipped).
pub fn read(
    root: &Path,
    sel: &Selection,
    method: AggregationMethod,
) -> Result<(Vec<SeriesPoints>, ScanStats), ReadError> {
    let mut stats = ScanStats::default();
    let column = method.column_name();
    let mut out: BTreeMap<(std::cmp::Reverse<i64>, SeriesKey), SeriesPoints> = BTreeMap::new();
    let mut lacking: Option<String> = None;
    for file in files(root, sel)? {
        let found = read_file(&file, sel, &column, &mut stats, &mut out)
            .with_context(|| format!("reading {}", file.display()))?;
        if let FileRead::LacksMethod(available) = found {
            lacking = Some(available);
        }
    }
    if out.is_empty()
        && let Some(available) = lacking
    {
        return Err(ReadError::MissingMethod {
            metric: sel.metric.clone(),
            column,
            available,
        });
    }
    let mut series: Vec<SeriesPoints> = out.into_values().collect();
    for s in &mut series {
        sort_points(s);
    }
    Ok((series, stats))
}

/// The granularities (ns) of every policy folder under `root` that holds
/// files, finest first.
///
/// # Errors
/// I/O errors.
pub fn granularities(root: &Path) -> Result<Vec<i64>, ReadError> {
    let mut out = Vec::new();
    for (_, dir) in policy_dirs(root)? {
        for (g, _) in granularity_dirs(&dir)? {
            out.push(g);
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn sort_points(s: &mut SeriesPoints) {
    if s.timestamps.is_sorted() {
        return;
    }
    let mut pairs: Vec<(i64, f64)> = s
        .timestamps
        .iter()
        .copied()
        .zip(s.values.iter().copied())
        .collect();
    pairs.sort_by_key(|p| p.0);
    s.timestamps = pairs.iter().map(|p| p.0).collect();
    s.values = pairs.iter().map(|p| p.1).collect();
}

/// `policy=` folders under `root`, by name.
fn policy_dirs(root: &Path) -> Result<Vec<(String, PathBuf)>, ReadError> {
    named_dirs(root, "policy=")
}

/// `granularity=` folders (as ns) under a policy folder.
fn granularity_dirs(dir: &Path) -> Result<Vec<(i64, PathBuf)>, ReadError> {
    Ok(named_dirs(dir, "granularity=")?
        .into_iter()
        .filter_map(|(g, p)| g.parse::<i64>().ok().map(|s| (s * 1_000_000_000, p)))
        .collect())
}

fn named_dirs(dir: &Path, prefix: &str) -> Result<Vec<(String, PathBuf)>, ReadError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(anyhow::anyhow!("no archive at {}", dir.display()).into());
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("cannot list {}", dir.display()))
                .into());
        }
    };
    let mut out = Vec::new();
    for e in entries {
        let path = e.map_err(anyhow::Error::new)?.path();
        if let Some(v) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(prefix))
        {
            out.push((v.to_owned(), path.clone()));
        }
    }
    out.sort();
    Ok(out)
}

/// The files whose folders can hold rows of `sel`.
fn files(root: &Path, sel: &Selection) -> Result<Vec<PathBuf>, ReadError> {
    let mut out = Vec::new();
    for (_, policy) in policy_dirs(root)? {
        for (g, dir) in granularity_dirs(&policy)? {
            if sel.granularity.is_some_and(|want| want != g) {
                continue;
            }
            for (date, part) in partitions(&dir)? {
                let Some(day) = date_start(&date) else {
                    continue;
                };
                // The partition holds buckets starting on that day.
                if sel.start.is_some_and(|s| day + DAY_NS <= s)
                    || sel.stop.is_some_and(|s| day >= s)
                {
                    continue;
                }
                out.extend(parquet_files(&part)?);
            }
        }
    }
    Ok(out)
}

/// What reading one file found.
enum FileRead {
    /// Rows were collected (or none matched).
    Read,
    /// The file holds the metric but not the method's column: the method
    /// columns it has.
    LacksMethod(String),
}

fn read_file(
    path: &Path,
    sel: &Selection,
    column: &str,
    stats: &mut ScanStats,
    out: &mut BTreeMap<(std::cmp::Reverse<i64>, SeriesKey), SeriesPoints>,
) -> anyhow::Result<FileRead> {
    let file = std::fs::File::open(path)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    stats.files += 1;
    let meta = builder.metadata().clone();
    let descr = meta.file_metadata().schema_descr();
    let leaf = |name: &str| {
        descr
            .columns()
            .iter()
            .position(|c| c.path().string() == name)
    };
    let (Some(metric_col), Some(resource_col), Some(ts_col)) =
        (leaf("metric"), leaf("resource_id"), leaf("timestamp"))
    else {
        anyhow::bail!("not a wasmeter archive file (no metric, resource_id or timestamp column)");
    };
    let prefix = sel
        .resource
        .as_ref()
        .map(|g| literal_prefix(g.glob().glob()));
    let groups: Vec<usize> = meta
        .row_groups()
        .iter()
        .enumerate()
        .filter(|(_, rg)| {
            may_hold(rg, metric_col, ts_col, sel)
                && prefix
                    .as_deref()
                    .is_none_or(|p| may_hold_prefix(rg, resource_col, p.as_bytes()))
        })
        .map(|(i, _)| i)
        .collect();
    stats.row_groups_total += meta.num_row_groups() as u64;
    if groups.is_empty() {
        return Ok(FileRead::Read);
    }
    let schema = builder.schema().clone();
    let Ok(value_idx) = schema.index_of(column) else {
        // A file of another policy whose statistics merely span the
        // metric is no error: only one that really holds it lacks the
        // method.
        let metric_idx = schema.index_of("metric")?;
        let holds = builder
            .with_row_groups(groups)
            .with_projection(ProjectionMask::roots(descr, [metric_idx]))
            .build()?
            .any(|b| {
                b.ok().is_some_and(|b| {
                    b.column(0)
                        .as_dictionary_opt::<Int32Type>()
                        .is_some_and(|d| {
                            let names = d.values().as_string::<i32>();
                            (0..names.len()).any(|i| names.value(i) == sel.metric)
                        })
                })
            });
        if !holds {
            return Ok(FileRead::Read);
        }
        let names: Vec<&str> = schema
            .fields()
            .iter()
            .skip(6)
            .map(|f| f.name().as_str())
            .collect();
        return Ok(FileRead::LacksMethod(names.join(", ")));
    };
    let roots: Vec<usize> = [
        "timestamp",
        "granularity",
        "metric",
        "resource_id",
        "unit",
        "attributes",
    ]
    .iter()
    .map(|n| schema.index_of(n))
    .collect::<Result<_, _>>()?;
    let mut projection = roots.clone();
    projection.push(value_idx);
    let mask = ProjectionMask::roots(descr, projection);
    stats.row_groups_read += groups.len() as u64;
    let reader = builder
        .with_row_groups(groups)
        .with_projection(mask)
        .build()?;
    for batch in reader {
        let batch = batch?;
        stats.rows_read += batch.num_rows() as u64;
        collect(&batch, sel, out)?;
    }
    Ok(FileRead::Read)
}

/// False when the row group's statistics prove it holds no row of `sel`.
fn may_hold(rg: &RowGroupMetaData, metric_col: usize, ts_col: usize, sel: &Selection) -> bool {
    if let Some(Statistics::ByteArray(s)) = rg.column(metric_col).statistics()
        && let (Some(min), Some(max)) = (s.min_opt(), s.max_opt())
    {
        let m = sel.metric.as_bytes();
        if m < min.data() || m > max.data() {
            return false;
        }
    }
    if let Some(Statistics::Int64(s)) = rg.column(ts_col).statistics()
        && let (Some(&min), Some(&max)) = (s.min_opt(), s.max_opt())
    {
        // Micros in the file.
        if sel.start.is_some_and(|st| max.saturating_mul(1000) < st)
            || sel.stop.is_some_and(|sp| min.saturating_mul(1000) >= sp)
        {
            return false;
        }
    }
    true
}

/// The part of a glob before its first special character: every match
/// starts with it.
fn literal_prefix(glob: &str) -> String {
    glob.chars()
        .take_while(|c| !matches!(c, '*' | '?' | '[' | '{' | '\\'))
        .collect()
}

/// False when the row group's `resource_id` statistics prove it holds no
/// id starting with `prefix`. Ids with a prefix form one contiguous range
/// in byte order, beginning at the prefix itself.
fn may_hold_prefix(rg: &RowGroupMetaData, col: usize, prefix: &[u8]) -> bool {
    if prefix.is_empty() {
        return true;
    }
    match rg.column(col).statistics() {
        Some(Statistics::ByteArray(s)) => match (s.min_opt(), s.max_opt()) {
            (Some(min), Some(max)) => {
                let (min, max) = (min.data(), max.data());
                !(max < prefix || (min > prefix && !min.starts_with(prefix)))
            }
            _ => true,
        },
        _ => true,
    }
}

/// Adds the rows of `batch` that `sel` picks to `out`. The projected
/// columns are, in order: timestamp, granularity, metric, resource_id,
/// unit, attributes, the method.
fn collect(
    batch: &RecordBatch,
    sel: &Selection,
    out: &mut BTreeMap<(std::cmp::Reverse<i64>, SeriesKey), SeriesPoints>,
) -> anyhow::Result<()> {
    let bad = |what: &str| anyhow::anyhow!("column {what} has an unexpected type");
    let ts = batch
        .column(0)
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| bad("timestamp"))?;
    let gran = batch
        .column(1)
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| bad("granularity"))?;
    let strings = |i: usize, name: &str| {
        batch
            .column(i)
            .as_dictionary_opt::<Int32Type>()
            .ok_or_else(|| bad(name))
    };
    let (metric, resource, unit) = (
        strings(2, "metric")?,
        strings(3, "resource_id")?,
        strings(4, "unit")?,
    );
    let attributes = batch
        .column(5)
        .as_map_opt()
        .ok_or_else(|| bad("attributes"))?;
    let value = batch
        .column(6)
        .as_primitive_opt::<Float64Type>()
        .ok_or_else(|| bad("method"))?;
    let metric_names = metric.values().as_string::<i32>();
    let resource_names = resource.values().as_string::<i32>();
    let unit_names = unit.values().as_string::<i32>();
    // One metric test per dictionary entry, not per row.
    let wanted: Vec<bool> = (0..metric_names.len())
        .map(|i| metric_names.value(i) == sel.metric)
        .collect();
    let resource_ok: Vec<bool> = (0..resource_names.len())
        .map(|i| {
            sel.resource
                .as_ref()
                .is_none_or(|g| g.is_match(resource_names.value(i)))
        })
        .collect();
    let keys = attributes.keys().as_string::<i32>();
    let values = attributes.values().as_string::<i32>();
    let offsets = attributes.value_offsets();
    let mut current: Option<(std::cmp::Reverse<i64>, SeriesKey)> = None;
    for row in 0..batch.num_rows() {
        let m = metric.keys().value(row) as usize;
        let r = resource.keys().value(row) as usize;
        if !wanted[m] || !resource_ok[r] {
            continue;
        }
        let t = ts.value(row).saturating_mul(1000);
        if sel.start.is_some_and(|s| t < s) || sel.stop.is_some_and(|s| t >= s) {
            continue;
        }
        if value.is_null(row) {
            continue;
        }
        let (a, b) = (offsets[row] as usize, offsets[row + 1] as usize);
        let g = gran.value(row) * 1_000_000_000;
        // Rows come sorted by series: build a key only when it changes.
        let same = current
            .as_ref()
            .is_some_and(|(cg, k): &(std::cmp::Reverse<i64>, SeriesKey)| {
                cg.0 == g
                    && k.resource_id == resource_names.value(r)
                    && k.attributes.len() == b - a
                    && k.attributes
                        .iter()
                        .zip(a..b)
                        .all(|((kk, kv), i)| kk == keys.value(i) && kv == values.value(i))
            });
        if !same {
            current = Some((
                std::cmp::Reverse(g),
                SeriesKey {
                    metric: sel.metric.clone(),
                    resource_id: resource_names.value(r).to_owned(),
                    attributes: (a..b)
                        .map(|i| (keys.value(i).to_owned(), values.value(i).to_owned()))
                        .collect(),
                },
            ));
        }
        let map_key = current.as_ref().expect("set above");
        // A lookup by reference per row; the key is cloned once per series.
        let entry = match out.get_mut(map_key) {
            Some(entry) => entry,
            None => out.entry(map_key.clone()).or_insert_with(|| SeriesPoints {
                key: map_key.1.clone(),
                unit: unit_names.value(unit.keys().value(row) as usize).to_owned(),
                granularity: g,
                calendar: None,
                timestamps: Vec::new(),
                values: Vec::new(),
            }),
        };
        entry.timestamps.push(t);
        entry.values.push(value.value(row));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::archive::ArchiveWriter;
    use crate::rollup::policy::{RawArchivePolicy, RawDuration, RawPolicyItem};
    use crate::rollup::{ArchivePolicy, ClosedRow, ClosedRows, SeriesInfo};

    fn hourly() -> ArchivePolicy {
        policy("hourly", &["mean", "max"])
    }

    fn policy(name: &str, methods: &[&str]) -> ArchivePolicy {
        RawArchivePolicy {
            name: name.into(),
            back_window: 0,
            definition: vec![RawPolicyItem {
                granularity: Some(RawDuration::Seconds(3600.0)),
                points: None,
                timespan: Some(RawDuration::Seconds(86_400.0 * 60.0)),
            }],
            aggregation_methods: Some(methods.iter().map(|m| (*m).to_owned()).collect()),
            precision_bits: None,
        }
        .build()
        .unwrap()
    }

    fn row(metric: &str, values: Vec<Option<f64>>) -> ClosedRow {
        ClosedRow {
            timestamp: T0,
            series: Arc::new(SeriesInfo {
                metric: metric.into(),
                resource_id: "r".into(),
                unit: "1".into(),
                attributes: vec![],
            }),
            values,
        }
    }

    /// A file of another policy whose metric range merely spans the metric
    /// does not make its method "missing".
    #[test]
    fn another_policys_file_spanning_the_metric_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let policies: Arc<[ArchivePolicy]> = vec![
            policy("pcts", &["mean", "95pct"]),
            policy("plain", &["mean"]),
        ]
        .into();
        let mut w = ArchiveWriter::new(dir.path(), policies, BTreeMap::new());
        w.write(
            0,
            0,
            &ClosedRows::from(vec![row("memory.used", vec![Some(1.0), Some(2.0)])]),
        )
        .unwrap();
        w.write(
            1,
            0,
            &ClosedRows::from(vec![
                row("load.1m", vec![Some(3.0)]),
                row("wasmeter.x", vec![Some(4.0)]),
            ]),
        )
        .unwrap();
        let sel = Selection {
            metric: "memory.used".into(),
            resource: None,
            granularity: None,
            start: None,
            stop: None,
        };
        let (got, _) = read(dir.path(), &sel, AggregationMethod::parse("95pct").unwrap()).unwrap();
        assert_eq!(got[0].values, [2.0]);
        // load.1m's own policy lacks it: that is the error.
        let sel = Selection {
            metric: "load.1m".into(),
            ..sel
        };
        let e = read(dir.path(), &sel, AggregationMethod::parse("95pct").unwrap()).unwrap_err();
        assert!(
            matches!(e, ReadError::MissingMethod { ref available, .. } if available == "mean"),
            "{e}"
        );
    }

    /// 2024-01-01T00:00:00Z, ns.
    const T0: i64 = 1_704_067_200_000_000_000;
    const HOUR: i64 = 3_600_000_000_000;

    /// 1,000 series × 30 days of hourly rows, in row groups of 4,096 rows:
    /// a read of one series decodes only the row groups that hold it.
    #[test]
    fn one_series_over_30_days_of_1000_touches_only_its_row_groups() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ArchiveWriter::new(dir.path(), vec![hourly()].into(), BTreeMap::new())
            .with_row_group_rows(4096);
        let series: Vec<Arc<SeriesInfo>> = (0..1000)
            .map(|i| {
                Arc::new(SeriesInfo {
                    metric: "cpu.util".into(),
                    resource_id: format!("host-{i:04}"),
                    unit: "%".into(),
                    attributes: vec![],
                })
            })
            .collect();
        for day in 0..30 {
            let mut rows = Vec::with_capacity(24_000);
            for (i, s) in series.iter().enumerate() {
                for h in 0..24 {
                    let t = T0 + (day * 24 + h) * HOUR;
                    let v = (i as f64) + (day * 24 + h) as f64 / 1000.0;
                    rows.push(ClosedRow {
                        timestamp: t,
                        series: s.clone(),
                        values: vec![Some(v), Some(v + 0.5)],
                    });
                }
            }
            w.write(0, 0, &ClosedRows::from(rows)).unwrap();
        }
        let sel = Selection {
            metric: "cpu.util".into(),
            resource: Some(globset::Glob::new("host-0421").unwrap().compile_matcher()),
            granularity: None,
            start: None,
            stop: None,
        };
        let (got, stats) =
            read(dir.path(), &sel, AggregationMethod::parse("max").unwrap()).unwrap();
        assert_eq!(got.len(), 1);
        let s = &got[0];
        assert_eq!(s.key.resource_id, "host-0421");
        assert_eq!(s.timestamps.len(), 720);
        assert_eq!(s.timestamps[0], T0);
        assert_eq!(s.values[0], 421.5);
        assert_eq!(s.values[719], 421.0 + 719.0 / 1000.0 + 0.5);
        // 30 files of 24,000 rows: 6 row groups each (5 × 4,096 + 3,520).
        assert_eq!(stats.files, 30);
        assert_eq!(stats.row_groups_total, 180);
        // Rows are sorted by resource: host-0421's 24 rows a day are rows
        // 10,104..10,128 of its file, all in the third row group (8,192 to
        // 12,287), so one full row group a day is decoded.
        assert_eq!(stats.row_groups_read, 30, "{stats:?}");
        assert_eq!(stats.rows_read, 30 * 4096, "{stats:?}");

        // A time range prunes folders: 3 days read, not 30.
        let sel = Selection {
            start: Some(T0 + 10 * 24 * HOUR + 5 * HOUR),
            stop: Some(T0 + 13 * 24 * HOUR),
            ..sel
        };
        let (got, stats) =
            read(dir.path(), &sel, AggregationMethod::parse("mean").unwrap()).unwrap();
        assert_eq!(stats.files, 3);
        assert_eq!(got[0].timestamps.len(), 3 * 24 - 5);
        assert_eq!(got[0].timestamps[0], T0 + 245 * HOUR);
        assert_eq!(got[0].values[0], 421.0 + 245.0 / 1000.0);
    }

    #[test]
    fn a_method_the_policy_lacks_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ArchiveWriter::new(dir.path(), vec![hourly()].into(), BTreeMap::new());
        let s = Arc::new(SeriesInfo {
            metric: "m".into(),
            resource_id: "r".into(),
            unit: "1".into(),
            attributes: vec![("k".into(), "v".into())],
        });
        w.write(
            0,
            0,
            &ClosedRows::from(vec![ClosedRow {
                timestamp: T0,
                series: s,
                values: vec![Some(1.0), Some(2.0)],
            }]),
        )
        .unwrap();
        let sel = Selection {
            metric: "m".into(),
            resource: None,
            granularity: None,
            start: None,
            stop: None,
        };
        let e = read(dir.path(), &sel, AggregationMethod::parse("95pct").unwrap()).unwrap_err();
        assert!(
            format!("{e:#}")
                .contains("the archive policy of m has no method column pct95 (it has: mean, max)"),
            "{e:#}"
        );
        let (got, _) = read(dir.path(), &sel, AggregationMethod::parse("max").unwrap()).unwrap();
        assert_eq!(got[0].key.label(), "m/r{k=v}");
        assert_eq!(got[0].values, [2.0]);
    }
}

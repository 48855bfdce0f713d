//! Gnocchi's measures read (`GET /v1/metric/<id>/measures`) over the
//! archive. Semantics: reference §1.5 — `start` is floored to the
//! granularity, `stop` is exclusive, every granularity is returned coarsest
//! first unless one is asked for, and `resample` re-applies the method to
//! the already aggregated points (so a resampled `count` counts buckets).

use std::path::Path;

use super::reader::{self, ScanStats, Selection, SeriesPoints};
use super::time::CalendarGroup;
use crate::rollup::{AggregationMethod, BucketScratch, aggregate, floor};

/// A measures query.
#[derive(Debug, Clone)]
pub struct MeasuresQuery {
    /// The metric, exactly.
    pub metric: String,
    /// A glob over resource ids; `None` takes every series of the metric.
    pub resource: Option<globset::GlobMatcher>,
    /// The aggregation method (Gnocchi's default: `mean`).
    pub aggregation: AggregationMethod,
    /// Only this granularity, ns.
    pub granularity: Option<i64>,
    /// Start (ns since the Unix epoch, UTC), floored to each granularity.
    pub start: Option<i64>,
    /// Stop (ns), exclusive on bucket timestamps.
    pub stop: Option<i64>,
    /// Re-aggregate the points with the same method.
    pub resample: Option<Resample>,
}

/// How a measures read re-aggregates its points (Gnocchi's `resample`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resample {
    /// Into buckets of this width, ns, floored from the Unix epoch; a
    /// multiple of the granularity.
    Width(i64),
    /// Into calendar groups (months, weeks…), in UTC.
    Calendar(CalendarGroup),
}

/// Why a measures query failed.
#[derive(Debug, thiserror::Error)]
pub enum MeasuresError {
    /// `--resample` without `--granularity` (Gnocchi refuses it too).
    #[error("--resample needs --granularity: the granularity to resample from")]
    ResampleNeedsGranularity,
    /// A resample that is not a multiple of the granularity.
    #[error("--resample {resample_s}s is not a multiple of the granularity {granularity_s}s")]
    ResampleNotMultiple {
        /// Seconds.
        resample_s: f64,
        /// Seconds.
        granularity_s: f64,
    },
    /// `rate:` methods cannot be resampled meaningfully (Gnocchi's issue
    /// #1009 gives negative values).
    #[error("{0} cannot be resampled: a rate of rates is meaningless (Gnocchi issue #1009)")]
    ResampleRate(String),
    /// The metric has no point in the archive.
    #[error("no measures of metric {metric:?}{resource} in the archive{granularity}")]
    NotFound {
        /// The metric asked for.
        metric: String,
        /// ` for resource "…"`, or "".
        resource: String,
        /// ` at granularity …`, or "".
        granularity: String,
    },
    /// Reading the archive failed, or the method is missing.
    #[error(transparent)]
    Read(#[from] reader::ReadError),
}

/// Runs `q` over the archive at `root`: one [`SeriesPoints`] per series and
/// granularity, coarsest granularity first, then by series.
///
/// # Errors
/// [`MeasuresError`]; `NotFound` when nothing matches.
pub fn measures(
    root: &Path,
    q: &MeasuresQuery,
) -> Result<(Vec<SeriesPoints>, ScanStats), MeasuresError> {
    if q.resample.is_some() {
        let Some(g) = q.granularity else {
            return Err(MeasuresError::ResampleNeedsGranularity);
        };
        if q.aggregation.rate {
            return Err(MeasuresError::ResampleRate(q.aggregation.to_string()));
        }
        if let Some(Resample::Width(r)) = q.resample
            && r % g != 0
        {
            return Err(MeasuresError::ResampleNotMultiple {
                resample_s: r as f64 / 1e9,
                granularity_s: g as f64 / 1e9,
            });
        }
    }
    // Read from the earliest floor of any granularity; each series is then
    // cut at its own floored start.
    let read_start = match (q.start, q.granularity) {
        (Some(s), Some(g)) => Some(floor(s, g)),
        (Some(s), None) => Some(reader::earliest_floor(root, s)?),
        (None, _) => None,
    };
    let sel = Selection {
        metric: q.metric.clone(),
        resource: q.resource.clone(),
        granularity: q.granularity,
        start: read_start,
        stop: q.stop,
    };
    let (mut series, stats) = reader::read(root, &sel, q.aggregation)?;
    for s in &mut series {
        if let Some(start) = q.start {
            let from = floor(start, s.granularity);
            let cut = s.timestamps.partition_point(|&t| t < from);
            s.timestamps.drain(..cut);
            s.values.drain(..cut);
        }
        if let Some(r) = q.resample {
            resample(s, r, q.aggregation);
        }
    }
    series.retain(|s| !s.timestamps.is_empty());
    if series.is_empty() {
        return Err(MeasuresError::NotFound {
            metric: q.metric.clone(),
            resource: q.resource.as_ref().map_or(String::new(), |g| {
                format!(" for resource {:?}", g.glob().glob())
            }),
            granularity: q.granularity.map_or(String::new(), |g| {
                format!(" at granularity {}s", g as f64 / 1e9)
            }),
        });
    }
    Ok((series, stats))
}

/// Re-applies `method` to the points of `s` in buckets of `by`, in place:
/// of `width` ns floored from the Unix epoch (`s.granularity` becomes
/// `width`), or calendar groups (`s.calendar` is set, the granularity
/// stays the points' own).
pub fn resample(s: &mut SeriesPoints, by: Resample, method: AggregationMethod) {
    let bucket_of = |t: i64| match by {
        Resample::Width(width) => floor(t, width),
        Resample::Calendar(group) => group.floor(t),
    };
    let mut timestamps = Vec::new();
    let mut values = Vec::new();
    let mut scratch = BucketScratch::default();
    let mut i = 0;
    while i < s.timestamps.len() {
        let bucket = bucket_of(s.timestamps[i]);
        let mut j = i;
        while j < s.timestamps.len() && bucket_of(s.timestamps[j]) == bucket {
            j += 1;
        }
        scratch.reset();
        if let Some(v) = aggregate(method.base, &s.values[i..j], &mut scratch) {
            timestamps.push(bucket);
            values.push(v);
        }
        i = j;
    }
    s.timestamps = timestamps;
    s.values = values;
    match by {
        Resample::Width(width) => s.granularity = width,
        Resample::Calendar(group) => s.calendar = Some(group),
    }
}

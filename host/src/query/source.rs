//! The archive as the aggregates evaluator's [`Source`]: `(metric NAME
//! AGG)` is every series of metric NAME (optionally only the resources a
//! glob picks), read once per (NAME, AGG) over the query's time range.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::aggregates::{Points, QueryError, Source};
use super::reader::{self, Selection, SeriesPoints};
use crate::rollup::AggregationMethod;

/// Series of the archive at `root`, read on demand.
pub struct ArchiveSource {
    root: PathBuf,
    resource: Option<globset::GlobMatcher>,
    start: Option<i64>,
    stop: Option<i64>,
    cache: RefCell<HashMap<(String, String), Vec<SeriesPoints>>>,
}

impl ArchiveSource {
    /// Series under `root`, of the resources `resource` matches (all when
    /// `None`), with buckets from `start` (floored per granularity) to
    /// `stop` (exclusive), ns since the Unix epoch, UTC.
    pub fn new(
        root: &Path,
        resource: Option<globset::GlobMatcher>,
        start: Option<i64>,
        stop: Option<i64>,
    ) -> Self {
        ArchiveSource {
            root: root.to_path_buf(),
            resource,
            start,
            stop,
            cache: RefCell::new(HashMap::new()),
        }
    }

    /// Runs `f` on the series of (name, aggregation), reading them first.
    fn with<R>(
        &self,
        name: &str,
        aggregation: &str,
        f: impl FnOnce(&[SeriesPoints]) -> R,
    ) -> Result<R, QueryError> {
        let key = (name.to_owned(), aggregation.to_owned());
        if let Some(series) = self.cache.borrow().get(&key) {
            return Ok(f(series));
        }
        let method = AggregationMethod::parse(aggregation).ok_or_else(|| {
            QueryError::UnknownAggregation {
                name: name.to_owned(),
                aggregation: aggregation.to_owned(),
            }
        })?;
        let start = match self.start {
            Some(s) => Some(
                reader::earliest_floor(&self.root, s).map_err(|e| QueryError::Source(e.into()))?,
            ),
            None => None,
        };
        let sel = Selection {
            metric: name.to_owned(),
            resource: self.resource.clone(),
            granularity: None,
            start,
            stop: self.stop,
        };
        let series = match reader::read(&self.root, &sel, method) {
            Ok((series, _)) => series,
            Err(reader::ReadError::MissingMethod { .. }) => {
                return Err(QueryError::UnknownAggregation {
                    name: name.to_owned(),
                    aggregation: aggregation.to_owned(),
                });
            }
            Err(e) => return Err(QueryError::Source(e.into())),
        };
        if series.is_empty() {
            return Err(QueryError::UnknownMetric {
                name: name.to_owned(),
            });
        }
        let out = f(&series);
        self.cache.borrow_mut().insert(key, series);
        Ok(out)
    }
}

impl Source for ArchiveSource {
    fn granularities(&self, name: &str, aggregation: &str) -> Result<Vec<i64>, QueryError> {
        self.with(name, aggregation, |series| {
            // Those every series of the metric has.
            let mut per_series: HashMap<&reader::SeriesKey, BTreeSet<i64>> = HashMap::new();
            for s in series {
                per_series.entry(&s.key).or_default().insert(s.granularity);
            }
            let mut sets = per_series.into_values();
            let first = sets.next().unwrap_or_default();
            let common = sets.fold(first, |acc, s| acc.intersection(&s).copied().collect());
            common.into_iter().collect()
        })
    }

    fn series(
        &self,
        name: &str,
        aggregation: &str,
        granularity: i64,
        start: Option<i64>,
        stop: Option<i64>,
    ) -> Result<Vec<(String, Points)>, QueryError> {
        self.with(name, aggregation, |series| {
            series
                .iter()
                .filter(|s| s.granularity == granularity)
                .map(|s| {
                    let keep: Vec<usize> = (0..s.timestamps.len())
                        .filter(|&i| {
                            let t = s.timestamps[i];
                            start.is_none_or(|st| t >= st) && stop.is_none_or(|sp| t < sp)
                        })
                        .collect();
                    (
                        s.key.label(),
                        Points {
                            timestamps: keep.iter().map(|&i| s.timestamps[i]).collect(),
                            values: keep.iter().map(|&i| s.values[i]).collect(),
                        },
                    )
                })
                .collect()
        })
    }
}

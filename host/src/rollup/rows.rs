//! Closed aggregate rows, stored by column.
//!
//! The engine emits one row per (series, granularity, closed bucket): a
//! daily close of 10,000 series at 1 min + 1 h + 1 day is 14.65 million
//! rows at once. [`ClosedRows`] keeps them in flat buffers (no allocation
//! and no reference count per row) that [`super::RollupEngine::recycle`]
//! hands back for the next close.

use std::sync::Arc;

use super::engine::SeriesInfo;

/// The bit pattern that stands for "no point" in [`ClosedRows`]' value
/// buffer: a signalling NaN, which no arithmetic produces (it quiets
/// NaNs). A value with these very bits (only `first`/`last` of such an
/// input can give one) is stored as the canonical quiet NaN instead.
const NO_POINT: u64 = 0x7ff0_0000_0000_0bad;

/// Encodes `v` for the value buffer.
fn encode(v: Option<f64>) -> f64 {
    match v {
        None => f64::from_bits(NO_POINT),
        Some(x) if x.to_bits() == NO_POINT => f64::NAN,
        Some(x) => x,
    }
}

/// Decodes a value of the buffer.
fn decode(v: f64) -> Option<f64> {
    (v.to_bits() != NO_POINT).then_some(v)
}

/// A bucket that was closed and must be written, once (owned form: what
/// alarms keep and what [`crate::rollup::RollupEngine::open_rows`] gives).
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedRow {
    /// Bucket start, ns since the Unix epoch, UTC.
    pub timestamp: i64,
    /// The series.
    pub series: Arc<SeriesInfo>,
    /// One value per method of the policy (policy order); `None` where
    /// Gnocchi has no point (`std` of one value, `rate:` without a
    /// difference).
    pub values: Vec<Option<f64>>,
}

/// Closed rows of one (policy, granularity), in closing order, by column.
///
/// Row `i` has bucket start [`ClosedRows::timestamp`]`(i)`, series
/// [`ClosedRows::series`]`(i)` and one value per method of the policy
/// ([`ClosedRows::value`]`(i, m)`, policy order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClosedRows {
    /// Values per row (the policy's method count).
    width: usize,
    /// Bucket starts, ns since the Unix epoch, UTC.
    timestamps: Vec<i64>,
    /// Per row: index into `series`.
    series_index: Vec<u32>,
    /// The rows' series, once per run of consecutive rows of one series.
    series: Vec<Arc<SeriesInfo>>,
    /// Row-major, `width` per row; "no point" encoded as `NO_POINT`.
    values: Vec<f64>,
}

/// One row of a [`ClosedRows`], borrowed.
#[derive(Debug, Clone, Copy)]
pub struct ClosedRowRef<'a> {
    /// Bucket start, ns since the Unix epoch, UTC.
    pub timestamp: i64,
    /// The series.
    pub series: &'a Arc<SeriesInfo>,
    values: &'a [f64],
}

impl ClosedRowRef<'_> {
    /// The value of method `m` (policy order); `None` where Gnocchi has no
    /// point, or past the policy's methods.
    pub fn value(&self, m: usize) -> Option<f64> {
        self.values.get(m).copied().and_then(decode)
    }

    /// All values, policy order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = Option<f64>> + '_ {
        self.values.iter().map(|&v| decode(v))
    }

    /// The owned row.
    pub fn to_owned(&self) -> ClosedRow {
        ClosedRow {
            timestamp: self.timestamp,
            series: self.series.clone(),
            values: self.values().collect(),
        }
    }
}

impl ClosedRows {
    /// No rows, `width` values per row.
    pub fn new(width: usize) -> Self {
        ClosedRows {
            width,
            ..Default::default()
        }
    }

    /// Values per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// Appends a row. The first row of an empty, width-0 set decides the
    /// width.
    ///
    /// # Panics
    /// When `values` has another length than the rows' width (the rows
    /// are left as they were).
    pub fn push(
        &mut self,
        timestamp: i64,
        series: &Arc<SeriesInfo>,
        values: impl IntoIterator<Item = Option<f64>>,
    ) {
        let before = self.values.len();
        self.values.extend(values.into_iter().map(encode));
        if self.width == 0 && self.timestamps.is_empty() {
            self.width = self.values.len();
        }
        let got = self.values.len() - before;
        if got != self.width {
            // Leave the rows as they were before panicking.
            self.values.truncate(before);
            panic!(
                "a closed row has one value per method: {got} values, {} methods",
                self.width
            );
        }
        if self
            .series
            .last()
            .is_none_or(|last| !Arc::ptr_eq(last, series))
        {
            self.series.push(series.clone());
        }
        debug_assert!(self.series.len() <= u32::MAX as usize);
        self.series_index.push((self.series.len() - 1) as u32);
        self.timestamps.push(timestamp);
    }

    /// Bucket start of row `i`, ns since the Unix epoch, UTC.
    pub fn timestamp(&self, i: usize) -> i64 {
        self.timestamps[i]
    }

    /// Series of row `i`.
    pub fn series(&self, i: usize) -> &Arc<SeriesInfo> {
        &self.series[self.series_index[i] as usize]
    }

    /// Value of method `m` in row `i`; `None` where Gnocchi has no point.
    ///
    /// # Panics
    /// When `m` is not below [`ClosedRows::width`] or `i` not below
    /// [`ClosedRows::len`].
    pub fn value(&self, i: usize, m: usize) -> Option<f64> {
        assert!(m < self.width, "method {m} of a {}-method row", self.width);
        decode(self.values[i * self.width + m])
    }

    /// Row `i`, borrowed.
    pub fn row(&self, i: usize) -> ClosedRowRef<'_> {
        ClosedRowRef {
            timestamp: self.timestamps[i],
            series: self.series(i),
            values: &self.values[i * self.width..(i + 1) * self.width],
        }
    }

    /// The rows in closing order, borrowed.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = ClosedRowRef<'_>> + '_ {
        (0..self.len()).map(|i| self.row(i))
    }

    /// The runs of consecutive rows of one series, in closing order: the
    /// series and its rows' index range.
    pub fn runs(&self) -> impl Iterator<Item = (&Arc<SeriesInfo>, std::ops::Range<usize>)> + '_ {
        let mut start = 0;
        std::iter::from_fn(move || {
            let first = *self.series_index.get(start)?;
            let len = self.series_index[start..].partition_point(|&s| s == first);
            let run = start..start + len;
            start += len;
            Some((&self.series[first as usize], run))
        })
    }

    /// The rows in closing order, owned.
    pub fn to_rows(&self) -> Vec<ClosedRow> {
        self.iter().map(|r| r.to_owned()).collect()
    }

    /// Removes every row, keeping the buffers, shrunk to at most
    /// `max_rows` rows' worth.
    pub(super) fn clear_keeping(&mut self, max_rows: usize) {
        self.timestamps.clear();
        self.series_index.clear();
        self.series.clear();
        self.values.clear();
        self.timestamps.shrink_to(max_rows);
        self.series_index.shrink_to(max_rows);
        self.series.shrink_to(max_rows);
        self.values.shrink_to(max_rows.saturating_mul(self.width));
    }

    /// Rows the buffers have room for.
    pub(super) fn capacity(&self) -> usize {
        self.timestamps.capacity()
    }

    /// Bytes the buffers hold (capacity, not length).
    pub(super) fn capacity_bytes(&self) -> usize {
        self.timestamps.capacity() * size_of::<i64>()
            + self.series_index.capacity() * size_of::<u32>()
            + self.series.capacity() * size_of::<Arc<SeriesInfo>>()
            + self.values.capacity() * size_of::<f64>()
    }

    /// Reserves room for `rows` more rows.
    pub(super) fn reserve(&mut self, rows: usize) {
        self.timestamps.reserve(rows);
        self.series_index.reserve(rows);
        self.values.reserve(rows.saturating_mul(self.width));
    }
}

/// # Panics
/// When the rows do not all have as many values as the first.
impl From<Vec<ClosedRow>> for ClosedRows {
    fn from(rows: Vec<ClosedRow>) -> Self {
        let mut out = ClosedRows::new(rows.first().map_or(0, |r| r.values.len()));
        for r in rows {
            out.push(r.timestamp, &r.series, r.values);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(resource: &str) -> Arc<SeriesInfo> {
        Arc::new(SeriesInfo {
            metric: "m".into(),
            resource_id: resource.into(),
            unit: "1".into(),
            attributes: vec![],
        })
    }

    #[test]
    fn rows_round_trip_with_no_point_and_nan_payloads() {
        let (a, b) = (info("a"), info("b"));
        let odd_nan = f64::from_bits(NO_POINT);
        let mut rows = ClosedRows::new(3);
        rows.push(10, &a, [Some(1.5), None, Some(-0.0)]);
        rows.push(20, &a, [Some(f64::INFINITY), Some(2.0), None]);
        rows.push(10, &b, [Some(odd_nan), Some(f64::NAN), Some(3.0)]);
        rows.push(30, &a, [None, None, None]);
        assert_eq!(rows.len(), 4);
        // One series entry per run: a, b, a.
        assert_eq!(rows.series.len(), 3);
        let runs: Vec<(&str, std::ops::Range<usize>)> = rows
            .runs()
            .map(|(s, r)| (s.resource_id.as_str(), r))
            .collect();
        assert_eq!(runs, [("a", 0..2), ("b", 2..3), ("a", 3..4)]);
        assert_eq!(ClosedRows::new(2).runs().count(), 0);
        assert_eq!(rows.series(1).resource_id, "a");
        assert_eq!(rows.series(2).resource_id, "b");
        assert_eq!(rows.timestamp(3), 30);
        assert_eq!(rows.value(0, 0), Some(1.5));
        assert_eq!(rows.value(0, 1), None);
        assert_eq!(
            rows.value(0, 2).map(f64::to_bits),
            Some((-0.0f64).to_bits())
        );
        assert_eq!(rows.value(1, 0), Some(f64::INFINITY));
        // An input with the sentinel's bits comes back as a NaN, not as
        // "no point".
        assert!(rows.value(2, 0).unwrap().is_nan());
        assert!(rows.value(2, 1).unwrap().is_nan());
        assert_eq!(rows.row(3).values().collect::<Vec<_>>(), [None, None, None]);
        assert_eq!(rows.row(1).value(7), None);
        let owned = rows.to_rows();
        assert_eq!(owned[1].values, [Some(f64::INFINITY), Some(2.0), None]);
        assert!(Arc::ptr_eq(&owned[2].series, &b));
        // Owned rows back to columns: the same rows.
        let again = ClosedRows::from(owned);
        assert_eq!(again.len(), 4);
        assert_eq!(again.value(1, 1), Some(2.0));
        assert_eq!(again.value(3, 2), None);
    }

    #[test]
    fn a_row_of_another_width_is_refused_and_leaves_the_rows_intact() {
        let mut rows = ClosedRows::new(2);
        rows.push(0, &info("a"), [Some(1.0), Some(2.0)]);
        let bad = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rows.push(1, &info("a"), [Some(3.0)]);
        }));
        assert!(bad.is_err());
        rows.push(2, &info("a"), [Some(4.0), None]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows.value(1, 0), Some(4.0));
        assert_eq!(rows.value(1, 1), None);
        let past = std::panic::catch_unwind(|| rows.value(0, 2));
        assert!(past.is_err(), "method 2 of a 2-method row");
    }
}

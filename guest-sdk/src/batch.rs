//! Building and reading columnar [`Batch`]es.

use std::collections::HashMap;

use crate::{Batch, SampleType, Series};

/// One sample of a [`Batch`], borrowed: see [`Batch::samples`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    /// The sample's series.
    pub series: &'a Series,
    /// Index of the series in [`Batch::series`].
    pub series_index: u32,
    /// Event time, ns since the Unix epoch, UTC.
    pub timestamp: i64,
    /// The value; NaN and ±Inf are legal.
    pub value: f64,
}

impl Batch {
    /// A batch with no series and no samples.
    pub fn empty() -> Self {
        Batch {
            series: Vec::new(),
            series_index: Vec::new(),
            timestamps: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when the batch holds no sample.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Iterates over the samples in batch order.
    ///
    /// # Panics
    /// When a `series_index` entry is out of range (the host never hands a
    /// plugin such a batch).
    pub fn samples(&self) -> impl ExactSizeIterator<Item = Sample<'_>> + '_ {
        self.series_index
            .iter()
            .zip(&self.timestamps)
            .zip(&self.values)
            .map(|((&i, &timestamp), &value)| Sample {
                series: &self.series[i as usize],
                series_index: i,
                timestamp,
                value,
            })
    }
}

/// Builds a [`Batch`]: register each series once, then push samples by
/// series index.
///
/// ```
/// use wasmeter_guest::{BatchBuilder, SampleType};
///
/// let mut b = BatchBuilder::new();
/// let rx = b.series("network.incoming.bytes", "eth0", "B", SampleType::Cumulative, &[]);
/// b.push(rx, 1_700_000_000_000_000_000, 1024.0);
/// b.push(rx, 1_700_000_010_000_000_000, 4096.0);
/// // Registering the same series again returns the same index.
/// assert_eq!(b.series("network.incoming.bytes", "eth0", "B", SampleType::Cumulative, &[]), rx);
/// let batch = b.finish();
/// assert_eq!(batch.series.len(), 1);
/// assert_eq!(batch.values, vec![1024.0, 4096.0]);
/// ```
#[derive(Debug, Default)]
pub struct BatchBuilder {
    batch: Batch,
    index: HashMap<SeriesKey, u32>,
}

/// A series' identity: metric, resource and sorted attributes.
type SeriesKey = (String, String, Vec<(String, String)>);

impl Default for Batch {
    fn default() -> Self {
        Batch::empty()
    }
}

impl BatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty builder with room for `samples` samples.
    pub fn with_capacity(samples: usize) -> Self {
        let mut b = Self::default();
        b.batch.series_index.reserve(samples);
        b.batch.timestamps.reserve(samples);
        b.batch.values.reserve(samples);
        b
    }

    /// Registers a series and returns its index; a series with the same
    /// metric, resource and attributes returns the index it already has
    /// (its unit and type are those of the first registration).
    /// Attributes are sorted by key.
    pub fn series(
        &mut self,
        metric: &str,
        resource_id: &str,
        unit: &str,
        sample_type: SampleType,
        attributes: &[(&str, &str)],
    ) -> u32 {
        let mut attrs: Vec<(String, String)> = attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        attrs.sort();
        self.add_series(Series {
            metric: metric.to_owned(),
            resource_id: resource_id.to_owned(),
            unit: unit.to_owned(),
            type_: sample_type,
            attributes: attrs,
        })
    }

    /// Registers an owned [`Series`] (attributes are sorted by key) and
    /// returns its index, as [`BatchBuilder::series`].
    pub fn add_series(&mut self, mut series: Series) -> u32 {
        series.attributes.sort();
        let key = (
            series.metric.clone(),
            series.resource_id.clone(),
            series.attributes.clone(),
        );
        if let Some(&i) = self.index.get(&key) {
            return i;
        }
        let i = u32::try_from(self.batch.series.len()).expect("more than u32::MAX series");
        self.batch.series.push(series);
        self.index.insert(key, i);
        i
    }

    /// Appends one sample of series `series` (an index returned by
    /// [`BatchBuilder::series`]) at `timestamp_ns` (ns since the Unix epoch,
    /// UTC).
    pub fn push(&mut self, series: u32, timestamp_ns: i64, value: f64) {
        debug_assert!((series as usize) < self.batch.series.len());
        self.batch.series_index.push(series);
        self.batch.timestamps.push(timestamp_ns);
        self.batch.values.push(value);
    }

    /// Number of samples pushed so far.
    pub fn len(&self) -> usize {
        self.batch.values.len()
    }

    /// True when no sample was pushed.
    pub fn is_empty(&self) -> bool {
        self.batch.values.is_empty()
    }

    /// The finished batch.
    pub fn finish(self) -> Batch {
        self.batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_sorted_and_series_deduplicated() {
        let mut b = BatchBuilder::new();
        let a = b.series("m", "r", "1", SampleType::Gauge, &[("z", "1"), ("a", "2")]);
        let c = b.series("m", "r", "1", SampleType::Gauge, &[("a", "2"), ("z", "1")]);
        let d = b.series("m", "r2", "1", SampleType::Gauge, &[]);
        assert_eq!((a, c, d), (0, 0, 1));
        b.push(a, 10, 1.5);
        b.push(d, 20, f64::NAN);
        let batch = b.finish();
        assert_eq!(
            batch.series[0].attributes,
            vec![("a".into(), "2".into()), ("z".into(), "1".into())]
        );
        let samples: Vec<_> = batch
            .samples()
            .map(|s| (s.series_index, s.timestamp))
            .collect();
        assert_eq!(samples, vec![(0, 10), (1, 20)]);
        assert!(batch.samples().nth(1).unwrap().value.is_nan());
    }
}

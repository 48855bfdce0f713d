//! Sample batches: the Arrow schema samples flow in between stages, and the
//! lossless conversion between an Arrow [`RecordBatch`] and the columnar WIT
//! batch that crosses the plugin boundary.
//!
//! Consumes: WIT batches returned by plugins, Arrow batches from decoders and
//! importers. Emits: Arrow batches (to stages, rollups, dead-letter files)
//! and WIT batches (to plugins).
//!
//! The Arrow schema ([`schema`]), one row per sample:
//!
//! ```text
//! column       Arrow type                      nullable  notes
//! timestamp    Timestamp(ns, "UTC")            no        event time
//! metric       Dictionary<Int32, Utf8>         no        meter name
//! resource_id  Dictionary<Int32, Utf8>         no        what is measured
//! unit         Dictionary<Int32, Utf8>         no        UCUM-style unit
//! type         Dictionary<Int8, Utf8>          no        gauge | delta | cumulative
//! attributes   Map<Utf8, Utf8>                 no        labels, sorted by key
//! value        Float64                         no        NaN and ±Inf legal
//! ```
//!
//! The WIT batch (`wasmeter:plugin/types.batch`) stores each distinct series
//! once and refers to it by index from every sample:
//!
//! ```text
//! series:       [ (metric, resource_id, unit, type, attributes), … ]
//! series_index: [ u32; n ]   timestamps: [ s64; n ]   values: [ f64; n ]
//! ```
//!
//! Conversions keep row order, timestamps and value bits exactly (NaN
//! payloads and -0.0 included). WIT → Arrow moves the timestamp and value
//! vectors into Arrow buffers without copying; the string columns are
//! dictionary-encoded, so per sample only integer keys are written.
//!
//! Between stages a batch travels as [`Samples`]: the Arrow batch plus, when
//! it was made from a WIT batch, that batch's series table and series
//! index. Arrow → WIT then needs no per-row series lookup, for the next
//! plugin and for the rollup engine alike.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, OnceLock};

use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use rustc_hash::FxBuildHasher;
use smallvec::SmallVec;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, DictionaryArray, Float64Array, Int8Array, Int32Array,
    MapArray, MapBuilder, MapFieldNames, RecordBatch, StringArray, StringBuilder, StructArray,
    TimestampNanosecondArray, UInt32Array,
};
use arrow::datatypes::{
    ArrowDictionaryKeyType, ArrowNativeType, DataType, Field, Int8Type, Int32Type, Schema,
    SchemaRef, TimeUnit,
};
use arrow::error::ArrowError;

use crate::bindings::{SampleType, WitBatch, WitSeries};

/// Column names of the sample schema, in schema order.
pub mod columns {
    /// Event time, `Timestamp(ns, "UTC")`.
    pub const TIMESTAMP: &str = "timestamp";
    /// Meter name, `Dictionary<Int32, Utf8>`.
    pub const METRIC: &str = "metric";
    /// Resource, `Dictionary<Int32, Utf8>`.
    pub const RESOURCE_ID: &str = "resource_id";
    /// Unit, `Dictionary<Int32, Utf8>`.
    pub const UNIT: &str = "unit";
    /// Sample type, `Dictionary<Int8, Utf8>`: `gauge`, `delta`, `cumulative`.
    pub const TYPE: &str = "type";
    /// Labels, `Map<Utf8, Utf8>`, sorted by key.
    pub const ATTRIBUTES: &str = "attributes";
    /// The value, `Float64`.
    pub const VALUE: &str = "value";
}

/// Why a batch cannot be converted. Every variant says which row or series
/// is at fault.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum BatchError {
    /// The per-sample columns of a WIT batch have different lengths.
    #[error(
        "columns of unequal length: series-index has {series_index}, timestamps {timestamps}, values {values}"
    )]
    LengthMismatch {
        /// Length of `series-index`.
        series_index: usize,
        /// Length of `timestamps`.
        timestamps: usize,
        /// Length of `values`.
        values: usize,
    },
    /// A sample refers to a series that is not in the series table.
    #[error("sample {row}: series index {index} out of range (the batch has {series} series)")]
    SeriesIndexOutOfRange {
        /// The sample's row.
        row: usize,
        /// The bad index.
        index: u32,
        /// Number of series in the table.
        series: usize,
    },
    /// A filter mask is not as long as the batch.
    #[error("a filter mask of {mask} rows for a batch of {rows}")]
    MaskLength {
        /// The mask's length.
        mask: usize,
        /// The batch's rows.
        rows: usize,
    },
    /// A series lists the same attribute key twice.
    #[error("series {series} ({metric}): attribute key {key:?} appears twice")]
    DuplicateAttribute {
        /// Index of the series in the table.
        series: usize,
        /// The series' metric.
        metric: String,
        /// The repeated key.
        key: String,
    },
    /// An Arrow batch does not have the sample schema.
    #[error("column {column:?}: expected {expected}, found {found}")]
    Schema {
        /// The column at fault.
        column: &'static str,
        /// What the sample schema wants.
        expected: String,
        /// What the batch has.
        found: String,
    },
    /// An Arrow batch has a null where the schema forbids it.
    #[error("column {column:?}, row {row}: null value")]
    Null {
        /// The column at fault.
        column: &'static str,
        /// The row.
        row: usize,
    },
    /// The `type` column holds something other than gauge/delta/cumulative.
    #[error("row {row}: unknown sample type {value:?} (expected gauge, delta or cumulative)")]
    UnknownType {
        /// The first row with that value.
        row: usize,
        /// The value found.
        value: String,
    },
    /// More rows or series than the WIT batch can index (`u32`).
    #[error("{0} series or rows: more than a batch can hold (u32::MAX)")]
    TooLarge(usize),
    /// More attribute entries, or bytes of attribute keys or values, than
    /// an Arrow map column can index (`i32`).
    #[error("{0} attribute entries or bytes: more than an Arrow map column can hold (i32::MAX)")]
    AttributesTooLarge(usize),
    /// Arrow refused to build an array (an internal error).
    #[error("arrow: {0}")]
    Arrow(String),
}

impl From<ArrowError> for BatchError {
    fn from(e: ArrowError) -> Self {
        BatchError::Arrow(e.to_string())
    }
}

/// The Arrow schema of a sample batch (see the module docs).
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let dict = |k: DataType| DataType::Dictionary(Box::new(k), Box::new(DataType::Utf8));
            Arc::new(Schema::new(vec![
                Field::new(
                    columns::TIMESTAMP,
                    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                    false,
                ),
                Field::new(columns::METRIC, dict(DataType::Int32), false),
                Field::new(columns::RESOURCE_ID, dict(DataType::Int32), false),
                Field::new(columns::UNIT, dict(DataType::Int32), false),
                Field::new(columns::TYPE, dict(DataType::Int8), false),
                Field::new(columns::ATTRIBUTES, attributes_type(), false),
                Field::new(columns::VALUE, DataType::Float64, false),
            ]))
        })
        .clone()
}

fn map_field_names() -> MapFieldNames {
    MapFieldNames {
        entry: "entries".into(),
        key: "keys".into(),
        value: "values".into(),
    }
}

fn attributes_builder(capacity: usize) -> MapBuilder<StringBuilder, StringBuilder> {
    MapBuilder::with_capacity(
        Some(map_field_names()),
        StringBuilder::new(),
        StringBuilder::new(),
        capacity,
    )
    .with_values_field(Field::new("values", DataType::Utf8, false))
}

fn attributes_type() -> DataType {
    attributes_builder(0).finish().data_type().clone()
}

/// The text of a sample type in the `type` column.
pub fn sample_type_name(t: SampleType) -> &'static str {
    match t {
        SampleType::Gauge => "gauge",
        SampleType::Delta => "delta",
        SampleType::Cumulative => "cumulative",
    }
}

/// Parses the text of the `type` column.
pub fn parse_sample_type(s: &str) -> Option<SampleType> {
    match s {
        "gauge" => Some(SampleType::Gauge),
        "delta" => Some(SampleType::Delta),
        "cumulative" => Some(SampleType::Cumulative),
        _ => None,
    }
}

/// An empty batch with the sample schema.
pub fn empty() -> RecordBatch {
    RecordBatch::new_empty(schema())
}

/// Converts a WIT batch (e.g. a plugin's output) into an Arrow batch.
///
/// Validates what a plugin could get wrong: column lengths, series indices
/// and duplicate attribute keys. Attributes are sorted by key. Series that
/// no sample refers to are dropped (they carry no data), a series listed
/// twice is one, and the series are numbered in the order of their first
/// sample (which orders the dictionary values), as [`to_wit`] gives them.
///
/// # Errors
/// [`BatchError::LengthMismatch`], [`BatchError::SeriesIndexOutOfRange`],
/// [`BatchError::DuplicateAttribute`], [`BatchError::TooLarge`],
/// [`BatchError::AttributesTooLarge`].
///
/// # Example
/// ```
/// use wasmeter::batch;
/// use wasmeter::bindings::{SampleType, WitBatch, WitSeries};
///
/// let wit = WitBatch {
///     series: vec![WitSeries {
///         metric: "cpu.time".into(),
///         resource_id: "host-1".into(),
///         unit: "s".into(),
///         type_: SampleType::Cumulative,
///         attributes: vec![("mode".into(), "user".into())],
///     }],
///     series_index: vec![0, 0],
///     timestamps: vec![1_000_000_000, 2_000_000_000],
///     values: vec![1.5, 2.5],
/// };
/// let rb = batch::from_wit(wit.clone()).unwrap();
/// assert_eq!(rb.num_rows(), 2);
/// assert_eq!(batch::to_wit(&rb).unwrap(), wit);
/// ```
pub fn from_wit(batch: WitBatch) -> Result<RecordBatch, BatchError> {
    Samples::from_wit(batch).map(Samples::into_batch)
}

impl Samples {
    /// Converts a WIT batch (e.g. a plugin's output), as [`from_wit`], and
    /// keeps its series table in [`to_wit`]'s form.
    ///
    /// # Errors
    /// As [`from_wit`].
    pub fn from_wit(batch: WitBatch) -> Result<Samples, BatchError> {
        let WitBatch {
            mut series,
            series_index,
            timestamps,
            values,
        } = batch;
        let n = series_index.len();
        if timestamps.len() != n || values.len() != n {
            return Err(BatchError::LengthMismatch {
                series_index: n,
                timestamps: timestamps.len(),
                values: values.len(),
            });
        }
        if n > u32::MAX as usize || series.len() > i32::MAX as usize {
            return Err(BatchError::TooLarge(n.max(series.len())));
        }
        if let Some((row, &index)) = series_index
            .iter()
            .enumerate()
            .find(|&(_, &i)| i as usize >= series.len())
        {
            return Err(BatchError::SeriesIndexOutOfRange {
                row,
                index,
                series: series.len(),
            });
        }
        for (i, s) in series.iter_mut().enumerate() {
            s.attributes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            if let Some(w) = s.attributes.windows(2).find(|w| w[0].0 == w[1].0) {
                return Err(BatchError::DuplicateAttribute {
                    series: i,
                    metric: s.metric.clone(),
                    key: w[0].0.clone(),
                });
            }
        }

        let (series, series_index) = canonical(series, series_index);

        // Per-series dictionary keys, with each distinct string stored once.
        let metric = SeriesColumn::new(series.iter().map(|s| s.metric.as_str()));
        let resource = SeriesColumn::new(series.iter().map(|s| s.resource_id.as_str()));
        let unit = SeriesColumn::new(series.iter().map(|s| s.unit.as_str()));
        let types: Vec<i8> = series.iter().map(|s| s.type_ as i8).collect();
        let mut attrs = attributes_builder(series.len());
        for s in &series {
            for (k, v) in &s.attributes {
                attrs.keys().append_value(k);
                attrs.values().append_value(v);
            }
            attrs.append(true)?;
        }
        let series_attrs = attrs.finish();

        let timestamp = TimestampNanosecondArray::from(timestamps).with_timezone("UTC");
        let indices = UInt32Array::from(series_index);
        let attributes = if series_attrs.entries().is_empty() {
            // No series has attributes: an empty map per row, no gather.
            empty_maps(n)?
        } else {
            gather_maps(&series_attrs, indices.values())?
        };
        let type_values: ArrayRef =
            Arc::new(StringArray::from(vec!["gauge", "delta", "cumulative"]));
        let type_keys: Int8Array = indices
            .values()
            .iter()
            .map(|&i| types[i as usize])
            .collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(timestamp),
            metric.gather(indices.values())?,
            resource.gather(indices.values())?,
            unit.gather(indices.values())?,
            Arc::new(DictionaryArray::<Int8Type>::try_new(
                type_keys,
                type_values,
            )?),
            attributes,
            Arc::new(Float64Array::from(values)),
        ];
        let batch = RecordBatch::try_new(schema(), columns)?;
        Ok(Samples {
            batch,
            table: Some(Arc::new(SeriesTable {
                series,
                index: indices.into_parts().1,
            })),
        })
    }
}

/// The series table in [`to_wit`]'s form: series in the order of their
/// first sample, each distinct series once (attributes already sorted),
/// none that no sample refers to. O(series) hashing plus one pass over the
/// index; the table comes back untouched when it already is that form.
fn canonical(series: Vec<WitSeries>, mut index: Vec<u32>) -> (Vec<WitSeries>, Vec<u32>) {
    // Each series' first equal one. Seeded: the names come from plugins.
    let mut first_equal: Vec<u32> = (0..series.len() as u32).collect();
    let mut distinct = true;
    if series.len() > 1 {
        type Identity<'a> = (&'a str, &'a str, &'a str, i8, &'a [(String, String)]);
        let mut seen: HashMap<Identity<'_>, u32, foldhash::fast::RandomState> =
            HashMap::with_capacity_and_hasher(series.len(), Default::default());
        for (i, s) in series.iter().enumerate() {
            let key = (
                s.metric.as_str(),
                s.resource_id.as_str(),
                s.unit.as_str(),
                s.type_ as i8,
                s.attributes.as_slice(),
            );
            first_equal[i] = *seen.entry(key).or_insert(i as u32);
            distinct &= first_equal[i] == i as u32;
        }
    }
    if distinct {
        // Already canonical (the usual plugin output) when each row names
        // a series seen before or the next new one, and all are named: one
        // pass over the index, no table lookups.
        let mut next = 0u32;
        let ordered = index.iter().all(|&i| {
            next += u32::from(i == next);
            i < next
        });
        if ordered && next as usize == series.len() {
            return (series, index);
        }
    }
    if !distinct {
        index.iter_mut().for_each(|i| *i = first_equal[*i as usize]);
    }
    let order = renumber_by_first_row(&mut index, series.len());
    let mut slots: Vec<Option<WitSeries>> = series.into_iter().map(Some).collect();
    let series = order
        .iter()
        .filter_map(|&s| slots[s as usize].take())
        .collect();
    (series, index)
}

/// The series of a distinct table (`series`) that `index` refers to, in
/// the order of their first row, and `index` renumbered to match: only the
/// kept series are cloned, and none is hashed.
fn kept_series(series: &[WitSeries], mut index: Vec<u32>) -> (Vec<WitSeries>, Vec<u32>) {
    let order = renumber_by_first_row(&mut index, series.len());
    let kept = order.iter().map(|&s| series[s as usize].clone()).collect();
    (kept, index)
}

/// Renumbers `index` (entries below `len`) by order of first row and
/// returns, per new number, the old one.
fn renumber_by_first_row(index: &mut [u32], len: usize) -> Vec<u32> {
    let mut position = vec![u32::MAX; len];
    let mut order: Vec<u32> = Vec::new();
    for i in index.iter_mut() {
        let p = &mut position[*i as usize];
        if *p == u32::MAX {
            *p = order.len() as u32;
            order.push(*i);
        }
        *i = *p;
    }
    order
}

/// An Arrow sample batch with, when it is known, its series table: what
/// [`to_wit`] would compute from the batch, kept from the WIT batch it was
/// made of (a plugin's output). Stages pass these on, so that a batch a
/// plugin returned reaches the next plugin, or the rollup engine, without
/// finding its series again row by row.
///
/// Dereferences to the [`RecordBatch`]; the table cannot go out of step
/// with it (both are read-only).
#[derive(Debug, Clone)]
pub struct Samples {
    batch: RecordBatch,
    table: Option<Arc<SeriesTable>>,
}

/// A batch's series in [`to_wit`]'s form and each row's index into them.
#[derive(Debug)]
struct SeriesTable {
    series: Vec<WitSeries>,
    index: ScalarBuffer<u32>,
}

/// A batch's columns as the rollup engine and the WIT batch take them,
/// borrowed where the batch already holds them. The three per-row slices
/// have one entry per row.
#[derive(Debug)]
pub struct SampleColumns<'a> {
    /// Distinct series, in the order of their first sample, attributes
    /// sorted by key; every one is some row's.
    pub series: Cow<'a, [WitSeries]>,
    /// Per row: its series' position in `series`.
    pub series_index: Cow<'a, [u32]>,
    /// Per row: ns since the Unix epoch, UTC.
    pub timestamps: &'a [i64],
    /// Per row: the value.
    pub values: &'a [f64],
}

impl Samples {
    /// The Arrow batch.
    pub fn batch(&self) -> &RecordBatch {
        &self.batch
    }

    /// The Arrow batch, without the series table.
    pub fn into_batch(self) -> RecordBatch {
        self.batch
    }

    /// True when the series table is known: made by [`Samples::from_wit`],
    /// or filtered from such samples.
    pub fn has_series_table(&self) -> bool {
        self.table.is_some()
    }

    /// The columns, with the series table found row by row (as [`to_wit`])
    /// unless it is known.
    ///
    /// # Errors
    /// As [`to_wit`].
    pub fn wit_columns(&self) -> Result<SampleColumns<'_>, BatchError> {
        let (timestamps, values) = time_and_value(&self.batch)?;
        let (series, series_index) = match &self.table {
            Some(t) => (Cow::Borrowed(&t.series[..]), Cow::Borrowed(&t.index[..])),
            None => {
                let (s, i) = series_table(&self.batch)?;
                (Cow::Owned(s), Cow::Owned(i))
            }
        };
        Ok(SampleColumns {
            series,
            series_index,
            timestamps,
            values,
        })
    }

    /// The WIT batch for a plugin: equal to [`to_wit`] of the batch, but
    /// without a per-row series lookup when the table is known (the index,
    /// timestamps and values are still copied). Note that
    /// `batch::to_wit(&samples)` compiles too, through `Deref`, and always
    /// looks up row by row.
    ///
    /// # Errors
    /// As [`to_wit`].
    pub fn to_wit(&self) -> Result<WitBatch, BatchError> {
        let c = self.wit_columns()?;
        Ok(WitBatch {
            series: c.series.into_owned(),
            series_index: c.series_index.into_owned(),
            timestamps: c.timestamps.to_vec(),
            values: c.values.to_vec(),
        })
    }

    /// The rows where `mask` is true; a null in `mask` drops its row. The
    /// series table follows: its index is filtered, and series no row
    /// keeps are dropped.
    ///
    /// # Errors
    /// [`BatchError::MaskLength`] when `mask` is not as long as the batch.
    pub fn filter(&self, mask: &BooleanArray) -> Result<Samples, BatchError> {
        if mask.len() != self.batch.num_rows() {
            return Err(BatchError::MaskLength {
                mask: mask.len(),
                rows: self.batch.num_rows(),
            });
        }
        // One predicate for the batch's columns and the table's index.
        let predicate = arrow::compute::FilterBuilder::new(mask).optimize().build();
        let batch = predicate.filter_record_batch(&self.batch)?;
        let table = match &self.table {
            Some(t) => {
                let index = UInt32Array::new(t.index.clone(), None);
                let kept = predicate.filter(&index)?;
                let kept = kept.as_primitive::<arrow::datatypes::UInt32Type>();
                let (series, index) = kept_series(&t.series, kept.values().to_vec());
                Some(Arc::new(SeriesTable {
                    series,
                    index: index.into(),
                }))
            }
            None => None,
        };
        Ok(Samples { batch, table })
    }
}

impl From<RecordBatch> for Samples {
    /// A batch whose series table is not known ([`Samples::to_wit`] finds
    /// it row by row).
    fn from(batch: RecordBatch) -> Self {
        Samples { batch, table: None }
    }
}

impl std::ops::Deref for Samples {
    type Target = RecordBatch;

    fn deref(&self) -> &RecordBatch {
        &self.batch
    }
}

/// The per-sample attributes column: row `i` holds the map of series
/// `series_index[i]`. Copies each series' contiguous key and value bytes
/// per row (what `take` does through generic per-element extends, ~5×
/// slower here).
fn gather_maps(series: &MapArray, series_index: &[u32]) -> Result<ArrayRef, BatchError> {
    let keys = series.keys().as_string::<i32>();
    let values = series.values().as_string::<i32>();
    let (ko, vo) = (keys.value_offsets(), values.value_offsets());
    let (kb, vb) = (keys.value_data(), values.value_data());
    let entry_offsets = series.value_offsets();
    // Per series, once: its entries and the byte ranges of their keys and
    // values, so a row costs one table read and two copies.
    let spans: Vec<Span> = entry_offsets
        .windows(2)
        .map(|w| {
            let (a, b) = (w[0] as usize, w[1] as usize);
            Span {
                first: a,
                entries: b - a,
                keys: ko[a] as usize..ko[b] as usize,
                values: vo[a] as usize..vo[b] as usize,
            }
        })
        .collect();
    // Sized once from the rows per series. Once the entry and byte totals
    // fit in i32, no offset written below can overflow.
    let mut rows_of = vec![0usize; spans.len()];
    for &s in series_index {
        rows_of[s as usize] += 1;
    }
    let (mut entries, mut key_total, mut value_total) = (0usize, 0usize, 0usize);
    for (sp, &n) in spans.iter().zip(&rows_of) {
        entries += sp.entries * n;
        key_total += sp.keys.len() * n;
        value_total += sp.values.len() * n;
    }
    let largest = key_total.max(value_total).max(entries);
    if largest > i32::MAX as usize {
        return Err(BatchError::AttributesTooLarge(largest));
    }
    let mut map_offsets = Vec::with_capacity(series_index.len() + 1);
    let mut key_offsets = Vec::with_capacity(entries + 1);
    let mut value_offsets = Vec::with_capacity(entries + 1);
    let mut key_bytes = Vec::with_capacity(key_total);
    let mut value_bytes = Vec::with_capacity(value_total);
    map_offsets.push(0i32);
    key_offsets.push(0i32);
    value_offsets.push(0i32);
    // Appends one series' strings of a string column, rebasing their
    // offsets onto the end of `out`.
    fn append(
        bytes: &[u8],
        range: &std::ops::Range<usize>,
        src: &[i32],
        out: &mut Vec<u8>,
        offsets: &mut Vec<i32>,
    ) {
        let base = out.len() as i32 - range.start as i32;
        out.extend_from_slice(&bytes[range.clone()]);
        offsets.extend(src.iter().map(|&o| o + base));
    }
    for &s in series_index {
        let sp = &spans[s as usize];
        let ends = sp.first + 1..=sp.first + sp.entries;
        append(
            kb,
            &sp.keys,
            &ko[ends.clone()],
            &mut key_bytes,
            &mut key_offsets,
        );
        append(
            vb,
            &sp.values,
            &vo[ends],
            &mut value_bytes,
            &mut value_offsets,
        );
        map_offsets.push(key_offsets.len() as i32 - 1);
    }
    let strings = |offsets: Vec<i32>, bytes: Vec<u8>| -> Result<ArrayRef, BatchError> {
        Ok(Arc::new(StringArray::try_new(
            OffsetBuffer::new(offsets.into()),
            bytes.into(),
            None,
        )?))
    };
    let DataType::Map(entry_field, sorted) = series.data_type() else {
        unreachable!("a map array has a map type");
    };
    let DataType::Struct(fields) = entry_field.data_type() else {
        unreachable!("map entries are a struct");
    };
    let entries = StructArray::try_new(
        fields.clone(),
        vec![
            strings(key_offsets, key_bytes)?,
            strings(value_offsets, value_bytes)?,
        ],
        None,
    )?;
    Ok(Arc::new(MapArray::try_new(
        entry_field.clone(),
        OffsetBuffer::new(map_offsets.into()),
        entries,
        None,
        *sorted,
    )?))
}

/// One series' attribute entries in the series table of [`gather_maps`].
struct Span {
    /// Index of its first entry.
    first: usize,
    /// Number of entries.
    entries: usize,
    /// Its keys' bytes.
    keys: std::ops::Range<usize>,
    /// Its values' bytes.
    values: std::ops::Range<usize>,
}

/// `rows` empty maps: all-zero offsets over no entries, without a builder
/// call per row.
fn empty_maps(rows: usize) -> Result<ArrayRef, BatchError> {
    let none = attributes_builder(0).finish();
    let DataType::Map(entry_field, sorted) = none.data_type() else {
        unreachable!("a map array has a map type");
    };
    Ok(Arc::new(MapArray::try_new(
        entry_field.clone(),
        OffsetBuffer::new_zeroed(rows),
        none.entries().clone(),
        None,
        *sorted,
    )?))
}

/// Largest dense (metric × resource × unit × type) table `to_wit` uses.
const DENSE_LIMIT: usize = 1 << 22;

/// The size of `to_wit`'s dense table for ids of `dims` distinct values
/// over `rows` rows, or `None` when it would be larger than
/// [`DENSE_LIMIT`] or cost more to fill than the rows it serves.
fn dense_table_len(dims: [usize; 4], rows: usize) -> Option<usize> {
    let len = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)))?;
    (len <= DENSE_LIMIT && len <= rows.saturating_mul(8).saturating_add(4096)).then_some(len)
}

/// One string column of the series table, dictionary-encoded.
struct SeriesColumn {
    /// Per series: key into `values`.
    keys: Vec<i32>,
    /// The distinct strings.
    values: ArrayRef,
}

impl SeriesColumn {
    fn new<'a>(strings: impl Iterator<Item = &'a str>) -> Self {
        let mut seen: HashMap<&str, i32> = HashMap::new();
        let mut distinct = Vec::new();
        let keys = strings
            .map(|s| {
                *seen.entry(s).or_insert_with(|| {
                    distinct.push(s);
                    (distinct.len() - 1) as i32
                })
            })
            .collect();
        SeriesColumn {
            keys,
            values: Arc::new(StringArray::from(distinct)),
        }
    }

    /// The per-sample column for samples with these series indices.
    fn gather(&self, series_index: &[u32]) -> Result<ArrayRef, BatchError> {
        let keys = Int32Array::from(
            series_index
                .iter()
                .map(|&i| self.keys[i as usize])
                .collect::<Vec<i32>>(),
        );
        Ok(Arc::new(DictionaryArray::<Int32Type>::try_new(
            keys,
            self.values.clone(),
        )?))
    }
}

/// A dictionary column of an Arrow batch with canonical ids: two keys
/// whose strings are equal get the same id. One pass per column; nulls are
/// refused here.
struct DictColumn<'a> {
    /// Per row: the canonical id.
    ids: Vec<u32>,
    /// Per canonical id: the string.
    strings: Vec<&'a str>,
}

impl<'a> DictColumn<'a> {
    fn new(batch: &'a RecordBatch, name: &'static str) -> Result<Self, BatchError> {
        let col = column(batch, name)?;
        match col.data_type() {
            DataType::Dictionary(k, v) if **v == DataType::Utf8 && **k == DataType::Int32 => {
                Self::from_dictionary(col.as_dictionary::<Int32Type>(), name)
            }
            DataType::Dictionary(k, v) if **v == DataType::Utf8 && **k == DataType::Int8 => {
                Self::from_dictionary(col.as_dictionary::<Int8Type>(), name)
            }
            other => Err(BatchError::Schema {
                column: name,
                expected: "Dictionary<Int32 or Int8, Utf8>".into(),
                found: other.to_string(),
            }),
        }
    }

    fn from_dictionary<K: ArrowDictionaryKeyType>(
        d: &'a DictionaryArray<K>,
        name: &'static str,
    ) -> Result<Self, BatchError> {
        let values = d.values().as_string::<i32>();
        let mut seen: HashMap<&str, u32> = HashMap::new();
        let mut strings = Vec::new();
        let canonical: Vec<u32> = (0..values.len())
            .map(|i| {
                let s = if values.is_null(i) {
                    ""
                } else {
                    values.value(i)
                };
                *seen.entry(s).or_insert_with(|| {
                    strings.push(s);
                    (strings.len() - 1) as u32
                })
            })
            .collect();
        let keys = d.keys();
        let refused = |row: usize| BatchError::Null { column: name, row };
        let nulls = keys.logical_nulls().filter(|n| n.null_count() > 0);
        let mut ids = Vec::with_capacity(keys.len());
        // A key outside the dictionary is as unusable as a null: the first
        // row with either is named.
        for (row, k) in keys.values().iter().enumerate() {
            match canonical.get(k.as_usize()) {
                Some(&id) if nulls.as_ref().is_none_or(|n| n.is_valid(row)) => ids.push(id),
                _ => return Err(refused(row)),
            }
        }
        Ok(DictColumn { ids, strings })
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &'static str) -> Result<&'a ArrayRef, BatchError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| BatchError::Schema {
            column: name,
            expected: "a column of that name".into(),
            found: "no such column".into(),
        })
}

/// Converts an Arrow batch with the sample schema into a WIT batch for a
/// plugin. Samples keep their order; series appear in the order of their
/// first sample.
///
/// # Errors
/// [`BatchError::Schema`] when a column is missing or of the wrong type,
/// [`BatchError::Null`] for a null in a non-null column,
/// [`BatchError::UnknownType`] for a bad `type` value.
pub fn to_wit(batch: &RecordBatch) -> Result<WitBatch, BatchError> {
    let (timestamps, values) = time_and_value(batch)?;
    let (series, series_index) = series_table(batch)?;
    Ok(WitBatch {
        series,
        series_index,
        timestamps: timestamps.to_vec(),
        values: values.to_vec(),
    })
}

/// The timestamp and value columns, checked (type, no nulls).
fn time_and_value(batch: &RecordBatch) -> Result<(&[i64], &[f64]), BatchError> {
    let n = batch.num_rows();
    if n > u32::MAX as usize {
        return Err(BatchError::TooLarge(n));
    }
    let ts = column(batch, columns::TIMESTAMP)?;
    let ts = ts
        .as_primitive_opt::<arrow::datatypes::TimestampNanosecondType>()
        .ok_or_else(|| BatchError::Schema {
            column: columns::TIMESTAMP,
            expected: "Timestamp(ns, \"UTC\")".into(),
            found: ts.data_type().to_string(),
        })?;
    let value = column(batch, columns::VALUE)?;
    let value = value
        .as_primitive_opt::<arrow::datatypes::Float64Type>()
        .ok_or_else(|| BatchError::Schema {
            column: columns::VALUE,
            expected: "Float64".into(),
            found: value.data_type().to_string(),
        })?;
    for (name, arr) in [
        (columns::TIMESTAMP, ts as &dyn Array),
        (columns::VALUE, value as &dyn Array),
    ] {
        // Without a validity buffer there is nothing to look for.
        let first_null = arr
            .logical_nulls()
            .and_then(|nulls| nulls.iter().position(|valid| !valid));
        if let Some(row) = first_null {
            return Err(BatchError::Null { column: name, row });
        }
    }
    Ok((ts.values(), value.values()))
}

/// The distinct series of a batch, in the order of their first sample,
/// and each row's index into them: the row-by-row part of [`to_wit`].
fn series_table(batch: &RecordBatch) -> Result<(Vec<WitSeries>, Vec<u32>), BatchError> {
    let n = batch.num_rows();
    let attrs_col = column(batch, columns::ATTRIBUTES)?;
    let attrs: &MapArray = attrs_col.as_map_opt().ok_or_else(|| BatchError::Schema {
        column: columns::ATTRIBUTES,
        expected: "Map<Utf8, Utf8>".into(),
        found: attrs_col.data_type().to_string(),
    })?;
    let attr_keys = attrs
        .keys()
        .as_string_opt::<i32>()
        .ok_or_else(|| BatchError::Schema {
            column: columns::ATTRIBUTES,
            expected: "Map<Utf8, Utf8>".into(),
            found: attrs_col.data_type().to_string(),
        })?;
    let attr_values = attrs
        .values()
        .as_string_opt::<i32>()
        .ok_or_else(|| BatchError::Schema {
            column: columns::ATTRIBUTES,
            expected: "Map<Utf8, Utf8>".into(),
            found: attrs_col.data_type().to_string(),
        })?;
    let offsets = attrs.value_offsets();

    let metric = DictColumn::new(batch, columns::METRIC)?;
    let resource = DictColumn::new(batch, columns::RESOURCE_ID)?;
    let unit = DictColumn::new(batch, columns::UNIT)?;
    let kind = DictColumn::new(batch, columns::TYPE)?;

    // Series identity: (metric, resource, unit, type) ids, plus the
    // attributes. With a dense table indexed by the four ids, rows without
    // attributes find their series there (no hashing), and rows with
    // attributes first try the series their slot's last row had (a byte
    // comparison). Every other row is found by a hash of its ids and
    // entries, confirmed by comparing.
    let dims = [
        metric.strings.len(),
        resource.strings.len(),
        unit.strings.len(),
        kind.strings.len(),
    ];
    let mut dense: Vec<u32> = match dense_table_len(dims, n) {
        Some(len) => vec![u32::MAX; len],
        None => Vec::new(),
    };
    type Key = (u32, u32, u32, u32, u64);
    let seed = foldhash::fast::RandomState::default();
    let mut lookup: HashMap<Key, SmallVec<[u32; 2]>, FxBuildHasher> = HashMap::default();
    // Per series: the entry range of the first row that named it, to
    // compare later rows' raw bytes with.
    let mut first_entries: Vec<(usize, usize)> = Vec::new();
    let (ko, vo) = (attr_keys.value_offsets(), attr_values.value_offsets());
    let (kb, vb) = (attr_keys.value_data(), attr_values.value_data());
    // A row's entries as raw bytes: keys and values are each contiguous.
    let raw = |start: usize, end: usize| {
        (
            &kb[ko[start] as usize..ko[end] as usize],
            &vb[vo[start] as usize..vo[end] as usize],
        )
    };
    // Same entries in the same order, byte for byte (boundaries included).
    let same_raw = |a: (usize, usize), b: (usize, usize)| {
        a.1 - a.0 == b.1 - b.0
            && raw(a.0, a.1) == raw(b.0, b.1)
            && (0..a.1 - a.0).all(|i| {
                ko[a.0 + i + 1] - ko[a.0] == ko[b.0 + i + 1] - ko[b.0]
                    && vo[a.0 + i + 1] - vo[a.0] == vo[b.0 + i + 1] - vo[b.0]
            })
    };
    let mut series: Vec<WitSeries> = Vec::new();
    let mut series_index = Vec::with_capacity(n);
    let new_series = |key: Key,
                      row: usize,
                      start: usize,
                      end: usize,
                      series: &mut Vec<WitSeries>|
     -> Result<u32, BatchError> {
        let type_str = kind.strings[key.3 as usize];
        let Some(t) = parse_sample_type(type_str) else {
            return Err(BatchError::UnknownType {
                row,
                value: type_str.to_owned(),
            });
        };
        let mut attributes: Vec<(String, String)> = (start..end)
            .map(|e| {
                (
                    attr_keys.value(e).to_owned(),
                    attr_values.value(e).to_owned(),
                )
            })
            .collect();
        attributes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        series.push(WitSeries {
            metric: metric.strings[key.0 as usize].to_owned(),
            resource_id: resource.strings[key.1 as usize].to_owned(),
            unit: unit.strings[key.2 as usize].to_owned(),
            type_: t,
            attributes,
        });
        Ok(series.len() as u32 - 1)
    };
    // Rows with attributes: per dense slot, the series its last row had;
    // a row whose entries are byte-equal to that series' first row is that
    // series, without hashing (the common case: one series per ids tuple).
    let mut hint: Vec<u32> = Vec::new();
    for row in 0..n {
        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        let ids = (
            metric.ids[row],
            resource.ids[row],
            unit.ids[row],
            kind.ids[row],
        );
        // Only meaningful (and only computed without overflow) when the
        // dense table exists.
        let slot = if dense.is_empty() {
            0
        } else {
            ((ids.0 as usize * dims[1] + ids.1 as usize) * dims[2] + ids.2 as usize)
                * dims[3].max(1)
                + ids.3 as usize
        };
        if start != end && !dense.is_empty() {
            if hint.is_empty() {
                hint = vec![u32::MAX; dense.len()];
            }
            let h = hint[slot];
            if h != u32::MAX && same_raw(first_entries[h as usize], (start, end)) {
                series_index.push(h);
                continue;
            }
        }
        if start == end && !dense.is_empty() {
            let idx = match dense[slot] {
                u32::MAX => {
                    let i = new_series(
                        (ids.0, ids.1, ids.2, ids.3, 0),
                        row,
                        start,
                        end,
                        &mut series,
                    )?;
                    dense[slot] = i;
                    i
                }
                i => i,
            };
            series_index.push(idx);
            continue;
        }
        // A sum of per-entry hashes: the same for entries in any order
        // (foreign batches need not sort them). Seeded: the entries come
        // from plugins, which must not be able to pick colliding ones.
        let hash = (start..end).fold(0u64, |acc, e| {
            let mut h = seed.build_hasher();
            h.write(raw(e, e + 1).0);
            h.write_u8(0xff); // not UTF-8: ends the key
            h.write(raw(e, e + 1).1);
            acc.wrapping_add(h.finish())
        });
        let key: Key = (ids.0, ids.1, ids.2, ids.3, hash);
        let found = lookup.get(&key).and_then(|candidates| {
            candidates.iter().copied().find(|&i| {
                same_raw(first_entries[i as usize], (start, end))
                    || attrs_equal(
                        &series[i as usize].attributes,
                        start..end,
                        attr_keys,
                        attr_values,
                    )
            })
        });
        let idx = match found {
            Some(i) => i,
            None => {
                let i = new_series(key, row, start, end, &mut series)?;
                first_entries.resize(series.len(), (0, 0));
                first_entries[i as usize] = (start, end);
                lookup.entry(key).or_default().push(i);
                i
            }
        };
        if let Some(h) = hint.get_mut(slot) {
            *h = idx;
        }
        series_index.push(idx);
    }
    Ok((series, series_index))
}

/// True when a series' (sorted) attributes equal the map entries `range`.
fn attrs_equal(
    series: &[(String, String)],
    range: std::ops::Range<usize>,
    keys: &StringArray,
    values: &StringArray,
) -> bool {
    if series.len() != range.len() {
        return false;
    }
    // Map entries may be unsorted in foreign batches: compare as sets,
    // each of the series' entries matched once (a repeated entry in the
    // row is no match).
    let mut matched = vec![false; series.len()];
    range.clone().all(|e| {
        let (k, v) = (keys.value(e), values.value(e));
        series
            .binary_search_by(|(sk, _)| sk.as_str().cmp(k))
            .is_ok_and(|i| series[i].1 == v && !std::mem::replace(&mut matched[i], true))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(metric: &str, resource: &str, attrs: &[(&str, &str)]) -> WitSeries {
        WitSeries {
            metric: metric.into(),
            resource_id: resource.into(),
            unit: "B".into(),
            type_: SampleType::Gauge,
            attributes: attrs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    fn assert_bit_exact(a: &WitBatch, b: &WitBatch) {
        assert_eq!(a.series, b.series);
        assert_eq!(a.series_index, b.series_index);
        assert_eq!(a.timestamps, b.timestamps);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.values), bits(&b.values));
    }

    fn round_trip(wit: WitBatch) {
        let rb = from_wit(wit.clone()).unwrap();
        assert_eq!(rb.schema(), schema());
        assert_eq!(rb.num_rows(), wit.values.len());
        let back = to_wit(&rb).unwrap();
        assert_bit_exact(&wit, &back);
        // And Arrow -> WIT -> Arrow gives the same rows.
        let again = from_wit(back).unwrap();
        assert_eq!(again, rb);
    }

    #[test]
    fn empty_batch() {
        round_trip(WitBatch {
            series: vec![],
            series_index: vec![],
            timestamps: vec![],
            values: vec![],
        });
        assert_eq!(to_wit(&empty()).unwrap().values.len(), 0);
    }

    #[test]
    fn series_without_attributes_get_one_empty_map_per_row() {
        let wit = WitBatch {
            series: vec![series("a", "r1", &[]), series("b", "r2", &[])],
            series_index: vec![0, 1, 1],
            timestamps: vec![1, 2, 3],
            values: vec![1.0, 2.0, 3.0],
        };
        let rb = from_wit(wit.clone()).unwrap();
        // The same column as a builder appending three empty maps.
        let mut b = attributes_builder(3);
        for _ in 0..3 {
            b.append(true).unwrap();
        }
        let built: ArrayRef = Arc::new(b.finish());
        let attrs = rb.column_by_name(columns::ATTRIBUTES).unwrap();
        assert_eq!(attrs, &built);
        assert_eq!(attrs.null_count(), 0);
        assert_eq!(attrs.as_map().value_offsets(), [0, 0, 0, 0]);
        round_trip(wit);
    }

    #[test]
    fn unicode_names_and_labels() {
        round_trip(WitBatch {
            series: vec![
                series(
                    "température.°C",
                    "hôte-1",
                    &[("région", "Île-de-France"), ("名前", "値")],
                ),
                series("cpu.time", "🖥️-42", &[]),
                series("température.°C", "hôte-1", &[("région", "Zürich")]),
            ],
            series_index: vec![0, 1, 2, 0, 2],
            timestamps: vec![1, 2, 3, 4, 5],
            values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
        });
    }

    #[test]
    fn special_floats_are_bit_exact() {
        let payload_nan = f64::from_bits(0x7ff8_dead_beef_0001);
        round_trip(WitBatch {
            series: vec![series("m", "r", &[])],
            series_index: vec![0; 6],
            timestamps: vec![0; 6],
            values: vec![
                f64::NAN,
                payload_nan,
                f64::INFINITY,
                f64::NEG_INFINITY,
                -0.0,
                0.0,
            ],
        });
    }

    #[test]
    fn extreme_timestamps() {
        round_trip(WitBatch {
            series: vec![series("m", "r", &[("k", "v")])],
            series_index: vec![0, 0, 0],
            timestamps: vec![i64::MIN, 0, i64::MAX],
            values: vec![1.0, 2.0, 3.0],
        });
    }

    #[test]
    fn one_million_rows() {
        let n = 1_000_000usize;
        let series: Vec<WitSeries> = (0..1000)
            .map(|i| {
                series(
                    &format!("m{}", i % 10),
                    &format!("host-{i}"),
                    &[("i", &i.to_string())],
                )
            })
            .collect();
        let wit = WitBatch {
            series,
            series_index: (0..n).map(|i| (i % 1000) as u32).collect(),
            timestamps: (0..n as i64).map(|i| i * 1_000_000_007).collect(),
            values: (0..n).map(|i| i as f64 * 0.5).collect(),
        };
        round_trip(wit);
    }

    #[test]
    fn attributes_are_sorted_on_the_way_in() {
        let wit = WitBatch {
            series: vec![series("m", "r", &[("z", "1"), ("a", "2")])],
            series_index: vec![0],
            timestamps: vec![0],
            values: vec![0.0],
        };
        let back = to_wit(&from_wit(wit).unwrap()).unwrap();
        assert_eq!(
            back.series[0].attributes,
            vec![
                ("a".to_string(), "2".to_string()),
                ("z".to_string(), "1".to_string())
            ]
        );
    }

    #[test]
    fn malformed_plugin_output_is_refused() {
        let bad_len = WitBatch {
            series: vec![series("m", "r", &[])],
            series_index: vec![0, 0],
            timestamps: vec![0],
            values: vec![0.0, 1.0],
        };
        assert_eq!(
            from_wit(bad_len).unwrap_err(),
            BatchError::LengthMismatch {
                series_index: 2,
                timestamps: 1,
                values: 2
            }
        );
        let bad_index = WitBatch {
            series: vec![series("m", "r", &[])],
            series_index: vec![0, 3],
            timestamps: vec![0, 0],
            values: vec![0.0, 1.0],
        };
        assert_eq!(
            from_wit(bad_index).unwrap_err().to_string(),
            "sample 1: series index 3 out of range (the batch has 1 series)"
        );
        let dup = WitBatch {
            series: vec![series("m", "r", &[("k", "1"), ("k", "2")])],
            series_index: vec![0],
            timestamps: vec![0],
            values: vec![0.0],
        };
        assert!(matches!(
            from_wit(dup).unwrap_err(),
            BatchError::DuplicateAttribute { series: 0, .. }
        ));
    }

    #[test]
    fn duplicate_dictionary_values_are_one_series() {
        // Two dictionary keys with the same string must not split a series.
        let wit = WitBatch {
            series: vec![series("m", "r", &[])],
            series_index: vec![0, 0],
            timestamps: vec![1, 2],
            values: vec![1.0, 2.0],
        };
        let rb = from_wit(wit).unwrap();
        let doubled = arrow::compute::concat_batches(&schema(), &[rb.clone(), rb]).unwrap();
        let back = to_wit(&doubled).unwrap();
        assert_eq!(back.series.len(), 1);
        assert_eq!(back.series_index, vec![0, 0, 0, 0]);
    }

    /// A batch with one row per `(attributes)` entry list, as a foreign
    /// producer may write it (entries in any order).
    fn foreign(rows: &[&[(&str, &str)]]) -> RecordBatch {
        let wit = WitBatch {
            series: vec![series("m", "r", &[])],
            series_index: vec![0; rows.len()],
            timestamps: (0..rows.len() as i64).collect(),
            values: vec![1.0; rows.len()],
        };
        let rb = from_wit(wit).unwrap();
        let mut maps = attributes_builder(rows.len());
        for entries in rows {
            for (k, v) in *entries {
                maps.keys().append_value(k);
                maps.values().append_value(v);
            }
            maps.append(true).unwrap();
        }
        let mut columns = rb.columns().to_vec();
        columns[5] = Arc::new(maps.finish());
        RecordBatch::try_new(schema(), columns).unwrap()
    }

    #[test]
    fn entries_in_another_order_are_the_same_series() {
        let rb = foreign(&[
            &[("a", "1"), ("b", "2")],
            &[("b", "2"), ("a", "1")],
            &[("a", "1")],
        ]);
        let back = to_wit(&rb).unwrap();
        assert_eq!(back.series_index, vec![0, 0, 1]);
        assert_eq!(back.series[0].attributes[0], ("a".into(), "1".into()));
        assert_eq!(back.series.len(), 2);
    }

    #[test]
    fn the_dense_table_is_only_built_where_rows_pay_for_it() {
        assert_eq!(dense_table_len([20, 1_000, 1, 1], 65_536), Some(20_000));
        assert_eq!(dense_table_len([0, 0, 0, 0], 0), Some(1));
        // 120 × 120 slots for 240 rows: more to fill than to hash.
        assert_eq!(dense_table_len([120, 120, 1, 1], 240), None);
        assert_eq!(dense_table_len([4_096, 4_096, 1, 1], 1 << 30), None);
        assert_eq!(dense_table_len([usize::MAX, 2, 1, 1], usize::MAX), None);
    }

    #[test]
    fn sparse_ids_without_the_dense_table_round_trip() {
        // 120 metrics × 120 resources is a larger table than 240 rows
        // justify (see above): every row goes through the hashed lookup.
        let series: Vec<WitSeries> = (0..120)
            .map(|i| {
                let attrs: &[(&str, &str)] = if i % 3 == 0 { &[("k", "v")] } else { &[] };
                self::series(&format!("m{i}"), &format!("r{i}"), attrs)
            })
            .collect();
        round_trip(WitBatch {
            series,
            // First appearances in table order, then a shuffled second pass.
            series_index: (0..240u32)
                .map(|i| if i < 120 { i } else { i * 7 % 120 })
                .collect(),
            timestamps: (0..240).collect(),
            values: (0..240).map(f64::from).collect(),
        });
    }

    #[test]
    fn a_null_value_is_refused_with_its_row() {
        let rb = foreign(&[&[], &[], &[], &[]]);
        let fields: Vec<Field> = rb
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        let mut columns = rb.columns().to_vec();
        columns[6] = Arc::new(Float64Array::from(vec![Some(1.0), Some(2.0), None, None]));
        let rb = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
        match to_wit(&rb) {
            Err(BatchError::Null { column, row }) => {
                assert_eq!((column, row), (columns::VALUE, 2));
            }
            other => panic!("expected a null error, got {other:?}"),
        }
    }

    #[test]
    fn interleaved_series_of_the_same_ids_keep_their_own_index() {
        // One (metric, resource, unit, type) slot, three attribute sets
        // taking turns: the per-slot hint misses and the hash decides.
        let rb = foreign(&[
            &[("a", "1"), ("b", "2")],
            &[("a", "1")],
            &[("b", "2"), ("a", "1")],
            &[("a", "1"), ("b", "2")],
            &[("a", "1")],
            &[("a", "1"), ("b", "3")],
            &[("a", "1"), ("b", "2")],
        ]);
        let back = to_wit(&rb).unwrap();
        assert_eq!(back.series_index, vec![0, 1, 0, 0, 1, 2, 0]);
        assert_eq!(back.series.len(), 3);
        assert_eq!(back.series[2].attributes[1], ("b".into(), "3".into()));
    }

    #[test]
    fn the_same_bytes_split_differently_are_other_series() {
        // Keys "a","bc" and "ab","c" concatenate to the same bytes.
        let rb = foreign(&[&[("a", "x"), ("bc", "y")], &[("ab", "x"), ("c", "y")]]);
        let back = to_wit(&rb).unwrap();
        assert_eq!(back.series_index, vec![0, 1]);
        assert_eq!(back.series[1].attributes[0], ("ab".into(), "x".into()));
    }

    #[test]
    fn a_sliced_batch_converts_its_rows_only() {
        let wit = WitBatch {
            series: vec![
                series("m", "r", &[("k", "v1")]),
                series("m", "r", &[("k", "v2")]),
            ],
            series_index: vec![0, 1, 0, 1],
            timestamps: vec![1, 2, 3, 4],
            values: vec![1.0, 2.0, 3.0, 4.0],
        };
        let rb = from_wit(wit).unwrap().slice(1, 2);
        let back = to_wit(&rb).unwrap();
        assert_eq!(back.series_index, vec![0, 1]);
        assert_eq!(back.series[0].attributes, vec![("k".into(), "v2".into())]);
        assert_eq!(back.timestamps, vec![2, 3]);
    }

    /// A plugin's output in every shape the contract allows: series out of
    /// first-sample order, a series twice, one no sample uses, attributes
    /// unsorted.
    fn untidy() -> WitBatch {
        WitBatch {
            series: vec![
                series("m", "unused", &[]),
                series("m", "b", &[("z", "1"), ("a", "2")]),
                series("m", "a", &[]),
                series("m", "b", &[("a", "2"), ("z", "1")]),
                series("n", "a", &[("k", "v")]),
            ],
            series_index: vec![2, 1, 3, 4, 2, 3, 1],
            timestamps: (0..7).collect(),
            values: (0..7).map(f64::from).collect(),
        }
    }

    #[test]
    fn a_kept_series_table_is_what_to_wit_finds() {
        for wit in [
            untidy(),
            WitBatch {
                series: vec![],
                series_index: vec![],
                timestamps: vec![],
                values: vec![],
            },
            WitBatch {
                series: vec![series("m", "r", &[("k", "v")])],
                series_index: vec![0; 3],
                timestamps: vec![1, 2, 3],
                values: vec![f64::NAN, -0.0, f64::INFINITY],
            },
            // In order, but the last series is no row's.
            WitBatch {
                series: vec![series("m", "a", &[]), series("m", "b", &[])],
                series_index: vec![0, 0],
                timestamps: vec![1, 2],
                values: vec![1.0, 2.0],
            },
            // All named, but not in order of first sample.
            WitBatch {
                series: vec![series("m", "a", &[]), series("m", "b", &[])],
                series_index: vec![1, 0, 1],
                timestamps: vec![1, 2, 3],
                values: vec![1.0, 2.0, 3.0],
            },
        ] {
            let samples = Samples::from_wit(wit.clone()).unwrap();
            assert!(samples.has_series_table());
            let kept = samples.to_wit().unwrap();
            assert_bit_exact(&kept, &to_wit(samples.batch()).unwrap());
            // Every row still has its own series, time and value.
            let sorted = |s: &WitSeries| {
                let mut s = s.clone();
                s.attributes.sort();
                s
            };
            for r in 0..wit.series_index.len() {
                assert_eq!(
                    sorted(&wit.series[wit.series_index[r] as usize]),
                    kept.series[kept.series_index[r] as usize]
                );
                assert_eq!(kept.timestamps[r], wit.timestamps[r]);
                assert_eq!(kept.values[r].to_bits(), wit.values[r].to_bits());
            }
        }
        // By hand: order of first sample, "b" once, "unused" gone.
        let t = Samples::from_wit(untidy()).unwrap().to_wit().unwrap();
        let names: Vec<_> = t
            .series
            .iter()
            .map(|s| (s.metric.as_str(), s.resource_id.as_str()))
            .collect();
        assert_eq!(names, [("m", "a"), ("m", "b"), ("n", "a")]);
        assert_eq!(
            t.series[1].attributes,
            [("a".into(), "2".into()), ("z".into(), "1".into())]
        );
        assert_eq!(t.series_index, [0, 1, 1, 2, 0, 1, 1]);
    }

    #[test]
    fn a_kept_table_is_borrowed_and_a_plain_batch_is_looked_up() {
        let samples = Samples::from_wit(untidy()).unwrap();
        let c = samples.wit_columns().unwrap();
        assert!(matches!(c.series, Cow::Borrowed(_)));
        assert!(matches!(c.series_index, Cow::Borrowed(_)));
        let plain = Samples::from(samples.batch().clone());
        assert!(!plain.has_series_table());
        let p = plain.wit_columns().unwrap();
        assert!(matches!(p.series, Cow::Owned(_)));
        assert_eq!(p.series, c.series);
        assert_eq!(p.series_index, c.series_index);
        assert_eq!(p.timestamps, c.timestamps);
    }

    #[test]
    fn a_filtered_batch_keeps_a_table_of_its_own_rows() {
        let samples = Samples::from_wit(untidy()).unwrap();
        for keep in [
            vec![false, true, true, false, false, true, true],
            vec![false, false, false, true, false, false, false],
            vec![false; 7],
            vec![true; 7],
        ] {
            let mask = BooleanArray::from(keep.clone());
            let kept = samples.filter(&mask).unwrap();
            assert!(kept.has_series_table());
            assert_eq!(kept.num_rows(), keep.iter().filter(|k| **k).count());
            assert_eq!(
                kept.batch(),
                &arrow::compute::filter_record_batch(samples.batch(), &mask).unwrap()
            );
            assert_bit_exact(&kept.to_wit().unwrap(), &to_wit(kept.batch()).unwrap());
        }
        // By hand: rows 1, 2, 5, 6 are series b, b, b, b; row 3 alone is n/a.
        let mask = BooleanArray::from(vec![false, true, true, false, false, true, true]);
        let t = samples.filter(&mask).unwrap().to_wit().unwrap();
        assert_eq!(t.series.len(), 1);
        assert_eq!(t.series[0].resource_id, "b");
        assert_eq!(t.series_index, [0, 0, 0, 0]);
        assert_eq!(t.timestamps, [1, 2, 5, 6]);
        let mask = BooleanArray::from(vec![
            Some(true),
            None,
            Some(false),
            Some(true),
            None,
            Some(false),
            Some(false),
        ]);
        let t = samples.filter(&mask).unwrap().to_wit().unwrap();
        let names: Vec<_> = t.series.iter().map(|s| s.resource_id.as_str()).collect();
        assert_eq!(names, ["a", "a"]);
        assert_eq!(t.series[1].metric, "n");
        assert_eq!(t.series_index, [0, 1]);
        assert_eq!(t.timestamps, [0, 3]);
        // Without a table there is none after either.
        let plain = Samples::from(samples.batch().clone())
            .filter(&mask)
            .unwrap();
        assert!(!plain.has_series_table());
        assert_bit_exact(&plain.to_wit().unwrap(), &t);
        for len in [3, 9] {
            let wrong = BooleanArray::from(vec![true; len]);
            let e = samples.filter(&wrong).unwrap_err();
            assert_eq!(e, BatchError::MaskLength { mask: len, rows: 7 });
            assert_eq!(
                e.to_string(),
                format!("a filter mask of {len} rows for a batch of 7")
            );
        }
    }
}

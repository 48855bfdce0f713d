//! Sample batches in files: CSV, JSON lines and Arrow IPC, read into and
//! written from the contract's columnar batch. `wasmeter plugin test` reads
//! its input and expected output with this module, and prints with it.
//!
//! One sample per row (CSV) or per line (JSON lines):
//!
//! ```text
//! field        CSV column            JSON lines key       required  default
//! timestamp    timestamp             timestamp            yes
//! metric       metric                metric               yes
//! resource     resource_id           resource_id          no        ""
//! unit         unit                  unit                 no        ""
//! type         type                  type                 no        gauge
//! attributes   attr.<key> columns    attributes {k: v}    no        none
//! value        value                 value                yes
//! ```
//!
//! - `timestamp`: RFC 3339 (`2026-01-01T00:00:00.5Z`, any offset, read as
//!   UTC) or an integer: nanoseconds since the Unix epoch, UTC.
//! - `value`: a decimal number, or `NaN`, `+Inf`, `-Inf` (also `inf`,
//!   `Infinity`); in JSON a number or one of those strings.
//! - CSV: an empty `attr.<key>` cell means the series has no such label.
//! - Arrow IPC: a file (`ARROW1` magic) with the sample schema of
//!   [`crate::batch`], e.g. a dead-letter file; recognised by its content.
//!
//! Written files use the same shapes: timestamps in RFC 3339 UTC (0, 3, 6
//! or 9 fractional digits, as needed), values in the shortest form that
//! reads back to the same `f64`, so output can serve as a later `--expect`
//! file. One exception: CSV cannot tell a label whose value is `""` from no
//! label (both are an empty cell); JSON lines can.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::batch;
use crate::bindings::{SampleType, WitBatch, WitSeries};

/// A file of samples that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SamplesError {
    /// The file cannot be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A row or line is malformed: names the file, the 1-based line and
    /// the field.
    #[error("{path}:{line}: {message}")]
    Row {
        /// The file.
        path: String,
        /// 1-based line number (CSV: the header is line 1).
        line: u64,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The file as a whole has the wrong shape (a missing CSV column, an
    /// Arrow file with another schema).
    #[error("{path}: {message}")]
    Shape {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// The format of a samples file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// Arrow IPC file format.
    Arrow,
}

impl Format {
    /// The format a file's content declares (Arrow's magic bytes, a leading
    /// `{`), else its extension (`.jsonl`, `.ndjson`, `.json`), else CSV.
    pub fn detect(path: &Path, head: &[u8]) -> Format {
        if head.starts_with(b"ARROW1") {
            return Format::Arrow;
        }
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if matches!(ext, "jsonl" | "ndjson" | "json")
            || head.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        {
            Format::Jsonl
        } else {
            Format::Csv
        }
    }
}

/// Reads a samples file in the format its content or name declares.
///
/// # Errors
/// [`SamplesError::Io`] when unreadable; [`SamplesError::Row`] naming the
/// line and field of the first malformed row; [`SamplesError::Shape`] for a
/// missing CSV column or an Arrow file without the sample schema.
pub fn read(path: &Path) -> Result<WitBatch, SamplesError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| SamplesError::Io {
        path: shown.clone(),
        source,
    })?;
    match Format::detect(path, &bytes) {
        Format::Arrow => read_arrow(&shown, &bytes),
        Format::Jsonl => read_jsonl(&shown, &bytes),
        Format::Csv => read_csv(&shown, &bytes),
    }
}

/// Builds a batch row by row, each distinct series once.
struct Builder {
    batch: WitBatch,
    index: HashMap<SeriesKey, u32>,
}

#[derive(PartialEq, Eq, Hash)]
struct SeriesKey {
    metric: String,
    resource_id: String,
    unit: String,
    kind: u8,
    attributes: Vec<(String, String)>,
}

/// A batch without samples.
pub fn empty() -> WitBatch {
    WitBatch {
        series: Vec::new(),
        series_index: Vec::new(),
        timestamps: Vec::new(),
        values: Vec::new(),
    }
}

impl Builder {
    fn new() -> Self {
        Builder {
            batch: empty(),
            index: HashMap::new(),
        }
    }

    fn push(&mut self, series: WitSeries, timestamp: i64, value: f64) {
        let key = SeriesKey {
            metric: series.metric.clone(),
            resource_id: series.resource_id.clone(),
            unit: series.unit.clone(),
            kind: series.type_ as u8,
            attributes: series.attributes.clone(),
        };
        let next = self.batch.series.len() as u32;
        let i = *self.index.entry(key).or_insert_with(|| {
            self.batch.series.push(series);
            next
        });
        self.batch.series_index.push(i);
        self.batch.timestamps.push(timestamp);
        self.batch.values.push(value);
    }
}

fn read_arrow(path: &str, bytes: &[u8]) -> Result<WitBatch, SamplesError> {
    let shape = |message: String| SamplesError::Shape {
        path: path.to_owned(),
        message,
    };
    let reader = arrow::ipc::reader::FileReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(|e| shape(format!("not a readable Arrow IPC file: {e}")))?;
    let mut b = Builder::new();
    for rb in reader {
        let rb = rb.map_err(|e| shape(format!("bad record batch: {e}")))?;
        let wit = batch::to_wit(&rb).map_err(|e| shape(format!("not a sample batch: {e}")))?;
        for row in rows(&wit) {
            b.push(row.series.clone(), row.timestamp, row.value);
        }
    }
    Ok(b.batch)
}

fn read_csv(path: &str, bytes: &[u8]) -> Result<WitBatch, SamplesError> {
    // Comment (`#`) and blank lines are dropped here rather than by the csv
    // reader, which would not count them in its line numbers; `lines[i]` is
    // the file line of the kept line i + 1.
    let mut kept = Vec::with_capacity(bytes.len());
    let mut lines = Vec::new();
    for (n, line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
        let text = line.trim_ascii();
        if text.is_empty() || text.starts_with(b"#") {
            continue;
        }
        kept.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            kept.push(b'\n');
        }
        lines.push(n as u64 + 1);
    }
    let file_line = |kept_line: u64| {
        usize::try_from(kept_line)
            .ok()
            .and_then(|l| lines.get(l.checked_sub(1)?))
            .copied()
            .unwrap_or(kept_line)
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::Headers)
        .from_reader(kept.as_slice());
    let shape = |message: String| SamplesError::Shape {
        path: path.to_owned(),
        message,
    };
    let headers = reader
        .headers()
        .map_err(|e| shape(format!("bad CSV header: {e}")))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let need = |name: &str| {
        column(name).ok_or_else(|| {
            shape(format!(
                "no `{name}` column (columns: timestamp, metric, resource_id, unit, type, value, attr.<key>)"
            ))
        })
    };
    let (ts_col, metric_col, value_col) = (need("timestamp")?, need("metric")?, need("value")?);
    let (resource_col, unit_col, type_col) =
        (column("resource_id"), column("unit"), column("type"));
    let attr_cols: Vec<(usize, String)> = headers
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.strip_prefix("attr.").map(|k| (i, k.to_owned())))
        .collect();
    for (i, h) in headers.iter().enumerate() {
        if headers.iter().take(i).any(|earlier| earlier == h) {
            return Err(shape(format!("column `{h}` appears twice")));
        }
        if h == "attr." {
            return Err(shape("column `attr.` has no label key".into()));
        }
    }
    if let Some(unknown) = headers.iter().find(|h| {
        !h.starts_with("attr.")
            && !matches!(
                *h,
                "timestamp" | "metric" | "resource_id" | "unit" | "type" | "value"
            )
    }) {
        return Err(shape(format!(
            "unknown column `{unknown}` (labels go in attr.<key> columns)"
        )));
    }
    let mut b = Builder::new();
    for record in reader.records() {
        let record = record.map_err(|e| SamplesError::Row {
            path: path.to_owned(),
            line: file_line(e.position().map_or(0, |p| p.line())),
            message: match e.kind() {
                csv::ErrorKind::UnequalLengths {
                    expected_len, len, ..
                } => format!("{len} fields, the header has {expected_len}"),
                _ => e.to_string(),
            },
        })?;
        let line = file_line(record.position().map_or(0, |p| p.line()));
        let bad = |message: String| SamplesError::Row {
            path: path.to_owned(),
            line,
            message,
        };
        let cell = |i: Option<usize>| i.and_then(|i| record.get(i)).unwrap_or("");
        let timestamp = parse_timestamp(cell(Some(ts_col)).trim()).map_err(bad)?;
        let value = parse_value(cell(Some(value_col)).trim()).map_err(bad)?;
        let metric = cell(Some(metric_col));
        if metric.is_empty() {
            return Err(bad("metric: empty".into()));
        }
        let type_ = parse_type(cell(type_col).trim()).map_err(bad)?;
        let mut attributes: Vec<(String, String)> = attr_cols
            .iter()
            .filter_map(|(i, k)| {
                let v = record.get(*i).unwrap_or("");
                (!v.is_empty()).then(|| (k.clone(), v.to_owned()))
            })
            .collect();
        attributes.sort();
        b.push(
            WitSeries {
                metric: metric.to_owned(),
                resource_id: cell(resource_col).to_owned(),
                unit: cell(unit_col).to_owned(),
                type_,
                attributes,
            },
            timestamp,
            value,
        );
    }
    Ok(b.batch)
}

fn read_jsonl(path: &str, bytes: &[u8]) -> Result<WitBatch, SamplesError> {
    let text = std::str::from_utf8(bytes).map_err(|e| SamplesError::Shape {
        path: path.to_owned(),
        message: format!("not UTF-8: {e}"),
    })?;
    let mut b = Builder::new();
    for (n, raw) in text.lines().enumerate() {
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let bad = |message: String| SamplesError::Row {
            path: path.to_owned(),
            line: n as u64 + 1,
            message,
        };
        let obj: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(raw).map_err(|e| bad(format!("not a JSON object: {e}")))?;
        let text_field = |key: &str, required: bool| -> Result<String, SamplesError> {
            match obj.get(key) {
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                None | Some(serde_json::Value::Null) if !required => Ok(String::new()),
                None => Err(bad(format!("{key}: missing"))),
                Some(other) => Err(bad(format!("{key}: expected a string, found {other}"))),
            }
        };
        if let Some(unknown) = obj.keys().find(|k| {
            !matches!(
                k.as_str(),
                "timestamp" | "metric" | "resource_id" | "unit" | "type" | "attributes" | "value"
            )
        }) {
            return Err(bad(format!("unknown key `{unknown}`")));
        }
        let timestamp = match obj.get("timestamp") {
            Some(serde_json::Value::Number(n)) => n
                .as_i64()
                .ok_or_else(|| bad(format!("timestamp: {n} is not an integer of ns")))?,
            Some(serde_json::Value::String(s)) => parse_timestamp(s).map_err(&bad)?,
            Some(other) => {
                return Err(bad(format!(
                    "timestamp: expected a string or an integer, found {other}"
                )));
            }
            None => return Err(bad("timestamp: missing".into())),
        };
        let value = match obj.get("value") {
            Some(serde_json::Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            Some(serde_json::Value::String(s)) => parse_value(s).map_err(&bad)?,
            Some(other) => return Err(bad(format!("value: expected a number, found {other}"))),
            None => return Err(bad("value: missing".into())),
        };
        let metric = text_field("metric", true)?;
        if metric.is_empty() {
            return Err(bad("metric: empty".into()));
        }
        let type_ = parse_type(&text_field("type", false)?).map_err(&bad)?;
        let mut attributes = Vec::new();
        match obj.get("attributes") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Object(m)) => {
                for (k, v) in m {
                    match v {
                        serde_json::Value::String(s) => attributes.push((k.clone(), s.clone())),
                        other => {
                            return Err(bad(format!(
                                "attributes.{k}: expected a string, found {other}"
                            )));
                        }
                    }
                }
            }
            Some(other) => {
                return Err(bad(format!(
                    "attributes: expected an object, found {other}"
                )));
            }
        }
        attributes.sort();
        b.push(
            WitSeries {
                metric,
                resource_id: text_field("resource_id", false)?,
                unit: text_field("unit", false)?,
                type_,
                attributes,
            },
            timestamp,
            value,
        );
    }
    Ok(b.batch)
}

fn parse_timestamp(s: &str) -> Result<i64, String> {
    if let Ok(ns) = s.parse::<i64>() {
        return Ok(ns);
    }
    match DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.timestamp_nanos_opt().ok_or_else(|| {
            format!(
                "timestamp: {s:?} is outside the range of ns since the Unix epoch (1677 to 2262)"
            )
        }),
        Err(_) => Err(format!(
            "timestamp: {s:?} is not RFC 3339 (2026-01-01T00:00:00Z) or ns since the Unix epoch"
        )),
    }
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "NaN" | "nan" => Ok(f64::NAN),
        "+Inf" | "Inf" | "inf" | "+inf" | "Infinity" | "+Infinity" => Ok(f64::INFINITY),
        "-Inf" | "-inf" | "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => s
            .parse::<f64>()
            .map_err(|_| format!("value: {s:?} is not a number")),
    }
}

fn parse_type(s: &str) -> Result<SampleType, String> {
    if s.is_empty() {
        return Ok(SampleType::Gauge);
    }
    batch::parse_sample_type(s)
        .ok_or_else(|| format!("type: {s:?} is not gauge, delta or cumulative"))
}

/// A timestamp as written: RFC 3339 in UTC, with 0, 3, 6 or 9 fractional
/// digits, as many as the value needs.
pub fn format_timestamp(ns: i64) -> String {
    let t = DateTime::<Utc>::from_timestamp_nanos(ns);
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// A value as written: the shortest decimal that reads back to the same
/// bits, or `NaN`, `+Inf`, `-Inf`.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v:?}")
    }
}

/// The label keys used by any series of `batch`, sorted.
fn attribute_keys(batch: &WitBatch) -> Vec<String> {
    let keys: BTreeSet<&str> = batch
        .series
        .iter()
        .flat_map(|s| s.attributes.iter().map(|(k, _)| k.as_str()))
        .collect();
    keys.into_iter().map(str::to_owned).collect()
}

/// Writes `batch` as CSV with one `attr.<key>` column per label key.
///
/// # Errors
/// Only those of `out`.
pub fn write_csv(batch: &WitBatch, out: impl Write) -> std::io::Result<()> {
    let keys = attribute_keys(batch);
    let mut w = csv::Writer::from_writer(out);
    let mut header: Vec<String> = ["timestamp", "metric", "resource_id", "unit", "type"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    header.extend(keys.iter().map(|k| format!("attr.{k}")));
    header.push("value".into());
    w.write_record(&header)?;
    for row in rows(batch) {
        let mut rec = vec![
            format_timestamp(row.timestamp),
            row.series.metric.clone(),
            row.series.resource_id.clone(),
            row.series.unit.clone(),
            batch::sample_type_name(row.series.type_).to_owned(),
        ];
        for k in &keys {
            rec.push(
                row.series
                    .attributes
                    .iter()
                    .find(|(ak, _)| ak == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
            );
        }
        rec.push(format_value(row.value));
        w.write_record(&rec)?;
    }
    w.flush()
}

/// Writes `batch` as JSON lines, one object per sample.
///
/// # Errors
/// Only those of `out`.
pub fn write_jsonl(batch: &WitBatch, mut out: impl Write) -> std::io::Result<()> {
    for row in rows(batch) {
        let attributes: BTreeMap<&str, &str> = row
            .series
            .attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let value = if row.value.is_finite() {
            serde_json::json!(row.value)
        } else {
            serde_json::json!(format_value(row.value))
        };
        let obj = serde_json::json!({
            "timestamp": format_timestamp(row.timestamp),
            "metric": row.series.metric,
            "resource_id": row.series.resource_id,
            "unit": row.series.unit,
            "type": batch::sample_type_name(row.series.type_),
            "attributes": attributes,
            "value": value,
        });
        writeln!(out, "{obj}")?;
    }
    Ok(())
}

/// Writes `batch` as an Arrow IPC file with the sample schema.
///
/// # Errors
/// The batch is malformed (a series index out of range), or `out` fails.
pub fn write_arrow(batch: &WitBatch, out: impl Write) -> anyhow::Result<()> {
    let rb = batch::from_wit(batch.clone())?;
    let mut w = arrow::ipc::writer::FileWriter::try_new(out, &batch::schema())?;
    w.write(&rb)?;
    w.finish()?;
    Ok(())
}

/// One sample with its series.
pub struct Row<'a> {
    /// The sample's series.
    pub series: &'a WitSeries,
    /// Event time, ns since the Unix epoch, UTC.
    pub timestamp: i64,
    /// The value.
    pub value: f64,
}

/// The samples of `batch` in order. Samples whose series index is out of
/// range are skipped (validated batches have none).
pub fn rows(batch: &WitBatch) -> impl Iterator<Item = Row<'_>> {
    batch
        .series_index
        .iter()
        .zip(&batch.timestamps)
        .zip(&batch.values)
        .filter_map(|((i, t), v)| {
            batch.series.get(*i as usize).map(|series| Row {
                series,
                timestamp: *t,
                value: *v,
            })
        })
}

/// Where an actual batch differs from the expected one.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// 1-based sample number.
    pub row: usize,
    /// The expected sample, printed; `None` when the actual batch has more.
    pub expected: Option<String>,
    /// The actual sample, printed; `None` when it has fewer.
    pub actual: Option<String>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let none = "(none)".to_string();
        write!(
            f,
            "sample {}:\n  expected {}\n  actual   {}",
            self.row,
            self.expected.as_ref().unwrap_or(&none),
            self.actual.as_ref().unwrap_or(&none)
        )
    }
}

fn describe(row: &Row<'_>) -> String {
    let attrs: Vec<String> = row
        .series
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!(
        "{} {}{{{}}} resource={:?} unit={:?} type={} value={}",
        format_timestamp(row.timestamp),
        row.series.metric,
        attrs.join(","),
        row.series.resource_id,
        row.series.unit,
        batch::sample_type_name(row.series.type_),
        format_value(row.value),
    )
}

/// Compares two batches sample by sample, in order: series fields, time
/// and value must be equal, values bit for bit (`-0.0` ≠ `0.0`) except that
/// any NaN equals any NaN. Returns every difference.
pub fn compare(expected: &WitBatch, actual: &WitBatch) -> Vec<Difference> {
    let same = |a: &Row<'_>, b: &Row<'_>| {
        a.timestamp == b.timestamp
            && (a.value.to_bits() == b.value.to_bits() || (a.value.is_nan() && b.value.is_nan()))
            && a.series.metric == b.series.metric
            && a.series.resource_id == b.series.resource_id
            && a.series.unit == b.series.unit
            && a.series.type_ as u8 == b.series.type_ as u8
            && a.series.attributes == b.series.attributes
    };
    let mut e = rows(expected);
    let mut a = rows(actual);
    let mut out = Vec::new();
    for row in 1.. {
        match (e.next(), a.next()) {
            (None, None) => break,
            (Some(x), Some(y)) if same(&x, &y) => {}
            (x, y) => out.push(Difference {
                row,
                expected: x.as_ref().map(describe),
                actual: y.as_ref().map(describe),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_str(name: &str, text: &str) -> Result<WitBatch, SamplesError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        read(&p)
    }

    #[test]
    fn csv_rows_become_series_and_samples() {
        let b = read_str(
            "in.csv",
            "timestamp,metric,resource_id,unit,type,attr.cpu,value\n\
             2026-01-01T00:00:00Z,cpu.time,h1,s,cumulative,0,1.5\n\
             2026-01-01T00:00:10.25Z,cpu.time,h1,s,cumulative,0,-0\n\
             1767225600000000000,cpu.time,h1,s,cumulative,1,NaN\n\
             2026-01-01T01:00:00+01:00,memory,h1,B,,,+Inf\n",
        )
        .unwrap();
        assert_eq!(b.series.len(), 3);
        assert_eq!(b.series_index, vec![0, 0, 1, 2]);
        assert_eq!(
            b.timestamps,
            vec![
                1_767_225_600_000_000_000,
                1_767_225_610_250_000_000,
                1_767_225_600_000_000_000,
                1_767_225_600_000_000_000
            ]
        );
        assert_eq!(b.values[0], 1.5);
        assert_eq!(b.values[1].to_bits(), (-0.0f64).to_bits());
        assert!(b.values[2].is_nan());
        assert_eq!(b.values[3], f64::INFINITY);
        assert_eq!(b.series[0].attributes, vec![("cpu".into(), "0".into())]);
        assert!(b.series[2].attributes.is_empty());
        let spaced = read_str("s.csv", "timestamp,metric,value\n 0 , m , 1.5 \n").unwrap();
        assert_eq!(spaced.series[0].metric, " m ");
        assert_eq!(spaced.values, vec![1.5]);
        assert!(matches!(b.series[2].type_, SampleType::Gauge));
    }

    #[test]
    fn csv_and_jsonl_round_trip_exactly() {
        let b = read_str(
            "in.csv",
            "timestamp,metric,resource_id,unit,type,attr.cpu,attr.mode,value\n\
             2026-01-01T00:00:00.000000001Z,cpu.time,h1,s,cumulative,0,idle,0.1\n\
             2026-01-01T00:00:10Z,cpu.time,h1,s,cumulative,0,,-0\n\
             2026-01-01T00:00:20Z,x,,,delta,,,-Inf\n",
        )
        .unwrap();
        let mut csv_out = Vec::new();
        write_csv(&b, &mut csv_out).unwrap();
        let again = read_str("again.csv", std::str::from_utf8(&csv_out).unwrap()).unwrap();
        assert_eq!(compare(&b, &again), vec![]);
        let mut jsonl = Vec::new();
        write_jsonl(&b, &mut jsonl).unwrap();
        let text = String::from_utf8(jsonl).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            r#"{"attributes":{"cpu":"0","mode":"idle"},"metric":"cpu.time","resource_id":"h1","timestamp":"2026-01-01T00:00:00.000000001Z","type":"cumulative","unit":"s","value":0.1}"#
        );
        let again = read_str("again.jsonl", &text).unwrap();
        assert_eq!(compare(&b, &again), vec![]);
        let mut arrow = Vec::new();
        write_arrow(&b, &mut arrow).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dead-letter");
        std::fs::write(&p, arrow).unwrap();
        assert_eq!(compare(&b, &read(&p).unwrap()), vec![]);
    }

    #[test]
    fn differences_name_the_sample_and_both_sides() {
        let e = read_str("e.csv", "timestamp,metric,value\n0,m,1\n0,m,0\n").unwrap();
        let a = read_str("a.csv", "timestamp,metric,value\n0,m,1\n0,m,-0\n0,m,2\n").unwrap();
        let d = compare(&e, &a);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].row, 2);
        assert_eq!(
            d[0].to_string(),
            "sample 2:\n  expected 1970-01-01T00:00:00Z m{} resource=\"\" unit=\"\" type=gauge value=0.0\n  actual   1970-01-01T00:00:00Z m{} resource=\"\" unit=\"\" type=gauge value=-0.0"
        );
        assert_eq!(d[1].expected, None);
        let nan = read_str("n.csv", "timestamp,metric,value\n0,m,NaN\n").unwrap();
        assert_eq!(compare(&nan, &nan.clone()), vec![]);
    }

    #[test]
    fn bad_rows_name_file_line_and_field() {
        let err = read_str("in.csv", "timestamp,metric,value\n0,m,1\n0,m,abc\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("in.csv:3: value: \"abc\" is not a number"),
            "{err}"
        );
        let err = read_str("in.csv", "timestamp,metric,value\nyesterday,m,1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("in.csv:2: timestamp: \"yesterday\" is not RFC 3339"),
            "{err}"
        );
        let err = read_str("in.csv", "time,metric,value\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no `timestamp` column"), "{err}");
        let err = read_str("in.csv", "timestamp,metric,value,host\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown column `host`"), "{err}");
        let err = read_str(
            "in.jsonl",
            "{\"timestamp\":0,\"metric\":\"m\",\"value\":1}\n{\"timestamp\":0,\"metric\":\"m\",\"value\":1,\"attributes\":{\"a\":1}}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.ends_with("in.jsonl:2: attributes.a: expected a string, found 1"),
            "{err}"
        );
        let err = read_str(
            "in.csv",
            "timestamp,metric,value\n# a comment\n\n0,m,1\n0,m,x\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.ends_with("in.csv:5: value: \"x\" is not a number"),
            "{err}"
        );
        let err = read_str("in.csv", "timestamp,metric,value\n\n0,m,1,2\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("in.csv:3: 4 fields, the header has 3"),
            "{err}"
        );
        let err = read_str("in.csv", "timestamp,metric,value,attr.k,attr.k\n")
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("column `attr.k` appears twice"), "{err}");
        let err = read_str(
            "in.csv",
            "timestamp,metric,value\n9999-01-01T00:00:00Z,m,1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("is outside the range of ns since the Unix epoch"),
            "{err}"
        );
        let err = read_str("in.csv", "timestamp,metric,type,value\n0,m,counter,1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with(":2: type: \"counter\" is not gauge, delta or cumulative"),
            "{err}"
        );
    }
}

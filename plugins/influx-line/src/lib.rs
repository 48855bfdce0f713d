//! `influx-line` decoder: InfluxDB line protocol into samples.
//!
//! TODO docs
#![allow(missing_docs)]

use wasmeter_guest::decode::{Decoded, RejectedLine};
use wasmeter_guest::{BatchBuilder, Decoder, Error, Level, SampleType, Series, Settings};

mod parse;

pub use parse::{BadLine, FieldValue, Point, Precision, parse, parse_strict};

/// The settings keys, in the order the docs list them.
const KEYS: &[&str] = &["mode", "precision", "resource_tag", "resource_id", "unit", "type"];

/// The decoder: its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct InfluxLine {
    strict: bool,
    precision: Precision,
    resource_tag: String,
    resource_id: String,
    unit: String,
    sample_type: SampleType,
}

fn bad_setting(key: &str, value: &str, expected: &str) -> Error {
    Error::invalid_settings(format!("setting `{key}`: expected {expected}, got {value:?}"))
}

impl Decoder for InfluxLine {
    fn init(settings: Settings) -> Result<Self, Error> {
        for (key, _) in settings.iter() {
            if !KEYS.contains(&key) {
                return Err(Error::invalid_settings(format!(
                    "unknown setting `{key}` (expected mode, precision, resource_tag, resource_id, unit or type)"
                )));
            }
        }
        let strict = match settings.get("mode").unwrap_or("lenient") {
            "lenient" => false,
            "strict" => true,
            v => return Err(bad_setting("mode", v, "lenient or strict")),
        };
        let precision = match settings.get("precision") {
            None => Precision::Ns,
            Some(v) => Precision::from_name(v).ok_or_else(|| bad_setting("precision", v, "ns, us, µs, ms or s"))?,
        };
        let resource_tag = settings.get("resource_tag").unwrap_or("host");
        if resource_tag.is_empty() {
            return Err(bad_setting("resource_tag", resource_tag, "a tag key"));
        }
        let sample_type = match settings.get("type").unwrap_or("gauge") {
            "gauge" => SampleType::Gauge,
            "cumulative" => SampleType::Cumulative,
            "delta" => SampleType::Delta,
            v => return Err(bad_setting("type", v, "gauge, cumulative or delta")),
        };
        Ok(InfluxLine {
            strict,
            precision,
            resource_tag: resource_tag.to_owned(),
            resource_id: settings.get("resource_id").unwrap_or("").to_owned(),
            unit: settings.get("unit").unwrap_or("").to_owned(),
            sample_type,
        })
    }

    fn decode(&mut self, input: Vec<u8>, _content_type: String, now_ns: i64) -> Result<Decoded, Error> {
        let mut b = BatchBuilder::new();
        let mut rejected = Vec::new();
        let mut strings = 0usize;
        for line in parse(&input, self.precision, now_ns) {
            let point = match line {
                Ok(p) => p,
                Err(bad) if self.strict => return Err(Error::invalid_input(bad.to_string())),
                Err(BadLine { line, reason }) => {
                    rejected.push(RejectedLine { line, reason });
                    continue;
                }
            };
            strings += self.push(&mut b, point);
        }
        if strings > 0 {
            wasmeter_guest::log(
                Level::Info,
                &format!("skipped {strings} string field(s): strings are not samples"),
            );
        }
        Ok(Decoded { batch: b.finish(), rejected })
    }
}

impl InfluxLine {
    /// Appends one sample per numeric field of `p`; returns how many string
    /// fields it skipped.
    fn push(&self, b: &mut BatchBuilder, p: Point) -> usize {
        let mut resource_id = None;
        let mut attributes = Vec::with_capacity(p.tags.len());
        for (k, v) in p.tags {
            if k == self.resource_tag {
                resource_id = Some(v);
            } else {
                attributes.push((k, v));
            }
        }
        let resource_id = resource_id.unwrap_or_else(|| self.resource_id.clone());
        let mut strings = 0;
        for (field, value) in p.fields {
            let value = match value {
                FieldValue::Float(f) => f,
                FieldValue::Int(i) => i as f64,
                FieldValue::UInt(u) => u as f64,
                FieldValue::Bool(t) => f64::from(u8::from(t)),
                FieldValue::String(_) => {
                    strings += 1;
                    continue;
                }
            };
            let metric = if field == "value" {
                p.measurement.clone()
            } else {
                format!("{}.{field}", p.measurement)
            };
            let s = b.add_series(Series {
                metric,
                resource_id: resource_id.clone(),
                unit: self.unit.clone(),
                type_: self.sample_type,
                attributes: attributes.clone(),
            });
            b.push(s, p.time_ns, value);
        }
        strings
    }
}

wasmeter_guest::export_decoder!(InfluxLine);

#[cfg(test)]
mod tests;

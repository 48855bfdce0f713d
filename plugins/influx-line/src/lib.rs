//! `influx-line` decoder: InfluxDB line protocol into samples.
//!
//! One `decode` call takes one whole document (a file, a scrape body, a
//! chunk of whole lines) and gives one sample per numeric field of each
//! line:
//!
//! ```text
//! cpu,host=web-1,cpu=0 usage_user=12.5,value=3i,state="ok" 1700000000000000000
//!
//! metric           resource  attributes  value  time
//! cpu.usage_user   web-1     {cpu=0}     12.5   1700000000000000000
//! cpu              web-1     {cpu=0}     3      1700000000000000000
//!                  (state is a string: skipped, counted)
//! ```
//!
//! Settings:
//!
//! | key            | meaning                                                        | default   |
//! |----------------|----------------------------------------------------------------|-----------|
//! | `mode`         | `lenient`: bad lines are returned as rejected lines, the others kept; `strict`: the first bad line fails the call (`invalid-input`, `line N: reason`) | `lenient` |
//! | `precision`    | the unit of the timestamps: `ns`, `us` (or `µs`), `ms`, `s`   | `ns`      |
//! | `resource_tag` | the tag whose value is the resource; removed from the attributes (`""`: none) | `host` |
//! | `resource_id`  | the resource of lines without that tag                        | `""`      |
//! | `unit`         | the unit of every series (line protocol carries none)          | `""`      |
//! | `type`         | the type of every series: `gauge`, `cumulative`, `delta`       | `gauge`   |
//!
//! A bad value or an unknown key is an `invalid-settings` error naming the
//! key, the value and the allowed set.
//!
//! Mapping, per line:
//!
//! | line protocol                  | sample                                                        |
//! |--------------------------------|---------------------------------------------------------------|
//! | measurement `m`, field `f`     | metric `m.f`; a field named `value` gives just `m` (Telegraf's habit) |
//! | tag `resource_tag` (`host`)    | `resource_id` (else the `resource_id` setting); not an attribute |
//! | the other tags                 | attributes, sorted by key                                     |
//! | float `1.5`, `-2e3`, `.5`      | that value                                                    |
//! | integer `12i`, unsigned `12u`  | as f64: beyond ±2^53 the nearest f64 (precision is lost)      |
//! | boolean `t`/`true`/`F`/…       | 1.0 / 0.0                                                     |
//! | string `"…"`                   | no sample: skipped and counted; one `info` log per call with the count |
//! | timestamp                      | × precision, in ns; beyond an i64 of ns the line is bad       |
//! | no timestamp                   | the call's `now`, rounded down to the precision (as the Go reference does with its default time) |
//!
//! Unit and type come from the settings. The content type is not looked
//! at. Fields with the same metric on one line give two samples.
//!
//! # Grammar
//!
//! The reference is Go's `github.com/influxdata/line-protocol/v2`, whose
//! decode corpus (`tests/data/influxdb-line-protocol-corpus`, 735 cases)
//! the unit tests run through [`parse`]: every case agrees.
//!
//! - Blank lines and lines starting with `#` (after spaces) are skipped;
//!   `\r\n` ends a line like `\n`. Sections are separated by runs of
//!   spaces; trailing spaces are allowed; a tab is not a separator.
//! - Measurement, tag keys and values, field keys: no control bytes
//!   (0–31, 127); valid UTF-8. A backslash escapes `,` and space in a
//!   measurement, `,` `=` and space in keys and tag values; before anything
//!   else (`\\` included) it is a literal backslash.
//! - String fields: `\"`, `\\`, `\n`, `\r`, `\t` are escapes, any other
//!   backslash is itself; a string may span lines (the point's line is the
//!   one it starts on).
//! - Numbers: integers `-?[0-9]+i` in i64, unsigned `[0-9]+u` in u64,
//!   floats decimal (`1`, `1.`, `.5`, `-1e-3`) and finite. The corpus does
//!   not cover `+1`, `-inf`, hex or `_` digit separators: they are refused.
//! - A duplicate tag key makes the line bad. Timestamps are `-?[0-9]+` in
//!   i64.
//!
//! # Why not the `influxdb-line-protocol` crate
//!
//! The parser is our own (`src/parse.rs`). The `influxdb-line-protocol`
//! 2.0.0 crate was tried first, as a library should be: it disagreed with
//! the Go corpus on 52 of the 735 cases, and most of those differences
//! cannot be fixed around its output:
//!
//! - it unescapes `\\` to `\` in names and tag values where Go keeps both
//!   backslashes, and it leaves `\n`, `\t`, `\r` in strings as two
//!   characters where Go unescapes them. Once it has unescaped, `\\n` and
//!   `\n` look the same, so a check after it cannot undo that;
//! - it refuses the floats `1.` and `.5`, and `\r\n` line ends;
//! - it accepts control bytes in names, a leading tab, duplicate tags and
//!   floats beyond f64 (as infinity);
//! - it takes `&str` (no per-line UTF-8 errors) and gives no line numbers.
//!
//! Working around the first three means finding tokens in the raw text
//! before the crate sees it, which is the parser itself. Line protocol is a
//! small grammar, and one byte-level scanner handles all of it with exact
//! line numbers.

use wasmeter_guest::decode::{Decoded, RejectedLine};
use wasmeter_guest::{BatchBuilder, Decoder, Error, Level, SampleType, Series, Settings};

mod parse;

pub use parse::{BadLine, FieldValue, Point, Precision, parse, parse_strict};

/// The settings keys.
const KEYS: &[&str] = &[
    "mode",
    "precision",
    "resource_tag",
    "resource_id",
    "unit",
    "type",
];

/// The decoder: its settings (see the crate docs).
#[derive(Debug, Clone, PartialEq)]
pub struct InfluxLine {
    strict: bool,
    precision: Precision,
    resource_tag: String,
    resource_id: String,
    unit: String,
    sample_type: SampleType,
}

/// What [`InfluxLine::decode_document`] produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The samples and the rejected lines.
    pub decoded: Decoded,
    /// How many string fields were skipped.
    pub strings_skipped: usize,
}

fn bad_setting(key: &str, value: &str, expected: &str) -> Error {
    Error::invalid_settings(format!(
        "setting `{key}`: expected {expected}, got {value:?}"
    ))
}

impl InfluxLine {
    /// Decodes one document as [`Decoder::decode`] does, without logging;
    /// also says how many string fields were skipped.
    ///
    /// # Errors
    /// In strict mode, `invalid-input` `line N: reason` for the first bad
    /// line.
    pub fn decode_document(&self, input: &[u8], now_ns: i64) -> Result<Output, Error> {
        let mut b = BatchBuilder::new();
        let mut rejected = Vec::new();
        let mut strings_skipped = 0;
        for line in parse(input, self.precision, now_ns) {
            match line {
                Ok(p) => strings_skipped += self.push(&mut b, p),
                Err(bad) if self.strict => return Err(Error::invalid_input(bad.to_string())),
                Err(BadLine { line, reason }) => rejected.push(RejectedLine { line, reason }),
            }
        }
        Ok(Output {
            decoded: Decoded {
                batch: b.finish(),
                rejected,
            },
            strings_skipped,
        })
    }

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
                // Nearest f64: exact up to 2^53.
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

impl Decoder for InfluxLine {
    fn init(settings: Settings) -> Result<Self, Error> {
        if let Some((key, _)) = settings.iter().find(|(k, _)| !KEYS.contains(k)) {
            return Err(Error::invalid_settings(format!(
                "unknown setting `{key}` (expected mode, precision, resource_tag, resource_id, unit or type)"
            )));
        }
        let strict = match settings.get("mode").unwrap_or("lenient") {
            "lenient" => false,
            "strict" => true,
            v => return Err(bad_setting("mode", v, "lenient or strict")),
        };
        let precision = match settings.get("precision") {
            None => Precision::Ns,
            Some(v) => Precision::from_name(v)
                .ok_or_else(|| bad_setting("precision", v, "ns, us, µs, ms or s"))?,
        };
        let sample_type = match settings.get("type").unwrap_or("gauge") {
            "gauge" => SampleType::Gauge,
            "cumulative" => SampleType::Cumulative,
            "delta" => SampleType::Delta,
            v => return Err(bad_setting("type", v, "gauge, cumulative or delta")),
        };
        Ok(InfluxLine {
            strict,
            precision,
            resource_tag: settings.get("resource_tag").unwrap_or("host").to_owned(),
            resource_id: settings.get("resource_id").unwrap_or("").to_owned(),
            unit: settings.get("unit").unwrap_or("").to_owned(),
            sample_type,
        })
    }

    fn decode(
        &mut self,
        input: Vec<u8>,
        _content_type: String,
        now_ns: i64,
    ) -> Result<Decoded, Error> {
        let out = self.decode_document(&input, now_ns)?;
        if out.strings_skipped > 0 {
            wasmeter_guest::log(
                Level::Info,
                &format!(
                    "skipped {} string field(s): strings are not samples",
                    out.strings_skipped
                ),
            );
        }
        Ok(out.decoded)
    }
}

wasmeter_guest::export_decoder!(InfluxLine);

#[cfg(test)]
mod tests;

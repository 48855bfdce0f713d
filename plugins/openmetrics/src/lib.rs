//! `openmetrics` decoder: Prometheus text format 0.0.4 and OpenMetrics 1.0
//! text, one whole scrape body or file per `decode` call, into samples.
//!
//! The parser is this crate's own (see [`parse`], usable natively):
//! line-oriented, borrowing from the input, allocating only for what the
//! batch keeps (one series per distinct series text) and for unescaped
//! label values.
//!
//! # Settings
//!
//! | key              | meaning | default |
//! |------------------|---------|---------|
//! | `mode`           | `lenient`: keep the good lines, return each bad one as a rejected line; `strict`: the first problem fails the call | `lenient` |
//! | `format`         | `auto`, `prometheus` or `openmetrics` | `auto` |
//! | `resource_label` | the label whose value becomes the sample's resource; it is removed from the attributes (`""`: none) | `instance` |
//! | `resource_id`    | the resource of samples without that label (the host sets the scrape target's `host:port`) | `""` |
//!
//! `auto` takes the format from the content type (`application/openmetrics-text…`
//! → OpenMetrics, `text/plain…` → Prometheus, case-insensitive); when it is
//! empty or another type, the document is OpenMetrics if its last non-empty
//! line is `# EOF`, else Prometheus. Unknown keys and bad values are
//! `invalid-settings` errors naming the key and the value.
//!
//! # Mapping
//!
//! | sample field | from |
//! |--------------|------|
//! | metric       | the sample name as written: `http_requests_total`, `x_bucket`, `x_count`, `x_created`… |
//! | resource_id  | the `resource_label` label's value, else the `resource_id` setting |
//! | attributes   | the labels sorted by name, but the resource label; `le` and `quantile` as written (unescaped) |
//! | unit         | the family's `# UNIT` (OpenMetrics; on every sample of the family), else `""` |
//! | type         | see below |
//! | timestamp    | OpenMetrics: seconds (a real number) → ns; Prometheus: int64 ms → ns; none → the call's `now` |
//! | value        | the value as f64; `NaN`, `+Inf`, `-Inf` kept |
//!
//! | family type | sample | sample type |
//! |-------------|--------|-------------|
//! | counter | `_total` (OpenMetrics), the sample (Prometheus) | cumulative |
//! | counter, histogram, summary | `_created` | gauge |
//! | histogram | `_bucket`, `_count`, `_sum` | cumulative |
//! | summary | `_count`, `_sum` | cumulative |
//! | summary | quantiles (the bare name with `quantile`) | gauge |
//! | gaugehistogram | `_bucket`, `_gcount`, `_gsum` | gauge |
//! | gauge, info, stateset, unknown, untyped, none | all | gauge |
//!
//! Timestamps are converted in decimal, exactly; digits below 1 ns are
//! dropped and times outside the i64 nanosecond range (before 1678, after
//! 2262) are clamped to it. Exemplars (OpenMetrics) are parsed and checked,
//! not emitted. `# HELP` text is checked, not emitted.
//!
//! # What is checked
//!
//! OpenMetrics: the 1.0 spec's rules, as its conformance suite decides them
//! (all 211 cases pass in strict mode): `# EOF` as the last line; single
//! spaces, no blank lines or other comments; names, labels and escapes;
//! each family's lines together, its metadata once and before its samples,
//! no name clashing with another family's sample names; valid types, a unit
//! that ends the family name (none on info and stateset); counter-like
//! samples (`_total`, `_sum`, `_count`, `_bucket`, `_gcount`; `_gsum` only
//! for NaN) neither NaN nor negative; `le` (with `+Inf` written so) and
//! `quantile` (0 to 1) present and canonical; buckets in increasing `le`
//! order with non-decreasing counts, a `+Inf` bucket, `_count` equal to it,
//! `_sum` and `_count` together and no `_sum` with negative buckets (`_gsum`
//! and `_gcount` alike); stateset values 0/1 with the family-named label,
//! info values 1; exemplars only on counter `_total` and bucket samples,
//! with at most 128 characters of labels; timestamps as real numbers, each
//! series group's samples together and not going back in time.
//!
//! Prometheus 0.0.4: blanks (spaces and tabs) between tokens, blank lines
//! and `#` comments allowed; `# HELP` (escapes `\\`, `\n`) and `# TYPE`
//! (`counter`, `gauge`, `histogram`, `summary`, `untyped`) once per family
//! and before its samples; a family's lines together; label escapes `\\`,
//! `\"`, `\n`, a trailing comma allowed, no duplicate label; histogram
//! buckets need `le`, summary quantiles `quantile`; the optional timestamp is
//! an int64 of milliseconds.
//!
//! # Faults
//!
//! Strict mode: the first problem is an `invalid-input` error
//! `line N: reason`. Lenient mode: a bad line is returned as a
//! [`RejectedLine`] (1-based line, lowercase reason naming the bad token and
//! what was expected) and costs only itself: it changes no state, so a
//! sample of a family whose `# TYPE` line was refused is kept as untyped. A
//! line that is not UTF-8 is one bad line. The rules that judge a whole
//! histogram point (`+Inf` bucket present, `_count` equal to it, `_sum` and
//! `_count` together, no `_sum` with negative buckets, negative `_gsum`) can
//! only be decided when the point ends and apply in strict mode only.
//! In both modes an OpenMetrics document without `# EOF` as its last line
//! is refused as a whole (`invalid-input`): it may be truncated.
//!
//! # Example
//!
//! ```
//! use wasmeter_plugin_openmetrics::{parse, Config, Format};
//! use wasmeter_guest::SampleType;
//!
//! let text = concat!(
//!     "# TYPE http_requests counter\n",
//!     "http_requests_total{code=\"200\",instance=\"web:9100\"} 1027 1700000000.5\n",
//!     "# EOF\n",
//! );
//! let out = parse(text.as_bytes(), "", 0, &Config::default()).unwrap();
//! assert_eq!(out.format, Format::OpenMetrics);
//! let s = out.batch.samples().next().unwrap();
//! assert_eq!(s.series.metric, "http_requests_total");
//! assert_eq!(s.series.resource_id, "web:9100");
//! assert_eq!(s.series.type_, SampleType::Cumulative);
//! assert_eq!(s.series.attributes, vec![("code".to_string(), "200".to_string())]);
//! assert_eq!((s.timestamp, s.value), (1_700_000_000_500_000_000, 1027.0));
//! ```

use wasmeter_guest::decode::{Decoded, RejectedLine};
use wasmeter_guest::{Batch, Decoder, Error, Settings};

mod family;
mod line;
mod number;
mod parser;

use line::Syntax;

/// How bad lines are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Keep the good lines; return each bad one as a [`RejectedLine`].
    #[default]
    Lenient,
    /// The first problem fails the whole call.
    Strict,
}

/// Which text format the input is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Decided per document: the content type, else a last `# EOF` line.
    #[default]
    Auto,
    /// Prometheus text format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

/// The decoder's settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `mode`.
    pub mode: Mode,
    /// `format`.
    pub format: Format,
    /// `resource_label`: the label that names the resource (`""`: none).
    pub resource_label: String,
    /// `resource_id`: the resource of samples without that label.
    pub resource_id: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Lenient,
            format: Format::Auto,
            resource_label: "instance".into(),
            resource_id: String::new(),
        }
    }
}

impl Config {
    /// Reads and checks the plugin's settings.
    ///
    /// # Errors
    /// `invalid-settings` naming the key and the bad value, or an unknown
    /// key.
    pub fn from_settings(settings: &Settings) -> Result<Self, Error> {
        let mut config = Config::default();
        for (key, value) in settings.iter() {
            match key {
                "mode" => {
                    config.mode = match value {
                        "lenient" => Mode::Lenient,
                        "strict" => Mode::Strict,
                        _ => return Err(bad_setting(key, value, "lenient or strict")),
                    }
                }
                "format" => {
                    config.format = match value {
                        "auto" => Format::Auto,
                        "prometheus" => Format::Prometheus,
                        "openmetrics" => Format::OpenMetrics,
                        _ => {
                            return Err(bad_setting(key, value, "auto, prometheus or openmetrics"));
                        }
                    }
                }
                "resource_label" => {
                    if !value.is_empty() && !line::is_label_name(value) {
                        return Err(bad_setting(
                            key,
                            value,
                            "a label name ([a-zA-Z_][a-zA-Z0-9_]*) or \"\"",
                        ));
                    }
                    config.resource_label = value.to_owned();
                }
                "resource_id" => config.resource_id = value.to_owned(),
                _ => {
                    return Err(Error::invalid_settings(format!(
                        "unknown setting `{key}` (expected mode, format, resource_label or resource_id)"
                    )));
                }
            }
        }
        Ok(config)
    }

    /// The format of one document.
    fn syntax(&self, input: &[u8], content_type: &str) -> Syntax {
        match self.format {
            Format::Prometheus => Syntax::Prometheus,
            Format::OpenMetrics => Syntax::OpenMetrics,
            Format::Auto => {
                let media = content_type.trim().to_ascii_lowercase();
                if media.starts_with("application/openmetrics-text") {
                    Syntax::OpenMetrics
                } else if media.starts_with("text/plain") {
                    Syntax::Prometheus
                } else if ends_with_eof(input) {
                    Syntax::OpenMetrics
                } else {
                    Syntax::Prometheus
                }
            }
        }
    }
}

fn bad_setting(key: &str, value: &str, expected: &str) -> Error {
    Error::invalid_settings(format!(
        "setting `{key}`: expected {expected}, got {value:?}"
    ))
}

/// True when the last non-empty line of `input` is `# EOF`.
fn ends_with_eof(input: &[u8]) -> bool {
    let end = input
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let body = &input[..end];
    let start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    &body[start..] == b"# EOF"
}

/// What [`parse`] read from one document.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The samples of the accepted lines.
    pub batch: Batch,
    /// The refused lines, in input order (lenient mode).
    pub rejected: Vec<RejectedLine>,
    /// How many metric families the document has (described or sampled).
    pub families: usize,
    /// The format the document was read as (never [`Format::Auto`]).
    pub format: Format,
}

/// Decodes one document. `content_type` is the media type the source
/// declared ("" when unknown); `now_ns` stamps samples without a timestamp
/// (ns since the Unix epoch, UTC).
///
/// # Errors
/// `invalid-input` `line N: reason`: in strict mode at the first problem; in
/// both modes when an OpenMetrics document does not end with `# EOF`.
pub fn parse(
    input: &[u8],
    content_type: &str,
    now_ns: i64,
    config: &Config,
) -> Result<Parsed, Error> {
    let syntax = config.syntax(input, content_type);
    parser::Parser::new(config, syntax, now_ns).run(input)
}

/// The decoder plugin.
pub struct OpenMetrics {
    config: Config,
}

impl Decoder for OpenMetrics {
    fn init(settings: Settings) -> Result<Self, Error> {
        Ok(OpenMetrics {
            config: Config::from_settings(&settings)?,
        })
    }

    fn decode(
        &mut self,
        input: Vec<u8>,
        content_type: String,
        now_ns: i64,
    ) -> Result<Decoded, Error> {
        let parsed = parse(&input, &content_type, now_ns, &self.config)?;
        Ok(Decoded {
            batch: parsed.batch,
            rejected: parsed.rejected,
        })
    }
}

wasmeter_guest::export_decoder!(OpenMetrics);

#[cfg(test)]
mod tests;

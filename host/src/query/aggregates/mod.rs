//! Gnocchi's aggregates operations (`POST /v1/aggregates`, reference §1.7):
//! parsing the operations and evaluating them over archived series.
//!
//! Consumes: operations text (an s-expression or Gnocchi's JSON-list form)
//! and a [`Source`] of aggregated series (bucket start, value).
//! Emits: an [`Output`], either one aggregated series per granularity or
//! one series per input series.
//!
//! ```text
//! "(aggregate mean (metric (a mean) (b mean)))"
//!     │ parse
//!     v
//! Operation::Aggregate { Mean, Metric[(a, mean), (b, mean)] }
//!     │ evaluate: per granularity every referenced series shares,
//!     │ coarsest first
//!     v
//! grid (series × union of timestamps, NaN where missing)
//!     │ fill / overlap check + trim (Options)
//!     │ the operations, on the grid's columns
//!     v
//! Output::Aggregated [(60 s, [(12:01, 6.0), (12:02, 11.5)])]
//! ```
//!
//! Units: timestamps are nanoseconds since the Unix epoch (UTC), bucket
//! starts; granularities are nanoseconds. In the operations text, a
//! `resample` granularity is seconds (`120`) or a duration (`2m`).
//!
//! # Grammar
//!
//! ```text
//! op := (metric NAME AGG) | (metric (NAME AGG) (NAME AGG) …)
//!     | (aggregate CROSS op)            CROSS: mean median std var min max
//!     | (rolling CROSS WINDOW op)              sum count, or rate:CROSS
//!     | (resample METHOD GRANULARITY op) METHOD: carbonara's (mean … Npct)
//!     | (BINARY op op)   + - * / ** % mod add sub mul div pow
//!     |                  = == eq < lt > gt <= le >= ge != ne (0/1)
//!     |                  clip_min clip_max max (element-wise fmax)
//!     | (clip op LO HI)
//!     | (UNARY op)       abs neg cos sin tan floor ceil
//!     | (rateofchange op) | (rateofchangesec op)
//!     | NUMBER
//! ```
//!
//! The JSON form spells every list as a JSON array:
//! `["aggregate", "mean", ["metric", ["a", "mean"], ["b", "mean"]]]`.
//!
//! # Edge cases, decided
//!
//! - Series ⊗ series on different timestamps (e.g. a series against its own
//!   `rolling`) combine on the timestamps both have; Gnocchi refuses them.
//!   Different granularities are refused, as in Gnocchi.
//! - An aggregated result with several columns (e.g. an aggregate added to
//!   a two-series `metric`) is output as its first column, as Gnocchi does.
//! - `rolling rate:X` is `rolling X`, then differenced over time, dropping
//!   the first point.
//! - `resample` buckets a series' grid cells, NaN cells included (as
//!   Gnocchi: `count` counts them, `mean` turns NaN); a bucket where the
//!   method gives no point (`std` of one cell) is absent.
//!
//! # Example
//!
//! ```
//! use wasmeter::query::aggregates::{
//!     evaluate, parse, Options, Output, Points, QueryError, Source,
//! };
//!
//! struct Two;
//! impl Source for Two {
//!     fn granularities(&self, _: &str, _: &str) -> Result<Vec<i64>, QueryError> {
//!         Ok(vec![60_000_000_000])
//!     }
//!     fn series(
//!         &self, name: &str, _: &str, _: i64, _: Option<i64>, _: Option<i64>,
//!     ) -> Result<Vec<(String, Points)>, QueryError> {
//!         let m = 60_000_000_000;
//!         let points = match name {
//!             "a" => Points { timestamps: vec![0, m, 2 * m], values: vec![1.0, 2.0, 3.0] },
//!             _ => Points { timestamps: vec![m, 2 * m, 3 * m], values: vec![10.0, 20.0, 30.0] },
//!         };
//!         Ok(vec![(name.to_string(), points)])
//!     }
//! }
//!
//! let op = parse("(aggregate mean (metric (a mean) (b mean)))")?;
//! let out = evaluate(&op, &Two, &Options::default())?;
//! let m = 60_000_000_000;
//! assert_eq!(out, Output::Aggregated(vec![(m, vec![(m, 6.0), (2 * m, 11.5)])]));
//! # Ok::<(), QueryError>(())
//! ```

mod eval;
mod parse;

#[cfg(test)]
mod tests;

use crate::rollup::BaseMethod;

pub use eval::evaluate;
pub use parse::parse;

/// One input series as the archive gives it: bucket starts ascending, one
/// value each.
///
/// ```text
/// timestamps: [t0, t1, …]   ns since the Unix epoch, UTC, bucket starts
/// values:     [v0, v1, …]   same length; NaN counts as missing
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Points {
    /// Bucket starts, ns since the Unix epoch (UTC), ascending.
    pub timestamps: Vec<i64>,
    /// One value per timestamp.
    pub values: Vec<f64>,
}

/// Where `(metric NAME AGG)` gets its data.
///
/// A NAME may match several series (one per resource or label set); each
/// is a separate "metric" in Gnocchi's sense and a separate row of the
/// grid.
pub trait Source {
    /// Granularities (ns) at which every series of `name` has the method
    /// `aggregation`, finest first.
    ///
    /// # Errors
    /// [`QueryError::UnknownMetric`] or [`QueryError::UnknownAggregation`]
    /// naming `name`/`aggregation`; [`QueryError::Source`] when reading
    /// fails.
    fn granularities(&self, name: &str, aggregation: &str) -> Result<Vec<i64>, QueryError>;

    /// The series of `name` for `aggregation` at `granularity` (ns),
    /// restricted to buckets in `[start, stop)`, each with a label (e.g.
    /// `"cpu.util/web-1"`). `start` is already floored to `granularity` by
    /// the evaluator (reference §1.5); `None` means unbounded. Points outside
    /// the range are dropped by the evaluator anyway.
    ///
    /// # Errors
    /// As [`Source::granularities`].
    fn series(
        &self,
        name: &str,
        aggregation: &str,
        granularity: i64,
        start: Option<i64>,
        stop: Option<i64>,
    ) -> Result<Vec<(String, Points)>, QueryError>;
}

/// How the grid's missing cells are treated (Gnocchi's `fill`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum Fill {
    /// No `fill` (the default): the overlap check and trim of
    /// [`Options::needed_overlap`], then missing cells are skipped.
    #[default]
    Missing,
    /// `null`: missing cells are skipped; no overlap check.
    Null,
    /// `dropna`: as `null`, and NaN/±inf results are removed.
    DropNa,
    /// A number: missing cells get it.
    Value(f64),
    /// `ffill`: each series carries its last value forward; NaN/±inf
    /// results are removed.
    Ffill,
    /// `bfill`: each series pulls its next value backward; NaN/±inf
    /// results are removed.
    Bfill,
    /// `full_ffill`: ffill, then bfill; NaN/±inf results are removed.
    FullFfill,
    /// `full_bfill`: bfill, then ffill; NaN/±inf results are removed.
    FullBfill,
}

impl Fill {
    /// Parses Gnocchi's `fill` query value: `null`, `dropna`, `ffill`,
    /// `bfill`, `full_ffill`, `full_bfill` or a number.
    ///
    /// # Errors
    /// [`QueryError::InvalidOption`] naming the value and the allowed set.
    pub fn parse(text: &str) -> Result<Fill, QueryError> {
        Ok(match text {
            "null" => Fill::Null,
            "dropna" => Fill::DropNa,
            "ffill" => Fill::Ffill,
            "bfill" => Fill::Bfill,
            "full_ffill" => Fill::FullFfill,
            "full_bfill" => Fill::FullBfill,
            other => match other.parse::<f64>() {
                Ok(v) if v.is_finite() => Fill::Value(v),
                _ => {
                    return Err(QueryError::InvalidOption {
                        option: "fill",
                        message: format!(
                            "`{other}` is not a number nor one of null, dropna, ffill, bfill, \
                             full_ffill, full_bfill"
                        ),
                    });
                }
            },
        })
    }

    /// Whether NaN and ±inf are removed from the output.
    fn drops_non_finite(self) -> bool {
        matches!(
            self,
            Fill::DropNa | Fill::Ffill | Fill::Bfill | Fill::FullFfill | Fill::FullBfill
        )
    }
}

/// The query parameters of `POST /v1/aggregates`.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// First bucket wanted, ns since the Unix epoch (UTC); floored to each
    /// granularity. `None`: from the first bucket (and, without `fill`, the
    /// grid is cut before the first overlapping timestamp).
    pub start: Option<i64>,
    /// End, exclusive, ns since the Unix epoch (UTC). `None`: to the last
    /// bucket (and, without `fill`, the grid is cut after the last
    /// overlapping timestamp).
    pub stop: Option<i64>,
    /// The one granularity to use, ns. `None`: every granularity all
    /// referenced series share.
    pub granularity: Option<i64>,
    /// Percent (0–100) of the grid's timestamps where every series must
    /// have a value; only without `fill` ([`Fill::Missing`]). Default 100.
    pub needed_overlap: f64,
    /// What to do with missing cells.
    pub fill: Fill,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            start: None,
            stop: None,
            granularity: None,
            needed_overlap: 100.0,
            fill: Fill::Missing,
        }
    }
}

/// The result of [`evaluate`].
///
/// Points are `(timestamp ns since the Unix epoch, value)`, in time order.
/// Granularities (ns) come coarsest first. Without a NaN-dropping
/// [`Fill`], values may be NaN where a series had no data.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Gnocchi's `{"aggregated": …}`, when an `aggregate` or a
    /// series-on-series binary operation was used: one series per
    /// granularity, `(granularity, points)`.
    Aggregated(Vec<(i64, Vec<Point>)>),
    /// Gnocchi's per-metric output: `(label, aggregation, granularity,
    /// points)`, grouped by series (first-appearance order), then coarsest
    /// granularity first.
    PerSeries(Vec<(String, String, i64, Vec<Point>)>),
}

/// One output point: `(timestamp ns since the Unix epoch UTC, value)`.
pub type Point = (i64, f64);

/// A parsed operations tree (both forms give the same tree).
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// `(metric NAME AGG)` or `(metric (NAME AGG) …)`: every series of
    /// each `(name, aggregation)`, in order.
    Metric(Vec<MetricRef>),
    /// `(aggregate METHOD op)`: combines the series at each timestamp.
    Aggregate {
        /// The cross-series method.
        method: CrossMethod,
        /// What is aggregated.
        operand: Box<Operation>,
    },
    /// `(resample METHOD GRANULARITY op)`: carbonara's bucketing per series.
    Resample {
        /// The per-bucket method (sample std, NumPy percentiles).
        method: BaseMethod,
        /// The new granularity, ns.
        granularity: i64,
        /// What is resampled.
        operand: Box<Operation>,
    },
    /// `(rolling METHOD WINDOW op)`: METHOD over the last WINDOW points.
    Rolling {
        /// The method over each window.
        method: CrossMethod,
        /// Points per window, ≥ 1.
        window: usize,
        /// What is rolled.
        operand: Box<Operation>,
    },
    /// `(OP left right)`.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<Operation>,
        /// Right operand.
        right: Box<Operation>,
    },
    /// `(clip op LO HI)`.
    Clip {
        /// What is clipped.
        operand: Box<Operation>,
        /// Lower bound.
        min: Box<Operation>,
        /// Upper bound.
        max: Box<Operation>,
    },
    /// `(OP op)`.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// Operand.
        operand: Box<Operation>,
    },
    /// `(rateofchange op)`: difference to the previous point, first point
    /// dropped, no time division.
    RateOfChange(Box<Operation>),
    /// `(rateofchangesec op)`: difference divided by the seconds elapsed;
    /// the first value is NaN.
    RateOfChangeSec(Box<Operation>),
    /// A number operand.
    Number(f64),
}

/// One `(NAME AGG)` of a `metric` operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MetricRef {
    /// Metric name (or id) as the [`Source`] knows it.
    pub name: String,
    /// Aggregation method name, e.g. `mean`, `95pct`, `rate:mean`.
    pub aggregation: String,
}

/// A method combining values across series (`aggregate`) or over a window
/// (`rolling`), NaN-skipping like NumPy's `nan*` functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrossMethod {
    /// `rate:`: compute `base`, then difference over time, dropping the
    /// first timestamp.
    pub rate: bool,
    /// The method.
    pub base: CrossBase,
}

/// The base of a [`CrossMethod`]. Over no (non-NaN) value, every method
/// gives NaN except `sum` (0) and `count` (0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrossBase {
    /// nanmean.
    Mean,
    /// nanmedian: middle value, or the mean of the two middle ones.
    Median,
    /// Population standard deviation (ddof 0).
    Std,
    /// Population variance (ddof 0).
    Var,
    /// nanmin.
    Min,
    /// nanmax.
    Max,
    /// nansum.
    Sum,
    /// Number of non-NaN values.
    Count,
}

/// A binary operator; comparisons give 0.0 or 1.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `+`, `add`.
    Add,
    /// `-`, `sub`.
    Sub,
    /// `*`, `mul`.
    Mul,
    /// `/`, `div`.
    Div,
    /// `**`, `pow`.
    Pow,
    /// `%`, `mod`: NumPy's mod (the result has the divisor's sign).
    Mod,
    /// `=`, `==`, `eq`.
    Eq,
    /// `!=`, `ne`.
    Ne,
    /// `<`, `lt`.
    Lt,
    /// `>`, `gt`.
    Gt,
    /// `<=`, `le`.
    Le,
    /// `>=`, `ge`.
    Ge,
    /// `clip_min`: values below the right operand are raised to it.
    ClipMin,
    /// `clip_max`: values above the right operand are lowered to it.
    ClipMax,
    /// `max`: element-wise fmax (a NaN side is ignored).
    Max,
}

/// A unary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `abs`.
    Abs,
    /// `neg`.
    Neg,
    /// `cos` (radians).
    Cos,
    /// `sin` (radians).
    Sin,
    /// `tan` (radians).
    Tan,
    /// `floor`.
    Floor,
    /// `ceil`.
    Ceil,
}

/// Why operations could not be parsed or evaluated.
///
/// Fault: [`QueryError::Source`] and [`QueryError::InvalidSeries`] are the
/// archive's; every other variant is the user's (the operations, the
/// options, or the data not fitting them).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The operations text is malformed, or an operation has the wrong
    /// arguments.
    #[error("invalid operations at position {position}: {message}")]
    Syntax {
        /// 0-based character offset of the offending token.
        position: usize,
        /// What was wrong and what was expected.
        message: String,
    },
    /// An operation name that is not in the grammar.
    #[error(
        "unknown operation `{name}` at position {position}; expected metric, aggregate, \
         resample, rolling, clip, rateofchange, rateofchangesec, a binary operator \
         (+ - * / ** % mod add sub mul div pow = == eq < lt > gt <= le >= ge != ne \
         clip_min clip_max max) or a unary one (abs neg cos sin tan floor ceil)"
    )]
    UnknownOperator {
        /// The name.
        name: String,
        /// 0-based character offset of the name.
        position: usize,
    },
    /// The source has no metric of that name.
    #[error("metric {name} does not exist")]
    UnknownMetric {
        /// The metric name.
        name: String,
    },
    /// The metric exists but does not have that aggregation method.
    #[error("aggregation method '{aggregation}' for metric {name} does not exist")]
    UnknownAggregation {
        /// The metric name.
        name: String,
        /// The method asked for.
        aggregation: String,
    },
    /// `granularity` was given and a referenced metric lacks it.
    #[error(
        "aggregation method '{aggregation}' at granularity '{}' for metric {name} does not exist",
        crate::query::time::format_seconds(*granularity)
    )]
    MissingGranularity {
        /// The metric name.
        name: String,
        /// The method.
        aggregation: String,
        /// The granularity asked for, ns.
        granularity: i64,
    },
    /// No granularity is shared by every referenced metric.
    #[error("metrics {} can't be aggregated: no granularity match", .metrics.join(", "))]
    NoCommonGranularity {
        /// The referenced `name/aggregation`s.
        metrics: Vec<String>,
    },
    /// Without `fill`, no timestamp has a value in every series.
    #[error("metrics {} can't be aggregated: no overlap", .metrics.join(", "))]
    NoOverlap {
        /// The referenced `name/aggregation`s.
        metrics: Vec<String>,
    },
    /// Without `fill`, too few timestamps have a value in every series.
    #[error("less than {needed}% of datapoints overlap in this timespan ({percent:.2}%)")]
    NotEnoughOverlap {
        /// Percent of the (trimmed) grid's timestamps that overlap.
        percent: f64,
        /// `needed_overlap`.
        needed: f64,
    },
    /// `rolling`'s window is longer than the series.
    #[error("rolling window '{window}' is greater than serie length '{length}'")]
    RollingWindowTooLarge {
        /// The window, points.
        window: usize,
        /// The series length, points.
        length: usize,
    },
    /// A series-on-series operation whose operands cannot be combined.
    #[error("can't compute timeseries: {message}")]
    IncompatibleSeries {
        /// Why (different granularities, series counts).
        message: String,
    },
    /// The operations reference no metric, or an operation that needs a
    /// series got a number.
    #[error("{message}")]
    NotASeries {
        /// What needed a series.
        message: String,
    },
    /// A bad [`Options`] value.
    #[error("invalid {option}: {message}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// The bad value and what is allowed.
        message: String,
    },
    /// A series from the [`Source`] is malformed.
    #[error("series {label}: {message}")]
    InvalidSeries {
        /// The series label.
        label: String,
        /// What is wrong.
        message: String,
    },
    /// The [`Source`] could not read the archive.
    #[error("reading the archive: {0}")]
    Source(#[source] Box<dyn std::error::Error + Send + Sync>),
}

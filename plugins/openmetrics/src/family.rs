//! Metric families: their types, which sample names each type has, and
//! what sample type each sample becomes.

use wasmeter_guest::SampleType;

use crate::line::Syntax;

/// A metric family's type, from its `# TYPE` line (Prometheus' `untyped`
/// is OpenMetrics' `unknown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// A monotonic total (`_total`, `_created`).
    Counter,
    /// A current value.
    Gauge,
    /// Cumulative buckets (`_bucket`, `_count`, `_sum`, `_created`).
    Histogram,
    /// Current buckets (`_bucket`, `_gcount`, `_gsum`).
    GaugeHistogram,
    /// Quantiles (the bare name), `_count`, `_sum`, `_created`.
    Summary,
    /// Constant labels (`_info`, value 1).
    Info,
    /// A set of boolean states, one label named like the family.
    StateSet,
    /// No type given (`unknown`, `untyped`, or no `# TYPE` line).
    Unknown,
}

impl MetricType {
    /// The type written as `s` in `syntax`, `None` when there is none.
    pub(crate) fn parse(s: &str, syntax: Syntax) -> Option<Self> {
        Some(match (s, syntax) {
            ("counter", _) => Self::Counter,
            ("gauge", _) => Self::Gauge,
            ("histogram", _) => Self::Histogram,
            ("summary", _) => Self::Summary,
            ("gaugehistogram", Syntax::OpenMetrics) => Self::GaugeHistogram,
            ("info", Syntax::OpenMetrics) => Self::Info,
            ("stateset", Syntax::OpenMetrics) => Self::StateSet,
            ("unknown", Syntax::OpenMetrics) | ("untyped", Syntax::Prometheus) => Self::Unknown,
            _ => return None,
        })
    }

    /// The type's name as OpenMetrics writes it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::GaugeHistogram => "gaugehistogram",
            Self::Summary => "summary",
            Self::Info => "info",
            Self::StateSet => "stateset",
            Self::Unknown => "unknown",
        }
    }

    /// The suffixes (after the family name) of the family's sample names;
    /// `""` is the bare family name.
    pub(crate) fn suffixes(self, syntax: Syntax) -> &'static [&'static str] {
        match (self, syntax) {
            (Self::Counter, Syntax::OpenMetrics) => &["_total", "_created"],
            (Self::Histogram, Syntax::OpenMetrics) => &["_bucket", "_count", "_sum", "_created"],
            (Self::Histogram, Syntax::Prometheus) => &["_bucket", "_count", "_sum"],
            (Self::GaugeHistogram, _) => &["_bucket", "_gcount", "_gsum"],
            (Self::Summary, Syntax::OpenMetrics) => &["", "_count", "_sum", "_created"],
            (Self::Summary, Syntax::Prometheus) => &["", "_count", "_sum"],
            (Self::Info, _) => &["_info"],
            _ => &[""],
        }
    }

    /// True for histogram and gaugehistogram.
    pub(crate) fn has_buckets(self) -> bool {
        matches!(self, Self::Histogram | Self::GaugeHistogram)
    }

    /// The sample type of the family's sample with `suffix`.
    pub(crate) fn sample_type(self, suffix: &str, syntax: Syntax) -> SampleType {
        match (self, suffix) {
            (Self::Counter, "_total") => SampleType::Cumulative,
            (Self::Counter, "") if syntax == Syntax::Prometheus => SampleType::Cumulative,
            (Self::Histogram | Self::Summary, "_count" | "_sum") => SampleType::Cumulative,
            (Self::Histogram, "_bucket") => SampleType::Cumulative,
            _ => SampleType::Gauge,
        }
    }
}

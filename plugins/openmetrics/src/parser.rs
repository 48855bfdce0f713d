//! The document: lines in order, the rules between lines (families,
//! metadata, series groups, histogram consistency, `# EOF`), and the
//! samples into a [`BatchBuilder`].
//!
//! Each line is first checked against the state the earlier lines left;
//! only a line that passes changes the state and adds its sample, so a
//! refused line (lenient mode) leaves no trace. The rules that judge a
//! whole histogram group (the `+Inf` bucket is there, `_count` equals it,
//! `_sum` and `_count` come together, no `_sum` with negative buckets) can
//! only be decided when the group ends; they apply in strict mode.

use std::collections::{HashMap, HashSet};

use wasmeter_guest::decode::RejectedLine;
use wasmeter_guest::{BatchBuilder, Error};

use crate::family::MetricType;
use crate::line::{self, Label, Line, Sample, Syntax};
use crate::{Config, Format, Mode, Parsed};

/// Why a line failed, and (for a histogram group's rules) which line.
struct Fail {
    /// The line to report instead of the current one.
    line: Option<u32>,
    reason: String,
}

impl From<String> for Fail {
    fn from(reason: String) -> Self {
        Fail { line: None, reason }
    }
}

/// The family being read.
struct Family<'a> {
    name: &'a str,
    /// From `# TYPE`; `None` before (or without) one.
    kind: Option<MetricType>,
    /// From `# UNIT`.
    unit: &'a str,
    has_type: bool,
    has_help: bool,
    has_unit: bool,
    has_samples: bool,
    /// The series group of the last sample (OpenMetrics).
    group: Option<Group>,
}

impl<'a> Family<'a> {
    fn new(name: &'a str) -> Self {
        Family {
            name,
            kind: None,
            unit: "",
            has_type: false,
            has_help: false,
            has_unit: false,
            has_samples: false,
            group: None,
        }
    }

    fn kind(&self) -> MetricType {
        self.kind.unwrap_or(MetricType::Unknown)
    }

    /// True when `sample` is one of this family's sample names.
    fn allows(&self, sample: &str, syntax: Syntax) -> bool {
        sample
            .strip_prefix(self.name)
            .is_some_and(|suffix| self.kind().suffixes(syntax).contains(&suffix))
    }
}

/// A series group: the samples of one family that share their labels but
/// for `le` (buckets), `quantile` (quantiles) or the state label.
struct Group {
    key: String,
    /// The timestamp of its last sample, in seconds.
    timestamp: Option<f64>,
    /// The line of its last sample.
    last_line: u32,
    /// The histogram point being read (same group and timestamp).
    hist: Hist,
}

/// What a histogram point has shown so far.
#[derive(Debug, Clone, Copy, Default)]
struct Hist {
    last_le: Option<f64>,
    last_bucket: f64,
    count: Option<f64>,
    has_sum: bool,
    has_gsum: bool,
    negative_buckets: bool,
    negative_gsum: bool,
}

/// One decode call's state.
pub(crate) struct Parser<'a, 'c> {
    config: &'c Config,
    syntax: Syntax,
    now_ns: i64,
    builder: BatchBuilder,
    /// Series text as written → series index.
    series: HashMap<&'a str, u32>,
    rejected: Vec<RejectedLine>,
    family: Option<Family<'a>>,
    /// Sample names of the families already closed.
    seen_names: HashSet<String>,
    /// Group keys seen in the current family.
    seen_groups: HashSet<String>,
    key: String,
    labels: Vec<Label<'a>>,
    exemplar: Vec<Label<'a>>,
    families: usize,
    eof_line: Option<u32>,
}

impl<'a, 'c> Parser<'a, 'c> {
    pub(crate) fn new(config: &'c Config, syntax: Syntax, now_ns: i64) -> Self {
        Parser {
            config,
            syntax,
            now_ns,
            builder: BatchBuilder::new(),
            series: HashMap::new(),
            rejected: Vec::new(),
            family: None,
            seen_names: HashSet::new(),
            seen_groups: HashSet::new(),
            key: String::new(),
            labels: Vec::new(),
            exemplar: Vec::new(),
            families: 0,
            eof_line: None,
        }
    }

    fn strict(&self) -> bool {
        self.config.mode == Mode::Strict
    }

    /// Reads the whole document.
    pub(crate) fn run(mut self, input: &'a [u8]) -> Result<Parsed, Error> {
        let body = input.strip_suffix(b"\n").unwrap_or(input);
        let mut last_line = 0_u32;
        if !input.is_empty() {
            for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
                let line_no = u32::try_from(i + 1).unwrap_or(u32::MAX);
                last_line = line_no;
                let result = match std::str::from_utf8(raw) {
                    Ok(text) => self.line(line_no, text),
                    Err(e) => Err(Fail::from(format!(
                        "line is not valid utf-8 (bad byte at column {})",
                        e.valid_up_to() + 1
                    ))),
                };
                if let Err(fail) = result {
                    let line = fail.line.unwrap_or(line_no);
                    if self.strict() {
                        return Err(Error::invalid_input(format!(
                            "line {line}: {}",
                            fail.reason
                        )));
                    }
                    self.rejected.push(RejectedLine {
                        line,
                        reason: fail.reason,
                    });
                }
            }
        }
        if self.syntax == Syntax::OpenMetrics && self.eof_line.is_none() {
            return Err(Error::invalid_input(format!(
                "line {last_line}: missing `# EOF` at the end of the openmetrics document (it may be truncated)"
            )));
        }
        if let Err(fail) = self.close_family() {
            let line = fail.line.unwrap_or(last_line);
            return Err(Error::invalid_input(format!(
                "line {line}: {}",
                fail.reason
            )));
        }
        Ok(Parsed {
            batch: self.builder.finish(),
            rejected: self.rejected,
            families: self.families,
            format: match self.syntax {
                Syntax::Prometheus => Format::Prometheus,
                Syntax::OpenMetrics => Format::OpenMetrics,
            },
        })
    }

    fn line(&mut self, line_no: u32, text: &'a str) -> Result<(), Fail> {
        if let Some(eof) = self.eof_line {
            return Err(
                format!("text after `# EOF` (line {eof}): it must be the last line").into(),
            );
        }
        let mut labels = std::mem::take(&mut self.labels);
        let mut exemplar = std::mem::take(&mut self.exemplar);
        let parsed = match self.syntax {
            Syntax::OpenMetrics => line::openmetrics(text, &mut labels, &mut exemplar),
            Syntax::Prometheus => line::prometheus(text, &mut labels),
        };
        let result = match parsed {
            Err(reason) => Err(reason.into()),
            Ok(Line::Blank) if self.syntax == Syntax::OpenMetrics => {
                Err(String::from("blank line: openmetrics allows none").into())
            }
            Ok(Line::Blank | Line::Comment) => Ok(()),
            Ok(Line::Eof) => {
                self.eof_line = Some(line_no);
                Ok(())
            }
            Ok(Line::Help { name }) => self.metadata(name, Meta::Help),
            Ok(Line::Type { name, kind }) => self.metadata(name, Meta::Type(kind)),
            Ok(Line::Unit { name, unit }) => self.metadata(name, Meta::Unit(unit)),
            Ok(Line::Sample(sample)) => self.sample(line_no, &sample, &labels),
        };
        self.labels = labels;
        self.exemplar = exemplar;
        result
    }

    /// A `# HELP`, `# TYPE` or `# UNIT` line for `name`.
    fn metadata(&mut self, name: &'a str, meta: Meta<'a>) -> Result<(), Fail> {
        let keyword = meta.keyword();
        let current = self.family.as_ref().filter(|f| f.name == name);
        let (kind, unit) = match current {
            Some(f) => {
                if f.has_samples {
                    return Err(format!(
                        "`# {keyword}` for `{name}` after its samples: metadata must come first"
                    )
                    .into());
                }
                let repeated = match meta {
                    Meta::Help => f.has_help,
                    Meta::Type(_) => f.has_type,
                    Meta::Unit(_) => f.has_unit,
                };
                if repeated {
                    return Err(format!("second `# {keyword}` line for `{name}`").into());
                }
                (f.kind, f.unit)
            }
            None => {
                if self.taken(name) {
                    return Err(self.clash(name).into());
                }
                (None, "")
            }
        };
        match meta {
            Meta::Help => {}
            Meta::Type(kind) => {
                if !unit.is_empty() && matches!(kind, MetricType::Info | MetricType::StateSet) {
                    return Err(no_unit(kind, name).into());
                }
                for suffix in kind.suffixes(self.syntax) {
                    let sample = format!("{name}{suffix}");
                    let current_is_other = current.is_none();
                    if self.seen_names.contains(&sample)
                        || (current_is_other && self.taken(&sample))
                    {
                        return Err(format!(
                            "`{sample}`, a sample name of {} `{name}`, clashes with an earlier family",
                            kind.name()
                        )
                        .into());
                    }
                }
            }
            Meta::Unit(unit) => {
                let suffix_ok = name
                    .strip_suffix(unit)
                    .is_some_and(|head| head.ends_with('_'));
                if !unit.is_empty() && !suffix_ok {
                    return Err(format!(
                        "unit `{unit}` does not end the family name `{name}` (expected a name ending in `_{unit}`)"
                    )
                    .into());
                }
                if let Some(kind @ (MetricType::Info | MetricType::StateSet)) = kind
                    && !unit.is_empty()
                {
                    return Err(no_unit(kind, name).into());
                }
            }
        }
        if current.is_none() {
            self.close_family()?;
            self.start_family(name);
        }
        let f = self.family.as_mut().expect("a family was started");
        match meta {
            Meta::Help => f.has_help = true,
            Meta::Type(kind) => {
                f.has_type = true;
                f.kind = Some(kind);
            }
            Meta::Unit(unit) => {
                f.has_unit = true;
                f.unit = unit;
            }
        }
        Ok(())
    }

    /// True when `name` is a sample name of a closed family or of the
    /// current one (which a new family closes).
    fn taken(&self, name: &str) -> bool {
        self.seen_names.contains(name)
            || self
                .family
                .as_ref()
                .is_some_and(|f| f.name == name || f.allows(name, self.syntax))
    }

    fn clash(&self, name: &str) -> String {
        format!(
            "metric family `{name}` clashes with an earlier family: its lines must be together and its name must not be a sample name of another family"
        )
    }

    /// A sample line.
    fn sample(&mut self, line_no: u32, s: &Sample<'a>, labels: &[Label<'a>]) -> Result<(), Fail> {
        let syntax = self.syntax;
        let (is_new, family, kind) = match &self.family {
            Some(f) if f.allows(s.name, syntax) => (false, f.name, f.kind()),
            Some(f) if f.name == s.name => {
                let expected: Vec<String> = f
                    .kind()
                    .suffixes(syntax)
                    .iter()
                    .map(|x| format!("`{}{x}`", f.name))
                    .collect();
                return Err(format!(
                    "`{}` is not a sample name of {} `{}` (expected {})",
                    s.name,
                    f.kind().name(),
                    f.name,
                    expected.join(" or ")
                )
                .into());
            }
            _ if self.seen_names.contains(s.name) => return Err(self.clash(s.name).into()),
            _ => (true, s.name, MetricType::Unknown),
        };
        let suffix = &s.name[family.len()..];
        let value = s.value;
        let find = |key: &str| labels.iter().find(|l| l.name == key).map(|l| &*l.value);

        // The rules of the sample's type.
        let mut le = None;
        match (kind, suffix) {
            (MetricType::Histogram | MetricType::GaugeHistogram, "_bucket") => {
                let Some(text) = find("le") else {
                    return Err(format!("bucket `{}` has no `le` label", s.name).into());
                };
                le = Some(self.bound(text, "le")?);
            }
            (MetricType::Summary, "") => {
                let Some(text) = find("quantile") else {
                    return Err(format!("quantile `{}` has no `quantile` label", s.name).into());
                };
                let q = self.bound(text, "quantile")?;
                if syntax == Syntax::OpenMetrics {
                    if !(0.0..=1.0).contains(&q) {
                        return Err(format!("quantile=\"{text}\" is not between 0 and 1").into());
                    }
                    if value < 0.0 {
                        return Err(format!("quantile value {value} is negative").into());
                    }
                }
            }
            (MetricType::StateSet, _) => {
                if find(family).is_none() {
                    return Err(
                        format!("stateset `{family}` sample has no label `{family}`").into(),
                    );
                }
                if value != 0.0 && value != 1.0 {
                    return Err(format!("stateset value {value} is not 0 or 1").into());
                }
            }
            (MetricType::Info, _) if value != 1.0 => {
                return Err(format!("info value {value} is not 1").into());
            }
            _ => {}
        }
        if syntax == Syntax::OpenMetrics {
            if matches!(
                suffix,
                "_total" | "_sum" | "_count" | "_bucket" | "_gcount" | "_gsum"
            ) {
                if value.is_nan() {
                    return Err(format!("`{}` value is NaN: it counts", s.name).into());
                }
                if suffix != "_gsum" && value < 0.0 {
                    return Err(format!("`{}` value {value} is negative: it counts", s.name).into());
                }
            }
            let exemplar_ok = (kind.has_buckets() && suffix == "_bucket")
                || (kind == MetricType::Counter && suffix == "_total");
            if s.exemplar && !exemplar_ok {
                return Err(format!(
                    "exemplar on `{}`: only counter `_total` and histogram `_bucket` samples may have one",
                    s.name
                )
                .into());
            }
        }

        // Series groups (OpenMetrics): together, in time order.
        let timestamp = s.timestamp.map(|t| t.secs);
        let mut same_group = false;
        let mut hist = Hist::default();
        if syntax == Syntax::OpenMetrics {
            self.group_key(kind, family, suffix, labels);
            let group = if is_new {
                None
            } else {
                self.family.as_ref().and_then(|f| f.group.as_ref())
            };
            same_group = group.is_some_and(|g| g.key == self.key);
            if !is_new && !same_group && self.seen_groups.contains(&self.key) {
                return Err(format!(
                    "series {{{}}} of `{family}` appears again after other series: a family's series must not interleave",
                    self.key
                )
                .into());
            }
            if let Some(g) = group.filter(|_| same_group) {
                if g.timestamp.is_some() != timestamp.is_some() {
                    return Err(format!(
                        "samples with and without timestamps mixed in series {{{}}} of `{family}`",
                        self.key
                    )
                    .into());
                }
                if let (Some(prev), Some(t)) = (g.timestamp, timestamp) {
                    if t < prev && kind != MetricType::Info {
                        return Err(format!(
                            "timestamp {t} goes back from {prev} in series {{{}}} of `{family}`",
                            self.key
                        )
                        .into());
                    }
                    if t == prev {
                        hist = g.hist;
                    }
                } else {
                    hist = g.hist;
                }
            }
            if kind.has_buckets() {
                match suffix {
                    "_bucket" => {
                        let le = le.expect("checked above");
                        if let Some(prev) = hist.last_le.filter(|prev| le <= *prev) {
                            return Err(format!(
                                "bucket le=\"{}\" does not follow the previous bucket's le {prev}: buckets must be in increasing order",
                                find("le").unwrap_or_default()
                            )
                            .into());
                        }
                        if value < hist.last_bucket {
                            return Err(format!(
                                "bucket count {value} is below the previous bucket's {}: counts must not decrease",
                                hist.last_bucket
                            )
                            .into());
                        }
                        hist.last_le = Some(le);
                        hist.last_bucket = value;
                        hist.negative_buckets |= le < 0.0;
                    }
                    "_count" | "_gcount" => hist.count = Some(value),
                    "_sum" => hist.has_sum = true,
                    "_gsum" => {
                        hist.has_gsum = true;
                        hist.negative_gsum |= value < 0.0;
                    }
                    _ => {}
                }
            }
        }

        // The line is good: commit.
        if is_new {
            self.close_family()?;
            self.start_family(s.name);
        }
        let strict = self.strict();
        let f = self.family.as_mut().expect("a family was started");
        f.has_samples = true;
        if syntax == Syntax::OpenMetrics {
            let same_point =
                same_group && f.group.as_ref().is_some_and(|g| g.timestamp == timestamp);
            if !same_point
                && strict
                && kind.has_buckets()
                && let Some(g) = &f.group
            {
                check_histogram(kind, f.name, g)?;
            }
            match &mut f.group {
                Some(g) if same_group => {
                    g.timestamp = timestamp;
                    g.last_line = line_no;
                    g.hist = hist;
                }
                slot => {
                    self.seen_groups.insert(self.key.clone());
                    *slot = Some(Group {
                        key: self.key.clone(),
                        timestamp,
                        last_line: line_no,
                        hist,
                    });
                }
            }
        }
        let unit = f.unit;
        let sample_type = kind.sample_type(suffix, syntax);
        self.emit(s, labels, unit, sample_type);
        Ok(())
    }

    /// An `le` or `quantile` label value.
    fn bound(&self, text: &str, label: &str) -> Result<f64, String> {
        let parsed = match self.syntax {
            Syntax::OpenMetrics => crate::number::parse_canonical(text),
            Syntax::Prometheus => crate::number::parse_number(text),
        };
        parsed.ok_or_else(|| {
            format!("bad {label}=\"{text}\": expected a number (+Inf and -Inf written so)")
        })
    }

    /// Writes the group key of a sample into `self.key`: its labels but the
    /// one that tells the group's samples apart.
    fn group_key(&mut self, kind: MetricType, family: &str, suffix: &str, labels: &[Label<'_>]) {
        use std::fmt::Write;
        self.key.clear();
        let skip = match (kind, suffix) {
            (MetricType::Info, _) => return,
            (MetricType::Histogram | MetricType::GaugeHistogram, "_bucket") => "le",
            (MetricType::Summary, "") => "quantile",
            (MetricType::StateSet, _) => family,
            _ => "",
        };
        for l in labels.iter().filter(|l| l.name != skip) {
            if !self.key.is_empty() {
                self.key.push(',');
            }
            let _ = write!(self.key, "{}={:?}", l.name, l.value);
        }
    }

    fn emit(
        &mut self,
        s: &Sample<'a>,
        labels: &[Label<'a>],
        unit: &str,
        sample_type: wasmeter_guest::SampleType,
    ) {
        let index = match self.series.get(s.series) {
            Some(&i) => i,
            None => {
                let resource_label = self.config.resource_label.as_str();
                let resource = labels
                    .iter()
                    .find(|l| l.name == resource_label)
                    .map_or(self.config.resource_id.as_str(), |l| l.value.as_ref());
                let attributes: Vec<(&str, &str)> = labels
                    .iter()
                    .filter(|l| l.name != resource_label)
                    .map(|l| (l.name, &*l.value))
                    .collect();
                let i = self
                    .builder
                    .series(s.name, resource, unit, sample_type, &attributes);
                self.series.insert(s.series, i);
                i
            }
        };
        let timestamp = s.timestamp.map_or(self.now_ns, |t| t.ns);
        self.builder.push(index, timestamp, s.value);
    }

    fn start_family(&mut self, name: &'a str) {
        self.family = Some(Family::new(name));
        self.families += 1;
    }

    /// Ends the current family: its last histogram point is judged (strict
    /// mode) and its sample names are taken.
    fn close_family(&mut self) -> Result<(), Fail> {
        let Some(f) = self.family.take() else {
            return Ok(());
        };
        self.seen_groups.clear();
        self.seen_names.insert(f.name.to_owned());
        for suffix in f.kind().suffixes(self.syntax) {
            self.seen_names.insert(format!("{}{suffix}", f.name));
        }
        if self.strict()
            && f.kind().has_buckets()
            && let Some(g) = &f.group
        {
            check_histogram(f.kind(), f.name, g)?;
        }
        Ok(())
    }
}

/// The rules of one whole histogram point (a group at one timestamp).
fn check_histogram(kind: MetricType, name: &str, g: &Group) -> Result<(), Fail> {
    let h = &g.hist;
    let fail = |reason: String| {
        Err(Fail {
            line: Some(g.last_line),
            reason: format!("{} `{name}` {{{}}}: {reason}", kind.name(), g.key),
        })
    };
    if h.last_le != Some(f64::INFINITY) {
        return fail("no `+Inf` bucket (it is required)".into());
    }
    if let Some(count) = h.count
        && count != h.last_bucket
    {
        return fail(format!(
            "count {count} differs from the `+Inf` bucket's {}",
            h.last_bucket
        ));
    }
    let (sum, count) = match kind {
        MetricType::GaugeHistogram => ("_gsum", "_gcount"),
        _ => ("_sum", "_count"),
    };
    let has_sum = h.has_sum || h.has_gsum;
    if has_sum && h.count.is_none() {
        return fail(format!("`{sum}` without `{count}`"));
    }
    if !has_sum && h.count.is_some() {
        return fail(format!("`{count}` without `{sum}`"));
    }
    if h.negative_buckets && h.has_sum {
        return fail("`_sum` is not allowed with negative buckets (le < 0)".into());
    }
    if !h.negative_buckets && h.negative_gsum {
        return fail("negative `_gsum` without a negative bucket".into());
    }
    Ok(())
}

/// A metadata line's kind and payload.
#[derive(Clone, Copy)]
enum Meta<'a> {
    Help,
    Type(MetricType),
    Unit(&'a str),
}

impl Meta<'_> {
    fn keyword(self) -> &'static str {
        match self {
            Meta::Help => "HELP",
            Meta::Type(_) => "TYPE",
            Meta::Unit(_) => "UNIT",
        }
    }
}

fn no_unit(kind: MetricType, name: &str) -> String {
    format!("{} `{name}` cannot have a unit", kind.name())
}

//! Archive policies, aggregation methods and archive policy rules, in
//! Gnocchi's definition format (reference §1.1–1.2).

use std::fmt;
use std::time::Duration;

use globset::{Glob, GlobMatcher};
use serde::Deserialize;

/// A base aggregation method (without `rate:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BaseMethod {
    /// sum / n.
    Mean,
    /// Plain sum.
    Sum,
    /// n.
    Count,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Value with the earliest timestamp.
    First,
    /// Value with the latest timestamp.
    Last,
    /// Sample standard deviation; no point for n = 1.
    Std,
    /// Middle value (mean of the two middle ones for even n).
    Median,
    /// `Npct`, N in 1..=99: NumPy's linear percentile.
    Pct(u8),
}

/// An aggregation method: a base method, optionally over the differences
/// of consecutive raw values (`rate:X`, Gnocchi's definition: no division
/// by time, resets not handled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AggregationMethod {
    /// `rate:` prefix.
    pub rate: bool,
    /// The method applied to the bucket's values (or differences).
    pub base: BaseMethod,
}

const BASES: [BaseMethod; 9] = [
    BaseMethod::Mean,
    BaseMethod::Sum,
    BaseMethod::Count,
    BaseMethod::Min,
    BaseMethod::Max,
    BaseMethod::First,
    BaseMethod::Last,
    BaseMethod::Std,
    BaseMethod::Median,
];

/// Gnocchi's default method list: `mean, min, max, sum, std, count`.
pub fn default_methods() -> Vec<AggregationMethod> {
    ["mean", "min", "max", "sum", "std", "count"]
        .iter()
        .map(|m| AggregationMethod::parse(m).expect("valid default"))
        .collect()
}

/// Every valid method (what `*` means): the 9 plain methods, `1pct` to
/// `99pct`, and `rate:` of each, 216 in all.
pub fn all_methods() -> Vec<AggregationMethod> {
    let bases = BASES.into_iter().chain((1..=99).map(BaseMethod::Pct));
    let plain: Vec<AggregationMethod> = bases
        .map(|base| AggregationMethod { rate: false, base })
        .collect();
    let rate = plain.iter().map(|m| AggregationMethod {
        rate: true,
        base: m.base,
    });
    let mut all: Vec<AggregationMethod> = plain.iter().copied().chain(rate).collect();
    all.sort();
    all
}

impl AggregationMethod {
    /// Parses Gnocchi's name: `mean`, `95pct`, `rate:max`, …
    pub fn parse(name: &str) -> Option<Self> {
        let (rate, base) = match name.strip_prefix("rate:") {
            Some(rest) => (true, rest),
            None => (false, name),
        };
        let base = match base {
            "mean" => BaseMethod::Mean,
            "sum" => BaseMethod::Sum,
            "count" => BaseMethod::Count,
            "min" => BaseMethod::Min,
            "max" => BaseMethod::Max,
            "first" => BaseMethod::First,
            "last" => BaseMethod::Last,
            "std" => BaseMethod::Std,
            "median" => BaseMethod::Median,
            other => {
                let n: u8 = other.strip_suffix("pct")?.parse().ok()?;
                if !(1..=99).contains(&n) || other.starts_with('0') {
                    return None;
                }
                BaseMethod::Pct(n)
            }
        };
        Some(AggregationMethod { rate, base })
    }

    fn base_name(self) -> String {
        match self.base {
            BaseMethod::Mean => "mean".into(),
            BaseMethod::Sum => "sum".into(),
            BaseMethod::Count => "count".into(),
            BaseMethod::Min => "min".into(),
            BaseMethod::Max => "max".into(),
            BaseMethod::First => "first".into(),
            BaseMethod::Last => "last".into(),
            BaseMethod::Std => "std".into(),
            BaseMethod::Median => "median".into(),
            BaseMethod::Pct(n) => format!("{n}pct"),
        }
    }

    /// The archive column name, SQL-friendly: `mean`, `pct95`, `rate_mean`.
    pub fn column_name(self) -> String {
        let base = match self.base {
            BaseMethod::Pct(n) => format!("pct{n}"),
            _ => self.base_name(),
        };
        if self.rate {
            format!("rate_{base}")
        } else {
            base
        }
    }
}

impl fmt::Display for AggregationMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rate {
            f.write_str("rate:")?;
        }
        f.write_str(&self.base_name())
    }
}

/// One item of a policy definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyItem {
    /// Bucket width, whole seconds.
    pub granularity: Duration,
    /// Buckets kept; `None`: no retention limit.
    pub points: Option<u64>,
}

impl PolicyItem {
    /// `granularity × points`, the retention; `None`: unlimited.
    pub fn timespan(&self) -> Option<Duration> {
        // A built policy's timespan fits i64 ns (checked by `build`).
        self.points
            .map(|p| Duration::from_nanos((self.granularity_ns() as u64).saturating_mul(p)))
    }

    /// Granularity in ns.
    pub fn granularity_ns(&self) -> i64 {
        self.granularity.as_nanos() as i64
    }
}

/// An archive policy: how a metric's measures are rolled up and kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivePolicy {
    /// Unique name.
    pub name: String,
    /// How many coarsest-granularity blocks behind the newest measure a
    /// late measure may still land (reference §1.3).
    pub back_window: u64,
    /// Items, finest granularity first.
    pub definition: Vec<PolicyItem>,
    /// The methods, in canonical order (the archive's column order).
    pub aggregation_methods: Vec<AggregationMethod>,
    /// Bits of the 52-bit binary fraction, 1–51, that the archive keeps of
    /// every stored value except `count`'s and `rate:count`'s (opt-in lossy
    /// storage, see [`crate::archive::round_to_precision`]); `None` keeps
    /// them all. Rollups and alarms work on the exact values; what is read
    /// back from the archive (`wasmeter measures`, notebooks) is rounded.
    pub precision_bits: Option<u32>,
}

impl ArchivePolicy {
    /// The coarsest granularity (Gnocchi's block size), ns.
    pub fn block_ns(&self) -> i64 {
        self.definition
            .iter()
            .map(PolicyItem::granularity_ns)
            .max()
            .unwrap_or(1)
    }

    /// `back_window`, plus one when a `rate:` method needs the predecessor.
    pub fn effective_back_window(&self) -> i64 {
        self.back_window as i64 + i64::from(self.aggregation_methods.iter().any(|m| m.rate))
    }

    /// A short text of the definition, for the archive's metadata:
    /// `back_window=0; 60s×1440; 3600s×720; methods=mean,max`.
    pub fn describe(&self) -> String {
        let items: Vec<String> = self
            .definition
            .iter()
            .map(|i| match i.points {
                Some(p) => format!("{}s×{p}", i.granularity.as_secs()),
                None => format!("{}s×unlimited", i.granularity.as_secs()),
            })
            .collect();
        let methods: Vec<String> = self
            .aggregation_methods
            .iter()
            .map(|m| m.to_string())
            .collect();
        format!(
            "back_window={}; {}; methods={}",
            self.back_window,
            items.join("; "),
            methods.join(",")
        )
    }
}

/// Gnocchi's shipped policies (`bool`, `low`, `medium`, `high`) and
/// Ceilometer's (`ceilometer-low`, `ceilometer-low-rate`,
/// `ceilometer-high`, `ceilometer-high-rate`).
pub fn builtin_policies() -> Vec<ArchivePolicy> {
    let item = |g: u64, p: u64| PolicyItem {
        granularity: Duration::from_secs(g),
        points: Some(p),
    };
    let m = |names: &[&str]| -> Vec<AggregationMethod> {
        let mut v: Vec<_> = names
            .iter()
            .map(|n| AggregationMethod::parse(n).unwrap())
            .collect();
        v.sort();
        v
    };
    let mut default = default_methods();
    default.sort();
    let p = |name: &str, back_window, definition, methods: &Vec<AggregationMethod>| ArchivePolicy {
        name: name.into(),
        back_window,
        definition,
        aggregation_methods: methods.clone(),
        precision_bits: None,
    };
    let high = vec![item(1, 3600), item(60, 10080), item(3600, 8760)];
    vec![
        p("bool", 3600, vec![item(1, 31_536_000)], &m(&["last"])),
        p("low", 0, vec![item(300, 8640)], &default),
        p(
            "medium",
            0,
            vec![item(60, 10080), item(3600, 8760)],
            &default,
        ),
        p("high", 0, high, &default),
        p("ceilometer-low", 0, vec![item(300, 8640)], &m(&["mean"])),
        p(
            "ceilometer-low-rate",
            0,
            vec![item(300, 8640)],
            &m(&["mean", "rate:mean"]),
        ),
        p(
            "ceilometer-high",
            0,
            vec![item(1, 3600), item(60, 1440), item(3600, 8760)],
            &m(&["mean"]),
        ),
        p(
            "ceilometer-high-rate",
            0,
            vec![item(1, 3600), item(60, 1440), item(3600, 8760)],
            &m(&["mean", "rate:mean"]),
        ),
    ]
}

/// A duration in a policy: seconds as a number, or humantime (`5m`, `1d`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawDuration {
    /// Seconds.
    Seconds(f64),
    /// Humantime text.
    Text(String),
}

impl RawDuration {
    fn parse(&self) -> Result<Duration, String> {
        match self {
            RawDuration::Seconds(s) => {
                Duration::try_from_secs_f64(*s).map_err(|_| format!("{s} is not a duration"))
            }
            RawDuration::Text(t) => humantime::parse_duration(t)
                .map_err(|e| format!("bad duration {t:?}: {e} (expected e.g. 60, 1m, 1d)")),
        }
    }
}

/// One `definition` item as written: any two of the three.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicyItem {
    /// Bucket width.
    pub granularity: Option<RawDuration>,
    /// Buckets kept.
    pub points: Option<u64>,
    /// Retention.
    pub timespan: Option<RawDuration>,
}

/// An `[[archive_policy]]` as written in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawArchivePolicy {
    /// Unique name (a built-in name replaces the built-in).
    pub name: String,
    /// Late-data allowance in coarsest-granularity blocks; default 0.
    #[serde(default)]
    pub back_window: u64,
    /// Items, each with any two of granularity / points / timespan.
    pub definition: Vec<RawPolicyItem>,
    /// Explicit list, `+m`/`-m` on the default list, or `*` (every method).
    /// Default: Gnocchi's default list.
    #[serde(default)]
    pub aggregation_methods: Option<Vec<String>>,
    /// Opt-in lossy storage: bits of the binary fraction kept, 1–52.
    /// Default: all (lossless).
    #[serde(default)]
    pub precision_bits: Option<u32>,
}

/// Resolves the `aggregation_methods` forms of reference §1.2.
///
/// # Errors
/// Names the bad method and lists the forms.
pub fn resolve_methods(spec: Option<&[String]>) -> Result<Vec<AggregationMethod>, String> {
    let Some(spec) = spec else {
        let mut d = default_methods();
        d.sort();
        return Ok(d);
    };
    let parse = |n: &str| {
        AggregationMethod::parse(n).ok_or_else(|| {
            format!("unknown aggregation method {n:?} (expected mean, sum, count, min, max, first, last, std, median, 1pct..99pct, or rate: of any)")
        })
    };
    let star = spec.iter().any(|s| s == "*");
    let signed = spec
        .iter()
        .all(|s| s.starts_with('+') || s.starts_with('-'));
    let mut out: Vec<AggregationMethod> = if star {
        all_methods()
    } else if signed && !spec.is_empty() {
        default_methods()
    } else {
        Vec::new()
    };
    for s in spec {
        if s == "*" {
            continue;
        }
        if let Some(m) = s.strip_prefix('-') {
            let m = parse(m)?;
            out.retain(|x| *x != m);
        } else if let Some(m) = s.strip_prefix('+') {
            if !star && !signed {
                return Err(format!("{s:?}: `+m` cannot be mixed with an explicit list"));
            }
            let m = parse(m)?;
            if !out.contains(&m) {
                out.push(m);
            }
        } else {
            if star {
                return Err(format!("{s:?}: with `*` only `-m` entries may follow"));
            }
            let m = parse(s)?;
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    if out.is_empty() {
        return Err("the policy has no aggregation method left".into());
    }
    out.sort();
    Ok(out)
}

/// The longest span in ns a timestamp difference can hold (`i64::MAX`, about
/// 292 years).
const MAX_NS: u128 = i64::MAX as u128;

fn too_long(ns: u128) -> String {
    format!(
        "{:.0} years is longer than timestamps in i64 nanoseconds reach (about 292 years)",
        ns as f64 / 1e9 / 31_556_952.0
    )
}

impl RawArchivePolicy {
    /// Checks the definition with Gnocchi's rules and builds the policy.
    ///
    /// # Errors
    /// Every problem, each as `(field, message)`: not two of the three
    /// item keys, `granularity × points ≠ timespan`, a zero or non-whole
    /// second granularity, duplicate granularities, a granularity,
    /// timespan or back window longer than `i64` nanoseconds reach (about
    /// 292 years), unknown methods, `precision_bits` outside 1–52.
    pub fn build(&self) -> Result<ArchivePolicy, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let mut definition = Vec::new();
        if self.definition.is_empty() {
            errors.push(("definition".into(), "needs at least one item".into()));
        }
        for (i, item) in self.definition.iter().enumerate() {
            let field = format!("definition[{i}]");
            let g = item
                .granularity
                .as_ref()
                .map(RawDuration::parse)
                .transpose();
            let t = item.timespan.as_ref().map(RawDuration::parse).transpose();
            let (g, t) = match (g, t) {
                (Ok(g), Ok(t)) => (g, t),
                (Err(e), _) => {
                    errors.push((format!("{field}.granularity"), e));
                    continue;
                }
                (_, Err(e)) => {
                    errors.push((format!("{field}.timespan"), e));
                    continue;
                }
            };
            if let Some((key, d)) = [("granularity", g), ("timespan", t)]
                .into_iter()
                .find_map(|(k, d)| d.filter(|d| d.as_nanos() > MAX_NS).map(|d| (k, d)))
            {
                errors.push((format!("{field}.{key}"), too_long(d.as_nanos())));
                continue;
            }
            let resolved = match (g, item.points, t) {
                (Some(g), Some(p), Some(t)) => {
                    let product = g.as_nanos() * u128::from(p);
                    if product != t.as_nanos() {
                        errors.push((
                            field,
                            format!(
                                "granularity × points ≠ timespan ({}s × {p} = {}s, timespan {}s)",
                                g.as_secs_f64(),
                                product as f64 / 1e9,
                                t.as_secs_f64()
                            ),
                        ));
                        continue;
                    }
                    (g, Some(p))
                }
                (Some(g), Some(p), None) => (g, Some(p)),
                // points = ⌊timespan / granularity⌋; timespan recomputed.
                (Some(g), None, Some(t)) if !g.is_zero() => {
                    (g, Some((t.as_nanos() / g.as_nanos()) as u64))
                }
                (None, Some(p), Some(t)) if p > 0 => (
                    // t fits i64 ns (checked above), so the quotient does.
                    Duration::from_nanos((t.as_nanos() / u128::from(p)) as u64),
                    Some(p),
                ),
                (Some(g), None, None) => (g, None),
                _ => {
                    errors.push((
                        field,
                        "give at least two of granularity, points and timespan".into(),
                    ));
                    continue;
                }
            };
            let (g, p) = resolved;
            if g.is_zero() || g.subsec_nanos() != 0 {
                errors.push((
                    format!("{field}.granularity"),
                    format!(
                        "must be a whole number of seconds > 0, got {}s",
                        g.as_secs_f64()
                    ),
                ));
                continue;
            }
            if p == Some(0) {
                errors.push((format!("{field}.points"), "must be > 0".into()));
                continue;
            }
            if let Some(p) = p
                && g.as_nanos() * u128::from(p) > MAX_NS
            {
                errors.push((
                    format!("{field}.points"),
                    too_long(g.as_nanos() * u128::from(p)),
                ));
                continue;
            }
            if definition.iter().any(|d: &PolicyItem| d.granularity == g) {
                errors.push((
                    format!("{field}.granularity"),
                    format!("duplicate granularity {}s", g.as_secs()),
                ));
                continue;
            }
            definition.push(PolicyItem {
                granularity: g,
                points: p,
            });
        }
        let methods = resolve_methods(self.aggregation_methods.as_deref()).unwrap_or_else(|e| {
            errors.push(("aggregation_methods".into(), e));
            Vec::new()
        });
        // The back-window cutoff reaches back_window + 2 blocks (one more
        // for a `rate:` method's predecessor, one of margin).
        if let Some(block) = definition.iter().map(|d| d.granularity.as_nanos()).max()
            && u128::from(self.back_window).saturating_add(2) * block > MAX_NS
        {
            errors.push((
                "back_window".into(),
                format!(
                    "{} blocks of {}s reach further than timestamps in i64 nanoseconds can (about 292 years)",
                    self.back_window,
                    block / 1_000_000_000
                ),
            ));
        }
        if let Some(bits) = self.precision_bits
            && !(1..=52).contains(&bits)
        {
            errors.push((
                "precision_bits".into(),
                format!(
                    "must be 1 to 52 (bits kept of a value's 52-bit binary fraction; 52 or no precision_bits keeps values exact), got {bits}"
                ),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        definition.sort_by_key(|d| d.granularity);
        Ok(ArchivePolicy {
            name: self.name.clone(),
            back_window: self.back_window,
            definition,
            aggregation_methods: methods,
            // 52 bits are all of them: exact, and not labelled as rounded.
            precision_bits: self.precision_bits.filter(|&b| b < 52),
        })
    }
}

/// An `[[archive_policy_rule]]`: metrics whose name matches
/// `metric_pattern` (fnmatch) get `archive_policy_name`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicyRule {
    /// Rule name (breaks ties).
    pub name: String,
    /// fnmatch glob over metric names.
    pub metric_pattern: String,
    /// The policy to apply.
    pub archive_policy_name: String,
}

/// Archive policy rules in Gnocchi's matching order: `metric_pattern`
/// descending (string order), ties by name ascending; the first match wins.
#[derive(Debug, Clone)]
pub struct PolicyRules {
    rules: Vec<(String, String, GlobMatcher, usize)>,
}

impl PartialEq for PolicyRules {
    fn eq(&self, other: &Self) -> bool {
        let key = |r: &PolicyRules| {
            r.rules
                .iter()
                .map(|(p, n, _, i)| (p.clone(), n.clone(), *i))
                .collect::<Vec<_>>()
        };
        key(self) == key(other)
    }
}

impl PolicyRules {
    /// Orders `rules`, resolving each policy name to its index in
    /// `policies`.
    ///
    /// # Errors
    /// `(rule index, message)` for a bad pattern or an unknown policy.
    pub fn new(
        rules: &[RawPolicyRule],
        policies: &[ArchivePolicy],
    ) -> Result<Self, Vec<(usize, String)>> {
        let mut errors = Vec::new();
        let mut out = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            let glob = match Glob::new(&r.metric_pattern) {
                Ok(g) => g.compile_matcher(),
                Err(e) => {
                    errors.push((i, format!("bad metric_pattern {:?}: {e}", r.metric_pattern)));
                    continue;
                }
            };
            match policies
                .iter()
                .position(|p| p.name == r.archive_policy_name)
            {
                Some(p) => out.push((r.metric_pattern.clone(), r.name.clone(), glob, p)),
                None => {
                    let known: Vec<&str> = policies.iter().map(|p| p.name.as_str()).collect();
                    errors.push((
                        i,
                        format!(
                            "unknown archive policy {:?} (policies: {})",
                            r.archive_policy_name,
                            known.join(", ")
                        ),
                    ));
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        out.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        Ok(PolicyRules { rules: out })
    }

    /// Gnocchi's fresh-install rule: `default: * -> low`.
    pub fn default_rule(policies: &[ArchivePolicy]) -> Self {
        let rule = RawPolicyRule {
            name: "default".into(),
            metric_pattern: "*".into(),
            archive_policy_name: "low".into(),
        };
        Self::new(&[rule], policies).expect("the built-in `low` policy exists")
    }

    /// The index of the policy for `metric`, or `None` when no rule matches.
    pub fn policy_for(&self, metric: &str) -> Option<usize> {
        self.rules
            .iter()
            .find(|r| r.2.is_match(metric))
            .map(|r| r.3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(g: Option<f64>, p: Option<u64>, t: Option<f64>) -> RawPolicyItem {
        RawPolicyItem {
            granularity: g.map(RawDuration::Seconds),
            points: p,
            timespan: t.map(RawDuration::Seconds),
        }
    }

    fn policy(items: Vec<RawPolicyItem>) -> Result<ArchivePolicy, Vec<(String, String)>> {
        RawArchivePolicy {
            name: "p".into(),
            back_window: 0,
            definition: items,
            aggregation_methods: None,
            precision_bits: None,
        }
        .build()
    }

    #[test]
    fn any_two_of_three_as_gnocchi() {
        // 7 s over 60 s: 8 points, timespan recomputed to 56 s [checked].
        let p = policy(vec![item(Some(7.0), None, Some(60.0))]).unwrap();
        assert_eq!(p.definition[0].points, Some(8));
        assert_eq!(p.definition[0].timespan(), Some(Duration::from_secs(56)));
        // 12 points over 1 h: granularity 300 s [checked].
        let p = policy(vec![item(None, Some(12), Some(3600.0))]).unwrap();
        assert_eq!(p.definition[0].granularity, Duration::from_secs(300));
        // All three must agree.
        let e = policy(vec![item(Some(60.0), Some(10), Some(3600.0))]).unwrap_err();
        assert_eq!(e[0].0, "definition[0]");
        assert_eq!(
            e[0].1,
            "granularity × points ≠ timespan (60s × 10 = 600s, timespan 3600s)"
        );
        // Granularity alone: no retention.
        assert_eq!(
            policy(vec![item(Some(60.0), None, None)])
                .unwrap()
                .definition[0]
                .points,
            None
        );
        // Duplicates and zero.
        let e = policy(vec![
            item(Some(60.0), Some(1), None),
            item(Some(60.0), Some(2), None),
        ])
        .unwrap_err();
        assert_eq!(
            e[0],
            (
                "definition[1].granularity".to_string(),
                "duplicate granularity 60s".to_string()
            )
        );
        assert!(policy(vec![item(Some(0.0), Some(1), None)]).is_err());
        assert!(policy(vec![item(None, Some(1), None)]).is_err());
    }

    #[test]
    fn spans_past_i64_nanoseconds_are_refused_not_wrapped() {
        // 1000 years of minutes: 3.16e19 ns would wrap to a negative i64
        // and make retention delete every partition.
        let long = RawPolicyItem {
            granularity: Some(RawDuration::Text("1m".into())),
            points: None,
            timespan: Some(RawDuration::Text("1000y".into())),
        };
        assert_eq!(
            policy(vec![long]).unwrap_err(),
            [(
                "definition[0].timespan".to_string(),
                "1000 years is longer than timestamps in i64 nanoseconds reach (about 292 years)"
                    .to_string()
            )]
        );
        // The same through points (which no longer truncate to 32 bits).
        let e = policy(vec![item(Some(60.0), Some(6_000_000_000), None)]).unwrap_err();
        assert_eq!(e[0].0, "definition[0].points");
        assert!(e[0].1.starts_with("11408 years is longer"), "{}", e[0].1);
        let p = policy(vec![item(Some(1.0), Some(5_000_000_000), None)]).unwrap();
        assert_eq!(
            p.definition[0].timespan(),
            Some(Duration::from_secs(5_000_000_000))
        );
        assert_eq!(
            policy(vec![item(Some(1e30), Some(1), None)]).unwrap_err(),
            [(
                "definition[0].granularity".to_string(),
                "1000000000000000000000000000000 is not a duration".to_string()
            )]
        );
        // A back window of 106,752 days is past it too.
        let e = RawArchivePolicy {
            back_window: 106_752,
            ..RawArchivePolicy {
                name: "p".into(),
                back_window: 0,
                definition: vec![item(Some(86400.0), Some(1), None)],
                aggregation_methods: None,
                precision_bits: None,
            }
        }
        .build()
        .unwrap_err();
        assert_eq!(
            e,
            [(
                "back_window".to_string(),
                "106752 blocks of 86400s reach further than timestamps in i64 nanoseconds can (about 292 years)"
                    .to_string()
            )]
        );
    }

    #[test]
    fn method_forms() {
        let names = |v: Vec<AggregationMethod>| v.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            names(resolve_methods(None).unwrap()),
            ["mean", "sum", "count", "min", "max", "std"]
        );
        assert_eq!(
            names(resolve_methods(Some(&s(&["max", "rate:95pct", "mean"]))).unwrap()),
            ["mean", "max", "rate:95pct"]
        );
        assert_eq!(
            names(resolve_methods(Some(&s(&["+median", "-std", "-sum"]))).unwrap()),
            ["mean", "count", "min", "max", "median"]
        );
        let all = resolve_methods(Some(&s(&["*", "-rate:mean"]))).unwrap();
        assert_eq!(all.len(), 215);
        assert!(
            resolve_methods(Some(&s(&["mean", "bogus"])))
                .unwrap_err()
                .starts_with("unknown aggregation method \"bogus\"")
        );
        assert!(resolve_methods(Some(&s(&["100pct"]))).is_err());
        assert!(resolve_methods(Some(&s(&["05pct"]))).is_err());
        assert_eq!(
            AggregationMethod::parse("rate:95pct")
                .unwrap()
                .column_name(),
            "rate_pct95"
        );
        assert_eq!(
            AggregationMethod::parse("median").unwrap().column_name(),
            "median"
        );
    }

    #[test]
    fn rules_in_gnocchi_order() {
        let policies = builtin_policies();
        let rule = |name: &str, pattern: &str, policy: &str| RawPolicyRule {
            name: name.into(),
            metric_pattern: pattern.into(),
            archive_policy_name: policy.into(),
        };
        let rules = PolicyRules::new(
            &[
                rule("all", "*", "low"),
                rule("disk", "disk.*", "high"),
                rule("b", "cpu*", "medium"),
                rule("a", "cpu*", "bool"),
            ],
            &policies,
        )
        .unwrap();
        let name = |m: &str| rules.policy_for(m).map(|i| policies[i].name.as_str());
        assert_eq!(name("disk.read.bytes"), Some("high"));
        assert_eq!(name("memory"), Some("low"));
        // Equal patterns: the rule name breaks the tie ("a" < "b").
        assert_eq!(name("cpu.time"), Some("bool"));
        let strict = PolicyRules::new(&[rule("d", "disk.*", "high")], &policies).unwrap();
        assert_eq!(strict.policy_for("cpu"), None);
        assert!(PolicyRules::new(&[rule("x", "*", "nope")], &policies).is_err());
    }

    #[test]
    fn builtins_match_the_reference() {
        let p = builtin_policies();
        let medium = p.iter().find(|p| p.name == "medium").unwrap();
        assert_eq!(
            medium.definition[0].timespan(),
            Some(Duration::from_secs(7 * 86400))
        );
        assert_eq!(
            medium.definition[1].timespan(),
            Some(Duration::from_secs(365 * 86400))
        );
        assert_eq!(medium.block_ns(), 3_600_000_000_000);
        let b = p.iter().find(|p| p.name == "bool").unwrap();
        assert_eq!((b.back_window, b.aggregation_methods.len()), (3600, 1));
        let rate = p.iter().find(|p| p.name == "ceilometer-low-rate").unwrap();
        assert_eq!(rate.effective_back_window(), 1);
    }
}

//! Ceilometer's meter filter (reference §3.3): fnmatch includes and `!`
//! excludes.

use globset::{Glob, GlobSet, GlobSetBuilder};

/// Which meters a stage takes, with Ceilometer's rules:
///
/// - the list must not be empty;
/// - plain includes and `!` excludes cannot be mixed, except that `*` may
///   stand with excludes (`["*", "!cpu"]`);
/// - `*` cannot be combined with explicit includes;
/// - a meter matching any exclude is rejected; otherwise it is accepted if
///   an include matches, or if the list holds only excludes.
///
/// Patterns are fnmatch globs: `*` matches any run of characters, dots
/// included (`disk.*` matches `disk.read.bytes`).
#[derive(Debug, Clone)]
pub struct MeterFilter {
    patterns: Vec<String>,
    include: GlobSet,
    exclude: GlobSet,
    include_all: bool,
    only_excludes: bool,
}

impl PartialEq for MeterFilter {
    fn eq(&self, other: &Self) -> bool {
        self.patterns == other.patterns
    }
}

impl MeterFilter {
    /// Accepts every meter (`["*"]`).
    pub fn all() -> Self {
        Self::new(&["*".to_owned()]).expect("`*` is a valid filter")
    }

    /// Builds a filter from config patterns.
    ///
    /// # Errors
    /// A message naming the rule broken or the bad pattern.
    pub fn new(patterns: &[String]) -> Result<Self, String> {
        if patterns.is_empty() {
            return Err("the meter list must not be empty (use [\"*\"] for every meter)".into());
        }
        let (excludes, includes): (Vec<&String>, Vec<&String>) =
            patterns.iter().partition(|p| p.starts_with('!'));
        let include_all = includes.iter().any(|p| *p == "*");
        if include_all && includes.len() > 1 {
            return Err("`*` cannot be combined with explicit includes".into());
        }
        if !excludes.is_empty() && !includes.is_empty() && !include_all {
            return Err(
                "includes and `!` excludes cannot be mixed (only `*` may stand with excludes)"
                    .into(),
            );
        }
        let build = |ps: &[&String], strip: bool| -> Result<GlobSet, String> {
            let mut b = GlobSetBuilder::new();
            for p in ps {
                let pat = if strip { &p[1..] } else { p.as_str() };
                b.add(Glob::new(pat).map_err(|e| format!("bad meter pattern {p:?}: {e}"))?);
            }
            b.build().map_err(|e| e.to_string())
        };
        Ok(MeterFilter {
            patterns: patterns.to_vec(),
            include: build(&includes, false)?,
            exclude: build(&excludes, true)?,
            include_all,
            only_excludes: includes.is_empty(),
        })
    }

    /// True when the filter takes every meter.
    pub fn is_all(&self) -> bool {
        self.include_all && self.exclude.is_empty()
    }

    /// Whether `meter` passes the filter.
    pub fn matches(&self, meter: &str) -> bool {
        if self.exclude.is_match(meter) {
            return false;
        }
        self.include_all || self.include.is_match(meter) || self.only_excludes
    }

    /// The patterns as configured.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(p: &[&str]) -> Result<MeterFilter, String> {
        MeterFilter::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn ceilometer_rules() {
        let only_excl = f(&["!disk.*"]).unwrap();
        assert!(only_excl.matches("cpu"));
        assert!(!only_excl.matches("disk.read.bytes"));
        let star_excl = f(&["*", "!cpu"]).unwrap();
        assert!(star_excl.matches("memory.usage"));
        assert!(!star_excl.matches("cpu"));
        let incl = f(&["cpu*", "memory.usage"]).unwrap();
        assert!(incl.matches("cpu.time"));
        assert!(incl.matches("memory.usage"));
        assert!(!incl.matches("memory.total"));
        assert!(f(&[]).is_err());
        assert_eq!(
            f(&["cpu", "!disk"]).unwrap_err(),
            "includes and `!` excludes cannot be mixed (only `*` may stand with excludes)"
        );
        assert_eq!(
            f(&["*", "cpu"]).unwrap_err(),
            "`*` cannot be combined with explicit includes"
        );
        assert!(f(&["*"]).unwrap().is_all());
    }
}

//! Numbers and timestamps as both text formats write them.
//!
//! Values: a decimal real number (`1`, `-2.5`, `.5`, `1.`, `1.5e-3`,
//! leading zeros allowed) or, case-insensitively, `Inf`/`Infinity` with an
//! optional sign, or `NaN` without one. This is OpenMetrics' `number` (its
//! ABNF strings are case-insensitive) and what Prometheus 0.0.4 accepts
//! from Go's `ParseFloat` once hexadecimal floats and `_` digit separators
//! are refused, as the Prometheus text parser refuses them.
//!
//! Timestamps: OpenMetrics writes seconds as a `realnumber` (no Inf/NaN),
//! Prometheus milliseconds as an int64. Both become nanoseconds exactly
//! (decimal arithmetic, no float rounding); digits below a nanosecond are
//! dropped and times beyond the i64 nanosecond range (years before 1678 or
//! after 2262) are clamped to it.

/// A sample's or exemplar's own time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Timestamp {
    /// Nanoseconds since the Unix epoch, clamped to the i64 range.
    pub ns: i64,
    /// Seconds as a float, for ordering checks (exact order of the text).
    pub secs: f64,
}

/// True when `s` is a decimal real number:
/// `[sign] (1*DIGIT ["." *DIGIT] / "." 1*DIGIT) [("e" / "E") [sign] 1*DIGIT]`.
pub(crate) fn is_realnumber(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let int_digits = digits(&mut i);
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = digits(&mut i);
    }
    if int_digits + frac_digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// A sample or exemplar value, `None` when `s` is not a number.
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    if is_realnumber(s) {
        return s.parse().ok();
    }
    let (negative, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if body.eq_ignore_ascii_case("inf") || body.eq_ignore_ascii_case("infinity") {
        Some(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        })
    } else if body.len() == s.len() && s.eq_ignore_ascii_case("nan") {
        Some(f64::NAN)
    } else {
        None
    }
}

/// An OpenMetrics `le` or `quantile` label value: a real number, or `+Inf`
/// / `-Inf` written exactly so (the canonical spelling). NaN is refused.
pub(crate) fn parse_canonical(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ if is_realnumber(s) => s.parse().ok(),
        _ => None,
    }
}

/// An OpenMetrics timestamp: a real number of seconds.
pub(crate) fn om_timestamp(s: &str) -> Option<Timestamp> {
    if !is_realnumber(s) {
        return None;
    }
    Some(Timestamp {
        ns: decimal_scaled(s, 9),
        secs: s.parse().ok()?,
    })
}

/// A Prometheus timestamp: an int64 of milliseconds.
pub(crate) fn prom_timestamp(s: &str) -> Option<Timestamp> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms: i64 = s.parse().ok()?;
    Some(Timestamp {
        ns: ms.saturating_mul(1_000_000),
        secs: ms as f64 / 1e3,
    })
}

/// `s` (a valid real number) times `10^scale`, truncated toward zero and
/// clamped to the i64 range, computed in decimal.
fn decimal_scaled(s: &str, scale: i64) -> i64 {
    const CAP: i128 = 10_i128.pow(36);
    let b = s.as_bytes();
    let negative = b.first() == Some(&b'-');
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let mut mantissa: i128 = 0;
    let mut shift = scale;
    let mut in_fraction = false;
    while let Some(&c) = b.get(i) {
        match c {
            b'0'..=b'9' if mantissa < CAP => {
                mantissa = mantissa * 10 + i128::from(c - b'0');
                shift -= i64::from(in_fraction);
            }
            // Digits beyond 36 significant ones: integer digits still
            // count as a power of ten, fraction digits are dropped.
            b'0'..=b'9' => shift += i64::from(!in_fraction),
            b'.' => in_fraction = true,
            _ => break,
        }
        i += 1;
    }
    if i < b.len() {
        // The exponent: `e`, optional sign, digits (saturated: anything
        // beyond ±10^4 is out of range either way).
        let exp = &s[i + 1..];
        let (sign, digits) = match exp.as_bytes().first() {
            Some(b'-') => (-1, &exp[1..]),
            Some(b'+') => (1, &exp[1..]),
            _ => (1, exp),
        };
        let magnitude = digits
            .bytes()
            .fold(0_i64, |acc, d| (acc * 10 + i64::from(d - b'0')).min(10_000));
        shift += sign * magnitude;
    }
    let scaled = if mantissa == 0 {
        0
    } else if shift > 38 {
        i128::MAX
    } else if shift >= 0 {
        mantissa.saturating_mul(10_i128.pow(shift as u32))
    } else if shift < -38 {
        0
    } else {
        mantissa / 10_i128.pow((-shift) as u32)
    };
    let signed = if negative { -scaled } else { scaled };
    signed.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_syntax() {
        for ok in ["1", "-1", "+1.5", ".5", "1.", "1e3", "1.5E-3", "007", "0.0"] {
            assert!(is_realnumber(ok), "{ok}");
        }
        for bad in [
            "", ".", "+", "1e", "1e+", "1_2", "0x1", "1.1.1", " 1", "1 ", "e3",
        ] {
            assert!(!is_realnumber(bad), "{bad}");
        }
        assert_eq!(parse_number("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_number("-infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_number("Inf"), Some(f64::INFINITY));
        assert!(parse_number("nan").unwrap().is_nan());
        assert_eq!(parse_number("+NaN"), None);
        assert_eq!(parse_number("0x1p-3"), None);
        assert_eq!(parse_canonical("+INF"), None);
        assert_eq!(parse_canonical("NaN"), None);
        assert_eq!(parse_canonical("1e-04"), Some(1e-4));
    }

    #[test]
    fn timestamps_are_exact_nanoseconds() {
        let ns = |s| om_timestamp(s).unwrap().ns;
        assert_eq!(ns("1.1"), 1_100_000_000);
        assert_eq!(ns("1.5e3"), 1_500_000_000_000);
        assert_eq!(ns("-1.1"), -1_100_000_000);
        assert_eq!(ns("0.0000000001"), 0);
        assert_eq!(ns("0.000000001"), 1);
        assert_eq!(ns("1726839814.2239082"), 1_726_839_814_223_908_200);
        assert_eq!(ns("12345678901234567890.1234567890"), i64::MAX);
        assert_eq!(ns("1e-400"), 0);
        assert_eq!(om_timestamp("NaN"), None);
        assert_eq!(
            prom_timestamp("1700000000123").unwrap().ns,
            1_700_000_000_123_000_000
        );
        assert_eq!(prom_timestamp("-5").unwrap().ns, -5_000_000);
        assert_eq!(prom_timestamp("1.5"), None);
        assert_eq!(prom_timestamp("99999999999999999999"), None);
    }
}

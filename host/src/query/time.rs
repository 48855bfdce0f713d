//! Times and durations as Gnocchi's API accepts them.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};

/// Parses a point in time into ns since the Unix epoch, UTC:
///
/// - RFC 3339 with an offset: `2024-03-01T12:00:00Z`, `…+01:00`;
/// - ISO 8601 without an offset, read as UTC: `2024-03-01T12:00:00`,
///   `2024-03-01 12:00`, `2024-03-01`;
/// - seconds since the Unix epoch: `1709294400`, `1709294400.5`;
/// - relative to `now_ns`: `now`, `-1h`, `-30m`, `+10s` (humantime
///   durations, e.g. `-1h 30m`).
///
/// # Errors
/// A message naming the value and the accepted forms.
pub fn parse_time(s: &str, now_ns: i64) -> Result<i64, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "{s:?} is not a time: expected RFC 3339 (2024-03-01T12:00:00Z), ISO 8601 in UTC (2024-03-01 12:00), epoch seconds (1709294400) or a time relative to now (now, -1h)"
        )
    };
    if s == "now" {
        return Ok(now_ns);
    }
    // Relative: a sign and a duration (a negative epoch number falls
    // through to the epoch form).
    if let Some((sign, rest)) = s
        .strip_prefix('-')
        .map(|r| (-1i64, r))
        .or_else(|| s.strip_prefix('+').map(|r| (1, r)))
        && let Ok(d) = humantime::parse_duration(rest.trim())
    {
        let d = i64::try_from(d.as_nanos()).map_err(|_| bad())?;
        return now_ns.checked_add(sign * d).ok_or_else(bad);
    }
    if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() || secs.abs() > 9.2e9 {
            return Err(bad());
        }
        return Ok((secs * 1e9).round() as i64);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return t.timestamp_nanos_opt().ok_or_else(bad);
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return t.and_utc().timestamp_nanos_opt().ok_or_else(bad);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d
            .and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_utc().timestamp_nanos_opt())
            .ok_or_else(bad);
    }
    Err(bad())
}

/// A calendar group of Gnocchi's resample (its `calendar.GROUPINGS`): the
/// points of a year, half-year, quarter, month or week (weeks start on
/// Sunday), in UTC, labelled by the group's first day at 00:00.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalendarGroup {
    /// `Y`: from January 1.
    Year,
    /// `H`: from January 1 or July 1.
    Half,
    /// `Q`: from January, April, July or October 1.
    Quarter,
    /// `M`: from the 1st of the month.
    Month,
    /// `W`: from Sunday.
    Week,
}

impl CalendarGroup {
    /// The group of `letter`: exactly `Y`, `H`, `Q`, `M` or `W`, as
    /// Gnocchi (a duration such as `1M` is not a group).
    pub fn parse(letter: &str) -> Option<Self> {
        Some(match letter {
            "Y" => Self::Year,
            "H" => Self::Half,
            "Q" => Self::Quarter,
            "M" => Self::Month,
            "W" => Self::Week,
            _ => return None,
        })
    }

    /// The group's letter.
    pub fn letter(self) -> &'static str {
        match self {
            Self::Year => "Y",
            Self::Half => "H",
            Self::Quarter => "Q",
            Self::Month => "M",
            Self::Week => "W",
        }
    }

    /// The start of the group holding `t` (ns since the Unix epoch, UTC).
    pub fn floor(self, t: i64) -> i64 {
        const DAY: i64 = 86_400_000_000_000;
        let days = t.div_euclid(DAY);
        let first_day = match self {
            // 1970-01-01 was a Thursday: day -4 a Sunday.
            Self::Week => (days + 4).div_euclid(7) * 7 - 4,
            _ => {
                let date = DateTime::from_timestamp_nanos(t).date_naive();
                let month0 = date.month0();
                let month0 = match self {
                    Self::Year => 0,
                    Self::Half => month0 / 6 * 6,
                    Self::Quarter => month0 / 3 * 3,
                    _ => month0,
                };
                let first = NaiveDate::from_ymd_opt(date.year(), month0 + 1, 1)
                    .expect("the first of a month exists");
                first
                    .signed_duration_since(DateTime::UNIX_EPOCH.date_naive())
                    .num_days()
            }
        };
        first_day.saturating_mul(DAY)
    }
}

/// Parses a granularity or window: seconds as a number (`60`, `0.5`), or a
/// humantime duration (`1m`, `1h 30m`). Returns ns.
///
/// # Errors
/// A message naming the value; zero or negative is refused.
pub fn parse_granularity(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let ns = match s.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs < 9.2e9 => (secs * 1e9).round() as i64,
        Ok(_) => return Err(format!("{s:?}: a granularity must be positive")),
        Err(_) => match humantime::parse_duration(s) {
            Ok(d) if !d.is_zero() => {
                i64::try_from(d.as_nanos()).map_err(|_| format!("{s:?} is too long"))?
            }
            Ok(_) => return Err(format!("{s:?}: a granularity must be positive")),
            Err(_) => {
                return Err(format!(
                    "{s:?} is not a granularity: expected seconds (60) or a duration (1m, 1h)"
                ));
            }
        },
    };
    Ok(ns)
}

/// A granularity in ns as seconds, without a needless fraction: `60`,
/// `0.5`.
pub fn format_seconds(ns: i64) -> String {
    if ns % 1_000_000_000 == 0 {
        (ns / 1_000_000_000).to_string()
    } else {
        (ns as f64 / 1e9).to_string()
    }
}

/// RFC 3339 in UTC, with as many fractional digits as needed: how times
/// are printed.
pub fn format_time(ns: i64) -> String {
    let t = DateTime::<Utc>::from_timestamp_nanos(ns);
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_709_294_400_000_000_000; // 2024-03-01T12:00:00Z

    #[test]
    fn every_accepted_form() {
        for (s, want) in [
            ("2024-03-01T12:00:00Z", NOW),
            ("2024-03-01T13:00:00+01:00", NOW),
            ("2024-03-01T12:00:00", NOW),
            ("2024-03-01 12:00", NOW),
            ("2024-03-01", NOW - 12 * 3_600_000_000_000),
            ("1709294400", NOW),
            ("1709294400.5", NOW + 500_000_000),
            ("now", NOW),
            ("-1h", NOW - 3_600_000_000_000),
            ("-1h 30m", NOW - 5_400_000_000_000),
            ("+10s", NOW + 10_000_000_000),
            ("-60", -60_000_000_000),
        ] {
            assert_eq!(parse_time(s, NOW), Ok(want), "{s}");
        }
        assert!(
            parse_time("yesterday", NOW)
                .unwrap_err()
                .contains("\"yesterday\" is not a time")
        );
    }

    #[test]
    fn calendar_groups_start_on_their_first_day_weeks_on_sunday() {
        let t = |s: &str| parse_time(s, NOW).unwrap();
        use CalendarGroup::*;
        // Expected days computed apart (Python's datetime).
        for (at, want) in [
            (
                "2024-05-15T13:00:00Z",
                [
                    "2024-01-01",
                    "2024-01-01",
                    "2024-04-01",
                    "2024-05-01",
                    "2024-05-12",
                ],
            ),
            (
                "2024-08-20T23:59:59Z",
                [
                    "2024-01-01",
                    "2024-07-01",
                    "2024-07-01",
                    "2024-08-01",
                    "2024-08-18",
                ],
            ),
            (
                "1969-12-31T12:00:00Z",
                [
                    "1969-01-01",
                    "1969-07-01",
                    "1969-10-01",
                    "1969-12-01",
                    "1969-12-28",
                ],
            ),
            (
                "1970-01-01T00:00:00Z",
                [
                    "1970-01-01",
                    "1970-01-01",
                    "1970-01-01",
                    "1970-01-01",
                    "1969-12-28",
                ],
            ),
            (
                "2024-05-12T00:00:00Z",
                [
                    "2024-01-01",
                    "2024-01-01",
                    "2024-04-01",
                    "2024-05-01",
                    "2024-05-12",
                ],
            ),
        ] {
            for (group, day) in [Year, Half, Quarter, Month, Week].into_iter().zip(want) {
                assert_eq!(group.floor(t(at)), t(day), "{at} {group:?}");
                assert_eq!(CalendarGroup::parse(group.letter()), Some(group));
            }
        }
        assert_eq!(CalendarGroup::parse("1M"), None);
        assert_eq!(CalendarGroup::parse("m"), None);
    }

    #[test]
    fn granularities_and_printing() {
        assert_eq!(parse_granularity("60"), Ok(60_000_000_000));
        assert_eq!(parse_granularity("1m"), Ok(60_000_000_000));
        assert_eq!(parse_granularity("0.5"), Ok(500_000_000));
        assert!(parse_granularity("0").is_err());
        assert!(
            parse_granularity("soon")
                .unwrap_err()
                .contains("not a granularity")
        );
        assert_eq!(format_time(NOW), "2024-03-01T12:00:00Z");
        assert_eq!(format_time(NOW + 500_000_000), "2024-03-01T12:00:00.500Z");
    }
}

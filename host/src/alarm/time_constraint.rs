//! Aodh's `time_constraints`: when an alarm is evaluated at all.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// A window that opens at each fire time of a cron expression and stays
/// open for `duration`, in an IANA time zone.
#[derive(Debug, Clone)]
pub struct TimeConstraint {
    /// Unique per alarm.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The cron expression as written (5 fields: minute hour day month
    /// weekday).
    pub start: String,
    /// How long the window stays open after each start.
    pub duration: Duration,
    /// The zone the cron expression is read in (`UTC` when not given).
    pub timezone: Tz,
    cron: Cron,
}

impl PartialEq for TimeConstraint {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.name,
            &self.description,
            &self.start,
            self.duration,
            self.timezone,
        ) == (
            &other.name,
            &other.description,
            &other.start,
            other.duration,
            other.timezone,
        )
    }
}

impl TimeConstraint {
    /// A constraint; `timezone` is an IANA name (`""` for UTC).
    ///
    /// # Errors
    /// A message naming the bad cron expression or time zone.
    pub fn new(
        name: &str,
        description: &str,
        start: &str,
        duration: Duration,
        timezone: &str,
    ) -> Result<Self, String> {
        let cron = Cron::new(start)
            .parse()
            .map_err(|e| format!("start: bad cron expression {start:?}: {e}"))?;
        let timezone: Tz = if timezone.is_empty() {
            Tz::UTC
        } else {
            timezone
                .parse()
                .map_err(|_| format!("timezone: {timezone:?} is not an IANA time zone name"))?
        };
        Ok(TimeConstraint {
            name: name.to_owned(),
            description: description.to_owned(),
            start: start.to_owned(),
            duration,
            timezone,
            cron,
        })
    }

    /// Aodh's rule: `now` is inside when the most recent fire time ≤ now
    /// is at most `duration` before it, or when now is within the minute
    /// of a fire time. `now_ns`: ns since the Unix epoch.
    pub fn contains(&self, now_ns: i64) -> bool {
        let now = Utc.timestamp_nanos(now_ns).with_timezone(&self.timezone);
        // A fire time in [now − max(duration, to the minute's start), now]
        // exists exactly when the most recent one qualifies.
        let minute_start = now - chrono::Duration::nanoseconds(now_ns.rem_euclid(60_000_000_000));
        let window_start = chrono::Duration::from_std(self.duration)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .unwrap_or(minute_start)
            .min(minute_start);
        match self.cron.find_next_occurrence(&window_start, true) {
            Ok(t) => t <= now,
            Err(_) => false,
        }
    }
}

/// Whether `now_ns` is inside at least one of `constraints` (always, when
/// there are none).
pub fn within(constraints: &[TimeConstraint], now_ns: i64) -> bool {
    constraints.is_empty() || constraints.iter().any(|c| c.contains(now_ns))
}

/// RFC 3339 with seconds, UTC (`2026-12-01T08:00:00Z`).
pub fn rfc3339(ns: i64) -> String {
    let t: DateTime<Utc> = Utc.timestamp_nanos(ns);
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap()
    }

    #[test]
    fn window_after_each_start() {
        // Weekdays 09:00 for 8 h, Paris time (UTC+1 in December).
        let c = TimeConstraint::new(
            "office",
            "",
            "0 9 * * 1-5",
            Duration::from_secs(8 * 3600),
            "Europe/Paris",
        )
        .unwrap();
        // Tuesday 2026-12-01.
        assert!(!c.contains(at("2026-12-01T07:59:59Z")));
        assert!(c.contains(at("2026-12-01T08:00:00Z")));
        assert!(c.contains(at("2026-12-01T16:00:00Z")));
        assert!(!c.contains(at("2026-12-01T16:00:01Z")));
        // Saturday.
        assert!(!c.contains(at("2026-12-05T10:00:00Z")));
    }

    #[test]
    fn zero_duration_matches_within_the_minute() {
        let c = TimeConstraint::new("t", "", "30 12 * * *", Duration::ZERO, "").unwrap();
        assert!(c.contains(at("2026-12-01T12:30:00Z")));
        assert!(c.contains(at("2026-12-01T12:30:59Z")));
        assert!(!c.contains(at("2026-12-01T12:31:00Z")));
        assert!(!c.contains(at("2026-12-01T12:29:59Z")));
    }

    #[test]
    fn bad_input_is_named() {
        let e = TimeConstraint::new("t", "", "61 * * * *", Duration::ZERO, "").unwrap_err();
        assert!(
            e.starts_with("start: bad cron expression \"61 * * * *\""),
            "{e}"
        );
        let e =
            TimeConstraint::new("t", "", "0 9 * * *", Duration::ZERO, "Mars/Olympus").unwrap_err();
        assert_eq!(
            e,
            "timezone: \"Mars/Olympus\" is not an IANA time zone name"
        );
        assert!(within(&[], 0));
    }
}

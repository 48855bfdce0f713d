//! Reading history files for `wasmeter import`: CSV with a time and a
//! value column, e.g. NAB's `timestamp,value` files.
//!
//! Timestamps are accepted as RFC 3339 with an offset (`2014-02-19T15:25:00Z`),
//! as naive local times (`2014-02-19 15:25:00`, `2014-02-19T15:25:00.5`) read
//! in the `--timezone` given (default UTC), or as seconds since the Unix
//! epoch (`1392823500`, `1392823500.25`).
//!
//! **Local time rule** (DST): a naive time that occurs twice (the autumn
//! hour repeated) maps to its first occurrence, unless that is not after
//! the previous row's time, then to its second; such rows are counted as
//! `ambiguous`. A naive time that does not exist (the spring gap) is
//! dropped and counted as `nonexistent`. After mapping, a row whose time is
//! not after the previous accepted row's is dropped and counted as
//! `backward`. A line whose time or value does not parse is dropped and
//! reported with its line number; the rest of the file is kept.

use std::path::Path;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

/// How to read a CSV file.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// Header name of the time column.
    pub time_column: String,
    /// Header name of the value column.
    pub value_column: String,
    /// The zone naive times are read in.
    pub timezone: Tz,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            time_column: "timestamp".into(),
            value_column: "value".into(),
            timezone: Tz::UTC,
        }
    }
}

/// What reading a file did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadReport {
    /// Data lines read (header excluded).
    pub lines: u64,
    /// Rows kept.
    pub rows: u64,
    /// Naive times that occur twice in the zone (kept, see the rule).
    pub ambiguous: u64,
    /// Naive times that do not exist in the zone (dropped).
    pub nonexistent: u64,
    /// Rows whose time was not after the previous row's (dropped).
    pub backward: u64,
    /// Lines that did not parse: (1-based line number, reason), dropped.
    pub bad_lines: Vec<(u64, String)>,
}

/// Reads `path`: returns (ns since the Unix epoch UTC, value) rows in file
/// order, and what was dropped.
///
/// # Errors
/// The file cannot be opened, has no header, or lacks one of the columns
/// (the message names the file and the columns it has).
pub fn read_csv(path: &Path, opts: &CsvOptions) -> anyhow::Result<(Vec<(i64, f64)>, ReadReport)> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let headers = reader
        .headers()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        .clone();
    let col = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            let have: Vec<&str> = headers.iter().collect();
            anyhow::anyhow!(
                "{}: no column {name:?} (columns: {})",
                path.display(),
                have.join(", ")
            )
        })
    };
    let (ti, vi) = (col(&opts.time_column)?, col(&opts.value_column)?);
    let mut out = Vec::new();
    let mut report = ReadReport::default();
    let mut last: Option<i64> = None;
    for record in reader.records() {
        report.lines += 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(report.lines + 1, |p| p.line());
                report.bad_lines.push((line, e.to_string()));
                continue;
            }
        };
        let line = record.position().map_or(report.lines + 1, |p| p.line());
        let (Some(t), Some(v)) = (record.get(ti), record.get(vi)) else {
            report.bad_lines.push((line, "missing a column".into()));
            continue;
        };
        let value: f64 = match v.parse() {
            Ok(v) => v,
            Err(_) => {
                report
                    .bad_lines
                    .push((line, format!("value {v:?} is not a number")));
                continue;
            }
        };
        let ts = match parse_time(t, opts.timezone, last) {
            Ok((ts, ambiguous)) => {
                report.ambiguous += u64::from(ambiguous);
                ts
            }
            Err(TimeError::Nonexistent) => {
                report.nonexistent += 1;
                tracing::warn!(
                    "{}:{line}: {t:?} does not exist in {} (DST gap), dropped",
                    path.display(),
                    opts.timezone
                );
                continue;
            }
            Err(TimeError::Bad) => {
                report.bad_lines.push((
                    line,
                    format!("time {t:?} is not RFC 3339, YYYY-MM-DD HH:MM:SS or epoch seconds"),
                ));
                continue;
            }
        };
        if last.is_some_and(|l| ts <= l) {
            report.backward += 1;
            continue;
        }
        last = Some(ts);
        out.push((ts, value));
    }
    report.rows = out.len() as u64;
    for (line, why) in &report.bad_lines {
        tracing::warn!("{}:{line}: {why}; line dropped", path.display());
    }
    Ok((out, report))
}

enum TimeError {
    Bad,
    Nonexistent,
}

/// One timestamp → (ns since the epoch, whether it was ambiguous).
fn parse_time(s: &str, tz: Tz, previous: Option<i64>) -> Result<(i64, bool), TimeError> {
    let ns = |d: DateTime<chrono::Utc>| d.timestamp_nanos_opt().ok_or(TimeError::Bad);
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Ok((ns(d.to_utc())?, false));
    }
    let naive = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok());
    if let Some(naive) = naive {
        return match tz.from_local_datetime(&naive) {
            LocalResult::Single(d) => Ok((ns(d.to_utc())?, false)),
            LocalResult::Ambiguous(first, second) => {
                let first = ns(first.to_utc())?;
                if previous.is_some_and(|p| first <= p) {
                    Ok((ns(second.to_utc())?, true))
                } else {
                    Ok((first, true))
                }
            }
            LocalResult::None => Err(TimeError::Nonexistent),
        };
    }
    // Epoch seconds: 1970 … 2262 (what ns in an i64 can hold). A compact
    // date such as 20140219 is no epoch time.
    if let Ok(secs) = s.parse::<f64>()
        && (0.0..9.2e9).contains(&secs)
        && s.len() != 8
    {
        return Ok(((secs * 1e9).round() as i64, false));
    }
    Err(TimeError::Bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, tz: &str) -> (Vec<(i64, f64)>, ReadReport) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.csv");
        std::fs::write(&p, text).unwrap();
        let opts = CsvOptions {
            timezone: tz.parse().unwrap(),
            ..CsvOptions::default()
        };
        read_csv(&p, &opts).unwrap()
    }

    const H: i64 = 3_600_000_000_000;

    #[test]
    fn naive_utc_rfc3339_and_epoch_seconds() {
        let (rows, r) = read(
            "timestamp,value\n2013-12-02 21:15:00,73.5\n2013-12-02T21:20:00Z,1\n1386019500.5,2\n",
            "UTC",
        );
        assert_eq!(
            rows,
            vec![
                (1_386_018_900_000_000_000, 73.5),
                (1_386_019_200_000_000_000, 1.0),
                (1_386_019_500_500_000_000, 2.0)
            ]
        );
        assert_eq!((r.lines, r.rows), (3, 3));
    }

    #[test]
    fn the_autumn_hour_maps_to_both_occurrences() {
        // Europe/Paris, 2013-10-27: 02:00–03:00 local happens twice.
        let (rows, r) = read(
            "timestamp,value\n2013-10-27 01:30:00,1\n2013-10-27 02:30:00,2\n2013-10-27 02:30:00,3\n2013-10-27 03:30:00,4\n",
            "Europe/Paris",
        );
        let t0 = rows[0].0;
        let offsets: Vec<i64> = rows.iter().map(|r| (r.0 - t0) / (H / 2)).collect();
        // 23:30Z, 00:30Z, 01:30Z, 02:30Z: two hours apart at the repeat.
        assert_eq!(offsets, vec![0, 2, 4, 6]);
        assert_eq!((r.ambiguous, r.backward), (2, 0));
    }

    #[test]
    fn the_spring_gap_and_backward_steps_are_dropped_and_counted() {
        let (rows, r) = read(
            "timestamp,value\n2014-03-30 01:30:00,1\n2014-03-30 02:30:00,2\n2014-03-30 03:30:00,3\n2014-03-30 03:00:00,4\n",
            "Europe/Paris",
        );
        assert_eq!(rows.iter().map(|r| r.1).collect::<Vec<_>>(), vec![1.0, 3.0]);
        assert_eq!((r.nonexistent, r.backward), (1, 1));
    }

    #[test]
    fn a_bad_line_is_dropped_with_its_number() {
        let (rows, r) = read(
            "timestamp,value\n2014-01-01 00:00:00,1\nyesterday,2\n2014-01-01 00:05:00,x\n2014-01-01 00:10:00,3\n",
            "UTC",
        );
        assert_eq!(rows.len(), 2);
        assert_eq!(r.bad_lines.len(), 2);
        assert_eq!(r.bad_lines[0].0, 3);
        assert!(
            r.bad_lines[0].1.contains("\"yesterday\""),
            "{:?}",
            r.bad_lines
        );
        assert_eq!(
            r.bad_lines[1],
            (4, "value \"x\" is not a number".to_owned())
        );
    }
}

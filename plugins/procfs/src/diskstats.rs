//! `diskstats`: I/O counters per block device.

use regex_lite::Regex;
use wasmeter_guest::SampleType;

use crate::{Out, parse_u64s};

/// Bytes per `diskstats` sector: always 512, whatever the device's own
/// sector size (see the kernel's Documentation/admin-guide/iostats.rst).
const SECTOR_BYTES: f64 = 512.0;

/// `diskstats` times are in milliseconds; node_exporter multiplies by this.
const SECONDS_PER_MS: f64 = 0.001;

/// The counters after `major minor name` on every kernel since 2.6.
const COUNTERS: usize = 11;

/// `(metric, unit, column after the name, factor)`.
const METERS: [(&str, &str, usize, f64); 7] = [
    ("disk.read.requests", "request", 0, 1.0),
    ("disk.read.bytes", "B", 2, SECTOR_BYTES),
    ("disk.read.time", "s", 3, SECONDS_PER_MS),
    ("disk.write.requests", "request", 4, 1.0),
    ("disk.write.bytes", "B", 6, SECTOR_BYTES),
    ("disk.write.time", "s", 7, SECONDS_PER_MS),
    ("disk.io_time", "s", 9, SECONDS_PER_MS),
];

/// Parses `diskstats`:
///
/// ```text
///  major minor name  reads merged sectors ms  writes merged sectors ms  in-flight io-ms weighted-ms  [discards ×4]  [flushes ×2]
///    8       0 sda   25354637 …                                                                     (14, 18 or 20 fields)
/// ```
///
/// Devices matching `exclude` are left out (after the line is checked).
pub(crate) fn parse(text: &str, exclude: Option<&Regex>, out: &mut Out<'_>) {
    for (n, line) in text.lines().enumerate() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(major), Some(minor), Some(device)) =
            (fields.next(), fields.next(), fields.next())
        else {
            if !line.trim().is_empty() {
                out.bad(
                    "diskstats",
                    n,
                    format!("expected at least 14 fields: {line:?}"),
                );
            }
            continue;
        };
        if major.parse::<u32>().is_err() || minor.parse::<u32>().is_err() {
            out.bad(
                "diskstats",
                n,
                format!("bad device number {major}:{minor}: {line:?}"),
            );
            continue;
        }
        let mut values = [0u64; COUNTERS];
        match parse_u64s(fields, &mut values) {
            Ok(c) if c >= COUNTERS => {}
            Ok(c) => {
                out.bad(
                    "diskstats",
                    n,
                    format!("{device}: expected at least 14 fields, got {}", c + 3),
                );
                continue;
            }
            Err(f) => {
                out.bad("diskstats", n, format!("{device}: not a counter: {f:?}"));
                continue;
            }
        }
        if exclude.is_some_and(|re| re.is_match(device)) {
            continue;
        }
        for (metric, unit, column, factor) in METERS {
            let v = values[column] as f64 * factor;
            out.push(
                metric,
                unit,
                SampleType::Cumulative,
                &[("device", device)],
                v,
            );
        }
    }
}

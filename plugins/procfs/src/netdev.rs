//! `net/dev`: traffic counters per network interface.

use regex_lite::Regex;
use wasmeter_guest::SampleType;

use crate::{Out, parse_u64s};

/// The counters after `name:`: 8 receive, then 8 transmit.
const COUNTERS: usize = 16;

/// `(metric, unit, column after the colon)`.
const METERS: [(&str, &str, usize); 8] = [
    ("network.incoming.bytes", "B", 0),
    ("network.incoming.packets", "packet", 1),
    ("network.incoming.packets.error", "packet", 2),
    ("network.incoming.packets.drop", "packet", 3),
    ("network.outgoing.bytes", "B", 8),
    ("network.outgoing.packets", "packet", 9),
    ("network.outgoing.packets.error", "packet", 10),
    ("network.outgoing.packets.drop", "packet", 11),
];

/// Parses `net/dev`:
///
/// ```text
/// Inter-|   Receive                                                |  Transmit
///  face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
///   eth0: 874354587 1036395    0    0    0     0          0         0 563352563  732147    0    0    0     0       0          0
/// ```
///
/// The name ends at the line's last colon (names may contain colons; the
/// kernel may print no space after it). The two header lines (a `|` and no
/// colon) are skipped. Interfaces matching `exclude` are left out.
pub(crate) fn parse(text: &str, exclude: Option<&Regex>, out: &mut Out<'_>) {
    for (n, line) in text.lines().enumerate() {
        let Some(colon) = line.rfind(':') else {
            if !line.contains('|') && !line.trim().is_empty() {
                out.bad("net/dev", n, format!("no `interface:` prefix: {line:?}"));
            }
            continue;
        };
        let name = line[..colon].trim();
        if name.is_empty() {
            out.bad("net/dev", n, format!("empty interface name: {line:?}"));
            continue;
        }
        let mut values = [0u64; COUNTERS];
        match parse_u64s(line[colon + 1..].split_ascii_whitespace(), &mut values) {
            Ok(COUNTERS) => {}
            Ok(c) => {
                out.bad(
                    "net/dev",
                    n,
                    format!("{name}: expected {COUNTERS} counters, got {c}"),
                );
                continue;
            }
            Err(f) => {
                out.bad("net/dev", n, format!("{name}: not a counter: {f:?}"));
                continue;
            }
        }
        if exclude.is_some_and(|re| re.is_match(name)) {
            continue;
        }
        for (metric, unit, column) in METERS {
            out.push(
                metric,
                unit,
                SampleType::Cumulative,
                &[("interface", name)],
                values[column] as f64,
            );
        }
    }
}

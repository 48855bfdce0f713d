//! `stat`: CPU time per CPU and mode, context switches, boot time.

use wasmeter_guest::SampleType;

use crate::{Out, parse_u64s};

/// USER_HZ: the unit of `stat`'s CPU columns is 1/100 s on every Linux
/// architecture's user ABI (node_exporter and procfs assume the same).
const USER_HZ: f64 = 100.0;

/// The first eight `cpuN` columns, in file order.
const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// Columns 9 and 10: time spent running guests (`guest`, `guest_nice`).
const GUEST_MODES: [&str; 2] = ["user", "nice"];

/// Parses `stat`: `cpuN` lines (at least the four columns of Linux 2.4;
/// columns past the tenth are ignored), `ctxt` and `btime`. Other keys
/// (`intr`, `processes`, …) are not exported.
pub(crate) fn parse(text: &str, out: &mut Out<'_>) {
    for (n, line) in text.lines().enumerate() {
        let mut fields = line.split_ascii_whitespace();
        let Some(key) = fields.next() else {
            continue;
        };
        match key {
            "ctxt" => single(
                out,
                n,
                line,
                fields,
                "context_switches",
                "1",
                SampleType::Cumulative,
            ),
            "btime" => single(out, n, line, fields, "boot_time", "s", SampleType::Gauge),
            _ => {
                let Some(cpu) = key.strip_prefix("cpu") else {
                    continue;
                };
                if cpu.is_empty() {
                    continue; // the all-CPU sum
                }
                if !cpu.bytes().all(|c| c.is_ascii_digit()) {
                    out.bad("stat", n, format!("not a CPU number: {key:?}"));
                    continue;
                }
                let mut ticks = [0u64; 10];
                let count = match parse_u64s(fields, &mut ticks) {
                    Ok(c) if c >= 4 => c.min(ticks.len()),
                    Ok(c) => {
                        out.bad(
                            "stat",
                            n,
                            format!("{key}: expected at least 4 columns, got {c}"),
                        );
                        continue;
                    }
                    Err(f) => {
                        out.bad("stat", n, format!("{key}: not a tick count: {f:?}"));
                        continue;
                    }
                };
                for (i, &t) in ticks[..count].iter().enumerate() {
                    let (metric, mode) = match MODES.get(i) {
                        Some(mode) => ("cpu.time", *mode),
                        None => ("cpu.guest_time", GUEST_MODES[i - MODES.len()]),
                    };
                    out.push(
                        metric,
                        "s",
                        SampleType::Cumulative,
                        &[("cpu", cpu), ("mode", mode)],
                        t as f64 / USER_HZ,
                    );
                }
            }
        }
    }
}

/// A `key N` line.
fn single<'t>(
    out: &mut Out<'_>,
    n: usize,
    line: &str,
    mut fields: impl Iterator<Item = &'t str>,
    metric: &str,
    unit: &str,
    sample_type: SampleType,
) {
    match (fields.next().map(str::parse::<u64>), fields.next()) {
        (Some(Ok(v)), None) => out.push(metric, unit, sample_type, &[], v as f64),
        _ => out.bad("stat", n, format!("expected one integer: {line:?}")),
    }
}

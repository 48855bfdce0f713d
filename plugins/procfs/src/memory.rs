//! `loadavg` and `meminfo`: gauges.

use wasmeter_guest::SampleType;

use crate::Out;

/// `meminfo` fields exported, with their metric names.
const MEMINFO: &[(&str, &str)] = &[
    ("MemTotal", "memory.total"),
    ("MemFree", "memory.free"),
    ("MemAvailable", "memory.available"),
    ("Buffers", "memory.buffers"),
    ("Cached", "memory.cached"),
    ("SwapTotal", "memory.swap.total"),
    ("SwapFree", "memory.swap.free"),
];

/// Parses `loadavg`: `0.02 0.04 0.05 1/497 1234`.
pub(crate) fn loadavg(text: &str, out: &mut Out<'_>) {
    let mut fields = text.split_ascii_whitespace();
    for (i, metric) in ["load.1m", "load.5m", "load.15m"].iter().enumerate() {
        match fields.next().map(|f| (f, f.parse::<f64>())) {
            Some((_, Ok(v))) => out.push(metric, "1", SampleType::Gauge, &[], v),
            Some((f, Err(_))) => {
                out.bad(
                    "loadavg",
                    0,
                    format!("field {} is not a number: {f:?}", i + 1),
                );
            }
            None => out.bad("loadavg", 0, format!("field {} is missing", i + 1)),
        }
    }
}

/// Parses `meminfo`: `MemTotal:       15666184 kB`. Fields not exported are
/// not looked at.
pub(crate) fn meminfo(text: &str, out: &mut Out<'_>) {
    for (n, line) in text.lines().enumerate() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let Some((_, metric)) = MEMINFO.iter().find(|(k, _)| *k == key) else {
            continue;
        };
        let mut parts = rest.split_ascii_whitespace();
        let value = parts.next().and_then(|v| v.parse::<u64>().ok());
        let scale = match (parts.next(), parts.next()) {
            (Some("kB"), None) => Some(1024.0),
            (None, None) => Some(1.0),
            _ => None,
        };
        match (value, scale) {
            (Some(v), Some(scale)) => {
                out.push(metric, "B", SampleType::Gauge, &[], v as f64 * scale);
            }
            _ => out.bad("meminfo", n, format!("cannot parse {line:?}")),
        }
    }
}

//! `procfs` collector: host metrics read from a Linux `/proc` tree.
//!
//! The plugin sees only what its stage grants: mount the host's `/proc`
//! read-only with `read_dirs = ["/proc"]` (or a fixture tree for tests).
//!
//! Settings:
//!
//! | key           | meaning                                      | default       |
//! |---------------|----------------------------------------------|---------------|
//! | `root`        | where the proc tree is, as the plugin sees it | `/proc`       |
//! | `resource_id` | the resource the samples describe            | `localhost`   |
//!
//! Metrics (all gauges, stamped with the tick time):
//!
//! | metric               | unit | source                              |
//! |----------------------|------|-------------------------------------|
//! | `load.1m`, `load.5m`, `load.15m` | `1` | `loadavg` fields 1–3    |
//! | `memory.total`       | `B`  | `meminfo` MemTotal × 1024           |
//! | `memory.free`        | `B`  | `meminfo` MemFree × 1024            |
//! | `memory.available`   | `B`  | `meminfo` MemAvailable × 1024       |
//! | `memory.buffers`     | `B`  | `meminfo` Buffers × 1024            |
//! | `memory.cached`      | `B`  | `meminfo` Cached × 1024             |
//! | `memory.swap.total`  | `B`  | `meminfo` SwapTotal × 1024          |
//! | `memory.swap.free`   | `B`  | `meminfo` SwapFree × 1024           |
//!
//! A file that is missing or unreadable fails the call as `unavailable`; a
//! line that does not parse is skipped and logged with its file and line.

use std::path::PathBuf;

use wasmeter_guest::{Batch, BatchBuilder, Collector, Error, Level, SampleType, Settings};

/// The collector's settings.
pub struct Procfs {
    root: PathBuf,
    resource_id: String,
}

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

impl Procfs {
    fn read(&self, file: &str) -> Result<String, Error> {
        let path = self.root.join(file);
        std::fs::read_to_string(&path)
            .map_err(|e| Error::unavailable(format!("cannot read {}: {e}", path.display())))
    }

    /// Parses `loadavg`: `0.02 0.04 0.05 1/497 1234`.
    fn loadavg(&self, text: &str, b: &mut BatchBuilder, now: i64) {
        let fields: Vec<&str> = text.split_whitespace().collect();
        for (i, metric) in ["load.1m", "load.5m", "load.15m"].iter().enumerate() {
            match fields.get(i).map(|f| f.parse::<f64>()) {
                Some(Ok(v)) => {
                    let s = b.series(metric, &self.resource_id, "1", SampleType::Gauge, &[]);
                    b.push(s, now, v);
                }
                _ => wasmeter_guest::log(
                    Level::Warn,
                    &format!("loadavg line 1: field {} is not a number: {text:?}", i + 1),
                ),
            }
        }
    }

    /// Parses `meminfo`: `MemTotal:       15666184 kB`.
    fn meminfo(&self, text: &str, b: &mut BatchBuilder, now: i64) {
        for (n, line) in text.lines().enumerate() {
            let Some((key, rest)) = line.split_once(':') else {
                continue;
            };
            let Some((_, metric)) = MEMINFO.iter().find(|(k, _)| *k == key) else {
                continue;
            };
            let mut parts = rest.split_whitespace();
            let value = parts.next().and_then(|v| v.parse::<f64>().ok());
            let scale = match parts.next() {
                Some("kB") => 1024.0,
                None => 1.0,
                Some(_) => f64::NAN,
            };
            match value {
                Some(v) if !scale.is_nan() => {
                    let s = b.series(metric, &self.resource_id, "B", SampleType::Gauge, &[]);
                    b.push(s, now, v * scale);
                }
                _ => wasmeter_guest::log(
                    Level::Warn,
                    &format!("meminfo line {}: cannot parse {line:?}", n + 1),
                ),
            }
        }
    }
}

impl Collector for Procfs {
    fn init(settings: Settings) -> Result<Self, Error> {
        Ok(Procfs {
            root: PathBuf::from(settings.get("root").unwrap_or("/proc")),
            resource_id: settings
                .get("resource_id")
                .unwrap_or("localhost")
                .to_owned(),
        })
    }

    fn collect(&mut self, now_ns: i64) -> Result<Batch, Error> {
        let mut b = BatchBuilder::with_capacity(16);
        let loadavg = self.read("loadavg")?;
        self.loadavg(&loadavg, &mut b, now_ns);
        let meminfo = self.read("meminfo")?;
        self.meminfo(&meminfo, &mut b, now_ns);
        Ok(b.finish())
    }
}

wasmeter_guest::export_collector!(Procfs);

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin() -> Procfs {
        Procfs::init(Settings::from(vec![("resource_id".into(), "h1".into())])).unwrap()
    }

    #[test]
    fn parses_loadavg_and_meminfo() {
        let p = plugin();
        let mut b = BatchBuilder::new();
        p.loadavg("0.02 0.04 0.05 1/497 1234\n", &mut b, 7);
        p.meminfo(
            "MemTotal:       15666184 kB\nMemFree:          440000 kB\nHugePages_Total:       0\nbogus line\nCached: x kB\n",
            &mut b,
            7,
        );
        let batch = b.finish();
        let got: Vec<(&str, f64)> = batch
            .samples()
            .map(|s| (s.series.metric.as_str(), s.value))
            .collect();
        assert_eq!(
            got,
            vec![
                ("load.1m", 0.02),
                ("load.5m", 0.04),
                ("load.15m", 0.05),
                ("memory.total", 15666184.0 * 1024.0),
                ("memory.free", 440000.0 * 1024.0),
            ]
        );
        assert!(
            batch
                .samples()
                .all(|s| s.timestamp == 7 && s.series.resource_id == "h1")
        );
    }
}

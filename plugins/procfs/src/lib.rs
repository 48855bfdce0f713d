//! `procfs` collector: host metrics read from a Linux `/proc` tree.
//!
//! The plugin sees only what its stage grants: mount the host's `/proc`
//! read-only with `read_dirs = ["/proc"]` (or a fixture tree for tests).
//!
//! Settings:
//!
//! | key               | meaning                                                | default |
//! |-------------------|--------------------------------------------------------|---------|
//! | `root`            | where the proc tree is, as the plugin sees it          | `/proc` |
//! | `resource_id`     | the resource the samples describe                      | `localhost` |
//! | `disk_exclude`    | regex of `diskstats` devices to leave out (`""`: none) | node_exporter's: `^(z?ram\|loop\|fd\|(h\|s\|v\|xv)d[a-z]\|nvme\d+n\d+p)\d+$` (RAM disks, loops, floppies, partitions of sd/hd/vd/xvd/nvme disks) |
//! | `network_exclude` | regex of `net/dev` interfaces to leave out             | none    |
//!
//! Every sample is stamped with the tick time and has the `resource_id`
//! setting as its resource; per-CPU, per-device and per-interface meters
//! carry the CPU, device or interface as an attribute. Values are converted
//! as node_exporter converts them (USER_HZ ticks ÷ 100, sectors × 512,
//! milliseconds × 0.001).
//!
//! | metric | type | unit | attributes | source |
//! |--------|------|------|------------|--------|
//! | `load.1m`, `load.5m`, `load.15m` | gauge | `1` | | `loadavg` fields 1–3 |
//! | `memory.total`, `.free`, `.available`, `.buffers`, `.cached`, `.swap.total`, `.swap.free` | gauge | `B` | | `meminfo` MemTotal, MemFree, MemAvailable, Buffers, Cached, SwapTotal, SwapFree × 1024 |
//! | `cpu.time` | cumulative | `s` | `cpu`, `mode` = `user` `nice` `system` `idle` `iowait` `irq` `softirq` `steal` | `stat` `cpuN` lines ÷ 100 |
//! | `cpu.guest_time` | cumulative | `s` | `cpu`, `mode` = `user` `nice` | `stat` `cpuN` guest, guest_nice ÷ 100 (also counted in `user`, `nice`) |
//! | `context_switches` | cumulative | `1` | | `stat` `ctxt` |
//! | `boot_time` | gauge | `s` | | `stat` `btime` (s since the Unix epoch) |
//! | `disk.read.requests`, `disk.write.requests` | cumulative | `request` | `device` | `diskstats` reads / writes completed |
//! | `disk.read.bytes`, `disk.write.bytes` | cumulative | `B` | `device` | `diskstats` sectors read / written × 512 |
//! | `disk.read.time`, `disk.write.time` | cumulative | `s` | `device` | `diskstats` ms reading / writing × 0.001 |
//! | `disk.io_time` | cumulative | `s` | `device` | `diskstats` ms doing I/O × 0.001 |
//! | `network.incoming.bytes`, `network.outgoing.bytes` | cumulative | `B` | `interface` | `net/dev` receive / transmit bytes |
//! | `network.incoming.packets`, `network.outgoing.packets` | cumulative | `packet` | `interface` | `net/dev` packets |
//! | `network.incoming.packets.error`, `network.outgoing.packets.error` | cumulative | `packet` | `interface` | `net/dev` errs |
//! | `network.incoming.packets.drop`, `network.outgoing.packets.drop` | cumulative | `packet` | `interface` | `net/dev` drop |
//!
//! The all-CPU `cpu` line of `stat` is not exported (node_exporter does
//! not either): sum `cpu.time` over `cpu` instead.
//!
//! `diskstats` lines with 14 (kernel < 4.18), 18 (4.18+, discards) and 20
//! (5.5+, flushes) fields are read; more fields are allowed, fewer are a bad
//! line. `net/dev` lines are split at their **last** colon, so an interface
//! name may contain colons and the first number may follow the colon
//! without a space.
//!
//! Faults: a line that does not parse is skipped and logged (warn) with its
//! file and line number; the rest of the file is still read. A file that is
//! missing or unreadable is skipped and logged once (until it is readable
//! again); only when none of the files can be read does the call fail, as
//! `unavailable`, with the first file's error.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

use regex_lite::Regex;
use wasmeter_guest::{Batch, BatchBuilder, Collector, Error, Level, SampleType, Settings};

mod diskstats;
mod memory;
mod netdev;
mod stat;

/// node_exporter's default `--collector.diskstats.device-exclude`.
pub const DEFAULT_DISK_EXCLUDE: &str = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";

/// The collector: its settings, and which files were found missing (so each
/// is logged once).
pub struct Procfs {
    root: PathBuf,
    resource_id: String,
    disk_exclude: Option<Regex>,
    network_exclude: Option<Regex>,
    missing: HashSet<&'static str>,
}

/// A line that was skipped, with where it is and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, relative to the proc root (`diskstats`, `net/dev`, …).
    pub file: &'static str,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}: {}", self.file, self.line, self.message)
    }
}

/// What the parsers write to: the batch under construction and the skipped
/// lines.
pub struct Out<'a> {
    /// The batch being built.
    pub batch: BatchBuilder,
    /// Lines skipped so far.
    pub problems: Vec<Problem>,
    resource_id: &'a str,
    now: i64,
}

impl<'a> Out<'a> {
    /// An empty output for samples of `resource_id` stamped `now` (ns).
    pub fn new(resource_id: &'a str, now: i64) -> Self {
        Out {
            batch: BatchBuilder::with_capacity(256),
            problems: Vec::new(),
            resource_id,
            now,
        }
    }

    /// Appends one sample of the series `(metric, attributes)`.
    fn push(
        &mut self,
        metric: &str,
        unit: &str,
        sample_type: SampleType,
        attributes: &[(&str, &str)],
        value: f64,
    ) {
        let s = self
            .batch
            .series(metric, self.resource_id, unit, sample_type, attributes);
        self.batch.push(s, self.now, value);
    }

    /// Records a skipped line (`n` is 0-based).
    fn bad(&mut self, file: &'static str, n: usize, message: String) {
        self.problems.push(Problem {
            file,
            line: n + 1,
            message,
        });
    }
}

/// Parses up to `N` whitespace-separated unsigned integers from `fields`
/// into `dst`; returns how many fields there were (all must be integers), or
/// the first one that is not.
fn parse_u64s<'t, const N: usize>(
    fields: impl Iterator<Item = &'t str>,
    dst: &mut [u64; N],
) -> Result<usize, &'t str> {
    let mut count = 0;
    for f in fields {
        let v: u64 = f.parse().map_err(|_| f)?;
        if let Some(slot) = dst.get_mut(count) {
            *slot = v;
        }
        count += 1;
    }
    Ok(count)
}

/// A file the collector reads and its parser.
type Source = (&'static str, fn(&Procfs, &str, &mut Out<'_>));

/// Read in this order; the first one's error is the call's when none can be
/// read.
const SOURCES: &[Source] = &[
    ("loadavg", |_, text, out| memory::loadavg(text, out)),
    ("meminfo", |_, text, out| memory::meminfo(text, out)),
    ("stat", |_, text, out| stat::parse(text, out)),
    ("diskstats", |p, text, out| {
        diskstats::parse(text, p.disk_exclude.as_ref(), out)
    }),
    ("net/dev", |p, text, out| {
        netdev::parse(text, p.network_exclude.as_ref(), out)
    }),
];

fn regex_setting(settings: &Settings, key: &str, default: &str) -> Result<Option<Regex>, Error> {
    let pattern = settings.get(key).unwrap_or(default);
    if pattern.is_empty() {
        return Ok(None);
    }
    Regex::new(pattern).map(Some).map_err(|e| {
        Error::invalid_settings(format!(
            "setting `{key}`: not a valid regex {pattern:?}: {e}"
        ))
    })
}

impl Procfs {
    /// Reads every source under the root into `out`; returns the first read
    /// error when no file could be read.
    pub fn collect_into(&mut self, out: &mut Out<'_>) -> Result<(), Error> {
        let mut first_error = None;
        let mut read_any = false;
        for &(file, parse) in SOURCES {
            let path = self.root.join(file);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    read_any = true;
                    self.missing.remove(file);
                    parse(self, &text, out);
                }
                Err(e) => {
                    let message = format!("cannot read {}: {e}", path.display());
                    if self.missing.insert(file) {
                        wasmeter_guest::log(
                            Level::Warn,
                            &format!("{message}; its meters are skipped until it is readable"),
                        );
                    }
                    first_error.get_or_insert(message);
                }
            }
        }
        match first_error {
            Some(message) if !read_any => Err(Error::unavailable(message)),
            _ => Ok(()),
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
            disk_exclude: regex_setting(&settings, "disk_exclude", DEFAULT_DISK_EXCLUDE)?,
            network_exclude: regex_setting(&settings, "network_exclude", "")?,
            missing: HashSet::new(),
        })
    }

    fn collect(&mut self, now_ns: i64) -> Result<Batch, Error> {
        let resource_id = self.resource_id.clone();
        let mut out = Out::new(&resource_id, now_ns);
        let result = self.collect_into(&mut out);
        let Out {
            batch, problems, ..
        } = out;
        for p in &problems {
            let path = self.root.join(p.file);
            wasmeter_guest::log(
                Level::Warn,
                &format!(
                    "{} line {}: {}; line skipped",
                    path.display(),
                    p.line,
                    p.message
                ),
            );
        }
        result.map(|()| batch.finish())
    }
}

wasmeter_guest::export_collector!(Procfs);

#[cfg(test)]
mod tests;

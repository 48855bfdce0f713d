//! The `procfs` collector, run as a Wasm component: against node_exporter's
//! /proc fixture, checked value by value against node_exporter's own output
//! for the same files (`e2e-output.txt`); against prometheus/procfs' fixture
//! (`net/dev`, a 132 KB `stat`, a `diskstats` with 20-field lines); and on
//! hand-written bad input, whose lines are skipped and logged.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use wasmeter::batch;
use wasmeter::bindings::{SampleType, WitBatch};
use wasmeter::plugin::{Collector, Grants, Limits, Plugin, PluginSource};

use crate::support::{data_dir, runtime};

/// Labels, sorted by name.
type Labels = Vec<(String, String)>;

/// Samples by metric, then labels.
type Families = HashMap<String, BTreeMap<Labels, f64>>;

/// Our meters and the node_exporter family each one must equal; attribute
/// names are node_exporter's label names (`cpu`, `mode`, `device`).
const ORACLE: &[(&str, &str)] = &[
    ("load.1m", "node_load1"),
    ("load.5m", "node_load5"),
    ("load.15m", "node_load15"),
    ("memory.total", "node_memory_MemTotal_bytes"),
    ("memory.free", "node_memory_MemFree_bytes"),
    ("memory.available", "node_memory_MemAvailable_bytes"),
    ("memory.buffers", "node_memory_Buffers_bytes"),
    ("memory.cached", "node_memory_Cached_bytes"),
    ("memory.swap.total", "node_memory_SwapTotal_bytes"),
    ("memory.swap.free", "node_memory_SwapFree_bytes"),
    ("cpu.time", "node_cpu_seconds_total"),
    ("cpu.guest_time", "node_cpu_guest_seconds_total"),
    ("context_switches", "node_context_switches_total"),
    ("boot_time", "node_boot_time_seconds"),
    ("disk.read.requests", "node_disk_reads_completed_total"),
    ("disk.read.bytes", "node_disk_read_bytes_total"),
    ("disk.read.time", "node_disk_read_time_seconds_total"),
    ("disk.write.requests", "node_disk_writes_completed_total"),
    ("disk.write.bytes", "node_disk_written_bytes_total"),
    ("disk.write.time", "node_disk_write_time_seconds_total"),
    ("disk.io_time", "node_disk_io_time_seconds_total"),
];

/// The `net/dev` meters, in the column order of the file.
const NETWORK: [&str; 8] = [
    "network.incoming.bytes",
    "network.incoming.packets",
    "network.incoming.packets.error",
    "network.incoming.packets.drop",
    "network.outgoing.bytes",
    "network.outgoing.packets",
    "network.outgoing.packets.error",
    "network.outgoing.packets.drop",
];

/// Parses Prometheus text exposition lines `name{k="v",…} value` (no
/// timestamps in node_exporter's output) into families.
fn parse_exposition(text: &str) -> Families {
    let mut out = Families::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (head, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        let (name, labels) = match head.split_once('{') {
            None => (head, Vec::new()),
            Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').unwrap())),
        };
        out.entry(name.to_owned())
            .or_default()
            .insert(labels, value);
    }
    out
}

/// `k="v",k2="v\"2"` → sorted pairs.
fn parse_labels(mut s: &str) -> Labels {
    let mut labels = Vec::new();
    while !s.is_empty() {
        let (key, rest) = s.split_once("=\"").unwrap();
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().unwrap() {
                (i, '"') => break i,
                (_, '\\') => match chars.next().unwrap().1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_owned(), value));
        s = rest[end + 1..].trim_start_matches(',');
    }
    labels.sort();
    labels
}

fn node_exporter() -> Families {
    let path = data_dir().join("node_exporter-fixtures/e2e-output.txt");
    parse_exposition(&std::fs::read_to_string(path).unwrap())
}

/// Our batch as families, checking the series' resource and type.
fn families(out: &WitBatch, now: i64) -> Families {
    let mut f = Families::new();
    for ((&i, &t), &v) in out
        .series_index
        .iter()
        .zip(&out.timestamps)
        .zip(&out.values)
    {
        let s = &out.series[i as usize];
        assert_eq!(t, now);
        assert_eq!(s.resource_id, "fixture");
        let gauge = s.metric.starts_with("load.")
            || s.metric.starts_with("memory.")
            || s.metric == "boot_time";
        let expected = if gauge {
            SampleType::Gauge
        } else {
            SampleType::Cumulative
        };
        assert_eq!(s.type_, expected, "{}", s.metric);
        let old = f
            .entry(s.metric.clone())
            .or_default()
            .insert(s.attributes.clone(), v);
        assert_eq!(old, None, "{} {:?} twice", s.metric, s.attributes);
    }
    f
}

fn plugin() -> Arc<Plugin> {
    Arc::new(
        Plugin::load(
            &runtime(),
            "procfs",
            &PluginSource::Builtin("procfs".into()),
        )
        .unwrap(),
    )
}

fn collector(root: &Path) -> Collector {
    let root = root.canonicalize().unwrap();
    let settings = vec![
        ("root".into(), root.display().to_string()),
        ("resource_id".into(), "fixture".into()),
    ];
    let grants = Grants {
        read_dirs: vec![root],
        ..Grants::default()
    };
    Collector::new(plugin(), "host", &settings, &grants, Limits::default()).unwrap()
}

const NOW: i64 = 1_700_000_000_000_000_000;

/// Samples per collection of node_exporter's fixture `/proc` (3 load, 6
/// memory, 80 CPU, context switches, boot time, 7 × 15 disk), for the
/// pipeline tests that run this collector.
pub const FIXTURE_SAMPLES: u64 = 196;

fn collect(root: &Path) -> Families {
    let mut c = collector(root);
    let out = batch::to_wit(&c.collect(NOW).unwrap()).unwrap();
    families(&out, NOW)
}

/// Runs `f` with the host's log records (the plugin's `log` calls) of level
/// warn and above written to the returned text (on this thread only).
pub fn with_logs<R>(f: impl FnOnce() -> R) -> (R, String) {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let r = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (r, text)
}

fn empty() -> BTreeMap<Labels, f64> {
    BTreeMap::new()
}

#[test]
fn every_value_equals_node_exporters() {
    let expected = node_exporter();
    let got = collect(&data_dir().join("node_exporter-fixtures/proc"));
    for (ours, theirs) in ORACLE {
        let want = expected.get(*theirs).cloned().unwrap_or_else(empty);
        let have = got.get(*ours).cloned().unwrap_or_else(empty);
        assert_eq!(have, want, "{ours} vs node_exporter's {theirs}");
    }
    // Every meter we emit is checked above.
    for metric in got.keys() {
        assert!(
            ORACLE.iter().any(|(ours, _)| ours == metric),
            "{metric} has no node_exporter counterpart"
        );
    }
    // What that covers: 8 CPUs × 8 modes (+ 2 guest), the 15 devices
    // node_exporter keeps (no partitions of sd*/vd*/nvme*, no ram/loop/fd),
    // including sdb's 18-field and sdc's 20-field lines.
    assert_eq!(got["cpu.time"].len(), 64);
    assert_eq!(got["cpu.guest_time"].len(), 16);
    assert_eq!(got["disk.io_time"].len(), 15);
    // The fixture has no MemAvailable line and no net/dev: nothing invented.
    assert!(!got.contains_key("memory.available"));
    assert!(!got.keys().any(|m| m.starts_with("network.")));
    assert_eq!(
        got.values().map(BTreeMap::len).sum::<usize>() as u64,
        FIXTURE_SAMPLES
    );
}

/// prometheus/procfs' fixture: the same CPU lines as node_exporter's (but
/// zero guest columns) behind a 132 KB `intr` line; the same disks but for a
/// different `sdc` (a 20-field line); and a `net/dev`.
#[test]
fn procfs_fixture_net_dev_stat_and_diskstats() {
    let expected = node_exporter();
    let got = collect(&data_dir().join("procfs-fixtures/proc"));

    for (ours, theirs) in [
        ("cpu.time", "node_cpu_seconds_total"),
        ("context_switches", "node_context_switches_total"),
        ("boot_time", "node_boot_time_seconds"),
    ] {
        assert_eq!(got[ours], expected[theirs], "{ours}");
    }
    assert_eq!(got["cpu.guest_time"].len(), 16);
    assert!(got["cpu.guest_time"].values().all(|&v| v == 0.0));

    let sdc = vec![("device".to_string(), "sdc".to_string())];
    for (ours, theirs) in &ORACLE[14..] {
        let mut want = expected[*theirs].clone();
        let mut have = got[*ours].clone();
        want.remove(&sdc);
        let sdc_value = have.remove(&sdc);
        assert_eq!(have, want, "{ours}");
        // `8 0 sdc 14202 71 579164 21861 2995 1589 180500 40875 0 11628 55200 0 0 0 0 127 182`
        let sdc_expected = match *ours {
            "disk.read.requests" => 14202.0,
            "disk.read.bytes" => 579164.0 * 512.0,
            "disk.read.time" => 21861.0 * 0.001,
            "disk.write.requests" => 2995.0,
            "disk.write.bytes" => 180500.0 * 512.0,
            "disk.write.time" => 40875.0 * 0.001,
            "disk.io_time" => 11628.0 * 0.001,
            _ => unreachable!(),
        };
        assert_eq!(sdc_value, Some(sdc_expected), "{ours} sdc");
    }

    // loadavg `0.02 0.04 0.05 1/497 11947`; meminfo in kB × 1024.
    assert_eq!(got["load.1m"][&Labels::new()], 0.02);
    assert_eq!(got["load.15m"][&Labels::new()], 0.05);
    assert_eq!(got["memory.total"][&Labels::new()], 15666184.0 * 1024.0);
    assert_eq!(got["memory.swap.total"][&Labels::new()], 0.0);

    // net/dev: the values prometheus/procfs' own test expects (errs and
    // drops are 0 throughout the file).
    let iface = |name: &str| {
        NETWORK
            .iter()
            .map(|m| got[*m][&vec![("interface".to_string(), name.to_string())]])
            .collect::<Vec<f64>>()
    };
    assert_eq!(
        iface("eth0"),
        [
            874354587.0,
            1036395.0,
            0.0,
            0.0,
            563352563.0,
            732147.0,
            0.0,
            0.0
        ]
    );
    assert_eq!(
        iface("lo"),
        [
            1664039048.0,
            1566805.0,
            0.0,
            0.0,
            1664039048.0,
            1566805.0,
            0.0,
            0.0
        ]
    );
    assert_eq!(
        iface("docker0"),
        [2568.0, 38.0, 0.0, 0.0, 438.0, 5.0, 0.0, 0.0]
    );
    assert_eq!(
        iface("vethf345468"),
        [648.0, 8.0, 0.0, 0.0, 438.0, 5.0, 0.0, 0.0]
    );
    assert!(NETWORK.iter().all(|m| got[*m].len() == 4));
}

/// A tree with bad lines among good ones: each bad line is skipped and
/// logged with its file and line; the rest of the file is read. A missing
/// file is logged once, not at every tick.
#[test]
fn bad_lines_are_skipped_and_logged_and_the_rest_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let write = |name: &str, text: &str| {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::File::create(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    };
    write("loadavg", "0.5 0.25 0.125 1/100 42\n");
    write(
        "stat",
        "cpu  2 2 2 2 2 2 2 2 0 0\ncpu0 one 2 3 4\ncpu1 100 200 300 400 500 600 700 800 0 0\nctxt 12x\nbtime 1418183276\n",
    );
    write(
        "diskstats",
        "   3    1 hda1 35486 38030 38030 38030\n 254 0 vda 1 2 3 4 5 6 7 8 9 10 11\n",
    );
    write(
        "net/dev",
        "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n\
         eth0:100 2 0 0 0 0 0 0 300 4 0 0 0 0 0 0\n\
         eth0:1: 5 6 0 0 0 0 0 0 7 8 0 0 0 0 0 0\n\
         eth1: 1 2 3\n",
    );
    // No meminfo: logged once, the other files still read.
    let mut c = collector(&root);
    let ((first, second), logs) = with_logs(|| {
        let a = batch::to_wit(&c.collect(NOW).unwrap()).unwrap();
        let b = batch::to_wit(&c.collect(NOW + 1).unwrap()).unwrap();
        (a, b)
    });
    let got = families(&first, NOW);
    assert_eq!(second.values, first.values);

    let r = root.display();
    let warnings: Vec<&str> = logs.lines().filter(|l| l.contains("WARN")).collect();
    let expected = [
        format!("cannot read {r}/meminfo: "),
        format!("{r}/stat line 2: cpu0: not a tick count: \"one\"; line skipped"),
        format!("{r}/stat line 4: expected one integer: \"ctxt 12x\"; line skipped"),
        format!("{r}/diskstats line 1: hda1: expected at least 14 fields, got 7; line skipped"),
        format!("{r}/net/dev line 5: eth1: expected 16 counters, got 3; line skipped"),
    ];
    for e in &expected {
        let n = warnings.iter().filter(|l| l.contains(e.as_str())).count();
        // Bad lines are logged at each tick; the missing file once.
        let times = if e.starts_with("cannot read") { 1 } else { 2 };
        assert_eq!(n, times, "{e:?} in\n{logs}");
    }
    assert_eq!(warnings.len(), 1 + 4 * 2, "{logs}");

    let one = |m: &str, attrs: &[(&str, &str)]| {
        let labels: Labels = attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        got[m][&labels]
    };
    assert_eq!(one("load.5m", &[]), 0.25);
    assert_eq!(one("cpu.time", &[("cpu", "1"), ("mode", "steal")]), 8.0);
    assert!(!got["cpu.time"].keys().any(|l| l[0].1 == "0"));
    assert_eq!(one("boot_time", &[]), 1418183276.0);
    assert!(!got.contains_key("context_switches"));
    assert_eq!(one("disk.io_time", &[("device", "vda")]), 10.0 * 0.001);
    assert_eq!(
        one("network.incoming.bytes", &[("interface", "eth0")]),
        100.0
    );
    assert_eq!(
        one("network.outgoing.packets", &[("interface", "eth0")]),
        4.0
    );
    assert_eq!(
        one("network.incoming.bytes", &[("interface", "eth0:1")]),
        5.0
    );
    assert_eq!(got["network.incoming.bytes"].len(), 2);
    assert!(!got.keys().any(|m| m.starts_with("memory.")));
}

#[test]
fn without_a_grant_proc_is_unavailable() {
    let mut c = Collector::new(
        plugin(),
        "nogrant",
        &[],
        &Grants::default(),
        Limits::default(),
    )
    .unwrap();
    let err = c.collect(0).unwrap_err();
    assert_eq!(err.kind, wasmeter::plugin::PluginErrorKind::Unavailable);
    assert!(
        err.message.starts_with("cannot read /proc/loadavg"),
        "{}",
        err.message
    );
}

#[test]
fn a_bad_exclude_regex_is_refused_by_init() {
    let err = Collector::new(
        plugin(),
        "bad",
        &[("network_exclude".into(), "[".into())],
        &Grants::default(),
        Limits::default(),
    )
    .err()
    .unwrap();
    assert_eq!(err.kind, wasmeter::plugin::PluginErrorKind::InvalidSettings);
    assert!(
        err.message
            .starts_with("setting `network_exclude`: not a valid regex \"[\""),
        "{}",
        err.message
    );
}

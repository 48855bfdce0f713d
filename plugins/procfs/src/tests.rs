//! Native unit tests of the parsers (the e2e tests run the component on
//! the real fixtures).

use super::*;

/// `(metric, attributes as "k=v,…", value)` of every sample, in order.
fn samples(out: Out<'_>) -> (Vec<(String, String, f64)>, Vec<String>) {
    let problems = out.problems.iter().map(ToString::to_string).collect();
    let batch = out.batch.finish();
    let rows = batch
        .samples()
        .map(|s| {
            let attrs: Vec<String> = s
                .series
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            (s.series.metric.clone(), attrs.join(","), s.value)
        })
        .collect();
    (rows, problems)
}

fn row(metric: &str, attrs: &str, value: f64) -> (String, String, f64) {
    (metric.into(), attrs.into(), value)
}

#[test]
fn loadavg_and_meminfo() {
    let mut out = Out::new("h1", 7);
    memory::loadavg("0.02 0.04 0.05 1/497 1234\n", &mut out);
    memory::meminfo(
        "MemTotal:       15666184 kB\nMemFree:          440000 kB\nHugePages_Total:       0\nbogus line\nCached: x kB\n",
        &mut out,
    );
    let (rows, problems) = samples(out);
    assert_eq!(
        rows,
        vec![
            row("load.1m", "", 0.02),
            row("load.5m", "", 0.04),
            row("load.15m", "", 0.05),
            row("memory.total", "", 15666184.0 * 1024.0),
            row("memory.free", "", 440000.0 * 1024.0),
        ]
    );
    assert_eq!(
        problems,
        vec!["meminfo line 5: cannot parse \"Cached: x kB\""]
    );
}

#[test]
fn stat_cpu_modes_guest_context_switches_boot_time() {
    let mut out = Out::new("h1", 7);
    stat::parse(
        "cpu  301854 612 111922 8979004 3552 2 3944 0 44 36\n\
         cpu0 44490 19 21045 1087069 220 1 3410 0 2 1\n\
         cpu12 1 2 3 4\n\
         intr 1 2 3\n\
         ctxt 38014093\n\
         btime 1418183276\n",
        &mut out,
    );
    let (rows, problems) = samples(out);
    assert!(problems.is_empty(), "{problems:?}");
    let c0 = |mode: &str| format!("cpu=0,mode={mode}");
    let c12 = |mode: &str| format!("cpu=12,mode={mode}");
    assert_eq!(
        rows,
        vec![
            row("cpu.time", &c0("user"), 444.9),
            row("cpu.time", &c0("nice"), 0.19),
            row("cpu.time", &c0("system"), 210.45),
            row("cpu.time", &c0("idle"), 10870.69),
            row("cpu.time", &c0("iowait"), 2.2),
            row("cpu.time", &c0("irq"), 0.01),
            row("cpu.time", &c0("softirq"), 34.1),
            row("cpu.time", &c0("steal"), 0.0),
            row("cpu.guest_time", &c0("user"), 0.02),
            row("cpu.guest_time", &c0("nice"), 0.01),
            // A Linux 2.4 line: four columns only.
            row("cpu.time", &c12("user"), 0.01),
            row("cpu.time", &c12("nice"), 0.02),
            row("cpu.time", &c12("system"), 0.03),
            row("cpu.time", &c12("idle"), 0.04),
            row("context_switches", "", 38014093.0),
            row("boot_time", "", 1418183276.0),
        ]
    );
}

#[test]
fn stat_bad_lines_are_skipped_and_reported_with_their_line() {
    let mut out = Out::new("h1", 7);
    stat::parse(
        "cpuX 1 2 3 4\n\
         cpu1 1 2 3\n\
         cpu2 1 -2 3 4\n\
         ctxt\n\
         btime 1 2\n\
         cpu3 100 0 0 0 0 0 0 0\n\
         ctxt 5\n",
        &mut out,
    );
    let (rows, problems) = samples(out);
    assert_eq!(
        problems,
        vec![
            "stat line 1: not a CPU number: \"cpuX\"",
            "stat line 2: cpu1: expected at least 4 columns, got 3",
            "stat line 3: cpu2: not a tick count: \"-2\"",
            "stat line 4: expected one integer: \"ctxt\"",
            "stat line 5: expected one integer: \"btime 1 2\"",
        ]
    );
    assert_eq!(rows.len(), 9);
    assert_eq!(rows[0], row("cpu.time", "cpu=3,mode=user", 1.0));
    assert_eq!(rows[8], row("context_switches", "", 5.0));
}

#[test]
fn diskstats_14_18_and_20_fields_and_the_default_exclude() {
    let exclude = Regex::new(DEFAULT_DISK_EXCLUDE).unwrap();
    let mut out = Out::new("h1", 7);
    diskstats::parse(
        "   8       0 sda 25354637 34367663 1003346126 18492372 28444756 11134226 505697032 63877960 0 9653880 82621804\n\
         \x20  8       1 sda1 250 0 2000 36 0 0 0 0 0 36 36\n\
         \x20  7       0 loop0 0 0 0 0 0 0 0 0 0 0 0\n\
         \x20  8      16 sdb 326552 841 9657779 84 41822 2895 1972905 5007 0 60730 67070 68851 0 1925173784 11130\n\
         \x20  8      32 sdc 126552 141 1657779 14 11822 1895 172905 1007 0 10730 17070 18851 0 125173784 11130 1555 1944\n\
         \x20259       1 nvme0n1p1 1140 0 9370 16 1 0 1 0 0 16 16\n\
         \x20179       1 mmcblk0p1 17 3 160 24 0 0 0 0 0 24 24\n",
        Some(&exclude),
        &mut out,
    );
    let (rows, problems) = samples(out);
    assert!(problems.is_empty(), "{problems:?}");
    let devices: Vec<&str> = rows
        .iter()
        .filter(|r| r.0 == "disk.read.requests")
        .map(|r| r.1.as_str())
        .collect();
    assert_eq!(
        devices,
        vec!["device=sda", "device=sdb", "device=sdc", "device=mmcblk0p1"]
    );
    let sda: Vec<(String, f64)> = rows
        .iter()
        .filter(|r| r.1 == "device=sda")
        .map(|r| (r.0.clone(), r.2))
        .collect();
    assert_eq!(
        sda,
        vec![
            ("disk.read.requests".into(), 25354637.0),
            ("disk.read.bytes".into(), 513713216512.0),
            ("disk.read.time".into(), 18492.372),
            ("disk.write.requests".into(), 28444756.0),
            ("disk.write.bytes".into(), 258916880384.0),
            ("disk.write.time".into(), 63877.96),
            // node_exporter prints 9653.880000000001: ms × 0.001, not ÷ 1000.
            ("disk.io_time".into(), 9653.880000000001),
        ]
    );
}

#[test]
fn diskstats_bad_lines_are_skipped_and_reported() {
    let mut out = Out::new("h1", 7);
    diskstats::parse(
        "   3    1 hda1 35486 38030 38030 38030\n\
         \n\
         \x20  8    0 sda 1 2 3 4 5 6 7 8 9 10 x\n\
         \x20  a    0 sdb 1 2 3 4 5 6 7 8 9 10 11\n\
         \x20  8   32 sdc 1 2 3 4 5 6 7 8 9 10 11\n",
        None,
        &mut out,
    );
    let (rows, problems) = samples(out);
    assert_eq!(
        problems,
        vec![
            "diskstats line 1: hda1: expected at least 14 fields, got 7",
            "diskstats line 3: sda: not a counter: \"x\"",
            "diskstats line 4: bad device number a:0: \"   a    0 sdb 1 2 3 4 5 6 7 8 9 10 11\"",
        ]
    );
    assert_eq!(rows.len(), 7);
    assert!(rows.iter().all(|r| r.1 == "device=sdc"));
    assert_eq!(rows[1], row("disk.read.bytes", "device=sdc", 3.0 * 512.0));
}

#[test]
fn net_dev_names_with_colons_and_no_space_after_the_colon() {
    let mut out = Out::new("h1", 7);
    netdev::parse(
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n\
         \x20 eth0:874354587 1036395    1    2    0     0          0         0 563352563  732147    3    4    0     0       0          0\n\
         eth0:1: 10 20 30 40 50 60 70 80 90 100 110 120 130 140 150 160\n\
         vlan:a:b:7 8 9 10 0 0 0 0 11 12 13 14 0 0 0 0\n",
        None,
        &mut out,
    );
    let (rows, problems) = samples(out);
    assert!(problems.is_empty(), "{problems:?}");
    let eth0: Vec<(String, f64)> = rows
        .iter()
        .filter(|r| r.1 == "interface=eth0")
        .map(|r| (r.0.clone(), r.2))
        .collect();
    assert_eq!(
        eth0,
        vec![
            ("network.incoming.bytes".into(), 874354587.0),
            ("network.incoming.packets".into(), 1036395.0),
            ("network.incoming.packets.error".into(), 1.0),
            ("network.incoming.packets.drop".into(), 2.0),
            ("network.outgoing.bytes".into(), 563352563.0),
            ("network.outgoing.packets".into(), 732147.0),
            ("network.outgoing.packets.error".into(), 3.0),
            ("network.outgoing.packets.drop".into(), 4.0),
        ]
    );
    let alias: Vec<f64> = rows
        .iter()
        .filter(|r| r.1 == "interface=eth0:1")
        .map(|r| r.2)
        .collect();
    assert_eq!(
        alias,
        vec![10.0, 20.0, 30.0, 40.0, 90.0, 100.0, 110.0, 120.0]
    );
    let vlan: Vec<f64> = rows
        .iter()
        .filter(|r| r.1 == "interface=vlan:a:b")
        .map(|r| r.2)
        .collect();
    assert_eq!(vlan, vec![7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0]);
}

#[test]
fn net_dev_bad_lines_and_exclude() {
    let exclude = Regex::new("^(lo|veth.*)$").unwrap();
    let mut out = Out::new("h1", 7);
    netdev::parse(
        "garbage\n\
         : 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
         eth0: 1 2 3\n\
         eth1: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n\
         lo: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
         vethab: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
         eth2: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
        Some(&exclude),
        &mut out,
    );
    let (rows, problems) = samples(out);
    assert_eq!(
        problems,
        vec![
            "net/dev line 1: no `interface:` prefix: \"garbage\"",
            "net/dev line 2: empty interface name: \": 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\"",
            "net/dev line 3: eth0: expected 16 counters, got 3",
            "net/dev line 4: eth1: not a counter: \"x\"",
        ]
    );
    assert_eq!(rows.len(), 8);
    assert!(rows.iter().all(|r| r.1 == "interface=eth2"));
}

#[test]
fn settings_bad_regex_is_invalid_settings() {
    let err = Procfs::init(Settings::from(vec![("disk_exclude".into(), "(".into())]))
        .err()
        .unwrap();
    assert_eq!(err.kind, wasmeter_guest::ErrorKind::InvalidSettings);
    assert!(
        err.message
            .starts_with("setting `disk_exclude`: not a valid regex \"(\""),
        "{}",
        err.message
    );
    let p = Procfs::init(Settings::from(vec![("disk_exclude".into(), String::new())])).unwrap();
    assert!(p.disk_exclude.is_none());
}

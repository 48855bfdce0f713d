//! The `procfs` collector against node_exporter's /proc fixture, checked
//! against node_exporter's own output for the same files.

use std::collections::HashMap;
use std::sync::Arc;

use wasmeter::batch;
use wasmeter::plugin::{Collector, Grants, Limits, Plugin, PluginSource};

use crate::support::{data_dir, runtime};

/// `name value` lines of node_exporter's e2e output (no labels).
fn node_exporter_values() -> HashMap<String, f64> {
    let text =
        std::fs::read_to_string(data_dir().join("node_exporter-fixtures/e2e-output.txt")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.contains('{'))
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

fn collector(root: &std::path::Path) -> Collector {
    let plugin = Plugin::load(
        &runtime(),
        "procfs",
        &PluginSource::Builtin("procfs".into()),
    )
    .unwrap();
    let root = root.canonicalize().unwrap();
    let settings = vec![
        ("root".into(), root.display().to_string()),
        ("resource_id".into(), "fixture".into()),
    ];
    let grants = Grants {
        read_dirs: vec![root],
        env: vec![],
    };
    Collector::new(
        Arc::new(plugin),
        "host",
        &settings,
        &grants,
        Limits::default(),
    )
    .unwrap()
}

#[test]
fn load_and_memory_match_node_exporter() {
    let expected = node_exporter_values();
    let mut c = collector(&data_dir().join("node_exporter-fixtures/proc"));
    let out = batch::to_wit(&c.collect(1_700_000_000_000_000_000).unwrap()).unwrap();
    let got: HashMap<&str, f64> = out
        .series_index
        .iter()
        .zip(&out.values)
        .map(|(&i, &v)| (out.series[i as usize].metric.as_str(), v))
        .collect();
    let pairs = [
        ("load.1m", "node_load1"),
        ("load.5m", "node_load5"),
        ("load.15m", "node_load15"),
        ("memory.total", "node_memory_MemTotal_bytes"),
        ("memory.free", "node_memory_MemFree_bytes"),
        ("memory.buffers", "node_memory_Buffers_bytes"),
        ("memory.cached", "node_memory_Cached_bytes"),
        ("memory.swap.total", "node_memory_SwapTotal_bytes"),
        ("memory.swap.free", "node_memory_SwapFree_bytes"),
    ];
    for (ours, theirs) in pairs {
        assert_eq!(
            got.get(ours),
            expected.get(theirs),
            "{ours} vs node_exporter's {theirs}"
        );
    }
    // The fixture has no MemAvailable line: no sample is invented for it.
    assert!(!got.contains_key("memory.available"));
    assert_eq!(got.len(), pairs.len());
    assert!(
        out.timestamps
            .iter()
            .all(|&t| t == 1_700_000_000_000_000_000)
    );
    assert!(out.series.iter().all(|s| s.resource_id == "fixture"));
}

#[test]
fn without_a_grant_proc_is_unavailable() {
    let plugin = Plugin::load(
        &runtime(),
        "procfs",
        &PluginSource::Builtin("procfs".into()),
    )
    .unwrap();
    let mut c = Collector::new(
        Arc::new(plugin),
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

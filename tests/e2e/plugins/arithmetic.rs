//! The `arithmetic` transformer, called through the component model on
//! Arrow batches: CPU utilisation from per-CPU per-mode rates, groups that
//! lack a variable, selectors with two attribute keys, two resources in one
//! batch, a syntax error refused by init; and the chain procfs →
//! rate-of-change → arithmetic on this machine's real `/proc`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmeter::batch;
use wasmeter::bindings::{SampleType, WitBatch, WitSeries};
use wasmeter::plugin::{
    Collector, Grants, Limits, Plugin, PluginErrorKind, PluginSource, Transformer, World,
};

use super::procfs::with_logs;
use crate::support::{Row, rows, run, runtime, series, wit_batch};

const S: i64 = 1_000_000_000;
/// 2023-11-14T22:13:20Z, so timestamps are realistic.
const T0: i64 = 1_700_000_000 * S;

fn load(name: &str) -> Arc<Plugin> {
    Arc::new(Plugin::load(&runtime(), name, &PluginSource::Builtin(name.into())).unwrap())
}

fn owned(settings: &[(&str, &str)]) -> Vec<(String, String)> {
    settings
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn transformer(plugin: &str, settings: &[(&str, &str)]) -> Transformer {
    let plugin = load(plugin);
    assert_eq!(plugin.world(), World::Transformer);
    Transformer::new(
        plugin,
        "t",
        &owned(settings),
        &Grants::default(),
        Limits::default(),
    )
    .unwrap()
}

/// A series with attributes.
fn labelled(metric: &str, resource: &str, attributes: &[(&str, &str)]) -> WitSeries {
    let mut s = series(metric, resource, "s/s", SampleType::Gauge);
    s.attributes = attributes
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    s.attributes.sort();
    s
}

const CPU_UTIL: &[(&str, &str)] = &[
    ("metric", "cpu.util"),
    ("unit", "%"),
    ("expression", "100 * (1 - idle / all)"),
    ("var.idle", "cpu.time.rate{mode=idle}"),
    ("var.all", "cpu.time.rate"),
];

fn util_row(resource: &str, t: i64, v: f64) -> Row {
    (
        "cpu.util".into(),
        resource.into(),
        "%".into(),
        SampleType::Gauge,
        String::new(),
        t,
        v,
    )
}

const MODES: [&str; 3] = ["idle", "user", "system"];

/// The CPU table of `resource`: cpu 0 and 1 × idle, user, system.
fn cpu_table(resource: &str) -> Vec<WitSeries> {
    ["0", "1"]
        .iter()
        .flat_map(|cpu| {
            MODES.iter().map(move |mode| {
                labelled("cpu.time.rate", resource, &[("cpu", cpu), ("mode", mode)])
            })
        })
        .collect()
}

/// Utilisation from rates indexed like [`cpu_table`], computed here by hand:
/// idle over everything.
fn expected_util(rates: &[f64; 6]) -> f64 {
    let idle = rates[0] + rates[3];
    let all: f64 = rates.iter().sum();
    100.0 * (1.0 - idle / all)
}

#[test]
fn cpu_utilisation_from_two_cpus_by_mode_at_two_timestamps() {
    let mut t = transformer("arithmetic", CPU_UTIL);
    // Rates in s/s per (cpu, mode), cpu 0 then cpu 1, modes as MODES.
    let at_t0 = [0.5, 0.25, 0.25, 0.75, 0.125, 0.125];
    let at_t1 = [0.125, 0.625, 0.25, 0.0, 0.875, 0.125];
    let mut input = Vec::new();
    for (ts, rates) in [(T0, &at_t0), (T0 + 10 * S, &at_t1)] {
        for (i, &v) in rates.iter().enumerate() {
            input.push((i as u32, ts, v));
        }
    }
    let out = run(&mut t, cpu_table("web-1"), &input);
    // By hand: t0 idle 1.25 of 2 → 37.5 %; t1 idle 0.125 of 2 → 93.75 %.
    assert_eq!(expected_util(&at_t0), 37.5);
    assert_eq!(expected_util(&at_t1), 93.75);
    assert_eq!(
        rows(&out),
        vec![
            util_row("web-1", T0, 37.5),
            util_row("web-1", T0 + 10 * S, 93.75),
        ]
    );
}

#[test]
fn two_resources_in_one_batch_are_separate_groups() {
    let mut t = transformer("arithmetic", CPU_UTIL);
    let mut table = cpu_table("web-1");
    table.extend(cpu_table("web-2"));
    let web1 = [0.5, 0.25, 0.25, 0.75, 0.125, 0.125];
    let web2 = [1.0, 0.0, 0.0, 0.25, 0.5, 0.25];
    // Interleaved rows: the groups are made by (resource, timestamp), not
    // by order.
    let mut input = Vec::new();
    for i in 0..6 {
        input.push((i as u32 + 6, T0, web2[i]));
        input.push((i as u32, T0, web1[i]));
    }
    let out = run(&mut t, table, &input);
    assert_eq!(
        rows(&out),
        vec![
            util_row("web-2", T0, expected_util(&web2)),
            util_row("web-1", T0, expected_util(&web1)),
        ]
    );
    assert_eq!(expected_util(&web2), 37.5);
    assert_eq!(out.series.len(), 2);
}

#[test]
fn a_group_missing_a_variable_gives_no_output_and_is_logged() {
    let mut t = transformer("arithmetic", CPU_UTIL);
    let table = vec![
        labelled("cpu.time.rate", "web-1", &[("cpu", "0"), ("mode", "idle")]),
        labelled("cpu.time.rate", "web-1", &[("cpu", "0"), ("mode", "user")]),
        labelled("cpu.time.rate", "web-2", &[("cpu", "0"), ("mode", "user")]),
    ];
    let (out, logs) = with_logs(|| {
        run(
            &mut t,
            table,
            &[
                (0, T0, 0.25),
                (1, T0, 0.75),
                (1, T0 + S, 1.0), // web-1 at T0 + 1 s: no idle sample
                (2, T0, 1.0),     // web-2: no idle sample at all
            ],
        )
    });
    assert_eq!(rows(&out), vec![util_row("web-1", T0, 75.0)]);
    let warning = format!(
        "2 (resource, timestamp) groups lacked a variable and gave no cpu.util (2 since start); first: web-1 at {} ns lacks idle",
        T0 + S
    );
    assert!(logs.contains(&warning), "{logs}");
}

#[test]
fn selectors_with_two_attribute_keys() {
    let mut t = transformer(
        "arithmetic",
        &[
            ("metric", "network.error.ratio"),
            ("expression", "errors / (packets + errors)"),
            (
                "var.errors",
                "network.incoming.packets.error{interface=eth0,direction=in}",
            ),
            ("var.packets", "network.incoming.packets{interface=eth0}"),
        ],
    );
    let err = |iface: &str, dir: &str| {
        labelled(
            "network.incoming.packets.error",
            "h",
            &[("direction", dir), ("interface", iface)],
        )
    };
    let table = vec![
        err("eth0", "in"),
        err("eth0", "out"), // second key differs: not selected
        err("eth1", "in"),  // first key differs: not selected
        labelled("network.incoming.packets", "h", &[("interface", "eth0")]),
        labelled("network.incoming.packets", "h", &[("interface", "eth1")]),
    ];
    let out = run(
        &mut t,
        table,
        &[
            (0, T0, 1.0),
            (1, T0, 100.0),
            (2, T0, 1000.0),
            (3, T0, 3.0),
            (4, T0, 10000.0),
        ],
    );
    // errors = 1, packets = 3.
    assert_eq!(out.values, vec![0.25]);
    assert_eq!(out.series[0].unit, "1");
    assert_eq!(out.series[0].metric, "network.error.ratio");
}

#[test]
fn a_syntax_error_is_refused_by_init_naming_the_setting_and_column() {
    let plugin = load("arithmetic");
    for (expression, problem) in [
        (
            "100 * (1 - idle ; all)",
            "unexpected ';' at column 17".to_owned(),
        ),
        ("100 * (1 - idle / all", "parentheses mismatch".to_owned()),
    ] {
        let mut settings = owned(CPU_UTIL);
        settings.retain(|(k, _)| k != "expression");
        settings.push(("expression".into(), expression.into()));
        let err = Transformer::new(
            plugin.clone(),
            "util",
            &settings,
            &Grants::default(),
            Limits::default(),
        )
        .err()
        .unwrap();
        assert_eq!(err.kind, PluginErrorKind::InvalidSettings);
        assert_eq!(
            err.to_string(),
            format!(
                "plugin util: invalid-settings: setting `expression`: cannot parse {expression:?}: {problem}"
            )
        );
    }
    // A variable with no selector, and a selector no variable uses.
    let mut settings = owned(CPU_UTIL);
    settings.retain(|(k, _)| k != "var.all");
    let err = Transformer::new(
        plugin.clone(),
        "util",
        &settings,
        &Grants::default(),
        Limits::default(),
    )
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "plugin util: invalid-settings: setting `expression`: variable `all` has no `var.all` setting"
    );
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// The rows of `batch` whose metric is `meter`: what the host's meter
/// filter (`meters = ["cpu.time"]`) would hand the next stage.
fn only(batch: &WitBatch, meter: &str) -> WitBatch {
    let rows: Vec<(u32, i64, f64)> = batch
        .series_index
        .iter()
        .zip(&batch.timestamps)
        .zip(&batch.values)
        .filter(|((i, _), _)| batch.series[**i as usize].metric == meter)
        .map(|((&i, &t), &v)| (i, t, v))
        .collect();
    wit_batch(batch.series.clone(), &rows)
}

/// procfs → rate-of-change → arithmetic on this machine's /proc, twice
/// about 1 s apart: one `cpu.util` sample, between 0 and 100 %.
#[test]
fn cpu_util_from_the_real_proc() {
    let proc = PathBuf::from("/proc");
    let grants = Grants {
        read_dirs: vec![proc],
        ..Grants::default()
    };
    let mut procfs = Collector::new(
        load("procfs"),
        "host",
        &owned(&[("resource_id", "this-host")]),
        &grants,
        Limits::default(),
    )
    .unwrap();
    let mut rate = transformer(
        "rate-of-change",
        &[("metric", "cpu.time.rate"), ("unit", "s/s")],
    );
    let mut util = transformer("arithmetic", CPU_UTIL);

    let mut outputs = Vec::new();
    for round in 0..2 {
        if round == 1 {
            std::thread::sleep(Duration::from_secs(1));
        }
        let collected = batch::to_wit(&procfs.collect(now_ns()).unwrap()).unwrap();
        let cpu = only(&collected, "cpu.time");
        assert!(!cpu.values.is_empty(), "no cpu.time from /proc/stat");
        let rates = rate.transform(&batch::from_wit(cpu).unwrap()).unwrap();
        outputs.push(batch::to_wit(&util.transform(&rates).unwrap()).unwrap());
    }
    // The first collection has no predecessor: no rate, no utilisation.
    assert!(outputs[0].values.is_empty());
    let out = &outputs[1];
    assert_eq!(out.values.len(), 1, "{out:?}");
    let v = out.values[0];
    assert!((0.0..=100.0).contains(&v), "cpu.util = {v}");
    let s = &out.series[0];
    assert_eq!(
        (s.metric.as_str(), s.resource_id.as_str(), s.unit.as_str()),
        ("cpu.util", "this-host", "%")
    );
    assert!(s.attributes.is_empty());
}

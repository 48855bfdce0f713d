//! The `rate-of-change` transformer, called through the component model on
//! Arrow batches: Ceilometer's rules (no output for a series' first sample,
//! a decrease of a cumulative series is a reset counted from 0, time that
//! does not advance is dropped and logged), state kept per series across
//! batches, several series interleaved in one batch.

use std::sync::Arc;

use wasmeter::batch;
use wasmeter::bindings::{SampleType, WitSeries};
use wasmeter::plugin::{Grants, Limits, Plugin, PluginErrorKind, PluginSource, Transformer, World};

use super::procfs::with_logs;
use crate::support::{Row, rows, run, runtime, series};

const S: i64 = 1_000_000_000;
/// 2023-11-14T22:13:20Z, so timestamps are realistic.
const T0: i64 = 1_700_000_000 * S;

fn rate_of_change(settings: &[(&str, &str)]) -> Transformer {
    let plugin = Plugin::load(
        &runtime(),
        "rate-of-change",
        &PluginSource::Builtin("rate-of-change".into()),
    )
    .unwrap();
    assert_eq!(plugin.world(), World::Transformer);
    let settings: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Transformer::new(
        Arc::new(plugin),
        "rate",
        &settings,
        &Grants::default(),
        Limits::default(),
    )
    .unwrap()
}

fn counter() -> WitSeries {
    series(
        "network.incoming.bytes",
        "host-1",
        "B",
        SampleType::Cumulative,
    )
}

#[test]
fn a_decrease_is_a_reset_counted_from_zero() {
    let mut t = rate_of_change(&[]);
    // 0 1 2 3 2 3 4 at 10 s steps: increases 1 1 1 2 1 1, 7 in total.
    let values = [0.0, 1.0, 2.0, 3.0, 2.0, 3.0, 4.0];
    let input: Vec<(u32, i64, f64)> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| (0, T0 + i as i64 * 10 * S, v))
        .collect();
    let out = run(&mut t, vec![counter()], &input);
    assert_eq!(out.values, vec![0.1, 0.1, 0.1, 0.2, 0.1, 0.1]);
    assert_eq!(
        out.timestamps,
        (1..=6).map(|i| T0 + i * 10 * S).collect::<Vec<_>>()
    );
    let increase: f64 = out.values.iter().map(|rate| rate * 10.0).sum();
    assert_eq!(increase, 7.0);
    assert_eq!(out.series.len(), 1);
    let s = &out.series[0];
    assert_eq!(
        (
            s.metric.as_str(),
            s.resource_id.as_str(),
            s.unit.as_str(),
            s.type_
        ),
        ("network.incoming.bytes", "host-1", "B/s", SampleType::Gauge)
    );
}

#[test]
fn state_carries_over_from_batch_to_batch() {
    let mut t = rate_of_change(&[]);
    // The first batch's first sample has no predecessor: no output.
    let out = run(&mut t, vec![counter()], &[(0, T0, 100.0)]);
    assert!(out.values.is_empty());
    let out = run(&mut t, vec![counter()], &[(0, T0 + 4 * S, 110.0)]);
    assert_eq!(out.values, vec![2.5]);
    // A reset across batches: 110 → 30 counts as +30 over 5 s.
    let out = run(
        &mut t,
        vec![counter()],
        &[(0, T0 + 9 * S, 30.0), (0, T0 + 19 * S, 31.0)],
    );
    assert_eq!(out.values, vec![6.0, 0.1]);
    assert_eq!(out.timestamps, vec![T0 + 9 * S, T0 + 19 * S]);
}

#[test]
fn time_going_backwards_or_standing_still_is_dropped_and_logged() {
    let mut t = rate_of_change(&[]);
    let (out, logs) = with_logs(|| {
        run(
            &mut t,
            vec![counter()],
            &[
                (0, T0, 10.0),
                (0, T0 + 10 * S, 20.0),
                (0, T0 + 5 * S, 100.0), // backwards: dropped
                (0, T0 + 10 * S, 30.0), // same time: dropped
                (0, T0 + 20 * S, 40.0), // against the sample at +10 s
            ],
        )
    });
    assert_eq!(out.values, vec![1.0, 2.0]);
    assert_eq!(out.timestamps, vec![T0 + 10 * S, T0 + 20 * S]);
    let warning = format!(
        "dropped 2 samples whose time did not advance (2 since start); first: network.incoming.bytes host-1 [] at {} ns, not after {} ns",
        T0 + 5 * S,
        T0 + 10 * S
    );
    assert!(logs.contains(&warning), "{logs}");
    assert!(logs.contains("WARN"), "{logs}");

    // The count goes on across batches.
    let (out, logs) = with_logs(|| run(&mut t, vec![counter()], &[(0, T0 + 20 * S, 50.0)]));
    assert!(out.values.is_empty());
    assert!(
        logs.contains("dropped 1 samples whose time did not advance (3 since start)"),
        "{logs}"
    );
}

#[test]
fn interleaved_series_each_keep_their_own_state() {
    let mut t = rate_of_change(&[("scale", "100"), ("unit", "%"), ("metric", "cpu.util")]);
    let cpu = |n: &str, mode: &str| {
        let mut s = series("cpu.time", "web-1", "s", SampleType::Cumulative);
        s.attributes = vec![("cpu".into(), n.into()), ("mode".into(), mode.into())];
        s
    };
    let table = vec![cpu("0", "user"), cpu("1", "user"), cpu("0", "idle")];
    let out = run(
        &mut t,
        table,
        &[
            (0, T0, 444.9),
            (1, T0, 478.69),
            (2, T0, 10870.69),
            (0, T0 + 10 * S, 447.4),
            (2, T0 + 10 * S, 10877.19),
            (1, T0 + 10 * S, 478.69),
            (0, T0 + 20 * S, 448.4),
            (1, T0 + 20 * S, 488.69),
            (2, T0 + 20 * S, 10886.19),
        ],
    );
    let got = rows(&out);
    let row = |attrs: &str, t: i64, v: f64| -> Row {
        (
            "cpu.util".into(),
            "web-1".into(),
            "%".into(),
            SampleType::Gauge,
            attrs.into(),
            t,
            v,
        )
    };
    // (v - v_prev) / 10 s × 100, computed as the plugin does.
    let pct = |a: f64, b: f64| (b - a) / 10.0 * 100.0;
    assert_eq!(
        got,
        vec![
            row("cpu=0,mode=user", T0 + 10 * S, pct(444.9, 447.4)),
            row("cpu=0,mode=idle", T0 + 10 * S, pct(10870.69, 10877.19)),
            row("cpu=1,mode=user", T0 + 10 * S, 0.0),
            row("cpu=0,mode=user", T0 + 20 * S, pct(447.4, 448.4)),
            row("cpu=1,mode=user", T0 + 20 * S, pct(478.69, 488.69)),
            row("cpu=0,mode=idle", T0 + 20 * S, pct(10877.19, 10886.19)),
        ]
    );

    // The next batch lists the series in another order: state follows the
    // series, not its index in the table.
    let out = run(
        &mut t,
        vec![cpu("0", "idle"), cpu("0", "user")],
        &[(1, T0 + 30 * S, 448.4), (0, T0 + 30 * S, 10896.19)],
    );
    assert_eq!(out.values, vec![0.0, pct(10886.19, 10896.19)]);
}

#[test]
fn gauges_may_fall_deltas_are_rates_of_their_own_value_and_max_caps() {
    let mut t = rate_of_change(&[("max", "3")]);
    let gauge = series("queue.depth", "q", "{item}", SampleType::Gauge);
    let delta = series("requests", "api", "", SampleType::Delta);
    let out = run(
        &mut t,
        vec![gauge, delta],
        &[
            (0, T0, 10.0),
            (1, T0, 7.0),
            (0, T0 + 2 * S, 4.0), // a gauge falling is a negative rate, not a reset
            (1, T0 + 2 * S, 5.0), // a delta of 5 in 2 s
            (0, T0 + 3 * S, 9.0), // +5 in 1 s, capped at 3
            (1, T0 + 4 * S, f64::NAN),
        ],
    );
    assert_eq!(out.values[..3], [-3.0, 2.5, 3.0]);
    // NaN is not capped: it stays NaN.
    assert!(out.values[3].is_nan());
    assert_eq!(out.values.len(), 4);
    let units: Vec<&str> = out.series.iter().map(|s| s.unit.as_str()).collect();
    assert_eq!(units, vec!["{item}/s", "1/s"]);
    assert!(out.series.iter().all(|s| s.type_ == SampleType::Gauge));
}

#[test]
fn an_empty_batch_gives_an_empty_batch() {
    let mut t = rate_of_change(&[]);
    let out = t.transform(&batch::empty()).unwrap();
    assert_eq!(out.num_rows(), 0);
}

#[test]
fn bad_settings_are_refused_by_init() {
    let plugin = Arc::new(
        Plugin::load(
            &runtime(),
            "rate-of-change",
            &PluginSource::Builtin("rate-of-change".into()),
        )
        .unwrap(),
    );
    for (key, value) in [("scale", "100 / 1e0"), ("max", "")] {
        let err = Transformer::new(
            plugin.clone(),
            "bad",
            &[(key.into(), value.into())],
            &Grants::default(),
            Limits::default(),
        )
        .err()
        .unwrap();
        assert_eq!(err.kind, PluginErrorKind::InvalidSettings);
        assert_eq!(
            err.to_string(),
            format!(
                "plugin bad: invalid-settings: setting `{key}`: expected a number, got {value:?}"
            )
        );
    }
}

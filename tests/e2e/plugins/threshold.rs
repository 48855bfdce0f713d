//! The `threshold` alarm rule, called through the component model.

use std::sync::Arc;

use wasmeter::bindings::SampleType;
use wasmeter::bindings::alarm_rule::wasmeter::plugin::alarm::{SeriesAggregates, State};
use wasmeter::plugin::{AlarmRule, Grants, Limits, Plugin, PluginErrorKind, PluginSource, World};

use crate::support::{runtime, series};

fn rule() -> AlarmRule {
    let plugin = Plugin::load(
        &runtime(),
        "threshold",
        &PluginSource::Builtin("threshold".into()),
    )
    .unwrap();
    assert_eq!(plugin.world(), World::AlarmRule);
    AlarmRule::new(
        Arc::new(plugin),
        "threshold",
        &[],
        &Grants::default(),
        Limits::default(),
    )
    .unwrap()
}

fn params(op: &str, threshold: &str, periods: &str) -> Vec<(String, String)> {
    vec![
        ("comparison_operator".into(), op.into()),
        ("threshold".into(), threshold.into()),
        ("evaluation_periods".into(), periods.into()),
    ]
}

fn input(values: &[f64]) -> SeriesAggregates {
    SeriesAggregates {
        series: series("cpu.util", "vm-1", "%", SampleType::Gauge),
        timestamps: (0..values.len() as i64)
            .map(|i| i * 60_000_000_000)
            .collect(),
        values: values.to_vec(),
    }
}

#[test]
fn judges_every_series_in_one_call() {
    let mut r = rule();
    let out = r
        .evaluate(
            &params("gt", "80", "5"),
            &[
                input(&[81.0, 82.0, 83.0, 84.0, 85.0]),
                input(&[80.0, 79.0, 78.0, 77.0, 76.0]),
                input(&[80.0, 81.0, 82.0, 83.0, 84.0]),
                input(&[90.0, 91.0]),
            ],
        )
        .unwrap();
    let brief: Vec<(State, bool, u32, u32, Option<f64>)> = out
        .iter()
        .map(|e| (e.state, e.equivocal, e.points, e.outside, e.most_recent))
        .collect();
    assert_eq!(
        brief,
        vec![
            (State::Alarm, false, 5, 5, Some(85.0)),
            (State::Ok, false, 5, 0, Some(76.0)),
            (State::Alarm, true, 5, 4, Some(84.0)),
            (State::InsufficientData, false, 2, 0, Some(91.0)),
        ]
    );
    assert_eq!(out[3].reason, "5 datapoints are unknown");
    assert_eq!(r.stats().calls, 1);
}

#[test]
fn keeps_only_the_last_periods() {
    let mut r = rule();
    let out = r
        .evaluate(
            &params("le", "10", "4"),
            &[input(&[11.0, 10.0, 9.0, 8.0, 7.0, 6.0])],
        )
        .unwrap();
    assert_eq!(
        (out[0].state, out[0].equivocal, out[0].outside),
        (State::Alarm, false, 4)
    );
    assert_eq!(out[0].most_recent, Some(6.0));
}

#[test]
fn refuses_bad_parameters_by_name() {
    let mut r = rule();
    let e = r.evaluate(&params("gte", "80", "5"), &[]).unwrap_err();
    assert_eq!(e.kind, PluginErrorKind::InvalidSettings);
    assert!(e.message.contains("comparison_operator"), "{}", e.message);
    let e = r.evaluate(&params("gt", "eighty", "5"), &[]).unwrap_err();
    assert_eq!(e.kind, PluginErrorKind::InvalidSettings);
    assert!(e.message.contains("threshold"), "{}", e.message);
    // The instance still serves after refusing.
    assert_eq!(
        r.evaluate(&params("gt", "80", "1"), &[input(&[81.0])])
            .unwrap()[0]
            .state,
        State::Alarm
    );
}

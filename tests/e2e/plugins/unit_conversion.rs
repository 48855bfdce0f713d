//! The `unit-conversion` transformer, called through the component model on
//! an Arrow batch.

use std::sync::Arc;

use wasmeter::batch;
use wasmeter::bindings::SampleType;
use wasmeter::plugin::{Grants, Limits, Plugin, PluginSource, Transformer, World};

use crate::support::{runtime, series, wit_batch};

fn scale_by_1000() -> Transformer {
    let plugin = Plugin::load(
        &runtime(),
        "unit-conversion",
        &PluginSource::Builtin("unit-conversion".into()),
    )
    .unwrap();
    assert_eq!(plugin.world(), World::Transformer);
    let settings = vec![
        ("scale".into(), "1000".into()),
        ("unit".into(), "ms".into()),
    ];
    Transformer::new(
        Arc::new(plugin),
        "to-ms",
        &settings,
        &Grants::default(),
        Limits::default(),
    )
    .unwrap()
}

#[test]
fn scales_every_value_and_renames_the_unit() {
    let mut t = scale_by_1000();
    let mut s1 = series("request.latency", "api-1", "s", SampleType::Gauge);
    s1.attributes = vec![("route".into(), "/v1/ä".into())];
    let s2 = series("request.latency", "api-2", "s", SampleType::Gauge);
    let input = batch::from_wit(wit_batch(
        vec![s1, s2],
        &[
            (0, 1_000, 0.25),
            (1, 1_000, 1.5),
            (0, 2_000, -0.0),
            (1, 2_000, f64::INFINITY),
            (0, 3_000, 0.001),
        ],
    ))
    .unwrap();
    let out = t.transform(&input).unwrap();
    let out = batch::to_wit(&out).unwrap();
    let bits: Vec<u64> = out.values.iter().map(|v| v.to_bits()).collect();
    let expected: Vec<u64> = [250.0, 1500.0, -0.0, f64::INFINITY, 1.0]
        .iter()
        .map(|v: &f64| v.to_bits())
        .collect();
    assert_eq!(bits, expected);
    assert_eq!(out.timestamps, vec![1_000, 1_000, 2_000, 2_000, 3_000]);
    assert_eq!(out.series_index, vec![0, 1, 0, 1, 0]);
    assert!(
        out.series
            .iter()
            .all(|s| s.unit == "ms" && s.metric == "request.latency")
    );
    assert_eq!(
        out.series[0].attributes,
        vec![("route".to_string(), "/v1/ä".to_string())]
    );
    assert_eq!(t.stats().calls, 1);
    assert_eq!(t.stats().error_count(), 0);
}

#[test]
fn an_empty_batch_gives_an_empty_batch() {
    let mut t = scale_by_1000();
    let out = t.transform(&batch::empty()).unwrap();
    assert_eq!(out.num_rows(), 0);
}

#[test]
fn bad_settings_are_refused_by_init() {
    let plugin = Plugin::load(
        &runtime(),
        "unit-conversion",
        &PluginSource::Builtin("unit-conversion".into()),
    )
    .unwrap();
    let err = Transformer::new(
        Arc::new(plugin),
        "bad",
        &[("scale".into(), "a lot".into())],
        &Grants::default(),
        Limits::default(),
    )
    .err()
    .unwrap();
    assert_eq!(err.kind, wasmeter::plugin::PluginErrorKind::InvalidSettings);
    assert_eq!(
        err.to_string(),
        "plugin bad: invalid-settings: setting `scale`: expected a number, got \"a lot\""
    );
}

#[test]
fn every_batch_length_around_the_eight_value_step_is_exact() {
    // The plugin's loop runs eight values per step, the rest one by one:
    // every length up to five steps, against the product computed here.
    let mut t = scale_by_1000();
    let specials = [-0.0, f64::NAN, f64::INFINITY, f64::MIN_POSITIVE / 4.0, -3.5];
    for n in 0..=41usize {
        let values: Vec<f64> = (0..n)
            .map(|i| match i % 7 {
                k @ 0..=4 => specials[k],
                _ => i as f64 * 0.1,
            })
            .collect();
        let rows: Vec<(u32, i64, f64)> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| (0, i as i64, v))
            .collect();
        let s = series("m", "r", "s", SampleType::Gauge);
        let out = t.transform_wit(&wit_batch(vec![s], &rows)).unwrap();
        assert_eq!(out.values.len(), n);
        for (i, (&got, &v)) in out.values.iter().zip(&values).enumerate() {
            let want = v * 1000.0;
            if want.is_nan() {
                assert!(got.is_nan(), "length {n}, value {i}: {got}");
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "length {n}, value {i}");
            }
        }
    }
}

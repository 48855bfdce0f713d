//! Helpers shared by the end-to-end tests.

use std::path::PathBuf;
use std::sync::OnceLock;

use wasmeter::batch;
use wasmeter::bindings::{SampleType, WitBatch, WitSeries};
use wasmeter::plugin::{Runtime, Transformer};

/// The folder of the repository's test data.
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data")
}

/// One Wasm runtime for the whole test binary.
pub fn runtime() -> Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| Runtime::new().expect("wasm runtime"))
        .clone()
}

/// The `wasmeter` binary built for these tests.
pub fn wasmeter() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_wasmeter"))
}

/// A series with no attributes.
pub fn series(metric: &str, resource: &str, unit: &str, t: SampleType) -> WitSeries {
    WitSeries {
        metric: metric.into(),
        resource_id: resource.into(),
        unit: unit.into(),
        type_: t,
        attributes: vec![],
    }
}

/// A WIT batch from `(series index, timestamp, value)` rows.
pub fn wit_batch(series: Vec<WitSeries>, rows: &[(u32, i64, f64)]) -> WitBatch {
    WitBatch {
        series,
        series_index: rows.iter().map(|r| r.0).collect(),
        timestamps: rows.iter().map(|r| r.1).collect(),
        values: rows.iter().map(|r| r.2).collect(),
    }
}

/// One Wasm call on `rows` of `series` (through Arrow both ways).
pub fn run(t: &mut Transformer, series: Vec<WitSeries>, rows: &[(u32, i64, f64)]) -> WitBatch {
    let input = batch::from_wit(wit_batch(series, rows)).unwrap();
    batch::to_wit(&t.transform(&input).unwrap()).unwrap()
}

/// `(metric, resource, unit, type, attributes, timestamp, value)` per output
/// row, in order.
pub type Row = (String, String, String, SampleType, String, i64, f64);

pub fn rows(out: &WitBatch) -> Vec<Row> {
    out.series_index
        .iter()
        .zip(&out.timestamps)
        .zip(&out.values)
        .map(|((&i, &t), &v)| {
            let s = &out.series[i as usize];
            let attrs: Vec<String> = s
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            (
                s.metric.clone(),
                s.resource_id.clone(),
                s.unit.clone(),
                s.type_,
                attrs.join(","),
                t,
                v,
            )
        })
        .collect()
}

/// A running instance of the standard decoder `name` with `settings`.
pub fn decoder(name: &str, settings: &[(&str, &str)]) -> wasmeter::plugin::Decoder {
    use wasmeter::plugin::{Decoder, Grants, Limits, Plugin, PluginSource, World};
    let plugin = Plugin::load(&runtime(), name, &PluginSource::Builtin(name.into())).unwrap();
    assert_eq!(plugin.world(), World::Decoder);
    let settings: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Decoder::new(
        std::sync::Arc::new(plugin),
        name,
        &settings,
        &Grants::default(),
        Limits::default(),
    )
    .unwrap()
}

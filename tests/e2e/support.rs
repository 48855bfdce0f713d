//! Helpers shared by the end-to-end tests.

use std::path::PathBuf;
use std::sync::OnceLock;

use wasmeter::bindings::{SampleType, WitBatch, WitSeries};
use wasmeter::plugin::Runtime;

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

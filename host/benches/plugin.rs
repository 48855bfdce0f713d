//! Plugin call cost: per-call overhead with an empty batch, and samples/s
//! of an identity and a scaling transformer at 64k-row batches, next to
//! the same logic compiled native.
//!
//! `cargo bench -p wasmeter --bench plugin`

#![allow(missing_docs)]

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wasmeter::batch;
use wasmeter::bindings::{SampleType, WitBatch, WitSeries};
use wasmeter::plugin::{Grants, Limits, Plugin, Runtime, Transformer};

/// The binary's allocator (see `src/main.rs`), so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROWS: usize = 65_536;

fn input(rows: usize) -> WitBatch {
    wide(rows, 10)
}

/// `rows` rows over `series` series of one attribute each.
fn wide(rows: usize, series: usize) -> WitBatch {
    WitBatch {
        series: (0..series)
            .map(|i| WitSeries {
                metric: "cpu.time".into(),
                resource_id: format!("host-{i}"),
                unit: "s".into(),
                type_: SampleType::Cumulative,
                attributes: vec![("mode".into(), "user".into())],
            })
            .collect(),
        series_index: (0..rows).map(|i| (i % series) as u32).collect(),
        timestamps: (0..rows as i64)
            .map(|i| 1_700_000_000_000_000_000 + i)
            .collect(),
        values: (0..rows).map(|i| i as f64).collect(),
    }
}

fn transformer(
    rt: &Runtime,
    p: wasmeter_plugins::Plugin,
    settings: &[(&str, &str)],
) -> Transformer {
    let plugin = Arc::new(Plugin::from_bytes(rt, p.name, p.bytes).unwrap());
    let settings: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Transformer::new(
        plugin,
        p.name,
        &settings,
        &Grants::default(),
        Limits::default(),
    )
    .unwrap()
}

fn calls(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let mut identity = transformer(
        &rt,
        wasmeter_plugins::testing::HOSTILE,
        &[("behaviour", "identity")],
    );
    let mut scale = transformer(&rt, wasmeter_plugins::UNIT_CONVERSION, &[("scale", "2")]);

    let empty = input(0);
    c.bench_function("plugin/call_overhead_empty_batch", |b| {
        b.iter(|| identity.transform_wit(&empty).unwrap())
    });

    let wit = input(ROWS);
    let arrow = batch::from_wit(wit.clone()).unwrap();
    let mut g = c.benchmark_group("plugin/64k");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("identity_wasm_wit", |b| {
        b.iter(|| identity.transform_wit(&wit).unwrap())
    });
    g.bench_function("identity_wasm_arrow", |b| {
        b.iter(|| identity.transform(&arrow).unwrap())
    });
    // What a stage after another plugin gets: samples that know their
    // series table (a plugin's output), so only WIT -> Arrow is row by row.
    let samples = batch::Samples::from_wit(wit.clone()).unwrap();
    g.bench_function("identity_wasm_samples", |b| {
        b.iter(|| identity.transform_samples(&samples).unwrap())
    });
    g.bench_function("identity_native", |b| {
        b.iter(|| std::hint::black_box(wit.clone()))
    });
    g.bench_function("scale_wasm_wit", |b| {
        b.iter(|| scale.transform_wit(&wit).unwrap())
    });
    g.bench_function("scale_native", |b| {
        b.iter(|| {
            let mut out = wit.clone();
            out.values.iter_mut().for_each(|v| *v *= 2.0);
            std::hint::black_box(out)
        })
    });
    g.finish();

    // A scrape's shape: many series, one sample each. The series table's
    // strings cross one by one (a guest allocation each way).
    let scrape = wide(1_000, 1_000);
    let mut g = c.benchmark_group("plugin/1k_series_1_sample_each");
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("identity_wasm_wit", |b| {
        b.iter(|| identity.transform_wit(&scrape).unwrap())
    });
    g.bench_function("identity_native", |b| {
        b.iter(|| std::hint::black_box(scrape.clone()))
    });
    g.finish();
}

criterion_group!(benches, calls);
criterion_main!(benches);

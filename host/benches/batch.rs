//! Arrow ⇄ WIT batch conversion, in samples/s.
//!
//! `cargo bench -p wasmeter --bench batch`

#![allow(missing_docs)]

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use wasmeter::batch;
use wasmeter::bindings::{SampleType, WitBatch, WitSeries};

/// The binary's allocator (see `src/main.rs`), so the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn input(rows: usize, series: usize, attrs: usize) -> WitBatch {
    WitBatch {
        series: (0..series)
            .map(|i| WitSeries {
                metric: format!("metric.{}", i % 20),
                resource_id: format!("host-{i}"),
                unit: "B".into(),
                type_: SampleType::Gauge,
                attributes: (0..attrs)
                    .map(|a| (format!("label{a}"), format!("value-{i}")))
                    .collect(),
            })
            .collect(),
        series_index: (0..rows).map(|i| (i % series) as u32).collect(),
        timestamps: (0..rows as i64)
            .map(|i| 1_700_000_000_000_000_000 + i)
            .collect(),
        values: (0..rows).map(|i| i as f64).collect(),
    }
}

fn conversion(c: &mut Criterion) {
    let rows = 65_536;
    for attrs in [0, 2] {
        let wit = input(rows, 1_000, attrs);
        let arrow = batch::from_wit(wit.clone()).unwrap();
        let mut g = c.benchmark_group(format!("batch/{attrs}-attributes"));
        g.throughput(Throughput::Elements(rows as u64));
        g.bench_function("wit_to_arrow", |b| {
            b.iter_batched(
                || wit.clone(),
                |w| batch::from_wit(w).unwrap(),
                BatchSize::LargeInput,
            )
        });
        g.bench_function("arrow_to_wit", |b| {
            b.iter(|| batch::to_wit(&arrow).unwrap())
        });
        g.finish();
    }
}

criterion_group!(benches, conversion);
criterion_main!(benches);

//! Rollup throughput (samples/s through the engine with 3 granularities ×
//! 6 methods over 10,000 series) and archive density (Parquet bytes per
//! stored aggregate value on NAB's machine temperature series).
//!
//! `cargo bench -p wasmeter --bench rollup`

#![allow(missing_docs)]

use std::collections::BTreeMap;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use wasmeter::archive::ArchiveWriter;
use wasmeter::bindings::{SampleType, WitSeries};
use wasmeter::rollup::policy::{RawArchivePolicy, RawDuration, RawPolicyItem, RawPolicyRule};
use wasmeter::rollup::{ArchivePolicy, PolicyRules, RollupEngine};

/// The binary's allocator (see `src/main.rs`), so the figure is the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SERIES: usize = 10_000;
const BATCH: usize = 65_536;

fn policy(methods: &[&str], granularities: &[u64]) -> ArchivePolicy {
    RawArchivePolicy {
        name: "bench".into(),
        back_window: 0,
        definition: granularities
            .iter()
            .map(|&g| RawPolicyItem {
                granularity: Some(RawDuration::Seconds(g as f64)),
                points: Some(1000),
                timespan: None,
            })
            .collect(),
        aggregation_methods: Some(methods.iter().map(|m| m.to_string()).collect()),
    }
    .build()
    .unwrap()
}

fn engine(p: ArchivePolicy) -> RollupEngine {
    let rule = RawPolicyRule {
        name: "all".into(),
        metric_pattern: "*".into(),
        archive_policy_name: "bench".into(),
    };
    let rules = PolicyRules::new(&[rule], std::slice::from_ref(&p)).unwrap();
    RollupEngine::new(vec![p], rules)
}

fn series() -> Vec<WitSeries> {
    (0..SERIES)
        .map(|i| WitSeries {
            metric: format!("metric.{}", i % 50),
            resource_id: format!("host-{i}"),
            unit: "1".into(),
            type_: SampleType::Gauge,
            attributes: vec![],
        })
        .collect()
}

fn throughput(c: &mut Criterion) {
    let p = policy(
        &["mean", "min", "max", "sum", "std", "count"],
        &[60, 3600, 86400],
    );
    let series = series();
    // Each batch: every series gets ~6.5 samples, 10 s apart, after the
    // previous batch's.
    let index: Vec<u32> = (0..BATCH).map(|i| (i % SERIES) as u32).collect();
    let values: Vec<f64> = (0..BATCH).map(|i| (i % 97) as f64 * 0.5).collect();
    let mut g = c.benchmark_group("rollup");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(20);
    let timestamps = |round: i64| {
        let base = 1_700_000_000_000_000_000 + round * 7 * 10_000_000_000;
        (0..BATCH)
            .map(|i| base + (i / SERIES) as i64 * 10_000_000_000)
            .collect::<Vec<i64>>()
    };
    // Steady state: run a little over one day of the coarsest granularity
    // first, so every series' raw buffer has grown to its full size (one
    // day of measures) and been truncated once; a fresh engine would
    // measure the kernel zeroing new pages instead.
    let mut e = engine(p.clone());
    let mut round: i64 = 0;
    while round * 70 < 86_400 + 3_600 {
        round += 1;
        e.ingest_columns(&series, &index, &timestamps(round), &values);
        e.take_closed();
    }
    g.bench_function("10k_series_3_granularities_6_methods", |b| {
        b.iter_batched(
            || {
                round += 1;
                timestamps(round)
            },
            |ts| {
                e.ingest_columns(&series, &index, &ts, &values);
                e.take_closed()
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// Not timed: prints the archive's bytes per stored aggregate value.
fn density(_c: &mut Criterion) {
    let csv = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/nab/data/realKnownCause/machine_temperature_system_failure.csv"
    ))
    .unwrap();
    let (ts, vs): (Vec<i64>, Vec<f64>) = csv
        .lines()
        .skip(1)
        .map(|l| {
            let (t, v) = l.split_once(',').unwrap();
            let t = humantime::parse_rfc3339(&format!("{}Z", t.replace(' ', "T"))).unwrap();
            (
                t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64,
                v.parse::<f64>().unwrap(),
            )
        })
        .unzip();
    for (label, methods, grans) in [
        (
            "default methods, 5 min + 1 h",
            &["mean", "min", "max", "sum", "std", "count"][..],
            &[300u64, 3600][..],
        ),
        ("mean only, 5 min", &["mean"][..], &[300u64][..]),
    ] {
        let p = policy(methods, grans);
        let mut e = engine(p.clone());
        let s = vec![WitSeries {
            metric: "machine.temperature".into(),
            resource_id: "machine-1".into(),
            unit: "[degF]".into(),
            type_: SampleType::Gauge,
            attributes: vec![],
        }];
        e.ingest_columns(&s, &vec![0; ts.len()], &ts, &vs);
        e.advance(i64::MAX / 2);
        let dir = tempfile::tempdir().unwrap();
        let mut w = ArchiveWriter::new(dir.path(), vec![p.clone()].into(), BTreeMap::new());
        let mut values = 0usize;
        for (gi, rows) in e.take_closed().remove(0).into_iter().enumerate() {
            values += rows
                .rows
                .iter()
                .map(|r| r.values.iter().filter(|v| v.is_some()).count())
                .sum::<usize>();
            w.write(0, gi, &rows).unwrap();
            w.compact(0, gi, i64::MAX).unwrap();
        }
        let bytes: u64 = walk(dir.path());
        eprintln!(
            "archive density (NAB machine temperature, {label}): {bytes} bytes / {values} values = {:.3} bytes per stored aggregate value",
            bytes as f64 / values as f64
        );
    }
}

fn walk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p)
            } else {
                std::fs::metadata(&p).unwrap().len()
            }
        })
        .sum()
}

criterion_group!(benches, density, throughput);
criterion_main!(benches);

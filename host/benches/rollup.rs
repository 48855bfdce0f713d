//! Rollup throughput (samples/s through the engine with 3 granularities ×
//! 6 methods over 10,000 series), archive density (Parquet bytes per
//! stored aggregate value on NAB's machine temperature series) and the
//! write-ahead log's append rate.
//!
//! `cargo bench -p wasmeter --bench rollup`

#![allow(missing_docs)]

use std::collections::BTreeMap;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use parquet::file::reader::{FileReader, SerializedFileReader};
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
    lossy_policy(methods, granularities, None)
}

fn lossy_policy(
    methods: &[&str],
    granularities: &[u64],
    precision_bits: Option<u32>,
) -> ArchivePolicy {
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
        precision_bits,
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
        let base = 1_699_920_000_000_000_000 + round * 7 * 10_000_000_000;
        (0..BATCH)
            .map(|i| base + (i / SERIES) as i64 * 10_000_000_000)
            .collect::<Vec<i64>>()
    };
    // Steady state: from a day's start (2023-11-14 00:00 UTC), run a
    // little over one day of the coarsest granularity first, so every
    // series' raw buffer has grown to its full size (one day of measures)
    // and been truncated once; a fresh engine would measure the kernel
    // zeroing new pages instead.
    let mut e = engine(p.clone());
    let mut round: i64 = 0;
    while round * 70 < 86_400 + 3_600 {
        round += 1;
        e.ingest_columns(&series, &index, &timestamps(round), &values);
        let closed = e.take_closed();
        e.recycle(closed);
    }
    // Not timed by criterion: one whole day of event time (every hourly
    // and the daily close included, 1,235 batches), measured end to end.
    // Criterion's samples below each cover a few hundred batches, so
    // whether one holds the daily close swings them.
    let day_rounds = 86_400 / 70 + 1;
    let mut ts = timestamps(round);
    let start = std::time::Instant::now();
    for _ in 0..day_rounds {
        round += 1;
        let base = 1_699_920_000_000_000_000 + round * 7 * 10_000_000_000;
        for (i, t) in ts.iter_mut().enumerate() {
            *t = base + (i / SERIES) as i64 * 10_000_000_000;
        }
        e.ingest_columns(&series, &index, &ts, &values);
        let closed = e.take_closed();
        std::hint::black_box(&closed);
        e.recycle(closed);
    }
    let spent = start.elapsed();
    eprintln!(
        "rollup over one day of event time ({day_rounds} batches of {BATCH}, 10,000 series, 1 min + 1 h + 1 day, 6 methods): {:.1} M samples/s (timestamps written in place included)",
        (day_rounds * BATCH) as f64 / spent.as_secs_f64() / 1e6
    );
    g.bench_function("10k_series_3_granularities_6_methods", |b| {
        b.iter_custom(|iters| {
            let mut spent = std::time::Duration::ZERO;
            for _ in 0..iters {
                round += 1;
                let base = 1_699_920_000_000_000_000 + round * 7 * 10_000_000_000;
                for (i, t) in ts.iter_mut().enumerate() {
                    *t = base + (i / SERIES) as i64 * 10_000_000_000;
                }
                let start = std::time::Instant::now();
                // As the archive sink: take the closed rows, consume them,
                // give the buffers back.
                e.ingest_columns(&series, &index, &ts, &values);
                let closed = e.take_closed();
                std::hint::black_box(&closed);
                e.recycle(closed);
                spent += start.elapsed();
            }
            spent
        })
    });
    g.finish();
}

/// The write-ahead log's cost per batch in `wasmeter run`: one 64k-sample
/// batch of 10,000 series appended (Arrow IPC encode, flushed to the OS),
/// the log started anew every 64 batches as a checkpoint would.
fn wal_append(c: &mut Criterion) {
    let series = series();
    let batch = wasmeter::bindings::WitBatch {
        series_index: (0..BATCH).map(|i| (i % SERIES) as u32).collect(),
        timestamps: (0..BATCH as i64)
            .map(|i| 1_699_920_000_000_000_000 + i)
            .collect(),
        values: (0..BATCH).map(|i| (i % 97) as f64 * 0.5).collect(),
        series,
    };
    let samples = wasmeter::batch::Samples::from_wit(batch.clone()).unwrap();
    // The log's size per sample, without attributes and with two.
    for attributes in [vec![], vec![("cpu", "12"), ("mode", "user")]] {
        let mut batch = batch.clone();
        for s in &mut batch.series {
            s.attributes = attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        }
        let dir = tempfile::tempdir().unwrap();
        let mut wal = wasmeter::archive::wal::Wal::new(dir.path());
        let samples = wasmeter::batch::Samples::from_wit(batch).unwrap();
        wal.append(samples.batch()).unwrap();
        let bytes = std::fs::metadata(wal.path()).unwrap().len();
        eprintln!(
            "write-ahead log: {:.1} bytes per sample with attributes {attributes:?}",
            bytes as f64 / BATCH as f64
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let mut wal = wasmeter::archive::wal::Wal::new(dir.path());
    let mut g = c.benchmark_group("wal");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut appended = 0u64;
    g.bench_function("append_64k_samples_10k_series", |b| {
        b.iter(|| {
            appended += 1;
            if appended.is_multiple_of(64) {
                wal.reset().unwrap();
            }
            wal.append(samples.batch()).unwrap();
        })
    });
    g.finish();
}

/// One NAB series file: (ns timestamps, values).
fn nab_series(path: &std::path::Path) -> (Vec<i64>, Vec<f64>) {
    let csv = std::fs::read_to_string(path).unwrap();
    csv.lines()
        .skip(1)
        .map(|l| {
            let (t, v) = l.split_once(',').unwrap();
            let t = humantime::parse_rfc3339(&format!("{}Z", t.replace(' ', "T"))).unwrap();
            (
                t.duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64,
                v.parse::<f64>().unwrap(),
            )
        })
        .unzip()
}

fn nab_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            nab_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "csv") {
            out.push(p);
        }
    }
}

/// Not timed: prints the archive's bytes per stored aggregate value, and
/// how much of them is column data versus per-file overhead (footer,
/// page index, magic).
fn density(_c: &mut Criterion) {
    let nab = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/nab/data"
    ));
    let mut all = Vec::new();
    nab_files(nab, &mut all);
    all.sort();
    let machine: Vec<_> = all
        .iter()
        .filter(|p| p.ends_with("realKnownCause/machine_temperature_system_failure.csv"))
        .cloned()
        .collect();
    let default = &["mean", "min", "max", "sum", "std", "count"][..];
    for (label, files, methods, grans, bits) in [
        (
            "machine temperature, default methods, 5 min + 1 h",
            &machine,
            default,
            &[300u64, 3600][..],
            None,
        ),
        (
            "machine temperature, default methods, 5 min + 1 h, precision_bits 16",
            &machine,
            default,
            &[300u64, 3600][..],
            Some(16),
        ),
        (
            "machine temperature, default methods, 5 min + 1 h, precision_bits 12",
            &machine,
            default,
            &[300u64, 3600][..],
            Some(12),
        ),
        (
            "machine temperature, mean only, 5 min",
            &machine,
            &["mean"][..],
            &[300u64][..],
            None,
        ),
        (
            "all 12 series, default methods, 5 min + 1 h",
            &all,
            default,
            &[300u64, 3600][..],
            None,
        ),
        (
            "all 12 series, default methods, 5 min + 1 h, precision_bits 12",
            &all,
            default,
            &[300u64, 3600][..],
            Some(12),
        ),
    ] {
        let p = lossy_policy(methods, grans, bits);
        let mut e = engine(p.clone());
        for (i, f) in files.iter().enumerate() {
            let (ts, vs) = nab_series(f);
            let s = vec![WitSeries {
                metric: f.file_stem().unwrap().to_string_lossy().into_owned(),
                resource_id: format!("nab-{i}"),
                unit: "1".into(),
                type_: SampleType::Gauge,
                attributes: vec![],
            }];
            e.ingest_columns(&s, &vec![0; ts.len()], &ts, &vs);
        }
        e.advance(i64::MAX / 2);
        let dir = tempfile::tempdir().unwrap();
        let mut w = ArchiveWriter::new(dir.path(), vec![p.clone()].into(), BTreeMap::new());
        let mut values = 0usize;
        for (gi, rows) in e.take_closed().remove(0).into_iter().enumerate() {
            values += rows
                .iter()
                .map(|r| r.values().filter(|v| v.is_some()).count())
                .sum::<usize>();
            w.write(0, gi, &rows).unwrap();
            w.compact(0, gi, i64::MAX).unwrap();
        }
        let (mut bytes, mut data, mut n) = (0u64, 0u64, 0usize);
        walk(dir.path(), &mut |path| {
            bytes += std::fs::metadata(path).unwrap().len();
            let r = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
            data += r
                .metadata()
                .row_groups()
                .iter()
                .map(|g| g.compressed_size() as u64)
                .sum::<u64>();
            n += 1;
        });
        eprintln!(
            "archive density (NAB {label}): {bytes} bytes / {values} values = {:.3} bytes per stored aggregate value; column data {:.3} bytes per value, {} files with {:.0} bytes of overhead each",
            bytes as f64 / values as f64,
            data as f64 / values as f64,
            n,
            (bytes - data) as f64 / n as f64,
        );
    }
}

fn walk(dir: &std::path::Path, f: &mut impl FnMut(&std::path::Path)) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, f);
        } else {
            f(&p);
        }
    }
}

criterion_group!(benches, density, throughput, wal_append);
criterion_main!(benches);

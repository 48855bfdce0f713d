use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, TimestampMicrosecondType};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::FileReader;

use super::*;
use crate::rollup::policy::{RawArchivePolicy, RawDuration, RawPolicyItem};
use crate::rollup::{ClosedRow, SeriesInfo};

/// An hourly policy of 48 points named `name`, with these methods and
/// precision.
fn raw_policy(name: &str, methods: &[&str], precision_bits: Option<u32>) -> RawArchivePolicy {
    RawArchivePolicy {
        name: name.into(),
        back_window: 0,
        definition: vec![RawPolicyItem {
            granularity: Some(RawDuration::Seconds(3600.0)),
            points: Some(48),
            timespan: None,
        }],
        aggregation_methods: Some(methods.iter().map(|m| m.to_string()).collect()),
        precision_bits,
    }
}

fn policy_with_precision(bits: Option<u32>) -> ArchivePolicy {
    raw_policy("p", &["mean", "95pct", "rate:max"], bits)
        .build()
        .unwrap()
}

fn policy() -> ArchivePolicy {
    policy_with_precision(None)
}

fn row(metric: &str, resource: &str, ts_s: i64, v: f64) -> ClosedRow {
    ClosedRow {
        timestamp: ts_s * 1_000_000_000,
        series: Arc::new(SeriesInfo {
            metric: metric.into(),
            resource_id: resource.into(),
            unit: "B".into(),
            attributes: vec![("k".into(), "v".into())],
        }),
        values: vec![Some(v), None, Some(v * 2.0)],
    }
}

fn read(path: &Path) -> RecordBatch {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

/// 2014-01-01T00:00:00Z.
const T0: i64 = 1_388_534_400;

#[test]
fn layout_schema_order_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let p = policy();
    let mut plugins = BTreeMap::new();
    plugins.insert("host".to_string(), "sha256:ab".to_string());
    let mut w = ArchiveWriter::new(dir.path(), vec![p.clone()].into(), plugins);
    let rows = ClosedRows::from(vec![
        row("z.metric", "a", T0 + 3600, 3.0),
        row("a.metric", "b", T0 + 7200, 2.0),
        row("a.metric", "a", T0 + 3600, 1.0),
        row("a.metric", "a", T0 + 86400, 9.0), // the next day
    ]);
    let files = w.write(0, 0, &rows).unwrap();
    assert_eq!(files.len(), 2);
    let rel: Vec<String> = files
        .iter()
        .map(|f| {
            f.parent()
                .unwrap()
                .strip_prefix(dir.path())
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(
        rel,
        [
            "policy=p/granularity=3600/date=2014-01-01",
            "policy=p/granularity=3600/date=2014-01-02"
        ]
    );

    let b = read(&files[0]);
    let schema = b.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "timestamp",
            "granularity",
            "metric",
            "resource_id",
            "unit",
            "attributes",
            "mean",
            "pct95",
            "rate_max"
        ]
    );
    // Sorted by (metric, resource_id, timestamp).
    let ts: Vec<i64> = b
        .column(0)
        .as_primitive::<TimestampMicrosecondType>()
        .values()
        .to_vec();
    assert_eq!(
        ts,
        [
            (T0 + 3600) * 1_000_000,
            (T0 + 7200) * 1_000_000,
            (T0 + 3600) * 1_000_000
        ]
    );
    let mean: Vec<f64> = b.column(6).as_primitive::<Float64Type>().values().to_vec();
    assert_eq!(mean, [1.0, 2.0, 3.0]);
    assert_eq!(b.column(7).null_count(), 3);

    // Parquet-level: micros UTC timestamps, zstd, statistics, metadata.
    let file =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&files[0]).unwrap())
            .unwrap();
    let meta = file.metadata();
    let kv: BTreeMap<String, String> = meta
        .file_metadata()
        .key_value_metadata()
        .unwrap()
        .iter()
        .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
        .collect();
    assert_eq!(kv["wasmeter.plugins"], "host=sha256:ab");
    assert_eq!(
        kv["wasmeter.policy"],
        "p: back_window=0; 3600s×48; methods=mean,95pct,rate:max"
    );
    assert_eq!(kv["wasmeter.version"], env!("CARGO_PKG_VERSION"));
    let ts_col = meta.file_metadata().schema_descr().column(0);
    assert_eq!(
        format!("{:?}", ts_col.logical_type_ref()),
        "Some(Timestamp(TimestampType { is_adjusted_to_u_t_c: true, unit: MICROS }))"
    );
    let rg = meta.row_group(0);
    assert!(matches!(
        rg.column(0).compression(),
        parquet::basic::Compression::ZSTD(_)
    ));
    assert!(rg.column(2).statistics().is_some());
    assert!(
        rg.column(2).dictionary_page_offset().is_some(),
        "metric is dictionary-encoded"
    );
}

/// (timestamp, metric, mean) leaf columns of `path`'s first row group: whether each
/// has a column index and an offset index, and its chunk statistics' min.
fn page_indexes(path: &Path) -> Vec<(bool, bool, Option<Vec<u8>>)> {
    let r = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(path).unwrap())
        .unwrap();
    let rg = r.metadata().row_group(0);
    [0, 2, 7]
        .into_iter()
        .map(|i| {
            let c = rg.column(i);
            (
                c.column_index_offset().is_some(),
                c.offset_index_offset().is_some(),
                c.statistics()
                    .and_then(|s| s.min_bytes_opt().map(<[u8]>::to_vec)),
            )
        })
        .collect()
}

#[test]
fn a_file_of_one_page_per_column_has_chunk_statistics_and_no_page_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = ArchiveWriter::new(dir.path(), vec![policy()].into(), BTreeMap::new());
    let rows: Vec<ClosedRow> = (0..3).map(|h| row("m", "r", T0 + h * 3600, 1.5)).collect();
    let files = w.write(0, 0, &ClosedRows::from(rows)).unwrap();
    assert_eq!(
        page_indexes(&files[0]),
        [
            (false, false, Some((T0 * 1_000_000).to_le_bytes().to_vec())),
            (false, false, Some(b"m".to_vec())),
            (false, false, Some(1.5f64.to_le_bytes().to_vec())),
        ]
    );

    // One row more than a data page holds: page statistics on the
    // columns readers filter by, an offset index on every column.
    let n = DEFAULT_DATA_PAGE_ROW_COUNT_LIMIT + 1;
    let rows: Vec<ClosedRow> = (0..n)
        .map(|i| row(&format!("m{i:05}"), "r", T0, i as f64 + 1.0))
        .collect();
    let files = w.write(0, 0, &ClosedRows::from(rows)).unwrap();
    assert_eq!(
        page_indexes(&files[0]),
        [
            (true, true, Some((T0 * 1_000_000).to_le_bytes().to_vec())),
            (true, true, Some(b"m00000".to_vec())),
            (false, true, Some(1f64.to_le_bytes().to_vec())),
        ]
    );
    assert_eq!(read(&files[0]).num_rows(), n);
}

#[test]
fn compaction_merges_a_closed_partition_into_one_sorted_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = ArchiveWriter::new(dir.path(), vec![policy()].into(), BTreeMap::new());
    let part = two_files(&mut w, dir.path());
    assert_eq!(parquet_files(&part).unwrap().len(), 2);
    // Still open: nothing happens.
    assert!(
        w.compact(0, 0, T0 * 1_000_000_000 + 3_600_000_000_000)
            .unwrap()
            .is_empty()
    );
    let done = w.compact(0, 0, (T0 + 86400) * 1_000_000_000).unwrap();
    assert_eq!(done, std::slice::from_ref(&part));
    let files = parquet_files(&part).unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(
        means(&files[0]),
        [1.0, 2.0],
        "sorted by metric after compaction"
    );
}

/// Two one-row files of partition 2014-01-01 (metrics b then a), and the
/// partition's folder.
fn two_files(w: &mut ArchiveWriter, root: &Path) -> PathBuf {
    w.write(0, 0, &ClosedRows::from(vec![row("b", "r", T0, 2.0)]))
        .unwrap();
    w.write(0, 0, &ClosedRows::from(vec![row("a", "r", T0 + 3600, 1.0)]))
        .unwrap();
    root.join("policy=p/granularity=3600/date=2014-01-01")
}

/// Every file of `dir`, hidden ones too, by name.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn means(file: &Path) -> Vec<f64> {
    let b = read(file);
    b.column(6).as_primitive::<Float64Type>().values().to_vec()
}

#[test]
fn a_compaction_a_crash_cut_short_at_any_step_is_finished_without_a_row_lost_or_doubled() {
    let closed = (T0 + 86400) * 1_000_000_000;
    for step in 1..=3 {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ArchiveWriter::new(dir.path(), vec![policy()].into(), BTreeMap::new());
        let part = two_files(&mut w, dir.path());
        w.crash_after = Some(step);
        // The failure is logged; the partition is left to the next pass.
        assert!(w.compact(0, 0, closed).unwrap().is_empty(), "step {step}");
        let journals = listing(&part)
            .into_iter()
            .filter(|n| n.ends_with(".compaction"))
            .count();
        assert_eq!(journals, 1, "step {step}: {:?}", listing(&part));
        // A late file came since; then a restart finishes what was cut
        // short, and the next compaction merges what is left.
        w.write(0, 0, &ClosedRows::from(vec![row("c", "r", T0 + 7200, 3.0)]))
            .unwrap();
        assert_eq!(finish_compactions(dir.path()).unwrap(), 1, "step {step}");
        // Step 1: the two inputs and the late file; later: the new file and
        // the late file.
        let want_files = if step == 1 { 3 } else { 2 };
        assert_eq!(
            listing(&part).len(),
            want_files,
            "step {step}: {:?}",
            listing(&part)
        );
        let mut w = ArchiveWriter::new(dir.path(), vec![policy()].into(), BTreeMap::new());
        assert_eq!(
            w.compact(0, 0, closed).unwrap(),
            std::slice::from_ref(&part)
        );
        let files = parquet_files(&part).unwrap();
        assert_eq!(listing(&part).len(), 1, "step {step}: {:?}", listing(&part));
        assert_eq!(
            means(&files[0]),
            [1.0, 2.0, 3.0],
            "step {step}: each row once"
        );
    }
}

#[test]
fn a_compaction_cut_short_before_its_rename_keeps_its_inputs_and_is_done_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = ArchiveWriter::new(dir.path(), vec![policy()].into(), BTreeMap::new());
    let part = two_files(&mut w, dir.path());
    let inputs = listing(&part);
    // The journal and part of the new file were written, no more.
    let name = "compacted-1388534400000000-0123456789ab-1.parquet";
    let journal = format!("{name}\n{}", inputs.join("\n"));
    std::fs::write(part.join(format!(".{name}.compaction")), journal).unwrap();
    std::fs::write(part.join(format!(".{name}.tmp")), b"PAR1").unwrap();
    let closed = (T0 + 86400) * 1_000_000_000;
    assert_eq!(
        w.compact(0, 0, closed).unwrap(),
        std::slice::from_ref(&part)
    );
    let files = parquet_files(&part).unwrap();
    assert_eq!(listing(&part).len(), 1, "{:?}", listing(&part));
    assert_eq!(means(&files[0]), [1.0, 2.0]);
}

#[test]
fn retention_removes_partitions_past_the_timespan() {
    let dir = tempfile::tempdir().unwrap();
    let w = ArchiveWriter::new(dir.path(), vec![policy()].into(), BTreeMap::new());
    let mut w = w;
    // Three days of rows; the policy keeps 48 h.
    for day in 0..3 {
        w.write(
            0,
            0,
            &ClosedRows::from(vec![row("m", "r", T0 + day * 86400, 1.0)]),
        )
        .unwrap();
    }
    let now = (T0 + 3 * 86400) * 1_000_000_000; // 2014-01-04T00:00Z
    let removed = w.apply_retention(now).unwrap();
    assert_eq!(removed.len(), 1);
    assert!(removed[0].ends_with("date=2014-01-01"));
    assert!(
        dir.path()
            .join("policy=p/granularity=3600/date=2014-01-02")
            .exists()
    );
}

#[test]
fn dates_are_utc() {
    assert_eq!(date_of(T0 * 1_000_000_000 - 1), "2013-12-31");
    assert_eq!(date_of(T0 * 1_000_000_000), "2014-01-01");
    assert_eq!(date_start("2014-01-01"), Some(T0 * 1_000_000_000));
}

#[test]
fn rows_alternating_between_days_go_to_their_day_sorted() {
    // The engine's order when many series close two days at once: per
    // series, day 0 then day 1.
    let dir = tempfile::tempdir().unwrap();
    let mut w = ArchiveWriter::new(dir.path(), vec![policy()].into(), BTreeMap::new());
    let rows = ClosedRows::from(vec![
        row("m", "b", T0 + 3600, 1.0),
        row("m", "b", T0 + 86400 + 3600, 2.0),
        row("m", "a", T0 + 7200, 3.0),
        row("m", "a", T0 + 86400, 4.0),
        row("m", "a", T0 + 86400 + 7200, 5.0),
    ]);
    let files = w.write(0, 0, &rows).unwrap();
    assert_eq!(files.len(), 2);
    let got: Vec<(String, Vec<String>, Vec<f64>)> = files
        .iter()
        .map(|f| {
            let b = read(f);
            let r = b.column(3).as_dictionary::<arrow::datatypes::Int32Type>();
            let names = r.values().as_string::<i32>();
            let resources = r
                .keys()
                .iter()
                .map(|k| names.value(k.unwrap() as usize).to_string());
            (
                f.parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                resources.collect(),
                b.column(6).as_primitive::<Float64Type>().values().to_vec(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "date=2014-01-01".into(),
                vec!["a".into(), "b".into()],
                vec![3.0, 1.0]
            ),
            (
                "date=2014-01-02".into(),
                vec!["a".into(), "a".into(), "b".into()],
                vec![4.0, 5.0, 2.0]
            ),
        ]
    );
}

#[test]
fn rows_of_another_width_than_the_policy_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = ArchiveWriter::new(dir.path(), vec![policy()].into(), BTreeMap::new());
    let mut narrow = row("m", "a", T0, 1.0);
    narrow.values.pop();
    let err = w.write(0, 0, &ClosedRows::from(vec![narrow])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "policy p: closed rows with 2 values for 3 aggregation methods"
    );
}

// Expected values computed independently with Python's `fractions` (the
// significand from `math.frexp`, scaled by 2^(bits+1), rounded half away
// from zero).
#[test]
fn rounding_to_precision_bits_matches_exact_arithmetic() {
    let cases: [(f64, u32, u64); 7] = [
        (73.967_322_07, 12, 0x4052_7e00_0000_0000), // 73.96875
        (74.935_881_999_999_98, 12, 0x4052_bc00_0000_0000), // 74.9375
        (73.967_322_07, 1, 0x4050_0000_0000_0000),  // 64
        (0.1, 23, 0x3fb9_9999_a000_0000),           // 0.10000000149011612
        (-2.5e-300, 8, 0x81ba_d000_0000_0000),
        (8193.0, 12, 0x40c0_0100_0000_0000), // 8194: a tie rounds away from zero
        (1e10 + 0.37, 20, 0x4202_a05f_0000_0000), // 9999998976
    ];
    for (x, bits, want) in cases {
        let got = round_to_precision(x, bits);
        assert_eq!(got.to_bits(), want, "{x} at {bits} bits gave {got}");
        assert_eq!(round_to_precision(-x, bits), -got, "{x}: sign symmetric");
    }
}

#[test]
fn rounding_keeps_special_values_and_never_overflows() {
    let nan = f64::from_bits(0x7ff8_0000_dead_beef);
    assert_eq!(round_to_precision(nan, 4).to_bits(), nan.to_bits());
    assert_eq!(round_to_precision(f64::INFINITY, 4), f64::INFINITY);
    assert_eq!(round_to_precision(f64::NEG_INFINITY, 4), f64::NEG_INFINITY);
    assert_eq!(round_to_precision(-0.0, 4).to_bits(), (-0.0f64).to_bits());
    assert_eq!(round_to_precision(0.0, 4).to_bits(), 0);
    // The largest finite value would round up to infinity: truncated.
    let max = round_to_precision(f64::MAX, 12);
    assert_eq!(max.to_bits(), 0x7fef_ff00_0000_0000);
    assert_eq!(round_to_precision(f64::MIN, 12), -max);
    // 52 bits is every bit: the value itself.
    let x = 73.967_322_07;
    assert_eq!(round_to_precision(x, 52).to_bits(), x.to_bits());
    // Subnormals round like the rest: the smallest one, a tie at 51 bits,
    // goes up to twice itself, and below that to zero.
    let tiny = f64::from_bits(1);
    assert_eq!(round_to_precision(tiny, 51), tiny * 2.0);
    assert_eq!(round_to_precision(tiny, 50), 0.0);
}

/// The documented bound, `|r − x| ≤ 2^-(bits+1) |x|`, and idempotence, over
/// every value of NAB's machine temperature series.
#[test]
fn rounding_error_is_within_half_a_unit_of_the_last_kept_bit_on_nab() {
    let csv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/nab/data/realKnownCause/machine_temperature_system_failure.csv"
    );
    let mut reader = csv::Reader::from_path(csv).unwrap();
    let values: Vec<f64> = reader
        .records()
        .map(|r| r.unwrap()[1].parse().unwrap())
        .collect();
    assert_eq!(values.len(), 22_695);
    for bits in [1, 8, 12, 16, 23, 51] {
        let bound = 2f64.powi(-(bits as i32 + 1));
        for &x in &values {
            let r = round_to_precision(x, bits);
            assert!((r - x).abs() <= bound * x.abs(), "{x} at {bits} bits: {r}");
            assert_eq!(round_to_precision(r, bits), r, "{x} at {bits} bits twice");
            assert_eq!(r.to_bits() & ((1u64 << (52 - bits)) - 1), 0);
        }
    }
}

#[test]
fn a_policy_with_precision_bits_stores_rounded_values_but_exact_counts() {
    let p = raw_policy("lossy", &["mean", "count", "rate:count"], Some(12))
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut w = ArchiveWriter::new(dir.path(), vec![p].into(), BTreeMap::new());
    let series = Arc::new(SeriesInfo {
        metric: "machine.temperature".into(),
        resource_id: "m-1".into(),
        unit: "[degF]".into(),
        attributes: vec![],
    });
    let rows = ClosedRows::from(vec![ClosedRow {
        timestamp: T0 * 1_000_000_000,
        series,
        values: vec![Some(73.967_322_07), Some(8193.0), Some(8193.0)],
    }]);
    let files = w.write(0, 0, &rows).unwrap();
    let b = read(&files[0]);
    let col = |name: &str| {
        b.column_by_name(name)
            .unwrap()
            .as_primitive::<Float64Type>()
            .value(0)
    };
    assert_eq!(col("mean"), 73.968_75);
    assert_eq!(col("count"), 8193.0);
    assert_eq!(col("rate_count"), 8193.0);
    assert_eq!(meta_value(&files[0], PRECISION_KEY).as_deref(), Some("12"));
    assert_eq!(
        meta_value(&files[0], "wasmeter.policy").as_deref(),
        Some("lossy: back_window=0; 3600s×48; methods=mean,count,rate:count")
    );
}

fn meta_value(path: &Path, key: &str) -> Option<String> {
    let r = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(path).unwrap())
        .unwrap();
    let kv = r.metadata().file_metadata().key_value_metadata()?.clone();
    kv.into_iter().find(|kv| kv.key == key)?.value
}

#[test]
fn rounding_carries_into_the_exponent_and_keeps_nulls() {
    // 2 − 2^-52 rounds up to 2; the largest subnormal up to the smallest
    // normal.
    assert_eq!(
        round_to_precision(2.0 - f64::EPSILON, 12).to_bits(),
        0x4000_0000_0000_0000
    );
    assert_eq!(
        round_to_precision(f64::from_bits(0x000f_ffff_ffff_ffff), 12),
        f64::MIN_POSITIVE
    );
    // A missing point stays missing in a rounded column.
    let dir = tempfile::tempdir().unwrap();
    let mut w = ArchiveWriter::new(
        dir.path(),
        vec![policy_with_precision(Some(8))].into(),
        BTreeMap::new(),
    );
    let rows = ClosedRows::from(vec![row("m", "a", T0, 1.0 + 2f64.powi(-9))]);
    let b = read(&w.write(0, 0, &rows).unwrap()[0]);
    let value = |c: usize| b.column(c).as_primitive::<Float64Type>().value(0);
    // mean: 1 + 2^-9 is a tie at 8 bits, up to 1 + 2^-8; rate_max (twice
    // the value) likewise, up to 2 + 2^-7.
    assert_eq!(value(6), 1.0 + 2f64.powi(-8));
    assert_eq!(b.column(7).null_count(), 1);
    assert_eq!(value(8), 2.0 + 2f64.powi(-7));
}

#[test]
fn precision_bits_52_is_exact_and_not_labelled() {
    assert_eq!(policy_with_precision(Some(52)).precision_bits, None);
    let dir = tempfile::tempdir().unwrap();
    let mut w = ArchiveWriter::new(
        dir.path(),
        vec![policy_with_precision(Some(52))].into(),
        BTreeMap::new(),
    );
    let files = w
        .write(0, 0, &ClosedRows::from(vec![row("m", "a", T0, 0.1)]))
        .unwrap();
    assert_eq!(meta_value(&files[0], PRECISION_KEY), None);
    let b = read(&files[0]);
    assert_eq!(b.column(6).as_primitive::<Float64Type>().value(0), 0.1);
}

/// A reload makes a new writer (its file sequence starts again) and may
/// change the precision: files of one partition then differ, and their
/// names never coincide.
#[test]
fn writers_after_a_reload_never_overwrite_and_compaction_keeps_the_coarsest_precision() {
    let dir = tempfile::tempdir().unwrap();
    let writer = |bits| {
        ArchiveWriter::new(
            dir.path(),
            vec![policy_with_precision(bits)].into(),
            BTreeMap::new(),
        )
    };
    let mut written = Vec::new();
    for (bits, resource) in [(Some(16), "a"), (Some(12), "b"), (None, "c")] {
        // Same first timestamp, same sequence number each time.
        let rows = ClosedRows::from(vec![row("m", resource, T0, 1.0)]);
        written.extend(writer(bits).write(0, 0, &rows).unwrap());
    }
    let names: std::collections::BTreeSet<_> = written.iter().collect();
    assert_eq!(names.len(), 3, "{written:?}");
    assert!(written.iter().all(|f| f.exists()));

    let done = writer(None).compact(0, 0, i64::MAX).unwrap();
    assert_eq!(done.len(), 1);
    let resources = |dir: &Path| -> (Vec<String>, Option<String>) {
        let files = parquet_files(dir).unwrap();
        assert_eq!(files.len(), 1, "{files:?}");
        let b = read(&files[0]);
        let r = b
            .column(3)
            .as_dictionary::<arrow::datatypes::Int32Type>()
            .downcast_dict::<arrow::array::StringArray>()
            .unwrap();
        (
            r.into_iter().map(|v| v.unwrap().to_owned()).collect(),
            meta_value(&files[0], PRECISION_KEY),
        )
    };
    assert_eq!(
        resources(&done[0]),
        (vec!["a".into(), "b".into(), "c".into()], Some("12".into()))
    );

    // A late file, and a second compaction by yet another writer, whose
    // sequence starts again: the late file is merged, not taken for an
    // input of the first compaction (its name is new).
    let rows = ClosedRows::from(vec![row("m", "d", T0, 1.0)]);
    writer(None).write(0, 0, &rows).unwrap();
    writer(None).compact(0, 0, i64::MAX).unwrap();
    assert_eq!(
        resources(&done[0]),
        (
            vec!["a".into(), "b".into(), "c".into(), "d".into()],
            Some("12".into())
        )
    );
}

#[test]
fn precision_bits_outside_1_to_52_are_refused() {
    for bits in [0, 53] {
        let err = raw_policy("p", &["mean"], Some(bits)).build().unwrap_err();
        assert_eq!(
            err,
            [(
                "precision_bits".to_string(),
                format!(
                    "must be 1 to 52 (bits kept of a value's 52-bit binary fraction; 52 or no precision_bits keeps values exact), got {bits}"
                )
            )]
        );
    }
}

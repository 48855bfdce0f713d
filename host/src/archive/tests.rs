use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, TimestampMicrosecondType};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::FileReader;

use super::*;
use crate::rollup::policy::{RawArchivePolicy, RawDuration, RawPolicyItem};
use crate::rollup::{ClosedRow, SeriesInfo};

fn policy() -> ArchivePolicy {
    RawArchivePolicy {
        name: "p".into(),
        back_window: 0,
        definition: vec![RawPolicyItem {
            granularity: Some(RawDuration::Seconds(3600.0)),
            points: Some(48),
            timespan: None,
        }],
        aggregation_methods: Some(vec!["mean".into(), "95pct".into(), "rate:max".into()]),
    }
    .build()
    .unwrap()
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

#[test]
fn compaction_merges_a_closed_partition_into_one_sorted_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = ArchiveWriter::new(dir.path(), vec![policy()].into(), BTreeMap::new());
    w.write(0, 0, &ClosedRows::from(vec![row("b", "r", T0, 2.0)]))
        .unwrap();
    w.write(0, 0, &ClosedRows::from(vec![row("a", "r", T0 + 3600, 1.0)]))
        .unwrap();
    let part = dir.path().join("policy=p/granularity=3600/date=2014-01-01");
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
    let b = read(&files[0]);
    let mean: Vec<f64> = b.column(6).as_primitive::<Float64Type>().values().to_vec();
    assert_eq!(mean, [1.0, 2.0], "sorted by metric after compaction");
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

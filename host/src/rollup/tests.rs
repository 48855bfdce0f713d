//! Every worked example of reference §1.3 and §1.4, with exact values.

// Reference values are quoted digit for digit.
#![allow(clippy::excessive_precision, clippy::approx_constant)]

use super::policy::{RawArchivePolicy, RawDuration, RawPolicyItem, RawPolicyRule};
use super::*;
use crate::bindings::{SampleType, WitSeries};

/// 2014-01-01T00:00:00Z in ns.
const DAY: i64 = 1_388_534_400 * 1_000_000_000;

/// `"12:01:30"` on 2014-01-01, in ns.
fn at(hms: &str) -> i64 {
    let p: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    DAY + (p[0] * 3600 + p[1] * 60 + p[2]) * 1_000_000_000
}

fn policy(items: &[(u64, Option<u64>)], back_window: u64, methods: &[&str]) -> ArchivePolicy {
    RawArchivePolicy {
        name: "test".into(),
        back_window,
        definition: items
            .iter()
            .map(|&(g, p)| RawPolicyItem {
                granularity: Some(RawDuration::Seconds(g as f64)),
                points: p,
                timespan: None,
            })
            .collect(),
        aggregation_methods: Some(methods.iter().map(|m| m.to_string()).collect()),
        precision_bits: None,
    }
    .build()
    .unwrap()
}

fn engine(p: ArchivePolicy) -> RollupEngine {
    let rules = PolicyRules::new(
        &[RawPolicyRule {
            name: "all".into(),
            metric_pattern: "*".into(),
            archive_policy_name: "test".into(),
        }],
        std::slice::from_ref(&p),
    )
    .unwrap();
    RollupEngine::new(vec![p], rules)
}

fn series() -> Vec<WitSeries> {
    vec![WitSeries {
        metric: "m".into(),
        resource_id: "r".into(),
        unit: "1".into(),
        type_: SampleType::Gauge,
        attributes: vec![],
    }]
}

/// One ingestion pass with `(time, value)` measures of series m/r.
fn ingest(e: &mut RollupEngine, measures: &[(&str, f64)]) {
    let idx = vec![0u32; measures.len()];
    let ts: Vec<i64> = measures.iter().map(|m| at(m.0)).collect();
    let vs: Vec<f64> = measures.iter().map(|m| m.1).collect();
    e.ingest_columns(&series(), &idx, &ts, &vs);
}

/// Closes everything and returns, per granularity index, the rows as
/// (bucket "HH:MM:SS", values).
fn close_all(e: &mut RollupEngine) -> Vec<Vec<(String, Vec<Option<f64>>)>> {
    e.advance(i64::MAX / 2);
    e.take_closed()
        .remove(0)
        .into_iter()
        .map(|rows| {
            rows.to_rows()
                .into_iter()
                .map(|r| {
                    let s = (r.timestamp - DAY) / 1_000_000_000;
                    (
                        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60),
                        r.values,
                    )
                })
                .collect()
        })
        .collect()
}

/// The column of method `m` from rows.
fn column(p: &ArchivePolicy, rows: &[(String, Vec<Option<f64>>)], m: &str) -> Vec<Option<f64>> {
    let i = p
        .aggregation_methods
        .iter()
        .position(|x| x.to_string() == m)
        .unwrap_or_else(|| panic!("{m} not in the policy"));
    rows.iter().map(|r| r.1[i]).collect()
}

fn some(v: &[f64]) -> Vec<Option<f64>> {
    v.iter().map(|x| Some(*x)).collect()
}

#[test]
fn example_a_thirteen_measures() {
    let methods = [
        "first", "last", "count", "sum", "mean", "median", "50pct", "56pct", "min", "max", "std",
    ];
    let p = policy(&[(60, None)], 0, &methods);
    let mut e = engine(p.clone());
    ingest(
        &mut e,
        &[
            ("12:00:00", 3.0),
            ("12:00:10", 5.0),
            ("12:00:20", 2.0),
            ("12:00:30", 3.0),
            ("12:00:40", 5.0),
            ("12:01:00", 8.0),
            ("12:01:10", 11.0),
            ("12:01:20", 22.0),
            ("12:01:30", 10.0),
            ("12:01:40", 42.0),
            ("12:01:50", 9.0),
            ("12:02:00", 4.0),
            ("12:02:10", 2.0),
        ],
    );
    let rows = &close_all(&mut e)[0];
    let buckets: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(buckets, ["12:00:00", "12:01:00", "12:02:00"]);
    assert_eq!(column(&p, rows, "first"), some(&[3.0, 8.0, 4.0]));
    assert_eq!(column(&p, rows, "last"), some(&[5.0, 9.0, 2.0]));
    assert_eq!(column(&p, rows, "count"), some(&[5.0, 6.0, 2.0]));
    assert_eq!(column(&p, rows, "sum"), some(&[18.0, 102.0, 6.0]));
    assert_eq!(column(&p, rows, "mean"), some(&[3.6, 17.0, 3.0]));
    assert_eq!(column(&p, rows, "median"), some(&[3.0, 10.5, 3.0]));
    assert_eq!(column(&p, rows, "50pct"), some(&[3.0, 10.5, 3.0]));
    // The reference prints 3.48 rounded; NumPy's linear percentile (run
    // independently: numpy.percentile([2, 3, 3, 5, 5], 56)) gives
    // 3.4800000000000004, and so do we.
    assert_eq!(
        column(&p, rows, "56pct"),
        some(&[3.4800000000000004, 10.8, 3.12])
    );
    assert_eq!(column(&p, rows, "min"), some(&[2.0, 8.0, 2.0]));
    assert_eq!(column(&p, rows, "max"), some(&[5.0, 42.0, 4.0]));
    assert_eq!(
        column(&p, rows, "std"),
        some(&[1.3416407864998738, 13.266499161421599, 1.4142135623730951])
    );
}

#[test]
fn example_b_percentiles() {
    let p = policy(&[(60, None)], 0, &["74pct", "95pct"]);
    let mut e = engine(p.clone());
    ingest(
        &mut e,
        &[("12:00:00", 3.0), ("12:00:10", 5.0), ("12:00:20", 6.0)],
    );
    let rows = &close_all(&mut e)[0];
    assert_eq!(column(&p, rows, "74pct"), some(&[5.48]));
    assert_eq!(column(&p, rows, "95pct"), some(&[5.9]));
}

#[test]
fn example_c_std_of_one_point_is_no_point() {
    let p = policy(&[(60, None)], 0, &["std"]);
    let mut e = engine(p.clone());
    ingest(
        &mut e,
        &[
            ("12:00:00", 3.0),
            ("12:00:04", 6.0),
            ("12:00:09", 5.0),
            ("12:01:06", 9.0),
        ],
    );
    let rows = &close_all(&mut e)[0];
    assert_eq!(
        column(&p, rows, "std"),
        vec![Some(1.5275252316519465), None]
    );
}

#[test]
fn example_d_rate_with_a_counter_reset() {
    let p = policy(&[(60, None)], 0, &["rate:mean", "rate:last", "rate:sum"]);
    let mut e = engine(p.clone());
    ingest(
        &mut e,
        &[
            ("12:00:00", 50.0),
            ("12:00:04", 55.0),
            ("12:01:02", 65.0),
            ("12:01:14", 66.0),
            ("12:01:24", 70.0),
            ("12:02:04", 83.0),
            ("12:02:35", 92.0),
            ("12:02:42", 103.0),
            ("12:03:02", 105.0),
            ("12:03:22", 5.0),
            ("12:03:42", 7.0),
            ("12:04:09", 23.0),
        ],
    );
    let rows = &close_all(&mut e)[0];
    assert_eq!(rows.len(), 5);
    assert_eq!(
        column(&p, rows, "rate:mean"),
        some(&[5.0, 5.0, 11.0, -32.0, 16.0])
    );
    assert_eq!(
        column(&p, rows, "rate:last"),
        some(&[5.0, 4.0, 11.0, 2.0, 16.0])
    );
    assert_eq!(
        column(&p, rows, "rate:sum"),
        some(&[5.0, 15.0, 33.0, -96.0, 16.0])
    );
}

#[test]
fn example_d_holds_when_measures_arrive_one_by_one() {
    // The same input in 12 passes: the predecessor survives bucket closing.
    let p = policy(&[(60, None)], 0, &["rate:mean"]);
    let mut e = engine(p.clone());
    for m in [
        ("12:00:00", 50.0),
        ("12:00:04", 55.0),
        ("12:01:02", 65.0),
        ("12:01:14", 66.0),
        ("12:01:24", 70.0),
        ("12:02:04", 83.0),
        ("12:02:35", 92.0),
        ("12:02:42", 103.0),
        ("12:03:02", 105.0),
        ("12:03:22", 5.0),
        ("12:03:42", 7.0),
        ("12:04:09", 23.0),
    ] {
        ingest(&mut e, &[m]);
    }
    let rows = &close_all(&mut e)[0];
    assert_eq!(
        column(&p, rows, "rate:mean"),
        some(&[5.0, 5.0, 11.0, -32.0, 16.0])
    );
}

#[test]
fn example_e_rate_last_with_a_gap() {
    let p = policy(&[(60, None)], 0, &["rate:last"]);
    let mut e = engine(p.clone());
    ingest(
        &mut e,
        &[
            ("12:00:00", 50.0),
            ("12:00:10", 55.0),
            ("12:01:00", 65.0),
            ("12:01:10", 66.0),
            ("12:01:20", 70.0),
            ("12:03:00", 105.0),
            ("12:03:10", 108.0),
            ("12:03:20", 200.0),
            ("12:04:09", 202.0),
        ],
    );
    let rows = &close_all(&mut e)[0];
    let buckets: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(buckets, ["12:00:00", "12:01:00", "12:03:00", "12:04:00"]);
    assert_eq!(column(&p, rows, "rate:last"), some(&[5.0, 4.0, 92.0, 2.0]));
}

#[test]
fn example_f_retention() {
    let p = policy(&[(60, Some(3)), (300, Some(2))], 0, &["mean"]);
    let mut e = engine(p.clone());
    let measures: Vec<(String, f64)> = (0..10)
        .map(|i| (format!("12:{i:02}:30"), i as f64))
        .collect();
    let refs: Vec<(&str, f64)> = measures.iter().map(|(t, v)| (t.as_str(), *v)).collect();
    ingest(&mut e, &refs);
    e.advance(i64::MAX / 2);
    let closed = e.take_closed().remove(0);
    let mut by_g = Vec::new();
    for (gi, item) in p.definition.iter().enumerate() {
        let rows = &mut closed[gi].to_rows();
        retain(rows, item.timespan().unwrap().as_nanos() as i64);
        by_g.push(
            rows.iter()
                .map(|r| ((r.timestamp - DAY) / 60_000_000_000, r.values[0]))
                .collect::<Vec<_>>(),
        );
    }
    // Minutes after midnight: 12:07 = 727.
    assert_eq!(
        by_g[0],
        vec![(727, Some(7.0)), (728, Some(8.0)), (729, Some(9.0))]
    );
    assert_eq!(by_g[1], vec![(720, Some(2.0)), (725, Some(7.0))]);
}

#[test]
fn late_data_is_refused_and_counted() {
    // §1.3: 60 s and 1 s buckets, sum and count, back_window 0.
    let p = policy(&[(1, None), (60, None)], 0, &["sum", "count"]);
    let mut e = engine(p.clone());
    ingest(&mut e, &[("12:00:05", 1.0), ("12:01:30", 1.0)]);
    ingest(&mut e, &[("12:00:59", 100.0), ("12:01:00", 10.0)]);
    let rows = &close_all(&mut e)[1];
    assert_eq!(column(&p, rows, "sum"), some(&[1.0, 11.0]));
    assert_eq!(column(&p, rows, "count"), some(&[1.0, 2.0]));
    assert_eq!(e.report().late.get("m"), Some(&1));
    assert_eq!(e.report().accepted, 3);

    // back_window 1: the cutoff is 12:00:00, 12:00:59 is accepted, and a
    // point at 11:59:59 is still refused.
    let p = policy(&[(1, None), (60, None)], 1, &["sum", "count"]);
    let mut e = engine(p.clone());
    ingest(&mut e, &[("12:00:05", 1.0), ("12:01:30", 1.0)]);
    ingest(
        &mut e,
        &[
            ("12:00:59", 100.0),
            ("12:01:00", 10.0),
            ("11:59:59", 1000.0),
        ],
    );
    let rows = &close_all(&mut e)[1];
    assert_eq!(column(&p, rows, "sum"), some(&[101.0, 11.0]));
    assert_eq!(e.report().late.get("m"), Some(&1));
}

#[test]
fn the_cutoff_comes_from_stored_state_not_the_batch() {
    // [checked]: one batch spanning hours is accepted whole; the next
    // batch's 11:00 is behind the cutoff, 12:00:30 and 14:00 are kept.
    let p = policy(&[(60, None)], 0, &["count"]);
    let mut e = engine(p.clone());
    ingest(&mut e, &[("10:00:00", 1.0), ("12:00:05", 1.0)]);
    ingest(
        &mut e,
        &[("11:00:00", 1.0), ("12:00:30", 1.0), ("14:00:00", 1.0)],
    );
    let rows = &close_all(&mut e)[0];
    let got: Vec<(&str, Option<f64>)> = rows.iter().map(|r| (r.0.as_str(), r.1[0])).collect();
    assert_eq!(
        got,
        [
            ("10:00:00", Some(1.0)),
            ("12:00:00", Some(2.0)),
            ("14:00:00", Some(1.0))
        ]
    );
    assert_eq!(e.report().late.get("m"), Some(&1));
}

#[test]
fn duplicates_within_a_batch_keep_the_smallest_across_batches_the_latest() {
    let p = policy(&[(60, None)], 0, &["last", "count"]);
    let mut e = engine(p.clone());
    ingest(
        &mut e,
        &[
            ("12:00:00", 9.0),
            ("12:00:00", 8.0),
            ("12:00:00", 7.0),
            ("12:00:00", 4.0),
        ],
    );
    let rows = &close_all(&mut e)[0];
    assert_eq!(column(&p, rows, "last"), some(&[4.0]));
    assert_eq!(column(&p, rows, "count"), some(&[1.0]));
    let mut e = engine(p.clone());
    for v in [5.0, 2.0, 9.0] {
        ingest(&mut e, &[("12:00:00", v)]);
    }
    let rows = &close_all(&mut e)[0];
    assert_eq!(column(&p, rows, "last"), some(&[9.0]));
    assert_eq!(column(&p, rows, "count"), some(&[1.0]));
}

#[test]
fn seven_day_buckets_start_on_thursdays() {
    let p = policy(&[(7 * 86400, None)], 0, &["count"]);
    let mut e = engine(p);
    ingest(&mut e, &[("00:00:00", 1.0)]);
    e.advance(i64::MAX / 2);
    let rows = e.take_closed().remove(0).remove(0).to_rows();
    // 2014-01-01 falls in the bucket of Thursday 2013-12-26.
    assert_eq!(rows[0].timestamp, 1_388_016_000 * 1_000_000_000);
}

/// An engine for `p` that has seen the measures the restart tests save:
/// 12:00:00 1, 12:00:10 3, 12:01:00 10, 12:02:05 4.
fn engine_with_restart_measures(p: ArchivePolicy) -> RollupEngine {
    let mut e = engine(p);
    ingest(
        &mut e,
        &[
            ("12:00:00", 1.0),
            ("12:00:10", 3.0),
            ("12:01:00", 10.0),
            ("12:02:05", 4.0),
        ],
    );
    e
}

#[test]
fn open_buckets_survive_a_restart() {
    let p = policy(&[(60, None)], 0, &["mean", "count", "rate:sum", "max"]);
    let dir = tempfile::tempdir().unwrap();
    let mut first = engine_with_restart_measures(p.clone());
    // rate:sum keeps one more block: the cutoff is 12:01, only 12:00 closes.
    let closed = first.take_closed().remove(0).remove(0).to_rows();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].values, some(&[2.0, 2.0, 3.0, 2.0]));
    first.save_state(dir.path()).unwrap();
    drop(first);

    let mut second = engine(p.clone());
    assert_eq!(second.load_state(dir.path()).unwrap(), 1);
    ingest(
        &mut second,
        &[("12:01:30", 20.0), ("12:00:30", 99.0), ("12:02:10", 6.0)],
    );
    let rows = &close_all(&mut second)[0];
    // One row per bucket, with the measures from both sides of the restart;
    // 12:00:30 is behind the cutoff.
    let buckets: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(buckets, ["12:01:00", "12:02:00"]);
    assert_eq!(column(&p, rows, "mean"), some(&[15.0, 5.0]));
    assert_eq!(column(&p, rows, "count"), some(&[2.0, 2.0]));
    assert_eq!(column(&p, rows, "max"), some(&[20.0, 6.0]));
    // rate:sum of 12:01 uses the predecessor 3.0 saved before the restart.
    assert_eq!(column(&p, rows, "rate:sum"), some(&[17.0, -14.0]));
    assert_eq!(second.report().late.get("m"), Some(&1));
}

#[test]
fn measures_before_the_oldest_open_bucket_are_dropped_and_the_newest_kept_as_predecessor() {
    let p = policy(&[(60, None), (3600, None)], 0, &["count"]);
    let mut e = engine(p);
    ingest(
        &mut e,
        &[("11:58:00", 1.0), ("11:59:00", 2.0), ("12:01:00", 3.0)],
    );
    let st = &mut e.series[0];
    st.open_from = [at("12:00:00"), at("13:00:00")].into_iter().collect();
    assert_eq!(st.keep_from(), at("12:00:00"));
    st.drop_before_open();
    assert_eq!(st.points, vec![(at("12:01:00"), 3.0)]);
    assert_eq!(st.pred, Some((at("11:59:00"), 2.0)));
    // Nothing older left: a second call changes nothing.
    st.drop_before_open();
    assert_eq!(st.points.len(), 1);
    assert_eq!(st.pred, Some((at("11:59:00"), 2.0)));
}

#[test]
fn a_restore_without_the_coarsest_granularity_closes_the_saved_minutes_once() {
    // With an hourly granularity, the back window is in hours: the minutes
    // of the open hour stay open.
    let hourly = policy(&[(60, None), (3600, None)], 0, &["count", "sum"]);
    let dir = tempfile::tempdir().unwrap();
    let mut first = engine_with_restart_measures(hourly);
    assert!(first.take_closed().concat().iter().all(|c| c.is_empty()));
    first.save_state(dir.path()).unwrap();
    drop(first);

    // The policy loses its hours: the cutoff is in minutes again, and the
    // saved measures close their minutes, each once.
    let minutely = policy(&[(60, None)], 0, &["count", "sum"]);
    let mut second = engine(minutely.clone());
    assert_eq!(second.load_state(dir.path()).unwrap(), 1);
    ingest(&mut second, &[("12:02:30", 6.0)]);
    let rows = &close_all(&mut second)[0];
    let buckets: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(buckets, ["12:00:00", "12:01:00", "12:02:00"]);
    assert_eq!(column(&minutely, rows, "count"), some(&[2.0, 1.0, 2.0]));
    assert_eq!(column(&minutely, rows, "sum"), some(&[4.0, 10.0, 10.0]));
}

#[test]
fn idle_series_are_closed_by_advance() {
    let p = policy(&[(60, None)], 0, &["count"]);
    let mut e = engine(p);
    ingest(&mut e, &[("12:00:10", 1.0)]);
    e.advance(at("12:00:59"));
    assert!(e.take_closed()[0][0].is_empty());
    e.advance(at("12:01:00"));
    assert_eq!(e.take_closed()[0][0].len(), 1);
    // A measure for the bucket closed that way is late.
    ingest(&mut e, &[("12:00:20", 1.0)]);
    assert_eq!(e.report().late.get("m"), Some(&1));
}

#[test]
fn recycled_buffers_carry_no_rows_or_values_over() {
    // Reference C's input (std of [3, 6, 5] and of one value), taken in two
    // passes with the first take's buffers given back in between.
    let p = policy(&[(60, None)], 0, &["std", "count", "max"]);
    let mut e = engine(p.clone());
    ingest(
        &mut e,
        &[("12:00:00", 3.0), ("12:00:04", 6.0), ("12:00:09", 5.0)],
    );
    ingest(&mut e, &[("12:01:06", 9.0)]);
    let first = e.take_closed();
    assert_eq!(first[0][0].len(), 1);
    assert_eq!(
        first[0][0].row(0).values().collect::<Vec<_>>(),
        // Canonical column order: count, max, std.
        vec![Some(3.0), Some(6.0), Some(1.5275252316519465)]
    );
    e.recycle(first);
    let rows = close_all(&mut e);
    assert_eq!(rows[0].len(), 1, "only the 12:01 bucket: {rows:?}");
    assert_eq!(rows[0][0].0, "12:01:00");
    assert_eq!(rows[0][0].1, vec![Some(1.0), Some(9.0), None]);
    // A result of another shape is not taken back.
    e.recycle(vec![]);
    assert_eq!(e.take_closed()[0][0].len(), 0);
    // Nor one of another width (a buffer for 99 methods would refuse the
    // 3-value rows of the next close).
    e.recycle(vec![vec![ClosedRows::new(99)]]);
    let _ = e.take_closed();
    // (A new series: everything of m/r is closed by now.)
    let mut other = series();
    other[0].resource_id = "r2".into();
    e.ingest_columns(
        &other,
        &[0, 0],
        &[at("12:05:00"), at("12:05:30")],
        &[1.0, 4.0],
    );
    let rows = close_all(&mut e);
    assert_eq!(
        rows[0],
        [(
            "12:05:00".to_string(),
            vec![Some(2.0), Some(4.0), Some(2.1213203435596424)]
        )]
    );
}

#[test]
fn recycle_keeps_large_row_buffers_only_within_the_raw_measures_memory() {
    // 1,200 measures 10 s apart (12:00–15:20), closed at once. Raw buffer:
    // room for 2,048 measures of 16 bytes (32 KiB). A row of four methods
    // takes 8 (bucket start) + 4 (series index) + 4 × 8 bytes = 44 bytes.
    let measures: Vec<(String, f64)> = (0..1200)
        .map(|i| {
            let s = 12 * 3600 + i * 10;
            (
                format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60),
                i as f64,
            )
        })
        .collect();
    let refs: Vec<(&str, f64)> = measures.iter().map(|(t, v)| (t.as_str(), *v)).collect();
    let run = |grans: &[(u64, Option<u64>)]| {
        let mut e = engine(policy(grans, 0, &["mean", "min", "max", "sum"]));
        e.set_recycle_rows(16);
        ingest(&mut e, &refs);
        e.advance(i64::MAX / 2);
        let closed = e.take_closed();
        let lens: Vec<usize> = closed[0].iter().map(|r| r.len()).collect();
        let caps: Vec<usize> = closed[0].iter().map(|r| r.capacity()).collect();
        e.recycle(closed);
        (lens, caps, e.closed_capacity().remove(0))
    };
    // 200 one-minute rows (under 9 KiB): kept whole for the next close.
    let (lens, caps, kept) = run(&[(60, None), (3600, None)]);
    assert_eq!(lens, [200, 4]);
    assert_eq!(kept[0], caps[0], "the 200-row buffer is kept: {kept:?}");
    // 1,200 one-second rows (at least 52 KiB) outweigh the raw buffer:
    // shrunk to the 16 rows always kept.
    let (lens, caps, kept) = run(&[(1, None), (3600, None)]);
    assert_eq!(lens, [1200, 4]);
    assert!(caps[0] >= 1200);
    assert_eq!(kept[0], 16, "the 1,200-row buffer is given up: {kept:?}");
}

#[test]
fn series_found_whatever_their_position_from_batch_to_batch() {
    let p = policy(&[(60, None)], 0, &["sum", "count"]);
    let mut e = engine(p);
    let s = |r: &str| WitSeries {
        metric: "m".into(),
        resource_id: r.into(),
        unit: "1".into(),
        type_: SampleType::Gauge,
        attributes: vec![],
    };
    // Batch 1: [a, b]; batch 2: [b, a] (each position now names the other
    // series); batch 3: [c, a] (a new series where b was).
    e.ingest_columns(
        &[s("a"), s("b")],
        &[0, 1],
        &[at("12:00:01"), at("12:00:02")],
        &[1.0, 10.0],
    );
    e.ingest_columns(
        &[s("b"), s("a")],
        &[0, 1],
        &[at("12:00:03"), at("12:00:04")],
        &[20.0, 2.0],
    );
    e.ingest_columns(
        &[s("c"), s("a")],
        &[0, 1],
        &[at("12:00:05"), at("12:00:06")],
        &[100.0, 4.0],
    );
    assert_eq!(e.series_count(), 3);
    e.advance(i64::MAX / 2);
    let mut got: Vec<(String, Vec<Option<f64>>)> = e.take_closed()[0][0]
        .iter()
        .map(|r| (r.series.resource_id.clone(), r.values().collect()))
        .collect();
    got.sort_by(|x, y| x.0.cmp(&y.0));
    // Policy order: sum, count.
    assert_eq!(
        got,
        [
            ("a".to_string(), vec![Some(7.0), Some(3.0)]),
            ("b".to_string(), vec![Some(30.0), Some(2.0)]),
            ("c".to_string(), vec![Some(100.0), Some(1.0)]),
        ]
    );
}

#[test]
fn samples_with_a_kept_series_table_roll_up_as_a_plain_batch() {
    let s = |r: &str, attrs: &[(&str, &str)]| WitSeries {
        metric: "m".into(),
        resource_id: r.into(),
        unit: "1".into(),
        type_: SampleType::Gauge,
        attributes: attrs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
    };
    // A plugin's output: series "b" listed twice (attributes in two
    // orders), one series no sample uses.
    let wit = crate::bindings::WitBatch {
        series: vec![
            s("unused", &[]),
            s("b", &[("z", "1"), ("a", "2")]),
            s("a", &[]),
            s("b", &[("a", "2"), ("z", "1")]),
        ],
        series_index: vec![2, 1, 3, 2, 3],
        timestamps: ["12:00:01", "12:00:02", "12:00:03", "12:00:04", "12:00:05"]
            .map(at)
            .to_vec(),
        values: vec![1.0, 10.0, 20.0, 2.0, 30.0],
    };
    let samples = crate::batch::Samples::from_wit(wit).unwrap();
    let rows = |e: &mut RollupEngine| {
        e.advance(i64::MAX / 2);
        let mut got: Vec<(String, usize, Vec<Option<f64>>)> = e.take_closed()[0][0]
            .iter()
            .map(|r| {
                (
                    r.series.resource_id.clone(),
                    r.series.attributes.len(),
                    r.values().collect(),
                )
            })
            .collect();
        got.sort_by(|x, y| x.0.cmp(&y.0));
        got
    };
    let p = policy(&[(60, None)], 0, &["sum", "count"]);
    let mut kept = engine(p.clone());
    kept.ingest_samples(&samples).unwrap();
    let mut plain = engine(p);
    plain.ingest(samples.batch()).unwrap();
    assert_eq!(kept.series_count(), 2);
    assert_eq!(plain.series_count(), 2);
    let expected = [
        ("a".to_string(), 0, vec![Some(3.0), Some(2.0)]),
        ("b".to_string(), 2, vec![Some(60.0), Some(3.0)]),
    ];
    assert_eq!(rows(&mut kept), expected);
    assert_eq!(rows(&mut plain), expected);
}

/// One ingestion pass of `(resource, time, value)` measures of metric m.
fn ingest_resources(e: &mut RollupEngine, measures: &[(&str, &str, f64)]) {
    let mut series: Vec<WitSeries> = Vec::new();
    let mut idx = Vec::new();
    for (r, _, _) in measures {
        let pos = series.iter().position(|s| s.resource_id == *r);
        idx.push(pos.unwrap_or_else(|| {
            series.push(WitSeries {
                resource_id: (*r).into(),
                ..series_info_m()
            });
            series.len() - 1
        }) as u32);
    }
    let ts: Vec<i64> = measures.iter().map(|m| at(m.1)).collect();
    let vs: Vec<f64> = measures.iter().map(|m| m.2).collect();
    e.ingest_columns(&series, &idx, &ts, &vs);
}

fn series_info_m() -> WitSeries {
    series().remove(0)
}

/// The rows closed so far at granularity index 0 as (resource, bucket
/// "HH:MM:SS", values).
fn taken(e: &mut RollupEngine) -> Vec<(String, String, Vec<Option<f64>>)> {
    let mut rows: Vec<_> = e.take_closed().remove(0).remove(0).to_rows();
    rows.sort_by(|a, b| {
        (&a.series.resource_id, a.timestamp).cmp(&(&b.series.resource_id, b.timestamp))
    });
    rows.into_iter()
        .map(|r| {
            let s = (r.timestamp - DAY) / 1_000_000_000;
            (
                r.series.resource_id.clone(),
                format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60),
                r.values,
            )
        })
        .collect()
}

#[test]
fn a_series_silent_past_the_longest_timespan_is_forgotten() {
    // Timespans 600 s and 1200 s, 300 s blocks: horizon 1200 s, forgotten
    // 1500 s after its last measure.
    let p = policy(&[(60, Some(10)), (300, Some(4))], 0, &["sum", "count"]);
    let mut e = engine(p);
    ingest_resources(&mut e, &[("a", "12:00:10", 1.0), ("b", "12:00:10", 2.0)]);
    e.advance(at("12:25:10"));
    // Every bucket closed, but the silence is not longer than 1500 s yet.
    assert_eq!(e.series_count(), 2);
    assert_eq!(
        taken(&mut e),
        [
            ("a".into(), "12:00:00".into(), some(&[1.0, 1.0])),
            ("b".into(), "12:00:00".into(), some(&[2.0, 1.0])),
        ]
    );
    ingest_resources(&mut e, &[("b", "12:25:30", 3.0)]);
    e.advance(at("12:25:10") + 1);
    assert_eq!(e.series_count(), 1, "a is forgotten, b is not");
    assert_eq!(e.report().series_forgotten, 1);

    // b took a's place: found through the index from another batch
    // position, its open bucket intact.
    ingest_resources(&mut e, &[("c", "12:25:35", 9.0), ("b", "12:25:40", 4.0)]);
    assert_eq!(e.series_count(), 2);
    // a comes back as a new series. Older than the clock minus the
    // horizon (12:05:10) is expired, so nothing lands in the 12:00–12:05
    // bucket a already wrote; newer is accepted, though a's old cutoff
    // (12:25) would have refused it.
    ingest_resources(
        &mut e,
        &[
            ("a", "12:05:00", 5.0),
            ("a", "12:05:20", 5.0),
            ("a", "12:26:00", 6.0),
        ],
    );
    assert!(e.report().late.is_empty());
    assert_eq!(
        e.report().expired,
        std::collections::BTreeMap::from([("m".to_owned(), 1)])
    );
    assert_eq!(e.report().accepted, 7);
    e.advance(at("12:45:00"));
    assert_eq!(
        taken(&mut e),
        [
            ("a".into(), "12:05:00".into(), some(&[5.0, 1.0])),
            ("a".into(), "12:26:00".into(), some(&[6.0, 1.0])),
            ("b".into(), "12:25:00".into(), some(&[7.0, 2.0])),
            ("c".into(), "12:25:00".into(), some(&[9.0, 1.0])),
        ]
    );
    // At 12:45 each is within 1500 s of its newest measure (12:25:35 to
    // 12:26:00); all are gone after 12:51.
    assert_eq!(e.series_count(), 3);
    e.advance(at("12:51:00") + 1);
    assert_eq!(e.series_count(), 0);
    assert_eq!(e.report().series_forgotten, 4);
}

#[test]
fn the_horizon_covers_the_back_window_and_unlimited_points_never_forget() {
    // Timespan 300 s, but a back window of 2 blocks: horizon 900 s,
    // forgotten 1200 s after the last measure, not 600 s.
    let p = policy(&[(60, Some(1)), (300, Some(1))], 2, &["count"]);
    let mut e = engine(p);
    ingest(&mut e, &[("12:00:10", 1.0)]);
    e.advance(at("12:20:10"));
    assert_eq!(e.take_closed()[0][0].len(), 1);
    assert_eq!(e.series_count(), 1);
    e.advance(at("12:20:10") + 1);
    assert_eq!(e.series_count(), 0);
    // A series that never stored a measure holds nothing: forgotten at
    // the next advance.
    e.ingest_columns(&series(), &[0], &[-5], &[1.0]);
    assert_eq!(e.report().before_epoch.get("m"), Some(&1));
    assert_eq!(e.series_count(), 1);
    e.advance(at("12:20:10") + 2);
    assert_eq!(e.series_count(), 0);

    let unlimited = policy(&[(60, None)], 0, &["count"]);
    let mut e = engine(unlimited);
    ingest(&mut e, &[("12:00:10", 1.0)]);
    e.advance(i64::MAX / 2);
    assert_eq!(e.series_count(), 1);
    // Nor expire: an old measure is only late by its series' cutoff.
    ingest_resources(&mut e, &[("other", "00:00:00", 1.0)]);
    assert_eq!(e.series_count(), 2);
    assert!(e.report().expired.is_empty());
}

#[test]
fn the_clock_survives_a_restart_so_a_forgotten_series_cannot_repeat_a_bucket() {
    // Horizon 600 s, 300 s blocks: a is forgotten 900 s after 12:00:10.
    let p = policy(&[(60, Some(10)), (300, Some(2))], 0, &["count"]);
    let dir = tempfile::tempdir().unwrap();
    let mut first = engine(p.clone());
    assert_eq!(first.clock(), None);
    ingest_resources(
        &mut first,
        &[("a", "12:00:10", 1.0), ("b", "12:14:00", 1.0)],
    );
    first.advance(at("12:15:10") + 1);
    assert_eq!(first.series_count(), 1, "a is forgotten");
    assert_eq!(
        taken(&mut first)[0],
        ("a".into(), "12:00:00".into(), some(&[1.0]))
    );
    first.save_state(dir.path()).unwrap();
    drop(first);

    let mut second = engine(p.clone());
    assert_eq!(second.load_state(dir.path()).unwrap(), 1);
    assert_eq!(second.clock(), Some(at("12:15:10") + 1));
    // Before any advance: what a's written 12:00 bucket would take is
    // older than the clock minus the horizon (12:05:10 and 1 ns) and
    // expired; from there on a is a new series.
    ingest_resources(
        &mut second,
        &[
            ("a", "12:00:20", 7.0),
            ("a", "12:05:10", 7.0),
            ("a", "12:05:11", 8.0),
        ],
    );
    assert_eq!(second.report().expired.get("m"), Some(&2));
    assert_eq!(second.report().accepted, 1);

    // A state file without the key (as written before it existed, or before
    // the first advance) leaves the clock unset.
    let mut fresh = engine(p.clone());
    fresh.save_state(dir.path()).unwrap();
    let mut third = engine(p.clone());
    assert_eq!(third.load_state(dir.path()).unwrap(), 0);
    assert_eq!(third.clock(), None);
    // The engine keeps the newer of its own clock and the saved one.
    fresh.advance(at("12:00:00"));
    fresh.save_state(dir.path()).unwrap();
    third.advance(at("13:00:00"));
    third.load_state(dir.path()).unwrap();
    assert_eq!(third.clock(), Some(at("13:00:00")));
}

#[test]
fn a_reload_that_lengthens_the_horizon_keeps_the_expiry_floor() {
    // 10 minutes kept: horizon 600 s, a forgotten after 660 s of silence.
    let short = policy(&[(60, Some(10))], 0, &["count"]);
    let dir = tempfile::tempdir().unwrap();
    let mut first = engine(short);
    ingest(&mut first, &[("12:00:10", 1.0)]);
    first.advance(at("12:11:11"));
    assert_eq!(first.series_count(), 0);
    assert_eq!(first.expired_before(), [at("12:01:11")]);
    assert_eq!(
        taken(&mut first),
        [("r".into(), "12:00:00".into(), some(&[1.0]))]
    );
    first.save_state(dir.path()).unwrap();

    // Now a day is kept: the clock minus the horizon alone would accept
    // 12:00:30 again, into the bucket already written.
    let long = policy(&[(60, Some(1440))], 0, &["count"]);
    let mut second = engine(long);
    assert_eq!(second.load_state(dir.path()).unwrap(), 0);
    assert_eq!(second.expired_before(), [at("12:01:11")]);
    ingest(&mut second, &[("12:00:30", 7.0), ("12:01:11", 8.0)]);
    assert_eq!(second.report().expired.get("m"), Some(&1));
    assert_eq!(second.report().accepted, 1);
    // A day later the clock minus the horizon is the higher floor again.
    let one_day = 86_400 * 1_000_000_000;
    second.advance(at("12:11:11") + one_day);
    assert_eq!(second.expired_before(), [at("12:11:11")]);
}

#[test]
fn rewinding_the_clock_lowers_the_expiry_floors() {
    let p = policy(&[(60, Some(10))], 0, &["count"]);
    let mut e = engine(p);
    e.advance(at("13:00:00"));
    assert_eq!(e.expired_before(), [at("12:50:00")]);
    // Not ahead: nothing changes.
    e.rewind_clock(at("13:00:00"));
    assert_eq!(e.clock(), Some(at("13:00:00")));
    e.rewind_clock(at("12:00:00"));
    assert_eq!(e.clock(), Some(at("12:00:00")));
    assert_eq!(e.expired_before(), [at("11:50:00")]);
    ingest(&mut e, &[("11:50:00", 1.0), ("11:49:59", 1.0)]);
    assert_eq!(e.report().accepted, 1);
    assert_eq!(e.report().expired.get("m"), Some(&1));
}

#[test]
fn measures_stamped_after_the_limit_are_refused_as_future_and_move_nothing() {
    let p = policy(&[(60, Some(10))], 0, &["count", "sum"]);
    let mut e = engine(p.clone());
    e.refuse_after(at("12:05:00"));
    // At the limit: accepted. After it: refused and counted.
    ingest(
        &mut e,
        &[("12:00:10", 1.0), ("12:05:00", 2.0), ("12:05:01", 4.0)],
    );
    ingest(&mut e, &[("23:00:00", 8.0)]);
    // The wall clock moves on: the series' cutoff stayed where its
    // accepted measures put it, so a measure of the current minute is
    // not late (had 23:00:00 been taken, it would be).
    e.refuse_after(at("12:06:00"));
    ingest(&mut e, &[("12:05:30", 16.0)]);
    let r = e.report();
    assert_eq!(r.future.get("m"), Some(&2));
    assert_eq!((r.accepted, r.refused()), (3, 2));
    assert!(r.late.is_empty());
    let rows = &close_all(&mut e)[0];
    let buckets: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(buckets, ["12:00:00", "12:05:00"]);
    assert_eq!(column(&p, rows, "count"), [Some(1.0), Some(2.0)]);
    assert_eq!(column(&p, rows, "sum"), [Some(1.0), Some(18.0)]);
}

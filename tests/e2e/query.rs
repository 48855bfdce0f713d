//! Reading the archive from the command line: `wasmeter measures`,
//! `wasmeter aggregates` and `wasmeter query`, over an archive that
//! `wasmeter import` wrote from a known input (reference §1.5 and §1.7's
//! metrics a and b).

use crate::support::wasmeter;

/// 2023-11-14T22:14:00Z, a multiple of 120 s: "12:00" of reference §1.7.
const T0: i64 = 1_700_000_040;

fn stdout(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn iso(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// An archive with §1.7's a = {12:00 → 1, 12:01 → 2, 12:02 → 3} and
/// b = {12:01 → 10, 12:02 → 20, 12:03 → 30} at 60 s (and 120 s), written
/// by `wasmeter import`. A later sample of each series (99, at 12:10, whose
/// buckets stay open) moves the event-time clock past those buckets.
fn archive() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = String::new();
    for (m, dt, v) in [
        ("a", 0, 1),
        ("a", 60, 2),
        ("a", 120, 3),
        ("a", 600, 99),
        ("b", 60, 10),
        ("b", 120, 20),
        ("b", 180, 30),
        ("b", 600, 99),
    ] {
        lines.push_str(&format!("{m},host=r1 value={v} {}\n", T0 + dt));
    }
    std::fs::write(dir.path().join("ab.lp"), lines).unwrap();
    std::fs::write(
        dir.path().join("wasmeter.toml"),
        r#"
[archive]
root = "archive"

[[archive_policy]]
name = "minute"
back_window = 0
aggregation_methods = ["mean", "max", "count", "sum"]
definition = [
  { granularity = "1m", timespan = "1d" },
  { granularity = "2m", timespan = "1d" },
]

[[archive_policy_rule]]
name = "all"
metric_pattern = "*"
archive_policy_name = "minute"
"#,
    )
    .unwrap();
    let out = wasmeter()
        .current_dir(dir.path())
        .args([
            "import",
            "--format",
            "influx",
            "--precision",
            "s",
            "-c",
            "wasmeter.toml",
            "ab.lp",
        ])
        .output()
        .unwrap();
    stdout(&out);
    dir
}

fn run(dir: &tempfile::TempDir, args: &[&str]) -> std::process::Output {
    wasmeter()
        .current_dir(dir.path())
        .args(args)
        .args(["-c", "wasmeter.toml"])
        .output()
        .unwrap()
}

/// `(timestamp, granularity, value)` of every row of a CSV output.
fn points(csv: &str) -> Vec<(String, String, String)> {
    csv.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let n = f.len();
            (
                f[n - 3].to_owned(),
                f[n - 2].to_owned(),
                f[n - 1].to_owned(),
            )
        })
        .collect()
}

fn p(t: i64, g: &str, v: &str) -> (String, String, String) {
    (iso(t), g.to_owned(), v.to_owned())
}

#[test]
fn measures_reads_as_gnocchi_coarsest_first_start_floored_stop_exclusive_resample() {
    let dir = archive();
    let all = stdout(&run(
        &dir,
        &["measures", "--metric", "a", "--format", "csv"],
    ));
    assert_eq!(
        points(&all),
        [
            p(T0, "120", "1.5"),
            p(T0 + 120, "120", "3.0"),
            p(T0, "60", "1.0"),
            p(T0 + 60, "60", "2.0"),
            p(T0 + 120, "60", "3.0"),
        ]
    );
    assert!(all.starts_with("metric,resource_id,attributes,timestamp,granularity,value\na,r1,,"));
    // start 12:01:10 is floored: 12:00 at 120 s, 12:01 at 60 s.
    let start = (T0 + 70).to_string();
    let from = stdout(&run(
        &dir,
        &[
            "measures", "--metric", "a", "--start", &start, "--format", "csv",
        ],
    ));
    assert_eq!(
        points(&from),
        [
            p(T0, "120", "1.5"),
            p(T0 + 120, "120", "3.0"),
            p(T0 + 60, "60", "2.0"),
            p(T0 + 120, "60", "3.0"),
        ]
    );
    // stop is exclusive on bucket timestamps; RFC 3339 accepted.
    let stop = iso(T0 + 120);
    let until = stdout(&run(
        &dir,
        &[
            "measures",
            "--metric",
            "b",
            "--aggregation",
            "max",
            "--granularity",
            "1m",
            "--stop",
            &stop,
            "--format",
            "csv",
        ],
    ));
    assert_eq!(points(&until), [p(T0 + 60, "60", "10.0")]);
    // Resampling re-applies the method: the count of 1-minute buckets.
    let resampled = stdout(&run(
        &dir,
        &[
            "measures",
            "--metric",
            "b",
            "--aggregation",
            "count",
            "--granularity",
            "60",
            "--resample",
            "120",
            "--format",
            "csv",
        ],
    ));
    assert_eq!(
        points(&resampled),
        [p(T0, "120", "1.0"), p(T0 + 120, "120", "2.0")]
    );
    // JSON: Gnocchi's [timestamp, granularity, value] triples.
    let json = stdout(&run(
        &dir,
        &[
            "measures",
            "--metric",
            "a",
            "--granularity",
            "2m",
            "--format",
            "json",
        ],
    ));
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        doc,
        serde_json::json!([{
            "metric": "a", "resource_id": "r1", "attributes": {}, "unit": "",
            "measures": [[iso(T0), 120.0, 1.5], [iso(T0 + 120), 120.0, 3.0]]
        }])
    );
    // Errors name what is wrong.
    let none = run(&dir, &["measures", "--metric", "zzz"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no measures of metric \"zzz\""));
    let bad = run(&dir, &["measures", "--metric", "a", "--resample", "2m"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--resample needs --granularity"));
    let bad = run(&dir, &["measures", "--metric", "a", "--start", "soon"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--start: \"soon\" is not a time"));
}

#[test]
fn aggregates_follow_the_reference_worked_examples_on_an_archive() {
    let dir = archive();
    let ops = "(aggregate mean (metric (a mean) (b mean)))";
    let agg = |extra: &[&str]| {
        let mut args = vec!["aggregates", ops, "--granularity", "60", "--format", "csv"];
        args.extend_from_slice(extra);
        points(&stdout(&run(&dir, &args)))
    };
    assert_eq!(
        agg(&[]),
        [p(T0 + 60, "60", "6.0"), p(T0 + 120, "60", "11.5")]
    );
    assert_eq!(
        agg(&["--fill", "0"]),
        [
            p(T0, "60", "0.5"),
            p(T0 + 60, "60", "6.0"),
            p(T0 + 120, "60", "11.5"),
            p(T0 + 180, "60", "15.0"),
        ]
    );
    assert_eq!(
        agg(&["--fill", "ffill"]),
        [
            p(T0, "60", "1.0"),
            p(T0 + 60, "60", "6.0"),
            p(T0 + 120, "60", "11.5"),
            p(T0 + 180, "60", "16.5"),
        ]
    );
    let start = (T0).to_string();
    let stop = (T0 + 240).to_string();
    assert_eq!(
        agg(&["--needed-overlap", "50", "--start", &start, "--stop", &stop]),
        [
            p(T0, "60", "1.0"),
            p(T0 + 60, "60", "6.0"),
            p(T0 + 120, "60", "11.5"),
            p(T0 + 180, "60", "30.0"),
        ]
    );
    // Not enough overlap is an error with Gnocchi's reason.
    let out = run(
        &dir,
        &[
            "aggregates",
            ops,
            "--granularity",
            "60",
            "--start",
            &start,
            "--stop",
            &stop,
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("less than 100% of datapoints overlap in this timespan (50.00%)"),
        "{err}"
    );
    // Per-series output of a resample: 12:00 → 2, 12:02 → 3 at 120 s.
    let per = stdout(&run(
        &dir,
        &[
            "aggregates",
            "(resample max 120 (metric a mean))",
            "--granularity",
            "60",
            "--format",
            "csv",
        ],
    ));
    assert_eq!(
        points(&per),
        [p(T0, "120", "2.0"), p(T0 + 120, "120", "3.0")]
    );
    let bad = run(&dir, &["aggregates", "(aggregate mean (metric (a mean)"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("error: operations: invalid operations at position"),
        "{err}"
    );
    let unknown = run(&dir, &["aggregates", "(metric (zzz mean))"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("metric zzz does not exist"));
}

#[test]
fn sql_over_the_archive_with_a_table_per_policy() {
    let dir = archive();
    let out = stdout(&run(
        &dir,
        &[
            "query",
            "SELECT metric, granularity, count(*) AS n, sum(mean) AS s FROM minute WHERE date = '2023-11-14' GROUP BY metric, granularity ORDER BY metric, granularity",
            "--format",
            "csv",
        ],
    ));
    assert_eq!(
        out,
        "metric,granularity,n,s\na,60,3,6.0\na,120,2,4.5\nb,60,3,60.0\nb,120,2,35.0\n"
    );
    let json = stdout(&run(
        &dir,
        &[
            "query",
            "SELECT max(max) AS top FROM minute WHERE metric = 'b'",
            "--format",
            "json",
        ],
    ));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&json).unwrap(),
        serde_json::json!([{"top": 30.0}])
    );
    let bad = run(&dir, &["query", "SELECT * FROM nope"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("nope") && err.contains("(tables: minute)"),
        "{err}"
    );
    let bad = run(&dir, &["query", "SELEC 1"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("SELEC") && err.contains("(tables: minute)"),
        "{err}"
    );
}

#[test]
fn measures_resample_into_calendar_groups_weeks_from_sunday() {
    // One measure of 1 a day from 2024-01-01 (a Monday) to 2024-03-01
    // (61 days, 2024 is a leap year); a later one closes the last day.
    let dir = tempfile::tempdir().unwrap();
    let day0 = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    let midnight = |d: chrono::NaiveDate| d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp();
    let mut lines = String::new();
    for n in 0..61 {
        let t = midnight(day0 + chrono::Days::new(n)) + 3600;
        lines.push_str(&format!("d,host=r1 value=1 {t}\n"));
    }
    lines.push_str(&format!(
        "d,host=r1 value=1 {}\n",
        midnight(day0) + 70 * 86_400
    ));
    std::fs::write(dir.path().join("d.lp"), lines).unwrap();
    std::fs::write(
        dir.path().join("wasmeter.toml"),
        r#"
[archive]
root = "archive"

[[archive_policy]]
name = "daily"
back_window = 0
aggregation_methods = ["sum", "rate:sum"]
definition = [{ granularity = "1d", timespan = "400d" }]

[[archive_policy_rule]]
name = "all"
metric_pattern = "*"
archive_policy_name = "daily"
"#,
    )
    .unwrap();
    let import = wasmeter()
        .current_dir(dir.path())
        .args(["import", "--format", "influx", "--precision", "s"])
        .args(["-c", "wasmeter.toml", "d.lp"])
        .output()
        .unwrap();
    stdout(&import);
    let resample = |group: &str| {
        let args = [
            "measures",
            "--metric",
            "d",
            "--aggregation",
            "sum",
            "--granularity",
            "1d",
            "--resample",
            group,
            "--format",
            "csv",
        ];
        points(&stdout(&run(&dir, &args)))
    };
    let day = |s: &str| format!("{s}T00:00:00Z");
    let expect = |rows: &[(&str, &str)], g: &str| -> Vec<(String, String, String)> {
        rows.iter()
            .map(|(d, v)| (day(d), g.to_owned(), (*v).to_owned()))
            .collect()
    };
    // The sum of daily sums: the days of each group.
    assert_eq!(
        resample("M"),
        expect(
            &[
                ("2024-01-01", "31.0"),
                ("2024-02-01", "29.0"),
                ("2024-03-01", "1.0")
            ],
            "M"
        )
    );
    for (group, first) in [
        ("Q", "2024-01-01"),
        ("H", "2024-01-01"),
        ("Y", "2024-01-01"),
    ] {
        assert_eq!(resample(group), expect(&[(first, "61.0")], group));
    }
    // Weeks start on Sunday: 2023-12-31 holds Jan 1–6, then 7 full weeks,
    // then Feb 25–Mar 1.
    let mut weeks = vec![("2023-12-31", "6.0")];
    let sundays = [
        "2024-01-07",
        "2024-01-14",
        "2024-01-21",
        "2024-01-28",
        "2024-02-04",
        "2024-02-11",
        "2024-02-18",
    ];
    weeks.extend(sundays.iter().map(|d| (*d, "7.0")));
    weeks.push(("2024-02-25", "6.0"));
    assert_eq!(resample("W"), expect(&weeks, "W"));
    // JSON gives the group's letter for the granularity, as Gnocchi.
    let json = stdout(&run(
        &dir,
        &[
            "measures",
            "--metric",
            "d",
            "--aggregation",
            "sum",
            "--granularity",
            "1d",
            "--resample",
            "Q",
            "--format",
            "json",
        ],
    ));
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        doc[0]["measures"],
        serde_json::json!([[day("2024-01-01"), "Q", 61.0]])
    );
    // Not a group nor a duration; a rate of rates: refused.
    let bad = run(
        &dir,
        &[
            "measures",
            "--metric",
            "d",
            "--granularity",
            "1d",
            "--resample",
            "X",
        ],
    );
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("or a calendar group (Y, H, Q, M, W)"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let rate = run(
        &dir,
        &[
            "measures",
            "--metric",
            "d",
            "--aggregation",
            "rate:sum",
            "--granularity",
            "1d",
            "--resample",
            "M",
        ],
    );
    assert_eq!(rate.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&rate.stderr).contains("rate:sum cannot be resampled"));
}

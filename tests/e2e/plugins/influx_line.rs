//! The `influx-line` decoder, called through the component model, and
//! `wasmeter import --format influx`.

use wasmeter::batch;
use wasmeter::bindings::SampleType;

use crate::archive::run_python;
use crate::support::{decoder, rows, wasmeter};

#[test]
fn fields_become_samples_with_tags_as_attributes_per_precision() {
    let mut d = decoder(
        "influx-line",
        &[
            ("precision", "ms"),
            ("unit", "1"),
            ("resource_id", "fallback"),
        ],
    );
    let doc = "weather,host=station-1,city=Oslo temperature=-1.5,humidity=80i,ok=true,note=\"dry\" 1700000000123\ncpu value=0.25\n";
    // Without a timestamp a line gets `now`, floored to the precision (as
    // the Go reference does).
    let out = d
        .decode(doc.as_bytes(), "", 1_700_000_000_456_789_012)
        .unwrap();
    assert!(out.rejected.is_empty());
    let got = rows(&batch::to_wit(&out.batch).unwrap());
    let ms = 1_700_000_000_123_000_000;
    let expected = [
        ("weather.temperature", "station-1", "city=Oslo", ms, -1.5),
        ("weather.humidity", "station-1", "city=Oslo", ms, 80.0),
        ("weather.ok", "station-1", "city=Oslo", ms, 1.0),
        // `value` is the measurement itself.
        ("cpu", "fallback", "", 1_700_000_000_456_000_000, 0.25),
    ];
    let mut got_set: Vec<_> = got
        .iter()
        .map(|r| (r.0.as_str(), r.1.as_str(), r.4.as_str(), r.5, r.6))
        .collect();
    got_set.sort_by(|a, b| a.0.cmp(b.0));
    let mut want: Vec<_> = expected.to_vec();
    want.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(got_set, want);
    assert!(got.iter().all(|r| r.2 == "1" && r.3 == SampleType::Gauge));
}

#[test]
fn a_bad_line_costs_only_itself_unless_strict() {
    let doc = "m v=1 1\nm v= 2\nm v=3 3\nm,t v=4 4\nm v=5 5\n";
    let mut d = decoder("influx-line", &[]);
    let out = d.decode(doc.as_bytes(), "", 0).unwrap();
    let lines: Vec<u32> = out.rejected.iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 4]);
    let got = rows(&batch::to_wit(&out.batch).unwrap());
    let values: Vec<(i64, f64)> = got.iter().map(|r| (r.5, r.6)).collect();
    assert_eq!(values, [(1, 1.0), (3, 3.0), (5, 5.0)]);
    let mut strict = decoder("influx-line", &[("mode", "strict")]);
    let e = strict.decode(doc.as_bytes(), "", 0).unwrap_err();
    assert!(e.to_string().contains("line 2"), "{e}");
}

#[test]
fn import_of_line_protocol_gives_exact_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weather.lp");
    // Seconds precision; minute 1_700_000_040 holds three Oslo readings and
    // one Bergen reading, the next minute one Oslo reading, and the last
    // line (minute 1_700_000_160) closes them. One bad line in between.
    std::fs::write(
        &file,
        "weather,host=oslo temperature=1.5 1700000040\n\
         weather,host=oslo temperature=2.5 1700000050\n\
         weather,host=bergen temperature=7 1700000055\n\
         weather,host=oslo temperature=bad 1700000056\n\
         weather,host=oslo temperature=4i 1700000099\n\
         weather,host=oslo temperature=8 1700000100\n\
         weather,host=oslo temperature=9 1700000170\n",
    )
    .unwrap();
    let config = dir.path().join("wasmeter.toml");
    std::fs::write(
        &config,
        r#"
[archive]
root = "archive"

[[archive_policy]]
name = "minute"
back_window = 0
aggregation_methods = ["mean", "count", "min"]
definition = [{ granularity = "1m", timespan = "1d" }]

[[archive_policy_rule]]
name = "all"
metric_pattern = "*"
archive_policy_name = "minute"
"#,
    )
    .unwrap();
    let out = wasmeter()
        .args([
            "import",
            "--format",
            "influx",
            "--precision",
            "s",
            "--unit",
            "Cel",
            "--config",
        ])
        .arg(&config)
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("weather.lp: 7 lines, 6 samples of 2 series imported; 1 lines rejected"),
        "{err}"
    );
    assert!(err.contains("line=4"), "{err}");
    let got = run_python(
        dir.path(),
        "import duckdb\nprint(duckdb.sql(\"SELECT metric, resource_id, unit, epoch(timestamp)::BIGINT, mean, count, min FROM read_parquet('archive/policy=minute/**/*.parquet', hive_partitioning=true) ORDER BY ALL\").fetchall())",
    );
    assert_eq!(
        got.trim(),
        "[('weather.temperature', 'bergen', 'Cel', 1700000040, 7.0, 1.0, 7.0), ('weather.temperature', 'oslo', 'Cel', 1700000040, 2.6666666666666665, 3.0, 1.5), ('weather.temperature', 'oslo', 'Cel', 1700000100, 8.0, 1.0, 8.0)]"
    );
}

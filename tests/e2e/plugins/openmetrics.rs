//! The `openmetrics` decoder, called through the component model: the
//! conformance cases, the real 237-family scrape, lenient decoding and
//! `wasmeter import --format prom`.

use wasmeter::batch;
use wasmeter::bindings::SampleType;

use crate::archive::run_python;
use crate::support::{data_dir, decoder, rows, wasmeter};

const NOW: i64 = 1_700_000_000_000_000_000;

#[test]
fn strict_mode_decides_every_openmetrics_conformance_case_through_wasm() {
    let mut d = decoder(
        "openmetrics",
        &[("mode", "strict"), ("format", "openmetrics")],
    );
    let root = data_dir().join("openmetrics-parser-tests/parsers");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert_eq!(cases.len(), 211);
    let mut wrong = Vec::new();
    for case in &cases {
        let spec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(case.join("test.json")).unwrap()).unwrap();
        let should_parse = spec["shouldParse"].as_bool().unwrap();
        let input = std::fs::read(case.join("metrics")).unwrap();
        let parsed = d.decode(&input, "", NOW).is_ok();
        if parsed != should_parse {
            wrong.push(case.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(wrong.is_empty(), "wrong verdicts: {wrong:?}");
}

#[test]
fn the_real_237_family_scrape_decodes_without_error_with_exact_values() {
    let text = std::fs::read_to_string(
        data_dir().join("prometheus-textparse-testdata/alltypes.237mfs.prom.txt"),
    )
    .unwrap();
    let mut d = decoder(
        "openmetrics",
        &[("mode", "strict"), ("resource_id", "svc:8080")],
    );
    let out = d
        .decode(
            text.as_bytes(),
            "text/plain; version=0.0.4; charset=utf-8",
            NOW,
        )
        .unwrap();
    assert!(out.rejected.is_empty());
    let wit = batch::to_wit(&out.batch).unwrap();
    let sample_lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(sample_lines.len(), 1857);
    assert_eq!(wit.values.len(), sample_lines.len());
    let got = rows(&wit);
    // A summary quantile (gauge) and a counter (cumulative), as written.
    let find = |metric: &str, attrs: &str| {
        got.iter()
            .find(|r| r.0 == metric && r.4 == attrs)
            .unwrap_or_else(|| panic!("{metric} {attrs}"))
            .clone()
    };
    let value_of = |prefix: &str| -> f64 {
        sample_lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let q = find("go_gc_duration_seconds", "quantile=0.75");
    assert_eq!(
        (q.1.as_str(), q.3, q.5, q.6),
        (
            "svc:8080",
            SampleType::Gauge,
            NOW,
            value_of("go_gc_duration_seconds{quantile=\"0.75\"} ")
        )
    );
    let c = find("go_gc_duration_seconds_count", "");
    assert_eq!(c.3, SampleType::Cumulative);
    assert_eq!(c.6, value_of("go_gc_duration_seconds_count "));
}

#[test]
fn lenient_mode_keeps_the_good_lines_and_names_the_bad_ones_with_nan_and_inf_kept() {
    let body = "# TYPE a gauge\na NaN\na{x=\"1\"} oops\nb +Inf\nc{y=\"2\" -Inf\nc -Inf\n";
    let mut d = decoder("openmetrics", &[]);
    let out = d.decode(body.as_bytes(), "text/plain", NOW).unwrap();
    let lines: Vec<u32> = out.rejected.iter().map(|r| r.line).collect();
    assert_eq!(lines, [3, 5]);
    assert!(out.rejected.iter().all(|r| !r.reason.is_empty()));
    let wit = batch::to_wit(&out.batch).unwrap();
    let got: Vec<(String, u64)> = rows(&wit)
        .into_iter()
        .map(|r| (r.0, r.6.to_bits()))
        .collect();
    assert_eq!(got.len(), 3);
    assert!(f64::from_bits(got[0].1).is_nan());
    assert_eq!(
        got[1..],
        [
            ("b".to_owned(), f64::INFINITY.to_bits()),
            ("c".to_owned(), f64::NEG_INFINITY.to_bits())
        ]
    );
    // Strict mode refuses the same body, naming the first bad line.
    let mut strict = decoder("openmetrics", &[("mode", "strict")]);
    let e = strict
        .decode(body.as_bytes(), "text/plain", NOW)
        .unwrap_err();
    assert!(e.to_string().contains("line 3"), "{e}");
}

#[test]
fn import_of_openmetrics_with_timestamps_gives_exact_rollups() {
    // Gauge samples stamped in seconds across three minutes; the third
    // minute closes the first two.
    let mut text = String::from(
        "# TYPE room_temperature_celsius gauge\n# UNIT room_temperature_celsius celsius\n",
    );
    let samples = [
        ("lab", 1_700_000_040.0, 20.5),
        ("lab", 1_700_000_070.0, 21.5),
        ("lab", 1_700_000_100.0, 22.0),
        ("lab", 1_700_000_170.0, 23.0),
        ("hall", 1_700_000_045.5, 17.25),
    ];
    for (room, t, v) in samples {
        text.push_str(&format!(
            "room_temperature_celsius{{room=\"{room}\",instance=\"{room}-sensor\"}} {v} {t}\n"
        ));
    }
    text.push_str("# EOF\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rooms.om.txt");
    std::fs::write(&file, &text).unwrap();
    let config = dir.path().join("wasmeter.toml");
    std::fs::write(
        &config,
        r#"
[archive]
root = "archive"

[[archive_policy]]
name = "minute"
back_window = 0
aggregation_methods = ["mean", "count", "max"]
definition = [{ granularity = "1m", timespan = "1d" }]

[[archive_policy_rule]]
name = "all"
metric_pattern = "*"
archive_policy_name = "minute"
"#,
    )
    .unwrap();
    let out = wasmeter()
        .args(["import", "--format", "prom", "--config"])
        .arg(&config)
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("rooms.om.txt: 8 lines, 5 samples of 2 series imported; 0 lines rejected"),
        "{err}"
    );
    let got = run_python(
        dir.path(),
        "import duckdb\nprint(duckdb.sql(\"SELECT resource_id, attributes['room'], unit, epoch(timestamp)::BIGINT, mean, count, max FROM read_parquet('archive/policy=minute/**/*.parquet', hive_partitioning=true) ORDER BY ALL\").fetchall())",
    );
    // 1_700_000_040 s is minute 28_333_334 exactly: it holds :040, :045.5
    // and :070; :100 is the next minute; :170's minute is still open.
    assert_eq!(
        got.trim(),
        "[('hall-sensor', 'hall', 'celsius', 1700000040, 17.25, 1.0, 17.25), ('lab-sensor', 'lab', 'celsius', 1700000040, 21.0, 2.0, 21.5), ('lab-sensor', 'lab', 'celsius', 1700000100, 22.0, 1.0, 22.0)]"
    );
}

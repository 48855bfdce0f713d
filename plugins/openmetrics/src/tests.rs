//! Native tests of the decoder: the OpenMetrics conformance suite, real
//! scrapes from Prometheus' test data, and each rule of the mapping.

use std::path::{Path, PathBuf};

use wasmeter_guest::{Batch, SampleType};

use super::*;

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(path)
}

fn config(pairs: &[(&str, &str)]) -> Config {
    let settings = Settings::from(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>(),
    );
    Config::from_settings(&settings).unwrap()
}

#[test]
fn openmetrics_conformance_suite() {
    let root = data("openmetrics-parser-tests/parsers");
    let strict = config(&[("mode", "strict"), ("format", "openmetrics")]);
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    let mut wrong = Vec::new();
    let (mut good, mut bad) = (0, 0);
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let spec = std::fs::read_to_string(case.join("test.json")).unwrap();
        let should_parse = spec.replace(' ', "").contains("\"shouldParse\":true");
        assert!(
            should_parse || spec.replace(' ', "").contains("\"shouldParse\":false"),
            "{name}: no verdict in test.json"
        );
        assert_eq!(should_parse, !name.starts_with("bad_"), "{name}");
        if should_parse {
            good += 1;
        } else {
            bad += 1;
        }
        let input = std::fs::read(case.join("metrics")).unwrap();
        let result = parse(&input, "", 0, &strict);
        if result.is_ok() != should_parse {
            wrong.push(match result {
                Ok(_) => format!("{name}: accepted, should be refused"),
                Err(e) => format!("{name}: refused ({}), should parse", e.message),
            });
        }
    }
    assert_eq!((cases.len(), good, bad), (211, 44, 167));
    assert!(
        wrong.is_empty(),
        "{} wrong verdicts:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// `(metric, resource, unit, type, "k=v,…", timestamp, value)` per sample.
type Row = (String, String, String, SampleType, String, i64, f64);

fn rows(batch: &Batch) -> Vec<Row> {
    batch
        .samples()
        .map(|s| {
            let attrs: Vec<String> = s
                .series
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            (
                s.series.metric.clone(),
                s.series.resource_id.clone(),
                s.series.unit.clone(),
                s.series.type_,
                attrs.join(","),
                s.timestamp,
                s.value,
            )
        })
        .collect()
}

fn row(metric: &str, attrs: &str, ty: SampleType, timestamp: i64, value: f64) -> Row {
    (
        metric.into(),
        String::new(),
        String::new(),
        ty,
        attrs.into(),
        timestamp,
        value,
    )
}

/// The one row of `rows` with this metric and attributes.
fn find<'r>(rows: &'r [Row], metric: &str, attrs: &str) -> &'r Row {
    let found: Vec<&Row> = rows
        .iter()
        .filter(|r| r.0 == metric && r.4 == attrs)
        .collect();
    assert_eq!(found.len(), 1, "{metric} {{{attrs}}}");
    found[0]
}

fn rejected(parsed: &Parsed) -> Vec<(u32, &str)> {
    parsed
        .rejected
        .iter()
        .map(|r| (r.line, r.reason.as_str()))
        .collect()
}

const NOW: i64 = 1_700_000_000_000_000_000;

#[test]
fn prometheus_scrape_with_237_families() {
    let input = std::fs::read(data(
        "prometheus-textparse-testdata/alltypes.237mfs.prom.txt",
    ))
    .unwrap();
    let text = std::str::from_utf8(&input).unwrap();
    let sample_lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .count();
    let type_lines = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    assert_eq!((sample_lines, type_lines), (1857, 237));

    let strict = config(&[("mode", "strict"), ("format", "prometheus")]);
    let parsed = parse(&input, "", NOW, &strict).unwrap();
    assert_eq!(parsed.format, Format::Prometheus);
    assert_eq!(parsed.batch.len(), 1857);
    assert_eq!(parsed.families, 237);
    assert!(parsed.rejected.is_empty());
    // Every sample line is its own series.
    assert_eq!(parsed.batch.series.len(), 1857);
    assert!(parsed.batch.timestamps.iter().all(|&t| t == NOW));

    let rows = rows(&parsed.batch);
    use SampleType::{Cumulative, Gauge};
    assert_eq!(
        find(&rows, "go_gc_duration_seconds", "quantile=0.5"),
        &row(
            "go_gc_duration_seconds",
            "quantile=0.5",
            Gauge,
            NOW,
            0.000135819
        )
    );
    assert_eq!(
        find(&rows, "go_gc_duration_seconds_count", ""),
        &row(
            "go_gc_duration_seconds_count",
            "",
            Cumulative,
            NOW,
            190932.0
        )
    );
    assert_eq!(
        find(
            &rows,
            "go_gc_heap_allocs_by_size_bytes_bucket",
            "le=8.999999999999998"
        ),
        &row(
            "go_gc_heap_allocs_by_size_bytes_bucket",
            "le=8.999999999999998",
            Cumulative,
            NOW,
            2.279966416e9
        )
    );
    assert_eq!(
        find(&rows, "go_gc_cycles_automatic_gc_cycles_total", ""),
        &row(
            "go_gc_cycles_automatic_gc_cycles_total",
            "",
            Cumulative,
            NOW,
            190932.0
        )
    );
    assert_eq!(
        find(&rows, "prometheus_tsdb_head_chunks_created_total", ""),
        &row(
            "prometheus_tsdb_head_chunks_created_total",
            "",
            Cumulative,
            NOW,
            4.893432e6
        )
    );
    assert_eq!(find(&rows, "go_gc_gogc_percent", "").3, Gauge);
    // The same text read as "auto" with its content type gives the same.
    let auto = parse(
        &input,
        "text/plain; version=0.0.4; charset=utf-8",
        NOW,
        &config(&[("mode", "strict")]),
    )
    .unwrap();
    assert_eq!(auto.format, Format::Prometheus);
    assert_eq!(auto.batch.series, parsed.batch.series);
    let bits = |b: &Batch| b.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&auto.batch), bits(&parsed.batch));
}

#[test]
fn openmetrics_scrape_with_created_and_negative_buckets() {
    let input = std::fs::read(data("prometheus-textparse-testdata/alltypes.5mfs.om.txt")).unwrap();
    let sample_lines = input
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
        .count();
    assert_eq!(sample_lines, 53);
    // The file breaks three OpenMetrics 1.0 rules (the conformance cases
    // bad_counter_values_5, _17 and _19): a histogram `_sum` and a summary
    // `_sum` that are negative, and a negative quantile. Strict mode stops
    // at the first.
    let strict = config(&[("mode", "strict")]);
    let err = parse(
        &input,
        "application/openmetrics-text; version=1.0.0",
        0,
        &strict,
    )
    .unwrap_err();
    assert_eq!(err.kind, wasmeter_guest::ErrorKind::InvalidInput);
    assert_eq!(
        err.message,
        "line 33: `rpc_durations_histogram_seconds_sum` value -0.00008452185437166741 is negative: it counts"
    );

    let parsed = parse(
        &input,
        "application/openmetrics-text; version=1.0.0",
        0,
        &Config::default(),
    )
    .unwrap();
    assert_eq!(parsed.format, Format::OpenMetrics);
    assert_eq!(
        rejected(&parsed),
        vec![
            (
                33,
                "`rpc_durations_histogram_seconds_sum` value -0.00008452185437166741 is negative: it counts"
            ),
            (44, "quantile value -0.000005066758674917046 is negative"),
            (
                47,
                "`rpc_durations_seconds_sum` value -0.00008452185437166741 is negative: it counts"
            ),
        ]
    );
    assert_eq!(parsed.batch.len(), 50);
    assert_eq!(parsed.families, 5);
    let rows = rows(&parsed.batch);
    use SampleType::{Cumulative, Gauge};
    assert_eq!(
        rows[0],
        row("go_build_info", "checksum=,path=,version=", Gauge, 0, 1.0)
    );
    assert_eq!(
        find(
            &rows,
            "promhttp_metric_handler_errors_created",
            "cause=encoding"
        ),
        &row(
            "promhttp_metric_handler_errors_created",
            "cause=encoding",
            Gauge,
            0,
            1.726839813016397e9
        )
    );
    assert_eq!(
        find(
            &rows,
            "promhttp_metric_handler_errors_total",
            "cause=gathering"
        ),
        &row(
            "promhttp_metric_handler_errors_total",
            "cause=gathering",
            Cumulative,
            0,
            0.0
        )
    );
    assert_eq!(
        find(
            &rows,
            "rpc_durations_histogram_seconds_bucket",
            "le=-0.00099"
        ),
        &row(
            "rpc_durations_histogram_seconds_bucket",
            "le=-0.00099",
            Cumulative,
            0,
            0.0
        )
    );
    // A bucket with an exemplar: the exemplar is not a sample.
    assert_eq!(
        find(
            &rows,
            "rpc_durations_histogram_seconds_bucket",
            "le=-0.0002899999999999998"
        ),
        &row(
            "rpc_durations_histogram_seconds_bucket",
            "le=-0.0002899999999999998",
            Cumulative,
            0,
            3.0
        )
    );
    assert_eq!(
        find(&rows, "rpc_durations_histogram_seconds_count", ""),
        &row(
            "rpc_durations_histogram_seconds_count",
            "",
            Cumulative,
            0,
            15.0
        )
    );
    assert_eq!(
        find(
            &rows,
            "rpc_durations_seconds",
            "quantile=0.99,service=uniform"
        ),
        &row(
            "rpc_durations_seconds",
            "quantile=0.99,service=uniform",
            Gauge,
            0,
            0.00018641524538180192
        )
    );
    assert_eq!(
        find(&rows, "rpc_durations_seconds_created", "service=normal"),
        &row(
            "rpc_durations_seconds_created",
            "service=normal",
            Gauge,
            0,
            1.726839813016714e9
        )
    );
    assert_eq!(
        find(&rows, "rpc_requests_total", "service=uniform"),
        &row("rpc_requests_total", "service=uniform", Cumulative, 0, 11.0)
    );
}

#[test]
fn openmetrics_histogram_file() {
    let input = std::fs::read(data("prometheus-textparse-testdata/1histogram.om.txt")).unwrap();
    let strict = config(&[
        ("mode", "strict"),
        ("format", "openmetrics"),
        ("resource_id", "h:1"),
    ]);
    let parsed = parse(&input, "", 7, &strict).unwrap();
    assert_eq!((parsed.batch.len(), parsed.families), (42, 1));
    let rows = rows(&parsed.batch);
    let attrs = "address=0.0.0.0,generation=20,le=+Inf,port=5003";
    let inf = find(&rows, "golang_manual_histogram_seconds_bucket", attrs);
    assert_eq!(
        inf,
        &(
            "golang_manual_histogram_seconds_bucket".to_string(),
            "h:1".to_string(),
            String::new(),
            SampleType::Cumulative,
            attrs.to_string(),
            7,
            1.0
        )
    );
    let sum = find(
        &rows,
        "golang_manual_histogram_seconds_sum",
        "address=0.0.0.0,generation=20,port=5002",
    );
    assert_eq!((sum.3, sum.6), (SampleType::Cumulative, 10.0));
}

#[test]
fn nan_and_infinities_are_kept() {
    let om = b"# TYPE a gauge\na{x=\"n\"} NaN\na{x=\"p\"} +Inf\na{x=\"m\"} -Inf\na{x=\"i\"} +infinity\n# EOF\n";
    let parsed = parse(om, "", 0, &config(&[("mode", "strict")])).unwrap();
    let v = &parsed.batch.values;
    assert_eq!(v.len(), 4);
    assert!(v[0].is_nan());
    assert_eq!(v[0].to_bits(), f64::NAN.to_bits());
    assert_eq!(&v[1..], &[f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY]);

    let prom = b"a{x=\"n\"} nan\na{x=\"p\"} Inf\na{x=\"m\"} -Inf\na{x=\"q\"} +inf\n";
    let parsed = parse(prom, "text/plain", 0, &config(&[("mode", "strict")])).unwrap();
    let v = &parsed.batch.values;
    assert!(v[0].is_nan());
    assert_eq!(&v[1..], &[f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY]);
    // `+NaN` is no number in either format.
    let err = parse(b"a +NaN\n", "text/plain", 0, &config(&[("mode", "strict")])).unwrap_err();
    assert_eq!(
        err.message,
        "line 1: bad value \"+NaN\": expected a number (such as 1, -2.5e3, +Inf, NaN)"
    );
}

#[test]
fn lenient_keeps_good_lines_and_names_bad_ones() {
    let scrape = "\
# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code=\"200\",method=\"get\"} 1027 1395066363000
http_requests_total{code=\"400\",method=\"post\"} 3x 1395066363000
http_requests_total{code=\"500\" method=\"get\"} 2

# TYPE temperature thermometer
temperature{room=\"kitchen\"} 21.5
temperature{room=\"attic\"} 30 -12
up 1
";
    let parsed = parse(
        scrape.as_bytes(),
        "text/plain; version=0.0.4",
        NOW,
        &Config::default(),
    )
    .unwrap();
    assert_eq!(
        rejected(&parsed),
        vec![
            (
                4,
                "bad value \"3x\": expected a number (such as 1, -2.5e3, +Inf, NaN)"
            ),
            (
                5,
                "expected `,` or `}` after the value of label `code`, found 'm'"
            ),
            (
                7,
                "bad metric type \"thermometer\" for `temperature`: expected counter, gauge, histogram, summary or untyped"
            ),
        ]
    );
    use SampleType::{Cumulative, Gauge};
    assert_eq!(
        rows(&parsed.batch),
        vec![
            row(
                "http_requests_total",
                "code=200,method=get",
                Cumulative,
                1_395_066_363_000_000_000,
                1027.0
            ),
            // Its TYPE line was refused: untyped.
            row("temperature", "room=kitchen", Gauge, NOW, 21.5),
            row("temperature", "room=attic", Gauge, -12_000_000, 30.0),
            row("up", "", Gauge, NOW, 1.0),
        ]
    );
    assert_eq!(parsed.families, 3);
    // Strict: the first bad line fails the call.
    let err = parse(scrape.as_bytes(), "", NOW, &config(&[("mode", "strict")])).unwrap_err();
    assert_eq!(
        err.message,
        "line 4: bad value \"3x\": expected a number (such as 1, -2.5e3, +Inf, NaN)"
    );
}

#[test]
fn settings_are_checked() {
    let err = |pairs: &[(&str, &str)]| {
        let settings = Settings::from(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>(),
        );
        let e = OpenMetrics::init(settings).err().unwrap();
        assert_eq!(e.kind, wasmeter_guest::ErrorKind::InvalidSettings);
        e.message
    };
    assert_eq!(
        err(&[("mode", "picky")]),
        "setting `mode`: expected lenient or strict, got \"picky\""
    );
    assert_eq!(
        err(&[("format", "json")]),
        "setting `format`: expected auto, prometheus or openmetrics, got \"json\""
    );
    assert_eq!(
        err(&[("resource_label", "1x")]),
        "setting `resource_label`: expected a label name ([a-zA-Z_][a-zA-Z0-9_]*) or \"\", got \"1x\""
    );
    assert_eq!(
        err(&[("precision", "ms")]),
        "unknown setting `precision` (expected mode, format, resource_label or resource_id)"
    );
    assert_eq!(
        Config::from_settings(&Settings::default()).unwrap(),
        Config::default()
    );
    assert_eq!(
        config(&[
            ("mode", "strict"),
            ("format", "prometheus"),
            ("resource_label", "host"),
            ("resource_id", "t:9")
        ]),
        Config {
            mode: Mode::Strict,
            format: Format::Prometheus,
            resource_label: "host".into(),
            resource_id: "t:9".into(),
        }
    );
}

#[test]
fn resource_label_and_resource_id() {
    let text = b"up{instance=\"a:1\",job=\"x\"} 1\nup{job=\"x\"} 0\n";
    let parsed = parse(text, "", 5, &config(&[("resource_id", "target:9100")])).unwrap();
    let r = rows(&parsed.batch);
    assert_eq!((r[0].1.as_str(), r[0].4.as_str()), ("a:1", "job=x"));
    assert_eq!((r[1].1.as_str(), r[1].4.as_str()), ("target:9100", "job=x"));

    let parsed = parse(text, "", 5, &config(&[("resource_label", "job")])).unwrap();
    let r = rows(&parsed.batch);
    assert_eq!((r[0].1.as_str(), r[0].4.as_str()), ("x", "instance=a:1"));
    assert_eq!((r[1].1.as_str(), r[1].4.as_str()), ("x", ""));

    // `""`: no label is the resource.
    let parsed = parse(
        text,
        "",
        5,
        &config(&[("resource_label", ""), ("resource_id", "r")]),
    )
    .unwrap();
    let r = rows(&parsed.batch);
    assert_eq!(
        (r[0].1.as_str(), r[0].4.as_str()),
        ("r", "instance=a:1,job=x")
    );
}

#[test]
fn timestamps_to_nanoseconds() {
    // OpenMetrics: seconds, exact in decimal.
    let om = b"a 1 1.5e3\na 2 1700000000.123456789\na 3 1700000000123\n# EOF\n";
    let parsed = parse(
        om,
        "application/openmetrics-text",
        0,
        &config(&[("mode", "strict")]),
    )
    .unwrap();
    assert_eq!(
        parsed.batch.timestamps,
        vec![1_500_000_000_000, 1_700_000_000_123_456_789, i64::MAX]
    );
    // Prometheus: integer milliseconds.
    let prom = b"a 1 1700000000123\na 2 -1\na 3\n";
    let parsed = parse(prom, "text/plain", 42, &config(&[("mode", "strict")])).unwrap();
    assert_eq!(
        parsed.batch.timestamps,
        vec![1_700_000_000_123_000_000, -1_000_000, 42]
    );
    let err = parse(
        b"a 1 1.5\n",
        "text/plain",
        0,
        &config(&[("mode", "strict")]),
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "line 1: bad timestamp \"1.5\": expected integer milliseconds since the unix epoch"
    );
}

#[test]
fn auto_format_by_content_type_and_eof() {
    // `a 1 1` has a timestamp of 1 s in OpenMetrics, 1 ms in Prometheus.
    let doc = b"# TYPE a gauge\na 1 1\n# EOF\n";
    let lenient = Config::default();
    let ts = |content_type: &str| {
        let p = parse(doc, content_type, 0, &lenient).unwrap();
        (p.format, p.batch.timestamps[0])
    };
    assert_eq!(ts(""), (Format::OpenMetrics, 1_000_000_000));
    assert_eq!(
        ts("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        (Format::OpenMetrics, 1_000_000_000)
    );
    assert_eq!(
        ts("Application/OpenMetrics-Text"),
        (Format::OpenMetrics, 1_000_000_000)
    );
    assert_eq!(
        ts("text/plain; version=0.0.4"),
        (Format::Prometheus, 1_000_000)
    );
    assert_eq!(
        ts("application/octet-stream"),
        (Format::OpenMetrics, 1_000_000_000)
    );
    // Without `# EOF` last (trailing blank lines do not count) it is Prometheus.
    let p = parse(b"a 1 1\n", "", 0, &lenient).unwrap();
    assert_eq!(
        (p.format, p.batch.timestamps[0]),
        (Format::Prometheus, 1_000_000)
    );
    let p = parse(b"a 1 1\n# EOF\n\n \n", "", 0, &lenient).unwrap();
    assert_eq!(p.format, Format::OpenMetrics);
    assert_eq!(
        rejected(&p),
        vec![
            (3, "text after `# EOF` (line 2): it must be the last line"),
            (4, "text after `# EOF` (line 2): it must be the last line")
        ]
    );
    // The setting wins over the content type.
    let p = parse(doc, "text/plain", 0, &config(&[("format", "openmetrics")])).unwrap();
    assert_eq!(p.format, Format::OpenMetrics);
    let p = parse(
        doc,
        "application/openmetrics-text",
        0,
        &config(&[("format", "prometheus")]),
    )
    .unwrap();
    assert_eq!(p.format, Format::Prometheus);
}

#[test]
fn openmetrics_lenient_and_whole_document_faults() {
    let doc = b"# TYPE a counter\n# UNIT a seconds\n# TYPE b_seconds counter\n# UNIT b_seconds seconds\nb_seconds_total 1\nb_seconds_created 5\nb_seconds_total -3\nc \xff 1\nc 2\n# EOF\n";
    let parsed = parse(doc, "", 0, &Config::default()).unwrap();
    assert_eq!(
        rejected(&parsed),
        vec![
            (
                2,
                "unit `seconds` does not end the family name `a` (expected a name ending in `_seconds`)"
            ),
            (7, "`b_seconds_total` value -3 is negative: it counts"),
            (8, "line is not valid utf-8 (bad byte at column 3)"),
        ]
    );
    use SampleType::{Cumulative, Gauge};
    let r = rows(&parsed.batch);
    let with_unit = |metric: &str, ty, value| {
        (
            metric.to_string(),
            String::new(),
            "seconds".to_string(),
            ty,
            String::new(),
            0,
            value,
        )
    };
    assert_eq!(
        r,
        vec![
            with_unit("b_seconds_total", Cumulative, 1.0),
            with_unit("b_seconds_created", Gauge, 5.0),
            row("c", "", Gauge, 0, 2.0),
        ]
    );
    assert_eq!(parsed.families, 3);
    // No `# EOF`: refused as a whole in both modes (it may be truncated).
    let err = parse(
        b"# TYPE a gauge\na 1\n",
        "application/openmetrics-text",
        0,
        &Config::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind, wasmeter_guest::ErrorKind::InvalidInput);
    assert_eq!(
        err.message,
        "line 2: missing `# EOF` at the end of the openmetrics document (it may be truncated)"
    );
    // A histogram point's own rules are judged when it ends (strict).
    let hist = b"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 3\nh_sum 4\n# EOF\n";
    let err = parse(hist, "", 0, &config(&[("mode", "strict")])).unwrap_err();
    assert_eq!(
        err.message,
        "line 5: histogram `h` {}: count 3 differs from the `+Inf` bucket's 2"
    );
    assert!(
        parse(hist, "", 0, &Config::default())
            .unwrap()
            .rejected
            .is_empty()
    );
}

#[test]
fn decoder_trait_returns_batch_and_rejected_lines() {
    let mut d =
        OpenMetrics::init(Settings::from(vec![("resource_id".into(), "h:1".into())])).unwrap();
    let out = d.decode(b"up 1\nup{\n".to_vec(), String::new(), 9).unwrap();
    assert_eq!(out.batch.values, vec![1.0]);
    assert_eq!(out.batch.series[0].resource_id, "h:1");
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].line, 2);
    assert_eq!(
        out.rejected[0].reason,
        "unterminated label set: expected `}`"
    );
}

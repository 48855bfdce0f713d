//! Native unit tests: the Go reference corpus through [`parse`], then the
//! decoder's mapping, lenient mode and settings.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::*;

// ---------------------------------------------------------------- corpus

#[derive(Deserialize)]
struct Corpus {
    decode: BTreeMap<String, Case>,
}

#[derive(Deserialize)]
struct Case {
    input: Input,
    output: Output,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Input {
    text: Text,
    default_time: i64,
    precision: String,
}

/// The input document: JSON text, or base64 when it is not UTF-8.
#[derive(Deserialize)]
#[serde(untagged)]
enum Text {
    Plain(String),
    Binary { binary: String },
}

impl Text {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Text::Plain(s) => s.as_bytes().to_vec(),
            Text::Binary { binary } => base64(binary),
        }
    }
}

/// Decodes standard base64 (padding optional).
fn base64(s: &str) -> Vec<u8> {
    let sextet = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c:?}"),
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        acc = (acc << 6) | u32::from(sextet(c));
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[derive(Deserialize)]
struct Output {
    #[serde(default)]
    result: Option<Vec<CorpusPoint>>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct CorpusPoint {
    time: i64,
    name: String,
    tags: Vec<KeyValue<String>>,
    fields: Vec<KeyValue<CorpusValue>>,
}

#[derive(Deserialize)]
struct KeyValue<V> {
    key: String,
    value: V,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum CorpusValue {
    Float(f64),
    Int(i64),
    Uint(u64),
    String(String),
    Bool(bool),
}

/// A point as comparable text-free data: `(name, tags, fields, time)`.
type Flat = (
    String,
    Vec<(String, String)>,
    Vec<(String, FieldValue)>,
    i64,
);

fn flat_expected(p: CorpusPoint) -> Flat {
    let tags = p.tags.into_iter().map(|t| (t.key, t.value)).collect();
    let fields = p
        .fields
        .into_iter()
        .map(|f| {
            let v = match f.value {
                CorpusValue::Float(x) => FieldValue::Float(x),
                CorpusValue::Int(x) => FieldValue::Int(x),
                CorpusValue::Uint(x) => FieldValue::UInt(x),
                CorpusValue::String(x) => FieldValue::String(x),
                CorpusValue::Bool(x) => FieldValue::Bool(x),
            };
            (f.key, v)
        })
        .collect();
    (p.name, tags, fields, p.time)
}

fn flat_actual(p: Point) -> Flat {
    (p.measurement, p.tags, p.fields, p.time_ns)
}

fn corpus_precision(p: &str) -> Precision {
    match p {
        "1ns" => Precision::Ns,
        "1µs" => Precision::Us,
        "1ms" => Precision::Ms,
        "1s" => Precision::S,
        other => panic!("corpus precision {other:?}"),
    }
}

#[test]
fn go_reference_corpus() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/influxdb-line-protocol-corpus/corpus-subset.json"
    );
    let corpus: Corpus = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(corpus.decode.len(), 735);
    let mut mismatches = Vec::new();
    // Cases where only serde_json's float reading differs (see below).
    let mut one_ulp = Vec::new();
    let total = corpus.decode.len();
    for (key, case) in corpus.decode {
        let precision = corpus_precision(&case.input.precision);
        let text = case.input.text.bytes();
        let got = parse_strict(&text, precision, case.input.default_time);
        match (case.output.result, case.output.error, got) {
            (_, Some(_), Ok(points)) => mismatches.push(format!(
                "{key}: {:?} should fail, parsed as {points:?}",
                String::from_utf8_lossy(&text)
            )),
            (_, Some(_), Err(_)) => {}
            (expected, None, Ok(points)) => {
                let expected: Vec<Flat> = expected
                    .unwrap_or_default()
                    .into_iter()
                    .map(flat_expected)
                    .collect();
                let actual: Vec<Flat> = points.into_iter().map(flat_actual).collect();
                if expected == actual {
                    continue;
                }
                if same_but_json_rounding(&expected, &actual) {
                    one_ulp.push(key);
                    continue;
                }
                {
                    mismatches.push(format!(
                        "{key}: {:?}\n  expected {expected:?}\n  got      {actual:?}",
                        String::from_utf8_lossy(&text)
                    ));
                }
            }
            (_, None, Err(e)) => mismatches.push(format!(
                "{key}: {:?} should parse, failed: {e}",
                String::from_utf8_lossy(&text)
            )),
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {total} corpus cases disagree:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    // The one such case: its exact value is checked in `long_float_is_correctly_rounded`.
    assert_eq!(one_ulp, ["4214870ca5dcdce8b74ad784cb34d97e"]);
}

/// serde_json (without its `float_roundtrip` feature, which this crate
/// does not switch on for the whole workspace) may read a long float one
/// ULP off. True when `a` and `b` differ only by such floats.
fn same_but_json_rounding(a: &[Flat], b: &[Flat]) -> bool {
    let close = |x: &FieldValue, y: &FieldValue| match (x, y) {
        (FieldValue::Float(x), FieldValue::Float(y)) => x.to_bits().abs_diff(y.to_bits()) <= 1,
        _ => x == y,
    };
    a.len() == b.len()
        && a.iter().zip(b).all(|(a, b)| {
            a.0 == b.0
                && a.1 == b.1
                && a.3 == b.3
                && a.2.len() == b.2.len()
                && a.2
                    .iter()
                    .zip(&b.2)
                    .all(|(x, y)| x.0 == y.0 && close(&x.1, &y.1))
        })
}

/// The corpus case serde_json misreads: its JSON says
/// `1.7976931348623157e+53`, which rustc reads exactly.
#[test]
fn long_float_is_correctly_rounded() {
    let p = parse_strict(
        b"u e=179769313486231570814527423731704356798070567525844996",
        Precision::Ns,
        0,
    )
    .unwrap();
    assert_eq!(
        p[0].fields,
        [("e".to_string(), FieldValue::Float(1.7976931348623157e53))]
    );
}

// ---------------------------------------------------------------- decoder

fn decoder(settings: &[(&str, &str)]) -> InfluxLine {
    let pairs = settings
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect::<Vec<_>>();
    InfluxLine::init(Settings::from(pairs)).unwrap()
}

/// `(metric, resource, attributes as "k=v,…", time, value)` of each sample.
fn rows(batch: &wasmeter_guest::Batch) -> Vec<(String, String, String, i64, f64)> {
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
                attrs.join(","),
                s.timestamp,
                s.value,
            )
        })
        .collect()
}

fn row(
    metric: &str,
    resource: &str,
    attrs: &str,
    t: i64,
    v: f64,
) -> (String, String, String, i64, f64) {
    (metric.into(), resource.into(), attrs.into(), t, v)
}

const NOW: i64 = 1_700_000_000_123_456_789;

#[test]
fn mapping_to_the_batch() {
    let d = decoder(&[
        ("unit", "B"),
        ("type", "cumulative"),
        ("resource_id", "fallback"),
    ]);
    let doc = b"net,host=web-1,if=eth0,dir=rx value=1.5,packets=42i,big=18446744073709551615u,up=t,down=FALSE,note=\"x\" 1700000000000000000\n\
                net,if=eth1 value=-2e3,msg=\"a\",msg2=\"b\"\n\
                load,host=web\\ 2 value=9007199254740993i 5\n";
    let out = d.decode_document(doc, NOW).unwrap();
    assert!(out.decoded.rejected.is_empty());
    assert_eq!(out.strings_skipped, 3);
    let t1 = 1_700_000_000_000_000_000;
    assert_eq!(
        rows(&out.decoded.batch),
        vec![
            row("net", "web-1", "dir=rx,if=eth0", t1, 1.5),
            row("net.packets", "web-1", "dir=rx,if=eth0", t1, 42.0),
            row(
                "net.big",
                "web-1",
                "dir=rx,if=eth0",
                t1,
                18446744073709551615u64 as f64
            ),
            row("net.up", "web-1", "dir=rx,if=eth0", t1, 1.0),
            row("net.down", "web-1", "dir=rx,if=eth0", t1, 0.0),
            row("net", "fallback", "if=eth1", NOW, -2000.0),
            // 2^53 + 1 is not an f64: the nearest one (2^53).
            row("load", "web 2", "", 5, 9007199254740992.0),
        ]
    );
    for s in &out.decoded.batch.series {
        assert_eq!((s.unit.as_str(), s.type_), ("B", SampleType::Cumulative));
    }
    // The defaults: gauge, no unit, "" resource; another resource tag.
    let d = decoder(&[("resource_tag", "if")]);
    let out = d.decode_document(b"net,host=h,if=eth0 rx=1", NOW).unwrap();
    assert_eq!(
        rows(&out.decoded.batch),
        vec![row("net.rx", "eth0", "host=h", NOW, 1.0)]
    );
    let s = &out.decoded.batch.series[0];
    assert_eq!((s.unit.as_str(), s.type_), ("", SampleType::Gauge));
    let out = d.decode_document(b"net rx=1", NOW).unwrap();
    assert_eq!(
        rows(&out.decoded.batch),
        vec![row("net.rx", "", "", NOW, 1.0)]
    );
}

#[test]
fn timestamps_per_precision() {
    for (name, ts, no_ts) in [
        ("ns", 7, NOW),
        ("us", 7_000, 1_700_000_000_123_456_000),
        ("µs", 7_000, 1_700_000_000_123_456_000),
        ("ms", 7_000_000, 1_700_000_000_123_000_000),
        ("s", 7_000_000_000, 1_700_000_000_000_000_000),
    ] {
        let d = decoder(&[("precision", name)]);
        let out = d.decode_document(b"m v=1 7\nm v=2\nm v=3 -7", NOW).unwrap();
        let times: Vec<i64> = out.decoded.batch.timestamps.clone();
        assert_eq!(times, vec![ts, no_ts, -ts], "precision {name}");
    }
    // Beyond an i64 of ns: a bad line.
    let d = decoder(&[("precision", "s")]);
    let out = d
        .decode_document(b"m v=1 9223372036\nm v=1 9223372037", NOW)
        .unwrap();
    assert_eq!(
        out.decoded.batch.timestamps,
        vec![9_223_372_036_000_000_000]
    );
    assert_eq!(
        out.decoded.rejected,
        vec![RejectedLine {
            line: 2,
            reason: "timestamp 9223372037 out of range: more than an i64 of ns at this precision"
                .into()
        }]
    );
}

#[test]
fn lenient_keeps_good_lines_and_rejects_bad_ones() {
    let doc = "# header comment\n\
               cpu,host=a usage=1 10\n\
               cpu,host=a usage=oops 20\n\
               \n\
               cpu,host=a note=\"two\nlines\",usage=2 30\n\
               cpu,host=a,host=b usage=3 40\n\
               cpu,host=a usage=4 50\r\n\
               cpu,host=a\n\
               cpu,host=a usage=5 60\n";
    let out = decoder(&[]).decode_document(doc.as_bytes(), NOW).unwrap();
    assert_eq!(
        rows(&out.decoded.batch),
        vec![
            row("cpu.usage", "a", "", 10, 1.0),
            row("cpu.usage", "a", "", 30, 2.0),
            row("cpu.usage", "a", "", 50, 4.0),
            row("cpu.usage", "a", "", 60, 5.0),
        ]
    );
    assert_eq!(out.strings_skipped, 1);
    let rejected = |line, reason: &str| RejectedLine {
        line,
        reason: reason.into(),
    };
    assert_eq!(
        out.decoded.rejected,
        vec![
            rejected(
                3,
                "field \"usage\": invalid value \"oops\" (expected a number, 1i, 1u, a boolean or a quoted string)"
            ),
            rejected(7, "duplicate tag key \"host\""),
            rejected(
                9,
                "expected ' ' and a field set after the tags, found end of line"
            ),
        ]
    );

    // Strict: the first bad line fails the call.
    let e = decoder(&[("mode", "strict")])
        .decode_document(doc.as_bytes(), NOW)
        .unwrap_err();
    assert_eq!(e.kind, wasmeter_guest::ErrorKind::InvalidInput);
    assert_eq!(
        e.message,
        "line 3: field \"usage\": invalid value \"oops\" (expected a number, 1i, 1u, a boolean or a quoted string)"
    );
    // Lines that are all good pass in strict mode too.
    let out = decoder(&[("mode", "strict")])
        .decode_document(b"a v=1\nb v=2\n", NOW)
        .unwrap();
    assert_eq!(out.decoded.batch.len(), 2);
}

#[test]
fn invalid_utf8_is_a_bad_line() {
    let out = decoder(&[])
        .decode_document(b"m v=1 1\nm,t=a\xff v=1 2\nm s=\"\xfe\" 3\nm v=4 4", NOW)
        .unwrap();
    assert_eq!(out.decoded.batch.timestamps, vec![1, 4]);
    let lines: Vec<u32> = out.decoded.rejected.iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![2, 3]);
    assert!(
        out.decoded.rejected[0]
            .reason
            .starts_with("invalid utf-8 in tag value")
    );
}

#[test]
fn settings_errors_name_key_and_value() {
    let err = |settings: &[(&str, &str)]| {
        let pairs = settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>();
        let e = InfluxLine::init(Settings::from(pairs)).unwrap_err();
        assert_eq!(e.kind, wasmeter_guest::ErrorKind::InvalidSettings);
        e.message
    };
    assert_eq!(
        err(&[("mode", "loose")]),
        "setting `mode`: expected lenient or strict, got \"loose\""
    );
    assert_eq!(
        err(&[("precision", "min")]),
        "setting `precision`: expected ns, us, µs, ms or s, got \"min\""
    );
    assert_eq!(
        err(&[("precision", "1ns")]),
        "setting `precision`: expected ns, us, µs, ms or s, got \"1ns\""
    );
    assert_eq!(
        err(&[("type", "counter")]),
        "setting `type`: expected gauge, cumulative or delta, got \"counter\""
    );
    assert_eq!(
        err(&[("resource", "x")]),
        "unknown setting `resource` (expected mode, precision, resource_tag, resource_id, unit or type)"
    );
    // Every documented value is accepted.
    for (k, v) in [
        ("mode", "lenient"),
        ("mode", "strict"),
        ("precision", "ns"),
        ("precision", "us"),
        ("precision", "µs"),
        ("precision", "ms"),
        ("precision", "s"),
        ("type", "gauge"),
        ("type", "cumulative"),
        ("type", "delta"),
        ("resource_tag", ""),
        ("unit", "%"),
        ("resource_id", "r"),
    ] {
        decoder(&[(k, v)]);
    }
}

#[test]
fn empty_and_comment_only_documents_give_nothing() {
    for doc in [&b""[..], b"\n\n", b"# only\n# comments", b"  \r\n"] {
        let out = decoder(&[("mode", "strict")])
            .decode_document(doc, NOW)
            .unwrap();
        assert!(out.decoded.batch.is_empty() && out.decoded.rejected.is_empty());
    }
}

/// Random documents over the grammar's special bytes: no panic, every
/// byte accounted for (each bad line is reported once, on a line that
/// exists), and lenient agrees with strict where strict succeeds.
#[test]
fn random_documents_do_not_panic() {
    const ALPHABET: &[u8] = b"m=, \"\\\n\r\t#1.-eiuTf\x01\xff";
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        let mut doc = Vec::new();
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
        let len = (state >> 59) as usize + 1;
        for _ in 0..len * 2 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            doc.push(ALPHABET[(state >> 33) as usize % ALPHABET.len()]);
        }
        let lines = 1 + doc.iter().filter(|&&b| b == b'\n').count() as u32;
        let lenient = parse(&doc, Precision::Ms, NOW);
        let mut last = 0;
        for entry in &lenient {
            let line = match entry {
                Ok(p) => p.line,
                Err(b) => b.line,
            };
            assert!(line >= last && line <= lines, "{doc:?}: line {line}");
            last = line;
        }
        if let Ok(points) = parse_strict(&doc, Precision::Ms, NOW) {
            let ok: Vec<Point> = lenient.into_iter().map(Result::unwrap).collect();
            assert_eq!(points, ok);
        }
    }
}

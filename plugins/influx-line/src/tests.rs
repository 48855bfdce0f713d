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
type Flat = (String, Vec<(String, String)>, Vec<(String, FieldValue)>, i64);

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
                let expected: Vec<Flat> = expected.unwrap_or_default().into_iter().map(flat_expected).collect();
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
                && a.2.iter().zip(&b.2).all(|(x, y)| x.0 == y.0 && close(&x.1, &y.1))
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
    assert_eq!(p[0].fields, [("e".to_string(), FieldValue::Float(1.7976931348623157e53))]);
}

//! Native tests of the decoder: the OpenMetrics conformance suite, real
//! scrapes from Prometheus' test data, and each rule of the mapping.

use std::path::{Path, PathBuf};

use wasmeter_guest::SampleType;

use super::*;

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data").join(path)
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
    assert!(wrong.is_empty(), "{} wrong verdicts:\n{}", wrong.len(), wrong.join("\n"));
}


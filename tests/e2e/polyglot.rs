//! The unit-conversion transformer in four languages: Rust
//! (`builtin:unit-conversion`), C, Python and JavaScript, each built by its
//! own `plugins/unit-conversion-<lang>/build.sh`. The same inputs must give
//! the same outputs, bit for bit, the same settings error, and the same
//! result in a real pipeline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use arrow::array::{AsArray, Float64Array};
use arrow::datatypes::Int32Type;

use crate::support::{data_dir, wasmeter};

/// The repository's root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The compile cache the tests share (a Python component takes seconds to
/// compile; later tests, and later runs, load it from here).
fn cache_dir() -> PathBuf {
    root().join("target/polyglot/cache")
}

/// Builds `plugins/<dir>/build.sh` once per test process, one build at a
/// time, and returns the component's path.
pub fn build(dir: &str) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get(dir) {
        return p.clone();
    }
    let out = root()
        .join("target/polyglot/out")
        .join(format!("{dir}.wasm"));
    let script = root().join("plugins").join(dir).join("build.sh");
    let result = std::process::Command::new("bash")
        .arg(&script)
        .arg(&out)
        .env("WASMETER", env!("CARGO_BIN_EXE_wasmeter"))
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "{} failed ({}):\n{}\n{}",
        script.display(),
        result.status,
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    built.insert(dir.to_owned(), out.clone());
    out
}

/// The plugin argument for `lang`: the built-in Rust plugin, or a build.
fn plugin(lang: &str) -> String {
    match lang {
        "rust" => "builtin:unit-conversion".into(),
        other => build(&format!("unit-conversion-{other}"))
            .display()
            .to_string(),
    }
}

/// Runs `wasmeter plugin test` and returns (success, stderr).
fn plugin_test(
    plugin: &str,
    input: &Path,
    settings: &[&str],
    expect: Option<&Path>,
) -> (bool, String) {
    let mut cmd = wasmeter();
    cmd.args(["plugin", "test", plugin, "--format", "none", "--input"])
        .arg(input)
        .arg("--cache-dir")
        .arg(cache_dir())
        .args(["--memory", "512MiB"]);
    for s in settings {
        cmd.args(["--setting", s]);
    }
    if let Some(e) = expect {
        cmd.arg("--expect").arg(e);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Both equivalence cases of `tests/data/polyglot`, then the settings
/// error, for one language.
fn converts_exactly(lang: &str) {
    let p = plugin(lang);
    let data = data_dir().join("polyglot");
    let (ok, err) = plugin_test(
        &p,
        &data.join("ns.csv"),
        &["scale=1e-9", "unit=s", "metric=cpu.seconds"],
        Some(&data.join("ns.expected.csv")),
    );
    assert!(ok && err.contains("output matches"), "{lang}: {err}");
    assert!(
        err.contains("6 samples in, 6 samples in 3 series out"),
        "{lang}: {err}"
    );
    let (ok, err) = plugin_test(
        &p,
        &data.join("celsius.csv"),
        &["scale=1.8", "offset=32", "unit=[degF]"],
        Some(&data.join("celsius.expected.csv")),
    );
    assert!(ok && err.contains("output matches"), "{lang}: {err}");
    // A wrong expectation is caught: the Celsius output is not the ns one.
    let (ok, err) = plugin_test(
        &p,
        &data.join("celsius.csv"),
        &["scale=1.8", "offset=32"],
        Some(&data.join("celsius.expected.csv")),
    );
    assert!(!ok && err.contains("output differs"), "{lang}: {err}");
    let (ok, err) = plugin_test(&p, &data.join("celsius.csv"), &["scale=x"], None);
    assert!(!ok, "{lang}: {err}");
    assert!(
        err.contains(r#"invalid-settings: setting `scale`: expected a number, got "x""#),
        "{lang}: {err}"
    );
}

#[test]
fn rust_converts_units_exactly() {
    converts_exactly("rust");
}

#[test]
fn c_converts_units_exactly_like_rust() {
    converts_exactly("c");
}

#[test]
fn python_converts_units_exactly_like_rust() {
    converts_exactly("py");
}

#[test]
fn javascript_converts_units_exactly_like_rust() {
    converts_exactly("js");
}

/// The memory meters of the /proc fixture through `lang`'s plugin in a
/// real pipeline, as (metric, unit, value) rows.
fn memory_in_mib(lang: &str) -> Vec<(String, String, f64)> {
    let dir = tempfile::tempdir().unwrap();
    let runtime = wasmeter::plugin::Runtime::with_cache_dir(&cache_dir()).unwrap();
    let toml = r#"
[archive]
data_dir = "data"

[[collector]]
name = "host"
plugin = "builtin:procfs"
interval = "200ms"
settings = { root = "{proc}" }
grants = { read_dirs = ["{proc}"] }

[[transformer]]
name = "memory-mib"
plugin = "PLUGIN"
inputs = ["host"]
meters = ["memory.*"]
settings = { scale = 9.5367431640625e-7, unit = "MiB" }
limits = { memory = "512MiB" }
"#
    .replace("PLUGIN", &plugin(lang));
    let ((report, batches), _) = crate::pipeline::run_on(&runtime, dir.path(), &toml, 2);
    let stage = &report.stages["memory-mib"];
    assert_eq!(stage.plugin.error_count(), 0, "{lang}: {stage:?}");
    assert_eq!(stage.batches, 2, "{lang}");
    let mut rows = Vec::new();
    for b in &batches {
        let metric = b
            .column_by_name("metric")
            .unwrap()
            .as_dictionary::<Int32Type>();
        let metrics = metric.downcast_dict::<arrow::array::StringArray>().unwrap();
        let unit = b
            .column_by_name("unit")
            .unwrap()
            .as_dictionary::<Int32Type>();
        let units = unit.downcast_dict::<arrow::array::StringArray>().unwrap();
        let values: &Float64Array = b.column_by_name("value").unwrap().as_primitive();
        for i in 0..b.num_rows() {
            if metrics.value(i).starts_with("memory.") {
                rows.push((
                    metrics.value(i).to_owned(),
                    units.value(i).to_owned(),
                    values.value(i),
                ));
            }
        }
    }
    rows
}

#[test]
fn every_language_gives_the_same_pipeline_output() {
    let rust = memory_in_mib("rust");
    // MemTotal in the fixture is 15666184 kB: 15666184 / 1024 MiB.
    assert!(
        rust.contains(&("memory.total".into(), "MiB".into(), 15_299.007_812_5)),
        "{rust:?}"
    );
    assert_eq!(rust.len(), 2 * 7);
    for lang in ["c", "py", "js"] {
        assert_eq!(memory_in_mib(lang), rust, "{lang}");
    }
}

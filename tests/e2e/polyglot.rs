//! The unit-conversion transformer in four languages: Rust
//! (`builtin:unit-conversion`), C, Python and JavaScript, each built by its
//! own `plugins/unit-conversion-<lang>/build.sh`. The same inputs must give
//! the same outputs, bit for bit, the same settings error, and the same
//! result in a real pipeline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
    // Settings the Rust SDK refuses, with its message (the value quoted as
    // Rust's `{:?}` quotes it), and odd ones it accepts (`str::trim`, then
    // `f64::from_str`).
    for bad in ["x", "nan(1)", "0x10", "1e", "a\"b\\c", "1\n2", ""] {
        let setting = format!("scale={bad}");
        let (ok, err) = plugin_test(&p, &data.join("celsius.csv"), &[&setting], None);
        assert!(!ok, "{lang} {bad:?}: {err}");
        let message = format!("invalid-settings: setting `scale`: expected a number, got {bad:?}");
        assert!(err.contains(&message), "{lang} {bad:?}: {err}");
    }
    for odd in [" +.5e1 ", "2\u{a0}", "INFINITY", "-nan", "5."] {
        let setting = format!("scale={odd}");
        let (ok, err) = plugin_test(&p, &data.join("celsius.csv"), &[&setting], None);
        assert!(ok, "{lang} {odd:?}: {err}");
    }
    // A repeated key counts with its last value.
    let (ok, err) = plugin_test(
        &p,
        &data.join("ns.csv"),
        &["scale=x", "scale=1e-9", "unit=s", "metric=cpu.seconds"],
        Some(&data.join("ns.expected.csv")),
    );
    assert!(ok, "{lang}: {err}");
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
    let toml = [
        crate::pipeline::FIXTURE_HOST,
        r#"
[[transformer]]
name = "memory-mib"
plugin = "PLUGIN"
inputs = ["host"]
meters = ["memory.*"]
settings = { scale = 9.5367431640625e-7, unit = "MiB" }
limits = { memory = "512MiB" }
"#,
    ]
    .concat()
    .replace("PLUGIN", &plugin(lang));
    let ((report, batches), _) = crate::pipeline::run_on(&runtime, dir.path(), &toml, 2);
    let stage = &report.stages["memory-mib"];
    assert_eq!(stage.plugin.error_count(), 0, "{lang}: {stage:?}");
    assert_eq!(stage.batches, 2, "{lang}");
    let mut rows = Vec::new();
    for b in &batches {
        let wit = wasmeter::batch::to_wit(b).unwrap();
        for row in wasmeter::samples::rows(&wit) {
            if row.series.metric.starts_with("memory.") {
                rows.push((
                    row.series.metric.clone(),
                    row.series.unit.clone(),
                    row.value,
                ));
            }
        }
    }
    rows
}

#[test]
fn every_language_gives_the_same_pipeline_output() {
    let rust = memory_in_mib("rust");
    // The fixture's meminfo: MemTotal 3742148 kB = 3742148 / 1024 MiB;
    // six memory meters per collection, two collections.
    assert!(
        rust.contains(&("memory.total".into(), "MiB".into(), 3_654.441_406_25)),
        "{rust:?}"
    );
    assert!(
        rust.contains(&("memory.free".into(), "MiB".into(), 220.1875)),
        "{rust:?}"
    );
    assert_eq!(rust.len(), 2 * 6);
    for lang in ["c", "py", "js"] {
        assert_eq!(memory_in_mib(lang), rust, "{lang}");
    }
}

/// `wasmeter plugin new` for `lang` and `world`, then the project's own
/// `test.sh` (build, then `plugin test` against its expected output). The
/// build tools come from the polyglot plugins' builds, so they are
/// installed once.
fn scaffold_passes_its_test(lang: &str, world: &str) {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("my-{lang}-{world}");
    let out = wasmeter()
        .args(["plugin", "new", "--lang", lang, "--world", world, "--dir"])
        .arg(dir.path())
        .arg(&name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let project = dir.path().join(&name);
    let mut test = std::process::Command::new("bash");
    test.arg(project.join("test.sh"))
        .env("WASMETER", env!("CARGO_BIN_EXE_wasmeter"))
        .env("WASMETER_CACHE_DIR", cache_dir());
    match lang {
        "rust" => {
            // The standard plugins' target dir already holds the SDK's
            // dependencies for wasm32-wasip2.
            test.env("CARGO_TARGET_DIR", root().join("target/wasm-plugins"));
        }
        "python" => {
            build("unit-conversion-py");
            test.env("PY_VENV", root().join("target/polyglot/py-venv"));
        }
        "js" => {
            build("unit-conversion-js");
            test.env(
                "COMPONENTIZE_JS",
                root().join("plugins/unit-conversion-js/node_modules/.bin/componentize-js"),
            );
        }
        "c" => {
            build("unit-conversion-c");
            test.env("PY_VENV", root().join("target/polyglot/zig-venv"));
        }
        other => panic!("no language {other}"),
    }
    let out = test.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{lang} {world}: {}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    let expected = if world == "alarm-rule" {
        "test/expected.jsonl"
    } else {
        "test/expected.csv"
    };
    assert!(
        stderr.contains(&format!("output matches {expected}")),
        "{lang} {world}: {stderr}"
    );
    let built = std::fs::metadata(project.join(format!("build/{name}.wasm"))).unwrap();
    assert!(built.len() > 0);
}

macro_rules! scaffold_tests {
    ($($test:ident: $lang:literal $world:literal,)*) => {$(
        #[test]
        fn $test() {
            scaffold_passes_its_test($lang, $world);
        }
    )*};
}

scaffold_tests! {
    new_rust_collector_passes_its_test: "rust" "collector",
    new_rust_transformer_passes_its_test: "rust" "transformer",
    new_rust_alarm_rule_passes_its_test: "rust" "alarm-rule",
    new_python_collector_passes_its_test: "python" "collector",
    new_python_transformer_passes_its_test: "python" "transformer",
    new_python_alarm_rule_passes_its_test: "python" "alarm-rule",
    new_js_collector_passes_its_test: "js" "collector",
    new_js_transformer_passes_its_test: "js" "transformer",
    new_js_alarm_rule_passes_its_test: "js" "alarm-rule",
    new_c_collector_passes_its_test: "c" "collector",
    new_c_transformer_passes_its_test: "c" "transformer",
    new_c_alarm_rule_passes_its_test: "c" "alarm-rule",
}

#[test]
fn plugin_new_refuses_bad_names_and_existing_folders() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        wasmeter()
            .args([
                "plugin",
                "new",
                "--lang",
                "c",
                "--world",
                "collector",
                "--dir",
            ])
            .arg(dir.path())
            .arg(name)
            .output()
            .unwrap()
    };
    let out = run("Disk_Usage");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"Disk_Usage\" is not a plugin name"));
    assert!(run("disk").status.success());
    let out = run("disk");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
}

#[test]
fn componentize_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("empty.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let out = wasmeter()
        .args(["plugin", "componentize", "--world", "transformer", "-o"])
        .arg(dir.path().join("out.wasm"))
        .arg(&core)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("failed to find export of function `init`"),
        "{err}"
    );
    let out = wasmeter()
        .args(["plugin", "componentize", "--world", "transformer", "-o"])
        .arg(dir.path().join("out.wasm"))
        .arg(wasmeter_plugins::UNIT_CONVERSION.path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already a component"));
}

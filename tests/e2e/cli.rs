//! The `wasmeter` command line, run as a user would.

use std::process::Output;

use crate::support::{data_dir, wasmeter};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn examples() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

#[test]
fn help_lists_only_working_subcommands() {
    let o = wasmeter().arg("--help").output().unwrap();
    assert!(o.status.success());
    let text = stdout(&o);
    let commands: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        commands,
        [
            "run",
            "import",
            "check",
            "plugin",
            "alarm",
            "measures",
            "aggregates",
            "query",
            "help"
        ]
    );
}

#[test]
fn every_shipped_example_config_checks() {
    for entry in std::fs::read_dir(examples()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let o = wasmeter().arg("check").arg(&path).output().unwrap();
            assert!(o.status.success(), "{}: {}", path.display(), stderr(&o));
            assert!(
                stdout(&o).ends_with("ok (1 collectors, 1 transformers)\n")
                    || stdout(&o).contains(": ok (")
            );
        }
    }
}

#[test]
fn a_bad_config_exits_2_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[collector]]\nname = \"c\"\nplugin = \"builtin:procfs\"\ninterval = \"soon\"\n",
    )
    .unwrap();
    let o = wasmeter().arg("check").arg(&path).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "error: {}:4:12: collector[0].interval: bad duration \"soon\"",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn a_plugin_of_the_wrong_world_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wrong.toml");
    std::fs::write(
        &path,
        "[[collector]]\nname = \"c\"\nplugin = \"builtin:unit-conversion\"\ninterval = \"1s\"\n",
    )
    .unwrap();
    let o = wasmeter().arg("check").arg(&path).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&format!(
            "error: {}:3:10: collector[0].plugin: stage c: plugin builtin:unit-conversion: load: wrong world: expected a collector, the component is a transformer",
            path.display()
        )),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_missing_plugin_file_is_reported_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.toml");
    std::fs::write(
        &path,
        "[[collector]]\nname = \"c\"\nplugin = \"builtin:procfs\"\ninterval = \"1s\"\n\n[[transformer]]\nname = \"t\"\ninputs = [\"c\"]\nplugin = \"nowhere.wasm\"\n",
    )
    .unwrap();
    let o = wasmeter().arg("run").arg(&path).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "run refuses like check");
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "error: {}:9:10: transformer[0].plugin: stage t: plugin {}: load: cannot read the file",
            path.display(),
            dir.path().join("nowhere.wasm").display()
        )),
        "{err}"
    );
}

#[test]
fn plugin_inspect_prints_world_and_version() {
    let o = wasmeter()
        .args(["plugin", "inspect", "builtin:procfs"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("world:     collector\n"), "{text}");
    assert!(
        text.contains("contract:  wasmeter:plugin@0.1.0\n"),
        "{text}"
    );
    assert!(
        text.contains("exports:   init, collect\n") || text.contains("exports:   collect, init\n"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"hello").unwrap();
    let o = wasmeter()
        .args(["plugin", "inspect"])
        .arg(&junk)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not a WebAssembly file"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn wasmeter_profile_names_plugin_functions_for_perf() {
    // perfmap: the JIT code of the plugin's functions, named (from the
    // component's name section), in the file `perf report` reads for this
    // process.
    let mut child = wasmeter()
        .args(["plugin", "inspect", "builtin:unit-conversion"])
        .env("WASMETER_PROFILE", "perfmap")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let map = std::path::PathBuf::from(format!("/tmp/perf-{}.map", child.id()));
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&map).unwrap();
    std::fs::remove_file(&map).unwrap();
    assert!(
        text.lines().any(|l| l.contains("unit_conversion")),
        "{}",
        &text[..text.len().min(2000)]
    );

    let o = wasmeter()
        .args(["plugin", "inspect", "builtin:unit-conversion"])
        .env("WASMETER_PROFILE", "vtune-please")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("WASMETER_PROFILE=\"vtune-please\": expected perfmap, jitdump or none"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn run_collects_transforms_and_prints_from_the_fixture() {
    let proc_dir = data_dir()
        .join("node_exporter-fixtures/proc")
        .canonicalize()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipeline.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[[collector]]
name = "host"
plugin = "builtin:procfs"
interval = "1s"
settings = {{ root = "{p}", resource_id = "fixture" }}
grants = {{ read_dirs = ["{p}"] }}

[[transformer]]
name = "memory-mib"
plugin = "builtin:unit-conversion"
inputs = ["host"]
meters = ["memory.*"]
settings = {{ scale = 0.0009765625, unit = "KiB" }}
"#,
            p = proc_dir.display()
        ),
    )
    .unwrap();
    let o = wasmeter()
        .arg("run")
        .arg(&path)
        .args(["--duration", "2500ms", "--print"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    // MemTotal is 3742148 kB in the fixture: ×1024 by procfs, ÷1024 here.
    let mem: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" memory.total "))
        .collect();
    assert!(
        !mem.is_empty(),
        "no memory.total line in:\n{text}\n{}",
        stderr(&o)
    );
    for line in &mem {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(
            &f[1..],
            ["memory.total", "fixture", "3742148", "KiB"],
            "{line}"
        );
        assert!(
            f[0].ends_with(".000000000Z"),
            "ticks are aligned to whole seconds: {line}"
        );
    }
    // load.* is not matched by the filter and passes through unchanged.
    assert!(
        text.lines().any(|l| l.ends_with(" load.1m fixture 0.21 1")),
        "{text}"
    );
}

#[test]
fn a_scrape_tls_file_that_cannot_be_read_is_refused_by_check_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tls.toml");
    std::fs::write(
        &path,
        "[[collector]]\nname = \"node\"\nplugin = \"builtin:openmetrics\"\ninterval = \"15s\"\n\
         url = \"https://127.0.0.1:9100/metrics\"\ntls_config = { ca_file = \"pki/ca.pem\" }\n",
    )
    .unwrap();
    let expected = format!(
        "error: {}: stage node: tls_config.ca_file {}: cannot read: ",
        path.display(),
        dir.path().join("pki/ca.pem").display()
    );
    for command in ["check", "run"] {
        let o = wasmeter().arg(command).arg(&path).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{command}: {}", stderr(&o));
        assert!(
            stderr(&o).starts_with(&expected),
            "{command}: {}",
            stderr(&o)
        );
    }
}

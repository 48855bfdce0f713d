//! Hot reload: in-process through `Pipeline::reload`, and through the
//! binary with file changes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::TimestampNanosecondType;
use wasmeter::batch::Samples;
use wasmeter::config::PipelineConfig;
use wasmeter::pipeline::{Pipeline, Sink};

use crate::plugins::procfs::FIXTURE_SAMPLES;
use crate::support::{data_dir, runtime, wasmeter};

/// Keeps every batch of the stages (not the self-telemetry).
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<RecordBatch>>>);

impl Sink for Collect {
    fn write(&mut self, stage: &str, batch: &Samples) {
        if stage != "wasmeter" {
            self.0.lock().unwrap().push(batch.batch().clone());
        }
    }
}

fn proc_dir() -> String {
    data_dir()
        .join("node_exporter-fixtures/proc")
        .canonicalize()
        .unwrap()
        .display()
        .to_string()
}

fn config(dir: &Path, transformer_settings: &str, extra: &str) -> PipelineConfig {
    config_with_archive(dir, transformer_settings, extra, "")
}

/// [`config`] with more `[archive]` keys.
fn config_with_archive(
    dir: &Path,
    transformer_settings: &str,
    extra: &str,
    archive: &str,
) -> PipelineConfig {
    let text = format!(
        r#"
[archive]
data_dir = "data"
{archive}

[telemetry]
interval = "1h"

[[collector]]
name = "host"
plugin = "builtin:procfs"
interval = "50ms"
settings = {{ root = "{p}" }}
grants = {{ read_dirs = ["{p}"] }}

[[transformer]]
name = "convert"
plugin = "builtin:unit-conversion"
inputs = ["host"]
settings = {transformer_settings}
{extra}
"#,
        p = proc_dir()
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, &text).unwrap();
    PipelineConfig::parse(&path, &text).unwrap()
}

fn wait_for(sink: &Collect, batches: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.0.lock().unwrap().len() < batches {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {batches} batches"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn reloads_under_a_steady_stream_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Collect::default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (report, reloads) = rt.block_on(async {
        let mut p = Pipeline::start(
            &config(dir.path(), r#"{ unit = "a" }"#, ""),
            &runtime(),
            sink.clone(),
        )
        .unwrap();
        let mut reloads = Vec::new();
        for (i, unit) in ["b", "b", "c", "d"].iter().enumerate() {
            let s = sink.clone();
            tokio::task::spawn_blocking(move || wait_for(&s, 3 * (i + 1)))
                .await
                .unwrap();
            let r = p
                .reload(config(dir.path(), &format!(r#"{{ unit = "{unit}" }}"#), ""))
                .await
                .unwrap();
            reloads.push(r);
        }
        let s = sink.clone();
        tokio::task::spawn_blocking(move || wait_for(&s, 15))
            .await
            .unwrap();
        (p.stop().await, reloads)
    });
    // What changed: the transformer when its settings changed, not the
    // collector; an identical config changes nothing.
    assert_eq!(reloads[0].changed, ["convert"]);
    assert_eq!(reloads[0].unchanged, ["host"]);
    assert!(reloads[1].changed.is_empty());
    assert_eq!(reloads[1].unchanged, ["convert", "host"]);
    assert!(reloads.iter().all(|r| r.elapsed < Duration::from_secs(5)));
    assert_eq!(report.reloads, 4);

    // Every tick's samples arrive exactly once.
    let batches = sink.0.lock().unwrap().clone();
    let mut per_tick: BTreeMap<i64, usize> = BTreeMap::new();
    for b in &batches {
        for &t in b
            .column(0)
            .as_primitive::<TimestampNanosecondType>()
            .values()
        {
            *per_tick.entry(t).or_default() += 1;
        }
    }
    assert!(
        per_tick.values().all(|&n| n as u64 == FIXTURE_SAMPLES),
        "{per_tick:?}"
    );
    let produced = report.stages["host"].samples_out;
    assert_eq!(per_tick.values().sum::<usize>() as u64, produced);
    assert_eq!(report.stages["convert"].samples_in, produced);
    assert_eq!(report.stages["convert"].samples_out, produced);
    // The output changed with each reload, in order: a… then b… c… d.
    let units: Vec<String> = batches
        .iter()
        .map(|b| {
            let d = b.column(3).as_dictionary::<arrow::datatypes::Int32Type>();
            d.values().as_string::<i32>().value(0).to_owned()
        })
        .collect();
    let mut runs = units.clone();
    runs.dedup();
    assert_eq!(runs, ["a", "b", "c", "d"], "{units:?}");
}

#[test]
fn an_unchanged_stage_keeps_its_instance_and_state() {
    // The hostile plugin counts its calls: `every = 3` panics on the
    // third call of an instance. If the reload kept the instance, the
    // third call after start panics; a fresh instance would not.
    let dir = tempfile::tempdir().unwrap();
    let hostile = wasmeter_plugins::testing::HOSTILE.path;
    let extra = format!(
        r#"
[[transformer]]
name = "counter"
plugin = "{hostile}"
inputs = ["convert"]
settings = {{ behaviour = "panic", every = 3 }}
"#
    );
    let sink = Collect::default();
    let dead_letters = dir.path().join("data/dead-letter/counter");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut p = Pipeline::start(
            &config(dir.path(), r#"{ unit = "a" }"#, &extra),
            &runtime(),
            sink.clone(),
        )
        .unwrap();
        let s = sink.clone();
        tokio::task::spawn_blocking(move || wait_for(&s, 2))
            .await
            .unwrap();
        assert!(!dead_letters.exists());
        // Change the upstream stage only.
        let r = p
            .reload(config(dir.path(), r#"{ unit = "b" }"#, &extra))
            .await
            .unwrap();
        assert_eq!(r.changed, ["convert"]);
        assert!(r.unchanged.contains(&"counter".to_string()));
        let s = sink.clone();
        tokio::task::spawn_blocking(move || wait_for(&s, 3))
            .await
            .unwrap();
        // The kept instance's third call (the first after the reload)
        // panicked before the next batch came out; a fresh instance would
        // have passed it.
        assert_eq!(std::fs::read_dir(&dead_letters).unwrap().count(), 1);
        p.stop().await
    });
}

#[test]
fn only_settings_applied_in_place_leave_the_archive_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let settings = r#"{ unit = "a" }"#;
    let at = |archive: &str| config_with_archive(dir.path(), settings, "", archive);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let changed = rt.block_on(async {
        let mut p = Pipeline::start(&at(""), &runtime(), Collect::default()).unwrap();
        let mut changed = Vec::new();
        for archive in [
            // Applied to the engine in force.
            "max_future = \"5m\"\ncheckpoint_interval = \"1m\"\nwal = false",
            // A new engine: the archive moves.
            "root = \"elsewhere\"",
            "root = \"elsewhere\"",
        ] {
            let r = p.reload(at(archive)).await.unwrap();
            changed.push(r.archive_changed);
        }
        p.stop().await;
        changed
    });
    assert_eq!(changed, [false, true, false]);
}

/// Runs the binary on `config`, calls `during` with the config path after
/// the first output line, and returns (stdout lines with their arrival
/// time, stderr).
fn run_binary(
    dir: &Path,
    config: &str,
    during: impl FnOnce(&Path),
) -> (Vec<(Instant, String)>, String) {
    let path = dir.join("wasmeter.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = wasmeter()
        .arg("run")
        .arg(&path)
        .args(["--duration", "6s", "--print"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let err_thread = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let out_thread = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = tx.send((Instant::now(), line.unwrap()));
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(30)).expect("no output");
    during(&path);
    let status = child.wait().unwrap();
    out_thread.join().unwrap();
    let mut lines = vec![first];
    lines.extend(rx.try_iter());
    let err = err_thread.join().unwrap();
    assert!(status.success(), "{err}");
    (lines, err)
}

fn binary_config(plugin: &str, scale: &str) -> String {
    format!(
        r#"
[[collector]]
name = "host"
plugin = "builtin:procfs"
interval = "200ms"
settings = {{ root = "{p}", resource_id = "fixture" }}
grants = {{ read_dirs = ["{p}"] }}

[[transformer]]
name = "convert"
plugin = "{plugin}"
inputs = ["host"]
meters = ["memory.total"]
settings = {{ scale = {scale}, unit = "x{scale}" }}
"#,
        p = proc_dir()
    )
}

#[test]
fn an_invalid_config_keeps_the_old_pipeline_and_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut marks = Vec::new();
    let (lines, err) = run_binary(
        dir.path(),
        &binary_config("builtin:unit-conversion", "2"),
        |path| {
            std::thread::sleep(Duration::from_millis(500));
            let bad = binary_config("builtin:unit-conversion", "2")
                .replace("interval = \"200ms\"", "interval = \"soon\"");
            std::fs::write(path, bad).unwrap();
            marks.push(Instant::now());
            std::thread::sleep(Duration::from_millis(1500));
            std::fs::write(path, binary_config("builtin:unit-conversion", "4")).unwrap();
            marks.push(Instant::now());
        },
    );
    assert!(
        err.contains("reload refused, the running pipeline is unchanged"),
        "{err}"
    );
    assert!(
        err.contains("wasmeter.toml:5:12: collector[0].interval: bad duration \"soon\""),
        "{err}"
    );
    let totals: Vec<(Instant, &str)> = lines
        .iter()
        .filter(|(_, l)| l.contains(" memory.total "))
        .map(|(t, l)| (*t, l.rsplit(' ').next().unwrap()))
        .collect();
    // Between the bad write and the fix, the old pipeline kept serving.
    let during_bad: Vec<&str> = totals
        .iter()
        .filter(|(t, _)| *t > marks[0] + Duration::from_millis(400) && *t < marks[1])
        .map(|x| x.1)
        .collect();
    assert!(during_bad.len() >= 3, "{totals:?}");
    assert!(during_bad.iter().all(|u| *u == "x2"));
    // After the fix, the new scale.
    assert_eq!(totals.last().unwrap().1, "x4", "{err}");
    assert!(err.contains("reloaded: changed=convert"), "{err}");
}

#[test]
fn replacing_a_plugin_file_changes_the_output_from_the_next_batch() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("convert.wasm");
    std::fs::copy(wasmeter_plugins::UNIT_CONVERSION.path, &plugin).unwrap();
    let mut swapped = None;
    let (lines, err) = run_binary(
        dir.path(),
        &binary_config(&plugin.display().to_string(), "2"),
        |_| {
            std::thread::sleep(Duration::from_millis(800));
            // The hostile plugin without settings it knows is an identity.
            let tmp = dir.path().join(".convert.wasm.new");
            std::fs::copy(wasmeter_plugins::testing::HOSTILE.path, &tmp).unwrap();
            std::fs::rename(&tmp, &plugin).unwrap();
            swapped = Some(Instant::now());
            std::thread::sleep(Duration::from_millis(2000));
        },
    );
    let swapped = swapped.unwrap();
    let values: Vec<(Instant, String)> = lines
        .iter()
        .filter(|(_, l)| l.contains(" memory.total "))
        .map(|(t, l)| (*t, l.split(' ').skip(3).collect::<Vec<_>>().join(" ")))
        .collect();
    // Fixture MemTotal: 3742148 kB = 3831959552 B.
    assert!(
        values
            .iter()
            .any(|(t, v)| *t < swapped && v == "7663919104 x2"),
        "{values:?}"
    );
    assert_eq!(values.last().unwrap().1, "3831959552 B", "{err}");
    assert!(err.contains("reloaded: changed=convert"), "{err}");
}

#[test]
fn a_reload_whose_scrape_tls_file_is_missing_keeps_the_old_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let scrape = r#"
[[collector]]
name = "node"
plugin = "builtin:openmetrics"
interval = "1s"
url = "https://127.0.0.1:9/metrics"
tls_config = { ca_file = "pki/ca.pem" }
"#;
    let sink = Collect::default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut p = Pipeline::start(
            &config(dir.path(), r#"{ unit = "a" }"#, ""),
            &runtime(),
            sink.clone(),
        )
        .unwrap();
        let s = sink.clone();
        tokio::task::spawn_blocking(move || wait_for(&s, 1))
            .await
            .unwrap();
        let err = p
            .reload(config(dir.path(), r#"{ unit = "b" }"#, scrape))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "stage node: tls_config.ca_file {}: cannot read: ",
                dir.path().join("pki/ca.pem").display()
            )),
            "{err}"
        );
        // The old graph goes on: more batches, all of unit "a".
        let before = sink.0.lock().unwrap().len();
        let s = sink.clone();
        tokio::task::spawn_blocking(move || wait_for(&s, before + 2))
            .await
            .unwrap();
        p.stop().await
    });
    let batches = sink.0.lock().unwrap();
    for b in batches.iter() {
        let d = b.column(3).as_dictionary::<arrow::datatypes::Int32Type>();
        assert_eq!(
            d.values().as_string::<i32>().iter().collect::<Vec<_>>(),
            [Some("a")]
        );
    }
}

//! The stage graph in-process: fault isolation with dead letters.

use std::path::Path;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use wasmeter::batch::Samples;
use wasmeter::config::PipelineConfig;
use wasmeter::pipeline::{Pipeline, RunReport, Sink};
use wasmeter::plugin::{PluginErrorKind, Runtime};

use crate::plugins::procfs::FIXTURE_SAMPLES;
use crate::support::{data_dir, runtime};

/// Keeps every batch of the stages, and counts the self-telemetry ones.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<RecordBatch>>>, Arc<Mutex<Vec<RecordBatch>>>);

impl Sink for Collect {
    fn write(&mut self, stage: &str, batch: &Samples) {
        let to = if stage == "wasmeter" {
            &self.1
        } else {
            &self.0
        };
        to.lock().unwrap().push(batch.batch().clone());
    }
}

/// A config's archive section and its `host` collector: `procfs` on the
/// fixture /proc every 200 ms. Tests append their stages.
pub(crate) const FIXTURE_HOST: &str = r#"
[archive]
data_dir = "data"

[[collector]]
name = "host"
plugin = "builtin:procfs"
interval = "200ms"
settings = { root = "{proc}" }
grants = { read_dirs = ["{proc}"] }
"#;

/// Runs `config` (TOML, `{proc}` replaced by the fixture /proc) until
/// `ticks` collector ticks have passed.
fn run(dir: &Path, toml: &str, ticks: u64) -> (RunReport, Vec<RecordBatch>) {
    run_with_telemetry(dir, toml, ticks).0
}

/// As [`run`], also returning the self-telemetry batches.
fn run_with_telemetry(
    dir: &Path,
    toml: &str,
    ticks: u64,
) -> ((RunReport, Vec<RecordBatch>), Vec<RecordBatch>) {
    run_on(&runtime(), dir, toml, ticks)
}

/// As [`run_with_telemetry`], on `runtime`.
pub(crate) fn run_on(
    runtime: &Runtime,
    dir: &Path,
    toml: &str,
    ticks: u64,
) -> ((RunReport, Vec<RecordBatch>), Vec<RecordBatch>) {
    let proc_dir = data_dir()
        .join("node_exporter-fixtures/proc")
        .canonicalize()
        .unwrap();
    let text = toml.replace("{proc}", &proc_dir.display().to_string());
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, &text).unwrap();
    let config = PipelineConfig::parse(&path, &text).unwrap();
    let sink = Collect::default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let report = rt.block_on(async {
        let p = Pipeline::start(&config, runtime, sink.clone()).unwrap();
        let stop = p.shutdown_handle();
        // Ticks are 200 ms apart; stop half-way between two ticks.
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let first = (start / 200_000_000 + 1) * 200_000_000;
        let until = first + (ticks - 1) * 200_000_000 + 100_000_000;
        tokio::time::sleep(std::time::Duration::from_nanos(until - start)).await;
        stop.trigger();
        p.wait().await
    });
    let batches = sink.0.lock().unwrap().clone();
    let telemetry = sink.1.lock().unwrap().clone();
    ((report, batches), telemetry)
}

#[test]
fn a_trapping_transformer_loses_nothing_and_the_next_batch_goes_through() {
    let dir = tempfile::tempdir().unwrap();
    let ((report, batches), telemetry) = run_with_telemetry(
        dir.path(),
        [
            FIXTURE_HOST,
            r#"
[telemetry]
interval = "200ms"

[[transformer]]
name = "flaky"
plugin = "flaky.wasm"
inputs = ["host"]
settings = { behaviour = "panic", every = 2 }
"#,
        ]
        .concat()
        .replace("flaky.wasm", wasmeter_plugins::testing::HOSTILE.path)
        .as_str(),
        4,
    );
    let host = &report.stages["host"];
    let flaky = &report.stages["flaky"];
    assert_eq!(host.batches, 4);
    assert_eq!(host.samples_out, 4 * FIXTURE_SAMPLES);
    // Instance 1: call 1 ok, call 2 traps -> replaced; instance 2 likewise.
    assert_eq!(flaky.samples_in, 4 * FIXTURE_SAMPLES);
    assert_eq!(flaky.samples_out, 2 * FIXTURE_SAMPLES);
    assert_eq!(flaky.dead_lettered, 2 * FIXTURE_SAMPLES);
    assert_eq!(flaky.replaced_instances, 2);
    assert_eq!(flaky.plugin.calls, 4);
    assert_eq!(flaky.plugin.errors.get(&PluginErrorKind::Trap), Some(&2));
    assert_eq!(
        batches.iter().map(|b| b.num_rows()).sum::<usize>() as u64,
        2 * FIXTURE_SAMPLES
    );

    // The two failed batches are in Arrow IPC files, whole, with the cause.
    let dl = dir.path().join("data/dead-letter/flaky");
    let mut files: Vec<_> = std::fs::read_dir(&dl)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2);
    for f in files {
        let reader =
            arrow::ipc::reader::FileReader::try_new(std::fs::File::open(&f).unwrap(), None)
                .unwrap();
        let meta = reader.schema().metadata().clone();
        assert_eq!(meta["wasmeter.stage"], "flaky");
        assert_eq!(meta["wasmeter.error_kind"], "trap");
        let kept: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        assert_eq!(kept.len(), 1);
        // Same rows as a batch that went through (the fixture does not
        // change), but for the tick time.
        assert_eq!(kept[0].columns()[1..], batches[0].columns()[1..]);
        assert_ne!(kept[0].column(0), batches[0].column(0));
    }

    // Self-telemetry went to the sink as wasmeter.* samples, per stage; the
    // last one counts the traps it had seen by then.
    assert!(!telemetry.is_empty());
    let last = wasmeter::batch::to_wit(telemetry.last().unwrap()).unwrap();
    let metrics: std::collections::BTreeSet<&str> =
        last.series.iter().map(|s| s.metric.as_str()).collect();
    for m in [
        "wasmeter.stage.samples.in",
        "wasmeter.stage.samples.out",
        "wasmeter.plugin.calls",
        "wasmeter.plugin.busy",
    ] {
        assert!(metrics.contains(m), "{metrics:?}");
    }
    let traps = last
        .series
        .iter()
        .zip(&last.values)
        .find(|(s, _)| {
            s.metric == "wasmeter.plugin.errors"
                && s.resource_id == "flaky"
                && s.attributes == [("kind".to_string(), "trap".to_string())]
        })
        .map(|(_, v)| *v);
    assert!(matches!(traps, Some(1.0) | Some(2.0)), "{traps:?}");
}

#[test]
fn a_plugin_that_keeps_failing_is_backed_off() {
    let dir = tempfile::tempdir().unwrap();
    let (report, batches) = run(
        dir.path(),
        [
            FIXTURE_HOST,
            r#"
[[transformer]]
name = "broken"
plugin = "hostile.wasm"
inputs = ["host"]
settings = { behaviour = "mismatched-columns" }
"#,
        ]
        .concat()
        .replace("hostile.wasm", wasmeter_plugins::testing::HOSTILE.path)
        .as_str(),
        6,
    );
    let broken = &report.stages["broken"];
    assert!(batches.is_empty());
    // Three failures in a row are retried at once; then it rests 1 s, so
    // the remaining ticks are refused without a call.
    assert_eq!(broken.plugin.calls, 3);
    assert_eq!(
        broken.plugin.errors.get(&PluginErrorKind::BadOutput),
        Some(&3)
    );
    assert_eq!(
        broken.plugin.errors.get(&PluginErrorKind::BackedOff),
        Some(&3)
    );
    // Bad output does not poison the instance: it is kept.
    assert_eq!(broken.replaced_instances, 0);
    // Every batch is in the dead letters, refused ones included.
    assert_eq!(broken.dead_lettered, 6 * FIXTURE_SAMPLES);
}

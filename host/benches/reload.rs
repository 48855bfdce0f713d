//! Reload latency: from `Pipeline::reload` with a changed stage to the new
//! graph serving, plugins already compiled. (`wasmeter run` adds its 200 ms
//! file-event debounce in front of this.)
//!
//! `cargo bench -p wasmeter --bench reload`

#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use wasmeter::config::PipelineConfig;
use wasmeter::pipeline::{Pipeline, Sink};
use wasmeter::plugin::Runtime;

struct Discard;

impl Sink for Discard {
    fn write(&mut self, _stage: &str, _batch: &wasmeter::batch::Samples) {}
}

fn config(dir: &std::path::Path, unit: &str) -> PipelineConfig {
    let proc_dir = std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/data/node_exporter-fixtures/proc"
    ))
    .canonicalize()
    .unwrap();
    let text = format!(
        r#"
[archive]
data_dir = "data"

[[collector]]
name = "host"
plugin = "builtin:procfs"
interval = "1s"
settings = {{ root = "{p}" }}
grants = {{ read_dirs = ["{p}"] }}

[[transformer]]
name = "convert"
plugin = "builtin:unit-conversion"
inputs = ["host"]
settings = {{ unit = "{unit}" }}
"#,
        p = proc_dir.display()
    );
    let path = dir.join("pipeline.toml");
    PipelineConfig::parse(&path, &text).unwrap()
}

fn reload(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let runtime = Runtime::new().unwrap();
    let mut pipeline = rt
        .block_on(async { Pipeline::start(&config(dir.path(), "a"), &runtime, Discard).unwrap() });
    let configs = [config(dir.path(), "a"), config(dir.path(), "b")];
    let mut i = 0;
    c.bench_function("reload/one_changed_transformer", |b| {
        b.iter(|| {
            i += 1;
            rt.block_on(pipeline.reload(configs[i % 2].clone()))
                .unwrap()
        })
    });
    rt.block_on(pipeline.stop());
}

criterion_group!(benches, reload);
criterion_main!(benches);

//! Dead-letter files: the input batches a plugin failed on, kept so that
//! nothing is lost.
//!
//! ```text
//! DATA_DIR/dead-letter/<stage>/<unix ns>-<seq>.arrow    Arrow IPC file
//! ```
//!
//! Each file holds one batch in the sample schema; its schema metadata
//! records `wasmeter.stage`, `wasmeter.plugin`, `wasmeter.error_kind` and
//! `wasmeter.error`. Read it back with any Arrow IPC reader (pyarrow's
//! `ipc.open_file`, DuckDB's arrow extension, `wasmeter plugin test`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::RecordBatch;
use arrow::ipc::writer::FileWriter;

use crate::plugin::PluginError;

/// Writes dead-letter files under one directory.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    dir: PathBuf,
    seq: Arc<AtomicU64>,
}

impl DeadLetter {
    /// Dead letters go to `dir/<stage>/`.
    pub fn new(dir: &Path) -> Self {
        DeadLetter {
            dir: dir.to_path_buf(),
            seq: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The directory of a stage's dead letters.
    pub fn stage_dir(&self, stage: &str) -> PathBuf {
        self.dir.join(sanitize(stage))
    }

    /// Keeps `batch`, which `stage` failed on with `error`; returns the
    /// file written.
    ///
    /// # Errors
    /// An I/O or Arrow error; the caller logs it (the batch is then lost,
    /// and said so).
    pub fn write(
        &self,
        stage: &str,
        plugin: &str,
        error: &PluginError,
        batch: &RecordBatch,
    ) -> anyhow::Result<PathBuf> {
        let dir = self.stage_dir(stage);
        std::fs::create_dir_all(&dir)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{now}-{seq}.arrow"));
        let metadata: HashMap<String, String> = [
            ("wasmeter.stage", stage),
            ("wasmeter.plugin", plugin),
            ("wasmeter.error_kind", error.kind.as_str()),
            ("wasmeter.error", &error.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let schema = Arc::new(batch.schema().as_ref().clone().with_metadata(metadata));
        let batch = batch.clone().with_schema(schema.clone())?;
        let file = std::fs::File::create(&path)?;
        let mut w = FileWriter::try_new(file, &schema)?;
        w.write(&batch)?;
        w.finish()?;
        Ok(path)
    }
}

/// Stage names become folder names: keep them to a safe alphabet.
fn sanitize(stage: &str) -> String {
    stage
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

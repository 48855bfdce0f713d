//! The alarm history: every state transition, one JSON object per line in
//! `ARCHIVE_ROOT/alarm-history.jsonl`, which DuckDB reads as it is:
//!
//! ```sql
//! SELECT timestamp, alarm_name, previous, state, reason
//! FROM read_json_auto('wasmeter-data/archive/alarm-history.jsonl')
//! ORDER BY timestamp;
//! ```
//!
//! Fields follow Aodh's AlarmChange (reference §2.6): `event_id` (UUID),
//! `alarm_id`, `type` (`state transition`), `detail` (the JSON string
//! `{"state": …, "transition_reason": …}`), `severity`, `timestamp`
//! (RFC 3339, UTC); plus wasmeter's `alarm_name`, `series`, `previous`,
//! `state`, `reason` and `reason_data` as separate fields.

use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The history file's name under the archive root.
pub const HISTORY_FILE: &str = "alarm-history.jsonl";

/// One state transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// A fresh UUID per record.
    pub event_id: String,
    /// The alarm's (per series) id.
    pub alarm_id: String,
    /// The alarm's name.
    pub alarm_name: String,
    /// The series (`resource_id{k=v,…}`) in per-series mode, else `""`.
    pub series: String,
    /// Always `state transition`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Aodh's detail: JSON `{"state": new, "transition_reason": reason}`.
    pub detail: String,
    /// The state before.
    pub previous: String,
    /// The state after.
    pub state: String,
    /// Aodh's reason string.
    pub reason: String,
    /// Aodh's reason data.
    pub reason_data: Value,
    /// `low`, `moderate` or `critical`.
    pub severity: String,
    /// When the transition was evaluated, RFC 3339, UTC.
    pub timestamp: String,
}

/// Appends `records` to the history file at `path` (creating it and its
/// folder).
///
/// # Errors
/// I/O errors, with the path.
pub fn append(path: &Path, records: &[HistoryRecord]) -> anyhow::Result<()> {
    use anyhow::Context;
    if records.is_empty() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Reads the history file (an absent file is an empty history). A line
/// that does not parse is skipped with a warning naming file and line.
///
/// # Errors
/// I/O errors other than the file being absent.
pub fn read_history(path: &Path) -> anyhow::Result<Vec<HistoryRecord>> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(anyhow::anyhow!("opening {}: {e}", path.display())),
    };
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(&line) {
            Ok(r) => out.push(r),
            Err(e) => tracing::warn!(
                "{}:{}: skipping a bad history line: {e}",
                path.display(),
                i + 1
            ),
        }
    }
    Ok(out)
}

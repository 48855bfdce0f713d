//! `wasmeter alarm list|history`: the alarms' current states and their
//! transitions, read from the files `wasmeter run` keeps.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};

use super::Failure;
use crate::alarm::{AlarmStatus, HISTORY_FILE, load_states, read_history};
use crate::config::PipelineConfig;

/// `wasmeter alarm …`.
#[derive(Debug, Subcommand)]
pub enum AlarmCommand {
    /// Prints every configured alarm's current state (one row per series
    /// in per-series mode), from `DATA_DIR/alarms.json`.
    List(ListArgs),
    /// Prints the state transitions, oldest first, from
    /// `ARCHIVE_ROOT/alarm-history.jsonl`.
    History(HistoryArgs),
}

/// Output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// A table for people.
    Table,
    /// One JSON object per line.
    Json,
}

/// Arguments of `wasmeter alarm list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The pipeline config file (TOML) whose alarms to list.
    #[arg(long, short, env = "WASMETER_CONFIG")]
    pub config: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Arguments of `wasmeter alarm history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this alarm's transitions.
    pub name: Option<String>,
    /// The pipeline config file (TOML) whose archive to read.
    #[arg(long, short, env = "WASMETER_CONFIG")]
    pub config: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Runs `wasmeter alarm …`.
pub fn alarm(cmd: AlarmCommand) -> Result<(), Failure> {
    match cmd {
        AlarmCommand::List(args) => list(args),
        AlarmCommand::History(args) => history(args),
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header(header.to_vec());
    t
}

fn list(args: ListArgs) -> Result<(), Failure> {
    let config = PipelineConfig::load(&args.config).map_err(|e| Failure::Usage(e.to_string()))?;
    let states = load_states(&config.archive.data_dir)?;
    let mut rows: Vec<(AlarmStatus, &crate::alarm::AlarmConfig)> = Vec::new();
    for a in &config.alarms {
        let mine: Vec<&AlarmStatus> = states.iter().filter(|s| s.alarm_name == a.name).collect();
        if mine.is_empty() {
            rows.push((AlarmStatus::new(&a.name, ""), a));
        }
        rows.extend(mine.into_iter().map(|s| (s.clone(), a)));
    }
    match args.format {
        Format::Json => {
            for (s, a) in rows {
                let mut v = serde_json::to_value(&s).map_err(anyhow::Error::from)?;
                v["severity"] = a.severity.as_str().into();
                v["enabled"] = a.enabled.into();
                v["description"] = a.description.clone().into();
                println!("{v}");
            }
        }
        Format::Table => {
            let mut t = table(&["ALARM", "SERIES", "STATE", "SEVERITY", "SINCE", "REASON"]);
            for (s, a) in rows {
                let name = if a.enabled {
                    a.name.clone()
                } else {
                    format!("{} (disabled)", a.name)
                };
                t.add_row(vec![
                    name,
                    s.series.clone(),
                    s.state.clone(),
                    a.severity.as_str().to_owned(),
                    s.state_timestamp.clone(),
                    s.reason.clone(),
                ]);
            }
            println!("{t}");
        }
    }
    Ok(())
}

fn history(args: HistoryArgs) -> Result<(), Failure> {
    let config = PipelineConfig::load(&args.config).map_err(|e| Failure::Usage(e.to_string()))?;
    if let Some(name) = &args.name
        && !config.alarms.iter().any(|a| &a.name == name)
    {
        let known: Vec<&str> = config.alarms.iter().map(|a| a.name.as_str()).collect();
        return Err(Failure::Usage(format!(
            "error: no alarm named {name:?} in {} (alarms: {})",
            args.config.display(),
            known.join(", ")
        )));
    }
    let records = read_history(&config.archive.root.join(HISTORY_FILE))?;
    let records = records
        .into_iter()
        .filter(|r| args.name.as_ref().is_none_or(|n| &r.alarm_name == n));
    match args.format {
        Format::Json => {
            for r in records {
                println!(
                    "{}",
                    serde_json::to_string(&r).map_err(anyhow::Error::from)?
                );
            }
        }
        Format::Table => {
            let mut t = table(&[
                "TIMESTAMP",
                "ALARM",
                "SERIES",
                "PREVIOUS",
                "STATE",
                "SEVERITY",
                "REASON",
            ]);
            for r in records {
                t.add_row(vec![
                    r.timestamp,
                    r.alarm_name,
                    r.series,
                    r.previous,
                    r.state,
                    r.severity,
                    r.reason,
                ]);
            }
            println!("{t}");
        }
    }
    Ok(())
}

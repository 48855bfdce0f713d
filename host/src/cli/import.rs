//! `wasmeter import`: backfills history from files through the pipeline of
//! a config, in event time.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::{Failure, key_value};
use crate::alarm::Notifier;
use crate::archive::{ArchiveSink, ArchiveWriter, Clock};
use crate::bindings::{SampleType, WitBatch, WitSeries};
use crate::import::{CsvOptions, read_csv};
use crate::plugin;
use crate::rollup::RollupEngine;

/// File formats `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    /// A header line, then one sample per line: a time column and a value
    /// column (NAB's `timestamp,value`).
    Csv,
    /// InfluxDB line protocol, decoded by `builtin:influx-line`.
    Influx,
    /// Prometheus text 0.0.4 or OpenMetrics 1.0 (detected by a final
    /// `# EOF`), decoded by `builtin:openmetrics`.
    Prom,
}

impl ImportFormat {
    /// The standard decoder plugin of a decoded format.
    fn decoder(self) -> Option<&'static str> {
        match self {
            ImportFormat::Csv => None,
            ImportFormat::Influx => Some("builtin:influx-line"),
            ImportFormat::Prom => Some("builtin:openmetrics"),
        }
    }
}

/// Arguments of `wasmeter import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The pipeline config (TOML): its transformers, archive policies,
    /// archive and alarms are used; its collectors are not run.
    #[arg(long, short, env = "WASMETER_CONFIG")]
    pub config: PathBuf,
    /// The input format.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: ImportFormat,
    /// CSV: metric name of the samples (default: the file name without its
    /// extension).
    #[arg(long)]
    pub metric: Option<String>,
    /// Resource id of the samples (influx, prom: of those whose line names
    /// none in its resource tag or label).
    #[arg(long, default_value = "import")]
    pub resource_id: String,
    /// CSV, influx: unit of the samples.
    #[arg(long, default_value = "")]
    pub unit: String,
    /// influx: the unit of the timestamps (`ns`, `us`, `ms`, `s`; default
    /// `ns`).
    #[arg(long)]
    pub precision: Option<String>,
    /// influx, prom: the decoder plugin (`builtin:NAME` or a `.wasm` file)
    /// instead of the format's standard one.
    #[arg(long)]
    pub decoder: Option<String>,
    /// influx, prom: a setting for the decoder's `init`, `KEY=VALUE`
    /// (repeatable), e.g. `mode=strict`.
    #[arg(long = "decoder-setting", value_name = "KEY=VALUE", value_parser = key_value)]
    pub decoder_settings: Vec<(String, String)>,
    /// IANA time zone naive timestamps are read in (e.g. `US/Eastern`).
    #[arg(long, default_value = "UTC")]
    pub timezone: String,
    /// CSV header of the time column.
    #[arg(long, default_value = "timestamp")]
    pub time_column: String,
    /// CSV header of the value column.
    #[arg(long, default_value = "value")]
    pub value_column: String,
    /// The stage the samples enter as if it had produced them: the
    /// transformers whose `inputs` name it receive them (default: none,
    /// straight to the rollups).
    #[arg(long, default_value = "import")]
    pub stage: String,
    /// Also send the alarms' webhook notifications (by default an import
    /// only logs them: a backfill should not page anyone about the past).
    #[arg(long)]
    pub notify: bool,
    /// The files to import; their samples are merged in time order.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Rows per batch at most.
const BATCH_ROWS: usize = 65_536;

/// One file's samples: its series and (time, series index, value) rows.
struct Input {
    series: Vec<WitSeries>,
    rows: Vec<(i64, u32, f64)>,
    /// The line printed when the import is done.
    summary: String,
}

/// Reads a CSV file as one series.
fn read_csv_input(file: &Path, args: &ImportArgs, opts: &CsvOptions) -> Result<Input, Failure> {
    let (rows, r) = read_csv(file, opts).map_err(|e| Failure::Usage(format!("error: {e:#}")))?;
    let metric = args.metric.clone().unwrap_or_else(|| {
        file.file_stem()
            .map_or_else(|| "import".into(), |s| s.to_string_lossy().into_owned())
    });
    let summary = format!(
        "{}: {} lines, {} samples imported as {metric}; dropped: {} bad lines, {} backward, {} nonexistent local times; {} ambiguous local times mapped",
        file.display(),
        r.lines,
        r.rows,
        r.bad_lines.len(),
        r.backward,
        r.nonexistent,
        r.ambiguous
    );
    Ok(Input {
        series: vec![WitSeries {
            metric,
            resource_id: args.resource_id.clone(),
            unit: args.unit.clone(),
            type_: SampleType::Gauge,
            attributes: Vec::new(),
        }],
        rows: rows.into_iter().map(|(t, v)| (t, 0, v)).collect(),
        summary,
    })
}

/// Decodes a whole file with `decoder` (one Wasm call); samples without a
/// time of their own get `now_ns`. Refused lines are logged and counted.
fn decode_input(file: &Path, decoder: &mut plugin::Decoder, now_ns: i64) -> Result<Input, Failure> {
    let bytes = std::fs::read(file)
        .map_err(|e| Failure::Usage(format!("error: cannot read {}: {e}", file.display())))?;
    let lines = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    // A file the decoder refuses is the user's to fix (exit 2); a trap,
    // deadline or memory-cap hit is a failure of the run (exit 1).
    let decoded = decoder.decode(&bytes, "", now_ns).map_err(|e| {
        let msg = format!("{}: {e}", file.display());
        match e.kind {
            plugin::PluginErrorKind::InvalidInput | plugin::PluginErrorKind::InvalidSettings => {
                Failure::Usage(format!("error: {msg}"))
            }
            _ => Failure::Runtime(anyhow::anyhow!(msg)),
        }
    })?;
    let source = file.display().to_string();
    crate::pipeline::log_rejected("import", &source, &decoded.rejected);
    let wit = decoded
        .batch
        .to_wit()
        .map_err(|e| Failure::Runtime(e.into()))?;
    let summary = format!(
        "{source}: {lines} lines, {} samples of {} series imported; {} lines rejected",
        wit.values.len(),
        wit.series.len(),
        decoded.rejected.len()
    );
    let rows = wit
        .timestamps
        .iter()
        .zip(&wit.series_index)
        .zip(&wit.values)
        .map(|((&t, &i), &v)| (t, i, v))
        .collect();
    Ok(Input {
        series: wit.series,
        rows,
        summary,
    })
}

/// The decoder of a decoded format, with its settings: `resource_id` and,
/// for influx, `precision` and `unit`, then the `--decoder-setting`s.
fn start_decoder(
    args: &ImportArgs,
    runtime: &plugin::Runtime,
    largest_file: u64,
) -> Result<Option<plugin::Decoder>, Failure> {
    let Some(standard) = args.format.decoder() else {
        return Ok(None);
    };
    let name = args.decoder.as_deref().unwrap_or(standard);
    let base = std::env::current_dir().unwrap_or_default();
    let source = plugin::PluginSource::parse(name, &base);
    let loaded = plugin::Plugin::load(runtime, name, &source)
        .map_err(|e| Failure::Usage(format!("error: --decoder: {e}")))?;
    let mut settings = vec![("resource_id".to_owned(), args.resource_id.clone())];
    if args.format == ImportFormat::Influx {
        let precision = args.precision.as_deref().unwrap_or("ns");
        settings.push(("precision".to_owned(), precision.to_owned()));
        if !args.unit.is_empty() {
            settings.push(("unit".to_owned(), args.unit.clone()));
        }
    }
    for (k, v) in &args.decoder_settings {
        settings.retain(|(key, _)| key != k);
        settings.push((k.clone(), v.clone()));
    }
    // The whole file and its decoded columns live in the plugin's memory:
    // room for 16 bytes per input byte, within Wasm's 4 GiB.
    let memory = (largest_file.saturating_mul(16) + (256 << 20)).min(4 << 30) as usize;
    let limits = plugin::Limits {
        memory_bytes: memory,
        call_timeout: Duration::from_secs(600),
        recycle_above_bytes: memory,
    };
    plugin::Decoder::new(
        std::sync::Arc::new(loaded),
        "import",
        &settings,
        &plugin::Grants::default(),
        limits,
    )
    .map(Some)
    .map_err(|e| Failure::Usage(format!("error: decoder {name}: {e}")))
}

/// Reads every file, sends its samples through the config's transformers
/// into the rollups and the archive with the event-time clock, and
/// evaluates the alarms as event time passes. Batches cover at most one
/// evaluation interval of event time (the smallest of the alarms', 1 h
/// without alarms), so alarms are evaluated as often as when running.
pub fn import(args: ImportArgs) -> Result<(), Failure> {
    // Options of another format are refused, not ignored.
    let misplaced: &[(&str, bool)] = match args.format {
        ImportFormat::Csv => &[
            ("--decoder", args.decoder.is_some()),
            ("--decoder-setting", !args.decoder_settings.is_empty()),
            ("--precision", args.precision.is_some()),
        ],
        ImportFormat::Influx => &[("--metric", args.metric.is_some())],
        ImportFormat::Prom => &[
            ("--metric", args.metric.is_some()),
            ("--precision", args.precision.is_some()),
        ],
    };
    if let Some((flag, _)) = misplaced.iter().find(|(_, given)| *given) {
        return Err(Failure::Usage(
            format!("error: {flag} does not apply to --format {:?}", args.format).to_lowercase(),
        ));
    }
    let timezone: chrono_tz::Tz = args.timezone.parse().map_err(|_| {
        Failure::Usage(format!(
            "error: --timezone: {:?} is not an IANA time zone name",
            args.timezone
        ))
    })?;
    let opts = CsvOptions {
        time_column: args.time_column.clone(),
        value_column: args.value_column.clone(),
        timezone,
    };
    let super::check::Checked {
        config,
        runtime,
        digests,
        alarms,
        lock,
    } = super::check::load_and_check(&args.config, true)?;
    let span_ns = config
        .alarms
        .iter()
        .map(|a| a.evaluation_interval)
        .min()
        .unwrap_or(Duration::from_secs(3600))
        .as_nanos() as i64;

    // Read everything first: a missing file fails before anything is written.
    let largest = args
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0);
    let mut decoder = start_decoder(&args, &runtime, largest)?;
    let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let mut inputs = Vec::new();
    for file in &args.files {
        inputs.push(match &mut decoder {
            Some(d) => decode_input(file, d, now_ns)?,
            None => read_csv_input(file, &args, &opts)?,
        });
    }
    let total: u64 = inputs.iter().map(|i| i.rows.len() as u64).sum();

    let engine = RollupEngine::new(config.policies.clone(), config.rules.clone());
    let writer = ArchiveWriter::new(
        &config.archive.root,
        config.policies.clone().into(),
        digests,
    );
    // No write-ahead log of its own: its input is files, read again more
    // cheaply than logged. One left by a crashed `run` is replayed.
    let settings = crate::config::ArchiveSettings {
        wal: false,
        ..config.archive.clone()
    };
    let lock = lock.expect("asked for");
    let mut sink = ArchiveSink::new_locked(lock, engine, writer, &settings, Clock::EventTime)?
        .for_config(&config);
    let rt = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    if let Some(evaluator) = alarms {
        let mut notifier = Notifier::new(config.notifier, rt.handle().clone())?;
        if !args.notify {
            notifier = notifier.log_only();
        }
        sink = sink.with_alarms(evaluator, notifier);
    }
    let consumers: Vec<&str> = config
        .transformers
        .iter()
        .filter(|t| t.inputs.contains(&args.stage))
        .map(|t| t.name.as_str())
        .collect();
    if consumers.is_empty() && !config.transformers.is_empty() {
        tracing::warn!(
            stage = %args.stage,
            "no transformer has this stage in its inputs: the samples go straight to the rollups (see --stage)"
        );
    }
    let progress = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} samples {per_sec} {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    rt.block_on(async {
        let (pipeline, feed) =
            crate::pipeline::Pipeline::start_fed(&config, &runtime, sink, &args.stage)
                .map_err(|e| Failure::Runtime(e.into()))?;
        // Every file's samples, merged in time order (a stable sort: equal
        // times keep file order), so the event-time clock never runs ahead
        // of a file.
        let mut series: Vec<WitSeries> = Vec::new();
        let mut rows: Vec<(i64, u32, f64)> = Vec::with_capacity(total as usize);
        for input in &inputs {
            let offset = series.len() as u32;
            series.extend(input.series.iter().cloned());
            rows.extend(input.rows.iter().map(|&(t, i, v)| (t, i + offset, v)));
        }
        rows.sort_by_key(|r| r.0);
        let mut start = 0;
        while start < rows.len() {
            let window = crate::rollup::floor(rows[start].0, span_ns);
            let mut end = start;
            while end < rows.len() && end - start < BATCH_ROWS && rows[end].0 < window + span_ns {
                end += 1;
            }
            let chunk = &rows[start..end];
            // Only the series this chunk uses, renumbered.
            let mut local: Vec<u32> = vec![u32::MAX; series.len()];
            let mut used: Vec<WitSeries> = Vec::new();
            let series_index: Vec<u32> = chunk
                .iter()
                .map(|r| {
                    let slot = &mut local[r.1 as usize];
                    if *slot == u32::MAX {
                        *slot = used.len() as u32;
                        used.push(series[r.1 as usize].clone());
                    }
                    *slot
                })
                .collect();
            let batch = crate::batch::Samples::from_wit(WitBatch {
                series: used,
                series_index,
                timestamps: chunk.iter().map(|r| r.0).collect(),
                values: chunk.iter().map(|r| r.2).collect(),
            })
            .map_err(|e| Failure::Runtime(e.into()))?;
            if feed.send(batch).await.is_err() {
                return Err(Failure::Runtime(anyhow::anyhow!(
                    "the pipeline stopped early"
                )));
            }
            progress.inc(chunk.len() as u64);
            start = end;
        }
        drop(feed);
        let report = pipeline.stop().await;
        progress.finish_and_clear();
        tracing::info!(samples = report.samples_to_sink, "import finished");
        Ok(())
    })?;
    for input in &inputs {
        eprintln!("{}", input.summary);
    }
    Ok(())
}

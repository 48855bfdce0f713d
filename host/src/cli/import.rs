//! `wasmeter import`: backfills history from files through the pipeline of
//! a config, in event time.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::Failure;
use crate::alarm::Notifier;
use crate::archive::{ArchiveSink, ArchiveWriter, Clock};
use crate::bindings::{SampleType, WitBatch, WitSeries};
use crate::import::{CsvOptions, read_csv};
use crate::rollup::RollupEngine;

/// File formats `import` reads.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ImportFormat {
    /// A header line, then one sample per line: a time column and a value
    /// column (NAB's `timestamp,value`).
    Csv,
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
    /// Metric name of the samples (default: the file name without its
    /// extension).
    #[arg(long)]
    pub metric: Option<String>,
    /// Resource id of the samples.
    #[arg(long, default_value = "import")]
    pub resource_id: String,
    /// Unit of the samples.
    #[arg(long, default_value = "")]
    pub unit: String,
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

/// Reads every file, sends its samples through the config's transformers
/// into the rollups and the archive with the event-time clock, and
/// evaluates the alarms as event time passes. Batches cover at most one
/// evaluation interval of event time (the smallest of the alarms', 1 h
/// without alarms), so alarms are evaluated as often as when running.
pub fn import(args: ImportArgs) -> Result<(), Failure> {
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
    } = super::check::load_and_check(&args.config)?;
    let span_ns = config
        .alarms
        .iter()
        .map(|a| a.evaluation_interval)
        .min()
        .unwrap_or(Duration::from_secs(3600))
        .as_nanos() as i64;

    // Read everything first: a missing file fails before anything is written.
    let mut inputs = Vec::new();
    for file in &args.files {
        let (rows, report) =
            read_csv(file, &opts).map_err(|e| Failure::Usage(format!("error: {e:#}")))?;
        let metric = args.metric.clone().unwrap_or_else(|| {
            file.file_stem()
                .map_or_else(|| "import".into(), |s| s.to_string_lossy().into_owned())
        });
        inputs.push((file.clone(), metric, rows, report));
    }
    let total: u64 = inputs.iter().map(|i| i.2.len() as u64).sum();

    let engine = RollupEngine::new(config.policies.clone(), config.rules.clone());
    let writer = ArchiveWriter::new(
        &config.archive.root,
        config.policies.clone().into(),
        digests,
    );
    let mut sink = ArchiveSink::new(
        engine,
        writer,
        config.archive.data_dir.clone(),
        Clock::EventTime,
    )?
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
        let series: Vec<WitSeries> = inputs
            .iter()
            .map(|(_, metric, _, _)| WitSeries {
                metric: metric.clone(),
                resource_id: args.resource_id.clone(),
                unit: args.unit.clone(),
                type_: SampleType::Gauge,
                attributes: Vec::new(),
            })
            .collect();
        let mut rows: Vec<(i64, u32, f64)> = inputs
            .iter()
            .enumerate()
            .flat_map(|(i, (_, _, r, _))| r.iter().map(move |&(t, v)| (t, i as u32, v)))
            .collect();
        rows.sort_by_key(|r| r.0);
        let mut start = 0;
        while start < rows.len() {
            let window = crate::rollup::floor(rows[start].0, span_ns);
            let mut end = start;
            while end < rows.len() && end - start < BATCH_ROWS && rows[end].0 < window + span_ns {
                end += 1;
            }
            let chunk = &rows[start..end];
            let batch = crate::batch::from_wit(WitBatch {
                series: series.clone(),
                series_index: chunk.iter().map(|r| r.1).collect(),
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
    for (file, metric, _, r) in &inputs {
        eprintln!(
            "{}: {} lines, {} samples imported as {metric}; dropped: {} bad lines, {} backward, {} nonexistent local times; {} ambiguous local times mapped",
            file.display(),
            r.lines,
            r.rows,
            r.bad_lines.len(),
            r.backward,
            r.nonexistent,
            r.ambiguous
        );
    }
    Ok(())
}

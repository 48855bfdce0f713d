//! `wasmeter run CONFIG`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::Failure;
use crate::archive::{ArchiveSink, ArchiveWriter, Clock, PrintTee};
use crate::pipeline::Pipeline;
use crate::rollup::RollupEngine;

/// Arguments of `wasmeter run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The pipeline config file (TOML).
    pub config: PathBuf,
    /// Stop by itself after this long (e.g. `30s`), draining as on SIGINT.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Also print every sample leaving the graph to stdout, one line each:
    /// `TIME METRIC RESOURCE VALUE UNIT [k=v,…]` (time RFC 3339, UTC).
    #[arg(long)]
    pub print: bool,
}

/// Runs the pipeline until a signal or `--duration`, then drains it: the
/// samples are rolled up by archive policy into the Parquet archive, and
/// the open buckets are saved for the next start.
pub fn run(args: RunArgs) -> Result<(), Failure> {
    let (config, runtime, digests) = super::check::load_and_check(&args.config)?;
    let engine = RollupEngine::new(config.policies.clone(), config.rules.clone());
    let writer = ArchiveWriter::new(
        &config.archive.root,
        config.policies.clone().into(),
        digests,
    );
    let mut sink = ArchiveSink::new(engine, writer, config.archive.data_dir.clone(), Clock::Wall)?;
    if args.print {
        sink = sink.with_tee(PrintTee::stdout());
    }
    let rt = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    rt.block_on(async move {
        let pipeline = Pipeline::start(&config, &runtime, sink)?;
        tracing::info!(
            config = %args.config.display(),
            collectors = config.collectors.len(),
            transformers = config.transformers.len(),
            "pipeline running"
        );
        let shutdown = pipeline.shutdown_handle();
        let stop = async {
            match args.duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot install the SIGTERM handler")?;
        tokio::select! {
            _ = stop => tracing::info!("--duration reached, draining"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT, draining"),
            _ = sigterm.recv() => tracing::info!("SIGTERM, draining"),
        }
        shutdown.trigger();
        let report = pipeline.wait().await;
        let mut names: Vec<_> = report.stages.keys().cloned().collect();
        names.sort();
        for name in names {
            let s = &report.stages[&name];
            let errors = s.plugin.error_count();
            tracing::info!(stage = %name, batches = s.batches, samples_in = s.samples_in, samples_out = s.samples_out, errors, dead_lettered = s.dead_lettered, "stage summary");
        }
        tracing::info!(samples = report.samples_to_sink, "pipeline stopped");
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(())
}

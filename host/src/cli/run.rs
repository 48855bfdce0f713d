//! `wasmeter run CONFIG`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::Failure;
use notify::{RecursiveMode, Watcher};
use tokio::signal::unix::{SignalKind, signal};

use crate::alarm::Notifier;
use crate::archive::{ArchiveSink, ArchiveWriter, Clock, PrintTee};
use crate::config::PipelineConfig;
use crate::pipeline::Pipeline;
use crate::plugin::PluginSource;
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
    let super::check::Checked {
        config,
        runtime,
        digests,
        alarms,
        lock,
    } = super::check::load_and_check(&args.config, true)?;
    let engine = RollupEngine::new(config.policies.clone(), config.rules.clone());
    let writer = ArchiveWriter::new(
        &config.archive.root,
        config.policies.clone().into(),
        digests,
    );
    let lock = lock.expect("asked for");
    let mut sink = ArchiveSink::new_locked(lock, engine, writer, &config.archive, Clock::Wall)?
        .for_config(&config);
    if args.print {
        sink = sink.with_tee(PrintTee::stdout());
    }
    let rt = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    if let Some(evaluator) = alarms {
        let notifier = Notifier::new(config.notifier, rt.handle().clone())?;
        sink = sink.with_alarms(evaluator, notifier);
    }
    rt.block_on(async move {
        let mut pipeline = Pipeline::start(&config, &runtime, sink)?;
        tracing::info!(
            config = %args.config.display(),
            collectors = config.collectors.len(),
            transformers = config.transformers.len(),
            alarms = config.alarms.len(),
            "pipeline running"
        );
        let (reload_tx, mut reload_rx) = tokio::sync::mpsc::channel::<&'static str>(16);
        let mut watcher = watch_files(&args.config, &config, reload_tx.clone());
        let stop = async {
            match args.duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(stop);
        let mut sigterm = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
        let mut sighup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
        loop {
            let cause = tokio::select! {
                _ = &mut stop => { tracing::info!("--duration reached, draining"); break }
                _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT, draining"); break }
                _ = sigterm.recv() => { tracing::info!("SIGTERM, draining"); break }
                _ = sighup.recv() => "SIGHUP",
                Some(cause) = reload_rx.recv() => cause,
            };
            // Debounce: editors write a file in several steps.
            tokio::time::sleep(RELOAD_DEBOUNCE).await;
            while reload_rx.try_recv().is_ok() {}
            match PipelineConfig::load(&args.config) {
                Err(errors) => {
                    tracing::error!(cause, "reload refused, the running pipeline is unchanged:\n{errors}");
                }
                Ok(new) => {
                    let new_watch = new.clone();
                    match pipeline.reload(new).await {
                        Ok(report) => {
                            tracing::info!(cause, "reloaded: {report}");
                            watcher = watch_files(&args.config, &new_watch, reload_tx.clone());
                        }
                        Err(e) => tracing::error!(cause, "reload refused, the running pipeline is unchanged: {e}"),
                    }
                }
            }
        }
        drop(watcher);
        let report = pipeline.stop().await;
        let mut names: Vec<_> = report.stages.keys().cloned().collect();
        names.sort();
        for name in names {
            let s = &report.stages[&name];
            let errors = s.plugin.error_count();
            tracing::info!(stage = %name, batches = s.batches, samples_in = s.samples_in, samples_out = s.samples_out, errors, dead_lettered = s.dead_lettered, "stage summary");
        }
        tracing::info!(samples = report.samples_to_sink, reloads = report.reloads, "pipeline stopped");
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(())
}

/// Quiet time after a file event before the reload starts.
const RELOAD_DEBOUNCE: Duration = Duration::from_millis(200);

/// Watches the config file and every plugin file it references (their
/// folders, since editors replace files by renaming); sends on `tx` when
/// one of them changes. `None` (logged) when watching is not possible: the
/// pipeline then reloads on SIGHUP only.
fn watch_files(
    config_path: &std::path::Path,
    config: &PipelineConfig,
    tx: tokio::sync::mpsc::Sender<&'static str>,
) -> Option<notify::RecommendedWatcher> {
    let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut files = vec![absolute(config_path)];
    for source in config
        .collectors
        .iter()
        .map(|c| &c.plugin)
        .chain(config.transformers.iter().map(|t| &t.plugin))
        .chain(
            config
                .alarms
                .iter()
                .flat_map(|a| a.rule.leaves())
                .map(|l| &l.plugin),
        )
    {
        if let PluginSource::File(p) = source {
            files.push(absolute(p));
        }
    }
    let wanted = files.clone();
    let handler = move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !event.kind.is_access()
            && event.paths.iter().any(|p| wanted.contains(p))
        {
            let _ = tx.try_send("file change");
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("cannot watch files, reload with SIGHUP: {e}");
            return None;
        }
    };
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(PathBuf::from))
        .collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), "cannot watch, reload with SIGHUP: {e}");
        }
    }
    Some(watcher)
}

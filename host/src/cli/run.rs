//! `wasmeter run CONFIG`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int8Type, Int32Type, TimestampNanosecondType};
use clap::Args;

use super::Failure;
use crate::batch::columns;
use crate::pipeline::{Pipeline, Sink};

/// Arguments of `wasmeter run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The pipeline config file (TOML).
    pub config: PathBuf,
    /// Stop by itself after this long (e.g. `30s`), draining as on SIGINT.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Print every sample leaving the graph to stdout, one line each:
    /// `TIME METRIC RESOURCE VALUE UNIT [k=v,…]` (time RFC 3339, UTC).
    #[arg(long)]
    pub print: bool,
}

/// Runs the pipeline until a signal or `--duration`, then drains it.
pub fn run(args: RunArgs) -> Result<(), Failure> {
    let (config, runtime) = super::check::load_and_check(&args.config)?;
    let rt = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    rt.block_on(async move {
        let sink = PrintSink { print: args.print, out: std::io::BufWriter::new(std::io::stdout()) };
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

/// Prints samples as text lines (or only counts them).
struct PrintSink<W: Write> {
    print: bool,
    out: W,
}

impl<W: Write + Send + 'static> Sink for PrintSink<W> {
    fn write(&mut self, _stage: &str, batch: &RecordBatch) {
        if !self.print {
            return;
        }
        // A closed stdout (e.g. `| head`) is not an error: stop printing.
        if write_lines(&mut self.out, batch)
            .and_then(|_| self.out.flush())
            .is_err()
        {
            self.print = false;
        }
    }
}

fn write_lines(out: &mut impl Write, batch: &RecordBatch) -> std::io::Result<()> {
    let col = |name| batch.column_by_name(name).expect("sample schema");
    let ts = col(columns::TIMESTAMP).as_primitive::<TimestampNanosecondType>();
    let dict = |name| {
        let d = col(name).as_dictionary::<Int32Type>();
        (d.keys().clone(), d.values().as_string::<i32>().clone())
    };
    let (mk, mv) = dict(columns::METRIC);
    let (rk, rv) = dict(columns::RESOURCE_ID);
    let (uk, uv) = dict(columns::UNIT);
    let _types = col(columns::TYPE).as_dictionary::<Int8Type>();
    let attrs = col(columns::ATTRIBUTES).as_map();
    let values = col(columns::VALUE).as_primitive::<arrow::datatypes::Float64Type>();
    for i in 0..batch.num_rows() {
        let t = std::time::UNIX_EPOCH + Duration::from_nanos(ts.value(i).max(0) as u64);
        write!(
            out,
            "{} {} {} {} {}",
            humantime::format_rfc3339_nanos(t),
            mv.value(mk.value(i) as usize),
            rv.value(rk.value(i) as usize),
            values.value(i),
            uv.value(uk.value(i) as usize),
        )?;
        let entries = attrs.value(i);
        if !entries.is_empty() {
            let k = entries.column(0).as_string::<i32>();
            let v = entries.column(1).as_string::<i32>();
            let pairs: Vec<String> = (0..entries.len())
                .map(|j| format!("{}={}", k.value(j), v.value(j)))
                .collect();
            write!(out, " {}", pairs.join(","))?;
        }
        writeln!(out)?;
    }
    Ok(())
}

//! The `wasmeter` command line: one module per subcommand.
//!
//! Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.

mod alarm;
mod check;
mod import;
mod plugin;
mod query;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A WebAssembly-extensible metric pipeline.
///
/// Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.
#[derive(Debug, Parser)]
#[command(name = "wasmeter", version, about, long_about = None)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the pipeline of CONFIG until SIGINT/SIGTERM or --duration.
    Run(run::RunArgs),
    /// Backfills history from files through CONFIG's pipeline, in event time.
    Import(Box<import::ImportArgs>),
    /// Validates CONFIG and loads its plugins; prints every problem.
    Check(check::CheckArgs),
    /// Works with plugin components.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Shows alarms: current states and history.
    #[command(subcommand)]
    Alarm(alarm::AlarmCommand),
    /// Reads one metric's aggregates from the archive (Gnocchi's measures).
    Measures(query::MeasuresArgs),
    /// Evaluates Gnocchi aggregates operations over archived series.
    Aggregates(query::AggregatesArgs),
    /// Runs SQL over the archive (DataFusion; one table per archive policy).
    Query(query::QueryArgs),
}

/// Outcome of a subcommand, mapped to the exit code.
#[derive(Debug)]
pub enum Failure {
    /// Exit 1: something failed while running.
    Runtime(anyhow::Error),
    /// Exit 2: bad usage, config or plugin file; already printed.
    Usage(String),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `plugin test` shows everything the plugin logs, debug records too.
    let default_filter = match &cli.command {
        Command::Plugin(plugin::PluginCommand::Test(_)) => "info,wasmeter::plugin=trace",
        _ => "info",
    };
    init_tracing(default_filter);
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::check(args),
        Command::Import(args) => import::import(*args),
        Command::Plugin(cmd) => plugin::plugin(cmd),
        Command::Alarm(cmd) => alarm::alarm(cmd),
        Command::Measures(args) => query::measures_cmd(args),
        Command::Aggregates(args) => query::aggregates_cmd(args),
        Command::Query(args) => query::query_cmd(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            if !msg.is_empty() {
                eprintln!("{msg}");
            }
            ExitCode::from(2)
        }
        // `wasmeter measures … | head`: a closed pipe is not an error.
        Err(Failure::Runtime(e))
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Logs go to stderr, coloured only on a terminal (a log file or journal
/// gets plain `key=value` fields); `RUST_LOG` sets the filter (default
/// `info`).
/// Parses a `KEY=VALUE` argument (`--setting`, `--decoder-setting`).
pub(crate) fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?}: expected KEY=VALUE")),
    }
}

/// Now, ns since the Unix epoch, UTC (for relative times like `-1h`).
pub(crate) fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

fn init_tracing(default_filter: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

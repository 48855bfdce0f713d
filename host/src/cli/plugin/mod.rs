//! `wasmeter plugin …`.

use std::path::PathBuf;

use clap::Subcommand;

use super::Failure;
use crate::plugin::{Plugin, PluginSource, Runtime};

mod test;

/// Subcommands of `wasmeter plugin`.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Prints a component's world, contract version, exports, imports and
    /// size; exits 2 with the reason when the file is not a loadable plugin.
    Inspect {
        /// A `.wasm` component file, or `builtin:NAME`.
        file: String,
    },
    /// Runs a plugin once outside any pipeline: a transformer on the
    /// samples of `--input`, a collector's collect at `--now`, a decoder on
    /// the bytes of `--input`, an alarm rule on the series of `--input`.
    /// Prints the output (stdout), the plugin's log, its time and peak
    /// memory (stderr); with `--expect`, exits 1 unless the output equals
    /// that file's.
    Test(Box<test::TestArgs>),
}

/// Runs a `plugin` subcommand.
pub fn plugin(cmd: PluginCommand) -> Result<(), Failure> {
    match cmd {
        PluginCommand::Inspect { file } => {
            let source = PluginSource::parse(&file, &PathBuf::from("."));
            let runtime = Runtime::new().map_err(|e| Failure::Runtime(e.into()))?;
            let p = Plugin::load(&runtime, &file, &source)
                .map_err(|e| Failure::Usage(format!("error: {e}")))?;
            println!("plugin:    {file}");
            println!("world:     {}", p.world());
            println!("contract:  wasmeter:plugin@{}", p.contract_version());
            println!("size:      {} bytes", p.size());
            println!("exports:   {}", p.exports().join(", "));
            println!("imports:");
            for i in p.imports() {
                println!("  {i}");
            }
            Ok(())
        }
        PluginCommand::Test(args) => test::run(*args),
    }
}

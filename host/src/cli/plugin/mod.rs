//! `wasmeter plugin …`.

use std::path::PathBuf;

use clap::Subcommand;

use super::Failure;
use crate::plugin::{Plugin, PluginSource, Runtime, World, authoring};

mod new;
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
    /// Creates a working plugin project (Rust, Python, JavaScript or C) for
    /// a world, with `build.sh` and `test.sh` (`plugin test` against its
    /// own test input and expected output).
    New(new::NewArgs),
    /// Writes the plugin contract (`wasmeter.wit`) into DIR, for the
    /// bindings generators of other languages (componentize-py,
    /// componentize-js, wit-bindgen).
    Wit {
        /// The directory to write `wasmeter.wit` into (created if missing).
        #[arg(default_value = "wit")]
        dir: PathBuf,
    },
    /// Writes C bindings of a world (`<world>.h`, `<world>.c`; wit-bindgen's
    /// C generator) into DIR.
    Bindings {
        /// The language; C is the one whose toolchain has no generator of
        /// its own.
        #[arg(long, value_enum, default_value = "c")]
        lang: BindingsLang,
        /// The world the plugin implements.
        #[arg(long, value_enum)]
        world: WorldArg,
        /// The directory to write into (created if missing).
        #[arg(long, short = 'o', default_value = ".")]
        out: PathBuf,
    },
    /// Turns a core Wasm module (C built for wasm32-wasi, preview 1, as a
    /// reactor) into a plugin component: embeds the world and adapts WASI
    /// preview 1 to preview 2.
    Componentize {
        /// The core module.
        module: PathBuf,
        /// The world the module implements.
        #[arg(long, value_enum)]
        world: WorldArg,
        /// The component to write.
        #[arg(long, short = 'o')]
        out: PathBuf,
    },
}

/// Languages `plugin bindings` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BindingsLang {
    /// C (and C++), for clang or zig cc with wasi-libc.
    C,
}

/// A plugin world, as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WorldArg {
    /// Produces samples on an interval.
    Collector,
    /// Batch in, batch out.
    Transformer,
    /// Decides ok / alarm / insufficient data per series.
    AlarmRule,
    /// Bytes of a wire format in, samples out.
    Decoder,
}

impl From<WorldArg> for World {
    fn from(w: WorldArg) -> World {
        match w {
            WorldArg::Collector => World::Collector,
            WorldArg::Transformer => World::Transformer,
            WorldArg::AlarmRule => World::AlarmRule,
            WorldArg::Decoder => World::Decoder,
        }
    }
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
        PluginCommand::New(args) => new::run(args),
        PluginCommand::Wit { dir } => {
            let path = authoring::write_wit(&dir)?;
            println!("{}", path.display());
            Ok(())
        }
        PluginCommand::Bindings { lang, world, out } => {
            let BindingsLang::C = lang;
            for path in authoring::write_c_bindings(world.into(), &out)? {
                println!("{}", path.display());
            }
            Ok(())
        }
        PluginCommand::Componentize { module, world, out } => {
            let core = std::fs::read(&module)
                .map_err(|e| Failure::Usage(format!("error: {}: {e}", module.display())))?;
            let component = authoring::componentize(&core, world.into())
                .map_err(|e| Failure::Usage(format!("error: {}: {e:#}", module.display())))?;
            std::fs::write(&out, &component)
                .map_err(|e| Failure::Runtime(anyhow::anyhow!("{}: {e}", out.display())))?;
            println!("{}: {} bytes", out.display(), component.len());
            Ok(())
        }
    }
}

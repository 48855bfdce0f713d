//! The plugin runtime: loading WebAssembly components, checking them
//! against the contract, and running them in a sandbox.
//!
//! Consumes: component bytes (a `.wasm` file or a `builtin:NAME` standard
//! plugin) and the stage's grants and limits. Emits: instances that turn
//! Arrow batches into Arrow batches (transformers) or produce them
//! (collectors), and [`PluginError`]s classified by fault.
//!
//! One [`Runtime`] (one wasmtime `Engine`, one `Linker`) per process. Each
//! [`Plugin`] is compiled once and pre-linked (`InstancePre`), so an instance
//! costs microseconds. Each instance has its own `Store` with a memory cap
//! and a per-call wall-time deadline (epoch interruption), and sees only the
//! directories and environment variables its [`Grants`] list: no network,
//! no other files, no environment.

mod error;
mod host;
mod instance;
mod load;

pub use error::{PluginError, PluginErrorKind};
pub use instance::{Collector, Transformer};
pub use load::{Plugin, PluginSource, World};

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine};

use host::HostState;

/// How often the epoch advances; deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// What a plugin instance may touch. Nothing by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Host directories preopened read-only, each visible to the plugin at
    /// the same path (e.g. `/proc`).
    pub read_dirs: Vec<PathBuf>,
    /// Environment variables the plugin may read, by name; their values are
    /// taken from the host's environment when the instance starts.
    pub env: Vec<String>,
}

/// Per-instance resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest linear memory an instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// Wall-time budget of one call into the plugin.
    pub call_timeout: Duration,
}

impl Default for Limits {
    /// 256 MiB of memory and 10 s per call.
    fn default() -> Self {
        Limits {
            memory_bytes: 256 << 20,
            call_timeout: Duration::from_secs(10),
        }
    }
}

/// The process-wide Wasm engine and linker.
///
/// Cloning is cheap (shared). Dropping the last clone stops the epoch
/// ticker.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    linker: Linker<HostState>,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// Creates the engine (component model, epoch interruption), the linker
    /// (WASI p2 and wasmeter's `log`) and starts the epoch ticker thread.
    ///
    /// # Errors
    /// `PluginErrorKind::Internal` when wasmtime refuses the configuration.
    pub fn new() -> Result<Self, PluginError> {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| PluginError::internal("engine", e))?;
        let mut linker = Linker::new(&engine);
        host::add_to_linker(&mut linker).map_err(|e| PluginError::internal("linker", e))?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (weak, stop) = (engine.weak(), ticker_stop.clone());
        std::thread::Builder::new()
            .name("wasmeter-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| PluginError::internal("epoch ticker", e.into()))?;
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                ticker_stop,
            }),
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.inner.linker
    }
}

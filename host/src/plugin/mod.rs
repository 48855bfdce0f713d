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
//! no other files, no environment. What it writes to stdout and stderr goes
//! to the host's log line by line, tagged with its name, at most 64 KiB per
//! 10 s per stream.

mod cache;
mod error;
mod host;
mod instance;
mod load;
mod output;

pub mod authoring;

pub use error::{PluginError, PluginErrorKind};
pub use instance::{
    AlarmRule, CallStats, Collector, Decoded, Decoder, Instance, RejectedLine, Transformer,
};
pub use load::{Plugin, PluginSource, World};
pub use output::{MAX_LINE_BYTES, OUTPUT_BUDGET_BYTES, OUTPUT_WINDOW};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, ProfilingStrategy};

use host::HostState;

/// `sha256:<hex>` of a component's bytes: its identity in the compile cache,
/// in reloads and in the archive's metadata.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    format!(
        "sha256:{}",
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

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
    /// Hosts the plugin may send HTTP requests to (standard `wasi:http`):
    /// `host` (any port) or `host:port`. A request to any other authority
    /// fails with `HTTP request denied`, and is logged.
    pub http_hosts: Vec<String>,
}

/// Per-instance resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest linear memory an instance may grow to, in bytes. A plugin's
    /// output lives in its memory, so this also bounds what one call can
    /// return.
    pub memory_bytes: usize,
    /// Wall-time budget of one call into the plugin.
    pub call_timeout: Duration,
    /// An instance whose linear memory stays above this many bytes for
    /// [`RECYCLE_AFTER_CALLS`] calls in a row is replaced by a fresh one
    /// between batches (Wasm memory never shrinks).
    pub recycle_above_bytes: usize,
}

/// Calls above the high-water mark before an instance is recycled.
pub const RECYCLE_AFTER_CALLS: u32 = 3;

impl Default for Limits {
    /// 256 MiB of memory, 10 s per call, recycled above 192 MiB.
    fn default() -> Self {
        Limits {
            memory_bytes: 256 << 20,
            call_timeout: Duration::from_secs(10),
            recycle_above_bytes: 192 << 20,
        }
    }
}

/// The environment variable that makes plugin code visible to Linux
/// `perf`:
///
/// - `perfmap`: function names in `/tmp/perf-<pid>.map`, for `perf report`;
/// - `jitdump`: names and machine code in `./jit-<pid>.dump`, for
///   `perf record -k 1`, then `perf inject --jit` and `perf annotate`;
/// - unset, empty or `none`: no profiler (the default).
///
/// Read by every [`Runtime::new`] and [`Runtime::with_cache_dir`].
pub const PROFILE_ENV: &str = "WASMETER_PROFILE";

/// The profiler a [`PROFILE_ENV`] value names.
///
/// # Errors
/// `PluginErrorKind::Internal` naming the variable, the value and the
/// accepted values, for any other value.
fn profiling_strategy(value: Option<&str>) -> Result<ProfilingStrategy, PluginError> {
    match value {
        None | Some("" | "none") => Ok(ProfilingStrategy::None),
        Some("perfmap") => Ok(ProfilingStrategy::PerfMap),
        Some("jitdump") => Ok(ProfilingStrategy::JitDump),
        Some(other) => Err(PluginError::new(
            "wasmeter",
            PluginErrorKind::Internal,
            format!("{PROFILE_ENV}={other:?}: expected perfmap, jitdump or none"),
        )),
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
    cache_dir: Option<PathBuf>,
    compilations: AtomicU64,
    cache_hits: AtomicU64,
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
    /// `PluginErrorKind::Internal` when wasmtime refuses the configuration,
    /// or when [`PROFILE_ENV`] holds a value other than `perfmap`,
    /// `jitdump` or `none` (the error names the value).
    pub fn new() -> Result<Self, PluginError> {
        Self::build(None)
    }

    /// As [`Runtime::new`], with compiled components cached in `dir`
    /// (created if missing), keyed by the component's SHA-256 and the
    /// engine's compatibility hash.
    ///
    /// # Errors
    /// As [`Runtime::new`].
    pub fn with_cache_dir(dir: &Path) -> Result<Self, PluginError> {
        Self::build(Some(dir.to_path_buf()))
    }

    fn build(cache_dir: Option<PathBuf>) -> Result<Self, PluginError> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .profiler(profiling_strategy(
                std::env::var(PROFILE_ENV).ok().as_deref(),
            )?);
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
                cache_dir,
                compilations: AtomicU64::new(0),
                cache_hits: AtomicU64::new(0),
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

    /// Components compiled by this runtime (cache misses included).
    pub fn compilations(&self) -> u64 {
        self.inner.compilations.load(Ordering::Relaxed)
    }

    /// Components loaded from the on-disk cache without compiling.
    pub fn cache_hits(&self) -> u64 {
        self.inner.cache_hits.load(Ordering::Relaxed)
    }

    /// Compiles `bytes`, through the cache when there is one.
    pub(crate) fn compile(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<wasmtime::component::Component, PluginError> {
        let inner = &self.inner;
        if let Some(dir) = &inner.cache_dir
            && let Some(c) = cache::load(&inner.engine, dir, bytes)
        {
            inner.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(c);
        }
        let component = wasmtime::component::Component::new(&inner.engine, bytes)
            .map_err(|e| PluginError::load(name, format!("invalid component: {e:#}")))?;
        inner.compilations.fetch_add(1, Ordering::Relaxed);
        if let Some(dir) = &inner.cache_dir {
            cache::store(&inner.engine, dir, bytes, &component);
        }
        Ok(component)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_values() {
        for (value, want) in [
            (None, ProfilingStrategy::None),
            (Some(""), ProfilingStrategy::None),
            (Some("none"), ProfilingStrategy::None),
            (Some("perfmap"), ProfilingStrategy::PerfMap),
            (Some("jitdump"), ProfilingStrategy::JitDump),
        ] {
            assert_eq!(profiling_strategy(value).unwrap(), want, "{value:?}");
        }
        let e = profiling_strategy(Some("PerfMap")).unwrap_err();
        assert_eq!(e.kind, PluginErrorKind::Internal);
        assert!(
            e.to_string().contains("WASMETER_PROFILE=\"PerfMap\""),
            "{e}"
        );
    }
}

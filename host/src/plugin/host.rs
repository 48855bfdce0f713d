//! The per-instance host state: the WASI context built from the grants, the
//! memory limiter, and wasmeter's host interfaces (`log`).

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::output::{LogPipe, Stream};
use super::{Grants, Limits, PluginError, PluginErrorKind};
use crate::bindings::Level;
use crate::bindings::common::wasmeter::plugin::{log, types};

/// What a `Store` holds for one plugin instance.
pub(crate) struct HostState {
    plugin: String,
    wasi: WasiCtx,
    stdout: LogPipe,
    stderr: LogPipe,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
}

impl HostState {
    /// A sandbox with exactly `grants`: read-only preopens, allow-listed
    /// environment variables, no sockets, no stdin; stdout and stderr go
    /// line by line to the host's log, tagged with the plugin's name and
    /// bounded (see [`super::output`]).
    pub(crate) fn new(plugin: &str, grants: &Grants, limits: &Limits) -> Result<Self, PluginError> {
        let stdout = LogPipe::new(plugin, Stream::Stdout);
        let stderr = LogPipe::new(plugin, Stream::Stderr);
        let mut b = WasiCtxBuilder::new();
        b.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stdout(stdout.clone())
            .stderr(stderr.clone());
        for dir in &grants.read_dirs {
            let guest = dir.to_string_lossy();
            b.preopened_dir(dir, guest.as_ref(), FsPerms::ReadOnly)
                .map_err(|e| {
                    PluginError::new(
                        plugin,
                        PluginErrorKind::Load,
                        format!("read_dirs: cannot open {}: {e:#}", dir.display()),
                    )
                })?;
        }
        for name in &grants.env {
            if let Ok(value) = std::env::var(name) {
                b.env(name, value);
            }
        }
        Ok(HostState {
            plugin: plugin.to_owned(),
            wasi: b.build(),
            stdout,
            stderr,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits.memory_bytes),
        })
    }
}

impl HostState {
    /// Logs what the plugin wrote without a final newline (after a call).
    pub(crate) fn flush_output(&self) {
        self.stdout.flush_line();
        self.stderr.flush_line();
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        let plugin = self.plugin.as_str();
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

/// Adds WASI p2 and wasmeter's host interfaces to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    crate::bindings::common::Common::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    Ok(())
}

/// Caps linear memory growth and records refusals and the peak size.
pub(crate) struct MemoryLimiter {
    max_bytes: usize,
    /// Set when a growth was refused; cleared before each call.
    pub(crate) denied: bool,
    /// Largest memory size seen, in bytes.
    pub(crate) peak_bytes: usize,
}

impl MemoryLimiter {
    fn new(max_bytes: usize) -> Self {
        MemoryLimiter {
            max_bytes,
            denied: false,
            peak_bytes: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.denied = true;
            return Ok(false);
        }
        self.peak_bytes = self.peak_bytes.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

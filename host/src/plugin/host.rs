//! The per-instance host state: the WASI context built from the grants, the
//! memory limiter, and wasmeter's host interfaces (`log`).

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    Error as HttpError, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use super::output::{LogPipe, Stream};
use super::{Grants, Limits, PluginError, PluginErrorKind};
use crate::bindings::Level;
use crate::bindings::common::wasmeter::plugin::{log, types};

/// What a `Store` holds for one plugin instance.
pub(crate) struct HostState {
    plugin: String,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    http_grant: HttpGrant,
    stdout: LogPipe,
    stderr: LogPipe,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
}

impl HostState {
    /// A sandbox with exactly `grants`: read-only preopens, allow-listed
    /// environment variables, `wasi:http` requests to allow-listed hosts
    /// only, no sockets, no stdin; stdout and stderr go
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
            http: WasiHttpCtx::new(),
            http_grant: HttpGrant {
                plugin: plugin.to_owned(),
                hosts: grants.http_hosts.clone(),
            },
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

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.http_grant,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

/// The `wasi:http` allow-list of one instance.
struct HttpGrant {
    plugin: String,
    hosts: Vec<String>,
}

impl HttpGrant {
    /// True when `host:port` (or `host` alone, for any port) is granted.
    fn allows(&self, host: &str, port: Option<u16>) -> bool {
        self.hosts.iter().any(|g| match g.rsplit_once(':') {
            // `host:port`, `[v6]:port`
            Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
                let h = h.trim_start_matches('[').trim_end_matches(']');
                h.eq_ignore_ascii_case(host) && port.is_some_and(|port| p == port.to_string())
            }
            // `host`, `v6`, `[v6]`: any port
            _ => g
                .trim_start_matches('[')
                .trim_end_matches(']')
                .eq_ignore_ascii_case(host),
        })
    }
}

type SendFuture = Box<
    dyn std::future::Future<
            Output = Result<
                (
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<dyn std::future::Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for HttpGrant {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn std::future::Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        _ = fut;
        let uri = request.uri();
        let host = uri
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']');
        let port = uri.port_u16().or(match uri.scheme_str() {
            Some("http") => Some(80),
            Some("https") => Some(443),
            _ => None,
        });
        if !self.allows(host, port) {
            tracing::warn!(
                plugin = %self.plugin,
                authority = %uri.authority().map_or("", |a| a.as_str()),
                "HTTP request denied: the authority is not in grants.http_hosts"
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn std::future::Future<Output = _> + Send>,
            ))
        })
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
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(linker)?;
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

#[cfg(test)]
mod tests {
    use super::HttpGrant;

    #[test]
    fn grants_match_host_and_port() {
        let g = HttpGrant {
            plugin: "p".into(),
            hosts: vec![
                "api.example.com".into(),
                "127.0.0.1:8080".into(),
                "[::1]:9000".into(),
            ],
        };
        assert!(g.allows("api.example.com", Some(443)));
        assert!(g.allows("API.example.com", Some(80)));
        assert!(g.allows("127.0.0.1", Some(8080)));
        assert!(!g.allows("127.0.0.1", Some(8081)));
        assert!(g.allows("::1", Some(9000)));
        assert!(!g.allows("::1", Some(9001)));
        assert!(!g.allows("example.com", Some(443)));
    }
}

//! The pipeline config file: schema, parsing and validation.
//!
//! Consumes: one TOML file. Emits: a validated [`PipelineConfig`], or every
//! problem at once as [`ConfigErrors`], each naming file, line, column and
//! field.
//!
//! ```toml
//! [[collector]]
//! name = "host"                    # unique stage name
//! plugin = "builtin:procfs"        # or a path to a .wasm component
//! interval = "10s"                 # humantime duration
//! settings = { resource_id = "web-1" }
//! grants = { read_dirs = ["/proc"] }
//!
//! [[collector]]
//! name = "node"                    # a scrape: the host fetches `url` and a
//! plugin = "builtin:openmetrics"   # decoder plugin turns the body into samples
//! interval = "15s"
//! url = "http://127.0.0.1:9100/metrics"
//! scrape_timeout = "10s"           # default: the interval, at most 10 s
//! authorization = { credentials_file = "node.token" }   # Bearer, re-read per scrape
//! tls_config = { ca_file = "ca.pem" }                   # for an https:// url
//! proxy_url = "http://proxy:3128"  # environment proxies are ignored unless
//! no_proxy = "10.0.0.0/8"          # proxy_from_environment = true
//! follow_redirects = true          # default
//!
//! [[transformer]]
//! name = "memory-mib"
//! plugin = "builtin:unit-conversion"
//! inputs = ["host"]                # upstream stages
//! meters = ["memory.*"]            # Ceilometer meter filter
//! settings = { scale = 9.5367431640625e-7, unit = "MiB" }
//! ```

mod alarms;
mod meters;

pub use meters::MeterFilter;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::plugin::{Grants, Limits, PluginSource};
use crate::rollup::policy::{RawArchivePolicy, RawPolicyRule, builtin_policies};
use crate::rollup::{ArchivePolicy, PolicyRules};

/// A validated pipeline config.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// The file it was read from.
    pub path: PathBuf,
    /// Where wasmeter keeps its files.
    pub archive: ArchiveSettings,
    /// Gnocchi's built-in policies, plus (or replaced by) the configured ones.
    pub policies: Vec<ArchivePolicy>,
    /// The configured archive policy rules; without any, Gnocchi's
    /// `default: * -> low`.
    pub rules: PolicyRules,
    /// How often the pipeline emits its `wasmeter.*` self-metrics
    /// (`[telemetry] interval`, default 10 s).
    pub telemetry_interval: Duration,
    /// Where each stage's `plugin` key is written, by stage name, so that
    /// problems found when loading the plugin can name file, line and field.
    pub plugin_locations: HashMap<String, ConfigError>,
    /// Collector stages, in file order.
    pub collectors: Vec<CollectorConfig>,
    /// Transformer stages, in topological order (inputs first).
    pub transformers: Vec<TransformerConfig>,
    /// `[[alarm]]`s, in file order.
    pub alarms: Vec<crate::alarm::AlarmConfig>,
    /// `[notifier]`: webhook delivery settings.
    pub notifier: crate::alarm::NotifierSettings,
}

/// The `[archive]` section: where wasmeter keeps its files. Relative paths
/// are taken from the config file's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSettings {
    /// Root of the Parquet archive; default `DATA_DIR/archive`.
    pub root: PathBuf,
    /// wasmeter's working files: open buckets, dead letters
    /// (`DATA_DIR/dead-letter/`), the compile cache (`DATA_DIR/cache/`);
    /// default `wasmeter-data` beside the config file.
    pub data_dir: PathBuf,
    /// How far after the wall clock a measure may be stamped (`max_future`,
    /// a humantime duration; default 1 h, for clock skew between hosts).
    /// Later ones are refused by the rollup engine and counted (reason
    /// `future`), in `run` and `import` alike.
    pub max_future: Duration,
    /// How often the open buckets are saved to `DATA_DIR/open-buckets.arrow`
    /// while running (`checkpoint_interval`, default 5 min), besides at a
    /// clean stop; each starts a new write-ahead log ([`Self::wal`]).
    /// Without the log a crash loses the measures accepted since, in buckets
    /// not written yet. Each checkpoint writes the whole open state (16
    /// bytes per raw measure held).
    pub checkpoint_interval: Duration,
    /// Whether `wasmeter run` appends every batch the rollup engine
    /// receives to the write-ahead log `DATA_DIR/open-buckets.wal` before
    /// rolling it up (`wal`, default `true`), so that a crash loses no
    /// measure accepted since the last checkpoint (see
    /// [`crate::archive::wal`]). The log grows by about the Arrow size of
    /// the samples (about 35 bytes each, plus 8 bytes and the text of each
    /// attribute) between two checkpoints.
    pub wal: bool,
    /// At most how long after its append a batch in the write-ahead log is
    /// `fsync`ed (`wal_fsync_delay`, default 1 s; `0s`: after every batch),
    /// so that a crash of the machine (power loss) loses at most the
    /// measures of this span plus the sink's 1 s tick. Each `fsync` takes
    /// the sink's thread for about a disk write's latency.
    pub wal_fsync_delay: Duration,
}

/// The default of [`ArchiveSettings::wal_fsync_delay`].
pub const DEFAULT_WAL_FSYNC_DELAY: Duration = Duration::from_secs(1);

/// The default of [`ArchiveSettings::checkpoint_interval`].
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(300);

/// The default of [`ArchiveSettings::max_future`].
pub const DEFAULT_MAX_FUTURE: Duration = Duration::from_secs(3600);

/// One `[[collector]]` stage.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectorConfig {
    /// Unique stage name.
    pub name: String,
    /// The component to run.
    pub plugin: PluginSource,
    /// Time between two collections; ticks are aligned to multiples of it
    /// since the Unix epoch.
    pub interval: Duration,
    /// Passed to the plugin's `init`, as strings.
    pub settings: Vec<(String, String)>,
    /// What the plugin may touch.
    pub grants: Grants,
    /// Memory cap and call deadline.
    pub limits: Limits,
    /// For a decoder plugin: the target the host scrapes on every tick.
    pub scrape: Option<ScrapeTarget>,
}

/// What a scraping collector fetches. The URL is the whole network grant:
/// the host fetches it, the decoder plugin itself has no network. `Debug`
/// shows the URL's password as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct ScrapeTarget {
    /// `http://` or `https://` URL, fetched with GET on every tick.
    pub url: reqwest::Url,
    /// Deadline of one fetch (connect, headers and body); default the
    /// collector's interval, at most 10 s.
    pub timeout: Duration,
    /// Credentials sent with every fetch (`basic_auth` or `authorization`).
    pub auth: Option<ScrapeAuth>,
    /// How the host checks an `https://` target and proves itself to it.
    pub tls: TlsConfig,
    /// Whether a 301, 302, 303, 307 or 308 answer is followed
    /// (`follow_redirects`, default `true`, at most 10 hops, each with the
    /// scrape's credentials); when `false` a redirect fails the scrape with
    /// its status and where it pointed.
    pub follow_redirects: bool,
    /// Through which HTTP proxy the target is fetched.
    pub proxy: ScrapeProxy,
}

/// The proxy of a scrape, as Prometheus's `proxy_url`, `no_proxy` and
/// `proxy_from_environment`.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum ScrapeProxy {
    /// Direct, whatever the environment says (Prometheus's default).
    #[default]
    Direct,
    /// Through the proxy at `url` (`http://` or `https://`; credentials in
    /// it are sent as proxy Basic authentication), but for the hosts,
    /// domains and networks of `no_proxy` (comma-separated, as the
    /// `NO_PROXY` variable: `10.0.0.0/8`, `.example.com`, `localhost`).
    Url {
        /// The proxy's URL.
        url: reqwest::Url,
        /// Where to go direct, as given (empty: nowhere).
        no_proxy: String,
    },
    /// As the environment's `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY`
    /// (also lowercase) say (`proxy_from_environment = true`).
    FromEnvironment,
}

impl fmt::Debug for ScrapeProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScrapeProxy::Direct => f.write_str("Direct"),
            ScrapeProxy::Url { url, no_proxy } => f
                .debug_struct("Url")
                .field("url", &without_password(url.as_str()))
                .field("no_proxy", no_proxy)
                .finish(),
            ScrapeProxy::FromEnvironment => f.write_str("FromEnvironment"),
        }
    }
}

/// The credentials of a scrape, as Prometheus's `basic_auth` and
/// `authorization` (at most one of them per collector).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScrapeAuth {
    /// `Authorization: Basic base64(username:password)`.
    Basic {
        /// The user name.
        username: Secret,
        /// The password (empty when the config gives none).
        password: Secret,
    },
    /// `Authorization: SCHEME CREDENTIALS`.
    Authorization {
        /// The scheme, `Bearer` unless the config's `type` says otherwise.
        scheme: String,
        /// The credentials, e.g. a token.
        credentials: Secret,
    },
}

/// A password or token: in the config, or in a file read on every scrape
/// (so a rotated token is used from the next scrape on; surrounding
/// whitespace, such as the file's final newline, is not part of it).
/// `Debug` never shows an inline value.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// Given in the config file.
    Inline(String),
    /// Read from this file (relative paths are resolved against the config
    /// file's folder).
    File(PathBuf),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Inline(_) => f.write_str("Inline(***)"),
            Secret::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

/// A collector's `tls_config`, as Prometheus's. The files are PEM, read
/// when the stage starts (a bad file fails the start or the reload, naming
/// it) and again before every scrape (changed files are used from that
/// scrape on; unusable ones are warned about and the previous ones kept);
/// relative paths are resolved against the config file's folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// CA certificates that replace the built-in roots (webpki's) for
    /// checking the target.
    pub ca_file: Option<PathBuf>,
    /// The client certificate (chain) for mutual TLS, with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// Accept any certificate of the target: for tests only.
    pub insecure_skip_verify: bool,
    /// The oldest TLS version accepted (`min_version`): `TLS12`, the
    /// default, or `TLS13`.
    pub min_version: TlsVersion,
}

/// A TLS protocol version, in Prometheus's spelling. rustls speaks 1.2
/// and 1.3 only, so `TLS10` and `TLS11` are refused rather than ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2 (`TLS12`).
    #[default]
    Tls12,
    /// TLS 1.3 (`TLS13`).
    Tls13,
}

impl fmt::Debug for ScrapeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScrapeTarget")
            .field("url", &self.shown_url())
            .field("timeout", &self.timeout)
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .field("follow_redirects", &self.follow_redirects)
            .field("proxy", &self.proxy)
            .finish()
    }
}

impl ScrapeTarget {
    /// The URL as logs show it: its password, if any, as `***`.
    pub fn shown_url(&self) -> String {
        let mut shown = self.url.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("***"));
        }
        shown.to_string()
    }

    /// `host:port` of the URL (the port is the scheme's default when the
    /// URL has none): the default resource id of the scraped samples, as
    /// Prometheus's `instance` label.
    pub fn instance(&self) -> String {
        let host = self.url.host_str().unwrap_or("");
        match self.url.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }
}

/// One `[[transformer]]` stage.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformerConfig {
    /// Unique stage name.
    pub name: String,
    /// The component to run.
    pub plugin: PluginSource,
    /// Names of the upstream stages.
    pub inputs: Vec<String>,
    /// Which meters the plugin sees.
    pub meters: MeterFilter,
    /// Whether samples the filter rejects go on downstream unchanged
    /// (`true`, the default) or are dropped at this stage.
    pub pass_unmatched: bool,
    /// Passed to the plugin's `init`, as strings.
    pub settings: Vec<(String, String)>,
    /// What the plugin may touch.
    pub grants: Grants,
    /// Memory cap and call deadline.
    pub limits: Limits,
}

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The dotted path of the field, e.g. `transformer[1].inputs`.
    pub field: String,
    /// What is wrong, naming the bad value and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

/// Every problem found in a config file, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {e}")?;
        }
        Ok(())
    }
}

// ---- raw serde schema ----------------------------------------------------

/// The top level; read section by section (see [`read_raw`]) so that one
/// bad stage does not hide the problems of the others.
#[derive(Default)]
struct RawConfig {
    archive: RawArchive,
    telemetry: RawTelemetry,
    archive_policy: Vec<Spanned<RawArchivePolicy>>,
    archive_policy_rule: Vec<Spanned<RawPolicyRule>>,
    collector: Vec<Spanned<RawCollector>>,
    transformer: Vec<Spanned<RawTransformer>>,
    alarm: Vec<Spanned<alarms::RawAlarm>>,
    notifier: Option<Spanned<alarms::RawNotifier>>,
}

/// The top-level sections.
const SECTIONS: &str = "archive, telemetry, archive_policy, archive_policy_rule, collector, transformer, alarm, notifier";

/// Parses the TOML (a syntax error stops here), then deserializes each
/// section and each `[[…]]` entry on its own, collecting every error.
fn read_raw(src: &Source<'_>, text: &str) -> Result<(RawConfig, Vec<ConfigError>), ConfigErrors> {
    use serde::de::IntoDeserializer;
    use toml::de::{DeTable, DeValue};

    fn one<T: serde::de::DeserializeOwned>(
        v: Spanned<DeValue<'_>>,
        field: &str,
        src: &Source<'_>,
        errors: &mut Vec<ConfigError>,
    ) -> Option<T> {
        T::deserialize(v.into_deserializer())
            .map_err(|e| errors.push(src.error(e.span(), field, e.message().to_owned())))
            .ok()
    }
    fn each<T: serde::de::DeserializeOwned>(
        v: Spanned<DeValue<'_>>,
        name: &str,
        src: &Source<'_>,
        errors: &mut Vec<ConfigError>,
        out: &mut Vec<Spanned<T>>,
    ) {
        let span = v.span();
        match v.into_inner() {
            DeValue::Array(items) => {
                for (i, item) in items.into_iter().enumerate() {
                    if let Some(t) = one::<Spanned<T>>(item, &format!("{name}[{i}]"), src, errors) {
                        out.push(t);
                    }
                }
            }
            _ => errors.push(src.error(
                Some(span),
                name,
                format!("must be a list of tables, written [[{name}]]"),
            )),
        }
    }

    let doc = DeTable::parse(text)
        .map_err(|e| ConfigErrors(vec![src.error(e.span(), "", e.message().to_owned())]))?;
    let mut raw = RawConfig::default();
    let mut errors = Vec::new();
    for (key, value) in doc.into_inner() {
        let name = key.get_ref().to_string();
        match name.as_str() {
            "archive" => raw.archive = one(value, "archive", src, &mut errors).unwrap_or_default(),
            "telemetry" => {
                raw.telemetry = one(value, "telemetry", src, &mut errors).unwrap_or_default()
            }
            "archive_policy" => each(
                value,
                "archive_policy",
                src,
                &mut errors,
                &mut raw.archive_policy,
            ),
            "archive_policy_rule" => each(
                value,
                "archive_policy_rule",
                src,
                &mut errors,
                &mut raw.archive_policy_rule,
            ),
            "collector" => each(value, "collector", src, &mut errors, &mut raw.collector),
            "transformer" => each(value, "transformer", src, &mut errors, &mut raw.transformer),
            "alarm" => each(value, "alarm", src, &mut errors, &mut raw.alarm),
            "notifier" => raw.notifier = one(value, "notifier", src, &mut errors),
            other => errors.push(src.error(
                Some(key.span()),
                other,
                format!("unknown section `{other}` (expected one of {SECTIONS})"),
            )),
        }
    }
    Ok((raw, errors))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTelemetry {
    /// Self-metrics interval, e.g. `10s`.
    interval: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawArchive {
    /// Parquet archive root.
    root: Option<String>,
    /// Working files.
    data_dir: Option<String>,
    /// How far after the wall clock a measure may be stamped, e.g. `1h`.
    max_future: Option<Spanned<String>>,
    /// How often open buckets are saved while running, e.g. `5m`.
    checkpoint_interval: Option<Spanned<String>>,
    /// Write-ahead log of the rollup engine's input.
    wal: Option<bool>,
    /// Longest wait before the log is fsynced, e.g. `1s`; `0s`: every batch.
    wal_fsync_delay: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCollector {
    /// Unique stage name.
    name: Spanned<String>,
    /// `builtin:NAME` or a path to a `.wasm` component, relative to the
    /// config file.
    plugin: Spanned<String>,
    /// Collection interval, e.g. `10s`.
    interval: Spanned<String>,
    /// For a decoder plugin: the URL the host scrapes.
    #[serde(default)]
    url: Option<Spanned<String>>,
    /// Deadline of one scrape.
    #[serde(default)]
    scrape_timeout: Option<Spanned<String>>,
    /// Basic authentication of the scrape.
    #[serde(default)]
    basic_auth: Option<Spanned<RawBasicAuth>>,
    /// `Authorization` header of the scrape.
    #[serde(default)]
    authorization: Option<Spanned<RawAuthorization>>,
    /// TLS of an `https://` scrape.
    #[serde(default)]
    tls_config: Option<Spanned<RawTlsConfig>>,
    /// Whether the scrape follows redirects (default true).
    #[serde(default)]
    follow_redirects: Option<Spanned<bool>>,
    /// The HTTP proxy of the scrape.
    #[serde(default)]
    proxy_url: Option<Spanned<String>>,
    /// Where the scrape does not use `proxy_url`.
    #[serde(default)]
    no_proxy: Option<Spanned<String>>,
    /// Whether the scrape takes its proxy from the environment.
    #[serde(default)]
    proxy_from_environment: Option<Spanned<bool>>,
    /// Settings passed to `init`.
    #[serde(default)]
    settings: Option<Spanned<toml::Table>>,
    /// Sandbox grants.
    #[serde(default)]
    grants: RawGrants,
    /// Resource limits.
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTransformer {
    /// Unique stage name.
    name: Spanned<String>,
    /// `builtin:NAME` or a path to a `.wasm` component.
    plugin: Spanned<String>,
    /// Upstream stage names.
    inputs: Spanned<Vec<Spanned<String>>>,
    /// Ceilometer meter filter; default `["*"]`.
    #[serde(default)]
    meters: Option<Spanned<Vec<String>>>,
    /// Pass samples the filter rejects downstream unchanged.
    #[serde(default = "yes")]
    pass_unmatched: bool,
    /// Settings passed to `init`.
    #[serde(default)]
    settings: Option<Spanned<toml::Table>>,
    /// Sandbox grants.
    #[serde(default)]
    grants: RawGrants,
    /// Resource limits.
    #[serde(default)]
    limits: RawLimits,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasicAuth {
    username: Option<Spanned<String>>,
    username_file: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
    password_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthorization {
    /// The scheme; default `Bearer`.
    #[serde(rename = "type")]
    scheme: Option<Spanned<String>>,
    credentials: Option<Spanned<String>>,
    credentials_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTlsConfig {
    ca_file: Option<Spanned<String>>,
    cert_file: Option<Spanned<String>>,
    key_file: Option<Spanned<String>>,
    #[serde(default)]
    insecure_skip_verify: bool,
    min_version: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGrants {
    /// Host directories preopened read-only at the same path.
    #[serde(default)]
    read_dirs: Vec<Spanned<String>>,
    /// Environment variable names the plugin may read.
    #[serde(default)]
    env: Vec<String>,
    /// Hosts (`host` or `host:port`) the plugin may reach with `wasi:http`.
    #[serde(default)]
    http_hosts: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    /// Memory cap in bytes, or with a unit: `64MiB`, `1GiB`.
    #[serde(default)]
    memory: Option<Spanned<toml::Value>>,
    /// Wall-time budget per call, e.g. `2s`.
    #[serde(default)]
    call_timeout: Option<Spanned<String>>,
}

// ---- loading -------------------------------------------------------------

/// Maps byte offsets of a file to 1-based line and column.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn error(
        &self,
        span: Option<Range<usize>>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = match span {
            Some(span) => {
                let before = &self.text[..span.start.min(self.text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        ConfigError {
            file: self.path.to_path_buf(),
            line,
            column,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl PipelineConfig {
    /// Reads and validates the config file at `path`.
    ///
    /// # Errors
    /// [`ConfigErrors`] with every problem found: TOML syntax, unknown keys,
    /// bad durations, duplicate stage names, unknown or cyclic `inputs`,
    /// bad meter filters.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: None,
                column: None,
                field: String::new(),
                message: format!("cannot read the config file: {e}"),
            }])
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates config `text` read from `path` (which is used
    /// in messages and to resolve relative plugin paths).
    ///
    /// # Errors
    /// As [`PipelineConfig::load`].
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigErrors> {
        let src = Source { path, text };
        let (raw, mut errors) = read_raw(&src, text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        let mut check_name =
            |name: &Spanned<String>, field: String, errors: &mut Vec<ConfigError>| {
                if name.get_ref().is_empty() {
                    errors.push(src.error(Some(name.span()), field, "must not be empty"));
                } else if let Some(first) = names.get(name.get_ref()) {
                    let line = src.error(Some(first.clone()), "", "").line.unwrap_or(0);
                    errors.push(src.error(
                        Some(name.span()),
                        field,
                        format!(
                            "duplicate stage name {:?} (first used on line {line})",
                            name.get_ref()
                        ),
                    ));
                } else {
                    names.insert(name.get_ref().clone(), name.span());
                }
            };

        let mut plugin_locations = HashMap::new();
        let mut collectors = Vec::new();
        for (i, c) in raw.collector.iter().enumerate() {
            let c = c.get_ref();
            let field = format!("collector[{i}]");
            plugin_locations.insert(
                c.name.get_ref().clone(),
                src.error(Some(c.plugin.span()), format!("{field}.plugin"), ""),
            );
            check_name(&c.name, format!("{field}.name"), &mut errors);
            let interval = duration(&src, &c.interval, &format!("{field}.interval"), &mut errors);
            let grants = grants(&src, &c.grants, &format!("{field}.grants"), &mut errors);
            let limits = limits(&src, &c.limits, &format!("{field}.limits"), &mut errors);
            let settings = settings(&src, &c.settings, &format!("{field}.settings"), &mut errors);
            let interval = interval.unwrap_or(Duration::from_secs(1));
            let scrape = scrape_target(&src, c, interval, base, &field, &mut errors);
            collectors.push(CollectorConfig {
                name: c.name.get_ref().clone(),
                plugin: PluginSource::parse(c.plugin.get_ref(), base),
                interval,
                settings,
                grants,
                limits,
                scrape,
            });
        }

        let mut transformers = Vec::new();
        for (i, t) in raw.transformer.iter().enumerate() {
            let t = t.get_ref();
            let field = format!("transformer[{i}]");
            plugin_locations.insert(
                t.name.get_ref().clone(),
                src.error(Some(t.plugin.span()), format!("{field}.plugin"), ""),
            );
            check_name(&t.name, format!("{field}.name"), &mut errors);
            let meters = match &t.meters {
                None => MeterFilter::all(),
                Some(m) => MeterFilter::new(m.get_ref()).unwrap_or_else(|msg| {
                    errors.push(src.error(Some(m.span()), format!("{field}.meters"), msg));
                    MeterFilter::all()
                }),
            };
            if t.inputs.get_ref().is_empty() {
                errors.push(src.error(
                    Some(t.inputs.span()),
                    format!("{field}.inputs"),
                    "must name at least one upstream stage",
                ));
            }
            transformers.push(TransformerConfig {
                name: t.name.get_ref().clone(),
                plugin: PluginSource::parse(t.plugin.get_ref(), base),
                inputs: t
                    .inputs
                    .get_ref()
                    .iter()
                    .map(|s| s.get_ref().clone())
                    .collect(),
                meters,
                pass_unmatched: t.pass_unmatched,
                settings: settings(&src, &t.settings, &format!("{field}.settings"), &mut errors),
                grants: grants(&src, &t.grants, &format!("{field}.grants"), &mut errors),
                limits: limits(&src, &t.limits, &format!("{field}.limits"), &mut errors),
            });
        }

        // Inputs must exist; the graph must be acyclic.
        for (i, t) in raw.transformer.iter().enumerate() {
            for (j, input) in t.get_ref().inputs.get_ref().iter().enumerate() {
                if !names.contains_key(input.get_ref()) {
                    let mut known: Vec<&str> = names.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    errors.push(src.error(
                        Some(input.span()),
                        format!("transformer[{i}].inputs[{j}]"),
                        format!(
                            "unknown stage {:?} (stages: {})",
                            input.get_ref(),
                            known.join(", ")
                        ),
                    ));
                }
            }
        }
        let order = match topological_order(&transformers) {
            Ok(order) => order,
            Err(cycle) => {
                let first = transformers
                    .iter()
                    .position(|t| t.name == cycle[0])
                    .unwrap_or(0);
                errors.push(src.error(
                    Some(raw.transformer[first].get_ref().inputs.span()),
                    format!("transformer[{first}].inputs"),
                    format!("stages form a cycle: {}", cycle.join(" -> ")),
                ));
                (0..transformers.len()).collect()
            }
        };

        // Archive policies: built-ins, replaced by configured ones of the
        // same name.
        let mut policies = builtin_policies();
        let mut configured: HashMap<String, usize> = HashMap::new();
        for (i, p) in raw.archive_policy.iter().enumerate() {
            let field = format!("archive_policy[{i}]");
            if let Some(first) = configured.insert(p.get_ref().name.clone(), i) {
                errors.push(src.error(
                    Some(p.span()),
                    format!("{field}.name"),
                    format!(
                        "duplicate archive policy {:?} (also archive_policy[{first}])",
                        p.get_ref().name
                    ),
                ));
                continue;
            }
            match p.get_ref().build() {
                Ok(policy) => {
                    policies.retain(|b| b.name != policy.name);
                    policies.push(policy);
                }
                Err(problems) => {
                    for (f, msg) in problems {
                        errors.push(src.error(Some(p.span()), format!("{field}.{f}"), msg));
                    }
                }
            }
        }
        let raw_rules: Vec<RawPolicyRule> = raw
            .archive_policy_rule
            .iter()
            .map(|r| r.get_ref().clone())
            .collect();
        let rules = if raw_rules.is_empty() {
            PolicyRules::default_rule(&policies)
        } else {
            PolicyRules::new(&raw_rules, &policies).unwrap_or_else(|problems| {
                for (i, msg) in problems {
                    errors.push(src.error(
                        Some(raw.archive_policy_rule[i].span()),
                        format!("archive_policy_rule[{i}]"),
                        msg,
                    ));
                }
                PolicyRules::default_rule(&policies)
            })
        };

        let telemetry_interval = match &raw.telemetry.interval {
            Some(i) => duration(&src, i, "telemetry.interval", &mut errors)
                .unwrap_or(Duration::from_secs(10)),
            None => Duration::from_secs(10),
        };
        let data_dir = base.join(raw.archive.data_dir.as_deref().unwrap_or("wasmeter-data"));
        let archive = ArchiveSettings {
            root: raw
                .archive
                .root
                .as_deref()
                .map_or_else(|| data_dir.join("archive"), |r| base.join(r)),
            data_dir,
            max_future: match &raw.archive.max_future {
                Some(d) => duration(&src, d, "archive.max_future", &mut errors)
                    .unwrap_or(DEFAULT_MAX_FUTURE),
                None => DEFAULT_MAX_FUTURE,
            },
            checkpoint_interval: match &raw.archive.checkpoint_interval {
                Some(d) => duration(&src, d, "archive.checkpoint_interval", &mut errors)
                    .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL),
                None => DEFAULT_CHECKPOINT_INTERVAL,
            },
            wal: raw.archive.wal.unwrap_or(true),
            wal_fsync_delay: match &raw.archive.wal_fsync_delay {
                Some(d) => duration_or_zero(&src, d, "archive.wal_fsync_delay", &mut errors)
                    .unwrap_or(DEFAULT_WAL_FSYNC_DELAY),
                None => DEFAULT_WAL_FSYNC_DELAY,
            },
        };
        let alarms = alarms::build_alarms(&src, raw.alarm, base, (&policies, &rules), &mut errors);
        let notifier = alarms::build_notifier(&src, raw.notifier.as_ref(), &mut errors);
        if errors.is_empty() {
            let mut slots: Vec<Option<TransformerConfig>> =
                transformers.into_iter().map(Some).collect();
            Ok(PipelineConfig {
                path: path.to_path_buf(),
                archive,
                policies,
                rules,
                telemetry_interval,
                plugin_locations,
                collectors,
                transformers: order
                    .into_iter()
                    .map(|i| slots[i].take().unwrap())
                    .collect(),
                alarms,
                notifier,
            })
        } else {
            errors.sort_by_key(|e| (e.line, e.column));
            Err(ConfigErrors(errors))
        }
    }
}

impl PipelineConfig {
    /// Every stage name, collectors first.
    pub fn stage_names(&self) -> impl Iterator<Item = &str> {
        self.collectors
            .iter()
            .map(|c| c.name.as_str())
            .chain(self.transformers.iter().map(|t| t.name.as_str()))
    }
}

/// Indices of `transformers` with every stage after its inputs, or the
/// names along a cycle in data-flow order (first name repeated at the end).
fn topological_order(transformers: &[TransformerConfig]) -> Result<Vec<usize>, Vec<String>> {
    let index: HashMap<&str, usize> = transformers
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut mark = vec![0u8; transformers.len()];
    let mut order = Vec::with_capacity(transformers.len());
    fn visit(
        i: usize,
        ts: &[TransformerConfig],
        index: &HashMap<&str, usize>,
        mark: &mut [u8],
        stack: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<(), Vec<String>> {
        match mark[i] {
            2 => return Ok(()),
            1 => {
                let from = stack.iter().position(|&s| s == i).unwrap_or(0);
                let mut cycle: Vec<String> =
                    stack[from..].iter().map(|&s| ts[s].name.clone()).collect();
                cycle.push(ts[i].name.clone());
                // The stack follows inputs upstream; report data-flow order.
                cycle.reverse();
                return Err(cycle);
            }
            _ => {}
        }
        mark[i] = 1;
        stack.push(i);
        for input in &ts[i].inputs {
            if let Some(&j) = index.get(input.as_str()) {
                visit(j, ts, index, mark, stack, order)?;
            }
        }
        stack.pop();
        mark[i] = 2;
        order.push(i);
        Ok(())
    }
    let mut stack = Vec::new();
    for i in 0..transformers.len() {
        visit(i, transformers, &index, &mut mark, &mut stack, &mut order)?;
    }
    Ok(order)
}

/// The humantime duration `value` of `field`, greater than zero; `None`
/// with an error pushed otherwise.
fn duration(
    src: &Source<'_>,
    value: &Spanned<String>,
    field: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<Duration> {
    parse_duration(src, value, field, false, errors)
}

/// [`duration`] that may be zero.
fn duration_or_zero(
    src: &Source<'_>,
    value: &Spanned<String>,
    field: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<Duration> {
    parse_duration(src, value, field, true, errors)
}

fn parse_duration(
    src: &Source<'_>,
    value: &Spanned<String>,
    field: &str,
    zero: bool,
    errors: &mut Vec<ConfigError>,
) -> Option<Duration> {
    match humantime::parse_duration(value.get_ref()) {
        Ok(d) if d.is_zero() && !zero => {
            errors.push(src.error(Some(value.span()), field, "must be greater than zero"));
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            errors.push(src.error(
                Some(value.span()),
                field,
                format!(
                    "bad duration {:?}: {e} (expected e.g. 10s, 5m, 30d)",
                    value.get_ref()
                ),
            ));
            None
        }
    }
}

/// The `url`, `scrape_timeout`, `basic_auth`, `authorization` and
/// `tls_config` of a collector, checked.
fn scrape_target(
    src: &Source<'_>,
    c: &RawCollector,
    interval: Duration,
    base: &Path,
    field: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<ScrapeTarget> {
    let Some(raw) = &c.url else {
        let scrape_only = [
            (
                "scrape_timeout",
                c.scrape_timeout.as_ref().map(Spanned::span),
            ),
            ("basic_auth", c.basic_auth.as_ref().map(Spanned::span)),
            ("authorization", c.authorization.as_ref().map(Spanned::span)),
            ("tls_config", c.tls_config.as_ref().map(Spanned::span)),
            (
                "follow_redirects",
                c.follow_redirects.as_ref().map(Spanned::span),
            ),
            ("proxy_url", c.proxy_url.as_ref().map(Spanned::span)),
            ("no_proxy", c.no_proxy.as_ref().map(Spanned::span)),
            (
                "proxy_from_environment",
                c.proxy_from_environment.as_ref().map(Spanned::span),
            ),
        ];
        for (key, span) in scrape_only {
            if let Some(span) = span {
                errors.push(src.error(
                    Some(span),
                    format!("{field}.{key}"),
                    "only a collector with a `url` scrapes",
                ));
            }
        }
        return None;
    };
    let url = match reqwest::Url::parse(raw.get_ref()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
        Ok(u) => {
            errors.push(src.error(
                Some(raw.span()),
                format!("{field}.url"),
                format!(
                    "{:?}: expected an http:// or https:// URL with a host (scheme {:?})",
                    without_password(raw.get_ref()),
                    u.scheme()
                ),
            ));
            return None;
        }
        Err(e) => {
            errors.push(src.error(
                Some(raw.span()),
                format!("{field}.url"),
                format!("{:?} is not a URL: {e}", without_password(raw.get_ref())),
            ));
            return None;
        }
    };
    let default_timeout = interval.min(Duration::from_secs(10));
    let timeout = match &c.scrape_timeout {
        Some(t) => {
            let field = format!("{field}.scrape_timeout");
            match duration(src, t, &field, errors) {
                // As Prometheus: a scrape must end before the next starts.
                Some(d) if d > interval => {
                    errors.push(src.error(
                        Some(t.span()),
                        field,
                        format!(
                            "{} is longer than the interval {}",
                            t.get_ref(),
                            humantime::format_duration(interval)
                        ),
                    ));
                    default_timeout
                }
                Some(d) => d,
                None => default_timeout,
            }
        }
        None => default_timeout,
    };
    // The host fetches; the decoder gets no files or environment.
    if !c.grants.read_dirs.is_empty() || !c.grants.env.is_empty() || !c.grants.http_hosts.is_empty()
    {
        errors.push(src.error(
            Some(raw.span()),
            format!("{field}.grants"),
            "a scraping collector's decoder gets no grants (the host fetches the url)",
        ));
    }
    let auth = scrape_auth(src, c, &url, base, field, errors);
    let tls = match &c.tls_config {
        Some(t) => tls_config(src, t, &url, base, &format!("{field}.tls_config"), errors),
        None => TlsConfig::default(),
    };
    let proxy = scrape_proxy(src, c, field, errors);
    Some(ScrapeTarget {
        url,
        timeout,
        auth,
        tls,
        follow_redirects: c.follow_redirects.as_ref().is_none_or(|f| *f.get_ref()),
        proxy,
    })
}

/// The proxy of a scrape, checked as Prometheus checks it: `proxy_url`
/// and `proxy_from_environment` exclude each other, `no_proxy` needs
/// `proxy_url`.
fn scrape_proxy(
    src: &Source<'_>,
    c: &RawCollector,
    field: &str,
    errors: &mut Vec<ConfigError>,
) -> ScrapeProxy {
    let from_env = c.proxy_from_environment.as_ref().filter(|f| *f.get_ref());
    match (&c.proxy_url, from_env, &c.no_proxy) {
        (Some(_), Some(env), _) => errors.push(src.error(
            Some(env.span()),
            format!("{field}.proxy_from_environment"),
            "give `proxy_url` or `proxy_from_environment`, not both",
        )),
        (None, Some(_), Some(no)) => errors.push(src.error(
            Some(no.span()),
            format!("{field}.no_proxy"),
            "the environment's NO_PROXY applies with `proxy_from_environment`: \
             give `no_proxy` with `proxy_url` only",
        )),
        (None, Some(_), None) => return ScrapeProxy::FromEnvironment,
        (None, None, Some(no)) => errors.push(src.error(
            Some(no.span()),
            format!("{field}.no_proxy"),
            "needs `proxy_url`",
        )),
        (None, None, None) => {}
        (Some(raw), None, no_proxy) => {
            let shown = without_password(raw.get_ref());
            match reqwest::Url::parse(raw.get_ref()) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
                    let no_proxy = match no_proxy {
                        Some(n) => match no_proxy_list(n.get_ref()) {
                            Ok(list) => list,
                            Err(e) => {
                                errors.push(src.error(
                                    Some(n.span()),
                                    format!("{field}.no_proxy"),
                                    e,
                                ));
                                return ScrapeProxy::Direct;
                            }
                        },
                        None => String::new(),
                    };
                    return ScrapeProxy::Url { url, no_proxy };
                }
                Ok(url) => errors.push(src.error(
                    Some(raw.span()),
                    format!("{field}.proxy_url"),
                    format!(
                        "{shown:?}: expected an http:// or https:// proxy URL with a host (scheme {:?}; SOCKS proxies are not supported)",
                        url.scheme()
                    ),
                )),
                Err(e) => errors.push(src.error(
                    Some(raw.span()),
                    format!("{field}.proxy_url"),
                    format!("{shown:?} is not a URL: {e}"),
                )),
            }
        }
    }
    ScrapeProxy::Direct
}

/// A `no_proxy` list as reqwest matches it: entries trimmed, Go's
/// `*.example.com` written `.example.com` (reqwest's `.example.com` also
/// matches `example.com` itself), `[::1]` written `::1`. An entry with a
/// port, or a network that is not `IP/prefix-length`, is refused: reqwest
/// would never match it.
fn no_proxy_list(list: &str) -> Result<String, String> {
    use std::net::IpAddr;
    let mut out = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let unbracketed = entry
            .strip_prefix('[')
            .and_then(|e| e.strip_suffix(']'))
            .filter(|e| e.parse::<std::net::Ipv6Addr>().is_ok());
        let entry = unbracketed.unwrap_or(entry);
        if let Some((ip, len)) = entry.split_once('/') {
            let max = match ip.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => 32,
                Ok(IpAddr::V6(_)) => 128,
                Err(_) => 0,
            };
            if max == 0 || len.parse::<u8>().map_or(true, |l| l > max) {
                return Err(format!(
                    "{entry:?}: a network is an IP address and a prefix length, e.g. 10.0.0.0/8"
                ));
            }
        } else if entry.parse::<IpAddr>().is_err() && (entry.contains(':') || entry.contains('[')) {
            return Err(format!(
                "{entry:?}: a port is not matched, give the host, domain or network alone"
            ));
        }
        out.push(
            entry
                .strip_prefix('*')
                .filter(|d| d.starts_with('.'))
                .unwrap_or(entry),
        );
    }
    Ok(out.join(","))
}

/// `url` for an error message: whatever stands between `://` (or, with
/// none, the start) and the last `@` of the authority (user and password)
/// as `***`; so a URL missing its scheme (`user:pw@proxy:3128`) hides it
/// too.
fn without_password(url: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => format!("{}***{}", &url[..scheme_end], &rest[at..]),
        None => url.to_owned(),
    }
}

/// A secret given inline (`key`) or in a file (`{key}_file`): `Ok(None)`
/// when neither is there, `Err` (the error pushed) when both are.
fn secret(
    src: &Source<'_>,
    inline: Option<&Spanned<String>>,
    file: Option<&Spanned<String>>,
    base: &Path,
    field: &str,
    key: &str,
    errors: &mut Vec<ConfigError>,
) -> Result<Option<Secret>, ()> {
    match (inline, file) {
        (Some(_), Some(f)) => {
            errors.push(src.error(
                Some(f.span()),
                format!("{field}.{key}_file"),
                format!("give `{key}` or `{key}_file`, not both"),
            ));
            Err(())
        }
        (Some(v), None) => Ok(Some(Secret::Inline(v.get_ref().clone()))),
        (None, Some(f)) => Ok(Some(Secret::File(base.join(f.get_ref())))),
        (None, None) => Ok(None),
    }
}

/// The credentials of a scrape: `basic_auth` or `authorization`.
fn scrape_auth(
    src: &Source<'_>,
    c: &RawCollector,
    url: &reqwest::Url,
    base: &Path,
    field: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<ScrapeAuth> {
    let span = match (&c.basic_auth, &c.authorization) {
        (Some(_), Some(a)) => {
            errors.push(src.error(
                Some(a.span()),
                format!("{field}.authorization"),
                "give `basic_auth` or `authorization`, not both",
            ));
            return None;
        }
        (Some(b), None) => b.span(),
        (None, Some(a)) => a.span(),
        (None, None) => return None,
    };
    if !url.username().is_empty() || url.password().is_some() {
        errors.push(src.error(
            Some(span),
            format!("{field}.url"),
            "the url has credentials too: give them in one place",
        ));
        return None;
    }
    if let Some(raw) = &c.basic_auth {
        let field = format!("{field}.basic_auth");
        let b = raw.get_ref();
        let username = secret(
            src,
            b.username.as_ref(),
            b.username_file.as_ref(),
            base,
            &field,
            "username",
            errors,
        )
        .ok()?;
        let Some(username) = username else {
            errors.push(src.error(
                Some(raw.span()),
                field,
                "needs `username` or `username_file`",
            ));
            return None;
        };
        let password = secret(
            src,
            b.password.as_ref(),
            b.password_file.as_ref(),
            base,
            &field,
            "password",
            errors,
        )
        .ok()?;
        return Some(ScrapeAuth::Basic {
            username,
            password: password.unwrap_or(Secret::Inline(String::new())),
        });
    }
    let a = c.authorization.as_ref()?.get_ref();
    let field = format!("{field}.authorization");
    let scheme = match &a.scheme {
        None => "Bearer".to_owned(),
        Some(t) if t.get_ref().eq_ignore_ascii_case("basic") => {
            errors.push(src.error(
                Some(t.span()),
                format!("{field}.type"),
                "use `basic_auth` for Basic authentication",
            ));
            return None;
        }
        Some(t) if t.get_ref().is_empty() || !t.get_ref().bytes().all(|b| b.is_ascii_graphic()) => {
            errors.push(src.error(
                Some(t.span()),
                format!("{field}.type"),
                format!(
                    "{:?} is not an authentication scheme (e.g. Bearer)",
                    t.get_ref()
                ),
            ));
            return None;
        }
        Some(t) => t.get_ref().clone(),
    };
    let credentials = secret(
        src,
        a.credentials.as_ref(),
        a.credentials_file.as_ref(),
        base,
        &field,
        "credentials",
        errors,
    )
    .ok()?;
    if let (Some(Secret::Inline(c)), Some(raw)) = (&credentials, &a.credentials)
        && reqwest::header::HeaderValue::from_str(&format!("{scheme} {c}")).is_err()
    {
        errors.push(src.error(
            Some(raw.span()),
            format!("{field}.credentials"),
            "holds a character not allowed in an HTTP header (e.g. a line break)",
        ));
        return None;
    }
    let Some(credentials) = credentials else {
        errors.push(src.error(
            Some(span),
            field,
            "needs `credentials` or `credentials_file`",
        ));
        return None;
    };
    Some(ScrapeAuth::Authorization {
        scheme,
        credentials,
    })
}

/// A collector's `tls_config`, checked: only for an `https://` url, a
/// client certificate with its key.
fn tls_config(
    src: &Source<'_>,
    t: &Spanned<RawTlsConfig>,
    url: &reqwest::Url,
    base: &Path,
    field: &str,
    errors: &mut Vec<ConfigError>,
) -> TlsConfig {
    if url.scheme() != "https" {
        errors.push(src.error(Some(t.span()), field, "applies to an https:// url only"));
    }
    let raw = t.get_ref();
    match (&raw.cert_file, &raw.key_file) {
        (Some(c), None) => errors.push(src.error(
            Some(c.span()),
            format!("{field}.key_file"),
            "a `cert_file` needs its `key_file`",
        )),
        (None, Some(k)) => errors.push(src.error(
            Some(k.span()),
            format!("{field}.cert_file"),
            "a `key_file` needs its `cert_file`",
        )),
        _ => {}
    }
    let min_version = match raw.min_version.as_ref() {
        None => TlsVersion::default(),
        Some(v) => match v.get_ref().as_str() {
            "TLS12" => TlsVersion::Tls12,
            "TLS13" => TlsVersion::Tls13,
            other => {
                let why = if matches!(other, "TLS10" | "TLS11") {
                    "TLS 1.0 and 1.1 are not spoken (rustls): TLS12 is the oldest"
                } else {
                    "expected TLS12 or TLS13"
                };
                errors.push(src.error(
                    Some(v.span()),
                    format!("{field}.min_version"),
                    format!("{other:?}: {why}"),
                ));
                TlsVersion::default()
            }
        },
    };
    let path = |p: &Option<Spanned<String>>| p.as_ref().map(|p| base.join(p.get_ref()));
    TlsConfig {
        ca_file: path(&raw.ca_file),
        cert_file: path(&raw.cert_file),
        key_file: path(&raw.key_file),
        insecure_skip_verify: raw.insecure_skip_verify,
        min_version,
    }
}

fn settings(
    src: &Source<'_>,
    table: &Option<Spanned<toml::Table>>,
    field: &str,
    errors: &mut Vec<ConfigError>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(table) = table else {
        return out;
    };
    for (k, v) in table.get_ref() {
        let s = match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Datetime(d) => d.to_string(),
            toml::Value::Array(_) | toml::Value::Table(_) => {
                errors.push(src.error(
                    Some(table.span()),
                    format!("{field}.{k}"),
                    "settings values must be strings, numbers or booleans",
                ));
                continue;
            }
        };
        out.push((k.clone(), s));
    }
    out
}

fn grants(src: &Source<'_>, raw: &RawGrants, field: &str, errors: &mut Vec<ConfigError>) -> Grants {
    let mut read_dirs = Vec::new();
    for (i, d) in raw.read_dirs.iter().enumerate() {
        let path = PathBuf::from(d.get_ref());
        if !path.is_absolute() {
            errors.push(src.error(
                Some(d.span()),
                format!("{field}.read_dirs[{i}]"),
                format!("{:?} must be an absolute path", d.get_ref()),
            ));
        } else if !path.is_dir() {
            errors.push(src.error(
                Some(d.span()),
                format!("{field}.read_dirs[{i}]"),
                format!("{:?} is not a directory", d.get_ref()),
            ));
        } else {
            read_dirs.push(path);
        }
    }
    let mut seen = HashSet::new();
    let env = raw
        .env
        .iter()
        .filter(|e| seen.insert(e.as_str()))
        .cloned()
        .collect();
    let mut http_hosts = Vec::new();
    for (i, h) in raw.http_hosts.iter().enumerate() {
        let host = h.get_ref().trim();
        // A bare authority: no scheme, path, user or wildcard.
        let valid = !host.is_empty()
            && !host.contains(['/', '@', '*', ' '])
            && host.rsplit_once(':').is_none_or(|(h, p)| {
                h.contains(':') || (!h.is_empty() && p.parse::<u16>().is_ok())
            });
        if valid {
            http_hosts.push(host.to_owned());
        } else {
            errors.push(src.error(
                Some(h.span()),
                format!("{field}.http_hosts[{i}]"),
                format!(
                    "{:?}: expected a host or host:port (e.g. \"api.example.com\", \"127.0.0.1:8080\")",
                    h.get_ref()
                ),
            ));
        }
    }
    Grants {
        read_dirs,
        env,
        http_hosts,
    }
}

fn limits(src: &Source<'_>, raw: &RawLimits, field: &str, errors: &mut Vec<ConfigError>) -> Limits {
    let mut limits = Limits::default();
    if let Some(m) = &raw.memory {
        match parse_bytes(m.get_ref()) {
            Some(b) if b >= 1 << 20 => limits.memory_bytes = b,
            _ => errors.push(src.error(
                Some(m.span()),
                format!("{field}.memory"),
                format!(
                    "bad memory size {}: expected bytes ≥ 1MiB, e.g. 64MiB or 1GiB",
                    m.get_ref()
                ),
            )),
        }
    }
    if let Some(t) = &raw.call_timeout
        && let Some(d) = duration(src, t, &format!("{field}.call_timeout"), errors)
    {
        limits.call_timeout = d;
    }
    limits
}

/// `1048576`, `"64MiB"`, `"1GiB"`, `"512KiB"`, `"100MB"`.
fn parse_bytes(v: &toml::Value) -> Option<usize> {
    match v {
        toml::Value::Integer(i) => usize::try_from(*i).ok(),
        toml::Value::String(s) => parse_byte_size(s),
        _ => None,
    }
}

/// A size in bytes: a plain integer, or with a unit `B`, `KiB`, `MiB`,
/// `GiB` (powers of 1024) or `KB`, `MB`, `GB` (powers of 1000): `64MiB`.
/// `None` for anything else, or on overflow.
pub fn parse_byte_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().ok()?;
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests;

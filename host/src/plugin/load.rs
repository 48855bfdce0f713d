//! Loading a component and checking it against the contract.

use std::path::{Path, PathBuf};

use wasmtime::component::InstancePre;

use super::host::HostState;
use super::{PluginError, Runtime};

/// The contract version this host implements (`wasmeter:plugin@…`).
pub const CONTRACT_VERSION: &str = "0.1.0";

/// The prefix of every interface of the contract.
const PACKAGE: &str = "wasmeter:plugin/";

/// Where a plugin's component comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PluginSource {
    /// A `.wasm` component file.
    File(PathBuf),
    /// A standard plugin built into the binary: `builtin:NAME`.
    Builtin(String),
}

impl PluginSource {
    /// Parses a config value: `builtin:NAME`, or a path (relative paths are
    /// taken relative to `base_dir`, the config file's folder).
    pub fn parse(value: &str, base_dir: &Path) -> Self {
        match value.strip_prefix("builtin:") {
            Some(name) => PluginSource::Builtin(name.to_owned()),
            None => PluginSource::File(base_dir.join(value)),
        }
    }

    /// The component's bytes.
    ///
    /// # Errors
    /// `Load` when the file cannot be read or the builtin does not exist
    /// (the message lists the builtins).
    pub fn read(&self) -> Result<Vec<u8>, PluginError> {
        match self {
            PluginSource::File(path) => std::fs::read(path).map_err(|e| {
                PluginError::load(
                    path.display().to_string(),
                    format!("cannot read the file: {e}"),
                )
            }),
            PluginSource::Builtin(name) => wasmeter_plugins::get(name)
                .map(|p| p.bytes.to_vec())
                .ok_or_else(|| {
                    let known: Vec<_> = wasmeter_plugins::ALL.iter().map(|p| p.name).collect();
                    PluginError::load(
                        format!("builtin:{name}"),
                        format!("no such standard plugin (known: {})", known.join(", ")),
                    )
                }),
        }
    }
}

impl std::fmt::Display for PluginSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginSource::File(p) => write!(f, "{}", p.display()),
            PluginSource::Builtin(n) => write!(f, "builtin:{n}"),
        }
    }
}

/// The role a component plays, from the world it exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum World {
    /// Exports `collect`.
    Collector,
    /// Exports `transform`.
    Transformer,
    /// Exports `evaluate`.
    AlarmRule,
    /// Exports `decode`.
    Decoder,
}

impl World {
    /// The WIT world name.
    pub fn as_str(self) -> &'static str {
        match self {
            World::Collector => "collector",
            World::Transformer => "transformer",
            World::AlarmRule => "alarm-rule",
            World::Decoder => "decoder",
        }
    }

    fn main_export(self) -> &'static str {
        match self {
            World::Collector => "collect",
            World::Transformer => "transform",
            World::AlarmRule => "evaluate",
            World::Decoder => "decode",
        }
    }
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A compiled, contract-checked, pre-linked plugin component.
pub struct Plugin {
    pub(crate) name: String,
    world: World,
    version: String,
    imports: Vec<String>,
    exports: Vec<String>,
    size: usize,
    digest: String,
    pub(crate) pre: InstancePre<HostState>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("world", &self.world)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    /// Reads, checks and compiles the plugin at `source`.
    ///
    /// # Errors
    /// `Load` with a one-line reason: file missing, not Wasm, a core module,
    /// no known world, an incompatible contract version, or imports the
    /// host does not provide.
    pub fn load(runtime: &Runtime, name: &str, source: &PluginSource) -> Result<Self, PluginError> {
        let bytes = source.read()?;
        Self::from_bytes(runtime, name, &bytes)
    }

    /// Checks and compiles a component from its bytes; see [`Plugin::load`].
    ///
    /// # Errors
    /// As [`Plugin::load`].
    pub fn from_bytes(runtime: &Runtime, name: &str, bytes: &[u8]) -> Result<Self, PluginError> {
        if !bytes.starts_with(b"\0asm") {
            return Err(PluginError::load(
                name,
                "not a WebAssembly file (no \\0asm header)",
            ));
        }
        if wasmparser::Parser::is_core_wasm(bytes) {
            return Err(PluginError::load(
                name,
                "a core WebAssembly module, not a component: build for wasm32-wasip2 (or wrap it with `wasm-tools component new`)",
            ));
        }
        let component = runtime.compile(name, bytes)?;
        let ty = component.component_type();
        let engine = runtime.engine();
        let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_owned()).collect();
        let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_owned()).collect();

        let version = contract_version(&imports, &exports).ok_or_else(|| {
            PluginError::load(
                name,
                format!(
                    "not a wasmeter plugin: no {PACKAGE}* interface among its imports ({})",
                    list(&imports)
                ),
            )
        })?;
        if !compatible(&version, CONTRACT_VERSION) {
            return Err(PluginError::load(
                name,
                format!(
                    "built against wasmeter:plugin@{version}, but this host implements wasmeter:plugin@{CONTRACT_VERSION}"
                ),
            ));
        }
        let world = [
            World::Collector,
            World::Transformer,
            World::AlarmRule,
            World::Decoder,
        ]
        .into_iter()
        .find(|w| exports.iter().any(|e| e == w.main_export()))
        .ok_or_else(|| {
            PluginError::load(
                name,
                format!(
                    "exports none of collect, transform, evaluate, decode (it exports: {})",
                    list(&exports)
                ),
            )
        })?;
        if !exports.iter().any(|e| e == "init") {
            return Err(PluginError::load(
                name,
                format!(
                    "the {world} world needs an `init` export (it exports: {})",
                    list(&exports)
                ),
            ));
        }
        let pre = runtime.linker().instantiate_pre(&component).map_err(|e| {
            PluginError::load(
                name,
                format!("imports something the host does not provide: {e:#}"),
            )
        })?;
        Ok(Plugin {
            name: name.to_owned(),
            world,
            version,
            imports,
            exports,
            size: bytes.len(),
            digest: {
                use sha2::Digest;
                let d = sha2::Sha256::digest(bytes);
                format!(
                    "sha256:{}",
                    d.iter().map(|b| format!("{b:02x}")).collect::<String>()
                )
            },
            pre,
        })
    }

    /// Fails unless the plugin is of `world`.
    ///
    /// # Errors
    /// `Load`: "wrong world: expected transformer, the component is a collector".
    pub fn expect_world(&self, world: World) -> Result<(), PluginError> {
        if self.world == world {
            Ok(())
        } else {
            Err(PluginError::load(
                &self.name,
                format!(
                    "wrong world: expected a {world}, the component is a {} (exports: {})",
                    self.world,
                    list(&self.exports)
                ),
            ))
        }
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The world the component exports.
    pub fn world(&self) -> World {
        self.world
    }

    /// The `wasmeter:plugin` version the component was built against.
    pub fn contract_version(&self) -> &str {
        &self.version
    }

    /// The component's import names.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    /// The component's export names.
    pub fn exports(&self) -> &[String] {
        &self.exports
    }

    /// The component's size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// `sha256:<hex>` of the component's bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(", ")
    }
}

/// The version in the first `wasmeter:plugin/…@VERSION` name.
fn contract_version(imports: &[String], exports: &[String]) -> Option<String> {
    imports
        .iter()
        .chain(exports)
        .filter_map(|n| n.strip_prefix(PACKAGE))
        .find_map(|rest| rest.split_once('@').map(|(_, v)| v.to_owned()))
}

/// Semver compatibility as Cargo reads it: same major, and while the major
/// is 0, the same minor.
fn compatible(found: &str, ours: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut it = v.split('.');
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    match (parse(found), parse(ours)) {
        (Some((fm, fi)), Some((om, oi))) => fm == om && (om != 0 || fi == oi),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.7", "0.1.0"));
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(!compatible("1.0.0", "0.1.0"));
        assert!(compatible("1.4.0", "1.0.0"));
        assert!(!compatible("garbage", "0.1.0"));
        assert_eq!(
            contract_version(
                &[
                    "wasi:io/streams@0.2.0".into(),
                    "wasmeter:plugin/log@0.3.1".into()
                ],
                &[]
            ),
            Some("0.3.1".into())
        );
    }
}

//! Plugin errors, classified by who is at fault.

use crate::batch::BatchError;
use crate::bindings::{WitError, WitErrorKind};

/// The class of a [`PluginError`]; code matches on this, never on text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PluginErrorKind {
    /// The file was refused at load: missing, not Wasm, a core module, the
    /// wrong world or an incompatible contract version.
    Load,
    /// The plugin refused its settings (`init` returned `invalid-settings`).
    InvalidSettings,
    /// The plugin refused its input (`invalid-input`).
    InvalidInput,
    /// Something the plugin needs is not available (`unavailable`).
    Unavailable,
    /// The plugin reported a bug of its own (`internal`).
    PluginInternal,
    /// The plugin trapped: a panic, `unreachable`, an out-of-bounds access.
    Trap,
    /// The call overran its wall-time deadline.
    Deadline,
    /// The plugin hit its memory cap.
    Memory,
    /// The plugin returned a malformed batch.
    BadOutput,
    /// The sandbox refused an operation the plugin has no grant for.
    Denied,
    /// The plugin failed repeatedly and is backed off: the batch was not
    /// offered to it.
    BackedOff,
    /// A failure inside wasmeter itself.
    Internal,
}

impl PluginErrorKind {
    /// A short lowercase name, for logs and self-telemetry labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Load => "load",
            Self::InvalidSettings => "invalid-settings",
            Self::InvalidInput => "invalid-input",
            Self::Unavailable => "unavailable",
            Self::PluginInternal => "plugin-internal",
            Self::Trap => "trap",
            Self::Deadline => "deadline",
            Self::Memory => "memory",
            Self::BadOutput => "bad-output",
            Self::Denied => "denied",
            Self::BackedOff => "backed-off",
            Self::Internal => "internal",
        }
    }
}

impl PluginErrorKind {
    /// True when the instance may be left in an unknown state (a trap, a
    /// deadline or a memory-cap hit) and must be replaced before the next
    /// call.
    pub fn poisons_instance(self) -> bool {
        matches!(self, Self::Trap | Self::Deadline | Self::Memory)
    }
}

impl std::fmt::Display for PluginErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed load or call of one plugin.
#[derive(Debug, thiserror::Error)]
#[error("plugin {plugin}: {kind}: {message}")]
pub struct PluginError {
    /// The plugin's name (its stage name, or the file name at load).
    pub plugin: String,
    /// Who is at fault.
    pub kind: PluginErrorKind,
    /// What happened, naming the bad value.
    pub message: String,
}

impl PluginError {
    /// An error of `kind` for `plugin`.
    pub fn new(
        plugin: impl Into<String>,
        kind: PluginErrorKind,
        message: impl Into<String>,
    ) -> Self {
        PluginError {
            plugin: plugin.into(),
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn load(plugin: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(plugin, PluginErrorKind::Load, message)
    }

    pub(crate) fn internal(what: &str, e: wasmtime::Error) -> Self {
        Self::new(
            "wasmeter",
            PluginErrorKind::Internal,
            format!("{what}: {e:#}"),
        )
    }

    /// An error the guest returned through the contract's `error` record.
    pub(crate) fn from_guest(plugin: &str, e: WitError) -> Self {
        let kind = match e.kind {
            WitErrorKind::InvalidSettings => PluginErrorKind::InvalidSettings,
            WitErrorKind::InvalidInput => PluginErrorKind::InvalidInput,
            WitErrorKind::Unavailable => PluginErrorKind::Unavailable,
            WitErrorKind::Internal => PluginErrorKind::PluginInternal,
        };
        Self::new(plugin, kind, e.message)
    }

    pub(crate) fn bad_output(plugin: &str, e: BatchError) -> Self {
        Self::new(plugin, PluginErrorKind::BadOutput, e.to_string())
    }

    /// Classifies a wasmtime call failure. `memory_denied` says whether the
    /// store's limiter refused a memory growth during the call.
    pub(crate) fn from_call(plugin: &str, e: wasmtime::Error, memory_denied: bool) -> Self {
        let kind = match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => PluginErrorKind::Deadline,
            _ if memory_denied => PluginErrorKind::Memory,
            Some(_) => PluginErrorKind::Trap,
            None => PluginErrorKind::Trap,
        };
        Self::new(plugin, kind, format!("{e:#}"))
    }
}

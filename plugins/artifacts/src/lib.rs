//! The standard wasmeter plugins, compiled to WebAssembly components.
//!
//! The build script of this crate builds every Rust plugin crate under
//! `plugins/` for `wasm32-wasip2` (a nested `cargo build` into
//! `target/wasm-plugins`), validates each output as a component with
//! `wasmparser`, and embeds the bytes here. The host resolves
//! `plugin = "builtin:NAME"` in a pipeline config to these bytes; tests load
//! them by constant.

/// One built plugin component.
#[derive(Debug, Clone, Copy)]
pub struct Plugin {
    /// The plugin's name: its folder under `plugins/` (`builtin:<name>`).
    pub name: &'static str,
    /// Where the build wrote the component on the build machine.
    pub path: &'static str,
    /// The component's bytes.
    pub bytes: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

/// The plugin called `name`, if it is a standard plugin.
pub fn get(name: &str) -> Option<Plugin> {
    ALL.iter().copied().find(|p| p.name == name)
}

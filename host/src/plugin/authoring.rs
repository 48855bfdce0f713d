//! Tools for plugin authors: the contract's WIT text, C bindings for a
//! world, and turning a core module from a C toolchain into a component.
//!
//! `wasmeter plugin wit`, `plugin bindings` and `plugin componentize` are
//! the command-line faces of these; `plugin new` uses them for the projects
//! it scaffolds.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::World;

/// The plugin contract, `wit/wasmeter.wit`, as this host was built with.
pub const WIT: &str = include_str!("../../../wit/wasmeter.wit");

/// The name the WIT file is written under.
pub const WIT_FILE: &str = "wasmeter.wit";

/// Writes the contract into `dir/wasmeter.wit` (creating `dir`), for
/// componentize-py, componentize-js or any other bindings generator.
///
/// # Errors
/// When `dir` cannot be created or written.
pub fn write_wit(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(WIT_FILE);
    std::fs::write(&path, WIT).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Writes the C bindings of `world` (wit-bindgen's C generator) into
/// `dir`: `<world>.h` and `<world>.c`, with `-` in the world's name as
/// `_`. No component-type object file is written: [`componentize`] embeds
/// the world itself. Returns the files written.
///
/// # Errors
/// When `dir` cannot be written (the WIT is the host's own, so it parses).
pub fn write_c_bindings(world: World, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    use wit_bindgen_core::wit_parser::Resolve;
    let mut resolve = Resolve::new();
    let pkg = resolve.push_str(WIT_FILE, WIT)?;
    let world_id = resolve.select_world(&[pkg], Some(world.as_str()))?;
    let opts = wit_bindgen_c::Opts {
        no_object_file: true,
        ..Default::default()
    };
    let mut files = wit_bindgen_core::Files::default();
    opts.build().generate(&mut resolve, world_id, &mut files)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for (name, bytes) in files.iter() {
        let path = dir.join(name);
        let mut bytes = bytes.to_vec();
        if name.ends_with(".c") {
            bytes = define_force_link(&bytes);
        }
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// The generated C refers to a symbol that only the (not written)
/// component-type object defines; define it in the C file instead.
fn define_force_link(c: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(c);
    let mut out = String::with_capacity(text.len() + 128);
    for line in text.lines() {
        match line
            .strip_prefix("extern void __component_type_object_force_link_")
            .and_then(|rest| rest.strip_suffix("(void);"))
        {
            Some(world) => out.push_str(&format!(
                "// The world's type is embedded by `wasmeter plugin componentize`.\n\
                 void __component_type_object_force_link_{world}(void) {{}}"
            )),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out.into_bytes()
}

/// Turns a core Wasm module that implements `world` (e.g. C compiled for
/// `wasm32-wasi`, preview 1, as a reactor) into a component: embeds the
/// world's type information and adapts WASI preview 1 to preview 2 with
/// wasmtime's reactor adapter.
///
/// # Errors
/// When `core` is not a core module, or does not export what `world`
/// needs (the error names the missing or mistyped export), or imports
/// something neither the world nor WASI provides.
pub fn componentize(core: &[u8], world: World) -> anyhow::Result<Vec<u8>> {
    use wasi_preview1_component_adapter_provider::{
        WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
    };
    use wit_parser::Resolve;
    if wasmparser::Parser::is_component(core) {
        anyhow::bail!("the input is already a component, not a core module");
    }
    if !wasmparser::Parser::is_core_wasm(core) {
        anyhow::bail!("the input is not a WebAssembly module");
    }
    let mut resolve = Resolve::new();
    let pkg = resolve.push_str(WIT_FILE, WIT)?;
    let world_id = resolve.select_world(&[pkg], Some(world.as_str()))?;
    let mut module = core.to_vec();
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world_id,
        wit_component::StringEncoding::UTF8,
    )?;
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&module)?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .encode()
}

//! Builds every Rust plugin crate under `plugins/` for `wasm32-wasip2` with a
//! nested `cargo build` in its own target dir (`target/wasm-plugins`), checks
//! that each output is a valid WebAssembly component, and writes
//! `$OUT_DIR/plugins.rs` with one [`Plugin`] constant per plugin.
//!
//! A standard plugin crate is a `plugins/<name>/Cargo.toml` whose package is
//! named `wasmeter-plugin-<name>`; a test-only plugin (hostile plugins for the
//! sandbox tests) is a `tests/plugins/<name>/Cargo.toml` named
//! `wasmeter-test-plugin-<name>`, exposed under `testing::`.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let plugins_dir = manifest_dir.parent().unwrap().to_path_buf();
    let root = plugins_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());

    for dep in ["wit", "guest-sdk", "Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(dep).display());
    }
    let test_plugins_dir = root.join("tests").join("plugins");
    println!("cargo:rerun-if-changed={}", plugins_dir.display());
    println!("cargo:rerun-if-changed={}", test_plugins_dir.display());

    let standard = discover(&plugins_dir, "wasmeter-plugin-");
    let testing = discover(&test_plugins_dir, "wasmeter-test-plugin-");
    assert!(
        !standard.is_empty(),
        "no plugin crates under {}",
        plugins_dir.display()
    );
    let target_dir = root.join("target").join("wasm-plugins");
    ensure_wasm_target();

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    for (_, package) in standard.iter().chain(&testing) {
        cmd.arg("-p").arg(package);
    }
    // The outer build's flags and lint wrappers are for the host target.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    // Keep the name section (function names in trap backtraces), drop DWARF.
    cmd.env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo");
    let status = cmd
        .status()
        .expect("cannot run cargo to build the wasmeter plugins");
    assert!(
        status.success(),
        "building the plugins for wasm32-wasip2 failed ({status}); is the wasm32-wasip2 target installed? (rust-toolchain.toml lists it)"
    );

    let release = target_dir.join("wasm32-wasip2/release");
    let mut generated = constants(&release, &standard);
    writeln!(
        generated,
        "/// Calls `$mac!(ident)` once per standard plugin (ident in snake case).\n\
         #[macro_export]\nmacro_rules! foreach_plugin {{\n    ($mac:ident) => {{"
    )
    .unwrap();
    for (name, _) in &standard {
        writeln!(generated, "        $mac!({});", name.replace('-', "_")).unwrap();
    }
    writeln!(generated, "    }};\n}}").unwrap();
    writeln!(
        generated,
        "/// Test-only plugins from `tests/plugins/` (hostile plugins for the sandbox\n\
         /// tests). Never resolved by `builtin:`; nothing here is linked into the\n\
         /// binary unless referenced.\npub mod testing {{\n    use super::Plugin;\n{}}}",
        constants(&release, &testing)
    )
    .unwrap();
    fs::write(out_dir.join("plugins.rs"), generated).unwrap();
}

/// Adds the `wasm32-wasip2` standard library when the toolchain lacks it.
/// rust-toolchain.toml lists the target, but rustup installs a toolchain
/// file's targets only with the toolchain itself: a machine that already
/// had this toolchain (or runs with `RUSTUP_AUTO_INSTALL=0`) gets no target.
/// Runs `rustup target add` for the toolchain rustup chose for this build
/// (`RUSTUP_TOOLCHAIN`), never for a compiler rustup does not manage, nor
/// for an offline build (`CARGO_NET_OFFLINE`); otherwise the nested build's
/// own error says what is missing.
fn ensure_wasm_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", "wasm32-wasip2"])
        .output();
    let installed = match libdir {
        Ok(out) if out.status.success() => {
            Path::new(String::from_utf8_lossy(&out.stdout).trim()).is_dir()
        }
        _ => false,
    };
    let offline = env::var_os("CARGO_NET_OFFLINE").is_some_and(|v| v != "false");
    let Some(toolchain) = env::var_os("RUSTUP_TOOLCHAIN") else {
        return;
    };
    if installed || offline {
        return;
    }
    println!(
        "cargo:warning=the wasm32-wasip2 target is missing: running `rustup target add wasm32-wasip2 --toolchain {}`",
        toolchain.to_string_lossy()
    );
    let mut add = Command::new("rustup");
    add.args(["target", "add", "wasm32-wasip2", "--toolchain"])
        .arg(&toolchain)
        // Cargo reads this script's stdout for directives.
        .stdout(std::process::Stdio::null());
    match add.status() {
        Ok(s) if s.success() => {}
        Ok(s) => println!("cargo:warning=`rustup target add wasm32-wasip2` failed ({s})"),
        Err(e) => println!("cargo:warning=cannot run rustup ({e})"),
    }
}

/// One `Plugin` constant per plugin plus `ALL`, for the built components in
/// `release`.
fn constants(release: &Path, plugins: &[(String, String)]) -> String {
    let mut out = String::new();
    for (name, package) in plugins {
        let wasm = release.join(format!("{}.wasm", package.replace('-', "_")));
        let bytes = fs::read(&wasm)
            .unwrap_or_else(|e| panic!("plugin {name}: cannot read {}: {e}", wasm.display()));
        validate(name, &bytes);
        writeln!(
            out,
            "/// The `{name}` plugin, built for wasm32-wasip2.\n\
             pub const {ident}: Plugin = Plugin {{ name: {name:?}, path: {path:?}, bytes: include_bytes!({path:?}) }};",
            ident = name.to_uppercase().replace('-', "_"),
            path = wasm.display().to_string(),
        )
        .unwrap();
    }
    writeln!(out, "/// Every plugin of this set, sorted by name.").unwrap();
    let idents: Vec<String> = plugins
        .iter()
        .map(|(n, _)| n.to_uppercase().replace('-', "_"))
        .collect();
    writeln!(out, "pub const ALL: &[Plugin] = &[{}];", idents.join(", ")).unwrap();
    out
}

/// `(name, package)` for every plugin crate in `dir` whose package name is
/// `prefix` + folder name, sorted by name.
fn discover(dir: &Path, prefix: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return found;
    };
    for entry in entries {
        let dir = entry.unwrap().path();
        let manifest = dir.join("Cargo.toml");
        let Ok(text) = fs::read_to_string(&manifest) else {
            continue;
        };
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let package = format!("{prefix}{name}");
        if text.contains(&format!("name = \"{package}\"")) {
            found.push((name, package));
        }
    }
    found.sort();
    found
}

/// Panics unless `bytes` is a valid component (not a core module).
fn validate(name: &str, bytes: &[u8]) {
    assert!(
        wasmparser::Parser::is_component(bytes),
        "plugin {name}: the build output is not a WebAssembly component"
    );
    let mut validator = wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all());
    if let Err(e) = validator.validate_all(bytes) {
        panic!("plugin {name}: the built component does not validate: {e}");
    }
}

//! The on-disk cache of compiled components.
//!
//! ```text
//! DIR/<sha256 of the component, hex>-<engine compatibility hash, hex>.cwasm
//!     = serialized artifact ++ sha256(serialized artifact)
//! ```
//!
//! An entry is used only when its trailing digest matches its content and
//! wasmtime accepts its header for this engine; anything else (truncated,
//! corrupt, from another wasmtime or another CPU) is deleted and rebuilt.
//! Entries are written to a temporary file and renamed into place, so a
//! reader never sees a half-written one.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

const DIGEST_LEN: usize = 32;

fn entry_path(engine: &Engine, dir: &Path, bytes: &[u8]) -> PathBuf {
    let mut h = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let content: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    dir.join(format!("{content}-{:016x}.cwasm", h.finish()))
}

/// The cached compilation of `bytes`, if a valid entry exists.
pub(super) fn load(engine: &Engine, dir: &Path, bytes: &[u8]) -> Option<Component> {
    let path = entry_path(engine, dir, bytes);
    let data = std::fs::read(&path).ok()?;
    let valid = data.len() > DIGEST_LEN && {
        let (artifact, digest) = data.split_at(data.len() - DIGEST_LEN);
        Sha256::digest(artifact).as_slice() == digest
    };
    if valid {
        let artifact = &data[..data.len() - DIGEST_LEN];
        // SAFETY: `artifact` was written by `store` below from
        // `Component::serialize` of an engine with the same compatibility
        // hash (part of the file name), and its SHA-256 matches the digest
        // stored with it, so it is byte-for-byte what wasmtime produced.
        // wasmtime re-checks the header and engine settings as well.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, artifact) };
        match component {
            Ok(c) => return Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), "discarding a compile-cache entry wasmtime refused: {e:#}")
            }
        }
    } else {
        tracing::warn!(path = %path.display(), "discarding a corrupt compile-cache entry");
    }
    let _ = std::fs::remove_file(&path);
    None
}

/// Writes the compilation of `bytes`; failures only cost a recompile later.
pub(super) fn store(engine: &Engine, dir: &Path, bytes: &[u8], component: &Component) {
    let result = (|| -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut artifact = component.serialize()?;
        let digest = Sha256::digest(&artifact);
        artifact.extend_from_slice(&digest);
        let path = entry_path(engine, dir, bytes);
        let tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::fs::write(tmp.path(), &artifact)?;
        tmp.persist(&path)?;
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!(dir = %dir.display(), "cannot write the compile cache: {e:#}");
    }
}

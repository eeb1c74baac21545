//! Precompiled plugins. PostgreSQL starts a new `walship` process for every
//! WAL segment, and compiling a component takes a second or more, so each
//! plugin is compiled once and the native code is cached on disk. Loading the
//! cached file is a memory map (about a millisecond).
//!
//! Loading native code is only safe for files this host wrote itself
//! (`Component::deserialize_file` is `unsafe`), so the cache directory must be
//! owned by the current user and writable by nobody else; otherwise walship
//! compiles in memory and says why.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A plugin file's identity: the sha256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginDigest(pub String);

impl PluginDigest {
    pub fn of(bytes: &[u8]) -> Self {
        Self(
            Sha256::digest(bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    }
}

/// How a component was obtained, for `--verbose` output and the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadPath {
    /// Mapped from the cache.
    CacheHit,
    /// Compiled now and written to the cache.
    CompiledAndCached,
    /// Compiled now; the cache was unusable.
    CompiledUncached,
}

pub struct ComponentCache {
    dir: Option<PathBuf>,
}

impl ComponentCache {
    /// `dir` is created (mode 0700) if missing. An unsafe directory disables
    /// caching with a warning rather than failing the archive command.
    pub fn new(dir: &Path) -> Self {
        match prepare_private_dir(dir) {
            Ok(()) => Self {
                dir: Some(dir.to_path_buf()),
            },
            Err(e) => {
                eprintln!(
                    "walship: warning: not caching compiled plugins in {}: {e:#}; every run will compile (slow)",
                    dir.display()
                );
                Self { dir: None }
            }
        }
    }

    pub fn disabled() -> Self {
        Self { dir: None }
    }

    /// Loads the plugin at `path`, from the cache when possible.
    pub fn load(
        &self,
        engine: &Engine,
        path: &Path,
    ) -> Result<(Component, PluginDigest, LoadPath)> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read plugin {}", path.display()))?;
        let digest = PluginDigest::of(&bytes);
        let Some(dir) = &self.dir else {
            let component = compile(engine, &bytes, path)?;
            return Ok((component, digest, LoadPath::CompiledUncached));
        };
        let cached = dir.join(format!(
            "{}-{:016x}.cwasm",
            digest.0,
            engine_fingerprint(engine)
        ));
        if cached.exists() {
            // SAFETY: the file is in a directory only this user can write, under
            // a name only `store` below produces, and its name binds it to the
            // plugin's sha256 and this engine's compatibility hash. wasmtime
            // also checks the header of the artifact before using it.
            match unsafe { Component::deserialize_file(engine, &cached) } {
                Ok(component) => return Ok((component, digest, LoadPath::CacheHit)),
                Err(e) => eprintln!(
                    "walship: warning: discarding unusable cached plugin {}: {e:#}",
                    cached.display()
                ),
            }
        }
        let native = engine
            .precompile_component(&bytes)
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .with_context(|| format!("{} is not a valid WebAssembly component", path.display()))?;
        store(dir, &cached, &native)
            .with_context(|| format!("cannot write {}", cached.display()))?;
        // SAFETY: written by `store` just now, see above.
        let component = unsafe { Component::deserialize_file(engine, &cached) }
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        Ok((component, digest, LoadPath::CompiledAndCached))
    }
}

fn compile(engine: &Engine, bytes: &[u8], path: &Path) -> Result<Component> {
    Component::new(engine, bytes)
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .with_context(|| format!("{} is not a valid WebAssembly component", path.display()))
}

/// Binds cached native code to this exact engine build and configuration.
fn engine_fingerprint(engine: &Engine) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    env!("CARGO_PKG_VERSION").hash(&mut h);
    h.finish()
}

/// Writes atomically: a reader never maps a half-written file.
fn store(dir: &Path, target: &Path, native: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        target.file_name().unwrap().to_string_lossy()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode_0600()
            .open(&tmp)?;
        f.write_all(native)?;
        f.sync_all()?;
        std::fs::rename(&tmp, target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(result?)
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}
impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

/// Creates `dir` (0700) if needed and checks that only we can write to it.
pub(super) fn prepare_private_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let meta = std::fs::metadata(dir)?;
    let uid = unsafe_free_uid();
    if !meta.is_dir() {
        anyhow::bail!("not a directory");
    }
    if meta.uid() != uid {
        anyhow::bail!(
            "owned by uid {}, not by the current user (uid {uid})",
            meta.uid()
        );
    }
    if meta.permissions().mode() & 0o022 != 0 {
        anyhow::bail!(
            "writable by group or others (mode {:o})",
            meta.permissions().mode() & 0o777
        );
    }
    Ok(())
}

/// The current user's uid, read from /proc to avoid a libc dependency.
fn unsafe_free_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

//! Precompiled plugins. PostgreSQL starts a new `walship` process for every
//! WAL segment, and compiling a component takes a second or more, so each
//! plugin is compiled once and the native code is cached on disk. Loading the
//! cached file is a memory map (about a millisecond).
//!
//! Loading native code is only safe for files this host wrote itself
//! (`Component::deserialize` is `unsafe`): whoever can put a file there runs
//! native code as this user, outside every sandbox. So:
//! - the cache directory must be owned by the current user and writable by
//!   nobody else, and so must every directory above it (or be root's, and
//!   sticky if others may write it): otherwise someone could swap the path;
//! - a cached file is opened without following a symlink and used only if
//!   it is a regular file of ours with mode 0600;
//! - its BLAKE3 digest, written beside it when it was compiled, must match
//!   the bytes read, and exactly those bytes are loaded (no second open).
//!
//! The cache directory is walship's own state: no plugin is ever granted it
//! (grant_dir.rs). Anything that fails these checks is compiled afresh, with
//! a warning naming what was wrong.

use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
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
        match prepare_private_dir(dir).and_then(|()| check_ancestors(dir)) {
            // The real path: its every component was checked just now.
            Ok(real) => Self { dir: Some(real) },
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
        match read_trusted(&cached) {
            Ok(Some(native)) => {
                // SAFETY: `native` is the content of a regular file of ours,
                // mode 0600, in a directory only this user can write (every
                // component of its path checked), under a name binding it to
                // the plugin's sha256 and this engine's compatibility hash,
                // and it matches the digest written when it was compiled.
                // These very bytes are loaded: nothing can change between
                // the check and the load. wasmtime also checks its header.
                match unsafe { Component::deserialize(engine, &native) } {
                    Ok(component) => return Ok((component, digest, LoadPath::CacheHit)),
                    Err(e) => eprintln!(
                        "walship: warning: discarding unusable cached plugin {}: {e:#}",
                        cached.display()
                    ),
                }
            }
            Ok(None) => {}
            Err(why) => eprintln!(
                "walship: warning: not loading cached plugin {}: {why}; compiling it again",
                cached.display()
            ),
        }
        let native = engine
            .precompile_component(&bytes)
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .with_context(|| format!("{} is not a valid WebAssembly component", path.display()))?;
        store(dir, &cached, &native)
            .with_context(|| format!("cannot write {}", cached.display()))?;
        // SAFETY: compiled by this engine just now, from the plugin's bytes.
        let component = unsafe { Component::deserialize(engine, &native) }
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

/// Where the digest of a cached file is kept: beside it, in the same
/// private directory.
fn digest_path(cached: &Path) -> PathBuf {
    let mut name = cached.as_os_str().to_os_string();
    name.push(".blake3");
    PathBuf::from(name)
}

/// The cached native code at `cached`, if there is any that passes every
/// check; `Err` says which check failed.
fn read_trusted(cached: &Path) -> std::result::Result<Option<Vec<u8>>, String> {
    let native = match read_private_file(cached, 1 << 30) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        other => other.map_err(|e| e.to_string())?,
    };
    let recorded =
        read_private_file(&digest_path(cached), 64).map_err(|e| format!("its digest: {e}"))?;
    if recorded != blake3::hash(&native).to_hex().as_bytes() {
        return Err("it does not match the digest written when it was compiled".into());
    }
    Ok(Some(native))
}

/// Reads a file only if it is a regular file (not a symlink: `O_NOFOLLOW`)
/// owned by this user with mode 0600, and at most `max` bytes long.
fn read_private_file(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let refuse = |why: String| std::io::Error::new(std::io::ErrorKind::PermissionDenied, why);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => refuse("it is a symlink".into()),
            _ => e,
        })?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(refuse("it is not a regular file".into()));
    }
    if meta.uid() != current_uid() {
        return Err(refuse(format!(
            "it is owned by uid {}, not by the current user (uid {})",
            meta.uid(),
            current_uid()
        )));
    }
    if meta.permissions().mode() & 0o777 != 0o600 {
        return Err(refuse(format!(
            "its mode is {:o}, not 600",
            meta.permissions().mode() & 0o777
        )));
    }
    if meta.len() > max {
        return Err(refuse(format!("it is larger than {max} bytes")));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Writes the native code and then its digest, each atomically: a reader
/// never sees a half-written file, and code without a matching digest is
/// compiled again rather than loaded.
fn store(dir: &Path, target: &Path, native: &[u8]) -> Result<()> {
    write_private(dir, target, native)?;
    write_private(
        dir,
        &digest_path(target),
        blake3::hash(native).to_hex().as_bytes(),
    )
}

fn write_private(dir: &Path, target: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        target.file_name().unwrap().to_string_lossy()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(result?)
}

/// Checks every directory from `/` down to `dir` (symlinks resolved):
/// each must be owned by root or by us, and not writable by others unless
/// it is sticky (as /tmp is: others may add entries, not replace ours).
/// Returns the real path of `dir`, which is then used for every access.
fn check_ancestors(dir: &Path) -> Result<PathBuf> {
    let real = std::fs::canonicalize(dir)?;
    let uid = current_uid();
    let mut walked = PathBuf::new();
    for component in real.components() {
        walked.push(component);
        let meta = std::fs::metadata(&walked)?;
        let mode = meta.permissions().mode();
        if meta.uid() != 0 && meta.uid() != uid {
            anyhow::bail!(
                "{} is owned by uid {}, neither root nor the current user (uid {uid})",
                walked.display(),
                meta.uid()
            );
        }
        let sticky = mode & 0o1000 != 0;
        if mode & 0o022 != 0 && !sticky {
            anyhow::bail!(
                "{} is writable by group or others (mode {:o}), who could replace what lies below it",
                walked.display(),
                mode & 0o7777
            );
        }
    }
    Ok(real)
}

/// The cache directory to use: `configured` if it is (or can be made)
/// private to this user, else a private one the user owns: `.cache/walship`
/// in the user's home from the password database (HOME often points at
/// another user's home: `su postgres` without `-`, container images), else
/// `walship-<uid>` in the temp directory. Says so in a warning line when it
/// falls back; `None` (no caching, slow) only when nothing is usable.
pub fn usable_cache_dir(configured: Option<&Path>) -> Option<PathBuf> {
    let usable = |dir: &Path| prepare_private_dir(dir).and_then(|()| check_ancestors(dir));
    let configured = configured?;
    let why = match usable(configured) {
        Ok(_) => return Some(configured.to_path_buf()),
        Err(e) => e,
    };
    let fallbacks = user_home()
        .map(|home| home.join(".cache/walship"))
        .into_iter()
        .chain(std::iter::once(
            std::env::temp_dir().join(format!("walship-{}", current_uid())),
        ))
        .filter(|d| d != configured);
    for fallback in fallbacks {
        if usable(&fallback).is_ok() {
            eprintln!(
                "walship: warning: cache directory {} is not usable ({why:#}); using {} instead",
                configured.display(),
                fallback.display()
            );
            return Some(fallback);
        }
    }
    eprintln!(
        "walship: warning: cache directory {} is not usable ({why:#}) and no private fallback is; every run will compile plugins (slow)",
        configured.display()
    );
    None
}

/// This user's home directory as the password database has it.
fn user_home() -> Option<PathBuf> {
    use std::ffi::CStr;
    use std::os::unix::ffi::OsStrExt;
    let mut buf = vec![0u8; 16 << 10];
    // SAFETY: plain data, filled by getpwuid_r before it is read.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives its use.
    let rc = unsafe {
        libc::getpwuid_r(
            libc::geteuid(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_dir.is_null() {
        return None;
    }
    // SAFETY: getpwuid_r succeeded: pw_dir points into `buf`, NUL-terminated.
    let dir = unsafe { CStr::from_ptr(pwd.pw_dir) };
    let dir = PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes()));
    dir.is_absolute().then_some(dir)
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
    let uid = current_uid();
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

/// The current user's (effective) uid.
pub(super) fn current_uid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    //! Whoever can make walship load a cached file runs native code. Each
    //! test plants, under the name the hostile plugin's compiled code is
    //! cached by, the compiled code of *another* component (the broken test
    //! plugin): loading it would be running code the plugin's bytes do not
    //! describe.

    use super::*;
    use std::os::unix::fs::OpenOptionsExt;

    /// Plants a file as walship itself would write it (mode 0600, ours).
    /// Self-contained, so that these tests also run against a cache that
    /// knows nothing of digests.
    fn write_0600(path: &Path, bytes: &[u8]) {
        let _ = std::fs::remove_file(path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .unwrap();
        f.write_all(bytes).unwrap();
    }

    fn sidecar(path: &Path) -> PathBuf {
        PathBuf::from(format!("{}.blake3", path.display()))
    }

    fn test_plugin(name: &str) -> PathBuf {
        let dir = std::env::var_os("WALSHIP_TEST_PLUGINS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-plugins")
            });
        let path = dir.join(format!("{name}.wasm"));
        assert!(
            path.is_file(),
            "{} is missing: run `cargo xtask dist`",
            path.display()
        );
        path
    }

    struct Planted {
        dir: PathBuf,
        cache: PathBuf,
        engine: Engine,
        /// Where the hostile plugin's compiled code is looked up.
        cached: PathBuf,
        /// Compiled code of the broken plugin: not what that name promises.
        foreign: Vec<u8>,
    }

    fn plant(label: &str) -> Planted {
        let dir =
            std::env::temp_dir().join(format!("walship-cache-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&dir)
            .unwrap();
        let cache = dir.join("cache");
        let engine = super::super::engine::new_engine().unwrap();
        let digest = PluginDigest::of(&std::fs::read(test_plugin("hostile")).unwrap());
        let cached = cache.join(format!(
            "{}-{:016x}.cwasm",
            digest.0,
            engine_fingerprint(&engine)
        ));
        let foreign = engine
            .precompile_component(&std::fs::read(test_plugin("broken")).unwrap())
            .unwrap();
        Planted {
            dir: dir.canonicalize().unwrap(),
            cache,
            engine,
            cached,
            foreign,
        }
    }

    impl Planted {
        fn load(&self) -> LoadPath {
            let cache = ComponentCache::new(&self.cache);
            cache.load(&self.engine, &test_plugin("hostile")).unwrap().2
        }
    }

    impl Drop for Planted {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn a_symlink_in_the_cache_is_not_loaded() {
        let p = plant("symlink");
        prepare_private_dir(&p.cache).unwrap();
        let elsewhere = p.dir.join("elsewhere.cwasm");
        write_0600(&elsewhere, &p.foreign);
        write_0600(
            &sidecar(&elsewhere),
            blake3::hash(&p.foreign).to_hex().as_bytes(),
        );
        std::os::unix::fs::symlink(&elsewhere, &p.cached).unwrap();
        std::os::unix::fs::symlink(sidecar(&elsewhere), sidecar(&p.cached)).unwrap();
        assert_eq!(p.load(), LoadPath::CompiledAndCached);
        // The link was replaced by the real thing, which then loads.
        assert!(std::fs::symlink_metadata(&p.cached).unwrap().is_file());
        assert_eq!(p.load(), LoadPath::CacheHit);
    }

    #[test]
    fn a_file_without_its_digest_or_with_a_wrong_one_is_not_loaded() {
        let p = plant("digest");
        prepare_private_dir(&p.cache).unwrap();
        // Just the code, as a plugin able to write there would leave it.
        write_0600(&p.cached, &p.foreign);
        assert_eq!(p.load(), LoadPath::CompiledAndCached);
        assert_eq!(p.load(), LoadPath::CacheHit);
        // The code swapped, the digest left alone.
        write_0600(&p.cached, &p.foreign);
        assert_eq!(p.load(), LoadPath::CompiledAndCached);
    }

    #[test]
    fn a_file_others_may_write_is_not_loaded() {
        let p = plant("mode");
        assert_eq!(p.load(), LoadPath::CompiledAndCached);
        std::fs::set_permissions(&p.cached, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(p.load(), LoadPath::CompiledAndCached);
        assert_eq!(p.load(), LoadPath::CacheHit);
    }

    #[test]
    fn a_cache_below_a_directory_others_may_write_is_not_used() {
        let p = plant("ancestors");
        let open = p.dir.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let cache = ComponentCache::new(&open.join("cache"));
        assert_eq!(cache.dir, None, "a cache others could swap was used");
        // Sticky, as /tmp is: others may add entries but not replace ours.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let cache = ComponentCache::new(&open.join("cache"));
        assert!(cache.dir.is_some());
    }
}

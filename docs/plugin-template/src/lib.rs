//! A walship storage plugin: objects as files in a directory.
//!
//! The prefix `tmpl:///abs/dir` names the directory; the key `wal/0001` is
//! the file `/abs/dir/wal/0001`. Small on purpose, but it keeps every promise
//! the contract (`wit/storage.wit`) asks of a store:
//!
//! - put is durable (the bytes and the name are fsynced before it returns)
//!   and atomic (a temp file is published under its final name in one step);
//! - create-only is atomic: the temp file is hard-linked into place, and a
//!   link never replaces an existing name, so of racing creators one wins;
//! - a missing object is `not-found`, a taken key `already-exists`;
//! - listings come in byte order of keys and are never silently truncated.
//!
//! It declares no multipart, no delimiter and no batch delete: the host never
//! calls what a plugin does not claim. `plugins/fs` in walship's repository is
//! the full-featured version of the same idea.
//!
//! Build: `cargo build --release --target wasm32-wasip2`; the component is
//! `target/wasm32-wasip2/release/walship_plugin_tmpl.wasm`.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, RandomState};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

// The bindings for the contract version this plugin is written against. The
// host picks its side of the bindings by the version the component exports.
wit_bindgen::generate!({
    world: "walship:storage/storage-plugin@0.1.1",
    path: "wit",
});

use exports::walship::storage::backend::{Guest, GuestStore, Store};
use walship::storage::host::{LogLevel, log};
use walship::storage::types::{
    BackendInfo, ByteRange, Capabilities, DeleteFailure, DirectoryGrant, Error, Features,
    GetResult, Grants, Limits, ListOptions, ListPage, ObjectMeta, PartReceipt, PutMode, PutOptions,
};

/// The URL scheme of the prefixes this plugin serves.
const SCHEME: &str = "tmpl";
/// Largest object one put takes. Without multipart the host sends each object
/// in one put, so this bounds the plugin's memory (the host's cap on it is
/// `WALSHIP_PLUGIN_MEMORY_MIB`, 256 MiB by default).
const MAX_SINGLE_PUT: u64 = 64 << 20;
/// Keys per listing page when the host asks for 0 (its default) or more.
const MAX_PAGE: usize = 1000;
/// Temp files start with this. Such names are never listed and never
/// accepted in a key, so an object cannot collide with one.
const TEMP_PREFIX: &str = ".tmpl-tmp-";

struct Plugin;

impl Guest for Plugin {
    type Store = DirStore;

    /// Static facts; no I/O. The host reads them before anything else.
    fn info() -> BackendInfo {
        BackendInfo {
            backend: SCHEME.into(),
            plugin_version: env!("CARGO_PKG_VERSION").into(),
            schemes: vec![SCHEME.into()],
            // Each claim is checked by `walship plugin test`.
            features: Features::CREATE_ONLY
                | Features::ATOMIC_CREATE_ONLY
                | Features::RANGED_GET
                | Features::LIST_START_AFTER,
            limits: Limits {
                max_single_put: MAX_SINGLE_PUT,
                // Part limits only matter with the multipart feature.
                min_part_size: 0,
                max_part_size: 0,
                max_parts: 0,
                max_delete_batch: 1000,
            },
            // No settings: the prefix says everything. A setting would be a
            // `ConfigKey { name, kind: ConfigKind::Plain | Secret | SecretFile, .. }`.
            config_keys: Vec::new(),
            // The manifest: never any network, and one directory on the host.
            capabilities: Capabilities {
                network: Vec::new(),
                directory: true,
            },
        }
    }

    /// Exactly what `open` will need for this prefix: its directory, writable.
    /// Runs with no grants at all, so it only parses.
    fn plan(prefix: String, _config: Vec<(String, String)>) -> Result<Grants, Error> {
        let root = parse_prefix(&prefix)?;
        Ok(Grants {
            endpoints: Vec::new(),
            directories: vec![DirectoryGrant {
                path: root.display().to_string(),
                writable: true,
            }],
        })
    }
}

/// `tmpl:///abs/dir` → `/abs/dir`, normalised the way the host normalises the
/// path of a `scheme:///path` prefix (no trailing slash, no `.` or empty
/// segments): the host grants the plan's directory only if it is that path.
fn parse_prefix(prefix: &str) -> Result<PathBuf, Error> {
    let bad = || {
        Error::InvalidConfig(format!(
            "prefix {prefix:?}: write it as {SCHEME}:///absolute/directory"
        ))
    };
    let path = prefix
        .strip_prefix(SCHEME)
        .and_then(|p| p.strip_prefix("://"))
        .filter(|p| p.starts_with('/') && !p.contains('\0'))
        .ok_or_else(bad)?;
    let mut root = PathBuf::from("/");
    for component in Path::new(path).components() {
        match component {
            Component::Normal(segment) => root.push(segment),
            Component::RootDir | Component::CurDir => {}
            // A `..` would grant more than the operator named.
            Component::ParentDir | Component::Prefix(_) => return Err(bad()),
        }
    }
    if root == Path::new("/") {
        // Never ask for the whole filesystem.
        return Err(bad());
    }
    Ok(root)
}

/// An open store. The host may open several (one per instance) on the same
/// directory, in several processes at once: nothing is cached here.
struct DirStore {
    root: PathBuf,
}

impl GuestStore for DirStore {
    /// Called in an instance that has the plan's grants: the host has
    /// created the directory (if missing) and preopened it at its own path.
    fn open(
        prefix: String,
        _config: Vec<(String, String)>,
        _secrets: Vec<(String, String)>,
    ) -> Result<Store, Error> {
        let root = parse_prefix(&prefix)?;
        if let Err(e) = fs::read_dir(&root) {
            return Err(Error::InvalidConfig(format!(
                "store directory {} is not readable: {e}",
                root.display()
            )));
        }
        Ok(Store::new(DirStore { root }))
    }

    /// What this store, as configured, supports: here always all it declared.
    fn features(&self) -> Features {
        Plugin::info().features
    }

    fn head(&self, key: String) -> Result<ObjectMeta, Error> {
        let path = self.path_of(&key)?;
        match fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(meta(&key, &m)),
            // A directory holds other keys; it is not an object.
            Ok(_) => Err(not_found(&key)),
            Err(e) if is_missing(&e) => Err(not_found(&key)),
            Err(e) => Err(io_error(&format!("head {key:?}"), e)),
        }
    }

    fn get(&self, key: String, range: Option<ByteRange>) -> Result<GetResult, Error> {
        let path = self.path_of(&key)?;
        let what = || format!("get {key:?}");
        // One open handle: size and bytes agree even if an overwrite renames
        // a new file into place meanwhile.
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if is_missing(&e) => return Err(not_found(&key)),
            Err(e) => return Err(io_error(&what(), e)),
        };
        let m = file.metadata().map_err(|e| io_error(&what(), e))?;
        if !m.is_file() {
            return Err(not_found(&key));
        }
        // A range past the end returns what exists (possibly nothing).
        let (offset, length) = match range {
            None => (0, m.len()),
            Some(r) => {
                let offset = r.offset.min(m.len());
                let rest = m.len() - offset;
                (offset, r.length.map_or(rest, |l| l.min(rest)))
            }
        };
        let mut data = Vec::with_capacity(length as usize);
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.take(length).read_to_end(&mut data))
            .map_err(|e| io_error(&what(), e))?;
        Ok(GetResult {
            meta: meta(&key, &m),
            data,
        })
    }

    fn put(&self, key: String, data: Vec<u8>, options: PutOptions) -> Result<ObjectMeta, Error> {
        let what = || format!("put {key:?}");
        if data.len() as u64 > MAX_SINGLE_PUT {
            return Err(Error::Unsupported(format!(
                "put {key:?}: {} bytes is more than this plugin takes in one put ({MAX_SINGLE_PUT})",
                data.len()
            )));
        }
        let target = self.path_of(&key)?;
        if target.is_dir() {
            return Err(Error::Other(format!(
                "put {key:?}: a directory holding other keys has this name"
            )));
        }
        let dir = target.parent().unwrap_or(&self.root);
        self.make_dirs(dir).map_err(|e| io_error(&what(), e))?;

        // 1. The bytes go to a temp file beside the target, and to disk.
        let temp = TempFile::create(dir).map_err(|e| io_error(&what(), e))?;
        let mut file = OpenOptions::new()
            .write(true)
            .open(&temp.0)
            .map_err(|e| io_error(&what(), e))?;
        file.write_all(&data)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(&what(), e))?;
        drop(file);

        // 2. The file appears under its name in one step. `hard_link` fails
        // if the name is taken (rename would silently replace it).
        let published = match options.mode {
            PutMode::CreateOnly => fs::hard_link(&temp.0, &target),
            PutMode::Overwrite => fs::rename(&temp.0, &target),
        };
        match published {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(format!(
                    "{key:?} already exists; the create-only put left it untouched"
                )));
            }
            Err(e) => return Err(io_error(&what(), e)),
        }
        drop(temp);

        // 3. The new name is on disk too.
        sync_dir(dir).map_err(|e| io_error(&what(), e))?;
        self.head(key)
    }

    fn list_objects(&self, options: ListOptions) -> Result<ListPage, Error> {
        if options.delimiter.is_some() {
            return Err(Error::Unsupported(
                "list-objects: this plugin does not group by a delimiter".into(),
            ));
        }
        let max = match options.max_keys as usize {
            0 => MAX_PAGE,
            n => n.min(MAX_PAGE),
        };
        // The page token is the last key of the previous page, so a listing
        // resumes from any process and stays right while keys come and go.
        // Resume after whichever bound is later (`None` sorts first).
        let after = options.start_after.max(options.page_token);

        // Only the directory part of the prefix can hold matching keys.
        let dir_key = &options.prefix[..options.prefix.rfind('/').map_or(0, |i| i + 1)];
        let mut keys = Vec::new();
        if dir_key.is_empty() || check_key(dir_key.trim_end_matches('/')).is_ok() {
            self.collect_keys(dir_key, &mut keys)?;
        }
        keys.retain(|k| k.starts_with(&options.prefix) && after.as_ref().is_none_or(|a| k > a));
        // String order is byte order, as the contract asks.
        keys.sort_unstable();

        let more = keys.len() > max;
        keys.truncate(max);
        let next_page_token = if more { keys.last().cloned() } else { None };
        let mut objects = Vec::with_capacity(keys.len());
        for key in keys {
            match self.head(key) {
                Ok(m) => objects.push(m),
                // Deleted since the walk saw it.
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ListPage {
            objects,
            common_prefixes: Vec::new(),
            next_page_token,
        })
    }

    fn delete(&self, keys: Vec<String>) -> Result<Vec<DeleteFailure>, Error> {
        let mut failures = Vec::new();
        let mut changed = BTreeSet::new();
        for key in keys {
            let path = match self.path_of(&key) {
                Ok(path) => path,
                Err(error) => {
                    failures.push(DeleteFailure { key, error });
                    continue;
                }
            };
            match fs::remove_file(&path) {
                Ok(()) => {
                    changed.insert(path.parent().unwrap_or(&self.root).to_path_buf());
                }
                // Missing is fine; a directory is not an object either.
                Err(e) if is_missing(&e) || path.is_dir() => {}
                Err(e) => failures.push(DeleteFailure {
                    error: io_error(&format!("delete {key:?}"), e),
                    key,
                }),
            }
        }
        // One fsync per directory makes the removals durable. They happened
        // whatever it says, so a failure is worth a warning, not an error.
        // (Empty directories stay; they are not objects.)
        for dir in changed {
            if let Err(e) = sync_dir(&dir) {
                log(
                    LogLevel::Warn,
                    &format!("delete: fsync of {}: {e}", dir.display()),
                );
            }
        }
        Ok(failures)
    }

    // Multipart is not declared, so the host never calls these.
    fn start_multipart(&self, _: String, _: PutOptions) -> Result<String, Error> {
        Err(no_multipart())
    }

    fn put_part(&self, _: String, _: String, _: u32, _: Vec<u8>) -> Result<PartReceipt, Error> {
        Err(no_multipart())
    }

    fn complete_multipart(
        &self,
        _: String,
        _: String,
        _: Vec<PartReceipt>,
        _: PutOptions,
    ) -> Result<ObjectMeta, Error> {
        Err(no_multipart())
    }

    fn abort_multipart(&self, _: String, _: String) -> Result<(), Error> {
        Err(no_multipart())
    }
}

impl DirStore {
    /// The file of `key`. The host validates keys already, but a key becomes
    /// a path here, so check again rather than trust that `..` never comes.
    fn path_of(&self, key: &str) -> Result<PathBuf, Error> {
        check_key(key).map_err(|why| Error::Other(format!("invalid key {key:?}: {why}")))?;
        Ok(self.root.join(key))
    }

    /// Creates `dir` and its missing parents below the root, fsyncing each
    /// parent so that the new directory's name is durable too.
    fn make_dirs(&self, dir: &Path) -> io::Result<()> {
        if dir == self.root || dir.is_dir() {
            return Ok(());
        }
        let parent = dir.parent().unwrap_or(&self.root);
        self.make_dirs(parent)?;
        match fs::create_dir(dir) {
            Ok(()) => sync_dir(parent),
            // A racing put made it.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(io::Error::other(format!(
                "{} is an object, so it cannot also hold other keys",
                dir.display()
            ))),
            Err(e) => Err(e),
        }
    }

    /// Appends every object key below the directory of `dir_key` (`""` for
    /// the root, else ending in `/`). A missing directory holds none.
    fn collect_keys(&self, dir_key: &str, keys: &mut Vec<String>) -> Result<(), Error> {
        let what = || format!("list-objects under {dir_key:?}");
        let entries = match fs::read_dir(self.root.join(dir_key)) {
            Ok(entries) => entries,
            Err(e) if is_missing(&e) => return Ok(()),
            Err(e) => return Err(io_error(&what(), e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&what(), e))?;
            // A name that is not UTF-8 (or is a temp file) is no key of ours.
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with(TEMP_PREFIX) {
                continue;
            }
            let kind = entry.file_type().map_err(|e| io_error(&what(), e))?;
            if kind.is_dir() {
                self.collect_keys(&format!("{dir_key}{name}/"), keys)?;
            } else if kind.is_file() {
                keys.push(format!("{dir_key}{name}"));
            }
        }
        Ok(())
    }
}

/// Why `key` cannot be a relative path below the root, if it cannot.
fn check_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() || key.len() > 1024 || key.contains('\0') {
        return Err("empty, longer than 1024 bytes, or holding a NUL");
    }
    for segment in key.split('/') {
        if matches!(segment, "" | "." | "..") {
            return Err("an empty, '.' or '..' segment");
        }
        if segment.starts_with(TEMP_PREFIX) {
            return Err("a segment with the plugin's reserved prefix");
        }
    }
    Ok(())
}

/// A temp file, removed when dropped. After a rename its name is gone, so the
/// removal does nothing; after a hard link it drops the extra name.
struct TempFile(PathBuf);

impl TempFile {
    fn create(dir: &Path) -> io::Result<TempFile> {
        loop {
            // std seeds RandomState from wasi:random, so names differ across
            // instances and processes; `create_new` settles any collision.
            let name = format!("{TEMP_PREFIX}{:016x}", RandomState::new().hash_one(0u8));
            let path = dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => return Ok(TempFile(path)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// fsync of a directory: what makes a name created or removed in it durable.
/// Works in the sandbox: wasmtime's `descriptor.sync` on a directory fsyncs it.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn meta(key: &str, m: &fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        key: key.to_string(),
        size: m.len(),
        last_modified_ms: m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64),
        // Only claim an etag that changes with the content.
        etag: None,
    }
}

/// No file there, or a file where a directory of the path should be.
fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn not_found(key: &str) -> Error {
    Error::NotFound(format!("{key:?} not found"))
}

/// The variant the host acts on, and a one-line message that says which
/// operation failed and why (never a secret).
fn io_error(what: &str, e: io::Error) -> Error {
    let message = format!("{what}: {e}");
    match e.kind() {
        io::ErrorKind::NotFound => Error::NotFound(message),
        io::ErrorKind::AlreadyExists => Error::AlreadyExists(message),
        io::ErrorKind::PermissionDenied => Error::PermissionDenied(message),
        _ => Error::Other(message),
    }
}

fn no_multipart() -> Error {
    Error::Unsupported("this plugin does not declare multipart".into())
}

export!(Plugin);

// Logic that does not call the bindings runs natively: `cargo test`.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_become_the_path_the_host_grants() {
        let root = |p: &str| parse_prefix(p).map(|r| r.display().to_string());
        assert_eq!(root("tmpl:///srv/archive").unwrap(), "/srv/archive");
        assert_eq!(root("tmpl:///srv//a/./b/").unwrap(), "/srv/a/b");
        for bad in [
            "tmpl:///",
            "tmpl://srv/a",
            "tmpl:///srv/../etc",
            "file:///srv",
        ] {
            assert!(
                matches!(parse_prefix(bad), Err(Error::InvalidConfig(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn keys_stay_below_the_root() {
        assert!(check_key("wal/000000010000000000000001").is_ok());
        assert!(check_key("dir with space/ünïcødé").is_ok());
        for bad in ["", "/abs", "a//b", "a/../b", "./a", "a/.tmpl-tmp-1"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }
}

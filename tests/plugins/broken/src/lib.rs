//! A storage plugin that breaks one rule of the contract on request, so the
//! tests can check that `walship plugin test` catches each break and names
//! the rule. Prefix `broken:///abs/dir`; objects are plain files there.
//!
//! `BROKEN_RULE` picks the break:
//!
//! | value               | what goes wrong                                   |
//! |---------------------|---------------------------------------------------|
//! | (unset)             | nothing: the plugin passes the suite              |
//! | `missing-key-error` | a missing key is `other`, not `not-found`         |
//! | `create-overwrites` | a create-only put overwrites instead of refusing  |
//! | `list-skips`        | every listing page drops its last key             |
//!
//! Deliberately simple otherwise (no fsync, no atomic publication): a test
//! double, not a backend.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

wit_bindgen::generate!({ world: "storage-plugin", path: "../../../wit" });

use exports::walship::storage::backend::{Guest, GuestStore, Store};
use walship::storage::types::{
    BackendInfo, ByteRange, Capabilities, ConfigKey, ConfigKind, DeleteFailure, DirectoryGrant,
    Error, Features, GetResult, Grants, Limits, ListOptions, ListPage, ObjectMeta, PartReceipt,
    PutMode, PutOptions,
};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Break {
    None,
    MissingKeyError,
    CreateOverwrites,
    ListSkips,
}

fn parse_break(config: &[(String, String)]) -> Result<Break, Error> {
    let value = config
        .iter()
        .find(|(k, _)| k == "BROKEN_RULE")
        .map(|(_, v)| v.as_str());
    Ok(match value {
        None | Some("") => Break::None,
        Some("missing-key-error") => Break::MissingKeyError,
        Some("create-overwrites") => Break::CreateOverwrites,
        Some("list-skips") => Break::ListSkips,
        Some(other) => {
            return Err(Error::InvalidConfig(format!(
                "BROKEN_RULE={other:?}: expected missing-key-error, create-overwrites or list-skips"
            )));
        }
    })
}

fn parse_root(prefix: &str) -> Result<PathBuf, Error> {
    let path = prefix
        .strip_prefix("broken://")
        .filter(|p| p.starts_with('/') && !p.split('/').any(|s| s == ".."))
        .ok_or_else(|| {
            Error::InvalidConfig(format!(
                "write the prefix as broken:///abs/dir, not {prefix:?}"
            ))
        })?;
    Ok(PathBuf::from(path.trim_end_matches('/')))
}

struct Plugin;

impl Guest for Plugin {
    type Store = DirStore;

    fn info() -> BackendInfo {
        BackendInfo {
            backend: "broken".into(),
            plugin_version: env!("CARGO_PKG_VERSION").into(),
            schemes: vec!["broken".into()],
            features: Features::CREATE_ONLY | Features::ATOMIC_CREATE_ONLY,
            limits: Limits {
                max_single_put: 64 << 20,
                min_part_size: 1 << 20,
                max_part_size: 64 << 20,
                max_parts: 1,
                max_delete_batch: 1000,
            },
            config_keys: vec![ConfigKey {
                name: "BROKEN_RULE".into(),
                kind: ConfigKind::Plain,
                description: "which rule to break (see the crate docs)".into(),
            }],
            capabilities: Capabilities {
                network: Vec::new(),
                directory: true,
            },
        }
    }

    fn plan(prefix: String, _config: Vec<(String, String)>) -> Result<Grants, Error> {
        let root = parse_root(&prefix)?;
        Ok(Grants {
            endpoints: Vec::new(),
            directories: vec![DirectoryGrant {
                path: root.display().to_string(),
                writable: true,
            }],
        })
    }
}

struct DirStore {
    root: PathBuf,
    broken: Break,
}

impl DirStore {
    fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn meta(&self, key: &str) -> Result<ObjectMeta, Error> {
        match fs::metadata(self.path_of(key)) {
            Ok(m) if m.is_file() => Ok(ObjectMeta {
                key: key.to_string(),
                size: m.len(),
                last_modified_ms: None,
                etag: None,
            }),
            Ok(_) => Err(self.missing(key)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(self.missing(key)),
            Err(e) => Err(Error::Other(format!("{key}: {e}"))),
        }
    }

    fn missing(&self, key: &str) -> Error {
        if self.broken == Break::MissingKeyError {
            Error::Other(format!("{key}: something went wrong"))
        } else {
            Error::NotFound(format!("{key} does not exist"))
        }
    }

    /// Every key under the root, sorted.
    fn all_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(&self.root) {
                    keys.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        keys.sort();
        keys
    }
}

fn io_err(key: &str, e: io::Error) -> Error {
    Error::Other(format!("{key}: {e}"))
}

fn unsupported() -> Error {
    Error::Unsupported("the broken plugin does not declare multipart".into())
}

impl GuestStore for DirStore {
    fn open(
        prefix: String,
        config: Vec<(String, String)>,
        _secrets: Vec<(String, String)>,
    ) -> Result<Store, Error> {
        Ok(Store::new(DirStore {
            root: parse_root(&prefix)?,
            broken: parse_break(&config)?,
        }))
    }

    fn features(&self) -> Features {
        Plugin::info().features
    }

    fn head(&self, key: String) -> Result<ObjectMeta, Error> {
        self.meta(&key)
    }

    fn get(&self, key: String, range: Option<ByteRange>) -> Result<GetResult, Error> {
        if range.is_some() {
            return Err(Error::Unsupported("no ranged-get".into()));
        }
        let meta = self.meta(&key)?;
        let data = fs::read(self.path_of(&key)).map_err(|e| io_err(&key, e))?;
        Ok(GetResult { meta, data })
    }

    fn put(&self, key: String, data: Vec<u8>, options: PutOptions) -> Result<ObjectMeta, Error> {
        let path = self.path_of(&key);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| io_err(&key, e))?;
        }
        let create_only =
            options.mode == PutMode::CreateOnly && self.broken != Break::CreateOverwrites;
        let mut open = OpenOptions::new();
        if create_only {
            open.write(true).create_new(true);
        } else {
            open.write(true).create(true).truncate(true);
        }
        let mut file = match open.open(&path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(format!("{key} exists")));
            }
            other => other.map_err(|e| io_err(&key, e))?,
        };
        file.write_all(&data).map_err(|e| io_err(&key, e))?;
        self.meta(&key)
    }

    fn list_objects(&self, options: ListOptions) -> Result<ListPage, Error> {
        let max = match options.max_keys {
            0 => 1000,
            n => n.min(1000) as usize,
        };
        let after = options.page_token.or(options.start_after);
        let mut keys: Vec<String> = self
            .all_keys()
            .into_iter()
            .filter(|k| k.starts_with(&options.prefix))
            .filter(|k| after.as_ref().is_none_or(|a| k > a))
            .collect();
        let more = keys.len() > max;
        keys.truncate(max);
        let next_page_token = more.then(|| keys.last().cloned()).flatten();
        if self.broken == Break::ListSkips && keys.len() > 1 {
            keys.pop();
        }
        let objects = keys.iter().filter_map(|k| self.meta(k).ok()).collect();
        Ok(ListPage {
            objects,
            common_prefixes: Vec::new(),
            next_page_token,
        })
    }

    fn delete(&self, keys: Vec<String>) -> Result<Vec<DeleteFailure>, Error> {
        let mut failures = Vec::new();
        for key in keys {
            match fs::remove_file(self.path_of(&key)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => failures.push(DeleteFailure {
                    error: io_err(&key, e),
                    key,
                }),
                _ => {}
            }
        }
        Ok(failures)
    }

    fn start_multipart(&self, _key: String, _options: PutOptions) -> Result<String, Error> {
        Err(unsupported())
    }

    fn put_part(&self, _: String, _: String, _: u32, _: Vec<u8>) -> Result<PartReceipt, Error> {
        Err(unsupported())
    }

    fn complete_multipart(
        &self,
        _: String,
        _: String,
        _: Vec<PartReceipt>,
        _: PutOptions,
    ) -> Result<ObjectMeta, Error> {
        Err(unsupported())
    }

    fn abort_multipart(&self, _: String, _: String) -> Result<(), Error> {
        Err(unsupported())
    }
}

export!(Plugin);

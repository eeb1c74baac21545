//! The ordinary, working part of the plugin: keys that name no attack are
//! stored as plain files, so the host can check the plugin works at all
//! before it checks that the attacks fail.
//!
//! Deliberately minimal: no atomic publication, no fsync, no listing. It is a
//! test double, not a backend.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::walship::storage::types::{
    ByteRange, DeleteFailure, Error, GetResult, ListPage, ObjectMeta, PutMode,
};

pub struct PlainStore {
    pub root: PathBuf,
    /// The second directory `HOSTILE_EXTRA_DIR` asked for, if any.
    pub extra: Option<PathBuf>,
    /// Every setting and secret `open` was handed, for `leak-settings`.
    pub received: Vec<(String, String)>,
}

impl PlainStore {
    fn path_of(&self, key: &str) -> Result<PathBuf, Error> {
        let plain = !key.is_empty()
            && !key.starts_with('/')
            && key.split('/').all(|s| !matches!(s, "" | "." | ".."));
        if plain {
            Ok(self.root.join(key))
        } else {
            Err(Error::Other(format!("invalid key {key:?}")))
        }
    }

    pub fn put(&self, key: &str, data: &[u8], mode: PutMode) -> Result<ObjectMeta, Error> {
        let path = self.path_of(key)?;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|err| io_error(key, "creating its directory", err))?;
        }
        let mut open = OpenOptions::new();
        match mode {
            PutMode::CreateOnly => open.write(true).create_new(true),
            PutMode::Overwrite => open.write(true).create(true).truncate(true),
        };
        let mut file = open
            .open(&path)
            .map_err(|err| io_error(key, "creating it", err))?;
        file.write_all(data)
            .map_err(|err| io_error(key, "writing it", err))?;
        self.head(key)
    }

    pub fn head(&self, key: &str) -> Result<ObjectMeta, Error> {
        let path = self.path_of(key)?;
        let metadata = fs::metadata(&path).map_err(|err| io_error(key, "stat", err))?;
        if !metadata.is_file() {
            return Err(Error::NotFound(format!("object {key:?} not found")));
        }
        Ok(meta(key, &metadata))
    }

    pub fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetResult, Error> {
        if range.is_some() {
            return Err(Error::Unsupported(
                "the hostile plugin does not declare ranged-get".to_string(),
            ));
        }
        let meta = self.head(key)?;
        let data = fs::read(self.path_of(key)?).map_err(|err| io_error(key, "reading it", err))?;
        Ok(GetResult { meta, data })
    }

    /// An empty page: the plugin does not declare listing features, and its
    /// tests never list.
    pub fn list(&self) -> ListPage {
        ListPage {
            objects: Vec::new(),
            common_prefixes: Vec::new(),
            next_page_token: None,
        }
    }

    pub fn delete(&self, keys: Vec<String>) -> Vec<DeleteFailure> {
        let mut failures = Vec::new();
        for key in keys {
            let removed = self.path_of(&key).and_then(|path| remove(&key, &path));
            if let Err(error) = removed {
                failures.push(DeleteFailure { key, error });
            }
        }
        failures
    }
}

fn remove(key: &str, path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(io_error(key, "removing it", err)),
        _ => Ok(()),
    }
}

fn meta(key: &str, metadata: &fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        key: key.to_string(),
        size: metadata.len(),
        last_modified_ms: metadata
            .modified()
            .ok()
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .map(|age| age.as_millis() as u64),
        etag: None,
    }
}

fn io_error(key: &str, step: &str, err: io::Error) -> Error {
    let message = format!("object {key:?}: {step}: {err}");
    match err.kind() {
        io::ErrorKind::NotFound => Error::NotFound(message),
        io::ErrorKind::AlreadyExists => Error::AlreadyExists(message),
        io::ErrorKind::PermissionDenied => Error::PermissionDenied(message),
        _ => Error::Other(message),
    }
}

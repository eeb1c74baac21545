//! An open store: the root directory, and how keys and files relate to it.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::keys;
use crate::prefix::parse_root;
use crate::walship::storage::types::{Error, ObjectMeta};

pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    /// Opens the store at `prefix` (`file:///abs/path`), whose directory the
    /// host has created and preopened.
    pub fn open(prefix: &str) -> Result<FsStore, Error> {
        let root = PathBuf::from(parse_root(prefix).map_err(Error::InvalidConfig)?);
        if let Err(err) = fs::read_dir(&root) {
            return Err(Error::InvalidConfig(format!(
                "store directory {} is not a readable directory ({err}); create it, or let the \
                 user walship runs as read it",
                root.display()
            )));
        }
        Ok(FsStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the object `key` lives; rejects keys that are not plain paths.
    pub fn path_of(&self, key: &str) -> Result<PathBuf, Error> {
        keys::validate(key).map_err(Error::Other)?;
        Ok(self.root.join(key))
    }
}

/// The contract's description of the object `key` stored in a file.
pub fn object_meta(key: &str, metadata: &fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        key: key.to_string(),
        size: metadata.len(),
        last_modified_ms: metadata
            .modified()
            .ok()
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .map(|age| age.as_millis() as u64),
        // Nothing in the fs backend compares etags, and a cheap stand-in
        // (size and mtime) could pass for a content hash where it is not one.
        etag: None,
    }
}

/// The error for a key with no object behind it.
pub fn not_found(key: &str) -> Error {
    Error::NotFound(format!("object {key:?} not found"))
}

//! Single objects: head, get, put and delete.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::dir_sync::sync_dir;
use crate::durable::publish_new;
use crate::errors::{IoContext, from_io, is_missing};
use crate::host_log;
use crate::store::{FsStore, not_found, object_meta};
use crate::walship::storage::types::{
    ByteRange, DeleteFailure, Error, GetResult, ObjectMeta, PutOptions,
};

impl FsStore {
    pub fn head(&self, key: &str) -> Result<ObjectMeta, Error> {
        let path = self.path_of(key)?;
        match fs::metadata(&path) {
            Ok(metadata) if metadata.is_file() => Ok(object_meta(key, &metadata)),
            // A directory is where keys with this prefix live, not an object.
            Ok(_) => Err(not_found(key)),
            Err(err) if is_missing(&err) => Err(not_found(key)),
            Err(err) => Err(from_io(
                &format!("head {key:?}: stat of {}", path.display()),
                &err,
            )),
        }
    }

    pub fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetResult, Error> {
        let path = self.path_of(key)?;
        let what = || format!("get {key:?}: reading {}", path.display());
        // Reading through one open handle keeps the bytes consistent with the
        // size even if an overwrite renames a new file into place meanwhile.
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(err) if is_missing(&err) => return Err(not_found(key)),
            Err(err) => return Err(from_io(&what(), &err)),
        };
        let metadata = file.metadata().context(what)?;
        if !metadata.is_file() {
            return Err(not_found(key));
        }
        let size = metadata.len();
        let (offset, length) = clamp(range, size);
        let capacity = usize::try_from(length).map_err(|_| {
            Error::Other(format!(
                "get {key:?}: {length} bytes do not fit in memory at once; ask for a range"
            ))
        })?;
        let mut data = Vec::with_capacity(capacity);
        file.seek(SeekFrom::Start(offset)).context(what)?;
        file.take(length).read_to_end(&mut data).context(what)?;
        Ok(GetResult {
            meta: object_meta(key, &metadata),
            data,
        })
    }

    pub fn put(&self, key: &str, data: &[u8], options: &PutOptions) -> Result<ObjectMeta, Error> {
        let target = self.path_of(key)?;
        let name = format!("object {key:?}");
        publish_new(self.root(), &name, &target, options.mode, |file| {
            file.write_all(data)
                .context(|| format!("put {key:?}: writing {} bytes", data.len()))
        })?;
        let metadata = fs::metadata(&target)
            .context(|| format!("put {key:?}: stat of {}", target.display()))?;
        Ok(object_meta(key, &metadata))
    }

    pub fn delete(&self, keys: Vec<String>) -> Result<Vec<DeleteFailure>, Error> {
        let mut failures = Vec::new();
        let mut changed_dirs = BTreeSet::new();
        for key in keys {
            match self.delete_one(&key) {
                Ok(Some(dir)) => {
                    changed_dirs.insert(dir);
                }
                Ok(None) => {}
                Err(error) => failures.push(DeleteFailure { key, error }),
            }
        }
        // One fsync per directory, not per key, makes the removals durable.
        // They are done whatever it says, so a failure is logged, not returned.
        // A directory pruned by a later key of the same batch is gone; its
        // removal is made durable by the fsync of the ancestor where that
        // later prune stopped, which is in the set too.
        for dir in changed_dirs {
            if let Err(err) = sync_dir(&dir)
                && !is_missing(&err)
            {
                host_log::warn(&format!(
                    "delete: fsync of directory {} failed: {err}",
                    dir.display()
                ));
            }
        }
        Ok(failures)
    }

    /// Removes `key`'s file and the directories that leaves empty. Returns the
    /// directory whose entries changed, or `None` if there was no object.
    fn delete_one(&self, key: &str) -> Result<Option<PathBuf>, Error> {
        let path = self.path_of(key)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(Some(self.prune_empty_parents(&path))),
            Err(err) if is_missing(&err) => Ok(None),
            // A directory is not an object, so there was nothing to delete.
            Err(_) if path.is_dir() => Ok(None),
            Err(err) => Err(from_io(
                &format!("delete {key:?}: removing {}", path.display()),
                &err,
            )),
        }
    }

    /// Removes the now-empty directories above `path`, up to but not including
    /// the root, so deleted prefixes do not leave empty trees behind. Returns
    /// the first directory that remains.
    fn prune_empty_parents(&self, path: &Path) -> PathBuf {
        let mut dir = path.parent();
        while let Some(current) = dir {
            // remove_dir fails on a non-empty directory, which ends the climb;
            // a concurrent put that loses its directory this way recreates it.
            if current == self.root() || !current.starts_with(self.root()) {
                break;
            }
            if fs::remove_dir(current).is_err() {
                break;
            }
            dir = current.parent();
        }
        dir.unwrap_or(self.root()).to_path_buf()
    }
}

/// The (offset, length) actually readable from an object of `size` bytes: a
/// range past the end yields what exists, possibly nothing.
fn clamp(range: Option<ByteRange>, size: u64) -> (u64, u64) {
    let Some(range) = range else {
        return (0, size);
    };
    let offset = range.offset.min(size);
    let available = size - offset;
    (
        offset,
        range.length.map_or(available, |len| len.min(available)),
    )
}

#[cfg(test)]
mod tests {
    use super::clamp;
    use crate::walship::storage::types::ByteRange;

    fn range(offset: u64, length: Option<u64>) -> Option<ByteRange> {
        Some(ByteRange { offset, length })
    }

    #[test]
    fn ranges_are_clamped_to_the_object() {
        assert_eq!(clamp(None, 10), (0, 10));
        assert_eq!(clamp(range(2, Some(3)), 10), (2, 3));
        assert_eq!(clamp(range(2, None), 10), (2, 8));
        assert_eq!(clamp(range(8, Some(5)), 10), (8, 2));
        assert_eq!(clamp(range(10, Some(5)), 10), (10, 0));
        assert_eq!(clamp(range(50, None), 10), (10, 0));
        assert_eq!(clamp(range(0, Some(u64::MAX)), 10), (0, 10));
    }
}

//! The store's keys in lexicographic byte order, read lazily from the
//! directory tree so that a page costs the directories it touches, not the
//! whole archive.
//!
//! Only the directory named by the prefix's directory part is read to start
//! with; subdirectories are read when the listing reaches them, and skipped
//! unread when the listing's bounds exclude everything under them.

use std::fs;
use std::path::{Path, PathBuf};

use crate::errors::{from_io, is_missing};
use crate::keys;
use crate::paging::{Bound, KeySource, common_prefix};
use crate::walship::storage::types::Error;

pub struct Walker {
    root: PathBuf,
    prefix: String,
    delimiter: Option<String>,
    /// Unvisited entries of each directory on the way down, in key order.
    stack: Vec<std::vec::IntoIter<Node>>,
    started: bool,
}

/// A directory entry, named by its key; a directory's key ends in `/`.
///
/// Sorting directories by `name/` rather than `name` is what makes a
/// depth-first walk come out in byte order of full keys: `a.b` (`.` is 0x2e)
/// sorts before `a/x` (`/` is 0x2f), although `a` sorts before `a.b`.
struct Node {
    key: String,
    is_dir: bool,
}

impl Walker {
    pub fn new(root: &Path, prefix: &str, delimiter: Option<&str>) -> Walker {
        Walker {
            root: root.to_path_buf(),
            prefix: prefix.to_string(),
            delimiter: delimiter.filter(|d| !d.is_empty()).map(str::to_string),
            stack: Vec::new(),
            started: false,
        }
    }

    fn start(&mut self) -> Result<(), Error> {
        let dir_key = &self.prefix[..self.prefix.rfind('/').map_or(0, |slash| slash + 1)];
        // A prefix whose directory part could not be a key's (`..`, a
        // reserved name, a leading `/`) matches nothing, and must not be
        // resolved as a path.
        if let Some(dir) = dir_key.strip_suffix('/')
            && keys::validate(dir).is_err()
        {
            return Ok(());
        }
        let mut top = self.read(dir_key)?;
        top.retain(|node| node.key.starts_with(&self.prefix));
        self.stack.push(top.into_iter());
        Ok(())
    }

    /// The entries of the directory whose key is `dir_key` (`""` for the root),
    /// sorted. A directory that vanished meanwhile is empty.
    fn read(&self, dir_key: &str) -> Result<Vec<Node>, Error> {
        let dir = self.root.join(dir_key);
        let what = || format!("listing {}", dir.display());
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if is_missing(&err) => return Ok(Vec::new()),
            Err(err) => return Err(from_io(&what(), &err)),
        };
        let mut nodes = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|err| from_io(&what(), &err))?;
            // A name that is not UTF-8 cannot be a key, so no put made it.
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if keys::is_reserved(&name) {
                continue;
            }
            let file_type = entry.file_type().map_err(|err| from_io(&what(), &err))?;
            // Symlinks and special files are not objects: put never makes them.
            if file_type.is_dir() {
                nodes.push(Node {
                    key: format!("{dir_key}{name}/"),
                    is_dir: true,
                });
            } else if file_type.is_file() {
                nodes.push(Node {
                    key: format!("{dir_key}{name}"),
                    is_dir: false,
                });
            }
        }
        nodes.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        Ok(nodes)
    }

    /// Whether every key under directory `dir_key` falls into one common
    /// prefix that no bound cuts into, so the directory need not be walked:
    /// its key stands for all of them (if it holds any object at all).
    fn collapses(&self, dir_key: &str, bounds: &[Bound]) -> bool {
        common_prefix(&self.prefix, self.delimiter.as_deref(), dir_key).is_some()
            && !bounds.iter().any(|bound| bound.key.starts_with(dir_key))
    }

    /// Whether any object lies below directory `dir_key`; stops at the first.
    fn holds_object(&self, dir_key: &str) -> Result<bool, Error> {
        let mut pending = vec![dir_key.to_string()];
        while let Some(dir_key) = pending.pop() {
            for node in self.read(&dir_key)? {
                if !node.is_dir {
                    return Ok(true);
                }
                pending.push(node.key);
            }
        }
        Ok(false)
    }
}

impl KeySource for Walker {
    fn next_key(&mut self, bounds: &[Bound]) -> Result<Option<String>, Error> {
        if !self.started {
            self.started = true;
            self.start()?;
        }
        while let Some(entries) = self.stack.last_mut() {
            let Some(node) = entries.next() else {
                self.stack.pop();
                continue;
            };
            if !node.is_dir {
                if !bounds.iter().any(|bound| bound.excludes(&node.key)) {
                    return Ok(Some(node.key));
                }
            } else if bounds
                .iter()
                .any(|bound| bound.excludes_all_under(&node.key))
            {
                continue;
            } else if self.collapses(&node.key, bounds) {
                if self.holds_object(&node.key)? {
                    return Ok(Some(node.key));
                }
            } else {
                let children = self.read(&node.key)?;
                self.stack.push(children.into_iter());
            }
        }
        Ok(None)
    }
}

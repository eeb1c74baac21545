//! Atomic, durable publication of a file: what put and complete-multipart share.
//!
//! The contract says a reader sees the old object or the new one, never a part,
//! and that the object survives a crash once the call returns. So the bytes go
//! to a temp file beside the target and are fsynced, the file then appears
//! under its final name in one step, and finally the directory is fsynced so
//! that the name itself is on disk.
//!
//! Create-only publishes with a hard link: `link` fails with EEXIST if the name
//! is taken and never replaces it, so of several racing creators exactly one
//! wins (rename would silently replace). Overwrite publishes with rename.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::dir_sync::sync_dir;
use crate::errors::IoContext;
use crate::keys::RESERVED_PREFIX;
use crate::random;
use crate::walship::storage::types::{Error, PutMode};

/// Stores a new file at `target` (below `root`), creating its directory as
/// needed: `fill` writes the bytes into a temp file beside it, which is then
/// published per `mode`. `name` says what is stored (`object "a/b"`), for
/// error messages.
pub fn publish_new(
    root: &Path,
    name: &str,
    target: &Path,
    mode: PutMode,
    fill: impl FnOnce(&mut File) -> Result<(), Error>,
) -> Result<(), Error> {
    let dir = parent_of(name, target)?;
    let temp = create_temp_in(root, dir)
        .context(|| format!("storing {name}: creating a temp file in {}", dir.display()))?;
    finish(temp, name, target, mode, fill)
}

/// Like [`publish_new`], but fails (not-found) if `target`'s directory does
/// not exist, rather than creating it.
pub fn publish_in_existing_dir(
    name: &str,
    target: &Path,
    mode: PutMode,
    fill: impl FnOnce(&mut File) -> Result<(), Error>,
) -> Result<(), Error> {
    let dir = parent_of(name, target)?;
    let temp = TempFile::create(dir)
        .context(|| format!("storing {name}: creating a temp file in {}", dir.display()))?;
    finish(temp, name, target, mode, fill)
}

fn parent_of<'t>(name: &str, target: &'t Path) -> Result<&'t Path, Error> {
    target.parent().ok_or_else(|| {
        Error::Other(format!(
            "storing {name}: {} has no parent",
            target.display()
        ))
    })
}

fn finish(
    mut temp: TempFile,
    name: &str,
    target: &Path,
    mode: PutMode,
    fill: impl FnOnce(&mut File) -> Result<(), Error>,
) -> Result<(), Error> {
    fill(&mut temp.file)?;
    temp.file
        .sync_all()
        .context(|| format!("storing {name}: fsync of {}", temp.path.display()))?;
    let dir = parent_of(name, target)?;
    match temp.publish(target, mode) {
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists && target.is_dir() => {
            return Err(Error::Other(format!(
                "storing {name}: {} is a directory holding other keys, so it cannot also be \
                 an object",
                target.display()
            )));
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists && mode == PutMode::CreateOnly => {
            return Err(Error::AlreadyExists(format!(
                "{name} already exists; the create-only write left it untouched"
            )));
        }
        result => result.context(|| match mode {
            PutMode::CreateOnly => format!(
                "storing {name}: hard-linking it to {} (create-only writes need a filesystem \
                 with hard links)",
                target.display()
            ),
            PutMode::Overwrite => format!("storing {name}: renaming it to {}", target.display()),
        })?,
    }
    sync_dir(dir).context(|| format!("storing {name}: fsync of directory {}", dir.display()))
}

/// Creates `dir` below `root` as needed, then a temp file in it.
fn create_temp_in(root: &Path, dir: &Path) -> io::Result<TempFile> {
    // A concurrent delete may prune a directory that has just become empty
    // between our creating it and creating the temp file in it; then the
    // directory is simply made again.
    let mut attempts = 0;
    loop {
        ensure_dir(root, dir)?;
        match TempFile::create(dir) {
            Err(err) if err.kind() == io::ErrorKind::NotFound && attempts < 3 => attempts += 1,
            result => return result,
        }
    }
}

/// Creates the directories from `root` down to `dir` that are missing,
/// fsyncing each parent so the new directory's name is durable too.
pub fn ensure_dir(root: &Path, dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let below_root = dir.strip_prefix(root).map_err(|_| {
        io::Error::other(format!("{} is not inside the store's root", dir.display()))
    })?;
    let mut current = root.to_path_buf();
    for component in below_root.components() {
        let parent = current.clone();
        current.push(component);
        match fs::create_dir(&current) {
            Ok(()) => {}
            // A racing writer made it; it may not have fsynced the parent yet,
            // so this put still does.
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists && current.is_dir() => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                return Err(io::Error::other(format!(
                    "{} is a file, so it cannot also be a directory holding other keys",
                    current.display()
                )));
            }
            Err(err) => return Err(err),
        }
        sync_dir(&parent)?;
    }
    Ok(())
}

/// A `.walship-tmp-*` file that is removed when dropped unless it was renamed
/// into place, so every failure path cleans up after itself.
pub struct TempFile {
    path: PathBuf,
    file: File,
    renamed: bool,
}

impl TempFile {
    /// A new, empty temp file in `dir`, under a name no other writer uses.
    pub fn create(dir: &Path) -> io::Result<TempFile> {
        let mut attempts = 0;
        loop {
            let path = dir.join(format!("{RESERVED_PREFIX}tmp-{}", random::hex(1)));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(TempFile {
                        path,
                        file,
                        renamed: false,
                    });
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists && attempts < 8 => {
                    attempts += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Makes the (already fsynced) content visible at `target` in one step.
    /// Create-only fails with `AlreadyExists` if `target` exists.
    fn publish(mut self, target: &Path, mode: PutMode) -> io::Result<()> {
        match mode {
            // The temp name goes away on drop; the link keeps the data.
            PutMode::CreateOnly => fs::hard_link(&self.path, target),
            PutMode::Overwrite => {
                fs::rename(&self.path, target)?;
                self.renamed = true;
                Ok(())
            }
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.renamed {
            // Best effort: a leftover temp file is invisible to listings and
            // harmless; failing the operation over it would not be.
            let _ = fs::remove_file(&self.path);
        }
    }
}

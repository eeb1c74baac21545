//! Writing a file whole or not at all: a temporary name in the same
//! directory, then a rename. Used for restored WAL (`%p`), prefetched
//! segments and push-ahead markers, where a reader must never see a part.
//!
//! Temporary names are random: a name derived from the pid alone is taken
//! again when pids are reused (containers start from small pids every
//! time), and a leftover of a killed process must never make a later call
//! fail.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Removes the temporary file unless it was renamed into place, including
/// when the command is cancelled (its future dropped) by a signal or deadline.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Whether the bytes reach the disk before the file appears under its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// A crash may lose the file (never leave a part of it).
    Volatile,
    /// fsync before the rename: once it has its name, it is whole on disk.
    Synced,
}

pub fn write_into_place(destination: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_into_place_with(destination, bytes, Durability::Volatile)
}

pub fn write_into_place_with(
    destination: &Path,
    bytes: &[u8],
    durability: Durability,
) -> std::io::Result<()> {
    let dir = destination
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = destination
        .file_name()
        .ok_or_else(|| std::io::Error::other("destination has no file name"))?;
    let tmp_path = dir.join(format!(
        ".{}.walship-{}",
        file_name.to_string_lossy(),
        crate::random_id::random_hex128()
    ));
    let mut guard = TempFile(Some(tmp_path.clone()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp_path)?;
    f.write_all(bytes)?;
    if durability == Durability::Synced {
        f.sync_all()?;
    }
    drop(f);
    std::fs::rename(&tmp_path, destination)?;
    guard.0 = None;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leftover_of_a_killed_process_never_blocks_the_next_write() {
        let dir = std::env::temp_dir().join(format!("walship-fw-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("RECOVERYXLOG");
        // What a killed process with this pid (pids are reused) left behind.
        std::fs::write(
            dir.join(format!(".RECOVERYXLOG.walship-{}", std::process::id())),
            b"stale",
        )
        .unwrap();
        write_into_place(&dest, b"one").unwrap();
        write_into_place_with(&dest, b"two", Durability::Synced).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"two");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(left.len(), 2, "the destination and the old leftover only");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Writing a file whole or not at all: a temporary name in the same
//! directory, then a rename. Used for restored WAL (`%p`), prefetched
//! segments and push-ahead markers, where a reader must never see a part.

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

pub fn write_into_place(destination: &Path, bytes: &[u8]) -> std::io::Result<()> {
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
        std::process::id()
    ));
    let mut guard = TempFile(Some(tmp_path.clone()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp_path)?;
    f.write_all(bytes)?;
    // No fsync: every caller can lose the file in a crash and lose nothing
    // (PostgreSQL fetches a restored file again; a prefetched file or a
    // push-ahead marker is only a shortcut).
    drop(f);
    std::fs::rename(&tmp_path, destination)?;
    guard.0 = None;
    Ok(())
}

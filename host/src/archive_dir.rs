//! What walship leaves on disk: private files, and no directory a read or
//! a typo did not ask for.
//!
//! Plugins write through WASI, which has no file modes: the fs plugin's
//! files get whatever the process umask leaves of 0666/0777. Archived WAL
//! and base backups hold the whole database, so walship sets the umask to
//! 077 for itself: every file it creates (objects, records, identity,
//! restored and prefetched WAL, caches) is 0600 and every directory 0700,
//! whatever the umask of the shell or service that started it.

use std::path::Path;

/// Files 0600, directories 0700, for everything this process creates.
pub fn keep_files_private() {
    // SAFETY: umask only swaps the process's file-creation mask.
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates the archive's directory, one level only and only for a command
/// that writes: a read must not create an archive, and a mistyped path
/// (whose parent is missing too) must be an error, not a new archive.
pub fn create_if_allowed(dir: &Path, allowed: bool) -> Result<(), String> {
    if !allowed {
        return Err(format!(
            "the archive directory {} does not exist (nothing was created: only commands that store create it); check the prefix",
            dir.display()
        ));
    }
    if let Some(parent) = dir.parent()
        && !parent.is_dir()
    {
        return Err(format!(
            "cannot create the archive directory {}: its parent {} does not exist (a mistyped path?); create the directory first if the path is right",
            dir.display(),
            parent.display()
        ));
    }
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .or_else(|e| match e.kind() {
            // Another process made it just now.
            std::io::ErrorKind::AlreadyExists if dir.is_dir() => Ok(()),
            _ => Err(e),
        })
        .map_err(|e| format!("cannot create the archive directory {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_writer_creates_and_only_one_level() {
        let root = std::env::temp_dir().join(format!("walship-archive-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let archive = root.join("archive");
        let e = create_if_allowed(&archive, false).unwrap_err();
        assert!(e.contains("does not exist") && !archive.exists(), "{e}");
        let typo = root.join("typo/archive");
        let e = create_if_allowed(&typo, true).unwrap_err();
        assert!(e.contains("parent") && !root.join("typo").exists(), "{e}");
        create_if_allowed(&archive, true).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{mode:o}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}

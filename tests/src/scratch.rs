//! Temporary directories, removed when the last handle goes away.
//!
//! Each test gets one [`Scratch`] under the system temp directory, named after
//! the process and a counter so that parallel tests never share one. Paths stay
//! short because PostgreSQL's Unix socket path (inside the scratch directory)
//! must fit in 107 bytes.
//!
//! Set `WALSHIP_E2E_KEEP=1` to keep the directories for inspection.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::process::chown_postgres;

/// A temporary directory shared by the parts of one test (clusters, archive,
/// caches). Cloning is cheap; the directory goes when the last clone does, so a
/// [`crate::pg::Cluster`] holding a clone is stopped before its files vanish.
#[derive(Clone, Debug)]
pub struct Scratch(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    path: PathBuf,
}

impl Scratch {
    /// Creates a fresh directory; `label` (shortened to 16 characters) names
    /// it in logs.
    pub fn new(label: &str) -> Scratch {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let label: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(16)
            .collect();
        let path =
            std::env::temp_dir().join(format!("walship-e2e-{}-{n}-{label}", std::process::id()));
        if path.exists() {
            let _ = fs::remove_dir_all(&path);
        }
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        // Traversable by `postgres`, which owns the directories below it.
        set_mode(&path, 0o755);
        Scratch(Arc::new(Inner { path }))
    }

    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// `path/name`, created (with parents) and owned by the current user.
    pub fn dir(&self, name: &str) -> PathBuf {
        let dir = self.path().join(name);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        dir
    }

    /// `path/name`, created and owned by `postgres` with the given mode: for
    /// anything PostgreSQL (or walship run by PostgreSQL) writes.
    pub fn postgres_dir(&self, name: &str, mode: u32) -> PathBuf {
        let dir = self.dir(name);
        chown_postgres(&dir);
        set_mode(&dir, mode);
        dir
    }

    /// Writes `data` to `path/name` (owned by `postgres`, mode 0644).
    pub fn postgres_file(&self, name: &str, data: &[u8]) -> PathBuf {
        let file = self.path().join(name);
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        fs::write(&file, data).unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
        chown_postgres(&file);
        set_mode(&file, 0o644);
        file
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if std::env::var_os("WALSHIP_E2E_KEEP").is_some() {
            eprintln!("keeping {} (WALSHIP_E2E_KEEP is set)", self.path.display());
            return;
        }
        let _ = fs::remove_dir_all(&self.path);
    }
}

pub fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

//! Where a cluster archives to and restores from: the `archive_command` and
//! `restore_command` PostgreSQL runs, and a way to see what was stored.
//!
//! [`WalshipArchive`] is the thing under test, for any prefix (the file
//! backend here; object-store backends pass their prefix and credentials).
//! [`CopyArchive`] is the stand-in from PostgreSQL's documentation (`cp`), to
//! check the harness itself without walship.

use std::fs;
use std::path::{Path, PathBuf};

use crate::process::shell_quote;
use crate::scratch::Scratch;
use crate::walship::Walship;

/// An archive PostgreSQL can push WAL to and recover WAL from.
pub trait Archive {
    /// The `archive_command` setting.
    fn archive_command(&self) -> String;
    /// The `restore_command` setting.
    fn restore_command(&self) -> String;
    /// Names of the WAL files (segments, `.history`, `.backup`, ...) the
    /// archive holds, sorted.
    fn stored_wal_files(&self) -> Vec<String>;
    /// For messages.
    fn describe(&self) -> String;
}

/// walship storing under one prefix, with the settings in `env`.
#[derive(Clone, Debug)]
pub struct WalshipArchive {
    prefix: String,
    env: Vec<(String, String)>,
    local_dir: Option<PathBuf>,
}

impl WalshipArchive {
    /// A file-backend archive in a new directory `name` of `scratch`, owned by
    /// `postgres`: prefix `file://<dir>`.
    pub fn file(scratch: &Scratch, name: &str) -> WalshipArchive {
        let dir = scratch.postgres_dir(name, 0o700);
        let mut archive = WalshipArchive::new(scratch, format!("file://{}", dir.display()));
        archive.local_dir = Some(dir);
        archive
    }

    /// An archive at any `prefix`. Backend settings (credentials, endpoints)
    /// go in with [`WalshipArchive::with_env`]. The precompiled-plugin cache is
    /// a directory of `scratch`, so tests do not share (or race on) one.
    pub fn new(scratch: &Scratch, prefix: impl Into<String>) -> WalshipArchive {
        let cache = scratch.postgres_dir("walship-cache", 0o700);
        WalshipArchive {
            prefix: prefix.into(),
            env: vec![("WALSHIP_CACHE_DIR".into(), cache.display().to_string())],
            local_dir: None,
        }
    }

    /// Adds (or replaces) a setting passed to every walship command.
    pub fn with_env(mut self, key: &str, value: impl Into<String>) -> WalshipArchive {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.into()));
        self
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The directory behind a `file://` prefix.
    pub fn local_dir(&self) -> Option<&Path> {
        self.local_dir.as_deref()
    }

    /// The file holding object `key` (file backend only).
    #[track_caller]
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.local_dir
            .as_ref()
            .expect("object_path needs a file:// archive")
            .join(key)
    }

    /// The environment walship runs with for this archive: the prefix and
    /// every setting.
    pub fn settings(&self) -> Vec<(String, String)> {
        std::iter::once(("WALSHIP_PREFIX".to_string(), self.prefix.clone()))
            .chain(self.env.iter().cloned())
            .collect()
    }

    /// A walship command configured for this archive (prefix and settings in
    /// the environment), run as `postgres` like PostgreSQL runs it.
    pub fn walship(&self) -> Walship {
        Walship::new()
            .env("WALSHIP_PREFIX", self.prefix.clone())
            .envs(self.env.iter().cloned())
            .as_postgres()
    }

    /// `walship st ls <prefix>`: the stored object keys under `prefix` (all
    /// keys when it is empty).
    #[track_caller]
    pub fn list(&self, prefix: &str) -> Vec<String> {
        let mut ls = self.walship().args(["st", "ls"]);
        if !prefix.is_empty() {
            ls = ls.arg(prefix);
        }
        let out = ls.run().ok();
        let mut keys: Vec<String> = out.stdout.lines().map(str::to_string).collect();
        keys.sort();
        keys
    }
}

impl Archive for WalshipArchive {
    fn archive_command(&self) -> String {
        self.walship().shell_command("wal-push %p")
    }

    fn restore_command(&self) -> String {
        self.walship().shell_command("wal-fetch %f %p")
    }

    fn stored_wal_files(&self) -> Vec<String> {
        self.list("wal/")
            .into_iter()
            .filter_map(|k| k.strip_prefix("wal/").map(str::to_string))
            .collect()
    }

    fn describe(&self) -> String {
        format!("walship at {}", self.prefix)
    }
}

/// The `cp` archive from PostgreSQL's documentation; for checking the
/// harness, not walship.
#[derive(Clone, Debug)]
pub struct CopyArchive {
    dir: PathBuf,
}

impl CopyArchive {
    pub fn new(scratch: &Scratch, name: &str) -> CopyArchive {
        CopyArchive {
            dir: scratch.postgres_dir(name, 0o700),
        }
    }
}

impl Archive for CopyArchive {
    fn archive_command(&self) -> String {
        let dir = shell_quote(&self.dir.to_string_lossy());
        format!("test ! -f {dir}/%f && cp %p {dir}/%f")
    }

    fn restore_command(&self) -> String {
        format!("cp {}/%f %p", shell_quote(&self.dir.to_string_lossy()))
    }

    fn stored_wal_files(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.dir)
            .expect("read archive dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn describe(&self) -> String {
        format!("cp into {}", self.dir.display())
    }
}

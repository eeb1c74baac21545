//! Opening a granted directory so that the plugin gets exactly the directory
//! the policy allowed, never more.
//!
//! A grant is checked as a path (inside the prefix's directory or an allowed
//! one), but a path names whatever its symlinks point at when it is opened,
//! and a plugin can write symlinks into its own directory: `esc -> ../..`
//! planted in one run makes `<dir>/esc` mean `/` in the next. So the part of
//! a grant below its allowed root is walked one component at a time with
//! `O_NOFOLLOW` (the same as `openat2` with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`, and available on every kernel): a symlink anywhere
//! below the root refuses the grant. The root itself is the operator's path
//! and may be a symlink (`/var/lib/walship -> /data/walship`); no plugin can
//! replace it, since it is never granted the root's parent.
//!
//! The opened directory is then handed to WASI as `/proc/self/fd/N`, which
//! names that very directory (not a path to look up again), and its real path
//! is checked against walship's own state (cache, plugin directories,
//! settings file, data directory), which no plugin may reach.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// A directory grant the policy accepted, with the root it must lie beneath.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedDir {
    /// The operator's directory (the prefix's path, or an allowed one).
    pub root: PathBuf,
    /// What the plugin asked for: `root` or a path below it. The plugin sees
    /// the directory under this name.
    pub path: PathBuf,
    pub writable: bool,
}

/// Something of walship's own that no grant may contain or lie inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnState {
    /// What it is, for the error: "the plugin cache", ...
    pub what: String,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrantDirError {
    #[error(
        "plugin asked for directory {path}, but {component} inside {root} is a symlink; a grant is never widened through a symlink (remove it, or name the real directory in the prefix or allowed_directories)"
    )]
    Symlink {
        path: String,
        root: String,
        component: String,
    },
    #[error("plugin asked for directory {path}, but {component} is not a directory")]
    NotADirectory { path: String, component: String },
    #[error(
        "plugin asked for directory {path} ({real}), which overlaps walship's own state: {what} {state}; use a directory of its own for the archive"
    )]
    OwnState {
        path: String,
        real: String,
        what: String,
        state: String,
    },
    #[error("cannot open directory {path} for the plugin: {why}")]
    Io { path: String, why: String },
}

/// An open grant: the directory itself, and its real path.
#[derive(Debug)]
pub struct OpenedDir {
    fd: OwnedFd,
    pub real_path: PathBuf,
}

impl OpenedDir {
    /// A path that opens exactly this directory again, whatever happens to
    /// the names leading to it.
    pub fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }
}

impl GrantedDir {
    /// Opens the grant beneath its root without following symlinks,
    /// creating missing directories below the root if `create`, and refuses
    /// it if it overlaps `own`.
    pub fn open(&self, create: bool, own: &[OwnState]) -> Result<OpenedDir, GrantDirError> {
        let shown = self.path.display().to_string();
        let io = |why: String| GrantDirError::Io {
            path: shown.clone(),
            why,
        };
        let below = self
            .path
            .strip_prefix(&self.root)
            .map_err(|_| io(format!("not inside {}", self.root.display())))?;
        if create && !self.root.exists() {
            // The operator's own path: created as `create_dir_all` would.
            std::fs::create_dir_all(&self.root)
                .map_err(|e| io(format!("cannot create {}: {e}", self.root.display())))?;
        }
        let mut fd = open_at(None, &self.root, libc::O_PATH | libc::O_DIRECTORY)
            .map_err(|e| io(e.to_string()))?;
        let mut walked = self.root.clone();
        for component in below.components() {
            let Component::Normal(name) = component else {
                return Err(io(format!("{component:?} is not a plain path component")));
            };
            walked.push(name);
            let flags = libc::O_PATH | libc::O_NOFOLLOW;
            let next = match open_at(Some(&fd), Path::new(name), flags) {
                Err(e) if create && e.kind() == std::io::ErrorKind::NotFound => {
                    make_dir_at(&fd, Path::new(name))
                        .map_err(|e| io(format!("cannot create {}: {e}", walked.display())))?;
                    open_at(Some(&fd), Path::new(name), flags)
                }
                other => other,
            }
            .map_err(|e| io(format!("{}: {e}", walked.display())))?;
            let kind = file_kind(&next).map_err(|e| io(e.to_string()))?;
            if kind == libc::S_IFLNK {
                return Err(GrantDirError::Symlink {
                    path: shown,
                    root: self.root.display().to_string(),
                    component: walked.display().to_string(),
                });
            }
            if kind != libc::S_IFDIR {
                return Err(GrantDirError::NotADirectory {
                    path: shown,
                    component: walked.display().to_string(),
                });
            }
            fd = next;
        }
        let opened = OpenedDir {
            real_path: std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                .map_err(|e| io(format!("cannot tell where it is (is /proc mounted?): {e}")))?,
            fd,
        };
        if let Some(state) = own
            .iter()
            .find(|s| overlaps(&opened.real_path, &real_path_of(&s.path)))
        {
            return Err(GrantDirError::OwnState {
                path: shown,
                real: opened.real_path.display().to_string(),
                what: state.what.clone(),
                state: state.path.display().to_string(),
            });
        }
        Ok(opened)
    }
}

/// Whether one path contains the other (or they are the same).
fn overlaps(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// `path` with symlinks resolved as far as it exists (the rest appended), so
/// that state reached through a symlink is still recognised.
fn real_path_of(path: &Path) -> PathBuf {
    let mut missing = Vec::new();
    let mut existing = path;
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            return missing.iter().rev().fold(real, |p, name| p.join(name));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                missing.push(name.to_os_string());
                existing = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

fn c_path(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))
}

/// `openat(dir or AT_FDCWD, path, flags | O_CLOEXEC)`.
fn open_at(dir: Option<&OwnedFd>, path: &Path, flags: libc::c_int) -> std::io::Result<OwnedFd> {
    let name = c_path(path)?;
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `name` is a valid C string; the returned descriptor is owned
    // by nobody else.
    let fd = unsafe { libc::openat(dirfd, name.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is valid.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn make_dir_at(dir: &OwnedFd, name: &Path) -> std::io::Result<()> {
    let name = c_path(name)?;
    // SAFETY: valid descriptor and C string.
    let rc = unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o777) };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        // Another process made it meanwhile: the walk opens it next.
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(e);
        }
    }
    Ok(())
}

/// The `S_IFMT` bits of an open descriptor (an `O_PATH|O_NOFOLLOW` one of a
/// symlink reports the symlink).
fn file_kind(fd: &OwnedFd) -> std::io::Result<libc::mode_t> {
    // SAFETY: `stat` is plain data, filled by fstat before it is read.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, valid out pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.st_mode & libc::S_IFMT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("walship-grant-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.canonicalize().unwrap()
    }

    fn grant(root: &Path, path: &Path) -> GrantedDir {
        GrantedDir {
            root: root.to_path_buf(),
            path: path.to_path_buf(),
            writable: true,
        }
    }

    #[test]
    fn a_symlink_below_the_root_refuses_the_grant() {
        let dir = temp("symlink");
        let root = dir.join("root");
        std::fs::create_dir_all(root.join("real")).unwrap();
        std::os::unix::fs::symlink("../..", root.join("esc")).unwrap();
        std::os::unix::fs::symlink("real", root.join("alias")).unwrap();

        let opened = grant(&root, &root.join("real")).open(false, &[]).unwrap();
        assert_eq!(opened.real_path, root.join("real"));
        for link in ["esc", "alias"] {
            let err = grant(&root, &root.join(link).join("x"))
                .open(true, &[])
                .unwrap_err();
            assert!(matches!(err, GrantDirError::Symlink { .. }), "{err}");
        }
        // Nothing was created through the link.
        assert!(!dir.parent().unwrap().join("x").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_root_itself_may_be_a_symlink_the_operator_made() {
        let dir = temp("root-link");
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::os::unix::fs::symlink(dir.join("data"), dir.join("archive")).unwrap();
        let root = dir.join("archive");
        let opened = grant(&root, &root.join("a/b")).open(true, &[]).unwrap();
        assert_eq!(opened.real_path, dir.join("data/a/b"));
        assert!(dir.join("data/a/b").is_dir());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn walships_own_state_is_never_granted() {
        let dir = temp("own");
        let cache = dir.join("cache");
        std::fs::create_dir_all(&cache).unwrap();
        // Reached through a symlink, the state is still recognised.
        std::os::unix::fs::symlink(
            &dir,
            dir.join("..")
                .join(format!("walship-grant-own-link-{}", std::process::id())),
        )
        .unwrap();
        let own = [OwnState {
            what: "the plugin cache".into(),
            path: cache.clone(),
        }];
        for path in [cache.clone(), cache.join("sub"), dir.clone()] {
            let err = grant(&dir, &path).open(true, &own).unwrap_err();
            assert!(err.to_string().contains("walship's own state"), "{err}");
        }
        let err = grant(&dir, &dir)
            .open(
                false,
                &[OwnState {
                    what: "the plugin cache".into(),
                    path: dir
                        .join("..")
                        .join(format!("walship-grant-own-link-{}", std::process::id()))
                        .join("cache/not-yet"),
                }],
            )
            .unwrap_err();
        assert!(matches!(err, GrantDirError::OwnState { .. }), "{err}");
        // A sibling is fine.
        std::fs::create_dir_all(dir.join("archive")).unwrap();
        assert!(grant(&dir, &dir.join("archive")).open(false, &own).is_ok());
        std::fs::remove_file(
            dir.join("..")
                .join(format!("walship-grant-own-link-{}", std::process::id())),
        )
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

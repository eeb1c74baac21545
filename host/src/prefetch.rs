//! Restore ahead of PostgreSQL: `wal-fetch` records the segment recovery
//! asked for (the cursor) and makes sure a detached `walship wal-prefetch`
//! runs; that prefetcher follows the cursor for as long as recovery keeps
//! asking, downloading the next segments of the same timeline into
//! `pg_wal/walship_prefetch/<archive>/`, each verified (the object's BLAKE3
//! and the segment's page header) before it is renamed into place.
//! PostgreSQL's next `wal-fetch` then only renames a file. One prefetcher
//! per archive, long-lived: connections and plugin instances are reused from
//! one segment to the next instead of a process starting per segment.
//!
//! What is never served: a partial file (downloads go to a temporary name
//! first, fsynced before the rename), a file whose bytes changed since they
//! were verified (the BLAKE3 recorded beside each file at download is
//! checked again when it is served), a file of another archive (each prefix
//! has its own directory), a file of another name (the exact name is looked
//! up, so another timeline's segment can never stand in), and anything
//! older than what recovery asked for last (cleared on every call).

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::wal_name::WalFileName;

/// The file holding the cursor.
const CURSOR: &str = ".cursor";
/// The prefetcher's log.
const LOG: &str = ".prefetcher.log";

pub struct PrefetchDir {
    dir: PathBuf,
}

impl PrefetchDir {
    /// The prefetch directory for `prefix` in the data directory `data_dir`,
    /// or under `root` (WALG_PREFETCH_DIR; relative to the data directory).
    pub fn new(data_dir: &Path, root: Option<&Path>, prefix: &str) -> Self {
        let key = blake3::hash(prefix.as_bytes()).to_hex();
        let root = match root {
            Some(r) => data_dir.join(r),
            None => data_dir.join("pg_wal/walship_prefetch"),
        };
        Self {
            dir: root.join(&key[..16]),
        }
    }

    fn path_of(&self, name: &WalFileName) -> PathBuf {
        self.dir.join(name.as_str())
    }

    /// Beside each prefetched file: the BLAKE3 of its bytes, as verified
    /// against the archive at download.
    fn checksum_path_of(&self, name: &WalFileName) -> PathBuf {
        self.dir.join(format!(".{}.blake3", name.as_str()))
    }

    /// Moves a prefetched `name` to `destination` (a rename within pg_wal),
    /// once its bytes hash to what was verified at download. `Ok(false)`
    /// when there is none, or it changed since (then it is removed).
    pub fn take(&self, name: &WalFileName, destination: &Path) -> std::io::Result<bool> {
        let path = self.path_of(name);
        let expected = match std::fs::read_to_string(self.checksum_path_of(name)) {
            Ok(hex) => hex,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.discard(name);
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        let mut hasher = blake3::Hasher::new();
        match File::open(&path) {
            Ok(mut f) => {
                std::io::copy(&mut f, &mut hasher)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
        if hasher.finalize().to_hex().as_str() != expected.trim() {
            self.discard(name);
            return Ok(false);
        }
        match std::fs::rename(&path, destination) {
            Ok(()) => {
                let _ = std::fs::remove_file(self.checksum_path_of(name));
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            // A WALG_PREFETCH_DIR on another filesystem than pg_wal.
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                let bytes = std::fs::read(self.path_of(name))?;
                if blake3::hash(&bytes).to_hex().as_str() != expected.trim() {
                    self.discard(name);
                    return Ok(false);
                }
                crate::file_write::write_into_place(destination, &bytes)?;
                self.discard(name);
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    /// The first bytes of a prefetched file, to check its page header
    /// before it is served.
    pub fn leading(&self, name: &WalFileName, len: usize) -> Option<Vec<u8>> {
        use std::io::Read;
        let mut buf = vec![0u8; len];
        let mut f = File::open(self.path_of(name)).ok()?;
        f.read_exact(&mut buf).ok()?;
        Some(buf)
    }

    /// Removes a prefetched file that failed its check.
    pub fn discard(&self, name: &WalFileName) {
        let _ = std::fs::remove_file(self.path_of(name));
        let _ = std::fs::remove_file(self.checksum_path_of(name));
    }

    /// Removes every finished file not in `keep` (older segments, other
    /// timelines), and temporary files a killed prefetcher left behind.
    pub fn clean(&self, keep: &[WalFileName]) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let keep_it = if name.starts_with('.') {
                // Temporary files and the lock: only stale ones go; the
                // checksums of kept files stay.
                name == ".lock"
                    || name == CURSOR
                    || name == LOG
                    || keep
                        .iter()
                        .any(|k| name == format!(".{}.blake3", k.as_str()))
                    || entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() < 600))
            } else {
                keep.iter().any(|k| k.as_str() == name)
            };
            if !keep_it {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// One prefetcher per archive at a time: an exclusive lock held while
    /// this value lives. `None` if another prefetcher holds it.
    pub fn lock(&self) -> std::io::Result<Option<File>> {
        std::fs::create_dir_all(&self.dir)?;
        let file = File::create(self.dir.join(".lock"))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Whether a prefetcher ever worked here.
    pub fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    /// Where the detached prefetcher logs.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(LOG)
    }

    /// Whether a prefetcher holds the lock now.
    pub fn running(&self) -> bool {
        let Ok(file) = File::open(self.dir.join(".lock")) else {
            return false;
        };
        matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
    }

    /// Records that recovery asked for `name`: the prefetcher moves its
    /// window to the segments after it.
    pub fn set_cursor(&self, name: &WalFileName) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        crate::file_write::write_into_place(&self.dir.join(CURSOR), name.as_str().as_bytes())
    }

    /// The segment recovery asked for last, if recorded.
    pub fn cursor(&self) -> Option<WalFileName> {
        let text = std::fs::read_to_string(self.dir.join(CURSOR)).ok()?;
        WalFileName::parse(text.trim()).ok()
    }

    /// Whether `name` is prefetched (complete: files appear by rename).
    pub fn has(&self, name: &WalFileName) -> bool {
        self.path_of(name).exists()
    }

    /// Stores verified bytes, and their BLAKE3 beside them: temporary name
    /// first, fsync, then a rename, so a reader sees the whole file or none
    /// and a file served after a crash is still the one verified.
    pub fn store(&self, name: &WalFileName, bytes: &[u8]) -> std::io::Result<()> {
        use crate::file_write::{Durability, write_into_place_with};
        std::fs::create_dir_all(&self.dir)?;
        let sum = blake3::hash(bytes).to_hex();
        write_into_place_with(
            &self.checksum_path_of(name),
            sum.as_bytes(),
            Durability::Synced,
        )?;
        write_into_place_with(&self.path_of(name), bytes, Durability::Synced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> WalFileName {
        WalFileName::parse(s).unwrap()
    }

    #[test]
    fn take_moves_only_the_exact_name_of_this_archive() {
        let data = std::env::temp_dir().join(format!("walship-prefetch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(data.join("pg_wal")).unwrap();
        let p = PrefetchDir::new(&data, None, "s3://b/one");
        let other = PrefetchDir::new(&data, None, "s3://b/two");
        let _lock = p.lock().unwrap().expect("first lock");
        assert!(p.lock().unwrap().is_none(), "one prefetcher at a time");
        let seg = name("000000010000000000000005");
        p.store(&seg, b"segment five").unwrap();
        let dest = data.join("pg_wal/RECOVERYXLOG");
        assert!(!other.take(&seg, &dest).unwrap(), "another archive's file");
        assert!(
            !p.take(&name("000000020000000000000005"), &dest).unwrap(),
            "another timeline"
        );
        assert!(p.take(&seg, &dest).unwrap());
        assert_eq!(std::fs::read(&dest).unwrap(), b"segment five");
        assert!(!p.take(&seg, &dest).unwrap(), "taken once");

        let (six, seven) = (
            name("000000010000000000000006"),
            name("000000010000000000000007"),
        );
        p.store(&six, b"6").unwrap();
        p.store(&seven, b"7").unwrap();
        p.clean(std::slice::from_ref(&seven));
        assert!(!p.has(&six) && p.has(&seven));
        assert!(
            p.take(&seven, &dest).unwrap(),
            "its checksum survived the clean"
        );
        std::fs::remove_dir_all(&data).unwrap();
    }

    #[test]
    fn a_prefetched_file_that_changed_since_its_download_is_not_served() {
        let data = std::env::temp_dir().join(format!("walship-prefetch-b3-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(data.join("pg_wal")).unwrap();
        let p = PrefetchDir::new(&data, None, "s3://b/p");
        let seg = name("000000010000000000000005");
        p.store(&seg, b"segment five, verified").unwrap();
        // A bit flips on disk (same length, same page header).
        let path = p.path_of(&seg);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let dest = data.join("pg_wal/RECOVERYXLOG");
        assert!(!p.take(&seg, &dest).unwrap());
        assert!(
            !dest.exists() && !p.has(&seg),
            "served nothing, and dropped it"
        );
        std::fs::remove_dir_all(&data).unwrap();
    }

    #[test]
    fn the_cursor_and_the_lock_survive_cleaning() {
        let data =
            std::env::temp_dir().join(format!("walship-prefetch-cursor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let p = PrefetchDir::new(&data, None, "s3://b/p");
        assert_eq!(p.cursor(), None);
        assert!(!p.running());
        p.set_cursor(&name("000000010000000000000009")).unwrap();
        let lock = p.lock().unwrap().expect("free");
        assert!(p.running());
        p.clean(&[]);
        assert_eq!(
            p.cursor().map(|n| n.as_str().to_string()).as_deref(),
            Some("000000010000000000000009")
        );
        drop(lock);
        assert!(!p.running());
        std::fs::remove_dir_all(&data).unwrap();
    }
}

//! Archiving ahead of PostgreSQL. PostgreSQL runs `archive_command` once per
//! file, one after the other, each a new process; when WAL comes faster than
//! that, pg_wal fills up. So `wal-push` starts a background pusher
//! (`walship wal-push-ahead`, one per pg_wal, detached) that uploads the
//! files PostgreSQL has marked ready (`archive_status/*.ready`), several at
//! once in one long-lived process, and leaves a marker for each one it
//! stored durably. When PostgreSQL then asks for one of those, `wal-push`
//! finds the marker, checks that the file still has the content the marker
//! names, and exits 0 at once.
//!
//! Safety: a marker is written only after the store confirmed the object
//! (durable per the plugin contract) and names the archive prefix and the
//! BLAKE3 of the file's bytes, so a marker can only ever shorten a push whose
//! exact content is already in that archive. Markers live in
//! `pg_wal/walship_status/`, which base backups leave out with the rest of
//! pg_wal. A lost marker costs one re-upload (the archive then reports
//! "already archived"); a crash between upload and marker loses nothing.
//!
//! Claims: whoever uploads a file (the pusher, or `wal-push` itself) holds
//! an advisory lock on `walship_status/.claim-<name>` meanwhile, so one file
//! is never uploaded twice at once, and a `wal-push` for a file the pusher is
//! uploading waits for it instead of starting over. The kernel drops the
//! lock when its holder dies, however it dies.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::object_format::ContentId;
use crate::wal_name::{WalFileKind, WalFileName};

/// The marker directory beside PostgreSQL's `archive_status`.
#[derive(Debug, Clone)]
pub struct StatusDir {
    wal_dir: PathBuf,
    dir: PathBuf,
}

/// What a marker records: where (the prefix, and the id of the archive
/// there, so a marker made before the archive was wiped and started again
/// vouches for nothing), and exactly what.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Marker {
    prefix: String,
    /// Empty for an archive made before archive ids.
    archive_id: String,
    content: ContentId,
}

impl Marker {
    fn to_text(&self) -> String {
        format!(
            "prefix {}\narchive {}\nlength {}\nblake3 {}\n",
            self.prefix,
            self.archive_id,
            self.content.length,
            hex(&self.content.blake3)
        )
    }

    fn parse(text: &str) -> Option<Self> {
        let mut prefix = None;
        let mut archive_id = None;
        let mut length = None;
        let mut blake3 = None;
        for line in text.lines() {
            let (k, v) = line.split_once(' ').unwrap_or((line, ""));
            match k {
                "prefix" => prefix = Some(v.to_string()),
                "archive" => archive_id = Some(v.to_string()),
                "length" => length = v.parse().ok(),
                "blake3" => blake3 = unhex32(v),
                _ => {}
            }
        }
        Some(Self {
            prefix: prefix?,
            // A marker of an older walship names no archive: it is trusted
            // for no archive at all.
            archive_id: archive_id?,
            content: ContentId {
                length: length?,
                blake3: blake3?,
            },
        })
    }
}

impl StatusDir {
    /// For WAL files in `wal_dir` (the directory of `%p`, normally `pg_wal`).
    pub fn new(wal_dir: &Path) -> Self {
        Self {
            wal_dir: wal_dir.to_path_buf(),
            dir: wal_dir.join("walship_status"),
        }
    }

    fn marker_path(&self, name: &WalFileName) -> PathBuf {
        self.dir.join(name.as_str())
    }

    /// Whether `file` (the WAL file `name`) was archived ahead to `prefix`
    /// with exactly its current content, into the archive whose id the
    /// identity cache holds now (`archive_id`: `None` when nothing is
    /// known, and then no marker counts).
    pub fn archived_ahead(
        &self,
        name: &WalFileName,
        prefix: &str,
        archive_id: Option<&str>,
        file: &Path,
    ) -> bool {
        let Some(archive_id) = archive_id else {
            return false;
        };
        let Ok(text) = std::fs::read_to_string(self.marker_path(name)) else {
            return false;
        };
        let Some(marker) = Marker::parse(&text) else {
            return false;
        };
        marker.prefix == prefix
            && marker.archive_id == archive_id
            && content_of(file).is_ok_and(|c| c == marker.content)
    }

    /// Records that `name` with `content` is durably stored at `prefix`, in
    /// the archive `archive_id` (empty for an archive without an id).
    /// Written whole or not at all (temp file, rename).
    pub fn record(
        &self,
        name: &WalFileName,
        prefix: &str,
        archive_id: &str,
        content: ContentId,
    ) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let marker = Marker {
            prefix: prefix.to_string(),
            archive_id: archive_id.to_string(),
            content,
        };
        crate::file_write::write_into_place(&self.marker_path(name), marker.to_text().as_bytes())
    }

    /// Every file PostgreSQL has marked ready, in the order its archiver
    /// takes them: timeline history files first, then oldest first.
    pub fn ready(&self) -> Vec<WalFileName> {
        let Ok(entries) = std::fs::read_dir(self.wal_dir.join("archive_status")) else {
            return Vec::new();
        };
        let mut ready: Vec<WalFileName> = entries
            .flatten()
            .filter_map(|e| {
                let file = e.file_name().into_string().ok()?;
                WalFileName::parse(file.strip_suffix(".ready")?).ok()
            })
            .collect();
        ready.sort_by_key(|n| {
            (
                !matches!(n.kind(), WalFileKind::History { .. }),
                n.as_str().to_string(),
            )
        });
        ready
    }

    /// Whether a marker says `name` is stored at `prefix`. Cheap: the
    /// content is checked when PostgreSQL asks for the file.
    pub fn marked(&self, name: &WalFileName, prefix: &str) -> bool {
        std::fs::read_to_string(self.marker_path(name))
            .ok()
            .and_then(|t| Marker::parse(&t))
            .is_some_and(|m| m.prefix == prefix)
    }

    /// Of the next `limit` ready files other than `except`, those with no
    /// marker for `prefix`: what a pusher would have to do next. Bounded,
    /// because PostgreSQL's every call asks (while no pusher runs): with a
    /// long backlog the pusher already stored, reading every marker on
    /// every call would cost the square of the backlog.
    pub fn unmarked(&self, prefix: &str, except: &WalFileName, limit: usize) -> Vec<WalFileName> {
        self.ready()
            .into_iter()
            .filter(|n| n != except)
            .take(limit)
            .filter(|n| !self.marked(n, prefix))
            .collect()
    }

    /// The claim on uploading `name`, if nobody holds it.
    pub fn try_claim(&self, name: &WalFileName) -> std::io::Result<Option<Claim>> {
        std::fs::create_dir_all(&self.dir)?;
        let file = File::create(self.dir.join(format!(".claim-{}", name.as_str())))?;
        Ok(match file.try_lock() {
            Ok(()) => Some(Claim(file)),
            Err(std::fs::TryLockError::WouldBlock) => None,
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        })
    }

    /// The claim on uploading `name`, once whoever holds it (a pusher in
    /// the middle of uploading it) lets go.
    pub async fn claim(&self, name: &WalFileName) -> std::io::Result<Claim> {
        loop {
            if let Some(claim) = self.try_claim(name)? {
                return Ok(claim);
            }
            tokio::time::sleep(CLAIM_POLL).await;
        }
    }

    /// The pusher's lock: `None` while another pusher runs. The holder's
    /// pid is written into it, for operators (and tests) to find.
    pub fn pusher_lock(&self) -> std::io::Result<Option<File>> {
        std::fs::create_dir_all(&self.dir)?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.pusher_lock_path())?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)?;
                writeln!(file, "{}", std::process::id())?;
                Ok(Some(file))
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Whether a pusher holds its lock now.
    pub fn pusher_running(&self) -> bool {
        let Ok(file) = File::open(self.pusher_lock_path()) else {
            return false;
        };
        matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
    }

    /// Where the detached pusher logs.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join(".pusher.log")
    }

    fn pusher_lock_path(&self) -> PathBuf {
        self.dir.join(".pusher.lock")
    }

    /// The path of a WAL file of this directory.
    pub fn wal_file(&self, name: &WalFileName) -> PathBuf {
        self.wal_dir.join(name.as_str())
    }

    /// Removes the marker of `name` (PostgreSQL is about to mark it done)
    /// and markers whose file PostgreSQL no longer lists as ready.
    pub fn sweep(&self, done: &WalFileName) {
        let _ = std::fs::remove_file(self.marker_path(done));
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let ready = |name: &str| {
            self.wal_dir
                .join("archive_status")
                .join(format!("{name}.ready"))
                .exists()
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let old = || {
                entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 3600))
            };
            let remove = if let Some(claimed) = name.strip_prefix(".claim-") {
                // Done files are never claimed again.
                !ready(claimed)
            } else if name.starts_with('.') {
                // A temp file a killed writer left; never the pusher's lock.
                name.contains(".walship-") && old()
            } else {
                !ready(&name)
            };
            if remove {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// How often a `wal-push` looks whether the pusher let go of its file.
const CLAIM_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// The right to upload one file; released when dropped (or when the process
/// dies).
#[derive(Debug)]
pub struct Claim(#[allow(dead_code)] File);

/// Length and BLAKE3 of a file's bytes, read in 1 MiB chunks.
pub fn content_of(path: &Path) -> std::io::Result<ContentId> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut length = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        length += n as u64;
    }
    Ok(ContentId {
        length,
        blake3: *hasher.finalize().as_bytes(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_dir(label: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("walship-ahead-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("archive_status")).unwrap();
        d
    }

    fn name(s: &str) -> WalFileName {
        WalFileName::parse(s).unwrap()
    }

    #[test]
    fn a_marker_only_vouches_for_the_same_prefix_and_bytes() {
        let dir = wal_dir("marker");
        let status = StatusDir::new(&dir);
        let seg = name("000000010000000000000002");
        let file = status.wal_file(&seg);
        std::fs::write(&file, b"segment bytes").unwrap();
        assert!(!status.archived_ahead(&seg, "s3://b/p", Some("id1"), &file));
        status
            .record(&seg, "s3://b/p", "id1", content_of(&file).unwrap())
            .unwrap();
        assert!(status.archived_ahead(&seg, "s3://b/p", Some("id1"), &file));
        assert!(!status.archived_ahead(&seg, "s3://b/other", Some("id1"), &file));
        // The archive at the prefix was wiped and started again (a new id),
        // or nothing is known of it: the marker vouches for nothing.
        assert!(!status.archived_ahead(&seg, "s3://b/p", Some("id2"), &file));
        assert!(!status.archived_ahead(&seg, "s3://b/p", None, &file));
        std::fs::write(&file, b"segment bytes, changed").unwrap();
        assert!(!status.archived_ahead(&seg, "s3://b/p", Some("id1"), &file));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ready_files_in_archiver_order_and_the_unmarked_ones() {
        let dir = wal_dir("ready");
        let status = StatusDir::new(&dir);
        for f in [
            "000000010000000000000003",
            "000000010000000000000001",
            "000000010000000000000002",
            "00000002.history",
            "000000010000000000000004",
        ] {
            std::fs::write(dir.join("archive_status").join(format!("{f}.ready")), b"").unwrap();
        }
        std::fs::write(
            dir.join("archive_status/000000010000000000000000.done"),
            b"",
        )
        .unwrap();
        let seg3 = name("000000010000000000000003");
        std::fs::write(status.wal_file(&seg3), b"x").unwrap();
        status
            .record(
                &seg3,
                "p",
                "id",
                content_of(&status.wal_file(&seg3)).unwrap(),
            )
            .unwrap();
        let names = |v: Vec<WalFileName>| -> Vec<String> {
            v.iter().map(|n| n.as_str().to_string()).collect()
        };
        assert_eq!(
            names(status.ready()),
            [
                "00000002.history",
                "000000010000000000000001",
                "000000010000000000000002",
                "000000010000000000000003",
                "000000010000000000000004"
            ]
        );
        assert_eq!(
            names(status.unmarked("p", &name("000000010000000000000001"), usize::MAX)),
            [
                "00000002.history",
                "000000010000000000000002",
                "000000010000000000000004"
            ]
        );
        assert!(status.marked(&seg3, "p") && !status.marked(&seg3, "other"));
        assert_eq!(status.unmarked("other", &seg3, usize::MAX).len(), 4);
        // Only the next ones are looked at: seg3 marked, seg4 beyond.
        assert_eq!(
            names(status.unmarked("p", &name("00000002.history"), 3)),
            ["000000010000000000000001", "000000010000000000000002"]
        );
        // Markers go once PostgreSQL no longer lists the file as ready.
        std::fs::remove_file(dir.join("archive_status/000000010000000000000003.ready")).unwrap();
        status.sweep(&name("000000010000000000000001"));
        assert!(!status.marker_path(&seg3).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn one_claim_per_file_and_one_pusher_released_when_dropped() {
        let dir = wal_dir("claims");
        let status = StatusDir::new(&dir);
        let seg = name("000000010000000000000005");
        let claim = status.try_claim(&seg).unwrap().expect("free");
        assert!(status.try_claim(&seg).unwrap().is_none(), "held");
        assert!(
            status
                .try_claim(&name("000000010000000000000006"))
                .unwrap()
                .is_some(),
            "another file is free"
        );
        drop(claim);
        assert!(status.try_claim(&seg).unwrap().is_some());

        assert!(!status.pusher_running());
        let lock = status.pusher_lock().unwrap().expect("no pusher yet");
        assert!(status.pusher_running());
        assert!(status.pusher_lock().unwrap().is_none());
        let pid = std::fs::read_to_string(status.pusher_lock_path()).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        drop(lock);
        assert!(!status.pusher_running());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sweeping_keeps_live_claims_and_the_pusher_lock() {
        let dir = wal_dir("sweep");
        let status = StatusDir::new(&dir);
        let (done, live) = (
            name("000000010000000000000007"),
            name("000000010000000000000008"),
        );
        std::fs::write(
            dir.join("archive_status/000000010000000000000008.ready"),
            b"",
        )
        .unwrap();
        drop(status.try_claim(&done).unwrap());
        drop(status.try_claim(&live).unwrap());
        drop(status.pusher_lock().unwrap());
        status.sweep(&done);
        let left: std::collections::BTreeSet<String> = std::fs::read_dir(&status.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            left,
            [".claim-000000010000000000000008", ".pusher.lock"]
                .map(String::from)
                .into()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Archiving ahead of PostgreSQL: `wal-push` for one segment also uploads the
//! next segments PostgreSQL has marked ready (`archive_status/*.ready`), in
//! parallel, and leaves a marker for each one it stored durably. When
//! PostgreSQL then asks for one of those, `wal-push` finds the marker, checks
//! that the file still has the content the marker names, and exits 0 at once.
//!
//! Safety: a marker is written only after the store confirmed the object
//! (durable per the plugin contract) and names the archive prefix and the
//! BLAKE3 of the file's bytes, so a marker can only ever shorten a push whose
//! exact content is already in that archive. Markers live in
//! `pg_wal/walship_status/`, which base backups leave out with the rest of
//! pg_wal. A lost marker costs one re-upload (the archive then reports
//! "already archived"); a crash between upload and marker loses nothing.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::object_format::ContentId;
use crate::wal_name::{WalFileKind, WalFileName};

/// The marker directory beside PostgreSQL's `archive_status`.
#[derive(Debug, Clone)]
pub struct StatusDir {
    wal_dir: PathBuf,
    dir: PathBuf,
}

/// What a marker records: where, and exactly what.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Marker {
    prefix: String,
    content: ContentId,
}

impl Marker {
    fn to_text(&self) -> String {
        format!(
            "prefix {}\nlength {}\nblake3 {}\n",
            self.prefix,
            self.content.length,
            hex(&self.content.blake3)
        )
    }

    fn parse(text: &str) -> Option<Self> {
        let mut prefix = None;
        let mut length = None;
        let mut blake3 = None;
        for line in text.lines() {
            let (k, v) = line.split_once(' ')?;
            match k {
                "prefix" => prefix = Some(v.to_string()),
                "length" => length = v.parse().ok(),
                "blake3" => blake3 = unhex32(v),
                _ => {}
            }
        }
        Some(Self {
            prefix: prefix?,
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
    /// with exactly its current content.
    pub fn archived_ahead(&self, name: &WalFileName, prefix: &str, file: &Path) -> bool {
        let Ok(text) = std::fs::read_to_string(self.marker_path(name)) else {
            return false;
        };
        let Some(marker) = Marker::parse(&text) else {
            return false;
        };
        marker.prefix == prefix && content_of(file).is_ok_and(|c| c == marker.content)
    }

    /// Records that `name` with `content` is durably stored at `prefix`.
    /// Written whole or not at all (temp file, rename).
    pub fn record(
        &self,
        name: &WalFileName,
        prefix: &str,
        content: ContentId,
    ) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let marker = Marker {
            prefix: prefix.to_string(),
            content,
        };
        crate::file_write::write_into_place(&self.marker_path(name), marker.to_text().as_bytes())
    }

    /// The next files PostgreSQL has marked ready, oldest first as its
    /// archiver takes them (timeline history files before segments), without
    /// `requested` and without those already archived ahead to `prefix`;
    /// at most `limit`.
    pub fn ready_files(
        &self,
        requested: &WalFileName,
        prefix: &str,
        limit: usize,
    ) -> Vec<WalFileName> {
        if limit == 0 {
            return Vec::new();
        }
        let Ok(entries) = std::fs::read_dir(self.wal_dir.join("archive_status")) else {
            return Vec::new();
        };
        let mut ready: Vec<WalFileName> = entries
            .flatten()
            .filter_map(|e| {
                let file = e.file_name().into_string().ok()?;
                WalFileName::parse(file.strip_suffix(".ready")?).ok()
            })
            .filter(|n| n != requested)
            .filter(|n| {
                // Cheap: a marker for this prefix means someone did it; the
                // content is checked when PostgreSQL asks for it.
                std::fs::read_to_string(self.marker_path(n))
                    .ok()
                    .and_then(|t| Marker::parse(&t))
                    .is_none_or(|m| m.prefix != prefix)
            })
            .collect();
        ready.sort_by_key(|n| {
            (
                !matches!(n.kind(), WalFileKind::History { .. }),
                n.as_str().to_string(),
            )
        });
        ready.truncate(limit);
        ready
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
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let ready = self
                .wal_dir
                .join("archive_status")
                .join(format!("{name}.ready"));
            let stale_tmp = name.starts_with('.')
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 3600));
            if (!name.starts_with('.') && !ready.exists()) || stale_tmp {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

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
        assert!(!status.archived_ahead(&seg, "s3://b/p", &file));
        status
            .record(&seg, "s3://b/p", content_of(&file).unwrap())
            .unwrap();
        assert!(status.archived_ahead(&seg, "s3://b/p", &file));
        assert!(!status.archived_ahead(&seg, "s3://b/other", &file));
        std::fs::write(&file, b"segment bytes, changed").unwrap();
        assert!(!status.archived_ahead(&seg, "s3://b/p", &file));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ready_files_in_archiver_order_without_the_requested_or_done_ones() {
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
            .record(&seg3, "p", content_of(&status.wal_file(&seg3)).unwrap())
            .unwrap();
        let got: Vec<String> = status
            .ready_files(&name("000000010000000000000001"), "p", 10)
            .iter()
            .map(|n| n.as_str().to_string())
            .collect();
        assert_eq!(
            got,
            [
                "00000002.history",
                "000000010000000000000002",
                "000000010000000000000004"
            ]
        );
        assert_eq!(status.ready_files(&seg3, "p", 1).len(), 1);
        // Markers go once PostgreSQL no longer lists the file as ready.
        std::fs::remove_file(dir.join("archive_status/000000010000000000000003.ready")).unwrap();
        status.sweep(&name("000000010000000000000001"));
        assert!(!status.marker_path(&seg3).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

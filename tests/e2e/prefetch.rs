//! `wal-fetch` restores ahead: after serving a segment it starts a detached
//! prefetcher that downloads the next segments, verified, into
//! `pg_wal/walship_prefetch/`; the next call is a rename. Only the exact name
//! is ever served, only after its header checks out against this cluster.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use walship_e2e::{Cluster, Outcome, Scratch, Walship, WalshipArchive};

struct Restore {
    _scratch: Scratch,
    cluster: Cluster,
    archive: WalshipArchive,
    segments: Vec<String>,
}

impl Restore {
    /// A stopped cluster whose finished segments are all archived.
    fn new(label: &str) -> Restore {
        let scratch = Scratch::new(label);
        let cluster = Cluster::with_finished_segments(&scratch, "pg", 8);
        let all = cluster.wal_segments();
        let segments = all[..all.len() - 1].to_vec();
        let archive = WalshipArchive::file(&scratch, "archive");
        let r = Restore {
            _scratch: scratch,
            cluster,
            archive,
            segments,
        };
        for s in &r.segments {
            r.walship()
                .env("WALSHIP_UPLOAD_CONCURRENCY", "1")
                .args(["wal-push", &format!("pg_wal/{s}")])
                .run()
                .ok();
        }
        r
    }

    fn walship(&self) -> Walship {
        self.archive
            .walship()
            .cwd(self.cluster.data_dir())
            .env("WALSHIP_LOG_LEVEL", "info")
    }

    fn fetch(&self, name: &str) -> Outcome {
        self.walship()
            .args(["wal-fetch", name, "pg_wal/RECOVERYXLOG"])
            .run()
    }

    /// The prefetch directory of this archive (one per prefix).
    fn prefetch_dir(&self) -> Option<PathBuf> {
        let root = self.cluster.data_dir().join("pg_wal/walship_prefetch");
        fs::read_dir(root).ok()?.flatten().map(|e| e.path()).next()
    }

    fn prefetched(&self) -> Vec<String> {
        let Some(dir) = self.prefetch_dir() else {
            return Vec::new();
        };
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    #[track_caller]
    fn wait_prefetched(&self, want: &[String]) {
        let start = Instant::now();
        while self.prefetched() != want {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "prefetched {:?}, want {want:?}",
                self.prefetched()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[track_caller]
    fn assert_restored(&self, name: &str) {
        let restored = fs::read(self.cluster.data_dir().join("pg_wal/RECOVERYXLOG")).unwrap();
        let original = fs::read(self.cluster.data_dir().join("pg_wal").join(name)).unwrap();
        assert!(restored == original, "{name}: restored bytes differ");
    }
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 0xff;
    fs::write(path, bytes).unwrap();
}

#[test]
fn the_next_segments_are_prefetched_and_served_by_rename() {
    let r = Restore::new("prefetch");
    let s = &r.segments;
    let first = r.fetch(&s[0]).ok();
    assert!(!first.stderr.contains("prefetched"), "{first}");
    r.assert_restored(&s[0]);
    // The default window: the next four.
    r.wait_prefetched(&s[1..5]);

    let second = r.fetch(&s[1]).ok();
    assert!(second.stderr.contains("(prefetched)"), "{second}");
    r.assert_restored(&s[1]);
    // Served means moved; the window moves on.
    r.wait_prefetched(&s[2..6]);

    // A prefetched file whose header does not name this segment of this
    // cluster (page address at 8, system identifier at 24) is thrown away,
    // and the segment comes from the archive instead.
    let dir = r.prefetch_dir().unwrap();
    flip_byte(&dir.join(&s[2]), 8);
    flip_byte(&dir.join(&s[3]), 24);
    let third = r.fetch(&s[2]).ok();
    assert!(!third.stderr.contains("(prefetched)"), "{third}");
    r.assert_restored(&s[2]);
    // (the fetch of s[2] started a new prefetcher; it keeps the bad s[3]
    // only until a fetch checks it)
    let fourth = r.fetch(&s[3]).ok();
    assert!(!fourth.stderr.contains("(prefetched)"), "{fourth}");
    r.assert_restored(&s[3]);

    // Another timeline's segment of the same number is never served from
    // the prefetched one: it is not in the archive.
    let other_timeline = format!("00000002{}", &s[4][8..]);
    let missing = r.fetch(&other_timeline);
    assert_eq!(missing.exit_code(), 1, "{missing}");
    assert!(missing.stderr.contains("not in the archive"), "{missing}");

    // With prefetching off, nothing new is prefetched.
    let off = r
        .walship()
        .env("WALSHIP_DOWNLOAD_CONCURRENCY", "0")
        .args(["wal-fetch", &s[6], "pg_wal/RECOVERYXLOG"])
        .run()
        .ok();
    assert!(!off.stderr.contains("prefetched"), "{off}");
}

//! walship run by hand on single WAL files, as the backend suites do around
//! the PITR scenario: push one segment, fetch it back, and what a refusal
//! must look like.

use std::fs;
use std::path::Path;

use crate::archive::WalshipArchive;
use crate::pg::Cluster;
use crate::process::Outcome;
use crate::scratch::Scratch;

#[track_caller]
pub fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// `wal-push pg_wal/<name>` from the cluster's data directory.
pub fn push(archive: &WalshipArchive, cluster: &Cluster, name: &str) -> Outcome {
    archive
        .walship()
        .cwd(cluster.data_dir())
        .args(["wal-push", &format!("pg_wal/{name}")])
        .run()
}

/// `wal-fetch <name>` into a new file of `scratch`; returns its bytes.
#[track_caller]
pub fn fetch(
    archive: &WalshipArchive,
    cluster: &Cluster,
    scratch: &Scratch,
    name: &str,
) -> Vec<u8> {
    let dir = scratch.postgres_dir("fetched", 0o700);
    let dest = dir.join(name);
    let _ = fs::remove_file(&dest);
    archive
        .walship()
        .cwd(cluster.data_dir())
        .arg("wal-fetch")
        .arg(name)
        .arg(&dest)
        .run()
        .ok();
    let bytes = read(&dest);
    let _ = fs::remove_file(&dest);
    bytes
}

/// The bytes of `pg_wal/<name>` in the cluster's data directory.
#[track_caller]
pub fn segment_bytes(cluster: &Cluster, name: &str) -> Vec<u8> {
    read(&cluster.data_dir().join("pg_wal").join(name))
}

/// A refused command: exit 1..=125 (a code PostgreSQL's archiver survives)
/// and exactly one line on stderr that mentions every one of `words`.
#[track_caller]
pub fn assert_refused_with_one_line(out: &Outcome, words: &[&str]) {
    let code = out.exit_code();
    assert!(
        (1..=125).contains(&code),
        "expected a refusal (exit 1..=125):\n{out}"
    );
    assert_eq!(
        out.stderr_lines().len(),
        1,
        "expected a one-line reason on stderr:\n{out}"
    );
    let stderr = out.stderr.to_lowercase();
    for word in words {
        assert!(
            stderr.contains(&word.to_lowercase()),
            "expected stderr to mention {word:?}:\n{out}"
        );
    }
}

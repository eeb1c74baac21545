//! Continuous archiving and point-in-time recovery through walship, file
//! backend. The scenario itself is `walship_e2e::pitr`, shared with the
//! suites of the other backends; this file adds what can be checked on disk.

use std::collections::BTreeSet;
use std::fs;

use walship_e2e::pitr::{
    BaseBackups, MIN_SEGMENTS, PitrReport, archive_and_recover, archive_and_recover_with,
};
use walship_e2e::walship::{OBJECT_HEADER_LEN, OBJECT_MAGIC};
use walship_e2e::{Scratch, WalshipArchive};

/// The objects really are in the directory, in walship's layout, and
/// `walship st ls` lists exactly them.
fn check_file_layout(archive: &WalshipArchive, report: &PitrReport) {
    let dir = archive.local_dir().expect("file archive");
    assert!(
        dir.join("identity.toml").is_file(),
        "no identity.toml in {}",
        dir.display()
    );

    let on_disk: BTreeSet<String> = fs::read_dir(dir.join("wal"))
        .expect("the archive has a wal/ directory")
        .flatten()
        .map(|e| format!("wal/{}", e.file_name().to_string_lossy()))
        .collect();
    let listed: BTreeSet<String> = archive.list("wal/").into_iter().collect();
    assert_eq!(
        listed, on_disk,
        "`walship st ls wal/` disagrees with the directory"
    );
    assert!(
        on_disk.len() as u64 >= MIN_SEGMENTS,
        "{} objects",
        on_disk.len()
    );

    for name in &report.switched {
        let path = dir.join("wal").join(name);
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            bytes.len() > OBJECT_HEADER_LEN && bytes.starts_with(OBJECT_MAGIC),
            "{} is not a walship object ({} bytes)",
            path.display(),
            bytes.len()
        );
    }
}

#[test]
fn file_backend() {
    let scratch = Scratch::new("pitr-file");
    let archive = WalshipArchive::file(&scratch, "archive");
    // The base backup too goes through walship (backup-push, backup-fetch),
    // as in `cargo xtask demo`.
    let report = archive_and_recover_with(&scratch, &archive, BaseBackups::Walship(&archive));
    check_file_layout(&archive, &report);
    println!(
        "archived {} files up to {}; recovered to {} ({:?}) and to the end ({:?})",
        report.archiver.archived_count,
        report.last_segment,
        report.target_time,
        report.at_target,
        report.at_end
    );
}

#[test]
fn file_backend_uncompressed() {
    let scratch = Scratch::new("pitr-none");
    let archive =
        WalshipArchive::file(&scratch, "archive").with_env("WALG_COMPRESSION_METHOD", "none");
    let report = archive_and_recover(&scratch, &archive);
    check_file_layout(&archive, &report);
    // Uncompressed, each segment object is the header plus the 16 MiB segment.
    for name in &report.switched {
        let size = fs::metadata(archive.object_path(&format!("wal/{name}")))
            .expect("object")
            .len();
        assert_eq!(
            size,
            16 * 1024 * 1024 + OBJECT_HEADER_LEN as u64,
            "wal/{name}"
        );
    }
}

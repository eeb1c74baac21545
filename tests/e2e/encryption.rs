//! Client-side encryption (issue 18), end to end with a real PostgreSQL:
//!
//! - PITR and a base-backup round trip (backup-push, backup-fetch) with a
//!   key set, on the file backend and on S3 (s3s-fs);
//! - no plaintext reaches the storage: rows holding a marker string go into
//!   WAL and a base backup of an archive written with compression off; the
//!   stored files hold the marker zero times (and an unencrypted archive of
//!   the same WAL holds it, so the search can find it);
//! - a missing key, a wrong key, a flipped byte, a truncated object and a
//!   plaintext object planted in an encrypted archive are each refused with
//!   one line: wal-push exit 1 with nothing stored, wal-fetch exit 126 (1 on
//!   a standby) with nothing at %p, never "not found";
//! - key rotation: WAL and a base backup under the old key, more WAL under
//!   the new one, and a restore that needs both.
//!
//! Keys are files (mode 600, owned by postgres), given as WAL-G does
//! (`WALG_LIBSODIUM_KEY_PATH`, `WALG_LIBSODIUM_KEY_TRANSFORM=hex`).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use walship_e2e::by_hand::{assert_refused_with_one_line, push, read, segment_bytes};
use walship_e2e::emulators::S3sFs;
use walship_e2e::pitr::{BaseBackups, archive_and_recover_with};
use walship_e2e::scratch::set_mode;
use walship_e2e::walship::OBJECT_HEADER_LEN;
use walship_e2e::{Cluster, Outcome, Scratch, WalshipArchive, random_bytes};

const LONG: Duration = Duration::from_secs(600);

/// A random key in a file only `postgres` may read; returns its path.
fn key_file(scratch: &Scratch, name: &str, seed: u64) -> PathBuf {
    let hex: String = random_bytes(32, seed)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = scratch.postgres_file(name, format!("{hex}\n").as_bytes());
    set_mode(&path, 0o600);
    path
}

fn with_key(archive: WalshipArchive, key: &Path) -> WalshipArchive {
    archive
        .with_env("WALG_LIBSODIUM_KEY_PATH", key.display().to_string())
        .with_env("WALG_LIBSODIUM_KEY_TRANSFORM", "hex")
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if read(&path).windows(needle.len()).any(|w| w == needle) {
                hits.push(path);
            }
        }
    }
    hits
}

/// identity.toml says the archive is encrypted and names the key by its
/// fingerprint, never by its text.
#[track_caller]
fn check_identity(identity: &Path, key: &Path) {
    let text = fs::read_to_string(identity).expect("identity.toml");
    assert!(
        text.contains("encryption = \"xchacha20-poly1305-stream\""),
        "{text}"
    );
    assert!(text.contains("key_fingerprint = \""), "{text}");
    let key_text = fs::read_to_string(key).expect("key");
    assert!(
        !text.contains(key_text.trim()),
        "the key is in identity.toml"
    );
}

/// Byte 13 of a walship object's header: 1 when encrypted.
#[track_caller]
fn assert_encrypted_object(path: &Path) {
    let bytes = read(path);
    assert!(
        bytes.len() > OBJECT_HEADER_LEN && bytes[13] == 1,
        "{} is not an encrypted walship object",
        path.display()
    );
}

#[test]
fn file_pitr_and_base_backup_with_a_key() {
    let scratch = Scratch::new("enc-pitr-file");
    let key = key_file(&scratch, "key", 1);
    let archive = with_key(WalshipArchive::file(&scratch, "archive"), &key);
    let report = archive_and_recover_with(&scratch, &archive, BaseBackups::Walship(&archive));
    check_identity(&archive.object_path("identity.toml"), &key);
    for name in &report.switched {
        assert_encrypted_object(&archive.object_path(&format!("wal/{name}")));
    }
    let backups = archive.list("backups/");
    let record = backups
        .iter()
        .find(|k| k.ends_with(".json"))
        .expect("a backup record");
    assert_encrypted_object(&archive.object_path(record));
    println!(
        "encrypted: archived {} files, recovered to {} ({:?}) and to the end ({:?})",
        report.archiver.archived_count, report.target_time, report.at_target, report.at_end
    );
}

#[test]
fn s3_pitr_and_base_backup_with_a_key() {
    let scratch = Scratch::new("enc-pitr-s3");
    let s3 = S3sFs::start(&scratch);
    let key = key_file(&scratch, "key", 2);
    let archive = with_key(s3.archive(&scratch, "enc/cluster-a"), &key);
    let report = archive_and_recover_with(&scratch, &archive, BaseBackups::Walship(&archive));
    check_identity(&s3.object_file("enc/cluster-a/identity.toml"), &key);
    for name in &report.switched {
        assert_encrypted_object(&s3.object_file(&format!("enc/cluster-a/wal/{name}")));
    }
    assert_eq!(s3.upload_leftovers(), Vec::<String>::new());
}

/// Rows holding `marker` in a table, a base backup of it, more such rows in
/// WAL; returns the segment that holds the later rows (kept in pg_wal).
fn write_marker(scratch: &Scratch, archive: &WalshipArchive, marker: &str) -> (Cluster, String) {
    let mut cluster = Cluster::init(scratch, "pg");
    cluster.set("wal_keep_size", "1GB");
    cluster.archive_to(archive, "on");
    cluster.start();
    let rows = |batch: i32| {
        format!(
            "insert into secrets select g, {batch}, '{marker}' || g from generate_series(1, 500) g"
        )
    };
    cluster.psql("create table secrets (id int, batch int, note text)");
    cluster.psql(&rows(1));
    cluster.psql("checkpoint");
    let out = archive
        .walship()
        .timeout(LONG)
        .arg("backup-push")
        .arg(cluster.data_dir())
        .run();
    assert!(out.success(), "backup-push failed:\n{out}");
    cluster.psql(&rows(2));
    let segment = cluster.switch_wal();
    let stats = cluster.wait_archived(&segment, LONG);
    assert_eq!(stats.failed_count, 0, "{stats:?}");
    (cluster, segment)
}

/// The stored files of an archive written with compression off hold the
/// marker nowhere: not in WAL, not in the base backup's volumes, not in
/// its record (which carries backup_label).
#[test]
fn no_plaintext_reaches_the_storage() {
    let scratch = Scratch::new("enc-marker");
    let marker = "walship-plaintext-marker-3b9f";
    let key = key_file(&scratch, "key", 3);
    let file = with_key(WalshipArchive::file(&scratch, "archive"), &key)
        .with_env("WALG_COMPRESSION_METHOD", "none");
    let (cluster, segment) = write_marker(&scratch, &file, marker);
    let dir = file.local_dir().expect("file archive").to_path_buf();
    assert!(!file.list("backups/").is_empty(), "no backup stored");
    assert_eq!(
        files_containing(&dir, marker.as_bytes()),
        Vec::<PathBuf>::new(),
        "plaintext in the encrypted file archive"
    );
    // The control: the same segment in an archive without a key holds it.
    let plain = WalshipArchive::file(&scratch, "plain").with_env("WALG_COMPRESSION_METHOD", "none");
    push(&plain, &cluster, &segment).ok();
    let plain_dir = plain.local_dir().expect("file archive");
    assert!(
        !files_containing(plain_dir, marker.as_bytes()).is_empty(),
        "the marker is not in {segment} even unencrypted: the search proves nothing"
    );
    drop(cluster);

    let s3_scratch = Scratch::new("enc-marker-s3");
    let s3 = S3sFs::start(&s3_scratch);
    let key = key_file(&s3_scratch, "key", 4);
    let on_s3 = with_key(s3.archive(&s3_scratch, "marker"), &key)
        .with_env("WALG_COMPRESSION_METHOD", "none");
    let (_cluster, _) = write_marker(&s3_scratch, &on_s3, marker);
    assert!(!s3.stored_keys("marker/backups").is_empty(), "no backup");
    assert_eq!(
        files_containing(s3.data_dir(), marker.as_bytes()),
        Vec::<PathBuf>::new(),
        "plaintext in s3s-fs's files"
    );
}

/// `wal-fetch <name> <dest>` from the cluster's data directory.
fn fetch_into(archive: &WalshipArchive, cluster: &Cluster, name: &str, dest: &Path) -> Outcome {
    let _ = fs::remove_file(dest);
    archive
        .walship()
        .cwd(cluster.data_dir())
        .arg("wal-fetch")
        .arg(name)
        .arg(dest)
        .run()
}

/// How a refused fetch may get there.
#[derive(PartialEq)]
enum Reads {
    /// At once: a key problem is no accident of transport.
    Once,
    /// After re-reads (a warning line each): damage may be in transit.
    Retried,
}

/// A real error of wal-fetch outside standby mode: exit 126, one line
/// saying why (after a warning line per re-read, for damage), never "not
/// in the archive", nothing at %p.
#[track_caller]
fn assert_fetch_stops_recovery(out: &Outcome, dest: &Path, reads: Reads, words: &[&str]) {
    assert_eq!(out.exit_code(), 126, "{out}");
    let lines = out.stderr_lines();
    let (last, before) = lines.split_last().expect("a reason on stderr");
    assert!(last.contains("wal-fetch"), "{out}");
    match reads {
        Reads::Once => assert!(before.is_empty(), "one line, no re-reads:\n{out}"),
        Reads::Retried => assert!(
            before
                .iter()
                .all(|l| l.contains("warning") && l.ends_with("reading it again")),
            "{out}"
        ),
    }
    assert!(!out.stderr.contains("not in the archive"), "{out}");
    assert!(!dest.exists(), "something was written to %p:\n{out}");
    for w in words {
        assert!(out.stderr.contains(w), "expected {w:?}:\n{out}");
    }
}

#[test]
fn a_wrong_or_missing_key_and_damage_are_refused() {
    let scratch = Scratch::new("enc-refusals");
    let cluster = Cluster::with_finished_segments(&scratch, "pg", 3);
    let segments = cluster.wal_segments();
    let (first, second) = (&segments[0], &segments[1]);
    let k1 = key_file(&scratch, "k1", 11);
    let k2 = key_file(&scratch, "k2", 12);
    let bare = WalshipArchive::file(&scratch, "archive");
    let archive = with_key(bare.clone(), &k1);
    push(&archive, &cluster, first).ok();
    check_identity(&archive.object_path("identity.toml"), &k1);
    let stored = |name: &str| archive.object_path(&format!("wal/{name}"));

    // Pushes refused before anything is stored.
    let out = push(&bare, &cluster, second);
    assert_refused_with_one_line(&out, &["encrypted", "no encryption key is set"]);
    assert!(!stored(second).exists());
    let other = with_key(bare.clone(), &k2);
    let out = push(&other, &cluster, second);
    assert_refused_with_one_line(&out, &["encrypted under key", "nothing was stored"]);
    assert!(!stored(second).exists());
    let pgp = archive.clone().with_env("WALG_PGP_KEY", "-----BEGIN PGP");
    assert_refused_with_one_line(&push(&pgp, &cluster, second), &["WALG_LIBSODIUM_KEY"]);
    // A key file others may read is refused, saying why.
    let exposed = key_file(&scratch, "exposed", 13);
    set_mode(&exposed, 0o644);
    let out = push(&with_key(bare.clone(), &exposed), &cluster, second);
    assert_refused_with_one_line(&out, &["chmod 600"]);
    assert!(
        !out.stderr
            .contains(fs::read_to_string(&exposed).unwrap().trim())
    );

    // The right key fetches the very bytes.
    let dest_dir = scratch.postgres_dir("fetched", 0o700);
    let dest = dest_dir.join(first);
    fetch_into(&archive, &cluster, first, &dest).ok();
    assert!(
        read(&dest) == segment_bytes(&cluster, first),
        "content differs"
    );

    // No key, another key: stop recovery at once (no re-reads as if the
    // object were damaged in transit).
    let out = fetch_into(&bare, &cluster, first, &dest);
    assert_fetch_stops_recovery(&out, &dest, Reads::Once, &["no encryption key is set"]);
    let out = fetch_into(&other, &cluster, first, &dest);
    assert_fetch_stops_recovery(&out, &dest, Reads::Once, &["encrypted under key"]);
    assert!(out.elapsed < Duration::from_secs(5), "{out}");
    // A standby retries instead (exit 1), still with nothing at %p.
    cluster.touch("standby.signal");
    let out = fetch_into(&other, &cluster, first, &dest);
    assert_eq!(out.exit_code(), 1, "{out}");
    assert!(!dest.exists());
    cluster.remove("standby.signal");

    // A flipped byte in the ciphertext, then a truncated object.
    let original = read(&stored(first));
    let mut flipped = original.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    fs::write(stored(first), &flipped).unwrap();
    let out = fetch_into(&archive, &cluster, first, &dest);
    assert_fetch_stops_recovery(&out, &dest, Reads::Retried, &["fails authentication"]);
    fs::write(stored(first), &original[..original.len() - 4096]).unwrap();
    let out = fetch_into(&archive, &cluster, first, &dest);
    assert_fetch_stops_recovery(&out, &dest, Reads::Retried, &["truncated"]);

    // A plaintext object planted in the encrypted archive (anyone who can
    // write to the storage could): refused, not restored.
    let plain = WalshipArchive::file(&scratch, "plain");
    push(&plain, &cluster, first).ok();
    fs::copy(plain.object_path(&format!("wal/{first}")), stored(first)).unwrap();
    let out = fetch_into(&archive, &cluster, first, &dest);
    assert_fetch_stops_recovery(&out, &dest, Reads::Once, &["not encrypted"]);
}

/// WAL and a base backup under the old key, then a rotation (new key, old
/// key kept for decryption), more WAL under the new key; a restore needs
/// both, and wal-verify says which key each segment needs.
#[test]
fn key_rotation_keeps_old_objects_restorable() {
    let scratch = Scratch::new("enc-rotation");
    let old = key_file(&scratch, "old", 21);
    let new = key_file(&scratch, "new", 22);
    let first = with_key(WalshipArchive::file(&scratch, "archive"), &old);
    let rotated = with_key(WalshipArchive::file(&scratch, "archive"), &new)
        .with_env("WALSHIP_DECRYPTION_KEY_PATHS", old.display().to_string());
    let new_only = with_key(WalshipArchive::file(&scratch, "archive"), &new);

    let mut primary = Cluster::init(&scratch, "primary");
    primary.archive_to(&first, "on");
    primary.start();
    primary.psql("create table t (batch int)");
    primary.psql("insert into t select 1 from generate_series(1, 1000)");
    let out = first
        .walship()
        .timeout(LONG)
        .arg("backup-push")
        .arg(primary.data_dir())
        .run();
    assert!(out.success(), "backup-push failed:\n{out}");
    let under_old = primary.switch_wal();
    primary.wait_archived(&under_old, LONG);

    // Rotate: new WAL under the new key.
    primary.archive_to(&rotated, "on");
    primary.stop();
    primary.start();
    primary.psql("insert into t select 2 from generate_series(1, 500)");
    let under_new = primary.switch_wal();
    let stats = primary.wait_archived(&under_new, LONG);
    assert_eq!(stats.failed_count, 0, "{stats:?}");
    primary.stop();

    // The fingerprint in each object's key slot (docs/archive-format.md:
    // header 64 bytes, envelope fixed part 28, slot head 3).
    let slot_key = |name: &str| read(&first.object_path(&format!("wal/{name}")))[95..103].to_vec();
    assert_ne!(
        slot_key(&under_old),
        slot_key(&under_new),
        "the rotation did not change the key new objects are encrypted under"
    );

    // Without the old key, what it encrypted cannot be read: refused, and
    // the message names the key needed.
    let dest_dir = scratch.postgres_dir("fetched", 0o700);
    let dest = dest_dir.join(&under_old);
    let out = fetch_into(&new_only, &primary, &under_old, &dest);
    assert_fetch_stops_recovery(&out, &dest, Reads::Once, &["encrypted under key"]);

    // With both keys: wal-verify names two keys, and a restore works.
    let out = rotated
        .walship()
        .timeout(LONG)
        .args(["wal-verify", "integrity"])
        .run();
    assert!(out.success(), "wal-verify failed:\n{out}");
    let key_lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("encrypted under key"))
        .collect();
    assert_eq!(key_lines.len(), 2, "one line per key:\n{out}");

    let base = scratch.postgres_dir("base", 0o700);
    let out = rotated
        .walship()
        .timeout(LONG)
        .arg("backup-fetch")
        .arg(&base)
        .arg("LATEST")
        .run();
    assert!(out.success(), "backup-fetch failed:\n{out}");
    let mut restored = Cluster::from_backup(&scratch, "restored", &base);
    restored.restore_from(&rotated);
    restored.touch("recovery.signal");
    restored.start();
    restored.wait_out_of_recovery();
    assert_eq!(
        restored.psql(
            "select count(*) filter (where batch = 1), count(*) filter (where batch = 2) from t"
        ),
        "1000|500"
    );
    restored.stop();
}

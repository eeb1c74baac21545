//! `walship check` against a correct set-up and against each
//! misconfiguration it names: archive_command into another prefix,
//! wal_level minimal (archiving off), wrong credentials, unreachable
//! storage, a prefix holding a WAL-G archive. Run as `postgres` from the
//! data directory, as an operator would.

use std::time::Duration;

use walship_e2e::emulators::S3sFs;
use walship_e2e::pg::free_port;
use walship_e2e::{Cluster, Outcome, Scratch, WalshipArchive};

fn check(archive: &WalshipArchive, cluster: &Cluster, json: bool) -> Outcome {
    let mut w = archive
        .walship()
        .cwd(cluster.data_dir())
        .env("PGUSER", "postgres")
        .timeout(Duration::from_secs(300))
        .arg("check");
    if json {
        w = w.arg("--json");
    }
    w.run()
}

/// The line of check `name`, which must exist.
#[track_caller]
fn line<'a>(out: &'a Outcome, name: &str) -> &'a str {
    out.stdout
        .lines()
        .find(|l| {
            l[l.char_indices().nth(2).map_or(0, |(i, _)| i)..].starts_with(&format!("{name}:"))
        })
        .unwrap_or_else(|| panic!("no {name} line:\n{out}"))
}

#[track_caller]
fn failed_with(out: &Outcome, name: &str, words: &str) {
    assert_eq!(out.exit_code(), 1, "{out}");
    let l = line(out, name);
    assert!(l.starts_with('✗'), "{name} should fail:\n{out}");
    assert!(
        l.to_lowercase().contains(&words.to_lowercase()),
        "{name} should say {words:?}:\n{out}"
    );
}

#[test]
fn a_correct_set_up_passes_every_check_and_says_what_it_found() {
    let scratch = Scratch::new("check-ok");
    let archive = WalshipArchive::file(&scratch, "archive");
    let mut c = Cluster::init(&scratch, "pg");
    c.archive_to(&archive, "on");
    c.start();
    let out = check(&archive, &c, false);
    println!("{out}");
    assert!(out.success(), "{out}");
    for name in [
        "settings",
        "plugin",
        "sandbox",
        "storage",
        "missing keys",
        "archive",
        "wal_level",
        "archive_mode",
        "archive_command",
        "archive_timeout",
        "restore_command",
        "round trip",
    ] {
        assert!(line(&out, name).starts_with('✓'), "{name}:\n{out}");
    }
    assert!(
        line(&out, "round trip").contains("reached the archive"),
        "{out}"
    );
    // The probe left nothing; the archive exists now (the round trip).
    let keys = archive.list("");
    assert!(!keys.iter().any(|k| k.starts_with("check/")), "{keys:?}");
    assert!(keys.contains(&"identity.toml".to_string()), "{keys:?}");
    let json = check(&archive, &c, true);
    assert!(json.success(), "{json}");
    assert!(
        json.stdout.contains("\"ok\": true") && json.stdout.contains("\"check\": \"round trip\""),
        "{json}"
    );
    c.stop();
}

#[test]
fn archive_command_into_another_prefix_fails_the_round_trip() {
    let scratch = Scratch::new("check-prefix");
    let archive = WalshipArchive::file(&scratch, "archive");
    let elsewhere = WalshipArchive::file(&scratch, "elsewhere");
    let mut c = Cluster::init(&scratch, "pg");
    c.archive_to(&elsewhere, "on");
    c.start();
    let out = check(&archive, &c, false);
    println!("{out}");
    // The prefix is named in archive_command's environment: said at once;
    // and the switched segment never arrives here.
    failed_with(&out, "archive_command", "archives to");
    c.stop();
}

#[test]
fn archiving_off_and_wal_level_minimal_are_named() {
    let scratch = Scratch::new("check-minimal");
    let archive = WalshipArchive::file(&scratch, "archive");
    let mut c = Cluster::init(&scratch, "pg");
    c.set("wal_level", "minimal").set("max_wal_senders", "0");
    c.start();
    let out = check(&archive, &c, false);
    println!("{out}");
    failed_with(&out, "wal_level", "minimal");
    failed_with(&out, "archive_mode", "nothing is archived");
    failed_with(&out, "archive_command", "not walship's");
    c.stop();
}

#[test]
fn a_prefix_holding_a_walg_archive_is_named() {
    let scratch = Scratch::new("check-walg");
    let archive = WalshipArchive::file(&scratch, "archive");
    let dir = archive.local_dir().unwrap().join("wal_005");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("000000010000000000000001.lz4"), b"x").unwrap();
    walship_e2e::process::chown_postgres(&dir);
    walship_e2e::process::chown_postgres(&dir.join("000000010000000000000001.lz4"));
    let mut c = Cluster::init(&scratch, "pg");
    c.archive_to(&archive, "on");
    c.start();
    let out = check(&archive, &c, false);
    println!("{out}");
    failed_with(&out, "archive", "WAL-G");
    c.stop();
}

#[test]
fn wrong_credentials_and_unreachable_storage_are_told_apart() {
    let scratch = Scratch::new("check-s3");
    let s3 = S3sFs::start(&scratch);
    let good = s3.archive(&scratch, "check");
    let mut c = Cluster::init(&scratch, "pg");
    c.archive_to(&good, "on");
    c.start();
    let out = check(&good, &c, false);
    println!("{out}");
    assert!(out.success(), "{out}");
    assert!(
        !out.stdout.contains(S3sFs::SECRET_ACCESS_KEY),
        "check printed the secret key of archive_command:\n{out}"
    );

    let wrong = good
        .clone()
        .with_env("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let out = check(&wrong, &c, false);
    println!("{out}");
    failed_with(&out, "storage", "AWS_SECRET_ACCESS_KEY");

    let unreachable = good
        .clone()
        .with_env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", free_port()),
        )
        .with_env("WALSHIP_TIMEOUT", "20");
    let out = check(&unreachable, &c, false);
    println!("{out}");
    failed_with(&out, "storage", "reachable");
    c.stop();
}

/// A random key in a file only `postgres` may read.
fn key_file(scratch: &Scratch, name: &str, seed: u64) -> std::path::PathBuf {
    let hex: String = walship_e2e::random_bytes(32, seed)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = scratch.postgres_file(name, format!("{hex}\n").as_bytes());
    walship_e2e::scratch::set_mode(&path, 0o600);
    path
}

fn with_key(archive: &WalshipArchive, key: &std::path::Path) -> WalshipArchive {
    archive
        .clone()
        .with_env("WALG_LIBSODIUM_KEY_PATH", key.display().to_string())
        .with_env("WALG_LIBSODIUM_KEY_TRANSFORM", "hex")
}

/// The keys set are checked against the archive's key fingerprint before
/// the first push would be refused: the right key passes, another key, no
/// key, and a key on a plaintext archive each fail the `encryption` line;
/// no key text is ever printed.
#[test]
fn the_key_set_is_checked_against_the_archive() {
    let scratch = Scratch::new("check-key");
    let plain = WalshipArchive::file(&scratch, "plain");
    let sealed = WalshipArchive::file(&scratch, "sealed");
    let key = key_file(&scratch, "key", 1);
    let other = key_file(&scratch, "other", 2);
    let key_text = std::fs::read_to_string(&key).unwrap();
    let mut c = Cluster::init(&scratch, "pg");
    c.archive_to(&with_key(&sealed, &key), "on");
    c.start();

    // The round trip creates the encrypted archive.
    let out = check(&with_key(&sealed, &key), &c, false);
    println!("{out}");
    assert!(out.success(), "{out}");
    assert!(
        line(&out, "encryption").contains("sealed with key"),
        "{out}"
    );
    let again = check(&with_key(&sealed, &key), &c, false);
    println!("{again}");
    assert!(again.success(), "{again}");
    assert!(
        line(&again, "encryption").contains("the archive is encrypted"),
        "{again}"
    );

    let out = check(&with_key(&sealed, &other), &c, false);
    println!("{out}");
    failed_with(&out, "encryption", "encrypted under key");
    let out = check(&sealed, &c, false);
    println!("{out}");
    failed_with(&out, "encryption", "no encryption key is set");

    // A plaintext archive (one segment pushed by hand), and a key set for it.
    let pushed = walship_e2e::by_hand::push(&plain, &c, &c.switch_wal());
    assert!(pushed.success(), "{pushed}");
    let out = check(&plain, &c, false);
    println!("{out}");
    assert!(line(&out, "encryption").starts_with('✓'), "{out}");
    let out = check(&with_key(&plain, &other), &c, false);
    println!("{out}");
    failed_with(&out, "encryption", "is not encrypted");
    for out in [&out, &again] {
        assert!(
            !out.stdout.contains(key_text.trim()),
            "a key was printed:\n{out}"
        );
    }
    c.stop();
}

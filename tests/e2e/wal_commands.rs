//! `walship wal-push` and `wal-fetch` one call at a time, the way PostgreSQL
//! calls them: as `postgres`, from the data directory of a real cluster (so
//! pg_control is there), with `%p` relative to it.
//!
//! Exit codes under test (PostgreSQL's contract): wal-push 0 = stored, any
//! other code 1..=125 = not stored (retry later). wal-fetch 0 = restored,
//! 1 = not in the archive, 126 = a real error that must stop recovery rather
//! than end it early, except on a standby (`standby.signal`), which gets 1 and
//! simply retries.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use walship_e2e::pg::WAIT_TIMEOUT;
use walship_e2e::walship::{OBJECT_HEADER_LEN, OBJECT_MAGIC};
use walship_e2e::{Archive, Cluster, Outcome, Scratch, Walship, WalshipArchive};

/// Where PostgreSQL asks restore_command to put a file (`%p`).
const RECOVERYXLOG: &str = "pg_wal/RECOVERYXLOG";

/// A stopped cluster with finished segments kept in pg_wal, and an empty
/// file archive for it.
struct Setup {
    scratch: Scratch,
    cluster: Cluster,
    archive: WalshipArchive,
    /// Finished segments in pg_wal, oldest first.
    segments: Vec<String>,
}

impl Setup {
    fn new(label: &str) -> Setup {
        let scratch = Scratch::new(label);
        let cluster = Cluster::with_finished_segments(&scratch, "pg", 3);
        let segments = cluster.wal_segments()[..3].to_vec();
        let archive = WalshipArchive::file(&scratch, "archive");
        Setup {
            scratch,
            cluster,
            archive,
            segments,
        }
    }

    fn data(&self) -> &Path {
        self.cluster.data_dir()
    }

    /// walship for this archive, run from the data directory as `postgres`.
    fn walship(&self) -> Walship {
        self.archive.walship().cwd(self.data())
    }

    fn push(&self, name: &str) -> Outcome {
        self.walship()
            .args(["wal-push", &format!("pg_wal/{name}")])
            .run()
    }

    fn fetch(&self, name: &str) -> Outcome {
        self.walship().args(["wal-fetch", name, RECOVERYXLOG]).run()
    }

    fn segment_bytes(&self, name: &str) -> Vec<u8> {
        read(&self.data().join("pg_wal").join(name))
    }

    fn object(&self, name: &str) -> PathBuf {
        self.archive.object_path(&format!("wal/{name}"))
    }
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn listing(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// A failed wal-push: exit 1..=125 (never a code that kills PostgreSQL's
/// archiver) and a reason on stderr.
#[track_caller]
fn assert_push_refused(out: &Outcome) {
    let code = out.exit_code();
    assert!(
        (1..=125).contains(&code),
        "expected a refusal (exit 1..=125):\n{out}"
    );
    assert!(
        !out.stderr_lines().is_empty(),
        "refused without a reason on stderr:\n{out}"
    );
}

/// A failure reported as exactly one line on stderr, with exit 1.
#[track_caller]
fn assert_one_line_failure(out: &Outcome) {
    assert_eq!(out.exit_code(), 1, "expected exit 1:\n{out}");
    assert_eq!(
        out.stderr_lines().len(),
        1,
        "expected a one-line reason:\n{out}"
    );
}

#[track_caller]
fn assert_mentions(out: &Outcome, words: &str) {
    assert!(
        out.stderr.to_lowercase().contains(&words.to_lowercase()),
        "expected stderr to mention {words:?}:\n{out}"
    );
}

/// Runs a wal-fetch that must fail with `code` and leave nothing behind in
/// pg_wal: no file at `%p`, no temporary file next to it.
#[track_caller]
fn assert_fetch_fails(data: &Path, fetch: impl FnOnce() -> Outcome, code: i32) -> Outcome {
    let pg_wal = data.join("pg_wal");
    let before = listing(&pg_wal);
    let out = fetch();
    assert_eq!(out.exit_code(), code, "wal-fetch exit code:\n{out}");
    assert!(
        !data.join(RECOVERYXLOG).exists(),
        "a failed wal-fetch left a file at %p:\n{out}"
    );
    let after = listing(&pg_wal);
    assert_eq!(
        before, after,
        "a failed wal-fetch left files in pg_wal:\n{out}"
    );
    out
}

#[test]
fn repush_of_identical_segment_succeeds_and_keeps_the_object() {
    let s = Setup::new("repush");
    let name = &s.segments[0];
    s.push(name).ok();
    let stored = read(&s.object(name));
    assert!(
        stored.starts_with(OBJECT_MAGIC),
        "object does not start with the walship magic"
    );

    let again = s.push(name);
    assert_eq!(
        again.exit_code(),
        0,
        "re-push of identical content must succeed:\n{again}"
    );
    assert_eq!(
        read(&s.object(name)),
        stored,
        "re-push changed the stored object"
    );

    // And it fetches back as the original.
    s.fetch(name).ok();
    assert_eq!(read(&s.data().join(RECOVERYXLOG)), s.segment_bytes(name));
}

#[test]
fn push_of_different_content_under_a_taken_name_is_refused() {
    let s = Setup::new("different");
    let name = &s.segments[0];
    s.push(name).ok();
    let stored = read(&s.object(name));

    // Same name, one byte changed mid-segment (page headers stay valid).
    let mut bytes = s.segment_bytes(name);
    let mid = bytes.len() / 2 + 100;
    bytes[mid] ^= 0x01;
    let impostor = s.scratch.postgres_file(&format!("impostor/{name}"), &bytes);

    let out = s.walship().arg("wal-push").arg(&impostor).run();
    assert_push_refused(&out);
    assert_mentions(&out, "differ");
    assert_eq!(read(&s.object(name)), stored, "the archived copy changed");
}

#[test]
fn history_file_is_archived_after_promotion() {
    let scratch = Scratch::new("history");
    let archive = WalshipArchive::file(&scratch, "archive");
    let mut primary = Cluster::init(&scratch, "primary");
    primary.archive_to(&archive, "on");
    primary.start();
    primary.psql("create table t (x int); insert into t select generate_series(1, 1000)");
    let backup = primary.basebackup("base", &["--wal-method=none"]);
    primary.psql("insert into t select generate_series(1, 1000)");
    let last = primary.switch_wal();
    let stats = primary.wait_archived(&last, WAIT_TIMEOUT);
    assert_eq!(stats.failed_count, 0, "{stats:?}");
    primary.stop();

    // A copy recovers from the archive, promotes to timeline 2 and archives
    // into the same place.
    let mut copy = Cluster::from_backup(&scratch, "promoted", &backup);
    copy.restore_from(&archive).archive_to(&archive, "on");
    copy.touch("recovery.signal");
    copy.start();
    copy.wait_out_of_recovery();
    assert_eq!(copy.psql_i64("select count(*) from t"), 2000);
    assert_eq!(
        copy.psql("select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"),
        "00000002",
        "the recovered copy should write timeline 2"
    );
    let tl2 = copy.switch_wal();
    let stats = copy.wait_archived(&tl2, WAIT_TIMEOUT);
    assert_eq!(
        stats.failed_count, 0,
        "archiving failed after promotion: {stats:?}"
    );

    let stored = archive.stored_wal_files();
    println!("archive after promotion: {stored:?}");
    assert!(
        stored.contains(&"00000002.history".to_string()),
        "{stored:?}"
    );
    assert!(stored.contains(&tl2), "{stored:?}");
    assert!(archive.object_path("wal/00000002.history").is_file());

    let fetched = archive
        .walship()
        .cwd(copy.data_dir())
        .args(["wal-fetch", "00000002.history", "pg_wal/RECOVERYHISTORY"])
        .run()
        .ok();
    let got = read(&copy.data_dir().join("pg_wal/RECOVERYHISTORY"));
    let want = read(&copy.data_dir().join("pg_wal/00000002.history"));
    assert_eq!(
        got, want,
        "00000002.history came back different:\n{fetched}"
    );
    let _ = fs::remove_file(copy.data_dir().join("pg_wal/RECOVERYHISTORY"));
}

#[test]
fn fetch_of_a_missing_file_is_not_found() {
    let s = Setup::new("missing");
    s.push(&s.segments[0]).ok();
    for name in ["000000010000000000000099", "00000009.history"] {
        for standby in [false, true] {
            if standby {
                s.cluster.touch("standby.signal");
            }
            let out = assert_fetch_fails(s.data(), || s.fetch(name), 1);
            println!("missing {name} (standby: {standby}): {}", out.stderr.trim());
            s.cluster.remove("standby.signal");
        }
    }
}

/// Flips single bits in a stored object and fetches it. Uncompressed, every
/// flip changes the WAL and must be refused (exit 126, or 1 with
/// standby.signal, nothing at %p). Compressed, a flip in the payload may
/// decode to the very same bytes (a changed match offset inside a run of
/// zeros), so there the rule is: refused, or exactly the original bytes.
/// Header flips must always be refused.
#[test]
fn fetch_refuses_corrupted_objects() {
    let s = Setup::new("corrupt");
    let name = &s.segments[1];
    let segment = s.segment_bytes(name);
    let mut problems = Vec::new();
    for method in ["none", "default"] {
        let mut archive = WalshipArchive::file(&s.scratch, &format!("archive-{method}"));
        if method == "none" {
            archive = archive.with_env("WALG_COMPRESSION_METHOD", "none");
        }
        let walship = archive.walship().cwd(s.data());
        walship
            .clone()
            .args(["wal-push", &format!("pg_wal/{name}")])
            .run()
            .ok();
        let object = archive.object_path(&format!("wal/{name}"));
        let original = read(&object);
        assert!(original.starts_with(OBJECT_MAGIC), "{method}: no magic");
        assert!(
            original.len() > OBJECT_HEADER_LEN + 16,
            "{method}: object has no payload"
        );

        let payload_len = original.len() - OBJECT_HEADER_LEN;
        let header = [0, 8, 16, 24, 32, 40, 48, 56, OBJECT_HEADER_LEN - 1];
        let payload = [
            OBJECT_HEADER_LEN,
            OBJECT_HEADER_LEN + payload_len / 3,
            OBJECT_HEADER_LEN + payload_len / 2,
            original.len() - 1,
        ];
        let cases = header
            .iter()
            .map(|&o| ("header", o))
            .chain(payload.iter().map(|&o| ("payload", o)));
        for (part, offset) in cases {
            let mut bytes = original.clone();
            bytes[offset] ^= 0x04;
            fs::write(&object, &bytes).expect("corrupt object");
            for (standby, code) in [(false, 126), (true, 1)] {
                if standby {
                    s.cluster.touch("standby.signal");
                }
                let pg_wal = s.data().join("pg_wal");
                let before = listing(&pg_wal);
                let out = walship
                    .clone()
                    .args(["wal-fetch", name, RECOVERYXLOG])
                    .run();
                s.cluster.remove("standby.signal");
                let dest = s.data().join(RECOVERYXLOG);
                let delivered = fs::read(&dest).ok();
                let _ = fs::remove_file(&dest);
                let harmless = method != "none"
                    && part == "payload"
                    && out.code == Some(0)
                    && delivered.as_deref() == Some(&segment[..]);
                let refused_cleanly =
                    out.code == Some(code) && delivered.is_none() && listing(&pg_wal) == before;
                if !(refused_cleanly || harmless) {
                    let what = match &delivered {
                        None => "nothing",
                        Some(d) if d[..] == segment[..] => "the original bytes",
                        Some(_) => "DIFFERENT bytes",
                    };
                    problems.push(format!(
                        "{method}: bit flipped in {part} at byte {offset}, standby.signal \
                         {standby}: exit {:?}, {what} at %p\n{out}",
                        out.code
                    ));
                }
            }
        }
        fs::write(&object, &original).expect("restore object");

        // Control: the intact object still fetches, so the refusals were
        // about the corruption.
        walship
            .clone()
            .args(["wal-fetch", name, RECOVERYXLOG])
            .run()
            .ok();
        assert!(
            read(&s.data().join(RECOVERYXLOG)) == segment,
            "{method}: control fetch"
        );
        let _ = fs::remove_file(s.data().join(RECOVERYXLOG));
    }
    assert!(
        problems.is_empty(),
        "wal-fetch mishandled corrupted objects (want exit 126, or 1 with standby.signal, \
         and nothing at %p):\n{}",
        problems.join("\n")
    );
}

#[test]
fn another_cluster_cannot_push_or_fetch_here() {
    let s = Setup::new("two-clusters");
    s.push(&s.segments[0]).ok();
    s.push(&s.segments[1]).ok();
    let stored = read(&s.object(&s.segments[0]));
    let keys_before = s.archive.list("");

    let other = Cluster::with_finished_segments(&s.scratch, "other", 3);
    assert_ne!(other.system_identifier(), s.cluster.system_identifier());
    let other_walship = s.archive.walship().cwd(other.data_dir());
    let others = other.wal_segments();

    // The name this archive already has, and one it has not.
    for name in [&s.segments[0], &others[2]] {
        let out = other_walship
            .clone()
            .args(["wal-push", &format!("pg_wal/{name}")])
            .run();
        assert_push_refused(&out);
        assert_mentions(&out, "system identifier");
    }
    assert_eq!(
        read(&s.object(&s.segments[0])),
        stored,
        "another cluster changed an object"
    );
    assert_eq!(
        s.archive.list(""),
        keys_before,
        "another cluster added objects"
    );

    // Fetching this archive's WAL into the other cluster is a real error.
    for (standby, code) in [(false, 126), (true, 1)] {
        if standby {
            other.touch("standby.signal");
        }
        assert_fetch_fails(
            other.data_dir(),
            || {
                other_walship
                    .clone()
                    .args(["wal-fetch", &s.segments[1], RECOVERYXLOG])
                    .run()
            },
            code,
        );
        other.remove("standby.signal");
    }
}

#[test]
fn fetch_from_a_prefix_without_archive_is_an_error_not_not_found() {
    let s = Setup::new("no-archive");
    let empty = s.scratch.postgres_dir("empty", 0o700);
    let missing = s.scratch.path().join("does-not-exist");
    for dir in [&empty, &missing] {
        let walship = s
            .walship()
            .env("WALSHIP_PREFIX", format!("file://{}", dir.display()));
        for (standby, code) in [(false, 126), (true, 1)] {
            if standby {
                s.cluster.touch("standby.signal");
            }
            let out = assert_fetch_fails(
                s.data(),
                || {
                    walship
                        .clone()
                        .args(["wal-fetch", &s.segments[0], RECOVERYXLOG])
                        .run()
                },
                code,
            );
            s.cluster.remove("standby.signal");
            println!(
                "{} (standby: {standby}): {}",
                dir.display(),
                out.stderr.trim()
            );
        }
    }
}

#[test]
fn prefix_holding_a_walg_archive_is_refused() {
    let s = Setup::new("walg");
    let dir = s.archive.local_dir().expect("file archive").to_path_buf();
    let walg = s.scratch.postgres_dir("archive/wal_005", 0o700);
    s.scratch.postgres_file(
        "archive/wal_005/000000010000000000000001.lz4",
        b"not really lz4",
    );
    let before = listing(&dir);

    let out = s.push(&s.segments[0]);
    assert_push_refused(&out);
    assert_mentions(&out, "wal-g");
    assert_eq!(listing(&dir), before, "walship wrote into a WAL-G archive");
    assert_eq!(listing(&walg).len(), 1);
}

/// WAL-G's OpenPGP settings are refused (and point at the libsodium ones);
/// the libsodium key, refused before issue 18, now encrypts what is stored
/// (the rest: tests/e2e/encryption.rs).
#[test]
fn walg_pgp_is_refused_and_libsodium_encrypts() {
    let s = Setup::new("libsodium");
    let out = s
        .walship()
        .env("WALG_PGP_KEY", "-----BEGIN PGP PUBLIC KEY BLOCK-----")
        .args(["wal-push", &format!("pg_wal/{}", s.segments[0])])
        .run();
    assert_push_refused(&out);
    assert_mentions(&out, "WALG_LIBSODIUM_KEY");
    assert!(
        !s.object(&s.segments[0]).exists(),
        "the segment was stored although OpenPGP encryption was asked for"
    );
    s.walship()
        .env("WALG_LIBSODIUM_KEY", "0123456789abcdef0123456789abcdef")
        .args(["wal-push", &format!("pg_wal/{}", s.segments[0])])
        .run()
        .ok();
    let object = fs::read(s.object(&s.segments[0])).expect("stored");
    assert_eq!(object[13], 1, "the stored object is not encrypted");
}

#[test]
fn push_of_a_bad_path_fails_with_one_line() {
    let s = Setup::new("bad-path");
    // Missing file with a good name.
    assert_one_line_failure(&s.push("000000010000000000000077"));
    // Existing file whose name is no WAL file name.
    let junk = s.scratch.postgres_file("junk/not-a-wal-file", b"hello");
    assert_one_line_failure(&s.walship().arg("wal-push").arg(&junk).run());
    // A directory.
    assert_one_line_failure(&s.walship().args(["wal-push", "pg_wal"]).run());
    // No argument at all: still a code PostgreSQL's archiver survives.
    assert_push_refused(&s.walship().arg("wal-push").run());
    assert!(
        s.archive.stored_wal_files().is_empty(),
        "something was stored from a bad path"
    );
}

#[test]
fn walg_prefix_variables_are_understood() {
    let s = Setup::new("walg-vars");
    let dir = s.scratch.postgres_dir("plain", 0o700);
    let cache = s.scratch.postgres_dir("walship-cache", 0o700);
    let base = Walship::new()
        .as_postgres()
        .cwd(s.data())
        .env("WALSHIP_CACHE_DIR", cache.display().to_string());
    let name = &s.segments[0];

    // WAL-G's variable with a plain path ...
    base.clone()
        .env("WALG_FILE_PREFIX", dir.display().to_string())
        .args(["wal-push", &format!("pg_wal/{name}")])
        .run()
        .ok();
    assert!(
        dir.join("wal").join(name).is_file(),
        "not stored at {}/wal/{name}",
        dir.display()
    );
    // ... and WAL-E's with a file:// URL reach the same archive.
    base.clone()
        .env("WALE_FILE_PREFIX", format!("file://{}", dir.display()))
        .args(["wal-fetch", name, RECOVERYXLOG])
        .run()
        .ok();
    assert_eq!(read(&s.data().join(RECOVERYXLOG)), s.segment_bytes(name));
}

#[test]
fn every_compression_method_round_trips() {
    let s = Setup::new("compression");
    let name = &s.segments[1];
    let original = s.segment_bytes(name);
    for method in ["lz4", "zstd", "none"] {
        let archive = WalshipArchive::file(&s.scratch, &format!("archive-{method}"))
            .with_env("WALG_COMPRESSION_METHOD", method);
        let walship = archive.walship().cwd(s.data());
        walship
            .clone()
            .args(["wal-push", &format!("pg_wal/{name}")])
            .run()
            .ok();
        let object = read(&archive.object_path(&format!("wal/{name}")));
        assert!(object.starts_with(OBJECT_MAGIC), "{method}: no magic");
        if method == "none" {
            assert_eq!(
                object.len(),
                original.len() + OBJECT_HEADER_LEN,
                "{method}: size"
            );
            assert!(
                object[OBJECT_HEADER_LEN..] == original[..],
                "{method}: payload is not the segment"
            );
        } else {
            // A segment finished by pg_switch_wal() is mostly zeros.
            assert!(
                object.len() < original.len() / 2,
                "{method}: {} bytes stored for a {}-byte, mostly empty segment",
                object.len(),
                original.len()
            );
        }
        let _ = fs::remove_file(s.data().join(RECOVERYXLOG));
        walship.args(["wal-fetch", name, RECOVERYXLOG]).run().ok();
        assert!(
            read(&s.data().join(RECOVERYXLOG)) == original,
            "{method}: fetched bytes differ from the segment"
        );
        println!("{method}: {} -> {} bytes", original.len(), object.len());
    }
    let _ = fs::remove_file(s.data().join(RECOVERYXLOG));
}

/// stderr that cannot be written (PostgreSQL's log on a full disk) must not
/// change what PostgreSQL is told: a failing wal-fetch outside standby mode
/// still exits 126 (std's eprintln! panicked, and a panic's 101 reads as
/// "not in the archive", which ends recovery early), and a wal-push that
/// stored its segment still exits 0 however much it wanted to log.
#[test]
fn unwritable_stderr_never_changes_the_exit_code() {
    let s = Setup::new("dev-full");
    let in_data_dir = |walship: Walship, args: &str| {
        let line = walship.shell_command(args);
        walship_e2e::Run::new("sh")
            .arg("-c")
            .arg(format!(
                "cd {} && {line} 2>/dev/full",
                walship_e2e::process::shell_quote(&s.data().to_string_lossy())
            ))
            .as_postgres()
            .timeout(std::time::Duration::from_secs(120))
            .run()
    };

    // Unreachable storage: an S3 endpoint on a port nobody listens on. The
    // plugin's connection errors are retried (each retry logs a warning)
    // until the deadline.
    let closed_port = walship_e2e::pg::free_port();
    let unreachable = Walship::new()
        .env("WALSHIP_PREFIX", "s3://bucket/archive")
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{closed_port}"),
        )
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_S3_FORCE_PATH_STYLE", "true")
        .env("WALSHIP_TIMEOUT", "5")
        .env("WALSHIP_LOG_LEVEL", "debug");
    let out = in_data_dir(
        unreachable,
        &format!("wal-fetch {} {RECOVERYXLOG}", s.segments[0]),
    );
    assert_eq!(
        out.exit_code(),
        126,
        "wal-fetch with stderr on /dev/full:\n{out}"
    );
    assert!(!s.data().join(RECOVERYXLOG).exists());

    // A push that succeeds while every log line fails to be written.
    let pusher = s.archive.walship().env("WALSHIP_LOG_LEVEL", "debug");
    let out = in_data_dir(pusher, &format!("wal-push pg_wal/{}", s.segments[0]));
    assert_eq!(
        out.exit_code(),
        0,
        "wal-push with stderr on /dev/full:\n{out}"
    );
    let fetched = s.fetch(&s.segments[0]);
    assert!(
        fetched.success(),
        "the pushed segment is stored:\n{fetched}"
    );
}

/// After a known sequence (three pushes, one failed push, one fetch), the
/// Prometheus textfile and `walship metrics` say exactly that.
#[test]
fn metrics_count_what_happened() {
    let s = Setup::new("metrics");
    let dir = s.scratch.postgres_dir("metrics", 0o755);
    let textfile = dir.join("walship.prom");
    let walship = || {
        s.walship()
            .env("WALSHIP_METRICS_TEXTFILE", textfile.display().to_string())
    };
    for name in &s.segments {
        let out = walship()
            .args(["wal-push", &format!("pg_wal/{name}")])
            .run();
        assert!(out.success(), "{out}");
    }
    let out = walship()
        .args(["wal-push", "pg_wal/0000000100000000000000FF"])
        .run();
    assert!(!out.success(), "{out}");
    let out = walship()
        .args(["wal-fetch", &s.segments[0], RECOVERYXLOG])
        .run();
    assert!(out.success(), "{out}");
    let _ = fs::remove_file(s.data().join(RECOVERYXLOG));

    let text = fs::read_to_string(&textfile).expect("the textfile was written");
    let value = |text: &str, name: &str, command: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(name) && l.contains(&format!("command=\"{command}\"")))
            .unwrap_or_else(|| panic!("no {name} for {command} in\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let seg = 16.0 * 1024.0 * 1024.0;
    assert_eq!(
        value(&text, "walship_command_success_total", "wal-push"),
        3.0
    );
    assert_eq!(
        value(&text, "walship_command_failure_total", "wal-push"),
        1.0
    );
    assert_eq!(
        value(&text, "walship_command_bytes_total", "wal-push"),
        3.0 * seg
    );
    assert_eq!(value(&text, "walship_command_files_total", "wal-push"), 3.0);
    assert_eq!(
        value(&text, "walship_command_success_total", "wal-fetch"),
        1.0
    );
    assert_eq!(
        value(&text, "walship_command_bytes_total", "wal-fetch"),
        seg
    );
    assert!(
        text.contains("walship_last_archived_timestamp_seconds"),
        "{text}"
    );
    for line in text.lines() {
        assert!(
            line.starts_with('#') || line.rsplit(' ').next().unwrap().parse::<f64>().is_ok(),
            "not the exposition format: {line}"
        );
    }
    let printed = walship().arg("metrics").run();
    assert!(printed.success(), "{printed}");
    assert_eq!(
        value(&printed.stdout, "walship_command_success_total", "wal-push"),
        3.0
    );
    assert!(
        printed.stdout.contains("walship_archive_lag_segments"),
        "{printed}"
    );
}

/// WALSHIP_WAL_RATE_LIMIT is one budget for every walship process of an
/// archive: three wal-push processes at once, 48 MiB of uncompressed WAL at
/// 32 MiB/s, take at least 1.5 s together (a limit per process would let
/// them finish in half a second).
#[test]
fn the_wal_rate_limit_is_shared_by_every_process() {
    let s = Setup::new("wal-rate");
    let limited = s
        .walship()
        .env("WALSHIP_COMPRESSION", "none")
        .env("WALSHIP_WAL_RATE_LIMIT", (32u64 << 20).to_string());
    let t = std::time::Instant::now();
    let outs: Vec<Outcome> = std::thread::scope(|scope| {
        let pushes: Vec<_> = s
            .segments
            .iter()
            .map(|name| {
                let w = limited.clone();
                scope.spawn(move || w.args(["wal-push", &format!("pg_wal/{name}")]).run())
            })
            .collect();
        pushes.into_iter().map(|p| p.join().unwrap()).collect()
    });
    let took = t.elapsed().as_secs_f64();
    for out in &outs {
        assert!(out.success(), "{out}");
    }
    println!("3 pushes of 16 MiB at 32 MiB/s together: {took:.2}s");
    assert!(took >= 1.4, "the limit was not shared: {took:.2}s");
}

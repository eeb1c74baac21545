//! Base backups end to end, once per backend: a real PostgreSQL 15 archives
//! through walship; `backup-push` runs while pgbench writes; `backup-fetch`
//! restores into an empty directory; recovery through `walship wal-fetch`
//! reaches a point in time and the end of the archive with exactly the rows
//! recorded. Also: a backup-push killed half-way is never listed nor
//! restored and a new one succeeds; a non-empty target and a damaged volume
//! are refused.
//!
//! Every walship command runs as `postgres`, like KubeDB's scripts do.
//! Adding a backend is one line in `backends!` plus its constructor.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use walship_e2e::emulators::S3sFs;
use walship_e2e::emulators::azure::Azurite;
use walship_e2e::emulators::gcs::FakeGcs;
use walship_e2e::emulators::swift::Swift;
use walship_e2e::process::{is_root, postgres_ids};
use walship_e2e::walship::walship_bin;
use walship_e2e::{Cluster, Outcome, Scratch, WalshipArchive};

/// An archive on one backend, and the local server behind it (if any), kept
/// running as long as the archive is used.
struct Backend {
    archive: WalshipArchive,
    _server: Option<Box<dyn std::any::Any>>,
}

fn file(scratch: &Scratch) -> Backend {
    Backend {
        archive: WalshipArchive::file(scratch, "archive"),
        _server: None,
    }
}

fn s3s_fs(scratch: &Scratch) -> Backend {
    let s3 = S3sFs::start(scratch);
    Backend {
        archive: s3.archive(scratch, "backups-e2e"),
        _server: Some(Box::new(s3)),
    }
}

fn azurite(scratch: &Scratch) -> Backend {
    let azure = Azurite::start(scratch);
    Backend {
        archive: azure.archive(scratch, "backups-e2e", azure.shared_key_env()),
        _server: Some(Box::new(azure)),
    }
}

fn swift(scratch: &Scratch) -> Backend {
    let swift = Swift::start(scratch);
    Backend {
        archive: swift.archive(scratch, "walship", "backups-e2e"),
        _server: Some(Box::new(swift)),
    }
}

fn fake_gcs(scratch: &Scratch) -> Backend {
    let gcs = FakeGcs::start(scratch);
    Backend {
        archive: gcs.archive(scratch, "backups-e2e"),
        _server: Some(Box::new(gcs)),
    }
}

macro_rules! backends {
    ($($backend:ident),* $(,)?) => {$(
        mod $backend {
            #[test]
            fn push_while_pgbench_writes_then_restore_to_a_time_and_to_the_end() {
                super::push_fetch_recover(super::$backend);
            }
            #[test]
            fn interrupted_push_is_never_listed_and_damage_is_refused() {
                super::interrupted_and_damaged(super::$backend);
            }
        }
    )*};
}

backends!(file, s3s_fs, azurite, swift, fake_gcs);

/// Damages stored object `key` through the backend itself (`walship st get`,
/// one byte flipped in the middle, `walship st put`), the same way on every
/// backend.
fn flip_a_byte(b: &Backend, scratch: &Scratch, key: &str) {
    let dir = scratch.postgres_dir("flip", 0o700);
    let copy = dir.join("object");
    assert_ok(
        &walship(b).args(["st", "get", key]).arg(&copy).run(),
        "st get",
    );
    let mut bytes = fs::read(&copy).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(&copy, bytes).unwrap();
    assert_ok(
        &walship(b).args(["st", "put", key]).arg(&copy).run(),
        "st put",
    );
}

/// walship for this archive, as `postgres`, with a deadline fit for a backup.
fn walship(b: &Backend) -> walship_e2e::walship::Walship {
    b.archive.walship().timeout(Duration::from_secs(600))
}

#[track_caller]
fn assert_ok(out: &Outcome, what: &str) {
    assert!(out.success(), "{what} failed:\n{out}");
}

fn backup_push(b: &Backend, cluster: &Cluster, volume_size: Option<u64>) -> Outcome {
    let mut cmd = walship(b).arg("backup-push").arg(cluster.data_dir());
    if let Some(size) = volume_size {
        cmd = cmd.env("WALSHIP_VOLUME_SIZE", size.to_string());
    }
    cmd.run()
}

fn backup_names(b: &Backend) -> Vec<String> {
    let out = walship(b).args(["backup-list", "--json"]).run();
    assert_ok(&out, "backup-list --json");
    // Each record has exactly one `"name": "..."` line at its top level.
    out.stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("\"name\": \""))
        .map(|l| l.trim_end_matches(['"', ',']).to_string())
        .collect()
}

/// The rows that tell one state of the database from another.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    accounts: i64,
    balance: i64,
    history: i64,
    tellers_balance: i64,
    in_tablespace: i64,
    markers: String,
}

impl Snapshot {
    fn read(c: &Cluster) -> Snapshot {
        let row = c.psql(
            "select (select count(*) from pgbench_accounts), \
                    (select coalesce(sum(abalance), 0) from pgbench_accounts), \
                    (select count(*) from pgbench_history), \
                    (select coalesce(sum(tbalance), 0) from pgbench_tellers), \
                    (select count(*) from in_ts), \
                    (select coalesce(string_agg(label, ',' order by label), '') from markers)",
        );
        let f: Vec<&str> = row.split('|').collect();
        assert_eq!(f.len(), 6, "bad snapshot row {row:?}");
        let n = |i: usize| -> i64 { f[i].parse().unwrap_or_else(|_| panic!("{row:?}")) };
        Snapshot {
            accounts: n(0),
            balance: n(1),
            history: n(2),
            tellers_balance: n(3),
            in_tablespace: n(4),
            markers: f[5].to_string(),
        }
    }
}

/// A primary archiving through `b`, with pgbench tables (scale `scale`), a
/// table in a tablespace, and a markers table.
fn primary(scratch: &Scratch, b: &Backend, scale: u32) -> (Cluster, PathBuf) {
    let mut primary = Cluster::init(scratch, "primary");
    primary.archive_to(&b.archive, "on");
    primary.start();
    primary.pgbench(&["-i", "-s", &scale.to_string(), "-q"]);
    let ts = scratch.postgres_dir("tablespace", 0o700);
    primary.psql(&format!("create tablespace ts location '{}'", ts.display()));
    primary.psql(
        "create table in_ts (id int) tablespace ts; \
         insert into in_ts select generate_series(1, 5000); \
         create table markers (label text, at timestamptz default clock_timestamp())",
    );
    (primary, ts)
}

/// Restores `name` with backup-fetch into a new directory (as `postgres`)
/// and starts a cluster on it, recovering from the archive up to `target`
/// (a time) or to the end.
fn restore(
    scratch: &Scratch,
    b: &Backend,
    label: &str,
    name: &str,
    ts_old: &Path,
    target: Option<&str>,
) -> Cluster {
    let fetched = scratch.postgres_dir(&format!("{label}-fetched"), 0o700);
    let ts_new = scratch
        .postgres_dir(&format!("{label}-ts"), 0o700)
        .join("ts");
    let out = walship(b)
        .arg("backup-fetch")
        .arg(&fetched)
        .arg(name)
        .arg("--tablespace-mapping")
        .arg(format!("{}={}", ts_old.display(), ts_new.display()))
        .run();
    assert_ok(&out, "backup-fetch");
    assert!(
        out.stderr.contains("recovery.signal"),
        "backup-fetch says what to do next:\n{out}"
    );
    for f in [
        "backup_label",
        "tablespace_map",
        "global/pg_control",
        "PG_VERSION",
    ] {
        assert!(fetched.join(f).is_file(), "{f} restored");
    }
    for d in [
        "pg_wal/archive_status",
        "pg_replslot",
        "pg_stat_tmp",
        "pg_subtrans",
    ] {
        assert!(fetched.join(d).is_dir(), "{d} created");
    }
    assert!(
        fs::read_dir(fetched.join("pg_wal")).unwrap().count() == 1,
        "pg_wal holds only archive_status"
    );
    assert!(!fetched.join("postmaster.pid").exists());
    let map = fs::read_to_string(fetched.join("tablespace_map")).unwrap();
    assert!(
        map.contains(&ts_new.display().to_string()),
        "tablespace_map names the new location: {map}"
    );
    let link = fs::read_dir(fetched.join("pg_tblspc"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(fs::read_link(link.path()).unwrap(), ts_new);

    let mut c = Cluster::from_backup(scratch, label, &fetched);
    c.restore_from(&b.archive);
    if let Some(t) = target {
        c.set("recovery_target_time", t)
            .set("recovery_target_action", "promote");
    }
    c.touch("recovery.signal");
    c.start();
    c.wait_out_of_recovery();
    c
}

fn push_fetch_recover(backend: fn(&Scratch) -> Backend) {
    let scratch = Scratch::new("backup");
    let b = backend(&scratch);
    let (primary, ts) = primary(&scratch, &b, 5);

    // backup-push while pgbench writes.
    let push = thread::scope(|s| {
        let writer = s.spawn(|| primary.pgbench(&["-n", "-c", "2", "-T", "25"]));
        thread::sleep(Duration::from_secs(2));
        // Small volumes so several go up in parallel.
        let out = backup_push(&b, &primary, Some(8 << 20));
        writer.join().expect("pgbench");
        out
    });
    assert_ok(&push, "backup-push");
    println!("{push}");
    let name = push.stdout.trim().to_string();
    assert!(
        name.starts_with("base_00000001"),
        "printed its name: {push}"
    );
    assert_eq!(backup_names(&b), std::slice::from_ref(&name));
    let table = walship(&b).arg("backup-list").run();
    assert_ok(&table, "backup-list");
    assert!(table.stdout.starts_with("name"), "{table}");
    assert!(table.stdout.contains(&name), "{table}");
    println!("{}", table.stdout);
    let keys = b.archive.list("backups/");
    assert!(
        keys.iter()
            .filter(|k| k.starts_with(&format!("backups/{name}/")))
            .count()
            >= 2,
        "several volumes: {keys:?}"
    );

    primary.psql("insert into markers (label) values ('before')");
    let at_target = Snapshot::read(&primary);
    thread::sleep(Duration::from_millis(1100));
    let target_time = primary.psql("select now()");
    thread::sleep(Duration::from_millis(1100));
    primary.psql("insert into markers (label) values ('after')");
    primary.pgbench(&["-n", "-c", "2", "-t", "200"]);
    primary.psql("insert into in_ts select generate_series(1, 100)");
    let at_end = Snapshot::read(&primary);
    assert_ne!(at_target, at_end);
    let last = primary.switch_wal();
    let stats = primary.wait_archived(&last, Duration::from_secs(300));
    assert_eq!(stats.failed_count, 0, "{stats:?}");

    let pitr = restore(&scratch, &b, "to-target", &name, &ts, Some(&target_time));
    assert_eq!(
        Snapshot::read(&pitr),
        at_target,
        "recovered to {target_time}"
    );
    assert_eq!(at_target.markers, "before");
    pitr.stop();

    let full = restore(&scratch, &b, "to-end", "LATEST", &ts, None);
    assert_eq!(Snapshot::read(&full), at_end, "recovered to the end");
    assert_eq!(at_end.markers, "after,before");
    full.stop();
    primary.stop();
}

/// backup-push as a child of this process (as `postgres`), to be killed.
fn spawn_push(b: &Backend, cluster: &Cluster, volume_size: u64) -> std::process::Child {
    let mut cmd = Command::new(walship_bin());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(b.archive.settings())
        .env("WALSHIP_VOLUME_SIZE", volume_size.to_string())
        // Few volumes at once, so the kill lands with work left.
        .env("WALSHIP_UPLOAD_CONCURRENCY", "1")
        .arg("backup-push")
        .arg(cluster.data_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if is_root() {
        let (uid, gid) = postgres_ids();
        cmd.uid(uid).gid(gid);
    }
    cmd.spawn().expect("start backup-push")
}

fn interrupted_and_damaged(backend: fn(&Scratch) -> Backend) {
    let scratch = Scratch::new("backup-kill");
    let b = backend(&scratch);
    let (primary, ts) = primary(&scratch, &b, 10);

    // SIGKILL once the first volume objects exist.
    let mut child = spawn_push(&b, &primary, 1 << 20);
    let started = Instant::now();
    loop {
        let volumes = b.archive.list("backups/");
        if volumes
            .iter()
            .any(|k| k.contains('/') && k.matches('/').count() >= 2)
        {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "backup-push finished before it could be killed: make the database larger"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no volume appeared"
        );
        thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let leftovers = b.archive.list("backups/");
    assert!(!leftovers.is_empty());
    assert!(
        leftovers.iter().all(|k| !k.ends_with(".json")),
        "no record for a killed backup: {leftovers:?}"
    );
    assert!(backup_names(&b).is_empty(), "a killed backup is not listed");
    let listed = walship(&b).arg("backup-list").run();
    assert!(listed.stdout.contains("No backups found"), "{listed}");
    let target = scratch.postgres_dir("never", 0o700);
    let out = walship(&b)
        .arg("backup-fetch")
        .arg(&target)
        .arg("LATEST")
        .run();
    assert!(
        !out.success(),
        "LATEST must not pick a killed backup:\n{out}"
    );
    // PostgreSQL ends the killed session's backup when its connection drops.
    primary.wait_for(
        "the killed backup's session to end",
        Duration::from_secs(60),
        |c| match c.psql_i64(
            "select count(*) from pg_stat_activity where application_name = 'walship backup-push'",
        ) {
            0 => Ok(()),
            n => Err(format!("{n} sessions")),
        },
    );

    let push = backup_push(&b, &primary, Some(16 << 20));
    assert_ok(&push, "backup-push after a killed one");
    let name = push.stdout.trim().to_string();
    assert_eq!(backup_names(&b), std::slice::from_ref(&name));

    // A non-empty target is refused, and left alone.
    let busy = scratch.postgres_dir("busy", 0o700);
    fs::write(busy.join("keep-me"), "x").unwrap();
    let out = walship(&b).arg("backup-fetch").arg(&busy).arg(&name).run();
    assert!(!out.success(), "{out}");
    assert!(out.stderr.contains("not empty"), "{out}");
    assert_eq!(fs::read_dir(&busy).unwrap().count(), 1);

    // A flipped byte in a volume: a clear error, non-zero exit.
    let volume = b
        .archive
        .list(&format!("backups/{name}/"))
        .into_iter()
        .next()
        .expect("a volume");
    flip_a_byte(&b, &scratch, &volume);
    let target = scratch.postgres_dir("damaged", 0o700);
    let out = walship(&b)
        .arg("backup-fetch")
        .arg(&target)
        .arg("LATEST")
        .arg("--tablespace-mapping")
        .arg(format!(
            "{}={}",
            ts.display(),
            scratch
                .postgres_dir("damaged-ts", 0o700)
                .join("ts")
                .display()
        ))
        .run();
    assert!(!out.success(), "a damaged volume must fail:\n{out}");
    assert!(
        out.stderr.contains("damaged") && out.stderr.contains(&volume),
        "names the damaged volume:\n{out}"
    );
    primary.stop();
}

/// backup-push refuses, in one line and with exit 1, what would give a
/// backup that cannot be restored (or none at all).
#[test]
fn push_refusals() {
    let scratch = Scratch::new("backup-refusals");
    let b = file(&scratch);
    let refused = |out: &Outcome, words: &[&str]| {
        assert_eq!(out.exit_code(), 1, "{out}");
        assert_eq!(out.stderr_lines().len(), 1, "one line:\n{out}");
        for w in words {
            assert!(out.stderr.contains(w), "mentions {w:?}:\n{out}");
        }
    };

    // Archiving off: pg_backup_stop would wait forever.
    let off = Cluster::init(&scratch, "off");
    off.start();
    refused(&backup_push(&b, &off, None), &["archive_mode is off"]);
    off.stop();

    // PostgreSQL unreachable: the host and port tried are named.
    let out = walship(&b)
        .arg("backup-push")
        .arg(off.data_dir())
        .env("PGHOST", "/nonexistent-socket-dir")
        .env("PGPORT", "5999")
        .run();
    refused(&out, &["cannot connect", "/nonexistent-socket-dir", "5999"]);

    // The archive belongs to another cluster.
    let (a, _) = primary(&scratch, &b, 1);
    let segment = a.switch_wal();
    a.wait_archived(&segment, Duration::from_secs(60));
    let mut other = Cluster::init(&scratch, "other");
    other.archive_to(&b.archive, "on");
    other.start();
    refused(&backup_push(&b, &other, None), &["another cluster"]);
    assert!(backup_names(&b).is_empty());
}

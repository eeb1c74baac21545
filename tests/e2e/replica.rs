//! A primary and its streaming replica archive into the same prefix
//! (`archive_mode = always` on the replica, as KubeDB runs it). Both push the
//! same segments; the second push of each must succeed because the content is
//! identical, so neither archiver may ever fail.

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use walship_e2e::pg::{WAIT_TIMEOUT, is_segment_name};
use walship_e2e::{Archive, Cluster, Scratch, WalshipArchive};

const SWITCHES: usize = 10;

#[test]
fn primary_and_replica_archive_into_one_prefix() {
    let scratch = Scratch::new("replica");
    let archive = WalshipArchive::file(&scratch, "archive");

    let mut primary = Cluster::init(&scratch, "primary");
    primary
        .archive_to(&archive, "on")
        .set("wal_keep_size", "1GB");
    primary.start();
    primary.pgbench(&["-i", "-s", "1", "-q"]);

    let backup = primary.basebackup(
        "replica-base",
        &[
            "--write-recovery-conf",
            "--wal-method=stream",
            "--create-slot",
            "--slot=replica1",
        ],
    );
    // The copy keeps standby.signal and primary_conninfo from -R.
    let mut replica = Cluster::from_backup(&scratch, "replica", &backup);
    replica
        .archive_to(&archive, "always")
        .set("wal_keep_size", "1GB");
    replica.start();
    primary.wait_for("the replica to stream", WAIT_TIMEOUT, |p| {
        let n = p.psql_i64("select count(*) from pg_stat_replication where state = 'streaming'");
        if n == 1 {
            Ok(())
        } else {
            Err(format!("{n} streaming replicas"))
        }
    });

    let mut last = String::new();
    for _ in 0..SWITCHES {
        primary.pgbench(&["-n", "-t", "100"]);
        last = primary.switch_wal();
    }
    let timeout = Duration::from_secs(300);
    let on_primary = primary.wait_archived(&last, timeout);
    let on_replica = replica.wait_archived(&last, timeout);
    println!("primary archiver: {on_primary:?}\nreplica archiver: {on_replica:?}");
    assert_eq!(
        on_primary.failed_count, 0,
        "the primary's archive_command failed"
    );
    assert_eq!(
        on_replica.failed_count, 0,
        "the replica's archive_command failed (a re-push of identical content must succeed)"
    );
    assert!(
        on_replica.archived_count >= SWITCHES as i64,
        "the replica archived only {} files",
        on_replica.archived_count
    );

    // Every archived segment up to `last` fetches back equal to every copy
    // still in either pg_wal.
    let fetched_dir = scratch.postgres_dir("fetched", 0o755);
    let stored: Vec<String> = archive
        .stored_wal_files()
        .into_iter()
        .filter(|n| is_segment_name(n) && n.as_str() <= last.as_str())
        .collect();
    assert!(
        stored.contains(&last),
        "{last} is not in the archive: {stored:?}"
    );
    let mut compared: BTreeMap<&str, usize> = BTreeMap::new();
    for name in &stored {
        let dest = fetched_dir.join(name);
        archive
            .walship()
            .cwd(primary.data_dir())
            .arg("wal-fetch")
            .arg(name)
            .arg(&dest)
            .run()
            .ok();
        let archived = fs::read(&dest).expect("fetched segment");
        for (who, cluster) in [("primary", &primary), ("replica", &replica)] {
            if let Ok(local) = fs::read(cluster.data_dir().join("pg_wal").join(name)) {
                assert!(
                    local == archived,
                    "archived {name} differs from the {who}'s pg_wal copy"
                );
                *compared.entry(who).or_default() += 1;
            }
        }
    }

    // Byte-for-byte, primary against replica, for finished segments both
    // still have.
    let replica_segments = replica.wal_segments();
    let mut both = Vec::new();
    let mut differ = Vec::new();
    for name in primary.wal_segments() {
        if name.as_str() <= last.as_str() && replica_segments.contains(&name) {
            let a = fs::read(primary.data_dir().join("pg_wal").join(&name)).expect("read");
            let b = fs::read(replica.data_dir().join("pg_wal").join(&name)).expect("read");
            if a != b {
                differ.push(name.clone());
            }
            both.push(name);
        }
    }
    println!(
        "{} archived segments up to {last}; compared with pg_wal copies: {compared:?}; \
         primary and replica both hold {} finished segments, {} identical, differing: {differ:?}",
        stored.len(),
        both.len(),
        both.len() - differ.len()
    );
    assert!(
        differ.is_empty(),
        "primary and replica hold different bytes for {differ:?}"
    );
}

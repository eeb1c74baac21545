//! The archive-throughput figure every backend prints: 64 segments of real
//! WAL held back in pg_wal (an empty archive_command), then released to
//! PostgreSQL's archiver, one `walship wal-push` process per segment as in
//! production; timed from the switch of the last segment until
//! pg_stat_archiver has it.

use std::time::{Duration, Instant};

use walship_e2e::pg::segment_number;
use walship_e2e::{Archive, Cluster, Scratch, WalshipArchive};

const SEGMENTS: u64 = 64;
const SEGMENT_MIB: f64 = 16.0;

/// The header of the table [`archive_64_segments`] prints rows of.
pub fn print_header(title: &str) {
    println!(
        "## archive throughput: PostgreSQL's archive_command into {title}, zstd\n\
         | archive | segments | seconds | MiB/s | ms per segment | archiver failures | objects stored |\n\
         |---|---|---|---|---|---|---|"
    );
}

/// Archives 64 segments through `archive` and prints one row labelled
/// `label`. `name` names the throwaway cluster in `scratch`.
pub fn archive_64_segments(scratch: &Scratch, name: &str, label: &str, archive: &WalshipArchive) {
    // The first command compiles the plugin into the archive's cache; keep
    // that out of the figure.
    archive.walship().args(["st", "ls"]).run().ok();

    let mut cluster = Cluster::init(scratch, name);
    cluster
        .set("max_wal_size", "2GB")
        .set("archive_mode", "on")
        .set("archive_command", "");
    cluster.start();
    cluster.psql("create table filler (id int, payload text)");
    let first = cluster.psql("select pg_walfile_name(pg_current_wal_lsn())");
    // Real WAL, not the zeros a bare pg_switch_wal() leaves: rows of hex
    // text (compresses about 2:1, like much real data).
    loop {
        cluster.psql(
            "insert into filler select g, repeat(md5(random()::text), 7) \
             from generate_series(1, 20000) g",
        );
        let current = cluster.psql("select pg_walfile_name(pg_current_wal_lsn())");
        if segment_number(&current) - segment_number(&first) + 1 >= SEGMENTS {
            break;
        }
    }
    cluster.set("archive_command", archive.archive_command());
    let last = cluster.switch_wal();
    // Everything finished so far waits, initdb's first segment included.
    let pending = cluster
        .psql_i64("select count(*) from pg_ls_archive_statusdir() where name like '%.ready'");
    cluster.psql("select pg_reload_conf()");
    let start = Instant::now();
    let stats = loop {
        let stats = cluster.archiver_stats();
        if stats.last_archived_wal.as_str() >= last.as_str() {
            break stats;
        }
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "archiving stalled: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let secs = start.elapsed().as_secs_f64();
    cluster.stop();
    let stored = archive.stored_wal_files().len();
    println!(
        "| {label} | {pending} | {secs:.1} | {:.0} | {:.0} | {} | {stored} |",
        pending as f64 * SEGMENT_MIB / secs,
        secs * 1e3 / pending as f64,
        stats.failed_count
    );
}

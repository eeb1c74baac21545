//! Swift figures, against a real Swift 2.30 (tempauth, single node, Debian's
//! packages installed by `.ci/install-test-tools`) on this machine:
//!
//! Archive throughput: 64 segments of real WAL wait in pg_wal (archiving held
//! back by an empty archive_command), then PostgreSQL's archiver pushes them
//! through `walship wal-push` into Swift, one process per segment as in
//! production (each authenticates with v1 auth, then PUTs with
//! `If-None-Match: *` and the MD5 as ETag). Timed from the switch of the last
//! segment until pg_stat_archiver has it.

use std::time::{Duration, Instant};

use walship_e2e::emulators::swift::Swift;
use walship_e2e::pg::segment_number;
use walship_e2e::{Archive, Cluster, Scratch};

const SEGMENTS: u64 = 64;
const SEGMENT_MIB: f64 = 16.0;

pub fn figures(scratch: &Scratch) {
    let swift = Swift::start(scratch);
    archive_throughput(scratch, &swift);
}

fn archive_throughput(scratch: &Scratch, swift: &Swift) {
    let archive = swift.archive(scratch, "walship", "throughput");
    // The first command compiles the plugin into the archive's cache; keep
    // that out of the figure.
    archive.walship().args(["st", "ls"]).run().ok();

    let mut cluster = Cluster::init(scratch, "swift-archiver");
    cluster
        .set("max_wal_size", "2GB")
        .set("archive_mode", "on")
        .set("archive_command", "");
    cluster.start();
    cluster.psql("create table filler (id int, payload text)");
    let first = cluster.psql("select pg_walfile_name(pg_current_wal_lsn())");
    let t = Instant::now();
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
    let pending = cluster
        .psql_i64("select count(*) from pg_ls_archive_statusdir() where name like '%.ready'");
    cluster.psql("select pg_reload_conf()");
    let start = Instant::now();
    println!(
        "## archive throughput: PostgreSQL's archive_command into Swift 2.30 (tempauth), zstd\n\
         {pending} segments of real WAL written in {:.1}s, held until the last switch",
        t.elapsed().as_secs_f64()
    );
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
        "| segments | seconds | MiB/s | ms per segment | archiver failures | objects stored |\n\
         |---|---|---|---|---|---|\n\
         | {pending} | {secs:.1} | {:.0} | {:.0} | {} | {stored} |\n",
        pending as f64 * SEGMENT_MIB / secs,
        secs * 1e3 / pending as f64,
        stats.failed_count
    );
}

//! Swift figures, against a real Swift 2.30 (tempauth, single node, Debian's
//! packages installed by `.ci/install-test-tools`) on this machine:
//!
//! Archive throughput: 64 segments of real WAL wait in pg_wal (archiving held
//! back by an empty archive_command), then PostgreSQL's archiver pushes them
//! through `walship wal-push` into Swift, one process per segment as in
//! production (each authenticates with v1 auth, then PUTs with
//! `If-None-Match: *` and the MD5 as ETag). Timed from the switch of the last
//! segment until pg_stat_archiver has it.

use walship_e2e::Scratch;
use walship_e2e::emulators::swift::Swift;

use crate::throughput;

pub fn figures(scratch: &Scratch) {
    let swift = Swift::start(scratch);
    let archive = swift.archive(scratch, "walship", "throughput");
    throughput::print_header("Swift 2.30");
    throughput::archive_64_segments(scratch, "swift-archiver", "v1 auth", &archive);
    println!();
}

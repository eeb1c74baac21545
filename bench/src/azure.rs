//! Azure figures, against Azurite on this machine (installed by
//! `.ci/install-test-tools`): archive throughput of 64 segments of real WAL
//! through PostgreSQL's archive_command, one `walship wal-push` process per
//! segment as in production. The segments wait in pg_wal (archiving held
//! back by an empty archive_command); timed from the switch of the last
//! segment until pg_stat_archiver has it.
//!
//! Azurite (Node.js) checks the SharedKey signature of every request and the
//! Content-MD5 of every Put Blob; it keeps blobs in its own files.

use walship_e2e::Scratch;
use walship_e2e::emulators::azure::Azurite;

use crate::throughput;

pub fn figures(scratch: &Scratch) {
    let azure = Azurite::start(scratch);
    let archive = azure.archive(scratch, "throughput", azure.shared_key_env());
    throughput::print_header("Azure (Azurite)");
    throughput::archive_64_segments(scratch, "azure-archiver", "SharedKey", &archive);
    println!();
}

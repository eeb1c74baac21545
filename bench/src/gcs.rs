//! GCS figures, against fake-gcs-server on this machine (installed by
//! `.ci/install-test-tools`):
//!
//! Archive throughput: 64 segments of real WAL wait in pg_wal (archiving held
//! back by an empty archive_command), then PostgreSQL's archiver pushes them
//! through `walship wal-push` into fake-gcs-server, one process per segment
//! as in production. Timed from the switch of the last segment until
//! pg_stat_archiver has it. Twice: as an emulator (no credentials), and with
//! a service-account key (each process parses the key and signs an RS256
//! JWT; fake-gcs-server ignores it), so the difference is what signing costs
//! per process, what an on-disk token cache could save.

use walship_e2e::emulators::gcs::{FakeGcs, ServiceAccountKey};
use walship_e2e::{Scratch, WalshipArchive};

use crate::throughput;

pub fn figures(scratch: &Scratch) {
    let gcs = FakeGcs::start(scratch);
    let key = ServiceAccountKey::generate(scratch, "bench");
    throughput::print_header("GCS (fake-gcs-server)");
    let emulator = gcs.archive(scratch, "throughput-emulator");
    throughput::archive_64_segments(
        scratch,
        "gcs-emulator",
        "no credentials (STORAGE_EMULATOR_HOST)",
        &emulator,
    );
    let signed = WalshipArchive::new(scratch, format!("gs://{}/throughput-sa", FakeGcs::BUCKET))
        .with_env("WALSHIP_GS_ENDPOINT", gcs.endpoint())
        .with_env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            key.key_file.display().to_string(),
        );
    throughput::archive_64_segments(
        scratch,
        "gcs-signed",
        "service account (RS256 JWT)",
        &signed,
    );
    println!();
}

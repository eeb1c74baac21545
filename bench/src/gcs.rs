//! GCS figures, against fake-gcs-server on this machine (installed by
//! `.ci/install-test-tools`):
//!
//! Archive throughput: 64 segments of real WAL wait in pg_wal (archiving held
//! back by an empty archive_command), then PostgreSQL's archiver pushes them
//! through `walship wal-push` into fake-gcs-server, one process per segment
//! as in production. Timed from the switch of the last segment until
//! pg_stat_archiver has it. Twice: as an emulator (no credentials), and with
//! a service-account key (fake-gcs-server ignores the token), so the
//! difference is what credentials cost.
//!
//! One process: the wall time of `walship st put` of 100 kB (median of 9),
//! without credentials, with a service account whose token an earlier
//! process kept (the host's `cache`), and with the kept token removed before
//! each run, so that every process parses the key and signs a JWT. The last
//! two differ by what the token cache saves each wal-push.

use std::time::{Duration, Instant};

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
    one_process(scratch, &emulator, &signed);
}

/// Runs of each `st put` timed.
const RUNS: usize = 9;

fn one_process(scratch: &Scratch, emulator: &WalshipArchive, signed: &WalshipArchive) {
    let data = scratch.postgres_file("put-100k", &vec![7u8; 100 * 1024]);
    let put = |archive: &WalshipArchive, forget_token: bool| -> Duration {
        let mut times: Vec<Duration> = (0..RUNS)
            .map(|i| {
                if forget_token {
                    // The kept values: files named by hashes, all of them this
                    // archive's here.
                    let values = scratch.path().join("walship-cache/values");
                    for entry in std::fs::read_dir(&values).into_iter().flatten().flatten() {
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
                let command = archive
                    .walship()
                    .args(["st", "put", &format!("one-process/{i}")])
                    .arg(&data);
                let t = Instant::now();
                let out = command.run();
                let elapsed = t.elapsed();
                assert!(out.success(), "st put: {}", out.stderr);
                elapsed
            })
            .collect();
        times.sort();
        times[RUNS / 2]
    };
    // The first run also fills the plugin cache (and keeps a token).
    put(emulator, false);
    put(signed, false);
    let none = put(emulator, false);
    let kept = put(signed, false);
    let signing = put(signed, true);
    println!("## one process: `walship st put` of 100 kB into fake-gcs-server (median of {RUNS})");
    println!("| credentials | ms |");
    println!("|---|---|");
    println!("| none (STORAGE_EMULATOR_HOST) | {:.1} |", ms(none));
    println!(
        "| service account, token kept by an earlier process | {:.1} |",
        ms(kept)
    );
    println!(
        "| service account, no kept token (parse the key, sign a JWT) | {:.1} |",
        ms(signing)
    );
    println!(
        "the token cache saves {:.1} ms per process\n",
        ms(signing) - ms(kept)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

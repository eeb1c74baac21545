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
/// size, WAL block size, WAL segment size) have kept their order since
/// PostgreSQL 11, while the fields before it moved between versions, so it is
/// the anchor that lets one reader serve every supported version.
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

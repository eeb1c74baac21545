//! Names of the files PostgreSQL archives, and what each kind implies.
//!
//! PostgreSQL hands `archive_command` a path (`%p`, relative to the data
//! directory) and `restore_command` a bare file name (`%f`). Only a handful of
//! name shapes are legitimate; anything else is refused before storage is
//! touched, so a typo in a command line can never create a stray object.

use std::fmt;

/// A WAL file name PostgreSQL archives, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalFileName {
    name: String,
    kind: WalFileKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalFileKind {
    /// `TTTTTTTTXXXXXXXXYYYYYYYY`: a WAL segment. Starts with a long page header.
    Segment { timeline: u32, segment_no: u64 },
    /// A segment cut short at promotion (`<segment>.partial`). Same header.
    Partial { timeline: u32, segment_no: u64 },
    /// `TTTTTTTT.history`: a timeline history (text, no page header).
    History { timeline: u32 },
    /// `<segment>.XXXXXXXX.backup`: a backup label (text, no page header).
    BackupLabel { timeline: u32 },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "'{0}' is not a WAL file name PostgreSQL archives (expected a 24-hex-digit segment, \
     TTTTTTTT.history, <segment>.partial or <segment>.XXXXXXXX.backup)"
)]
pub struct InvalidWalFileName(pub String);

impl WalFileName {
    pub fn parse(name: &str) -> Result<Self, InvalidWalFileName> {
        let invalid = || InvalidWalFileName(name.to_string());
        if name.len() > 64 || !name.is_ascii() {
            return Err(invalid());
        }
        let kind = if let Some(tli) = name.strip_suffix(".history") {
            WalFileKind::History {
                timeline: hex_u32(tli).ok_or_else(invalid)?,
            }
        } else if let Some(seg) = name.strip_suffix(".partial") {
            let (timeline, segment_no) = segment_parts(seg).ok_or_else(invalid)?;
            WalFileKind::Partial {
                timeline,
                segment_no,
            }
        } else if let Some(rest) = name.strip_suffix(".backup") {
            let (seg, offset) = rest.split_once('.').ok_or_else(invalid)?;
            hex_u32(offset).ok_or_else(invalid)?;
            let (timeline, _) = segment_parts(seg).ok_or_else(invalid)?;
            WalFileKind::BackupLabel { timeline }
        } else {
            let (timeline, segment_no) = segment_parts(name).ok_or_else(invalid)?;
            WalFileKind::Segment {
                timeline,
                segment_no,
            }
        };
        Ok(Self {
            name: name.to_string(),
            kind,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The `count` segments after this one on its timeline, as recovery
    /// will ask for them (empty for anything but a segment).
    pub fn next_segments(&self, count: usize, segment_size: u32) -> Vec<WalFileName> {
        let WalFileKind::Segment {
            timeline,
            segment_no,
        } = self.kind
        else {
            return Vec::new();
        };
        let per_log = 0x1_0000_0000u64 / u64::from(segment_size.max(1));
        let (mut log, mut seg) = (segment_no >> 32, segment_no & 0xFFFF_FFFF);
        (0..count)
            .map(|_| {
                seg += 1;
                if seg >= per_log {
                    seg = 0;
                    log += 1;
                }
                WalFileName {
                    name: format!("{timeline:08X}{log:08X}{seg:08X}"),
                    kind: WalFileKind::Segment {
                        timeline,
                        segment_no: (log << 32) | seg,
                    },
                }
            })
            .collect()
    }

    pub fn kind(&self) -> WalFileKind {
        self.kind
    }

    /// Segments and partial segments start with a WAL page header that names
    /// the cluster; history and backup-label files are plain text.
    pub fn has_page_header(&self) -> bool {
        matches!(
            self.kind,
            WalFileKind::Segment { .. } | WalFileKind::Partial { .. }
        )
    }
}

impl fmt::Display for WalFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Splits `TTTTTTTTXXXXXXXXYYYYYYYY` into (timeline, logical segment number
/// counted in "segments of 4 GiB / segment size" per `XXXXXXXX`). The segment
/// number returned is the pair `(XXXXXXXX, YYYYYYYY)` packed as
/// `XXXXXXXX << 32 | YYYYYYYY`; turning it into an LSN needs the segment size.
fn segment_parts(s: &str) -> Option<(u32, u64)> {
    if s.len() != 24 {
        return None;
    }
    let timeline = hex_u32(&s[0..8])?;
    let log = hex_u32(&s[8..16])?;
    let seg = hex_u32(&s[16..24])?;
    if timeline == 0 {
        return None;
    }
    Some((timeline, (u64::from(log) << 32) | u64::from(seg)))
}

/// Exactly 8 upper-case hex digits, as PostgreSQL writes them.
fn hex_u32(s: &str) -> Option<u32> {
    if s.len() != 8
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// The LSN at which a segment starts, given the cluster's segment size.
pub fn segment_start_lsn(packed_segment_no: u64, segment_size: u32) -> u64 {
    let log = packed_segment_no >> 32;
    let seg = packed_segment_no & 0xFFFF_FFFF;
    let segments_per_log = 0x1_0000_0000u64 / u64::from(segment_size);
    (log * segments_per_log + seg) * u64::from(segment_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_kind_postgres_archives() {
        let seg = WalFileName::parse("000000010000000A000000FF").unwrap();
        assert_eq!(
            seg.kind(),
            WalFileKind::Segment {
                timeline: 1,
                segment_no: (0xA << 32) | 0xFF
            }
        );
        assert!(seg.has_page_header());
        let hist = WalFileName::parse("0000000A.history").unwrap();
        assert_eq!(hist.kind(), WalFileKind::History { timeline: 10 });
        assert!(!hist.has_page_header());
        let partial = WalFileName::parse("000000020000000000000003.partial").unwrap();
        assert!(matches!(
            partial.kind(),
            WalFileKind::Partial { timeline: 2, .. }
        ));
        let label = WalFileName::parse("000000010000000000000002.00000028.backup").unwrap();
        assert_eq!(label.kind(), WalFileKind::BackupLabel { timeline: 1 });
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [
            "",
            "RECOVERYXLOG",
            "000000010000000a000000ff", // PostgreSQL writes upper case
            "00000001000000000000000",
            "0000000100000000000000001",
            "000000000000000000000001", // timeline 0 does not exist
            "../000000010000000000000001",
            "000000010000000000000001.gz",
            "00000001.history.tmp",
            "000000010000000000000002.backup",
        ] {
            assert!(WalFileName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn next_segments_roll_over_the_log_number_by_segment_size() {
        let names = |s: &str, n: usize, size: u32| -> Vec<String> {
            WalFileName::parse(s)
                .unwrap()
                .next_segments(n, size)
                .iter()
                .map(|w| w.as_str().to_string())
                .collect()
        };
        assert_eq!(
            names("0000000200000001000000FE", 3, 16 << 20),
            [
                "0000000200000001000000FF",
                "000000020000000200000000",
                "000000020000000200000001"
            ]
        );
        // 1 GiB segments: four per log number.
        assert_eq!(
            names("000000010000000000000003", 1, 1 << 30),
            ["000000010000000100000000"]
        );
        assert!(names("00000002.history", 3, 16 << 20).is_empty());
    }

    #[test]
    fn segment_start_lsn_matches_postgres_for_16mib_segments() {
        // 0000000100000001000000A0 starts at LSN 1/A0000000 with 16 MiB segments.
        let name = WalFileName::parse("0000000100000001000000A0").unwrap();
        let WalFileKind::Segment { segment_no, .. } = name.kind() else {
            panic!()
        };
        assert_eq!(segment_start_lsn(segment_no, 16 << 20), 0x1_A000_0000);
        // With 1 GiB segments there are 4 per "log": 000000010000000100000003 = 1/C0000000.
        let name = WalFileName::parse("000000010000000100000003").unwrap();
        let WalFileKind::Segment { segment_no, .. } = name.kind() else {
            panic!()
        };
        assert_eq!(segment_start_lsn(segment_no, 1 << 30), 0x1_C000_0000);
    }
}

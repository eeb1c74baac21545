//! Timelines and the shape of the archived WAL: what `.history` files say,
//! and which segments of which timeline the archive holds.
//!
//! Pure: the inputs are file names and history texts, so retention,
//! `wal-show` and `wal-verify` share one model that unit tests can build by
//! hand. Segment numbers here are PostgreSQL's `XLogSegNo` (LSN / segment
//! size), not the packed `XXXXXXXXYYYYYYYY` of a name, so consecutive
//! segments differ by one whatever the segment size.

use std::collections::{BTreeMap, BTreeSet};

use crate::backup::catalog::parse_lsn;
use crate::wal_name::{WalFileKind, WalFileName};

/// One line of a `.history` file: WAL of `parent` up to `switch_lsn`
/// (exclusive) belongs to this line of history, then the next timeline
/// takes over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub parent: u32,
    pub switch_lsn: u64,
    pub reason: String,
}

/// The parsed `TTTTTTTT.history` of `timeline`: every ancestor, oldest
/// first (PostgreSQL copies the parent's lines and appends one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub timeline: u32,
    pub entries: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{timeline:08X}.history line {line}: {why}")]
pub struct HistoryError {
    pub timeline: u32,
    pub line: usize,
    pub why: String,
}

impl History {
    /// Parses PostgreSQL's format: `<parentTLI>\t<X/Y>\t<reason>` per line;
    /// blank lines and lines starting with `#` are skipped (as
    /// `readTimeLineHistory` does). Timelines must increase and stay below
    /// `timeline`, switch points must not go backwards.
    pub fn parse(timeline: u32, text: &str) -> Result<History, HistoryError> {
        let mut entries: Vec<HistoryEntry> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let fail = |why: String| HistoryError {
                timeline,
                line: i + 1,
                why,
            };
            let line = raw.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.splitn(3, |c: char| c.is_ascii_whitespace());
            let parent = fields
                .next()
                .and_then(|f| f.parse::<u32>().ok())
                .filter(|&p| p > 0)
                .ok_or_else(|| fail(format!("{raw:?} does not start with a timeline number")))?;
            let switch_lsn = fields
                .next()
                .map(str::trim)
                .and_then(parse_lsn)
                .ok_or_else(|| fail(format!("{raw:?} has no switch point (X/Y)")))?;
            let reason = fields.next().unwrap_or("").trim().to_string();
            if let Some(prev) = entries.last() {
                if parent <= prev.parent {
                    return Err(fail(format!(
                        "timeline {parent} after timeline {}: timelines must increase",
                        prev.parent
                    )));
                }
                if switch_lsn < prev.switch_lsn {
                    return Err(fail("switch points go backwards".into()));
                }
            }
            if parent >= timeline {
                return Err(fail(format!(
                    "parent timeline {parent} is not older than timeline {timeline}"
                )));
            }
            entries.push(HistoryEntry {
                parent,
                switch_lsn,
                reason,
            });
        }
        Ok(History { timeline, entries })
    }

    /// The timeline this one branched from, and where.
    pub fn parent(&self) -> Option<(u32, u64)> {
        self.entries.last().map(|e| (e.parent, e.switch_lsn))
    }

    /// Where this line of history left `ancestor` (None if `ancestor` is not
    /// on it, or is this timeline itself).
    pub fn switch_point_of(&self, ancestor: u32) -> Option<u64> {
        self.entries
            .iter()
            .find(|e| e.parent == ancestor)
            .map(|e| e.switch_lsn)
    }
}

/// One stretch of the path recovery follows to reach `timeline`'s end:
/// segments `begin..end` (end exclusive; `None` for the last, open-ended one)
/// are read from `timeline`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStep {
    pub timeline: u32,
    pub begin: u64,
    pub end: Option<u64>,
}

/// The path to `latest`: its ancestors from its history, then itself. The
/// segment holding a switch point is read from the newer timeline (which
/// starts with a copy of it), as recovery does.
pub fn path_to(latest: u32, history: Option<&History>, segment_size: u32) -> Vec<PathStep> {
    let seg = u64::from(segment_size.max(1));
    let mut steps = Vec::new();
    let mut begin = 0;
    for e in history.map(|h| h.entries.as_slice()).unwrap_or_default() {
        let end = e.switch_lsn / seg;
        steps.push(PathStep {
            timeline: e.parent,
            begin,
            end: Some(end),
        });
        begin = end;
    }
    steps.push(PathStep {
        timeline: latest,
        begin,
        end: None,
    });
    steps
}

/// Which timeline of `path` holds segment `segno`.
pub fn timeline_on_path(path: &[PathStep], segno: u64) -> u32 {
    path.iter()
        .find(|s| segno >= s.begin && s.end.is_none_or(|e| segno < e))
        .or(path.last())
        .map_or(1, |s| s.timeline)
}

/// Segment numbers per "log" (`XXXXXXXX` of a name).
fn per_log(segment_size: u32) -> u64 {
    0x1_0000_0000 / u64::from(segment_size.max(1))
}

/// `TTTTTTTTXXXXXXXXYYYYYYYY` for segment `segno` of `timeline`.
pub fn segment_file_name(timeline: u32, segno: u64, segment_size: u32) -> String {
    let n = per_log(segment_size);
    format!("{timeline:08X}{:08X}{:08X}", segno / n, segno % n)
}

/// (timeline, segno) of a 24-hex-digit segment name, `None` otherwise.
pub fn parse_segment(name: &str, segment_size: u32) -> Option<(u32, u64)> {
    match WalFileName::parse(name).ok()?.kind() {
        WalFileKind::Segment {
            timeline,
            segment_no,
        } => Some((timeline, unpack(segment_no, segment_size))),
        _ => None,
    }
}

fn unpack(packed: u64, segment_size: u32) -> u64 {
    (packed >> 32) * per_log(segment_size) + (packed & 0xFFFF_FFFF)
}

/// What one archived WAL file name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WalEntry {
    Segment {
        timeline: u32,
        segno: u64,
    },
    Partial {
        timeline: u32,
        segno: u64,
    },
    /// `<segment>.<offset>.backup`: the label of a backup starting there.
    BackupLabel {
        timeline: u32,
        segno: u64,
    },
    History {
        timeline: u32,
    },
}

impl WalEntry {
    pub fn classify(name: &str, segment_size: u32) -> Option<WalEntry> {
        let parsed = WalFileName::parse(name).ok()?;
        let seg_of = |s: &str| parse_segment(s.get(..24)?, segment_size);
        Some(match parsed.kind() {
            WalFileKind::Segment {
                timeline,
                segment_no,
            } => WalEntry::Segment {
                timeline,
                segno: unpack(segment_no, segment_size),
            },
            WalFileKind::Partial {
                timeline,
                segment_no,
            } => WalEntry::Partial {
                timeline,
                segno: unpack(segment_no, segment_size),
            },
            WalFileKind::BackupLabel { timeline } => WalEntry::BackupLabel {
                timeline,
                segno: seg_of(name)?.1,
            },
            WalFileKind::History { timeline } => WalEntry::History { timeline },
        })
    }

    /// (timeline, segno) for everything but history files.
    pub fn position(&self) -> Option<(u32, u64)> {
        match *self {
            WalEntry::Segment { timeline, segno }
            | WalEntry::Partial { timeline, segno }
            | WalEntry::BackupLabel { timeline, segno } => Some((timeline, segno)),
            WalEntry::History { .. } => None,
        }
    }

    pub fn timeline(&self) -> u32 {
        match *self {
            WalEntry::Segment { timeline, .. }
            | WalEntry::Partial { timeline, .. }
            | WalEntry::BackupLabel { timeline, .. }
            | WalEntry::History { timeline } => timeline,
        }
    }
}

/// The archive's WAL, by kind and timeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalInventory {
    pub segment_size: u32,
    /// Every file with a valid name, by name.
    pub files: BTreeMap<String, WalEntry>,
    /// Full segments per timeline.
    pub segments: BTreeMap<u32, BTreeSet<u64>>,
    /// Timelines with a `.history` file.
    pub histories: BTreeSet<u32>,
    /// Names under `wal/` that are no WAL file name (left alone).
    pub unknown: Vec<String>,
}

impl WalInventory {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>, segment_size: u32) -> WalInventory {
        let mut inv = WalInventory {
            segment_size,
            ..Default::default()
        };
        for name in names {
            let Some(entry) = WalEntry::classify(name, segment_size) else {
                inv.unknown.push(name.to_string());
                continue;
            };
            match entry {
                WalEntry::Segment { timeline, segno } => {
                    inv.segments.entry(timeline).or_default().insert(segno);
                }
                WalEntry::History { timeline } => {
                    inv.histories.insert(timeline);
                }
                _ => {}
            }
            inv.files.insert(name.to_string(), entry);
        }
        inv
    }

    /// The newest timeline the archive knows (a history file or any WAL).
    pub fn latest_timeline(&self) -> Option<u32> {
        self.files.values().map(WalEntry::timeline).max()
    }

    pub fn has_segment(&self, timeline: u32, segno: u64) -> bool {
        self.segments
            .get(&timeline)
            .is_some_and(|s| s.contains(&segno))
    }

    /// The highest segment archived along `path` (each step's own range).
    pub fn last_on_path(&self, path: &[PathStep]) -> Option<u64> {
        path.iter()
            .filter_map(|step| {
                let segs = self.segments.get(&step.timeline)?;
                let upper = step.end.unwrap_or(u64::MAX);
                segs.range(step.begin..upper).next_back().copied()
            })
            .max()
    }
}

/// Missing ranges (inclusive) between the first and last of `segnos`.
pub fn gaps(segnos: &BTreeSet<u64>) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut prev: Option<u64> = None;
    for &s in segnos {
        if let Some(p) = prev
            && s > p + 1
        {
            out.push((p + 1, s - 1));
        }
        prev = Some(s);
    }
    out
}

/// Consecutive runs (inclusive) of `segnos`.
pub fn runs(segnos: impl IntoIterator<Item = u64>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for s in segnos {
        match out.last_mut() {
            Some((_, end)) if s == *end + 1 => *end = s,
            Some((_, end)) if s <= *end => {}
            _ => out.push((s, s)),
        }
    }
    out
}

/// What `wal-show` prints for one timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineSummary {
    pub timeline: u32,
    /// Parent timeline and switch point, from this timeline's history file.
    pub parent: Option<(u32, u64)>,
    pub has_history: bool,
    pub first: Option<u64>,
    pub last: Option<u64>,
    pub count: usize,
    /// Missing ranges between first and last, inclusive.
    pub gaps: Vec<(u64, u64)>,
    pub partials: Vec<u64>,
    pub backup_labels: usize,
}

/// One summary per timeline the archive mentions (WAL or history), oldest
/// first. `histories` holds the parsed history files that could be read.
pub fn summarize(inv: &WalInventory, histories: &BTreeMap<u32, History>) -> Vec<TimelineSummary> {
    let timelines: BTreeSet<u32> = inv.files.values().map(WalEntry::timeline).collect();
    timelines
        .into_iter()
        .map(|tl| {
            let empty = BTreeSet::new();
            let segs = inv.segments.get(&tl).unwrap_or(&empty);
            let mut partials = Vec::new();
            let mut backup_labels = 0;
            for e in inv.files.values() {
                match *e {
                    WalEntry::Partial { timeline, segno } if timeline == tl => partials.push(segno),
                    WalEntry::BackupLabel { timeline, .. } if timeline == tl => backup_labels += 1,
                    _ => {}
                }
            }
            TimelineSummary {
                timeline: tl,
                parent: histories.get(&tl).and_then(History::parent),
                has_history: inv.histories.contains(&tl),
                first: segs.first().copied(),
                last: segs.last().copied(),
                count: segs.len(),
                gaps: gaps(segs),
                partials,
                backup_labels,
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub const SEG: u32 = 16 << 20;

    pub fn seg(tl: u32, n: u64) -> String {
        segment_file_name(tl, n, SEG)
    }

    #[test]
    fn parses_postgres_history_files() {
        let text = "1\t0/3000198\tno recovery target specified\n\n\
                    # a comment\n\
                    2\t0/50000A0\tat restore point \"before\"\n";
        let h = History::parse(3, text).unwrap();
        assert_eq!(h.entries.len(), 2);
        assert_eq!(h.entries[0].parent, 1);
        assert_eq!(h.entries[0].switch_lsn, 0x300_0198);
        assert_eq!(h.entries[1].reason, "at restore point \"before\"");
        assert_eq!(h.parent(), Some((2, 0x500_00A0)));
        assert_eq!(h.switch_point_of(1), Some(0x300_0198));
        assert_eq!(h.switch_point_of(3), None);
        assert_eq!(History::parse(2, "").unwrap().parent(), None);
    }

    #[test]
    fn refuses_broken_history_files() {
        for (tl, bad) in [
            (3, "x\t0/3000000\tr\n"),
            (3, "1\tnope\tr\n"),
            (3, "2\t0/3000000\tr\n1\t0/4000000\tr\n"),
            (3, "1\t0/5000000\tr\n2\t0/4000000\tr\n"),
            (2, "2\t0/5000000\tr\n"),
        ] {
            let e = History::parse(tl, bad).unwrap_err();
            assert!(e.to_string().contains(".history line"), "{e}");
        }
    }

    #[test]
    fn names_and_segment_numbers() {
        assert_eq!(seg(1, 4), "000000010000000000000004");
        assert_eq!(seg(2, 0x1A0), "0000000200000001000000A0");
        assert_eq!(segment_file_name(1, 7, 1 << 30), "000000010000000100000003");
        assert_eq!(
            parse_segment("0000000200000001000000A0", SEG),
            Some((2, 0x1A0))
        );
        assert_eq!(parse_segment("00000002.history", SEG), None);
        assert_eq!(
            WalEntry::classify("000000010000000000000004.00000028.backup", SEG),
            Some(WalEntry::BackupLabel {
                timeline: 1,
                segno: 4
            })
        );
        assert_eq!(
            WalEntry::classify("000000010000000000000005.partial", SEG),
            Some(WalEntry::Partial {
                timeline: 1,
                segno: 5
            })
        );
        assert_eq!(WalEntry::classify("junk", SEG), None);
    }

    /// Timeline 1: segments 1..=9 with 4 and 5 missing, a .partial at the
    /// switch (7); timeline 2 branched at 0/7000100 and has 7..=8; timeline
    /// 3 branched from 2 at 0/8800000 and has only its history so far.
    pub fn branching() -> (WalInventory, BTreeMap<u32, History>) {
        let mut names: Vec<String> = [1, 2, 3, 6, 7, 8, 9].iter().map(|&n| seg(1, n)).collect();
        names.push(format!("{}.partial", seg(1, 7)));
        names.push(format!("{}.00000028.backup", seg(1, 2)));
        names.extend([seg(2, 7), seg(2, 8)]);
        names.push("00000002.history".into());
        names.push("00000003.history".into());
        names.push("stray.tmp".into());
        let inv = WalInventory::new(names.iter().map(String::as_str), SEG);
        let mut h = BTreeMap::new();
        h.insert(
            2,
            History::parse(2, "1\t0/7000100\tno recovery target specified\n").unwrap(),
        );
        h.insert(
            3,
            History::parse(
                3,
                "1\t0/7000100\tno recovery target specified\n2\t0/8800000\tx\n",
            )
            .unwrap(),
        );
        (inv, h)
    }

    #[test]
    fn summarizes_branching_timelines_with_gaps_and_partials() {
        let (inv, h) = branching();
        assert_eq!(inv.unknown, ["stray.tmp"]);
        assert_eq!(inv.latest_timeline(), Some(3));
        let s = summarize(&inv, &h);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].timeline, 1);
        assert_eq!(s[0].parent, None);
        assert_eq!((s[0].first, s[0].last, s[0].count), (Some(1), Some(9), 7));
        assert_eq!(s[0].gaps, [(4, 5)]);
        assert_eq!(s[0].partials, [7]);
        assert_eq!(s[0].backup_labels, 1);
        assert_eq!(s[1].parent, Some((1, 0x700_0100)));
        assert!(s[1].has_history);
        assert_eq!((s[1].first, s[1].last, s[1].count), (Some(7), Some(8), 2));
        assert!(s[1].gaps.is_empty());
        assert_eq!(s[2].parent, Some((2, 0x880_0000)));
        assert_eq!((s[2].first, s[2].count), (None, 0));
    }

    #[test]
    fn the_path_to_the_latest_timeline() {
        let (inv, h) = branching();
        let path = path_to(3, h.get(&3), SEG);
        assert_eq!(
            path,
            [
                PathStep {
                    timeline: 1,
                    begin: 0,
                    end: Some(7)
                },
                PathStep {
                    timeline: 2,
                    begin: 7,
                    end: Some(8)
                },
                PathStep {
                    timeline: 3,
                    begin: 8,
                    end: None
                },
            ]
        );
        assert_eq!(timeline_on_path(&path, 6), 1);
        assert_eq!(
            timeline_on_path(&path, 7),
            2,
            "the switch segment is the new timeline's"
        );
        assert_eq!(timeline_on_path(&path, 8), 3);
        // Timeline 1's 8 and 9 are off the path; 2's 8 is timeline 3's range.
        assert_eq!(inv.last_on_path(&path), Some(7));
        let path2 = path_to(2, h.get(&2), SEG);
        assert_eq!(inv.last_on_path(&path2), Some(8));
        assert_eq!(path_to(1, None, SEG).len(), 1);
    }

    #[test]
    fn gaps_and_runs() {
        let s: BTreeSet<u64> = [1, 2, 3, 7, 9].into_iter().collect();
        assert_eq!(gaps(&s), [(4, 6), (8, 8)]);
        assert_eq!(runs(s.iter().copied()), [(1, 3), (7, 7), (9, 9)]);
        assert!(gaps(&BTreeSet::new()).is_empty());
    }
}

//! Retention, pure: which backups `delete retain` / `delete before` remove,
//! and exactly which archived WAL files no kept backup needs any more.
//!
//! The rule (docs/backups.md, "Retention and verification"): a WAL file on
//! timeline `t` in segment `s` is NEEDED by a kept backup B (timeline `tb`,
//! start segment `Sb`, start LSN `Lb`) iff `s >= Sb` and either `t == tb`,
//! or `t`'s history lists `tb` with a switch point `>= Lb` (t branched off
//! B's line after B started, so B can be recovered onto t). Everything
//! under `wal/` that no kept backup needs goes, except `.history` files:
//! they are tiny and recovery reads every one of them to pick a timeline.
//! A timeline newer than `tb` whose history file is missing or unreadable
//! is kept: its ancestry is unknown, and keeping too much is the safe error.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::backup::catalog::{BackupRecord, Reservation};
use crate::timeline::{History, WalEntry, WalInventory, parse_segment};

/// What retention needs to know of one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupPoint {
    pub name: String,
    pub timeline: u32,
    /// XLogSegNo of the start LSN.
    pub start_segno: u64,
    pub start_lsn: u64,
    /// XLogSegNo of the last segment a restore of it needs (its stop LSN's);
    /// `None` for a backup still running.
    pub stop_segno: Option<u64>,
    /// What of the WAL after its start it needs.
    pub needs: Needs,
}

/// What WAL a backup that stays needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Everything from its start on, on its timeline and every branch of
    /// it: it can be restored to any later point (a kept backup).
    FromStart,
    /// Only its own range, start to stop segment on its timeline: it can
    /// be restored to its consistency point (a permanent backup that
    /// retention would otherwise have deleted, as WAL-G keeps them).
    OwnRange,
}

impl BackupPoint {
    pub fn of(record: &BackupRecord) -> BackupPoint {
        let size = u64::from(record.wal_segment_size.max(1));
        BackupPoint {
            name: record.name.clone(),
            timeline: record.timeline,
            start_segno: record.start_lsn() / size,
            start_lsn: record.start_lsn(),
            stop_segno: Some(record.stop_lsn().saturating_sub(1) / size),
            needs: Needs::FromStart,
        }
    }

    /// A permanent backup retention would otherwise delete: kept, with the
    /// WAL of its own range.
    pub fn permanent(record: &BackupRecord) -> BackupPoint {
        BackupPoint {
            needs: Needs::OwnRange,
            ..BackupPoint::of(record)
        }
    }

    /// A backup-push in progress, from its reservation.
    pub fn running(r: &Reservation) -> BackupPoint {
        let size = u64::from(r.wal_segment_size.max(1));
        BackupPoint {
            name: r.name.clone(),
            timeline: r.timeline,
            start_segno: r.start_lsn() / size,
            start_lsn: r.start_lsn(),
            stop_segno: None,
            needs: Needs::FromStart,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    #[error("refusing to delete every backup: at least one must be kept (retain N needs N >= 1)")]
    EmptyKeepSet,
    #[error("no backup named {0} in the archive (see `walship backup-list`)")]
    UnknownBackup(String),
}

/// How many of the backups (oldest first) `delete retain N` removes.
pub fn select_retain(total: usize, keep: usize) -> Result<usize, RetentionError> {
    if keep == 0 {
        return Err(RetentionError::EmptyKeepSet);
    }
    Ok(total.saturating_sub(keep))
}

/// What `delete before` removes backups before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Before {
    /// Every backup older than this one; it stays.
    Name(String),
    /// Every backup older than the newest one that finished at or before
    /// this time, which stays: the archive can still be restored to TIME.
    Time(SystemTime),
}

/// How many of `backups` ((name, finish time), oldest first) `delete
/// before` removes. Never the newest: the target itself always stays.
pub fn select_before(
    backups: &[(&str, Option<SystemTime>)],
    target: &Before,
) -> Result<usize, RetentionError> {
    match target {
        Before::Name(name) => backups
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| RetentionError::UnknownBackup(name.clone())),
        Before::Time(t) => Ok(backups
            .iter()
            .rposition(|(_, finish)| finish.is_some_and(|f| f <= *t))
            .unwrap_or(0)),
    }
}

/// Whether WAL at (`timeline`, `segno`) is needed by backup `b`.
pub fn needed_by(
    b: &BackupPoint,
    timeline: u32,
    segno: u64,
    histories: &BTreeMap<u32, History>,
) -> bool {
    if segno < b.start_segno {
        return false;
    }
    if b.needs == Needs::OwnRange {
        return timeline == b.timeline && b.stop_segno.is_some_and(|stop| segno <= stop);
    }
    if timeline == b.timeline {
        return true;
    }
    match histories.get(&timeline) {
        Some(h) => h
            .switch_point_of(b.timeline)
            .is_some_and(|switch| switch >= b.start_lsn),
        None => timeline > b.timeline,
    }
}

/// What a delete removes, in the order it removes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Backups being taken right now (a live reservation): their data and
    /// every WAL file from their start stay.
    pub running_kept: Vec<String>,
    /// Complete backups, oldest first.
    pub backups: Vec<String>,
    /// Interrupted backups' data (no record), older than every kept backup.
    pub unfinished: Vec<String>,
    /// Names under `wal/`, oldest first.
    pub wal: Vec<String>,
    /// Interrupted backups left alone (perhaps a backup-push running now).
    pub unfinished_kept: Vec<String>,
    /// WAL files that stay.
    pub wal_kept: usize,
}

/// The plan for keeping `keep` and removing `delete`, given the backups
/// running now, the archive's WAL, its parsed histories and the names of
/// unfinished backups that are not running.
pub fn plan(
    keep: &[BackupPoint],
    delete: &[BackupPoint],
    running: &[BackupPoint],
    unfinished: &[String],
    wal: &WalInventory,
    histories: &BTreeMap<u32, History>,
) -> Result<Plan, RetentionError> {
    // Permanent backups kept only for themselves do not move the line
    // below which interrupted backups are cleared.
    let oldest = keep
        .iter()
        .filter(|b| b.needs == Needs::FromStart)
        .min_by_key(|b| (b.start_segno, b.timeline))
        .ok_or(RetentionError::EmptyKeepSet)?;
    let mut out = Plan {
        backups: delete.iter().map(|b| b.name.clone()).collect(),
        running_kept: running.iter().map(|b| b.name.clone()).collect(),
        ..Plan::default()
    };

    // A running backup needs its WAL as much as a kept one: a standby's
    // backup can start before the newest complete backup did.
    let needs: Vec<&BackupPoint> = keep.iter().chain(running).collect();
    let mut doomed: Vec<(u64, u32, &str)> = Vec::new();
    for (name, entry) in &wal.files {
        let needed = match entry.position() {
            None => true, // .history
            Some((tl, segno)) => needs.iter().any(|b| needed_by(b, tl, segno, histories)),
        };
        if needed {
            out.wal_kept += 1;
        } else {
            let (tl, segno) = entry.position().expect("histories are needed");
            doomed.push((segno, tl, name.as_str()));
        }
    }
    doomed.sort();
    out.wal = doomed.into_iter().map(|(_, _, n)| n.to_string()).collect();

    // A backup-push in progress has no record yet and must not lose its
    // data. Its start segment (in its name) is at or after the newest
    // backup's on the server's timeline, so only data strictly older than
    // the oldest kept backup, on a timeline no newer, is taken.
    for name in unfinished {
        let older = unfinished_start(name, wal.segment_size)
            .is_some_and(|(tl, segno)| segno < oldest.start_segno && tl <= oldest.timeline);
        if older {
            out.unfinished.push(name.clone());
        } else {
            out.unfinished_kept.push(name.clone());
        }
    }
    Ok(out)
}

/// A timeline whose WAL a plan would remove although it may be the WAL of a
/// server that runs now and that no kept backup can restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineAtRisk {
    pub timeline: u32,
    /// (parent timeline, switch LSN) from its history file.
    pub fork: Option<(u32, u64)>,
    /// Its newest archived segment.
    pub last_segno: u64,
    /// How many of its files the plan removes.
    pub removed: usize,
}

/// Timelines whose WAL the plan removes while they may be a running
/// server's (the archive's newest timeline, or one with WAL archived after
/// the newest kept backup finished: `recent`) and no kept or running backup
/// can be recovered onto their end. This is what a server restored from an
/// older backup and promoted into the same prefix looks like: deleting that
/// backup and this WAL would leave the running server with nothing to
/// restore from.
pub fn timelines_at_risk(
    plan: &Plan,
    keep: &[BackupPoint],
    running: &[BackupPoint],
    wal: &WalInventory,
    histories: &BTreeMap<u32, History>,
    recent: &std::collections::BTreeSet<u32>,
) -> Vec<TimelineAtRisk> {
    let newest = wal.segments.keys().max().copied();
    let mut removed: BTreeMap<u32, usize> = BTreeMap::new();
    for name in &plan.wal {
        if let Some((tl, _)) = WalEntry::classify(name, wal.segment_size).and_then(|e| e.position())
        {
            *removed.entry(tl).or_default() += 1;
        }
    }
    let mut out = Vec::new();
    for (&tl, &count) in &removed {
        let Some(&last) = wal.segments.get(&tl).and_then(|s| s.last()) else {
            continue;
        };
        let live = Some(tl) == newest || recent.contains(&tl);
        let reachable = keep
            .iter()
            .chain(running)
            .any(|b| needed_by(b, tl, last, histories));
        if live && !reachable {
            out.push(TimelineAtRisk {
                timeline: tl,
                fork: histories.get(&tl).and_then(History::parent),
                last_segno: last,
                removed: count,
            });
        }
    }
    out
}

/// Kept backups whose own WAL (start to stop segment, on their timeline)
/// is not all in the archive: they could not be restored, so deleting the
/// backups older than them could leave nothing restorable. (name, missing
/// segment numbers)
pub fn kept_backups_missing_wal(
    keep: &[BackupPoint],
    wal: &WalInventory,
) -> Vec<(String, Vec<u64>)> {
    keep.iter()
        .filter_map(|b| {
            let stop = b.stop_segno?;
            let missing: Vec<u64> = (b.start_segno..=stop.max(b.start_segno))
                .filter(|&s| !wal.has_segment(b.timeline, s))
                .collect();
            (!missing.is_empty()).then(|| (b.name.clone(), missing))
        })
        .collect()
}

/// (timeline, segno) from `base_<segment>` or `base_<segment>_<n>`.
fn unfinished_start(name: &str, segment_size: u32) -> Option<(u32, u64)> {
    let rest = name.strip_prefix("base_")?;
    parse_segment(rest.get(..24)?, segment_size)
}

/// (count, inclusive ranges of segment numbers) per timeline of the WAL a
/// plan removes, for the dry run's summary. `.partial` and `.backup` files
/// count with their segment.
pub fn summarize_wal(
    names: &[String],
    segment_size: u32,
) -> BTreeMap<u32, (usize, Vec<(u64, u64)>)> {
    let mut by_tl: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for n in names {
        if let Some((tl, segno)) = WalEntry::classify(n, segment_size).and_then(|e| e.position()) {
            by_tl.entry(tl).or_default().push(segno);
        }
    }
    by_tl
        .into_iter()
        .map(|(tl, mut segs)| {
            let count = segs.len();
            segs.sort_unstable();
            (tl, (count, crate::timeline::runs(segs)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::tests::{SEG, seg};
    use std::time::Duration;

    fn point(name: &str, tl: u32, lsn: u64) -> BackupPoint {
        BackupPoint {
            name: name.into(),
            timeline: tl,
            start_segno: lsn / u64::from(SEG),
            start_lsn: lsn,
            stop_segno: Some(lsn / u64::from(SEG)),
            needs: Needs::FromStart,
        }
    }

    fn inventory(names: &[String]) -> WalInventory {
        WalInventory::new(names.iter().map(String::as_str), SEG)
    }

    fn histories(list: &[(u32, &str)]) -> BTreeMap<u32, History> {
        list.iter()
            .map(|&(tl, text)| (tl, History::parse(tl, text).unwrap()))
            .collect()
    }

    #[test]
    fn linear_timeline_removes_exactly_what_precedes_the_oldest_kept_start() {
        let mut names: Vec<String> = (1..=12).map(|n| seg(1, n)).collect();
        names.push(format!("{}.00000028.backup", seg(1, 2)));
        names.push(format!("{}.00000028.backup", seg(1, 5)));
        names.push(format!("{}.00000060.backup", seg(1, 9)));
        let wal = inventory(&names);
        let old = point("base_000000010000000000000002", 1, 0x200_0028);
        let b2 = point("base_000000010000000000000005", 1, 0x500_0028);
        let b3 = point("base_000000010000000000000009", 1, 0x900_0060);
        let p = plan(&[b2, b3], &[old], &[], &[], &wal, &BTreeMap::new()).unwrap();
        assert_eq!(p.backups, ["base_000000010000000000000002"]);
        // Oldest first; the removed backup's label goes with its segment.
        assert_eq!(
            p.wal,
            [
                seg(1, 1),
                seg(1, 2),
                format!("{}.00000028.backup", seg(1, 2)),
                seg(1, 3),
                seg(1, 4),
            ]
        );
        assert_eq!(
            p.wal_kept,
            names.len() - 5,
            "segments 5..=12 and the kept labels"
        );
        assert!(!p.wal.iter().any(|n| n.starts_with(&seg(1, 5))));
    }

    #[test]
    fn branch_created_after_the_oldest_kept_backup_started_is_kept() {
        // B starts on timeline 1 at 0/5000028; timeline 2 forks at 0/8000100
        // (after B started): restoring B with recovery_target_timeline =
        // latest follows timeline 2, so its WAL stays.
        let mut names: Vec<String> = (1..=9).map(|n| seg(1, n)).collect();
        names.push(format!("{}.partial", seg(1, 8)));
        names.extend((8..=10).map(|n| seg(2, n)));
        names.push("00000002.history".into());
        let wal = inventory(&names);
        let h = histories(&[(2, "1\t0/8000100\tno recovery target specified\n")]);
        let b = point("base_000000010000000000000005", 1, 0x500_0028);
        let p = plan(std::slice::from_ref(&b), &[], &[], &[], &wal, &h).unwrap();
        assert_eq!(p.wal, [seg(1, 1), seg(1, 2), seg(1, 3), seg(1, 4)]);
        for n in (8..=10).map(|n| seg(2, n)) {
            assert!(!p.wal.contains(&n), "{n} removed");
        }
        assert!(!p.wal.contains(&"00000002.history".to_string()));
        assert!(!p.wal.contains(&format!("{}.partial", seg(1, 8))));
    }

    #[test]
    fn branch_created_before_the_oldest_kept_backup_started_is_removed() {
        // Timeline 2 forked at 0/3000000, before B (timeline 1, 0/5000028)
        // started: B cannot be recovered onto it. Its segments go, its
        // history stays.
        let mut names: Vec<String> = (1..=9).map(|n| seg(1, n)).collect();
        names.push(format!("{}.partial", seg(1, 3)));
        names.extend((3..=6).map(|n| seg(2, n)));
        names.push("00000002.history".into());
        let wal = inventory(&names);
        let h = histories(&[(2, "1\t0/3000000\tno recovery target specified\n")]);
        let b = point("base_000000010000000000000005", 1, 0x500_0028);
        let p = plan(std::slice::from_ref(&b), &[], &[], &[], &wal, &h).unwrap();
        for n in (3..=6).map(|n| seg(2, n)) {
            assert!(p.wal.contains(&n), "{n} kept");
        }
        assert!(p.wal.contains(&format!("{}.partial", seg(1, 3))));
        assert!(!p.wal.contains(&"00000002.history".to_string()));
        for n in (5..=9).map(|n| seg(1, n)) {
            assert!(!p.wal.contains(&n), "{n} removed");
        }
        // A backup taken on timeline 2 keeps its own line and nothing of 1
        // after the fork it does not need.
        let b2 = point("base_000000020000000000000005", 2, 0x500_0100);
        let p = plan(std::slice::from_ref(&b2), &[], &[], &[], &wal, &h).unwrap();
        assert!(p.wal.contains(&seg(2, 4)));
        assert!(!p.wal.contains(&seg(2, 5)) && !p.wal.contains(&seg(2, 6)));
        assert!(
            p.wal.contains(&seg(1, 7)),
            "timeline 1 after the fork is not 2's"
        );
    }

    #[test]
    fn grandchild_timelines_follow_their_whole_history() {
        // 1 -> 2 at 0/6000000 -> 3 at 0/7000000; B on 1 at 0/5000028: all
        // three lines from segment 5 on are B's.
        let mut names: Vec<String> = (1..=8).map(|n| seg(1, n)).collect();
        names.extend([seg(2, 6), seg(3, 7), seg(3, 8)]);
        let wal = inventory(&names);
        let h = histories(&[
            (2, "1\t0/6000000\tx\n"),
            (3, "1\t0/6000000\tx\n2\t0/7000000\ty\n"),
        ]);
        let b = point("b", 1, 0x500_0028);
        let p = plan(&[b], &[], &[], &[], &wal, &h).unwrap();
        assert_eq!(p.wal, (1..=4).map(|n| seg(1, n)).collect::<Vec<_>>());
        // A timeline without its history file is kept (unknown ancestry).
        names.push(seg(4, 2));
        let wal = inventory(&names);
        let b = point("b", 1, 0x100_0028);
        let p = plan(&[b], &[], &[], &[], &wal, &h).unwrap();
        assert!(!p.wal.contains(&seg(4, 2)));
    }

    #[test]
    fn history_files_are_always_kept() {
        let names: Vec<String> = vec![
            seg(1, 1),
            "00000002.history".into(),
            "00000003.history".into(),
        ];
        let wal = inventory(&names);
        let b = point("b", 3, 0x900_0028);
        let p = plan(&[b], &[], &[], &[], &wal, &BTreeMap::new()).unwrap();
        assert_eq!(p.wal, [seg(1, 1)]);
        assert_eq!(p.wal_kept, 2);
    }

    #[test]
    fn backup_labels_of_removed_backups_go_and_kept_ones_stay() {
        let names: Vec<String> = vec![
            format!("{}.00000028.backup", seg(1, 2)),
            format!("{}.00000100.backup", seg(1, 6)),
            seg(1, 2),
            seg(1, 6),
        ];
        let wal = inventory(&names);
        let p = plan(
            &[point("new", 1, 0x600_0100)],
            &[point("old", 1, 0x200_0028)],
            &[],
            &[],
            &wal,
            &BTreeMap::new(),
        )
        .unwrap();
        let mut got = p.wal.clone();
        got.sort();
        assert_eq!(got, [seg(1, 2), format!("{}.00000028.backup", seg(1, 2))]);
    }

    #[test]
    fn refuses_an_empty_keep_set() {
        let wal = inventory(&[seg(1, 1)]);
        assert_eq!(
            plan(&[], &[point("a", 1, 0)], &[], &[], &wal, &BTreeMap::new()),
            Err(RetentionError::EmptyKeepSet)
        );
        assert_eq!(select_retain(3, 0), Err(RetentionError::EmptyKeepSet));
    }

    #[test]
    fn the_newest_backup_is_never_selected() {
        assert_eq!(select_retain(3, 2), Ok(1));
        assert_eq!(select_retain(3, 1), Ok(2));
        assert_eq!(select_retain(2, 5), Ok(0));
        let t = |s: u64| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        let backups = [("a", t(100)), ("b", t(200)), ("c", t(300))];
        assert_eq!(select_before(&backups, &Before::Name("c".into())), Ok(2));
        assert_eq!(select_before(&backups, &Before::Name("a".into())), Ok(0));
        assert_eq!(
            select_before(&backups, &Before::Name("zz".into())),
            Err(RetentionError::UnknownBackup("zz".into()))
        );
        let at = |s: u64| Before::Time(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        // The newest backup finished by TIME stays (restores to TIME need it).
        assert_eq!(select_before(&backups, &at(250)), Ok(1));
        assert_eq!(select_before(&backups, &at(200)), Ok(1));
        assert_eq!(select_before(&backups, &at(50)), Ok(0));
        assert_eq!(select_before(&backups, &at(10_000)), Ok(2), "keeps c");
    }

    #[test]
    fn unfinished_backups_older_than_every_kept_one_go_and_others_stay() {
        let wal = inventory(&[seg(1, 1)]);
        let unfinished = vec![
            "base_000000010000000000000003".to_string(),
            "base_000000010000000000000003_2".to_string(),
            "base_000000010000000000000009".to_string(),
            "base_000000020000000000000004".to_string(),
            "custom".to_string(),
        ];
        let p = plan(
            &[point("k", 1, 0x500_0028)],
            &[],
            &[],
            &unfinished,
            &wal,
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(
            p.unfinished,
            [
                "base_000000010000000000000003",
                "base_000000010000000000000003_2"
            ]
        );
        assert_eq!(
            p.unfinished_kept,
            [
                "base_000000010000000000000009",
                "base_000000020000000000000004",
                "custom"
            ]
        );
    }

    #[test]
    fn a_running_standby_backup_keeps_its_wal_though_it_started_before_the_newest() {
        // A standby's backup started in segment 3; the primary's newest
        // complete backup started in 6. `retain 1` keeps only the primary's:
        // without the reservation, segments 3..=5 would go.
        let names: Vec<String> = (1..=9).map(|n| seg(1, n)).collect();
        let wal = inventory(&names);
        let kept = point("base_000000010000000000000006", 1, 0x600_0028);
        let old = point("base_000000010000000000000002", 1, 0x200_0028);
        let standby = point("base_000000010000000000000003", 1, 0x300_0028);
        let p = plan(
            std::slice::from_ref(&kept),
            std::slice::from_ref(&old),
            std::slice::from_ref(&standby),
            &[],
            &wal,
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(p.wal, [seg(1, 1), seg(1, 2)]);
        assert_eq!(p.running_kept, ["base_000000010000000000000003"]);
        assert!(p.unfinished.is_empty());
    }

    #[test]
    fn the_wal_of_a_promoted_restore_of_an_older_backup_is_at_risk() {
        // B1 (segment 2) and B2 (segment 6) on timeline 1. A server restored
        // from B1, recovered to 0/4000000 and promoted, archives timeline 2
        // into the same prefix up to segment 12. `retain 1` keeps B2, which
        // cannot be recovered onto timeline 2 (it forked before B2 began).
        let mut names: Vec<String> = (1..=8).map(|n| seg(1, n)).collect();
        names.extend((4..=12).map(|n| seg(2, n)));
        names.push("00000002.history".into());
        let wal = inventory(&names);
        let h = histories(&[(2, "1\t0/4000000\tbefore transaction 900\n")]);
        let b1 = point("b1", 1, 0x200_0028);
        let b2 = point("b2", 1, 0x600_0028);
        let p = plan(
            std::slice::from_ref(&b2),
            std::slice::from_ref(&b1),
            &[],
            &[],
            &wal,
            &h,
        )
        .unwrap();
        assert!(
            p.wal.contains(&seg(2, 12)),
            "the plan would remove timeline 2"
        );
        let risk = timelines_at_risk(
            &p,
            std::slice::from_ref(&b2),
            &[],
            &wal,
            &h,
            &Default::default(),
        );
        assert_eq!(
            risk,
            [TimelineAtRisk {
                timeline: 2,
                fork: Some((1, 0x400_0000)),
                last_segno: 12,
                removed: 9,
            }]
        );
        // Ordinary retention on one timeline puts nothing at risk.
        let linear = inventory(&(1..=8).map(|n| seg(1, n)).collect::<Vec<_>>());
        let p = plan(
            std::slice::from_ref(&b2),
            std::slice::from_ref(&b1),
            &[],
            &[],
            &linear,
            &BTreeMap::new(),
        )
        .unwrap();
        assert!(!p.wal.is_empty());
        assert!(
            timelines_at_risk(
                &p,
                std::slice::from_ref(&b2),
                &[],
                &linear,
                &BTreeMap::new(),
                &Default::default()
            )
            .is_empty()
        );
        // Nor does an old timeline abandoned at a promotion before every kept backup.
        let mut names: Vec<String> = (1..=4).map(|n| seg(1, n)).collect();
        names.extend((4..=9).map(|n| seg(2, n)));
        let wal = inventory(&names);
        let h = histories(&[(2, "1\t0/4800000\tx\n")]);
        let on2 = point("on2", 2, 0x600_0028);
        let p = plan(std::slice::from_ref(&on2), &[], &[], &[], &wal, &h).unwrap();
        assert!(p.wal.contains(&seg(1, 4)));
        assert!(
            timelines_at_risk(
                &p,
                std::slice::from_ref(&on2),
                &[],
                &wal,
                &h,
                &Default::default()
            )
            .is_empty()
        );
        // ... unless timeline 1 is still archived to after the kept backup
        // finished: two servers write into this prefix.
        let recent = [1u32].into_iter().collect();
        let risk = timelines_at_risk(&p, std::slice::from_ref(&on2), &[], &wal, &h, &recent);
        assert_eq!(risk.len(), 1);
        assert_eq!(risk[0].timeline, 1);
    }

    #[test]
    fn kept_backups_without_their_wal_are_named() {
        let names: Vec<String> = [1, 2, 3, 5].iter().map(|&n| seg(1, n)).collect();
        let wal = inventory(&names);
        let mut whole = point("whole", 1, 0x200_0028);
        whole.stop_segno = Some(3);
        let mut holed = point("holed", 1, 0x300_0028);
        holed.stop_segno = Some(5);
        assert_eq!(
            kept_backups_missing_wal(&[whole, holed], &wal),
            [("holed".to_string(), vec![4])]
        );
    }

    #[test]
    fn a_permanent_backup_keeps_its_own_range_and_nothing_after() {
        // P (segments 2..=3) is permanent; the newest kept backup starts in 8.
        let names: Vec<String> = (1..=10).map(|n| seg(1, n)).collect();
        let wal = inventory(&names);
        let mut permanent = point("p", 1, 0x200_0028);
        permanent.stop_segno = Some(3);
        permanent.needs = Needs::OwnRange;
        let newest = point("n", 1, 0x800_0028);
        let p = plan(&[newest, permanent], &[], &[], &[], &wal, &BTreeMap::new()).unwrap();
        assert_eq!(
            p.wal,
            [seg(1, 1), seg(1, 4), seg(1, 5), seg(1, 6), seg(1, 7)]
        );
    }

    #[test]
    fn summary_counts_and_ranges_per_timeline() {
        let names = vec![seg(1, 1), seg(1, 2), seg(1, 4), seg(2, 7)];
        let s = summarize_wal(&names, SEG);
        assert_eq!(s[&1], (3, vec![(1, 2), (4, 4)]));
        assert_eq!(s[&2], (1, vec![(7, 7)]));
    }
}

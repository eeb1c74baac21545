//! `walship wal-verify [integrity] [timeline] [--json]`: is the WAL a
//! restore needs all there, and intact?
//!
//! Checked: every segment from the oldest backup's start to the newest
//! segment archived along the latest timeline's path (its history says
//! which timeline holds which range; the segment holding a switch point is
//! read from the newer timeline, as recovery does), and every backup's own
//! start..stop WAL. Each present segment is downloaded and decoded: the
//! object format checks the BLAKE3 of the content, then the page header
//! must name this cluster and the segment's position. Downloads run in
//! parallel (`download_concurrency` plugin instances), one object in memory
//! per worker. Exit 0 when all is well; 1 with the list of missing and
//! damaged files otherwise (WAL-G's semantics). WAL-G's check names
//! (`integrity`, `timeline`) are accepted; both checks always run.
//!
//! In an encrypted archive it also reports which key each segment needs
//! (by fingerprint, as ranges of segments): what must be kept before an
//! old key is thrown away after a rotation.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;

use super::open_store;
use super::wal_show::{ArchiveView, range_text};
use super::{Context, EXIT_FAILURE, Failure};
use crate::backup::catalog::format_lsn;
use crate::crypto::{Fingerprint, Keys};
use crate::object_format::{self, Stored};
use crate::pg_control::parse_segment_header;
use crate::storage::{Key, ObjectStore, StorageError};
use crate::timeline::{History, PathStep, WalInventory, path_to, runs, timeline_on_path};
use crate::transfer;

/// What one backup needs: segments `start..=stop` of `timeline`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSpan {
    pub name: String,
    pub timeline: u32,
    pub start: u64,
    pub stop: u64,
}

/// The segments a restore needs, worked out from names alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    pub latest: Option<u32>,
    pub path: Vec<PathStep>,
    /// The range along the path (inclusive), if there is one.
    pub range: Option<(u64, u64)>,
    /// (segno, timeline), every segment to be present.
    pub segments: BTreeSet<(u64, u32)>,
    /// Backups whose start is not on the latest timeline's path (a branch
    /// abandoned later): only their own start..stop is checked.
    pub off_path: Vec<String>,
    /// The latest timeline is > 1 and its history could not be read.
    pub history_missing: bool,
}

pub fn expected(
    inv: &WalInventory,
    histories: &BTreeMap<u32, History>,
    backups: &[BackupSpan],
) -> Expected {
    let Some(latest) = inv
        .latest_timeline()
        .or(backups.iter().map(|b| b.timeline).max())
    else {
        return Expected::default();
    };
    let history = histories.get(&latest);
    let path = path_to(latest, history, inv.segment_size);
    let mut out = Expected {
        latest: Some(latest),
        history_missing: latest > 1 && history.is_none(),
        ..Expected::default()
    };
    let on_path: Vec<&BackupSpan> = backups
        .iter()
        .filter(|b| timeline_on_path(&path, b.start) == b.timeline)
        .collect();
    out.off_path = backups
        .iter()
        .filter(|b| timeline_on_path(&path, b.start) != b.timeline)
        .map(|b| b.name.clone())
        .collect();
    let first = on_path.iter().map(|b| b.start).min().or_else(|| {
        // No backup to start from: check what is archived along the path.
        path.iter()
            .filter_map(|step| {
                let segs = inv.segments.get(&step.timeline)?;
                segs.range(step.begin..step.end.unwrap_or(u64::MAX))
                    .next()
                    .copied()
            })
            .min()
    });
    let last = [
        inv.last_on_path(&path),
        on_path.iter().map(|b| b.stop).max(),
    ]
    .into_iter()
    .flatten()
    .max();
    if let (Some(first), Some(last)) = (first, last)
        && first <= last
    {
        out.range = Some((first, last));
        for s in first..=last {
            out.segments.insert((s, timeline_on_path(&path, s)));
        }
    }
    for b in backups {
        for s in b.start..=b.stop {
            out.segments.insert((s, b.timeline));
        }
    }
    out.path = path;
    out
}

pub async fn run(ctx: &Context, checks: &[String], as_json: bool) -> Result<(), Failure> {
    let fail = |m: String| Failure::new(EXIT_FAILURE, format!("wal-verify: {m}"));
    if let Some(c) = checks
        .iter()
        .find(|c| !matches!(c.as_str(), "integrity" | "timeline"))
    {
        return Err(fail(format!(
            "unknown check {c:?} (WAL-G's checks are integrity and timeline; both always run)"
        )));
    }
    let prefix = ctx.prefix().map_err(|e| fail(format!("{e:#}")))?;
    let plugin = ctx.load_plugin().map_err(|e| fail(format!("{e:#}")))?;
    let mut store = open_store(ctx, &plugin, &fail).await?;
    let view = ArchiveView::load(&mut store, prefix, &ctx.settings.keys)
        .await
        .map_err(fail)?;
    let size = u64::from(view.segment_size);
    let spans: Vec<BackupSpan> = view
        .backups
        .iter()
        .map(|b| BackupSpan {
            name: b.name.clone(),
            timeline: b.timeline,
            start: b.start_lsn() / size,
            stop: b.stop_lsn() / size,
        })
        .collect();
    let exp = expected(&view.inventory, &view.histories, &spans);

    let mut missing = Vec::new();
    let mut present = Vec::new();
    for &(segno, tl) in &exp.segments {
        if view.inventory.has_segment(tl, segno) {
            present.push((view.segment_name(tl, segno), segno));
        } else {
            missing.push(view.segment_name(tl, segno));
        }
    }
    let workers = ctx.settings.download_concurrency.max(1);
    let checked = present.len();
    let (gone, damaged, by_key) =
        check_all(store, present, workers, &view, &ctx.settings.keys).await;
    let by_key: Vec<(String, usize, Vec<String>)> = by_key
        .into_iter()
        .map(|(fp, names)| (fp, names.len(), missing_ranges(&names, view.segment_size)))
        .collect();
    missing.extend(gone);
    missing.sort_by(|a, b| (&a[8..], &a[..8]).cmp(&(&b[8..], &b[..8])));
    let mut problems: Vec<String> = Vec::new();
    if exp.history_missing {
        let latest = exp.latest.unwrap_or(1);
        problems.push(format!(
            "{latest:08X}.history is missing or unreadable: the timeline path is unknown"
        ));
    }
    problems.extend(
        view.history_problems
            .iter()
            .map(|p| format!("unreadable history file {p}")),
    );

    let backup_status: Vec<(String, String, String, bool)> = view
        .backups
        .iter()
        .map(|b| {
            let ok = (b.start_lsn() / size..=b.stop_lsn() / size)
                .map(|s| view.segment_name(b.timeline, s))
                .all(|n| !missing.contains(&n) && !damaged.iter().any(|(d, _)| *d == n));
            (b.name.clone(), b.start_wal.clone(), b.stop_wal.clone(), ok)
        })
        .collect();
    let ok = missing.is_empty() && damaged.is_empty() && problems.is_empty();

    let out = if as_json {
        let doc = json!({
            "ok": ok,
            "latest_timeline": exp.latest,
            "path": exp.path.iter().map(|s| json!({
                "timeline": s.timeline,
                "from": view.segment_name(s.timeline, s.begin),
                "until": s.end.map(|e| view.segment_name(s.timeline, e)),
            })).collect::<Vec<_>>(),
            "first": exp.range.map(|(a, _)| view.segment_name(timeline_on_path(&exp.path, a), a)),
            "last": exp.range.map(|(_, b)| view.segment_name(timeline_on_path(&exp.path, b), b)),
            "expected": exp.segments.len(),
            "checked": checked,
            "missing": missing,
            "damaged": damaged.iter().map(|(n, why)| json!({"name": n, "error": why})).collect::<Vec<_>>(),
            "problems": problems,
            "backups": backup_status.iter().map(|(n, a, b, ok)| json!({
                "name": n, "start_wal": a, "stop_wal": b, "wal_ok": ok,
            })).collect::<Vec<_>>(),
            "off_path_backups": exp.off_path,
            "keys": by_key.iter().map(|(fp, n, ranges)| json!({
                "fingerprint": fp, "segments": n, "ranges": ranges,
            })).collect::<Vec<_>>(),
        });
        serde_json::to_string_pretty(&doc).expect("json") + "\n"
    } else {
        let mut o = String::new();
        let path: Vec<String> = exp
            .path
            .iter()
            .map(|s| {
                let switch = exp
                    .latest
                    .and_then(|l| view.histories.get(&l))
                    .and_then(|h| h.switch_point_of(s.timeline));
                match switch {
                    Some(lsn) => format!("{} until {}", s.timeline, format_lsn(lsn)),
                    None => s.timeline.to_string(),
                }
            })
            .collect();
        match exp.range {
            Some((a, b)) => o.push_str(&format!(
                "timeline path {}: {} segments from {} to {}, {checked} present and checked\n",
                path.join(" -> "),
                exp.segments.len(),
                view.segment_name(timeline_on_path(&exp.path, a), a),
                view.segment_name(timeline_on_path(&exp.path, b), b),
            )),
            None => o.push_str("no WAL to verify\n"),
        }
        for (n, a, b, ok) in &backup_status {
            let state = if *ok { "present" } else { "INCOMPLETE" };
            o.push_str(&format!("backup {n}: WAL {a} - {b} {state}\n"));
        }
        for n in &exp.off_path {
            o.push_str(&format!(
                "note: backup {n} is on a timeline the latest one does not descend from at its start\n"
            ));
        }
        for (fp, n, ranges) in &by_key {
            o.push_str(&format!("encrypted under key {fp}: {n} segments\n"));
            for r in ranges {
                o.push_str(&format!("  {r}\n"));
            }
        }
        if !missing.is_empty() {
            o.push_str(&format!("missing ({}):\n", missing.len()));
            for r in missing_ranges(&missing, view.segment_size) {
                o.push_str(&format!("  {r}\n"));
            }
        }
        if !damaged.is_empty() {
            o.push_str(&format!("damaged ({}):\n", damaged.len()));
            for (n, why) in &damaged {
                o.push_str(&format!("  {n}: {why}\n"));
            }
        }
        for p in &problems {
            o.push_str(&format!("problem: {p}\n"));
        }
        o.push_str(if ok { "OK\n" } else { "FAILED\n" });
        o
    };
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    if ok {
        Ok(())
    } else {
        let mut what = Vec::new();
        if !missing.is_empty() {
            what.push(format!("{} missing (first {})", missing.len(), missing[0]));
        }
        if !damaged.is_empty() {
            what.push(format!(
                "{} damaged (first {})",
                damaged.len(),
                damaged[0].0
            ));
        }
        what.extend(problems);
        Err(fail(what.join("; ")))
    }
}

/// Missing names grouped into runs per timeline, for people.
fn missing_ranges(names: &[String], segment_size: u32) -> Vec<String> {
    let mut by_tl: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for n in names {
        if let Some((tl, s)) = crate::timeline::parse_segment(n, segment_size) {
            by_tl.entry(tl).or_default().push(s);
        }
    }
    by_tl
        .into_iter()
        .flat_map(|(tl, segs)| {
            runs(segs).into_iter().map(move |(a, b)| {
                let n = b - a + 1;
                format!("{} ({n})", range_text(segment_size, tl, a, b))
            })
        })
        .collect()
}

/// Names of segments by the fingerprint of the key they are encrypted under.
type ByKey = BTreeMap<String, Vec<String>>;

/// Downloads and checks `names` with up to `workers` plugin instances.
/// Returns (names that vanished, (name, why) of damaged ones, names of the
/// intact encrypted ones by key).
async fn check_all<S: ObjectStore>(
    store: S,
    names: Vec<(String, u64)>,
    workers: usize,
    view: &ArchiveView,
    keys: &Keys,
) -> (Vec<String>, Vec<(String, String)>, ByKey) {
    let total = names.len();
    let mut stores = vec![store];
    while stores.len() < workers.min(total.max(1)) {
        match stores[0].worker() {
            Some(w) => stores.push(w),
            None => break,
        }
    }
    let queue = RefCell::new(names.into_iter());
    let gone = RefCell::new(Vec::new());
    let damaged = RefCell::new(Vec::new());
    let by_key = RefCell::new(ByKey::new());
    let progress = RefCell::new((0usize, Instant::now()));
    let lanes = stores.into_iter().map(|mut store| {
        let (queue, gone, damaged, progress, by_key) =
            (&queue, &gone, &damaged, &progress, &by_key);
        async move {
            loop {
                let next = queue.borrow_mut().next();
                let Some((name, segno)) = next else { break };
                match check_one(&mut store, &name, segno, view, keys).await {
                    Ok(None) => {}
                    Ok(Some(fp)) => by_key
                        .borrow_mut()
                        .entry(fp.to_string())
                        .or_default()
                        .push(name),
                    Err(Check::Gone) => gone.borrow_mut().push(name),
                    Err(Check::Damaged(why)) => damaged.borrow_mut().push((name, why)),
                }
                let mut p = progress.borrow_mut();
                p.0 += 1;
                if p.1.elapsed() >= Duration::from_secs(5) {
                    eprintln!("walship: wal-verify: checked {}/{total} segments", p.0);
                    p.1 = Instant::now();
                }
            }
        }
    });
    futures::future::join_all(lanes).await;
    let mut damaged = damaged.into_inner();
    damaged.sort();
    let mut by_key = by_key.into_inner();
    for names in by_key.values_mut() {
        names.sort();
    }
    (gone.into_inner(), damaged, by_key)
}

enum Check {
    Gone,
    Damaged(String),
}

/// Checks one segment; returns the key it is encrypted under, if it is.
async fn check_one<S: ObjectStore>(
    store: &mut S,
    name: &str,
    segno: u64,
    view: &ArchiveView,
    keys: &Keys,
) -> Result<Option<Fingerprint>, Check> {
    let key = Key::new(format!("wal/{name}")).expect("valid key");
    let object = match transfer::download(store, &key).await {
        Ok(o) => o,
        Err(StorageError::NotFound(_)) => return Err(Check::Gone),
        Err(e) => return Err(Check::Damaged(format!("cannot read it: {e}"))),
    };
    let stored = Stored {
        at: key.as_str(),
        keys,
    };
    let decoded = object_format::decode_at_most(object, object_format::MAX_DECODED, stored)
        .map_err(|e| Check::Damaged(e.to_string()))?;
    let bytes = decoded.bytes;
    if bytes.len() as u64 != u64::from(view.segment_size) {
        return Err(Check::Damaged(format!(
            "{} bytes, segments are {}",
            bytes.len(),
            view.segment_size
        )));
    }
    let h = parse_segment_header(&bytes).map_err(|why| Check::Damaged(why.to_string()))?;
    if h.system_identifier != view.system_identifier {
        return Err(Check::Damaged(format!(
            "page header names system identifier {}, the archive's is {}",
            h.system_identifier, view.system_identifier
        )));
    }
    let expected = segno * u64::from(view.segment_size);
    if h.page_address != expected {
        return Err(Check::Damaged(format!(
            "first page is at {}, the name says {}",
            format_lsn(h.page_address),
            format_lsn(expected)
        )));
    }
    Ok(decoded.key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::tests::{SEG, branching, seg};

    fn span(name: &str, tl: u32, start: u64, stop: u64) -> BackupSpan {
        BackupSpan {
            name: name.into(),
            timeline: tl,
            start,
            stop,
        }
    }

    #[test]
    fn linear_range_from_the_oldest_backup_to_the_newest_segment() {
        let names: Vec<String> = [2, 3, 4, 6, 7].iter().map(|&n| seg(1, n)).collect();
        let inv = WalInventory::new(names.iter().map(String::as_str), SEG);
        let e = expected(
            &inv,
            &BTreeMap::new(),
            &[span("a", 1, 3, 3), span("b", 1, 6, 6)],
        );
        assert_eq!(e.range, Some((3, 7)));
        let segs: Vec<_> = e.segments.iter().copied().collect();
        assert_eq!(segs, [(3, 1), (4, 1), (5, 1), (6, 1), (7, 1)]);
        assert!(!e.history_missing && e.off_path.is_empty());
        // Without backups: what is archived along the path.
        let e = expected(&inv, &BTreeMap::new(), &[]);
        assert_eq!(e.range, Some((2, 7)));
    }

    #[test]
    fn follows_the_latest_timeline_and_notes_backups_off_its_path() {
        let (inv, h) = branching();
        // a: timeline 1 from segment 1 (on the path); b: timeline 1 at 8,
        // after timeline 2 forked at 7 (off the path).
        let e = expected(&inv, &h, &[span("a", 1, 1, 1), span("b", 1, 8, 8)]);
        assert_eq!(e.latest, Some(3));
        assert_eq!(e.off_path, ["b"]);
        assert_eq!(e.range, Some((1, 7)));
        let want: BTreeSet<(u64, u32)> = [
            (1, 1),
            (2, 1),
            (3, 1),
            (4, 1),
            (5, 1),
            (6, 1),
            (7, 2),
            (8, 1), // b's own WAL
        ]
        .into_iter()
        .collect();
        assert_eq!(e.segments, want);
        let missing: Vec<_> = e
            .segments
            .iter()
            .filter(|&&(s, tl)| !inv.has_segment(tl, s))
            .collect();
        assert_eq!(missing, [&(4, 1), &(5, 1)]);
    }

    #[test]
    fn a_missing_history_is_a_problem() {
        let names = [seg(1, 1), seg(2, 3)];
        let inv = WalInventory::new(names.iter().map(String::as_str), SEG);
        let e = expected(&inv, &BTreeMap::new(), &[]);
        assert!(e.history_missing);
    }

    #[test]
    fn missing_names_are_grouped() {
        let names = vec![seg(1, 4), seg(1, 5), seg(1, 9)];
        assert_eq!(
            missing_ranges(&names, SEG),
            [
                format!("{} - {} (2)", seg(1, 4), seg(1, 5)),
                format!("{} (1)", seg(1, 9))
            ]
        );
    }
}

//! `walship delete retain [FULL|FIND_FULL] N [--confirm]` and
//! `walship delete before [FIND_FULL] NAME|TIME [--confirm]`, WAL-G's syntax.
//!
//! Without `--confirm` a dry run: it prints every backup that would go and
//! stay, and the WAL that would go (count and ranges per timeline), and
//! changes nothing. With it, it removes, in this order: the records of the
//! deleted backups (so none is ever listed half-deleted), their data, the
//! data of interrupted backups older than every kept one, then the WAL no
//! kept backup needs, oldest first. An interrupted delete, run again,
//! finishes the job. What is needed is `retention.rs`'s rule.

use std::io::Write;

use super::open_store;
use super::wal_show::{ArchiveView, range_text};
use super::{Context, EXIT_FAILURE, Failure};
use crate::backup::catalog::{self, BackupRecord, parse_time};
use crate::cli::DeleteCommand;
use crate::retention::{self, BackupPoint, Before, Plan};
use crate::storage::Key;

/// WAL-G's modifiers: every walship backup is full, so both mean nothing.
const MODIFIERS: [&str; 2] = ["FULL", "FIND_FULL"];

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    Retain(usize),
    Before(String),
}

fn parse_request(command: &DeleteCommand) -> Result<(Request, bool), String> {
    let (args, confirm, what) = match command {
        DeleteCommand::Retain { args, confirm, .. } => (args, *confirm, "retain"),
        DeleteCommand::Before { args, confirm, .. } => (args, *confirm, "before"),
    };
    let value = match args.as_slice() {
        [v] => v,
        [m, v] if MODIFIERS.contains(&m.as_str()) && (what == "retain" || m == "FIND_FULL") => v,
        [m, _] => {
            return Err(format!(
                "{m:?} is not a modifier of `delete {what}` (expected {})",
                if what == "retain" {
                    "FULL or FIND_FULL"
                } else {
                    "FIND_FULL"
                }
            ));
        }
        _ => return Err(format!("`delete {what}` takes one value")),
    };
    let request = if what == "retain" {
        let n = value
            .parse::<usize>()
            .map_err(|_| format!("retain takes a number of backups to keep, not {value:?}"))?;
        Request::Retain(n)
    } else {
        Request::Before(value.clone())
    };
    Ok((request, confirm))
}

pub async fn run(ctx: &Context, command: &DeleteCommand) -> Result<(), Failure> {
    let fail = |m: String| Failure::new(EXIT_FAILURE, format!("delete: {m}"));
    let (request, confirm) = parse_request(command).map_err(fail)?;
    let force = match command {
        DeleteCommand::Retain { force, .. } | DeleteCommand::Before { force, .. } => *force,
    };
    if request == Request::Retain(0) {
        return Err(fail(retention::RetentionError::EmptyKeepSet.to_string()));
    }
    let prefix = ctx.prefix().map_err(|e| fail(format!("{e:#}")))?;
    let plugin = ctx.load_plugin().map_err(|e| fail(format!("{e:#}")))?;
    let mut store = open_store(ctx, &plugin, &fail).await?;
    let view = ArchiveView::load(&mut store, prefix, &ctx.settings.keys)
        .await
        .map_err(fail)?;
    let mut out = std::io::stdout().lock();
    if view.backups.is_empty() {
        let _ = writeln!(
            out,
            "no complete backup in the archive at {prefix}: nothing to keep, nothing deleted"
        );
        return Ok(());
    }

    let cut = select(&request, &view.backups).map_err(fail)?;
    let (selected, keep) = view.backups.split_at(cut);
    // Permanent backups (backup-mark) never go: of what the request selects,
    // they stay with the WAL of their own range.
    let mut delete: Vec<BackupRecord> = Vec::new();
    let mut permanent: Vec<BackupRecord> = Vec::new();
    for b in selected {
        if catalog::is_permanent(&mut store, &b.name)
            .await
            .map_err(|e| fail(e.to_string()))?
        {
            permanent.push(b.clone());
        } else {
            delete.push(b.clone());
        }
    }
    let delete = &delete[..];
    // Backups without a record: running ones (a fresh heartbeat) keep their
    // data and WAL; the others are interrupted runs.
    let now = std::time::SystemTime::now();
    let mut running = Vec::new();
    let mut unfinished = Vec::new();
    for (name, reservation) in
        catalog::list_unfinished_with_reservations(&mut store, &ctx.settings.keys)
            .await
            .map_err(|e| fail(e.to_string()))?
    {
        match reservation {
            Some(r) if r.is_running(now) => running.push(r),
            _ => unfinished.push(name),
        }
    }
    let points = |b: &[BackupRecord]| b.iter().map(BackupPoint::of).collect::<Vec<_>>();
    let running_points: Vec<BackupPoint> = running.iter().map(BackupPoint::running).collect();
    let mut keep_points = points(keep);
    keep_points.extend(permanent.iter().map(BackupPoint::permanent));
    let delete_points = points(delete);
    let plan = retention::plan(
        &keep_points,
        &delete_points,
        &running_points,
        &unfinished,
        &view.inventory,
        &view.histories,
    )
    .map_err(|e| fail(e.to_string()))?;
    // Timelines archived to after the newest kept backup finished: perhaps
    // a server running now.
    let newest_kept_finish_ms = keep
        .iter()
        .filter_map(BackupRecord::finish_time)
        .max()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64);
    let recent: std::collections::BTreeSet<u32> = view
        .last_archived_ms
        .iter()
        .filter(|(_, ms)| newest_kept_finish_ms.is_some_and(|k| **ms > k))
        .map(|(tl, _)| *tl)
        .collect();
    let at_risk = retention::timelines_at_risk(
        &plan,
        &keep_points,
        &running_points,
        &view.inventory,
        &view.histories,
        &recent,
    );
    let missing = retention::kept_backups_missing_wal(&keep_points, &view.inventory);

    if !confirm {
        let _ = writeln!(out, "dry run: nothing is deleted without --confirm");
    }
    let report = describe(&view, delete, keep, &permanent, &running, &plan);
    let _ = out.write_all(report.as_bytes());
    let _ = out.flush();
    let refusal = refusal(&view, keep, delete, &at_risk, &missing);
    if let Some(why) = &refusal {
        if !force {
            return Err(fail(format!(
                "refused: {why}; pass --force to delete anyway"
            )));
        }
        let _ = writeln!(out, "warning (--force): {why}");
    }
    if !confirm {
        return Ok(());
    }

    // Records first: from here on the backups are gone for every reader.
    let records: Vec<Key> = plan
        .backups
        .iter()
        .map(|n| catalog::record_key(n))
        .collect();
    catalog::delete_keys(&mut store, &records)
        .await
        .map_err(|e| fail(e.to_string()))?;
    for name in plan.backups.iter().chain(&plan.unfinished) {
        catalog::delete_backup(&mut store, name)
            .await
            .map_err(|e| fail(format!("{e} (run the command again to finish)")))?;
        let _ = writeln!(out, "deleted backup {name}");
    }
    let wal: Vec<Key> = plan
        .wal
        .iter()
        .map(|n| Key::new(format!("wal/{n}")).expect("valid key"))
        .collect();
    catalog::delete_keys(&mut store, &wal)
        .await
        .map_err(|e| fail(format!("{e} (run the command again to finish)")))?;
    let _ = writeln!(
        out,
        "deleted {} backups, {} interrupted backups, {} WAL files",
        plan.backups.len(),
        plan.unfinished.len(),
        plan.wal.len()
    );
    Ok(())
}

/// How many of the backups (oldest first) go.
fn select(request: &Request, backups: &[BackupRecord]) -> Result<usize, String> {
    match request {
        Request::Retain(n) => {
            retention::select_retain(backups.len(), *n).map_err(|e| e.to_string())
        }
        Request::Before(value) => {
            let target = if value == catalog::LATEST {
                Before::Name(backups.last().expect("not empty").name.clone())
            } else if backups.iter().any(|b| b.name == *value) {
                Before::Name(value.clone())
            } else if let Some(t) = parse_time(value) {
                Before::Time(t)
            } else {
                return Err(format!(
                    "no backup named {value:?} in the archive, and it is no RFC 3339 time \
                     (e.g. 2026-12-01T00:00:00Z): see `walship backup-list`"
                ));
            };
            let list: Vec<_> = backups
                .iter()
                .map(|b| (b.name.as_str(), b.finish_time()))
                .collect();
            retention::select_before(&list, &target).map_err(|e| e.to_string())
        }
    }
}

/// Why this delete must not run without `--force`, if it must not: WAL of
/// a live timeline that no kept backup can restore, or kept backups whose
/// own WAL is not all there. One line.
fn refusal(
    view: &ArchiveView,
    keep: &[BackupRecord],
    delete: &[BackupRecord],
    at_risk: &[retention::TimelineAtRisk],
    missing: &[(String, Vec<u64>)],
) -> Option<String> {
    let mut reasons = Vec::new();
    let names = |b: &[BackupRecord]| {
        b.iter()
            .map(|b| format!("{} (timeline {})", b.name, b.timeline))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for r in at_risk {
        let fork = match r.fork {
            Some((parent, lsn)) => format!(
                "forked from timeline {parent} at {}",
                catalog::format_lsn(lsn)
            ),
            None => "no history file".to_string(),
        };
        reasons.push(format!(
            "timeline {} ({fork}, archived up to {}) looks like a running server's, and no kept backup \
             can be recovered onto it: {} of its WAL files would go (kept: {}; deleted: {}); \
             take a backup of the server on timeline {} first",
            r.timeline,
            view.segment_name(r.timeline, r.last_segno),
            r.removed,
            names(keep),
            if delete.is_empty() { "none".to_string() } else { names(delete) },
            r.timeline,
        ));
    }
    for (name, segs) in missing {
        let tl = keep
            .iter()
            .find(|b| &b.name == name)
            .map_or(0, |b| b.timeline);
        let shown: Vec<String> = segs
            .iter()
            .take(3)
            .map(|&s| view.segment_name(tl, s))
            .collect();
        reasons.push(format!(
            "kept backup {name} cannot be restored: {} of its own WAL files are missing ({}{})",
            segs.len(),
            shown.join(", "),
            if segs.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        ));
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

fn describe(
    view: &ArchiveView,
    delete: &[BackupRecord],
    keep: &[BackupRecord],
    permanent: &[BackupRecord],
    running: &[catalog::Reservation],
    plan: &Plan,
) -> String {
    let mut o = String::new();
    let line = |b: &BackupRecord| {
        format!(
            "  {}  timeline {}, WAL from {}, finished {}\n",
            b.name, b.timeline, b.start_wal, b.finish_time
        )
    };
    o.push_str(&format!("backups to delete ({}):\n", delete.len()));
    delete.iter().for_each(|b| o.push_str(&line(b)));
    o.push_str(&format!("backups kept ({}):\n", keep.len()));
    keep.iter().for_each(|b| o.push_str(&line(b)));
    if !permanent.is_empty() {
        o.push_str(&format!(
            "permanent backups kept, with the WAL from their start to their stop ({}):\n",
            permanent.len()
        ));
        permanent.iter().for_each(|b| o.push_str(&line(b)));
    }
    if !plan.unfinished.is_empty() {
        o.push_str(&format!(
            "interrupted backups to delete (no record, older than every kept backup): {}\n",
            plan.unfinished.join(", ")
        ));
    }
    for r in running {
        o.push_str(&format!(
            "running backup {} (started {}, heartbeat {}{}): its data and every WAL file of \
             timeline {} from {} stay\n",
            r.name,
            r.start_time,
            r.heartbeat_time,
            if r.from_standby { ", on a standby" } else { "" },
            r.timeline,
            r.start_wal
        ));
    }
    if !plan.unfinished_kept.is_empty() {
        o.push_str(&format!(
            "interrupted or running backups left alone: {}\n",
            plan.unfinished_kept.join(", ")
        ));
    }
    o.push_str(&format!(
        "WAL files to delete: {} ({} kept)\n",
        plan.wal.len(),
        plan.wal_kept
    ));
    for (tl, (count, ranges)) in retention::summarize_wal(&plan.wal, view.segment_size) {
        let ranges: Vec<String> = ranges
            .iter()
            .map(|&(a, b)| range_text(view.segment_size, tl, a, b))
            .collect();
        o.push_str(&format!(
            "  timeline {tl}: {count} files, {}\n",
            ranges.join(", ")
        ));
    }
    for p in &view.history_problems {
        o.push_str(&format!(
            "warning: unreadable history file {p}: its timeline's WAL is kept\n"
        ));
    }
    if let Some(latest) = view.inventory.latest_timeline()
        && let Some(newest) = latest_timeline_end(view, latest)
        && plan.wal.iter().any(|n| n.starts_with(&newest))
    {
        o.push_str(&format!(
            "warning: the newest WAL of timeline {latest}, the archive's latest, goes: no kept \
             backup can be recovered onto it (it forked before they started). If a server runs \
             on it, take a backup there first.\n"
        ));
    }
    o
}

/// The name of the newest segment of `timeline`, if it has any.
fn latest_timeline_end(view: &ArchiveView, timeline: u32) -> Option<String> {
    let last = *view.inventory.segments.get(&timeline)?.last()?;
    Some(view.segment_name(timeline, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retain(args: &[&str]) -> DeleteCommand {
        DeleteCommand::Retain {
            args: args.iter().map(|s| s.to_string()).collect(),
            confirm: false,
            force: false,
        }
    }

    fn before(args: &[&str]) -> DeleteCommand {
        DeleteCommand::Before {
            args: args.iter().map(|s| s.to_string()).collect(),
            confirm: true,
            force: false,
        }
    }

    #[test]
    fn wal_g_syntax() {
        assert_eq!(
            parse_request(&retain(&["2"])),
            Ok((Request::Retain(2), false))
        );
        assert_eq!(
            parse_request(&retain(&["FULL", "3"])),
            Ok((Request::Retain(3), false))
        );
        assert_eq!(
            parse_request(&retain(&["FIND_FULL", "3"])),
            Ok((Request::Retain(3), false))
        );
        assert!(parse_request(&retain(&["x"])).is_err());
        assert!(parse_request(&retain(&["DELTA", "3"])).is_err());
        assert_eq!(
            parse_request(&before(&["FIND_FULL", "base_000000010000000000000004"])),
            Ok((
                Request::Before("base_000000010000000000000004".into()),
                true
            ))
        );
        assert!(parse_request(&before(&["FULL", "x"])).is_err());
    }

    #[test]
    fn before_a_name_a_time_or_neither() {
        use crate::backup::catalog::tests::sample_record;
        let backups = vec![
            sample_record("a", "000000010000000000000002", "2026-12-01T10:00:00Z"),
            sample_record("b", "000000010000000000000004", "2026-12-01T11:00:00Z"),
            sample_record("c", "000000010000000000000006", "2026-12-01T12:00:00Z"),
        ];
        let r = |v: &str| select(&Request::Before(v.into()), &backups);
        assert_eq!(r("b"), Ok(1));
        assert_eq!(r("LATEST"), Ok(2));
        assert_eq!(r("2026-12-01T11:30:00Z"), Ok(1));
        assert_eq!(r("2026-12-01T09:00:00Z"), Ok(0));
        assert!(r("base_nope").unwrap_err().contains("no backup named"));
        assert_eq!(select(&Request::Retain(2), &backups), Ok(1));
        assert_eq!(select(&Request::Retain(9), &backups), Ok(0));
    }
}

//! `walship wal-show [--json]`: the archived WAL per timeline (parent and
//! switch point from its history file, first and last segment, count, gaps)
//! and the backups on each. Also home of [`ArchiveView`], the snapshot of
//! the archive that `delete` and `wal-verify` work from.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::json;

use super::{Context, EXIT_FAILURE, Failure, open_store};
use crate::backup::catalog::{self, BackupRecord, format_lsn};
use crate::crypto::Keys;
use crate::identity::IDENTITY_KEY;
use crate::object_format::{self, Stored};
use crate::storage::{Key, ObjectStore};
use crate::timeline::{History, TimelineSummary, WalInventory, segment_file_name, summarize};
use crate::transfer;

/// What the archive holds: its segment size, every name under `wal/`, the
/// parsed history files and the complete backups (oldest first).
pub struct ArchiveView {
    pub system_identifier: u64,
    pub segment_size: u32,
    pub inventory: WalInventory,
    pub histories: BTreeMap<u32, History>,
    /// History files that could not be read or parsed, with why.
    pub history_problems: Vec<String>,
    pub backups: Vec<BackupRecord>,
    /// Per timeline, when its newest WAL object was stored (milliseconds
    /// since the epoch, by the store's clock), where the store says.
    pub last_archived_ms: BTreeMap<u32, u64>,
}

impl ArchiveView {
    pub async fn load<S: ObjectStore>(
        store: &mut S,
        prefix: &str,
        keys: &Keys,
    ) -> Result<ArchiveView, String> {
        let identity = match crate::archive::read_identity(store).await {
            Ok(Some(record)) => record,
            Ok(None) => {
                return Err(format!(
                    "{prefix} holds no walship archive (no {IDENTITY_KEY}): check the prefix"
                ));
            }
            Err(e) => return Err(e.to_string()),
        };
        let segment_size = identity.cluster.wal_segment_size;
        let (objects, _) = transfer::list_all(store, "wal/", None)
            .await
            .map_err(|e| format!("list wal/: {e}"))?;
        let names: Vec<&str> = objects
            .iter()
            .filter_map(|o| o.key.strip_prefix("wal/"))
            .collect();
        let inventory = WalInventory::new(names, segment_size);
        let mut last_archived_ms: BTreeMap<u32, u64> = BTreeMap::new();
        for o in &objects {
            let Some(ms) = o.last_modified_ms else {
                continue;
            };
            let Some(name) = o.key.strip_prefix("wal/") else {
                continue;
            };
            if let Some((tl, _)) =
                crate::timeline::WalEntry::classify(name, segment_size).and_then(|e| e.position())
            {
                let newest = last_archived_ms.entry(tl).or_default();
                *newest = (*newest).max(ms);
            }
        }

        let mut histories = BTreeMap::new();
        let mut history_problems = Vec::new();
        for &tl in &inventory.histories {
            let name = format!("{tl:08X}.history");
            let key = Key::new(format!("wal/{name}")).expect("valid key");
            let text = match transfer::download(store, &key).await {
                Ok(object) => object_format::decode(
                    object,
                    Stored {
                        at: key.as_str(),
                        keys,
                    },
                )
                .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match text.and_then(|bytes| {
                History::parse(tl, &String::from_utf8_lossy(&bytes)).map_err(|e| e.to_string())
            }) {
                Ok(h) => {
                    histories.insert(tl, h);
                }
                Err(why) => history_problems.push(format!("{name}: {why}")),
            }
        }

        let backups = catalog::list_backups(store, keys)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(b) = backups.iter().find(|b| b.wal_segment_size != segment_size) {
            return Err(format!(
                "backup {} says {}-byte WAL segments, the archive's {IDENTITY_KEY} says {segment_size}",
                b.name, b.wal_segment_size
            ));
        }
        Ok(ArchiveView {
            system_identifier: identity.cluster.system_identifier,
            segment_size,
            inventory,
            histories,
            history_problems,
            backups,
            last_archived_ms,
        })
    }

    pub fn segment_name(&self, timeline: u32, segno: u64) -> String {
        segment_file_name(timeline, segno, self.segment_size)
    }
}

/// `A - B` (or just `A`) for a range of segments on one timeline.
pub fn range_text(view_size: u32, timeline: u32, first: u64, last: u64) -> String {
    let a = segment_file_name(timeline, first, view_size);
    if first == last {
        a
    } else {
        format!("{a} - {}", segment_file_name(timeline, last, view_size))
    }
}

pub async fn run(ctx: &Context, as_json: bool) -> Result<(), Failure> {
    let fail = |m: String| Failure::new(EXIT_FAILURE, format!("wal-show: {m}"));
    let prefix = ctx.prefix().map_err(|e| fail(format!("{e:#}")))?;
    let plugin = ctx.load_plugin().map_err(|e| fail(format!("{e:#}")))?;
    let mut store = open_store(ctx, &plugin, &fail).await?;
    let view = ArchiveView::load(&mut store, prefix, &ctx.settings.keys)
        .await
        .map_err(fail)?;
    let summaries = summarize(&view.inventory, &view.histories);
    let out = if as_json {
        serde_json::to_string_pretty(&to_json(&view, &summaries)).expect("json") + "\n"
    } else {
        human(&view, &summaries, prefix)
    };
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    Ok(())
}

fn backups_on(view: &ArchiveView, timeline: u32) -> Vec<&BackupRecord> {
    view.backups
        .iter()
        .filter(|b| b.timeline == timeline)
        .collect()
}

fn to_json(view: &ArchiveView, summaries: &[TimelineSummary]) -> serde_json::Value {
    let size = view.segment_size;
    let timelines: Vec<_> = summaries
        .iter()
        .map(|s| {
            let name = |n: u64| segment_file_name(s.timeline, n, size);
            json!({
                "timeline": s.timeline,
                "parent": s.parent.map(|(p, _)| p),
                "switch_point": s.parent.map(|(_, lsn)| format_lsn(lsn)),
                "history_file": s.has_history,
                "first": s.first.map(name),
                "last": s.last.map(name),
                "count": s.count,
                "gaps": s.gaps.iter().map(|&(a, b)| json!({
                    "first": name(a), "last": name(b), "count": b - a + 1,
                })).collect::<Vec<_>>(),
                "partial": s.partials.iter().map(|&p| format!("{}.partial", name(p))).collect::<Vec<_>>(),
                "backup_labels": s.backup_labels,
                "backups": backups_on(view, s.timeline).iter().map(|b| json!({
                    "name": b.name, "start_wal": b.start_wal, "stop_wal": b.stop_wal,
                    "start_lsn": b.start_lsn, "finish_time": b.finish_time,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "wal_segment_size": size,
        "latest_timeline": view.inventory.latest_timeline(),
        "timelines": timelines,
        "history_errors": view.history_problems,
        "unknown_files": view.inventory.unknown,
    })
}

fn human(view: &ArchiveView, summaries: &[TimelineSummary], prefix: &str) -> String {
    let size = view.segment_size;
    let mut o = format!(
        "WAL at {prefix} ({} MiB segments, {} files)\n",
        size >> 20,
        view.inventory.files.len()
    );
    if summaries.is_empty() {
        o.push_str("no WAL archived yet\n");
    }
    for s in summaries {
        let tl = s.timeline;
        match s.parent {
            Some((p, lsn)) => o.push_str(&format!(
                "timeline {tl}: branched from timeline {p} at {}\n",
                format_lsn(lsn)
            )),
            None if tl > 1 && !s.has_history => o.push_str(&format!(
                "timeline {tl}: parent unknown ({tl:08X}.history is not archived)\n"
            )),
            None => o.push_str(&format!("timeline {tl}\n")),
        }
        match (s.first, s.last) {
            (Some(a), Some(b)) => o.push_str(&format!(
                "  segments  {} ({} files)\n",
                range_text(size, tl, a, b),
                s.count
            )),
            _ => o.push_str("  segments  none\n"),
        }
        if s.gaps.is_empty() {
            if s.count > 0 {
                o.push_str("  gaps      none\n");
            }
        } else {
            let missing: u64 = s.gaps.iter().map(|(a, b)| b - a + 1).sum();
            o.push_str(&format!("  gaps      {missing} missing:\n"));
            for &(a, b) in &s.gaps {
                o.push_str(&format!("            {}\n", range_text(size, tl, a, b)));
            }
        }
        for &p in &s.partials {
            o.push_str(&format!(
                "  partial   {}.partial\n",
                segment_file_name(tl, p, size)
            ));
        }
        for b in backups_on(view, tl) {
            o.push_str(&format!(
                "  backup    {} (WAL {} - {}, finished {})\n",
                b.name, b.start_wal, b.stop_wal, b.finish_time
            ));
        }
    }
    for p in &view.history_problems {
        o.push_str(&format!("warning: unreadable history file {p}\n"));
    }
    if !view.inventory.unknown.is_empty() {
        o.push_str(&format!(
            "not WAL file names (left alone): {}\n",
            view.inventory.unknown.join(", ")
        ));
    }
    o
}

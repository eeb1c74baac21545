//! `walship backup-list [--json] [--detail]`: the complete backups, oldest
//! first, as WAL-G's table.

use std::io::Write;

use super::{Context, EXIT_FAILURE, Failure};
use crate::backup::catalog::{self, BackupRecord};
use crate::backup::progress::human_bytes;
use crate::identity::IDENTITY_KEY;
use crate::storage::{Key, ObjectStore, StorageError};

pub async fn run(ctx: &Context, json: bool, detail: bool) -> Result<(), Failure> {
    let fail = |m: String| Failure::new(EXIT_FAILURE, format!("backup-list: {m}"));
    // No prefix is the first thing to report, before any plugin is looked for.
    ctx.prefix().map_err(|e| fail(format!("{e:#}")))?;
    let plugin = ctx.load_plugin().map_err(|e| fail(format!("{e:#}")))?;
    let mut store = super::open_store(ctx, &plugin, &fail).await?;
    let prefix = ctx.prefix().map_err(|e| fail(format!("{e:#}")))?;
    check_is_an_archive(&mut store, prefix)
        .await
        .map_err(fail)?;
    let records = catalog::list_backups(&mut store, &ctx.settings.keys)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut permanent = Vec::with_capacity(records.len());
    for r in &records {
        permanent.push(
            catalog::is_permanent(&mut store, &r.name)
                .await
                .map_err(|e| fail(e.to_string()))?,
        );
    }
    let mut out = std::io::stdout().lock();
    let text = if json {
        let listed: Vec<Listed> = records
            .iter()
            .zip(&permanent)
            .map(|(record, &is_permanent)| Listed {
                record,
                is_permanent,
            })
            .collect();
        let mut s = serde_json::to_string_pretty(&listed).expect("records serialize");
        s.push('\n');
        s
    } else {
        table(&records, &permanent, detail)
    };
    let _ = out.write_all(text.as_bytes());
    Ok(())
}

/// "No backups" is an answer only for a walship archive. Restore scripts
/// loop until backup-list succeeds; on a mistyped prefix, or another tool's
/// archive, an empty list would let them fall straight through.
async fn check_is_an_archive<S: ObjectStore>(store: &mut S, prefix: &str) -> Result<(), String> {
    let identity = Key::new(IDENTITY_KEY).expect("constant key");
    match store.head(&identity).await {
        Ok(_) => return Ok(()),
        Err(StorageError::NotFound(_)) => {}
        Err(e) => return Err(format!("head {IDENTITY_KEY}: {e}")),
    }
    let (objects, _) = crate::transfer::list_all(store, "", Some(100))
        .await
        .map_err(|e| format!("list {prefix}: {e}"))?;
    let walg = objects
        .iter()
        .find(|o| o.key.starts_with("basebackups_005/") || o.key.starts_with("wal_005/"));
    Err(match (walg, objects.first()) {
        (Some(o), _) => format!(
            "{prefix} holds a WAL-G archive ({}); walship cannot read it yet: list it with wal-g backup-list",
            o.key
        ),
        (None, None) => format!(
            "{prefix} holds no walship archive (it is empty): check the prefix (a typo in a bucket or path looks exactly like this)"
        ),
        (None, Some(o)) => format!(
            "{prefix} holds no walship archive (no {IDENTITY_KEY}; found {}): check the prefix",
            o.key
        ),
    })
}

/// A record as `--json` prints it: its fields, and whether it is permanent
/// (WAL-G's `is_permanent`).
#[derive(serde::Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    record: &'a BackupRecord,
    is_permanent: bool,
}

fn table(records: &[BackupRecord], permanent: &[bool], detail: bool) -> String {
    if records.is_empty() {
        return "No backups found\n".into();
    }
    let mut header = vec![
        "name",
        "finish_time",
        "timeline",
        "wal_segment_backup_start",
        "wal_segment_backup_stop",
        "original_size",
        "stored_size",
        "permanent",
    ];
    if detail {
        header.extend([
            "start_time",
            "start_lsn",
            "stop_lsn",
            "pg_version",
            "compression",
            "volumes",
            "data_dir",
        ]);
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .zip(permanent)
        .map(|(r, &p)| {
            let mut row = vec![
                r.name.clone(),
                r.finish_time.clone(),
                r.timeline.to_string(),
                r.start_wal.clone(),
                r.stop_wal.clone(),
                human_bytes(r.original_bytes),
                human_bytes(r.stored_bytes),
                if p { "yes" } else { "no" }.to_string(),
            ];
            if detail {
                row.extend([
                    r.start_time.clone(),
                    r.start_lsn.clone(),
                    r.stop_lsn.clone(),
                    r.pg_version_num.to_string(),
                    r.compression.to_string(),
                    r.volumes.len().to_string(),
                    r.data_dir.clone(),
                ]);
            }
            row
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let mut l = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join(" ");
        l.truncate(l.trim_end().len());
        l.push('\n');
        l
    };
    let mut s = line(header);
    for r in &rows {
        s.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::catalog::tests::sample_record;

    #[test]
    fn a_table_like_wal_gs() {
        let r = sample_record(
            "base_000000010000000000000004",
            "000000010000000000000004",
            "2026-12-02T00:00:00Z",
        );
        let t = table(&[r], &[true], false);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("name "), "{t}");
        assert!(
            lines[1].starts_with("base_000000010000000000000004 2026-12-02T00:00:00Z 1 "),
            "{t}"
        );
        assert!(lines[1].contains("3.0 MiB"), "{t}");
        assert!(
            lines[0].contains(" permanent") && lines[1].ends_with(" yes"),
            "{t}"
        );
        assert_eq!(table(&[], &[], true), "No backups found\n");
    }
}

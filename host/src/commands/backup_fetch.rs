//! `walship backup-fetch PGDATA NAME|LATEST`: restores a base backup (WAL-G's
//! name and arguments), leaving the directory ready for recovery.

use std::path::{Path, PathBuf};

use super::{Context, EXIT_FAILURE, Failure};
use crate::backup::catalog;
use crate::backup::fetch::{self, FetchOptions};
use crate::backup::progress::human_bytes;

pub async fn run(
    ctx: &Context,
    data_dir: &Path,
    name: &str,
    mapping: &[String],
    use_recorded_locations: bool,
) -> Result<(), Failure> {
    let fail = |m: String| Failure::new(EXIT_FAILURE, format!("backup-fetch: {m}"));
    let target = if data_dir.is_absolute() {
        data_dir.to_path_buf()
    } else {
        ctx.cwd.join(data_dir)
    };
    let tablespace_mapping = mapping
        .iter()
        .map(|m| {
            let (old, new) = m
                .split_once('=')
                .filter(|(o, n)| fetch::is_clean_absolute(o) && fetch::is_clean_absolute(n))
                .ok_or_else(|| {
                    fail(format!(
                        "--tablespace-mapping {m:?}: expected OLD=NEW with two absolute, normalised paths"
                    ))
                })?;
            Ok((PathBuf::from(old), PathBuf::from(new)))
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    let opts = FetchOptions {
        target: target.clone(),
        tablespace_mapping,
        concurrency: ctx.settings.download_concurrency.max(1),
        use_recorded_locations,
        // SAFETY: geteuid has no preconditions.
        as_root: unsafe { libc::geteuid() } == 0,
        limits: ctx.rate_limits(),
        keys: ctx.settings.keys.clone(),
    };
    let target_existed = target.exists();
    // No prefix is the first thing to report, before any plugin is looked for.
    ctx.prefix().map_err(|e| fail(format!("{e:#}")))?;
    let plugin = ctx.load_plugin().map_err(|e| fail(format!("{e:#}")))?;
    let mut store = super::open_store_with(ctx, &plugin, &fail, ctx.restore_retry_policy()).await?;
    let record = catalog::resolve(&mut store, name, &ctx.settings.keys)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let locations = fetch::prepare(&record, &opts).map_err(|e| fail(format!("{e:#}")))?;
    let files = fetch::fetch(&mut store, &record, &opts, &locations)
        .await
        .map_err(|e| fail(format!("{e:#}")))?;
    crate::metrics::note(|w| {
        w.bytes += record.original_bytes;
        w.files += files;
    });
    let owner = fetch::chown_to_owner(&target, target_existed, &locations)
        .map_err(|e| fail(format!("{e:#}")))?;
    eprintln!(
        "walship: backup-fetch: restored {} ({} files, {}{}) into {}. {}",
        record.name,
        files,
        human_bytes(record.original_bytes),
        owner
            .map(|u| format!(", owned by uid {u}"))
            .unwrap_or_default(),
        target.display(),
        recovery_instructions(record.pg_version_num, &target),
    );
    // A standby's backup carries its standby configuration, as
    // pg_basebackup's does: started as it is, the copy becomes a standby.
    let standby_files: Vec<&str> = ["standby.signal", "recovery.conf"]
        .into_iter()
        .filter(|f| target.join(f).exists())
        .collect();
    if !standby_files.is_empty() {
        eprintln!(
            "walship: backup-fetch: note: the backup was taken on a standby and holds {}: remove it \
             to recover as a primary, keep it (with primary_conninfo) to run a standby",
            standby_files.join(" and ")
        );
    }
    if ctx.settings.timings {
        eprintln!(
            "walship: backup-fetch peak_rss_kib={}",
            super::peak_rss_kib()
        );
    }
    Ok(())
}

/// PostgreSQL 12 moved the recovery settings into postgresql.conf and
/// replaced recovery.conf (with `standby_mode`) by signal files.
const SIGNAL_FILES_SINCE: u32 = 120_000;

/// How to start recovery of a backup of PostgreSQL `version_num` restored
/// into `target`: a server of 10 or 11 refuses recovery settings in
/// postgresql.conf and ignores signal files, 12 and later refuse a
/// recovery.conf.
fn recovery_instructions(version_num: u32, target: &Path) -> String {
    let dir = target.display();
    if version_num >= SIGNAL_FILES_SINCE {
        format!(
            "To recover, set restore_command = 'walship wal-fetch %f %p' (and recovery_target_* \
             for a point in time), create {dir}/recovery.signal (or standby.signal), then start PostgreSQL."
        )
    } else {
        format!(
            "To recover (PostgreSQL {}), write {dir}/recovery.conf with \
             restore_command = 'walship wal-fetch %f %p' (and recovery_target_* for a point in time, \
             recovery_target_timeline = 'latest' to follow a promotion, or standby_mode = 'on' \
             for a standby), then start PostgreSQL.",
            version_num / 10_000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_instructions_follow_the_version() {
        let target = Path::new("/srv/pg");
        for old in [100_023, 110_022] {
            let text = recovery_instructions(old, target);
            assert!(text.contains("/srv/pg/recovery.conf"), "{text}");
            assert!(text.contains("standby_mode = 'on'"), "{text}");
            assert!(!text.contains("signal"), "{text}");
        }
        for new in [120_022, 150_018, 180_004] {
            let text = recovery_instructions(new, target);
            assert!(text.contains("/srv/pg/recovery.signal"), "{text}");
            assert!(!text.contains("recovery.conf"), "{text}");
        }
    }
}

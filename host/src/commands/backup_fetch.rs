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
    let owner = fetch::chown_to_owner(&target, target_existed, &locations)
        .map_err(|e| fail(format!("{e:#}")))?;
    eprintln!(
        "walship: backup-fetch: restored {} ({} files, {}{}) into {}. To recover, set \
         restore_command = 'walship wal-fetch %f %p' (and recovery_target_* for a point in time), \
         create {}/recovery.signal (or standby.signal), then start PostgreSQL.",
        record.name,
        files,
        human_bytes(record.original_bytes),
        owner
            .map(|u| format!(", owned by uid {u}"))
            .unwrap_or_default(),
        target.display(),
        target.display(),
    );
    if ctx.settings.timings {
        eprintln!(
            "walship: backup-fetch peak_rss_kib={}",
            super::peak_rss_kib()
        );
    }
    Ok(())
}

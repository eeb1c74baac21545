//! `walship backup-push [PGDATA]`: takes a base backup (WAL-G's name and
//! arguments). The work is in `backup::push`; this resolves what it runs with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Context, EXIT_FAILURE, Failure};
use crate::backup::connect::ConnSettings;
use crate::backup::push::{self, PushOptions};

/// backup-push and backup-fetch run as long as the copy takes, unless
/// WALSHIP_TIMEOUT says otherwise.
pub const DEADLINE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Settings come from the environment and the config file's upper-case keys
/// (as WAL-G's config file carries PGHOST and friends).
pub fn var(ctx: &Context, name: &str) -> Option<String> {
    ctx.settings
        .plugin_settings
        .get(name)
        .filter(|v| !v.is_empty())
        .cloned()
}

pub async fn run(ctx: &Context, data_dir: Option<&Path>) -> Result<(), Failure> {
    let fail = |m: String| Failure::new(EXIT_FAILURE, format!("backup-push: {m}"));
    let data_dir: PathBuf = match data_dir {
        Some(d) => d.to_path_buf(),
        None => var(ctx, "PGDATA").map(PathBuf::from).ok_or_else(|| {
            fail("no data directory: give it as an argument or set PGDATA".into())
        })?,
    };
    let data_dir = if data_dir.is_absolute() {
        data_dir
    } else {
        ctx.cwd.join(data_dir)
    };
    let conn = ConnSettings::resolve(|n| var(ctx, n), &data_dir).map_err(fail)?;
    let prefix = ctx.prefix().map_err(|e| fail(format!("{e:#}")))?;
    let plugin = ctx.load_plugin().map_err(|e| fail(format!("{e:#}")))?;
    let store = super::open_store(ctx, &plugin, &fail).await?;
    let opts = PushOptions {
        data_dir,
        conn,
        prefix: prefix.to_string(),
        compression: ctx.settings.compression,
        concurrency: ctx.settings.upload_concurrency,
        volume_size: ctx.settings.volume_size,
        limits: ctx.rate_limits(),
        keys: ctx.settings.keys.clone(),
    };
    let record = push::push(store, &opts)
        .await
        .map_err(|e| fail(format!("{e:#}")))?;
    crate::metrics::note(|w| {
        w.bytes += record.original_bytes;
        w.files += record.volumes.len() as u64;
    });
    println!("{}", record.name);
    if ctx.settings.timings {
        eprintln!(
            "walship: backup-push peak_rss_kib={}",
            super::peak_rss_kib()
        );
    }
    Ok(())
}

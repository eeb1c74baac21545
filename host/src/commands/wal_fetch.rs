//! `walship wal-fetch %f %p`: PostgreSQL's restore_command.
//!
//! Exit codes, and why:
//! - 0: the file is at `%p`, verified against its checksum.
//! - 1: the file is not in the archive (and the archive is believably this
//!   cluster's). PostgreSQL asks for files that do not exist all the time
//!   (the next timeline's history, the segment after the end of the archive).
//! - a real error (storage unreachable after retries, checksum mismatch,
//!   authentication, a prefix with no archive or another cluster's): exit
//!   126 when the data directory is not a standby's, so PostgreSQL stops
//!   recovery loudly instead of treating the file as missing, ending recovery
//!   early and promoting on incomplete WAL (WAL-G issue #1126). A standby
//!   (`standby.signal`; `standby_mode = on` in recovery.conf before 12) gets
//!   1: it retries and can fall back to streaming.
//!
//! Nothing partial ever appears at `%p`: the file is written under a
//! temporary name in the same directory and renamed once complete.

use std::path::Path;

use super::{Context, EXIT_FAILURE, EXIT_STOP_RECOVERY, Failure, wal_prefetch};
use crate::archive::{Archive, ArchiveError};
use crate::file_write::write_into_place;
use crate::identity::IdentityCache;
use crate::logging::{LogLevelFilter, log_line};
use crate::pg_control::read_cluster_identity;
use crate::prefetch::PrefetchDir;
use crate::retry::Retrying;
use crate::wal_name::WalFileName;

/// The exit code for a real (non-"not found") error in this data directory.
pub fn real_error_code(cwd: &Path) -> u8 {
    if crate::standby_mode::is_standby(cwd) {
        EXIT_FAILURE
    } else {
        EXIT_STOP_RECOVERY
    }
}

pub async fn run(ctx: &Context, name: &str, destination: &Path) -> Result<(), Failure> {
    let real_error =
        |m: String| Failure::new(real_error_code(&ctx.cwd), format!("wal-fetch {name}: {m}"));
    let name = WalFileName::parse(name).map_err(|e| real_error(e.to_string()))?;
    // A data directory restored from a base backup has the cluster's control
    // file; without one (fetching by hand elsewhere) checks that need it are skipped.
    let local = read_cluster_identity(&ctx.cwd).ok();

    let prefix = ctx.prefix().map_err(|e| real_error(format!("{e:#}")))?;

    // Downloaded ahead, verified, by the prefetcher an earlier call started:
    // a rename. Its page header is checked once more against this cluster.
    let prefetch_on = ctx.settings.download_concurrency > 0 && name.has_page_header();
    let prefetch = PrefetchDir::new(&ctx.cwd, ctx.settings.prefetch_dir.as_deref(), prefix);
    if prefetch_on && let Some(local) = &local {
        // First of all: a prefetcher at work moves on to what follows this
        // one. (Only if one ever was: a failing call leaves nothing new in
        // pg_wal.)
        if prefetch.exists() {
            let _ = prefetch.set_cursor(&name);
        }
        if let Some(leading) = prefetch.leading(&name, 64) {
            if wal_prefetch::belongs_here(&leading, &name, local)
                && prefetch.take(&name, destination).unwrap_or(false)
            {
                crate::metrics::note(|w| {
                    w.prefetch_hits += 1;
                    w.files += 1;
                    w.bytes += std::fs::metadata(destination).map_or(0, |m| m.len());
                });
                if ctx.settings.log_level >= LogLevelFilter::Info {
                    log_line(
                        LogLevelFilter::Info,
                        &format!("{name} restored from {prefix} (prefetched)"),
                    );
                }
                wal_prefetch::spawn_if_needed(ctx, &prefetch, &name, prefix);
                return Ok(());
            }
            prefetch.discard(&name);
        }
    }

    let plugin = ctx
        .load_plugin()
        .map_err(|e| real_error(format!("{e:#}")))?;
    let store = plugin
        .open(prefix, |info| ctx.plugin_config(info))
        .await
        .map_err(|e| real_error(format!("{e}{}", super::storage_hint(&e))))?;
    let identities = IdentityCache::new(ctx.settings.cache_dir.as_deref());
    let mut archive = Archive::new(
        Retrying::new(store, ctx.restore_retry_policy()),
        prefix,
        ctx.settings.compression,
        ctx.settings.keys.clone(),
        &identities,
    )
    .with_rate_limit(ctx.wal_rate_limit());

    let bytes = match archive.fetch(&name, local.as_ref()).await {
        Ok(b) => b,
        Err(ArchiveError::NotInArchive(_)) => {
            return Err(Failure::new(
                EXIT_FAILURE,
                format!("wal-fetch {name}: not in the archive at {prefix}"),
            ));
        }
        Err(e) => return Err(real_error(e.to_string())),
    };
    write_into_place(destination, &bytes)
        .map_err(|e| real_error(format!("cannot write {}: {e}", destination.display())))?;
    crate::metrics::note(|w| {
        if prefetch_on {
            w.prefetch_misses += 1;
        }
        w.files += 1;
        w.bytes += bytes.len() as u64;
    });
    if prefetch_on && local.is_some() {
        let _ = prefetch.set_cursor(&name);
        wal_prefetch::spawn_if_needed(ctx, &prefetch, &name, prefix);
    }
    if ctx.settings.log_level >= LogLevelFilter::Info {
        log_line(
            LogLevelFilter::Info,
            &format!("{name} restored from {prefix}"),
        );
    }
    if ctx.settings.timings {
        eprintln!(
            "walship: timings: op=fetch total_ms={:.2} peak_rss_kib={} plugin_load={:?}",
            ctx.started.elapsed().as_secs_f64() * 1e3,
            super::peak_rss_kib(),
            plugin.load_path
        );
    }
    Ok(())
}

//! `walship wal-push %p`: PostgreSQL's archive_command.
//!
//! Exit 0 only once the file is durably stored, or was already stored with
//! identical content. Any failure exits 1 (never above 125, which PostgreSQL
//! would treat as a crash of its archiver) with a one-line reason.

use std::path::Path;
use std::time::Instant;

use super::{Context, EXIT_FAILURE, Failure};
use crate::archive::{Archive, PushOutcome};
use crate::identity::IdentityCache;
use crate::logging::{LogLevelFilter, log_line};
use crate::object_format;
use crate::pg_control::read_cluster_identity;
use crate::retry::Retrying;
use crate::wal_name::WalFileName;

pub async fn run(ctx: &Context, path: &Path) -> Result<(), Failure> {
    let fail = |m: String| Failure::new(EXIT_FAILURE, format!("wal-push {}: {m}", path.display()));
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| fail("not a file path".into()))?;
    let name = WalFileName::parse(file_name).map_err(|e| fail(e.to_string()))?;
    let local = read_cluster_identity(&ctx.cwd).map_err(|e| fail(e.to_string()))?;
    let t_start_read = Instant::now();
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let t_read = Instant::now();

    let prefix = ctx.prefix().map_err(|e| fail(format!("{e:#}")))?;
    let plugin = ctx.load_plugin().map_err(|e| fail(format!("{e:#}")))?;
    let store = plugin
        .open(prefix, |info| ctx.plugin_config(info))
        .await
        .map_err(|e| fail(format!("{e}{}", super::storage_hint(&e))))?;
    let t_open = Instant::now();

    let identities = IdentityCache::new(ctx.settings.cache_dir.as_deref());
    let mut archive = Archive::new(
        Retrying::new(store, ctx.retry_policy()),
        prefix,
        ctx.settings.compression,
        &identities,
    );
    let t_encode = Instant::now();
    let encoded = object_format::encode_from(file, size, archive.compression())
        .map_err(|e| fail(format!("cannot read it: {e}")))?;
    archive.timings.encode = t_encode.elapsed();
    let outcome = archive
        .push(&name, encoded, &local)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let t_done = Instant::now();

    let what = match outcome {
        PushOutcome::Stored => "archived",
        PushOutcome::AlreadyArchived => "already archived with identical content",
    };
    if ctx.settings.log_level >= LogLevelFilter::Info {
        log_line(LogLevelFilter::Info, &format!("{name} {what} at {prefix}"));
    }
    if ctx.settings.timings {
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
        eprintln!(
            "walship: timings: op=push startup_ms={:.2} open_ms={:.2} plugin_open_ms={:.2} identity_ms={:.2} read_compress_hash_ms={:.2} store_ms={:.2} total_ms={:.2} peak_rss_kib={} component_load_ms={:.2} link_ms={:.2} plugin_load={:?}",
            ms(ctx.started, t_start_read),
            ms(t_start_read, t_read),
            ms(t_read, t_open),
            archive.timings.identity.as_secs_f64() * 1e3,
            archive.timings.encode.as_secs_f64() * 1e3,
            archive.timings.store.as_secs_f64() * 1e3,
            ms(ctx.started, t_done),
            super::peak_rss_kib(),
            plugin.load_time.as_secs_f64() * 1e3,
            plugin.link_time.as_secs_f64() * 1e3,
            plugin.load_path
        );
    }
    Ok(())
}

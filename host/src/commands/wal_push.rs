//! `walship wal-push %p`: PostgreSQL's archive_command.
//!
//! Exit 0 only once the file is durably stored, or was already stored with
//! identical content (by this call, or by the background pusher it starts
//! for the files PostgreSQL will ask for next: push_ahead.rs). Any failure exits 1 (never above 125, which PostgreSQL
//! would treat as a crash of its archiver) with a one-line reason.

use std::path::Path;
use std::time::Instant;

use super::wal_push_ahead::{self, encode_off_thread};
use super::{Context, EXIT_FAILURE, Failure};
use crate::archive::{Archive, PushOutcome};
use crate::identity::IdentityCache;
use crate::logging::{LogLevelFilter, log_line};
use crate::pg_control::read_cluster_identity;
use crate::push_ahead::StatusDir;
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
    let prefix = ctx.prefix().map_err(|e| fail(format!("{e:#}")))?;
    let wal_dir = path.parent().unwrap_or(Path::new("."));
    let status = StatusDir::new(wal_dir);
    let identities = IdentityCache::new(ctx.settings.cache_dir.as_deref());
    // The archive the last push found at the prefix: a marker counts only
    // for that one (not for one wiped since and started again).
    let archive_id = identities.archive_id(prefix, &local);

    // Uploaded by the pusher, ahead of this request, with exactly these
    // bytes: nothing left to do but keep the pusher going.
    if status.archived_ahead(&name, prefix, archive_id.as_deref(), path) {
        ahead(ctx, &status, wal_dir, &name, prefix);
        return Ok(());
    }
    // The pusher may be uploading it right now: wait for it rather than
    // upload it a second time, then look again. Without a claim (pg_wal not
    // writable) the push goes ahead unguarded: a duplicate upload is only
    // wasted work, never a wrong answer.
    let _claim = status.claim(&name).await.ok();
    let archive_id = identities.archive_id(prefix, &local);
    if status.archived_ahead(&name, prefix, archive_id.as_deref(), path) {
        ahead(ctx, &status, wal_dir, &name, prefix);
        return Ok(());
    }
    // The next files go up in the background while this one does.
    wal_push_ahead::spawn_if_needed(ctx, &status, wal_dir, &name, prefix);

    let t_start_read = Instant::now();
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let t_read = Instant::now();

    let plugin = ctx.load_plugin().map_err(|e| fail(format!("{e:#}")))?;
    let store = plugin
        .open(prefix, |info| ctx.plugin_config(info))
        .await
        .map_err(|e| fail(format!("{e}{}", super::storage_hint(&e))))?;
    let t_open = Instant::now();

    let mut archive = Archive::new(
        Retrying::new(store, ctx.retry_policy()),
        prefix,
        ctx.settings.compression,
        ctx.settings.keys.clone(),
        &identities,
    )
    .with_rate_limit(ctx.wal_rate_limit());
    let t_encode = Instant::now();
    let encoded = encode_off_thread(file, size, &archive, &name)
        .await
        .map_err(|e| fail(format!("cannot read it: {e}")))?;
    archive.timings.encode = t_encode.elapsed();
    let content = encoded.content;
    let outcome = archive
        .push(&name, encoded, &local)
        .await
        .map_err(|e| fail(e.to_string()))?;
    status.sweep(&name);
    // Marked stored before the claim goes, so that the pusher, which may
    // claim it in the moment before PostgreSQL marks it done, skips it.
    // (The next call's sweep removes the marker.)
    let _ = status.record(
        &name,
        prefix,
        archive.archive_id().unwrap_or_default(),
        content,
    );
    let t_done = Instant::now();

    crate::metrics::note(|w| {
        w.bytes += size;
        w.files += 1;
        w.archived = Some(name.as_str().to_string());
        w.wal_dir = Some(wal_dir.to_path_buf());
    });
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
            "walship: timings: op=push startup_ms={:.2} open_ms={:.2} plugin_open_ms={:.2} identity_ms={:.2} read_compress_hash_ms={:.2} store_ms={:.2} total_ms={:.2} cpu_ms={:.2} peak_rss_kib={} component_load_ms={:.2} link_ms={:.2} plugin_load={:?}",
            ms(ctx.started, t_start_read),
            ms(t_start_read, t_read),
            ms(t_read, t_open),
            archive.timings.identity.as_secs_f64() * 1e3,
            archive.timings.encode.as_secs_f64() * 1e3,
            archive.timings.store.as_secs_f64() * 1e3,
            ms(ctx.started, t_done),
            super::cpu_ms(),
            super::peak_rss_kib(),
            plugin.load_time.as_secs_f64() * 1e3,
            plugin.link_time.as_secs_f64() * 1e3,
            plugin.load_path
        );
    }
    Ok(())
}

/// Answers a call for a file the pusher stored: the marker is consumed and
/// the pusher kept going for what is still ready.
fn ahead(ctx: &Context, status: &StatusDir, wal_dir: &Path, name: &WalFileName, prefix: &str) {
    // The pusher counted its bytes; this call only says the file is stored.
    crate::metrics::note(|w| {
        w.archived = Some(name.as_str().to_string());
        w.wal_dir = Some(wal_dir.to_path_buf());
    });
    status.sweep(name);
    wal_push_ahead::spawn_if_needed(ctx, status, wal_dir, name, prefix);
    if ctx.settings.log_level >= LogLevelFilter::Info {
        log_line(
            LogLevelFilter::Info,
            &format!("{name} already archived ahead at {prefix}"),
        );
    }
}

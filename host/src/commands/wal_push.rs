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
use crate::object_format::{self, Compression, Encoded};
use crate::pg_control::{ClusterIdentity, read_cluster_identity};
use crate::push_ahead::StatusDir;
use crate::retry::Retrying;
use crate::storage::ObjectStore;
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
    let status = StatusDir::new(path.parent().unwrap_or(Path::new(".")));

    // Uploaded by an earlier call, ahead of this request, with exactly
    // these bytes: nothing left to do.
    if status.archived_ahead(&name, prefix, path) {
        status.sweep(&name);
        if ctx.settings.log_level >= LogLevelFilter::Info {
            log_line(
                LogLevelFilter::Info,
                &format!("{name} already archived ahead at {prefix}"),
            );
        }
        return Ok(());
    }

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

    let identities = IdentityCache::new(ctx.settings.cache_dir.as_deref());
    let ahead_names = status.ready_files(&name, prefix, ctx.settings.upload_concurrency - 1);
    let ahead_stores: Vec<_> = ahead_names
        .iter()
        .map_while(|_| store.worker())
        .map(|s| Retrying::new(s, ctx.retry_policy()))
        .collect();
    let mut archive = Archive::new(
        Retrying::new(store, ctx.retry_policy()),
        prefix,
        ctx.settings.compression,
        &identities,
    );
    // The requested file first: its push decides the exit status, and it
    // settles the archive's identity before anything else is written.
    let t_encode = Instant::now();
    let compression = archive.compression();
    let encoded = encode_off_thread(file, size, compression)
        .await
        .map_err(|e| fail(format!("cannot read it: {e}")))?;
    archive.timings.encode = t_encode.elapsed();
    archive
        .ensure_identity(&local)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let ahead = ahead_names
        .iter()
        .zip(ahead_stores)
        .map(|(ahead_name, store)| {
            let archive = Archive::new(store, prefix, compression, &identities);
            push_ahead(archive, &status, ahead_name, prefix, &local)
        });
    let (outcome, _) = futures::join!(
        archive.push(&name, encoded, &local),
        futures::future::join_all(ahead)
    );
    let outcome = outcome.map_err(|e| fail(e.to_string()))?;
    status.sweep(&name);
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

/// Reads and encodes a WAL file on the blocking pool, so several files are
/// compressed on several cores while uploads wait on the network.
async fn encode_off_thread(
    file: std::fs::File,
    size: u64,
    compression: Compression,
) -> std::io::Result<Encoded> {
    tokio::task::spawn_blocking(move || object_format::encode_from(file, size, compression))
        .await
        .map_err(std::io::Error::other)?
}

/// Uploads one ready file ahead of PostgreSQL's request and records it.
/// Failures are only logged: PostgreSQL will ask for the file in its turn.
async fn push_ahead<S: ObjectStore>(
    mut archive: Archive<'_, S>,
    status: &StatusDir,
    name: &WalFileName,
    prefix: &str,
    local: &ClusterIdentity,
) {
    let path = status.wal_file(name);
    let result = async {
        let file = std::fs::File::open(&path).map_err(|e| format!("cannot read it: {e}"))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let encoded = encode_off_thread(file, size, archive.compression())
            .await
            .map_err(|e| format!("cannot read it: {e}"))?;
        let content = encoded.header.content;
        archive
            .push(name, encoded, local)
            .await
            .map_err(|e| e.to_string())?;
        // Only now, with the object confirmed, may a marker vouch for it.
        status
            .record(name, prefix, content)
            .map_err(|e| format!("stored, but cannot record it: {e}"))
    }
    .await;
    if let Err(why) = result {
        log_line(
            LogLevelFilter::Info,
            &format!("{name}: not archived ahead ({why}); PostgreSQL will ask for it"),
        );
    }
}

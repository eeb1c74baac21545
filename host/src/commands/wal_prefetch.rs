//! `walship wal-prefetch NAME`: started by `wal-fetch`, detached, to download
//! the segments after NAME into the prefetch directory (see prefetch.rs).
//! Quiet: it only ever saves PostgreSQL a download, so a failure here is
//! logged at info level and the next `wal-fetch` downloads the file itself.

use super::{Context, EXIT_FAILURE, Failure};
use crate::archive::{Archive, ArchiveError};
use crate::identity::IdentityCache;
use crate::logging::{LogLevelFilter, log_line};
use crate::pg_control::{ClusterIdentity, read_cluster_identity};
use crate::prefetch::PrefetchDir;
use crate::retry::Retrying;
use crate::storage::ObjectStore;
use crate::wal_name::WalFileName;

pub async fn run(ctx: &Context, name: &str) -> Result<(), Failure> {
    let fail = |m: String| Failure::new(EXIT_FAILURE, format!("wal-prefetch {name}: {m}"));
    let name = WalFileName::parse(name).map_err(|e| fail(e.to_string()))?;
    let local = read_cluster_identity(&ctx.cwd).map_err(|e| fail(e.to_string()))?;
    let prefix = ctx.prefix().map_err(|e| fail(format!("{e:#}")))?;
    let prefetch = PrefetchDir::new(&ctx.cwd, prefix);
    let next = name.next_segments(ctx.settings.download_concurrency, local.wal_segment_size);
    prefetch.clean(&next);
    let Some(_lock) = prefetch
        .lock()
        .map_err(|e| fail(format!("cannot lock the prefetch directory: {e}")))?
    else {
        // Another prefetcher is at work; it will get there.
        return Ok(());
    };
    let wanted = prefetch.missing(&next);
    if wanted.is_empty() {
        return Ok(());
    }

    let plugin = ctx.load_plugin().map_err(|e| fail(format!("{e:#}")))?;
    let store = plugin
        .open(prefix, |info| ctx.plugin_config(info))
        .await
        .map_err(|e| fail(e.to_string()))?;
    let identities = IdentityCache::new(ctx.settings.cache_dir.as_deref());
    let mut stores = vec![Retrying::new(store, ctx.retry_policy())];
    while stores.len() < wanted.len() {
        match stores[0].worker() {
            Some(w) => stores.push(w),
            None => break,
        }
    }
    // Each store takes every n-th wanted segment, in order.
    let lanes = stores.len();
    let jobs = stores.into_iter().enumerate().map(|(lane, store)| {
        let mine: Vec<&WalFileName> = wanted.iter().skip(lane).step_by(lanes).collect();
        let archive = Archive::new(store, prefix, ctx.settings.compression, &identities);
        fetch_lane(archive, mine, &prefetch, &local)
    });
    futures::future::join_all(jobs).await;
    Ok(())
}

async fn fetch_lane<S: ObjectStore>(
    mut archive: Archive<'_, S>,
    names: Vec<&WalFileName>,
    prefetch: &PrefetchDir,
    local: &ClusterIdentity,
) {
    for name in names {
        // `fetch` verifies the object's BLAKE3 and the segment's header
        // against this cluster before the bytes are kept.
        match archive.fetch(name, Some(local)).await {
            Ok(bytes) => {
                if let Err(e) = prefetch.store(name, &bytes) {
                    log_line(
                        LogLevelFilter::Info,
                        &format!("prefetch {name}: cannot store it: {e}"),
                    );
                    return;
                }
            }
            // The end of the archive (so far): later names will not be there either.
            Err(ArchiveError::NotInArchive(_)) => return,
            Err(e) => {
                log_line(LogLevelFilter::Info, &format!("prefetch {name}: {e}"));
                return;
            }
        }
    }
}

/// Starts `walship wal-prefetch NAME` in the background.
pub fn spawn(ctx: &Context, name: &WalFileName, prefix: &str) {
    super::spawn_detached(
        ctx,
        &["wal-prefetch".as_ref(), name.as_str().as_ref()],
        prefix,
    );
}

/// Whether a prefetched file's page header says it is segment `name` of
/// this cluster: system identifier, segment size, timeline and address.
pub fn belongs_here(leading: &[u8], name: &WalFileName, local: &ClusterIdentity) -> bool {
    let crate::wal_name::WalFileKind::Segment {
        timeline,
        segment_no,
    } = name.kind()
    else {
        return false;
    };
    crate::pg_control::parse_segment_header(leading).is_ok_and(|h| {
        h.system_identifier == local.system_identifier
            && h.wal_segment_size == local.wal_segment_size
            && h.timeline == timeline
            && h.page_address
                == crate::wal_name::segment_start_lsn(segment_no, local.wal_segment_size)
    })
}

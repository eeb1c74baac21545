//! `walship wal-prefetch NAME`: started by `wal-fetch`, detached, to keep
//! the segments after the one recovery asked for last downloaded into the
//! prefetch directory (see prefetch.rs). It follows the cursor `wal-fetch`
//! records, in `WALSHIP_DOWNLOAD_CONCURRENCY` lanes with a plugin instance
//! each, and leaves once recovery has asked for nothing new for a moment.
//! Quiet: it only ever saves PostgreSQL a download, so a failure here is
//! logged at info level and the next `wal-fetch` downloads the file itself.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::{Context, EXIT_FAILURE, Failure};
use crate::archive::{Archive, ArchiveError};
use crate::identity::IdentityCache;
use crate::logging::{LogLevelFilter, log_line};
use crate::pg_control::{ClusterIdentity, read_cluster_identity};
use crate::prefetch::PrefetchDir;
use crate::retry::Retrying;
use crate::storage::ObjectStore;
use crate::wal_name::WalFileName;

/// How long the prefetcher stays once recovery stops asking.
const LINGER: Duration = Duration::from_secs(2);
/// How often it looks at the cursor meanwhile.
const POLL: Duration = Duration::from_millis(5);
/// A segment the archive did not have is asked for again after this (a
/// standby's archive grows).
const ABSENT_RETRY: Duration = Duration::from_millis(500);

pub async fn run(ctx: &Context, name: &str) -> Result<(), Failure> {
    let fail = |m: String| Failure::new(EXIT_FAILURE, format!("wal-prefetch {name}: {m}"));
    let name = WalFileName::parse(name).map_err(|e| fail(e.to_string()))?;
    let local = read_cluster_identity(&ctx.cwd).map_err(|e| fail(e.to_string()))?;
    let prefix = ctx.prefix().map_err(|e| fail(format!("{e:#}")))?;
    let prefetch = PrefetchDir::new(&ctx.cwd, ctx.settings.prefetch_dir.as_deref(), prefix);
    let lanes = ctx.settings.download_concurrency;
    if lanes == 0 {
        return Ok(());
    }
    let plugin = ctx.load_plugin().map_err(|e| fail(format!("{e:#}")))?;
    let identities = IdentityCache::new(ctx.settings.cache_dir.as_deref());
    loop {
        let Some(lock) = prefetch
            .lock()
            .map_err(|e| fail(format!("cannot lock the prefetch directory: {e}")))?
        else {
            // Another prefetcher is at work; it follows the cursor too.
            return Ok(());
        };
        let store = plugin
            .open(prefix, |info| ctx.plugin_config(info))
            .await
            .map_err(|e| fail(e.to_string()))?;
        let stores = crate::transfer::lanes(store, lanes);
        let window = Window {
            prefetch: &prefetch,
            first: name.clone(),
            size: lanes,
            segment_size: local.wal_segment_size,
            in_flight: RefCell::default(),
            absent: RefCell::default(),
        };
        let jobs = stores.into_iter().map(|store| {
            let store = Retrying::new(store, ctx.retry_policy());
            let archive = Archive::new(
                store,
                prefix,
                ctx.settings.compression,
                ctx.settings.keys.clone(),
                &identities,
            )
            .with_rate_limit(ctx.wal_rate_limit());
            lane(archive, &window, &local, ctx.started)
        });
        futures::future::join_all(jobs).await;
        let last_seen = window.cursor();
        drop(lock);
        // A wal-fetch that saw this prefetcher still running did not start
        // another: if it moved the cursor meanwhile, carry on.
        if window.cursor() != last_seen && super::helper_takes_work(ctx.started) {
            continue;
        }
        return Ok(());
    }
}

/// The segments to keep prefetched: the `size` after the cursor.
struct Window<'a> {
    prefetch: &'a PrefetchDir,
    /// The cursor until `wal-fetch` records one.
    first: WalFileName,
    size: usize,
    segment_size: u32,
    /// Being downloaded by a lane of this prefetcher.
    in_flight: RefCell<BTreeSet<String>>,
    /// Not in the archive when last asked, and when.
    absent: RefCell<BTreeMap<String, Instant>>,
}

impl Window<'_> {
    fn cursor(&self) -> WalFileName {
        self.prefetch.cursor().unwrap_or_else(|| self.first.clone())
    }

    /// The next segment to download for `cursor`, taken (in flight) for
    /// the caller.
    fn take(&self, cursor: &WalFileName) -> Option<WalFileName> {
        let next = cursor.next_segments(self.size, self.segment_size);
        let pick = next.into_iter().find(|n| {
            !self.prefetch.has(n)
                && !self.in_flight.borrow().contains(n.as_str())
                && self
                    .absent
                    .borrow()
                    .get(n.as_str())
                    .is_none_or(|at| at.elapsed() >= ABSENT_RETRY)
        })?;
        self.in_flight
            .borrow_mut()
            .insert(pick.as_str().to_string());
        Some(pick)
    }

    fn done(&self, name: &WalFileName, absent: bool) {
        self.in_flight.borrow_mut().remove(name.as_str());
        if absent {
            self.absent
                .borrow_mut()
                .insert(name.as_str().to_string(), Instant::now());
        }
    }

    /// Removes what recovery no longer needs: everything but the cursor's
    /// own segment (its `wal-fetch` may be about to take it) and the window.
    fn clean(&self, cursor: &WalFileName) {
        let mut keep = vec![cursor.clone()];
        keep.extend(cursor.next_segments(self.size, self.segment_size));
        self.prefetch.clean(&keep);
    }
}

async fn lane<S: ObjectStore>(
    mut archive: Archive<'_, S>,
    window: &Window<'_>,
    local: &ClusterIdentity,
    started: Instant,
) {
    let mut seen: Option<(WalFileName, Instant)> = None;
    loop {
        // Past its lifetime it leaves between downloads, never during one;
        // the next wal-fetch starts a fresh prefetcher.
        if !super::helper_takes_work(started) {
            return;
        }
        let cursor = window.cursor();
        match &seen {
            Some((c, _)) if *c == cursor => {}
            _ => {
                window.clean(&cursor);
                seen = Some((cursor.clone(), Instant::now()));
            }
        }
        // Recovery stopped asking (ended, or waits for something else):
        // leave, whatever is left to do. A storage that fails every request
        // must not keep a prefetcher alive; the next wal-fetch starts one.
        if seen
            .as_ref()
            .is_some_and(|(_, since)| since.elapsed() >= LINGER)
        {
            return;
        }
        let Some(name) = window.take(&cursor) else {
            tokio::time::sleep(POLL).await;
            continue;
        };
        // `fetch` verifies the object's BLAKE3 and the segment's header
        // against this cluster before the bytes are kept.
        let absent = match archive.fetch(&name, Some(local)).await {
            Ok(bytes) => {
                if let Err(e) = window.prefetch.store(&name, &bytes) {
                    log_line(
                        LogLevelFilter::Info,
                        &format!("prefetch {name}: cannot store it: {e}"),
                    );
                }
                false
            }
            // The end of the archive (so far).
            Err(ArchiveError::NotInArchive(_)) => true,
            Err(e) => {
                log_line(LogLevelFilter::Info, &format!("prefetch {name}: {e}"));
                true
            }
        };
        window.done(&name, absent);
    }
}

/// Starts `walship wal-prefetch NAME` in the background, unless one runs
/// (it follows the cursor).
pub fn spawn_if_needed(ctx: &Context, prefetch: &PrefetchDir, name: &WalFileName, prefix: &str) {
    if prefetch.running() {
        return;
    }
    super::spawn_detached(
        ctx,
        &["wal-prefetch".as_ref(), name.as_str().as_ref()],
        prefix,
        &prefetch.log_path(),
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

//! `walship wal-push-ahead PG_WAL`: the background pusher `wal-push` starts
//! (see push_ahead.rs). One per pg_wal (a lock); it uploads every file
//! PostgreSQL has marked ready and nobody has stored or claimed, in
//! `WALSHIP_UPLOAD_CONCURRENCY - 1` lanes (the foreground `wal-push` is the
//! last one), each with its own plugin instance kept for the pusher's life,
//! so connections and compiled code are reused from one file to the next.
//! It leaves when nothing has been left to do for a moment; the next
//! `wal-push` starts another.
//!
//! Quiet: it only ever saves PostgreSQL an upload, so a failure is logged at
//! info level and PostgreSQL's own call for that file uploads it.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Context, EXIT_FAILURE, Failure};
use crate::archive::Archive;
use crate::identity::IdentityCache;
use crate::logging::{LogLevelFilter, log_line};
use crate::object_format::{self, Encoded, Stored};
use crate::pg_control::{ClusterIdentity, read_cluster_identity};
use crate::push_ahead::{Claim, StatusDir};
use crate::storage::ObjectStore;
use crate::wal_name::WalFileName;

/// How long the pusher waits for new ready files before it leaves.
const LINGER: Duration = Duration::from_secs(1);
/// How often it looks for them meanwhile.
const POLL: Duration = Duration::from_millis(20);

pub async fn run(ctx: &Context, wal_dir: &Path) -> Result<(), Failure> {
    let fail = |m: String| {
        Failure::new(
            EXIT_FAILURE,
            format!("wal-push-ahead {}: {m}", wal_dir.display()),
        )
    };
    let status = StatusDir::new(wal_dir);
    let Some(_lock) = status
        .pusher_lock()
        .map_err(|e| fail(format!("cannot lock {}: {e}", wal_dir.display())))?
    else {
        // Another pusher is at work.
        return Ok(());
    };
    let local = read_cluster_identity(&ctx.cwd).map_err(|e| fail(e.to_string()))?;
    let prefix = ctx.prefix().map_err(|e| fail(format!("{e:#}")))?;
    let plugin = ctx.load_plugin().map_err(|e| fail(format!("{e:#}")))?;
    let store = plugin
        .open(prefix, |info| ctx.plugin_config(info))
        .await
        .map_err(|e| fail(e.to_string()))?;
    let identities = IdentityCache::new(ctx.settings.cache_dir.as_deref());
    let lanes = ctx.settings.upload_concurrency.saturating_sub(1).max(1);
    let stores = crate::transfer::lanes(store, lanes);
    let queue = Queue {
        status: &status,
        prefix,
        taken: RefCell::new(BTreeSet::new()),
    };
    let jobs = stores.into_iter().map(|store| {
        let store = crate::retry::Retrying::new(store, ctx.retry_policy());
        let archive = Archive::new(
            store,
            prefix,
            ctx.settings.compression,
            ctx.settings.keys.clone(),
            &identities,
        )
        .with_rate_limit(ctx.wal_rate_limit());
        lane(archive, &queue, &local, ctx.started)
    });
    futures::future::join_all(jobs).await;
    Ok(())
}

/// Hands out ready files to lanes: each file once per pusher, and only
/// with its claim.
struct Queue<'a> {
    status: &'a StatusDir,
    prefix: &'a str,
    /// Files this pusher took (stored, failed or found stored).
    taken: RefCell<BTreeSet<String>>,
}

impl Queue<'_> {
    /// The next ready file nobody stored or is storing, with its claim.
    fn next(&self) -> Option<(WalFileName, Claim)> {
        for name in self.status.ready() {
            if self.taken.borrow().contains(name.as_str()) {
                continue;
            }
            let Ok(Some(claim)) = self.status.try_claim(&name) else {
                continue;
            };
            self.taken.borrow_mut().insert(name.as_str().to_string());
            // Looked at after the claim: whoever held it may have finished.
            if self.status.marked(&name, self.prefix) {
                continue;
            }
            return Some((name, claim));
        }
        None
    }
}

async fn lane<S: ObjectStore>(
    mut archive: Archive<'_, S>,
    queue: &Queue<'_>,
    local: &ClusterIdentity,
    started: Instant,
) {
    let mut idle_since = None;
    loop {
        // Past its lifetime the pusher leaves between files, never during
        // one; the next wal-push starts a fresh one if work is left.
        if !super::helper_takes_work(started) {
            return;
        }
        let Some((name, _claim)) = queue.next() else {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= LINGER {
                return;
            }
            tokio::time::sleep(POLL).await;
            continue;
        };
        idle_since = None;
        if let Err(why) = push_one(&mut archive, queue, &name, local).await {
            log_line(
                LogLevelFilter::Info,
                &format!("{name}: not archived ahead ({why}); PostgreSQL will ask for it"),
            );
        }
    }
}

/// Uploads one ready file and records it. The claim is held by the caller
/// until this returns, marker written or not.
async fn push_one<S: ObjectStore>(
    archive: &mut Archive<'_, S>,
    queue: &Queue<'_>,
    name: &WalFileName,
    local: &ClusterIdentity,
) -> Result<(), String> {
    let path = queue.status.wal_file(name);
    let file = std::fs::File::open(&path).map_err(|e| format!("cannot read it: {e}"))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let encoded = encode_off_thread(file, size, archive, name)
        .await
        .map_err(|e| format!("cannot read it: {e}"))?;
    let content = encoded.content;
    archive
        .push(name, encoded, local)
        .await
        .map_err(|e| e.to_string())?;
    // Only now, with the object confirmed, may a marker vouch for it.
    crate::metrics::note(|w| {
        w.bytes += size;
        w.files += 1;
        w.archived = Some(name.as_str().to_string());
        w.wal_dir = Some(
            path.parent()
                .unwrap_or(std::path::Path::new("."))
                .to_path_buf(),
        );
    });
    let archive_id = archive.archive_id().unwrap_or_default().to_string();
    queue
        .status
        .record(name, queue.prefix, &archive_id, content)
        .map_err(|e| format!("stored, but cannot record it: {e}"))
}

/// Reads and encodes (compresses, and encrypts if a key is set) a WAL file
/// for `archive` on the blocking pool, so several files are compressed on
/// several cores while uploads wait on the network.
pub async fn encode_off_thread<S: ObjectStore>(
    file: std::fs::File,
    size: u64,
    archive: &Archive<'_, S>,
    name: &WalFileName,
) -> std::io::Result<Encoded> {
    let compression = archive.compression();
    let keys = archive.keys().clone();
    let at = crate::archive::wal_key(name);
    tokio::task::spawn_blocking(move || {
        let stored = Stored {
            at: at.as_str(),
            keys: &keys,
        };
        object_format::encode_from(file, size, compression, stored)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Starts the pusher for `status` unless one runs or there is nothing for
/// it: among the next ready files after `requested` (as many as upload at
/// once), one with no marker. Unmarked files further on get a pusher when
/// PostgreSQL's calls come near them.
pub fn spawn_if_needed(
    ctx: &Context,
    status: &StatusDir,
    wal_dir: &Path,
    requested: &WalFileName,
    prefix: &str,
) {
    if ctx.settings.upload_concurrency < 2
        || status.pusher_running()
        || status
            .unmarked(prefix, requested, ctx.settings.upload_concurrency)
            .is_empty()
    {
        return;
    }
    super::spawn_detached(
        ctx,
        &["wal-push-ahead".as_ref(), wal_dir.as_os_str()],
        prefix,
        &status.log_path(),
    );
}

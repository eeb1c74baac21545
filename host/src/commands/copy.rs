//! `walship copy --to PREFIX`: a second copy of the archive somewhere else,
//! through whichever plugin serves PREFIX. Only what is missing there is
//! copied, every object is verified on the way (WAL by its own checksum,
//! volumes by the BLAKE3 their record gives) and read back after, and the
//! order keeps the copy a valid archive at every moment: identity first,
//! then WAL, then each backup's volumes, its permanence mark, and its
//! record last (a backup is listed at the copy only once all of it is
//! there). A copy interrupted at any moment and run again ends complete.
//! PITR works from the copy as from the original. An encrypted archive is
//! copied as it is stored (the copy needs the same keys); the keys it runs
//! with verify what is copied.

use std::collections::BTreeMap;

use anyhow::{Context as _, anyhow, bail};
use tokio::sync::mpsc;

use super::{Context, EXIT_FAILURE, Failure};
use crate::backup::catalog::{self, BackupRecord};
use crate::backup::volume::{self, Msg};
use crate::identity::IDENTITY_KEY;
use crate::object_format;
use crate::retry::Retrying;
use crate::storage::{ByteRange, Key, ObjectStore, PutOptions, StorageError};
use crate::transfer;

/// Bytes per ranged read (and per part) of a volume.
const RANGE: u64 = 8 << 20;

#[derive(Debug, Default)]
struct Tally {
    wal_copied: usize,
    wal_present: usize,
    backups_copied: usize,
    backups_present: usize,
    volumes_copied: usize,
    bytes: u64,
}

pub async fn run(ctx: &Context, to: &str) -> Result<(), Failure> {
    let fail = |m: String| Failure::new(EXIT_FAILURE, format!("copy: {m}"));
    let from = ctx.prefix().map_err(|e| fail(format!("{e:#}")))?;
    if from.trim_end_matches('/') == to.trim_end_matches('/') {
        return Err(fail("the destination is the archive itself".into()));
    }
    let plugin = ctx.load_plugin().map_err(|e| fail(format!("{e:#}")))?;
    let mut source = super::open_store(ctx, &plugin, &fail).await?;
    // The destination is written to: a missing archive directory there may
    // be made (one level, as for wal-push); the source only ever read.
    let mut options = ctx.runtime_options();
    options.create_missing_directory = true;
    let (to_plugin, _) = super::load_named_with(ctx, super::scheme_of(to), options)
        .map_err(|e| fail(format!("{e:#}")))?;
    let dest = to_plugin
        .open(to, |info| ctx.plugin_config(info))
        .await
        .map_err(|e| fail(format!("{to}: {e}{}", super::storage_hint(&e))))?;
    let mut dest = Retrying::new(dest, ctx.retry_policy());
    let mut tally = Tally::default();
    copy(
        &mut source,
        &mut dest,
        from,
        to,
        &ctx.settings.keys,
        &mut tally,
    )
    .await
    .map_err(|e| fail(format!("{e:#} (run the command again to finish)")))?;
    println!(
        "copied {} WAL files ({} already there), {} backups with {} volumes ({} already there), \
         {} bytes, from {from} to {to}; every object read back and verified",
        tally.wal_copied,
        tally.wal_present,
        tally.backups_copied,
        tally.volumes_copied,
        tally.backups_present,
        tally.bytes
    );
    Ok(())
}

async fn copy<S: ObjectStore, D: ObjectStore>(
    source: &mut S,
    dest: &mut D,
    from: &str,
    to: &str,
    keys: &crate::crypto::Keys,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    // Identity: the same cluster, or none yet at the destination.
    let identity = Key::new(IDENTITY_KEY).expect("constant key");
    let theirs = crate::archive::read_identity(source)
        .await?
        .ok_or_else(|| anyhow!("{from} holds no walship archive (no {IDENTITY_KEY})"))?;
    match crate::archive::read_identity(dest).await? {
        Some(ours) if ours.cluster == theirs.cluster => {}
        Some(ours) => bail!(
            "{to} holds the archive of another cluster (system identifier {}, {}-byte segments), \
             the source's is {} ({}-byte segments): give the copy its own prefix",
            ours.cluster.system_identifier,
            ours.cluster.wal_segment_size,
            theirs.cluster.system_identifier,
            theirs.cluster.wal_segment_size
        ),
        None => {
            if let Some(o) = transfer::list_all(dest, "", Some(10))
                .await
                .with_context(|| format!("list {to}"))?
                .0
                .first()
            {
                bail!(
                    "{to} is not empty and holds no walship archive (found {}): use an empty prefix",
                    o.key
                );
            }
            let (_, bytes) = source.get(&identity, None).await?;
            put_verified(dest, &identity, &bytes).await?;
        }
    }
    let segment_limit =
        u64::from(theirs.cluster.wal_segment_size) + object_format::HEADER_LEN as u64;

    // WAL: every file, before any backup that needs it.
    let there = sizes(dest, "wal/").await?;
    let (wal, _) = transfer::list_all(source, "wal/", None).await?;
    for o in &wal {
        let key = Key::new(o.key.clone())?;
        if let Some(&size) = there.get(&o.key) {
            if size != o.size {
                bail!(
                    "{} at {to} has {size} bytes, the source's has {}: not the same file",
                    o.key,
                    o.size
                );
            }
            tally.wal_present += 1;
            continue;
        }
        let bytes = transfer::download_at_most(source, &key, segment_limit.max(64 << 20))
            .await
            .with_context(|| format!("get {} from {from}", o.key))?;
        // Verified before it goes anywhere: a damaged source object is not
        // copied as if it were good.
        object_format::decode(
            bytes.clone(),
            object_format::Stored {
                at: key.as_str(),
                keys,
            },
        )
        .map_err(|e| anyhow!("{} at {from} is damaged ({e}): not copied", o.key))?;
        put_verified(dest, &key, &bytes).await?;
        tally.wal_copied += 1;
        tally.bytes += bytes.len() as u64;
    }

    // Backups: volumes, then the mark, then the record.
    let records = catalog::list_backups(source, keys).await?;
    let there = sizes(dest, catalog::BACKUPS_PREFIX).await?;
    for record in &records {
        let record_key = catalog::record_key(&record.name);
        if there.contains_key(record_key.as_str()) {
            tally.backups_present += 1;
            continue;
        }
        for v in &record.volumes {
            if there.get(&v.key) == Some(&v.stored_len) {
                continue;
            }
            if there.contains_key(&v.key) {
                // A volume of another length under this name: left by
                // something else. Never overwritten.
                bail!(
                    "{} at {to} has another length than the source's volume: remove it and run again",
                    v.key
                );
            }
            copy_volume(source, dest, record, v).await?;
            tally.volumes_copied += 1;
            tally.bytes += v.stored_len;
        }
        if catalog::is_permanent(source, &record.name).await? {
            catalog::set_permanent(dest, &record.name, true, keys).await?;
        }
        let (_, bytes) = source.get(&record_key, None).await?;
        BackupRecord::decode(record_key.as_str(), bytes.clone(), keys)?;
        put_verified(dest, &record_key, &bytes).await?;
        tally.backups_copied += 1;
    }
    Ok(())
}

/// Key → size of everything under `prefix`.
async fn sizes<S: ObjectStore>(
    store: &mut S,
    prefix: &str,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let (objects, _) = transfer::list_all(store, prefix, None).await?;
    Ok(objects.into_iter().map(|o| (o.key, o.size)).collect())
}

/// Stores `bytes` create-only and reads them back. Already there with the
/// same bytes (a rerun after a lost answer) is fine; other bytes are not.
async fn put_verified<D: ObjectStore>(dest: &mut D, key: &Key, bytes: &[u8]) -> anyhow::Result<()> {
    match transfer::upload(dest, key, bytes, &PutOptions::create_only()).await {
        Ok(_) | Err(StorageError::AlreadyExists(_)) => {}
        Err(e) => return Err(anyhow!("put {key}: {e}")),
    }
    let back = transfer::download(dest, key)
        .await
        .with_context(|| format!("read back {key}"))?;
    if blake3::hash(&back) != blake3::hash(bytes) {
        bail!("{key} reads back other bytes than were copied");
    }
    Ok(())
}

/// Streams one volume from source to destination in ranges (memory stays a
/// few parts), checks the stored bytes against the record's length and
/// BLAKE3 before the upload completes, then reads the copy back.
async fn copy_volume<S: ObjectStore, D: ObjectStore>(
    source: &mut S,
    dest: &mut D,
    record: &BackupRecord,
    v: &catalog::VolumeRecord,
) -> anyhow::Result<()> {
    let key = Key::new(v.key.clone())?;
    let (tx, mut rx) = mpsc::channel::<Msg>(2);
    // The reader owns the sending end: when it stops, for whatever reason,
    // the upload sees the channel close without `End` and aborts.
    let reading = {
        let key = key.clone();
        async move {
            let mut hasher = blake3::Hasher::new();
            let mut offset = 0u64;
            let ranged = source.info().features.ranged_get;
            loop {
                let range = ranged.then_some(ByteRange {
                    offset,
                    length: Some(RANGE),
                });
                let (meta, bytes) = source.get(&key, range).await?;
                if meta.size != v.stored_len {
                    bail!(
                        "volume {} of {} has {} bytes at the source, its record says {}",
                        v.key,
                        record.name,
                        meta.size,
                        v.stored_len
                    );
                }
                offset += bytes.len() as u64;
                hasher.update(&bytes);
                let last = !ranged || bytes.is_empty() || offset >= meta.size;
                if !bytes.is_empty() || offset == 0 {
                    tx.send(Msg::Part(bytes))
                        .await
                        .map_err(|_| anyhow!("the upload stopped"))?;
                }
                if last {
                    break;
                }
            }
            if offset != v.stored_len || hasher.finalize().to_hex().as_str() != v.stored_blake3 {
                bail!(
                    "volume {} of {} is damaged at the source: not copied",
                    v.key,
                    record.name
                );
            }
            // Only a whole, verified volume completes the upload.
            tx.send(Msg::End)
                .await
                .map_err(|_| anyhow!("the upload stopped"))?;
            Ok::<(), anyhow::Error>(())
        }
    };
    let (read, uploaded) = tokio::join!(reading, volume::upload(dest, &key, &mut rx, None));
    read?;
    uploaded.map_err(|e| anyhow!("upload of {}: {e}", v.key))?;
    // Read back, by ranges.
    let mut hasher = blake3::Hasher::new();
    let mut offset = 0u64;
    let ranged = dest.info().features.ranged_get;
    loop {
        let range = ranged.then_some(ByteRange {
            offset,
            length: Some(RANGE),
        });
        let (meta, bytes) = dest.get(&key, range).await?;
        offset += bytes.len() as u64;
        hasher.update(&bytes);
        if !ranged || bytes.is_empty() || offset >= meta.size {
            break;
        }
    }
    if offset != v.stored_len || hasher.finalize().to_hex().as_str() != v.stored_blake3 {
        bail!("volume {} reads back other bytes than were copied", v.key);
    }
    Ok(())
}

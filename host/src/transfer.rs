//! Whole-object transfers on top of the primitive store operations: uploads
//! that switch to multipart above the backend's single-put limit (so a large
//! object never has to cross into plugin memory at once), downloads in ranged
//! chunks, and complete listings across pages.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::storage::{
    ByteRange, Key, ListOptions, ObjectMeta, ObjectStore, PartReceipt, PutOptions, StorageError,
};

/// Set when the process is asked to stop: uploads in parts stop between
/// parts and abort, so no half-object and no orphaned parts stay behind.
static CANCELLED: AtomicBool = AtomicBool::new(false);

pub fn cancel() {
    CANCELLED.store(true, Ordering::SeqCst);
}

fn cancelled() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}

/// Largest piece handed to a plugin in one call. Bounds plugin memory
/// whatever the backend's own limits are.
pub const MAX_CHUNK: u64 = 32 << 20;

/// Stores `data` under `key`, in one put or as a multipart upload. A failed
/// multipart upload is aborted, so nothing half-written becomes visible.
pub async fn upload<S: ObjectStore>(
    store: &mut S,
    key: &Key,
    data: &[u8],
    options: &PutOptions,
) -> Result<ObjectMeta, StorageError> {
    let limits = store.info().limits;
    let single_limit = limits.max_single_put.min(MAX_CHUNK);
    if data.len() as u64 <= single_limit || !store.info().features.multipart {
        return store.put(key, data, options).await;
    }
    let part_size = limits
        .min_part_size
        .max(MAX_CHUNK.min(limits.max_part_size))
        .max(1) as usize;
    let upload_id = store.start_multipart(key, options).await?;
    let result = async {
        let mut parts: Vec<PartReceipt> = Vec::new();
        for (i, chunk) in data.chunks(part_size).enumerate() {
            if cancelled() {
                return Err(StorageError::Other("interrupted; upload aborted".into()));
            }
            parts.push(store.put_part(key, &upload_id, i as u32 + 1, chunk).await?);
        }
        store
            .complete_multipart(key, &upload_id, &parts, options)
            .await
    }
    .await;
    if result.is_err()
        && let Err(e) = store.abort_multipart(key, &upload_id).await
    {
        eprintln!("walship: warning: could not abort upload {upload_id} of {key}: {e}");
    }
    result
}

/// Reads a whole object, in ranged chunks where the backend supports them.
/// Objects up to `MAX_CHUNK` take exactly one request.
pub async fn download<S: ObjectStore>(store: &mut S, key: &Key) -> Result<Vec<u8>, StorageError> {
    if !store.info().features.ranged_get {
        return Ok(store.get(key, None).await?.1);
    }
    let (meta, mut data) = store
        .get(
            key,
            Some(ByteRange {
                offset: 0,
                length: Some(MAX_CHUNK),
            }),
        )
        .await?;
    while (data.len() as u64) < meta.size {
        let (_, more) = store
            .get(
                key,
                Some(ByteRange {
                    offset: data.len() as u64,
                    length: Some(MAX_CHUNK),
                }),
            )
            .await?;
        if more.is_empty() {
            return Err(StorageError::Transient(format!(
                "{key} shrank while being read"
            )));
        }
        data.extend_from_slice(&more);
    }
    Ok(data)
}

/// Reads the first `len` bytes of an object (the whole object if the backend
/// cannot do ranges).
pub async fn read_head<S: ObjectStore>(
    store: &mut S,
    key: &Key,
    len: u64,
) -> Result<Vec<u8>, StorageError> {
    if store.info().features.ranged_get {
        Ok(store
            .get(
                key,
                Some(ByteRange {
                    offset: 0,
                    length: Some(len),
                }),
            )
            .await?
            .1)
    } else {
        let mut all = store.get(key, None).await?.1;
        all.truncate(len as usize);
        Ok(all)
    }
}

/// Every key under `prefix`, following pagination to the end. `limit` stops
/// early (for "is there anything here?" checks) and says so.
pub async fn list_all<S: ObjectStore>(
    store: &mut S,
    prefix: &str,
    limit: Option<usize>,
) -> Result<(Vec<ObjectMeta>, bool), StorageError> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = store
            .list_page(&ListOptions {
                prefix: prefix.to_string(),
                page_token: token.take(),
                max_keys: 1000,
                ..Default::default()
            })
            .await?;
        out.extend(page.objects);
        if let Some(limit) = limit
            && out.len() >= limit
        {
            out.truncate(limit);
            return Ok((out, true));
        }
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => return Ok((out, false)),
        }
    }
}

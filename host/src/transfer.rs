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

/// Parts of one upload in flight at once, each through its own plugin
/// instance (an instance runs one call at a time). Bounded because every
/// instance holds its part in guest memory.
pub const PART_CONCURRENCY: usize = 4;

/// Stores `data` under `key`, in one put or as a multipart upload whose parts
/// go up in parallel. A failed multipart upload is aborted, so nothing
/// half-written becomes visible.
pub async fn upload<S: ObjectStore>(
    store: &mut S,
    key: &Key,
    data: &[u8],
    options: &PutOptions,
) -> Result<ObjectMeta, StorageError> {
    let limits = store.info().limits;
    let single_limit = limits.max_single_put.min(MAX_CHUNK);
    if data.len() as u64 <= single_limit || !store.info().features.multipart {
        return store.put(key, data, &with_sha256(options, data)).await;
    }
    let part_size = limits
        .min_part_size
        .max(MAX_CHUNK.min(limits.max_part_size))
        .max(1) as usize;
    let chunks: Vec<&[u8]> = data.chunks(part_size).collect();
    let upload_id = store.start_multipart(key, options).await?;
    let mut workers: Vec<S> = (1..PART_CONCURRENCY.min(chunks.len()))
        .map_while(|_| store.worker())
        .collect();
    let parts = put_parts(store, &mut workers, key, &upload_id, &chunks).await;
    drop(workers);
    let result = match parts {
        Ok(parts) => {
            store
                .complete_multipart(key, &upload_id, &parts, options)
                .await
        }
        Err(e) => Err(e),
    };
    if result.is_err()
        && let Err(e) = store.abort_multipart(key, &upload_id).await
    {
        eprintln!("walship: warning: could not abort upload {upload_id} of {key}: {e}");
    }
    result
}

/// `store` and up to `count - 1` workers of it: handles whose calls can run
/// at the same time, one per lane of a pipeline (at least `store` itself).
pub fn lanes<S: ObjectStore>(store: S, count: usize) -> Vec<S> {
    let mut lanes: Vec<S> = (1..count).map_while(|_| store.worker()).collect();
    lanes.insert(0, store);
    lanes
}

/// `options` with the SHA-256 of `data`, for plugins to hand to stores that
/// verify it (S3's `x-amz-checksum-sha256`): computed here with the CPU's
/// SHA instructions, a millisecond for a compressed segment, where a plugin
/// would take several times longer in wasm.
fn with_sha256(options: &PutOptions, data: &[u8]) -> PutOptions {
    use sha2::{Digest, Sha256};
    let mut options = options.clone();
    if options.checksums.sha256.is_none() {
        options.checksums.sha256 = Some(Sha256::digest(data).to_vec());
    }
    options
}

/// Sends every chunk as a part, `store` and each worker taking the next
/// unsent chunk until none is left. After a failure no new part starts, but
/// parts in flight finish: a plugin call is never abandoned half-way, so
/// `store` can still abort the upload.
async fn put_parts<S: ObjectStore>(
    store: &mut S,
    workers: &mut [S],
    key: &Key,
    upload_id: &str,
    chunks: &[&[u8]],
) -> Result<Vec<PartReceipt>, StorageError> {
    use std::cell::{Cell, RefCell};
    let next = Cell::new(0usize);
    let failure: RefCell<Option<StorageError>> = RefCell::new(None);
    let receipts: RefCell<Vec<Option<PartReceipt>>> = RefCell::new(vec![None; chunks.len()]);
    let (next, failure, receipts) = (&next, &failure, &receipts);
    let lane = async |s: &mut S| {
        loop {
            let i = next.get();
            if i >= chunks.len() || failure.borrow().is_some() {
                return;
            }
            if cancelled() {
                failure.replace(Some(StorageError::Other(
                    "interrupted; upload aborted".into(),
                )));
                return;
            }
            next.set(i + 1);
            match s.put_part(key, upload_id, i as u32 + 1, chunks[i]).await {
                Ok(r) => receipts.borrow_mut()[i] = Some(r),
                Err(e) => {
                    failure.borrow_mut().get_or_insert(e);
                }
            }
        }
    };
    let lanes = std::iter::once(store)
        .chain(workers.iter_mut())
        .map(lane)
        .collect::<Vec<_>>();
    futures::future::join_all(lanes).await;
    if let Some(e) = failure.take() {
        return Err(e);
    }
    Ok(receipts.take().into_iter().flatten().collect())
}

/// The most `download` reads: the largest object walship writes (a WAL
/// segment of the largest size PostgreSQL allows, plus its header).
pub const MAX_DOWNLOAD: u64 = crate::object_format::MAX_DECODED + 64;

/// Reads a whole object, in ranged chunks where the backend supports them.
/// Objects up to `MAX_CHUNK` take exactly one request.
pub async fn download<S: ObjectStore>(store: &mut S, key: &Key) -> Result<Vec<u8>, StorageError> {
    download_at_most(store, key, MAX_DOWNLOAD).await
}

/// `download` of an object that can be at most `limit` bytes long (a WAL
/// object: its segment size plus the header). A larger one is refused as
/// soon as its size is known, before the rest is read: a store (or plugin)
/// cannot make walship hold more than it expects.
pub async fn download_at_most<S: ObjectStore>(
    store: &mut S,
    key: &Key,
    limit: u64,
) -> Result<Vec<u8>, StorageError> {
    let too_large = |size: u64| {
        StorageError::Other(format!(
            "{key} is {size} bytes, more than the {limit} it can be; refusing to read it"
        ))
    };
    if !store.info().features.ranged_get {
        let data = store.get(key, None).await?.1;
        if data.len() as u64 > limit {
            return Err(too_large(data.len() as u64));
        }
        return Ok(data);
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
    if meta.size > limit || data.len() as u64 > limit {
        return Err(too_large(meta.size.max(data.len() as u64)));
    }
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
        if data.len() as u64 > limit {
            return Err(too_large(data.len() as u64));
        }
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

#[cfg(test)]
mod tests {
    //! An in-memory store that records how parts arrive. The real thing is
    //! exercised end to end against S3 and the filesystem in `tests/`.
    use super::*;
    use crate::storage::{BackendInfo, Features, Limits, ListPage};
    use std::cell::RefCell;
    use std::rc::Rc;

    #[derive(Default)]
    struct Log {
        in_flight: usize,
        max_in_flight: usize,
        parts: Vec<(u32, usize)>,
        completed: Option<Vec<u32>>,
        aborted: bool,
        put_sha256: Option<Vec<u8>>,
    }

    struct Recorder {
        info: BackendInfo,
        log: Rc<RefCell<Log>>,
        fail_part: Option<u32>,
    }

    impl Recorder {
        fn new(fail_part: Option<u32>) -> Self {
            Self {
                info: BackendInfo {
                    backend: "memory".into(),
                    plugin_version: "0".into(),
                    schemes: vec!["mem".into()],
                    features: Features {
                        multipart: true,
                        ..Default::default()
                    },
                    limits: Limits {
                        max_single_put: 1 << 40,
                        min_part_size: 1,
                        max_part_size: 1 << 40,
                        max_parts: 10_000,
                        max_delete_batch: 1000,
                    },
                    config_keys: vec![],
                    capabilities: Default::default(),
                },
                log: Rc::default(),
                fail_part,
            }
        }
    }

    fn meta() -> ObjectMeta {
        ObjectMeta {
            key: "k".into(),
            size: 0,
            last_modified_ms: None,
            etag: None,
        }
    }

    impl ObjectStore for Recorder {
        fn info(&self) -> &BackendInfo {
            &self.info
        }
        fn worker(&self) -> Option<Self> {
            Some(Self {
                info: self.info.clone(),
                log: self.log.clone(),
                fail_part: self.fail_part,
            })
        }
        async fn head(&mut self, _: &Key) -> Result<ObjectMeta, StorageError> {
            unreachable!()
        }
        async fn get(
            &mut self,
            _: &Key,
            _: Option<ByteRange>,
        ) -> Result<(ObjectMeta, Vec<u8>), StorageError> {
            unreachable!()
        }
        async fn put(
            &mut self,
            _: &Key,
            _: &[u8],
            options: &PutOptions,
        ) -> Result<ObjectMeta, StorageError> {
            self.log.borrow_mut().put_sha256 = options.checksums.sha256.clone();
            Ok(meta())
        }
        async fn list_page(
            &mut self,
            _: &ListOptions,
        ) -> Result<crate::storage::ListPage, StorageError> {
            unreachable!()
        }
        async fn delete(&mut self, _: &[Key]) -> Result<Vec<(String, StorageError)>, StorageError> {
            unreachable!()
        }
        async fn start_multipart(
            &mut self,
            _: &Key,
            _: &PutOptions,
        ) -> Result<String, StorageError> {
            Ok("upload-1".into())
        }
        async fn put_part(
            &mut self,
            _: &Key,
            _: &str,
            number: u32,
            data: &[u8],
        ) -> Result<PartReceipt, StorageError> {
            {
                let mut log = self.log.borrow_mut();
                log.in_flight += 1;
                log.max_in_flight = log.max_in_flight.max(log.in_flight);
            }
            // Let the other lanes run, as a network wait would.
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            let mut log = self.log.borrow_mut();
            log.in_flight -= 1;
            if self.fail_part == Some(number) {
                return Err(StorageError::Transient(format!("part {number} failed")));
            }
            log.parts.push((number, data.len()));
            Ok(PartReceipt {
                number,
                etag: format!("etag-{number}"),
                size: data.len() as u64,
            })
        }
        async fn complete_multipart(
            &mut self,
            _: &Key,
            _: &str,
            parts: &[PartReceipt],
            _: &PutOptions,
        ) -> Result<ObjectMeta, StorageError> {
            self.log.borrow_mut().completed = Some(parts.iter().map(|p| p.number).collect());
            Ok(meta())
        }
        async fn abort_multipart(&mut self, _: &Key, _: &str) -> Result<(), StorageError> {
            self.log.borrow_mut().aborted = true;
            Ok(())
        }
    }

    /// A store that says an object is 2 GiB and hands out zeros for any
    /// range: the size a damaged or hostile store might claim for a WAL
    /// object.
    struct Huge {
        info: BackendInfo,
        served: Rc<RefCell<u64>>,
    }

    impl ObjectStore for Huge {
        fn info(&self) -> &BackendInfo {
            &self.info
        }
        fn worker(&self) -> Option<Self> {
            None
        }
        async fn head(&mut self, _: &Key) -> Result<ObjectMeta, StorageError> {
            unimplemented!()
        }
        async fn get(
            &mut self,
            _: &Key,
            range: Option<ByteRange>,
        ) -> Result<(ObjectMeta, Vec<u8>), StorageError> {
            let len = range.and_then(|r| r.length).unwrap_or(MAX_CHUNK);
            *self.served.borrow_mut() += len;
            let meta = ObjectMeta {
                size: 2 << 30,
                ..meta()
            };
            Ok((meta, vec![0u8; len as usize]))
        }
        async fn put(
            &mut self,
            _: &Key,
            _: &[u8],
            _: &PutOptions,
        ) -> Result<ObjectMeta, StorageError> {
            unimplemented!()
        }
        async fn list_page(&mut self, _: &ListOptions) -> Result<ListPage, StorageError> {
            unimplemented!()
        }
        async fn delete(&mut self, _: &[Key]) -> Result<Vec<(String, StorageError)>, StorageError> {
            unimplemented!()
        }
        async fn start_multipart(
            &mut self,
            _: &Key,
            _: &PutOptions,
        ) -> Result<String, StorageError> {
            unimplemented!()
        }
        async fn put_part(
            &mut self,
            _: &Key,
            _: &str,
            _: u32,
            _: &[u8],
        ) -> Result<PartReceipt, StorageError> {
            unimplemented!()
        }
        async fn complete_multipart(
            &mut self,
            _: &Key,
            _: &str,
            _: &[PartReceipt],
            _: &PutOptions,
        ) -> Result<ObjectMeta, StorageError> {
            unimplemented!()
        }
        async fn abort_multipart(&mut self, _: &Key, _: &str) -> Result<(), StorageError> {
            unimplemented!()
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_object_larger_than_it_can_be_is_refused_before_it_is_read() {
        let mut info = Recorder::new(None).info;
        info.features.ranged_get = true;
        let served = Rc::new(RefCell::new(0));
        let mut store = Huge {
            info,
            served: served.clone(),
        };
        let key = Key::new("wal/000000010000000000000001").unwrap();
        let err = download(&mut store, &key).await.expect_err("read 2 GiB");
        assert!(err.to_string().contains("refusing to read it"), "{err}");
        assert_eq!(*served.borrow(), MAX_CHUNK, "read past the first chunk");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn parts_go_up_in_parallel_and_complete_in_order() {
        let mut store = Recorder::new(None);
        let data = vec![7u8; (MAX_CHUNK as usize) * 5 + 3];
        let key = Key::new("big").unwrap();
        upload(&mut store, &key, &data, &PutOptions::overwrite())
            .await
            .unwrap();
        let log = store.log.borrow();
        assert_eq!(log.completed.as_deref(), Some(&[1, 2, 3, 4, 5, 6][..]));
        assert_eq!(
            log.max_in_flight, PART_CONCURRENCY,
            "parts in flight at once"
        );
        let sent: usize = log.parts.iter().map(|(_, n)| n).sum();
        assert_eq!(sent, data.len());
        assert!(!log.aborted);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_single_put_carries_the_sha256_of_its_body() {
        use sha2::{Digest, Sha256};
        let mut store = Recorder::new(None);
        let key = Key::new("small").unwrap();
        upload(&mut store, &key, b"abc", &PutOptions::create_only())
            .await
            .unwrap();
        assert_eq!(
            store.log.borrow().put_sha256.as_deref(),
            Some(&Sha256::digest(b"abc")[..])
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failed_part_aborts_and_never_completes() {
        let mut store = Recorder::new(Some(2));
        let data = vec![1u8; (MAX_CHUNK as usize) * 6];
        let key = Key::new("big").unwrap();
        let err = upload(&mut store, &key, &data, &PutOptions::overwrite())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("part 2 failed"), "{err}");
        let log = store.log.borrow();
        assert!(log.aborted);
        assert!(log.completed.is_none());
        assert_eq!(log.in_flight, 0, "no part call was abandoned half-way");
    }
}

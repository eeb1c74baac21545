//! An object store in memory, for unit tests of the layers above the
//! plugins (catalog, archive rules, retention): create-only is atomic, as
//! the contract asks of a good store, and handles made by `worker` share
//! the same objects, so races between "processes" can be played out.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use crate::storage::{
    BackendInfo, ByteRange, Capabilities, Features, Key, Limits, ListOptions, ListPage, ObjectMeta,
    ObjectStore, PartReceipt, PutMode, PutOptions, StorageError,
};

#[derive(Default)]
struct Shared {
    objects: BTreeMap<String, Vec<u8>>,
    uploads: BTreeMap<String, BTreeMap<u32, Vec<u8>>>,
    next_upload: u64,
}

pub struct MemoryStore {
    info: BackendInfo,
    shared: Rc<RefCell<Shared>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self {
            info: BackendInfo {
                backend: "memory".into(),
                plugin_version: "0".into(),
                schemes: vec!["mem".into()],
                features: Features {
                    create_only: true,
                    atomic_create_only: true,
                    ranged_get: true,
                    multipart: true,
                    batch_delete: true,
                    list_start_after: true,
                    list_delimiter: false,
                },
                limits: Limits {
                    max_single_put: 1 << 30,
                    min_part_size: 1,
                    max_part_size: 1 << 30,
                    max_parts: 10_000,
                    max_delete_batch: 1000,
                },
                config_keys: vec![],
                capabilities: Capabilities::default(),
            },
            shared: Rc::default(),
        }
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.shared.borrow().objects.keys().cloned().collect()
    }

    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        self.shared.borrow().objects.get(key).cloned()
    }

    fn meta(key: &str, size: usize) -> ObjectMeta {
        ObjectMeta {
            key: key.to_string(),
            size: size as u64,
            last_modified_ms: None,
            etag: None,
        }
    }

    fn store(&self, key: &Key, data: Vec<u8>, mode: PutMode) -> Result<ObjectMeta, StorageError> {
        let mut shared = self.shared.borrow_mut();
        if mode == PutMode::CreateOnly && shared.objects.contains_key(key.as_str()) {
            return Err(StorageError::AlreadyExists(key.to_string()));
        }
        let size = data.len();
        shared.objects.insert(key.to_string(), data);
        Ok(Self::meta(key.as_str(), size))
    }
}

impl ObjectStore for MemoryStore {
    fn info(&self) -> &BackendInfo {
        &self.info
    }
    fn worker(&self) -> Option<Self> {
        Some(Self {
            info: self.info.clone(),
            shared: self.shared.clone(),
        })
    }
    async fn head(&mut self, key: &Key) -> Result<ObjectMeta, StorageError> {
        let shared = self.shared.borrow();
        let o = shared
            .objects
            .get(key.as_str())
            .ok_or_else(|| StorageError::NotFound(key.to_string()))?;
        Ok(Self::meta(key.as_str(), o.len()))
    }
    async fn get(
        &mut self,
        key: &Key,
        range: Option<ByteRange>,
    ) -> Result<(ObjectMeta, Vec<u8>), StorageError> {
        let shared = self.shared.borrow();
        let o = shared
            .objects
            .get(key.as_str())
            .ok_or_else(|| StorageError::NotFound(key.to_string()))?;
        let bytes = match range {
            None => o.clone(),
            Some(r) => {
                let start = (r.offset as usize).min(o.len());
                let end = r
                    .length
                    .map_or(o.len(), |l| (start + l as usize).min(o.len()));
                o[start..end].to_vec()
            }
        };
        Ok((Self::meta(key.as_str(), o.len()), bytes))
    }
    async fn put(
        &mut self,
        key: &Key,
        data: &[u8],
        options: &PutOptions,
    ) -> Result<ObjectMeta, StorageError> {
        self.store(key, data.to_vec(), options.mode)
    }
    async fn list_page(&mut self, options: &ListOptions) -> Result<ListPage, StorageError> {
        let shared = self.shared.borrow();
        let max = if options.max_keys == 0 {
            1000
        } else {
            options.max_keys as usize
        };
        let after = options
            .page_token
            .clone()
            .or_else(|| options.start_after.clone());
        let mut page = ListPage::default();
        for (k, v) in shared.objects.range(options.prefix.clone()..) {
            if !k.starts_with(&options.prefix) {
                break;
            }
            if after.as_ref().is_some_and(|a| k <= a) {
                continue;
            }
            if page.objects.len() == max {
                page.next_page_token = page.objects.last().map(|o| o.key.clone());
                break;
            }
            page.objects.push(Self::meta(k, v.len()));
        }
        Ok(page)
    }
    async fn delete(&mut self, keys: &[Key]) -> Result<Vec<(String, StorageError)>, StorageError> {
        let mut shared = self.shared.borrow_mut();
        for k in keys {
            shared.objects.remove(k.as_str());
        }
        Ok(vec![])
    }
    async fn start_multipart(&mut self, key: &Key, _: &PutOptions) -> Result<String, StorageError> {
        let mut shared = self.shared.borrow_mut();
        shared.next_upload += 1;
        let id = format!("{key}#{}", shared.next_upload);
        shared.uploads.insert(id.clone(), BTreeMap::new());
        Ok(id)
    }
    async fn put_part(
        &mut self,
        _: &Key,
        upload_id: &str,
        number: u32,
        data: &[u8],
    ) -> Result<PartReceipt, StorageError> {
        let mut shared = self.shared.borrow_mut();
        let parts = shared
            .uploads
            .get_mut(upload_id)
            .ok_or_else(|| StorageError::NotFound(upload_id.to_string()))?;
        parts.insert(number, data.to_vec());
        Ok(PartReceipt {
            number,
            etag: format!("e{number}"),
            size: data.len() as u64,
        })
    }
    async fn complete_multipart(
        &mut self,
        key: &Key,
        upload_id: &str,
        parts: &[PartReceipt],
        options: &PutOptions,
    ) -> Result<ObjectMeta, StorageError> {
        let uploaded = self
            .shared
            .borrow_mut()
            .uploads
            .remove(upload_id)
            .ok_or_else(|| StorageError::NotFound(upload_id.to_string()))?;
        let mut data = Vec::new();
        for p in parts {
            data.extend_from_slice(
                uploaded
                    .get(&p.number)
                    .ok_or_else(|| StorageError::Other(format!("part {} missing", p.number)))?,
            );
        }
        self.store(key, data, options.mode)
    }
    async fn abort_multipart(&mut self, _: &Key, upload_id: &str) -> Result<(), StorageError> {
        self.shared.borrow_mut().uploads.remove(upload_id);
        Ok(())
    }
}

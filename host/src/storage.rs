//! The host's view of a storage backend: one trait, the seam between the
//! archive logic and whatever stores bytes (a wasm plugin in production,
//! decorators such as retries around it).
//!
//! The types mirror the WIT contract (`wit/storage.wit`) but belong to the
//! host, so nothing above this seam knows about wasmtime.

use std::fmt;
use std::time::Duration;

/// A key relative to the store's prefix, validated (see `Key::new`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

impl Key {
    /// Keys are `/`-separated, relative, without empty, `.` or `..` segments,
    /// at most 1024 bytes: the rules every backend can honour.
    pub fn new(key: impl Into<String>) -> Result<Self, StorageError> {
        let key = key.into();
        let ok = !key.is_empty()
            && key.len() <= 1024
            && !key.contains('\0')
            && key
                .split('/')
                .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
        if ok {
            Ok(Self(key))
        } else {
            Err(StorageError::Other(format!("invalid object key {key:?}")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn as_string(&self) -> &String {
        &self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What went wrong in storage, in cases the caller acts on.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StorageError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    AlreadyExists(String),
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// Plugins name the setting to check in the message.
    #[error("authentication failed: {0}")]
    Unauthenticated(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("throttled by the store: {message}")]
    Throttled {
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("temporary failure: {0}")]
    Transient(String),
    #[error("invalid storage configuration: {0}")]
    InvalidConfig(String),
    #[error("not supported by this backend: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Other(String),
    /// The plugin itself failed: it trapped, ran out of memory or time. The
    /// instance is discarded; the next call gets a fresh one.
    #[error("storage plugin failed: {0}")]
    PluginFault(String),
    /// The plugin did not answer within its per-call time limit.
    #[error("storage plugin timed out after {0:?} (WALSHIP_PLUGIN_CALL_TIMEOUT)")]
    PluginTimeout(Duration),
}

impl StorageError {
    /// Worth another attempt (with backoff)? A plugin that ran out of time
    /// is not: network waits have their own timeouts that surface as
    /// `Transient`, so a call that hits the plugin deadline is stuck.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StorageError::Transient(_) | StorageError::Throttled { .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    Overwrite,
    CreateOnly,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checksums {
    pub md5: Option<Vec<u8>>,
    pub sha256: Option<Vec<u8>>,
    pub crc32c: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOptions {
    pub mode: PutMode,
    pub checksums: Checksums,
    pub content_type: Option<String>,
}

impl PutOptions {
    pub fn create_only() -> Self {
        Self {
            mode: PutMode::CreateOnly,
            checksums: Checksums::default(),
            content_type: None,
        }
    }
    pub fn overwrite() -> Self {
        Self {
            mode: PutMode::Overwrite,
            ..Self::create_only()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub offset: u64,
    pub length: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    pub last_modified_ms: Option<u64>,
    pub etag: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub start_after: Option<String>,
    pub page_token: Option<String>,
    pub max_keys: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ObjectMeta>,
    pub common_prefixes: Vec<String>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartReceipt {
    pub number: u32,
    pub etag: String,
    pub size: u64,
}

/// Optional capabilities a backend declared (WIT `features`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    pub create_only: bool,
    pub atomic_create_only: bool,
    pub ranged_get: bool,
    pub multipart: bool,
    pub batch_delete: bool,
    pub list_start_after: bool,
    pub list_delimiter: bool,
}

impl Features {
    /// What both sets offer.
    pub fn intersect(self, other: Features) -> Features {
        Features {
            create_only: self.create_only && other.create_only,
            atomic_create_only: self.atomic_create_only && other.atomic_create_only,
            ranged_get: self.ranged_get && other.ranged_get,
            multipart: self.multipart && other.multipart,
            batch_delete: self.batch_delete && other.batch_delete,
            list_start_after: self.list_start_after && other.list_start_after,
            list_delimiter: self.list_delimiter && other.list_delimiter,
        }
    }

    pub fn names(&self) -> Vec<&'static str> {
        let all = [
            (self.create_only, "create-only"),
            (self.atomic_create_only, "atomic-create-only"),
            (self.ranged_get, "ranged-get"),
            (self.multipart, "multipart"),
            (self.batch_delete, "batch-delete"),
            (self.list_start_after, "list-start-after"),
            (self.list_delimiter, "list-delimiter"),
        ];
        all.into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| n)
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_single_put: u64,
    pub min_part_size: u64,
    pub max_part_size: u64,
    pub max_parts: u32,
    pub max_delete_batch: u32,
}

/// How a plugin's setting is handed over (WIT `config-kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    Plain,
    Secret,
    /// The setting names a file whose contents are the secret.
    SecretFile,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigKey {
    pub name: String,
    pub kind: ConfigKind,
    pub description: String,
}

/// What a plugin may ever be granted (WIT `capabilities`, its manifest).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Host patterns: exact, `*.suffix`, or `configured`.
    pub network: Vec<String>,
    pub directory: bool,
}

/// What a backend is (WIT `info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendInfo {
    pub backend: String,
    pub plugin_version: String,
    pub schemes: Vec<String>,
    pub features: Features,
    pub limits: Limits,
    pub config_keys: Vec<ConfigKey>,
    pub capabilities: Capabilities,
}

/// The primitive operations of a store. Conveniences (whole-object upload
/// with automatic multipart, full listings) live in `transfer.rs`, on top.
#[allow(async_fn_in_trait)] // used with concrete types only; no Send bound needed on a current-thread runtime
pub trait ObjectStore {
    fn info(&self) -> &BackendInfo;
    /// Another handle on the same store whose calls can run at the same time
    /// as this one's (parts of one upload in parallel). `None` when the store
    /// cannot have more than one call in flight.
    fn worker(&self) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }
    async fn head(&mut self, key: &Key) -> Result<ObjectMeta, StorageError>;
    async fn get(
        &mut self,
        key: &Key,
        range: Option<ByteRange>,
    ) -> Result<(ObjectMeta, Vec<u8>), StorageError>;
    async fn put(
        &mut self,
        key: &Key,
        data: &[u8],
        options: &PutOptions,
    ) -> Result<ObjectMeta, StorageError>;
    async fn list_page(&mut self, options: &ListOptions) -> Result<ListPage, StorageError>;
    async fn delete(&mut self, keys: &[Key]) -> Result<Vec<(String, StorageError)>, StorageError>;
    async fn start_multipart(
        &mut self,
        key: &Key,
        options: &PutOptions,
    ) -> Result<String, StorageError>;
    async fn put_part(
        &mut self,
        key: &Key,
        upload_id: &str,
        number: u32,
        data: &[u8],
    ) -> Result<PartReceipt, StorageError>;
    async fn complete_multipart(
        &mut self,
        key: &Key,
        upload_id: &str,
        parts: &[PartReceipt],
        options: &PutOptions,
    ) -> Result<ObjectMeta, StorageError>;
    async fn abort_multipart(&mut self, key: &Key, upload_id: &str) -> Result<(), StorageError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_relative_and_clean() {
        assert!(Key::new("wal/000000010000000000000001").is_ok());
        assert!(Key::new("a b/ü").is_ok());
        for bad in ["", "/abs", "a//b", "a/./b", "../x", "a/..", "trailing/"] {
            assert!(Key::new(bad).is_err(), "{bad:?}");
        }
    }
}

//! Retries around a store: transient failures, throttling and plugin
//! timeouts are retried with exponential backoff, within the command's
//! deadline. A decorator, so call sites stay free of retry loops.

use std::time::{Duration, Instant};

use crate::storage::{
    BackendInfo, ByteRange, Key, ListOptions, ListPage, ObjectMeta, ObjectStore, PartReceipt,
    PutOptions, StorageError,
};

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// No retry starts after this instant.
    pub deadline: Instant,
}

pub struct Retrying<S> {
    inner: S,
    policy: RetryPolicy,
}

impl<S: ObjectStore> Retrying<S> {
    pub fn new(inner: S, policy: RetryPolicy) -> Self {
        Self { inner, policy }
    }

    fn backoff(&self, attempt: u32, error: &StorageError) -> Option<Duration> {
        if !error.is_retryable() || attempt + 1 >= self.policy.attempts {
            return None;
        }
        let exp = self
            .policy
            .first_backoff
            .saturating_mul(1 << attempt.min(16))
            .min(self.policy.max_backoff);
        let wait = match error {
            StorageError::Throttled {
                retry_after: Some(hint),
                ..
            } => (*hint).max(exp),
            _ => exp,
        };
        (Instant::now() + wait < self.policy.deadline).then_some(wait)
    }
}

macro_rules! with_retries {
    ($self:ident, $op:literal, |$inner:ident| $call:expr) => {{
        let mut attempt = 0;
        loop {
            let $inner = &mut $self.inner;
            match $call.await {
                Ok(v) => break Ok(v),
                Err(e) => match $self.backoff(attempt, &e) {
                    Some(wait) => {
                        eprintln!(
                            "walship: warning: {} failed ({e}); retrying in {wait:?}",
                            $op
                        );
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    None => break Err(e),
                },
            }
        }
    }};
}

impl<S: ObjectStore> ObjectStore for Retrying<S> {
    fn info(&self) -> &BackendInfo {
        self.inner.info()
    }
    async fn head(&mut self, key: &Key) -> Result<ObjectMeta, StorageError> {
        with_retries!(self, "head", |s| s.head(key))
    }
    async fn get(
        &mut self,
        key: &Key,
        range: Option<ByteRange>,
    ) -> Result<(ObjectMeta, Vec<u8>), StorageError> {
        with_retries!(self, "get", |s| s.get(key, range))
    }
    /// A retried create-only put can meet its own first attempt (which
    /// succeeded but whose answer was lost) as "already exists"; the archive
    /// layer compares content in that case, so this is safe.
    async fn put(
        &mut self,
        key: &Key,
        data: &[u8],
        options: &PutOptions,
    ) -> Result<ObjectMeta, StorageError> {
        with_retries!(self, "put", |s| s.put(key, data, options))
    }
    async fn list_page(&mut self, options: &ListOptions) -> Result<ListPage, StorageError> {
        with_retries!(self, "list", |s| s.list_page(options))
    }
    async fn delete(&mut self, keys: &[Key]) -> Result<Vec<(String, StorageError)>, StorageError> {
        with_retries!(self, "delete", |s| s.delete(keys))
    }
    async fn start_multipart(
        &mut self,
        key: &Key,
        options: &PutOptions,
    ) -> Result<String, StorageError> {
        with_retries!(self, "start-multipart", |s| s.start_multipart(key, options))
    }
    async fn put_part(
        &mut self,
        key: &Key,
        upload_id: &str,
        number: u32,
        data: &[u8],
    ) -> Result<PartReceipt, StorageError> {
        with_retries!(self, "put-part", |s| s
            .put_part(key, upload_id, number, data))
    }
    async fn complete_multipart(
        &mut self,
        key: &Key,
        upload_id: &str,
        parts: &[PartReceipt],
        options: &PutOptions,
    ) -> Result<ObjectMeta, StorageError> {
        with_retries!(self, "complete-multipart", |s| s
            .complete_multipart(key, upload_id, parts, options))
    }
    async fn abort_multipart(&mut self, key: &Key, upload_id: &str) -> Result<(), StorageError> {
        with_retries!(self, "abort-multipart", |s| s
            .abort_multipart(key, upload_id))
    }
}

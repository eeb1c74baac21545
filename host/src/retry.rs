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
}

impl<S> Retrying<S> {
    fn backoff(&self, attempt: u32, error: &StorageError) -> Option<Duration> {
        if !error.is_retryable() || attempt + 1 >= self.policy.attempts {
            return None;
        }
        let exp = self
            .policy
            .first_backoff
            .saturating_mul(1 << attempt.min(16))
            .min(self.policy.max_backoff);
        // Half fixed, half random ("equal jitter"): processes that failed
        // together (a store restart, a throttled burst) do not retry in step.
        let jittered = exp / 2 + exp.mul_f64(random_fraction() / 2.0);
        let wait = match error {
            StorageError::Throttled {
                retry_after: Some(hint),
                ..
            } => (*hint).max(jittered),
            _ => jittered,
        };
        (Instant::now() + wait < self.policy.deadline).then_some(wait)
    }
}

/// A number in [0, 1), different per call and per process. std's hasher
/// keys are random per process; hashing a counter spreads them. Good enough
/// for jitter, not for anything secret.
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
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
    fn worker(&self) -> Option<Self> {
        Some(Self::new(self.inner.worker()?, self.policy))
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;
    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            deadline: Instant::now() + Duration::from_secs(3600),
        }
    }

    fn waits(error: &StorageError) -> Vec<Option<Duration>> {
        let r = Retrying {
            inner: Nothing,
            policy: policy(),
        };
        (0..4).map(|attempt| r.backoff(attempt, error)).collect()
    }

    #[test]
    fn backoff_grows_with_jitter_and_stops_at_the_attempt_bound() {
        let transient = StorageError::Transient("reset".into());
        let w = waits(&transient);
        assert_eq!(w[3], None, "the 4th failure is the last attempt");
        for (attempt, wait) in w[..3].iter().enumerate() {
            let exp = Duration::from_millis(200 << attempt);
            let wait = wait.expect("retried");
            assert!(
                wait >= exp / 2 && wait <= exp,
                "attempt {attempt}: {wait:?}"
            );
        }
        // Jitter: many draws are not all the same.
        let r = Retrying {
            inner: Nothing,
            policy: policy(),
        };
        let draws: std::collections::BTreeSet<_> =
            (0..20).map(|_| r.backoff(2, &transient).unwrap()).collect();
        assert!(draws.len() > 1, "{draws:?}");
    }

    #[test]
    fn throttling_waits_at_least_the_hint_and_config_errors_are_not_retried() {
        let throttled = StorageError::Throttled {
            message: "SlowDown".into(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert!(waits(&throttled)[0].unwrap() >= Duration::from_secs(3));
        let auth = StorageError::Unauthenticated("bad key".into());
        assert_eq!(waits(&auth)[0], None);
    }

    #[test]
    fn no_retry_would_end_past_the_deadline() {
        let r = Retrying {
            inner: Nothing,
            policy: RetryPolicy {
                deadline: Instant::now() + Duration::from_millis(50),
                ..policy()
            },
        };
        assert_eq!(r.backoff(2, &StorageError::Transient("x".into())), None);
    }
}

//! Single-object operations: head, get, put, and (batch) delete.

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, PutMode, PutPayload};

use crate::errors::{self, Action, Op};
use crate::store::{Failure, S3Store};
use crate::walship::storage::types::{
    ByteRange, DeleteFailure, Error, GetResult, ObjectMeta, PutMode as WitPutMode, PutOptions,
};

impl S3Store {
    pub fn head(&self, key: &str) -> Result<ObjectMeta, Error> {
        let path = self.path(key)?;
        let op = Op::new(Action::Read, key);
        let options = GetOptions {
            head: true,
            ..Default::default()
        };
        match self.run(self.client.get_opts(&path, options)) {
            Ok(result) => Ok(meta(key, &result.meta)),
            Err(failure) => Err(self.explain_head_failure(&op, *failure)),
        }
    }

    /// Answers to HEAD have no body, so a 403 (or a 400, moto's answer to a
    /// bad session token) does not say whether the key is wrong or the
    /// permission missing. A one-byte GET, which needs the same
    /// permission, does say; it is made only on this failure path.
    fn explain_head_failure(&self, op: &Op<'_>, failure: Failure) -> Error {
        let unexplained = failure
            .reply
            .as_ref()
            .is_some_and(|r| matches!(r.status, 400 | 403) && r.code.is_none());
        if unexplained && let Ok(path) = self.path(op.key) {
            let probe = GetOptions {
                range: Some(GetRange::Bounded(0..1)),
                ..Default::default()
            };
            if let Err(probe) = self.run(self.client.get_opts(&path, probe))
                && probe.reply.as_ref().is_some_and(|r| r.code.is_some())
            {
                return self.error(op, *probe);
            }
        }
        self.error(op, failure)
    }

    pub fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetResult, Error> {
        let path = self.path(key)?;
        let op = Op::new(Action::Read, key);
        let (offset, length) = match &range {
            // The whole object: no Range header, so an empty object is no
            // special case.
            None => return self.get_whole(&op, &path),
            Some(range) => (range.offset, range.length),
        };
        let get_range = match length {
            None if offset == 0 => return self.get_whole(&op, &path),
            Some(0) => return self.nothing_of(key),
            None => GetRange::Offset(offset),
            Some(length) => GetRange::Bounded(offset..offset.saturating_add(length)),
        };
        let options = GetOptions {
            range: Some(get_range),
            ..Default::default()
        };
        match self.run(self.fetch(&path, options)) {
            Ok((object, data)) => Ok(result(key, &object, data)),
            // The range starts at or past the end: the contract returns
            // what exists there, nothing.
            Err(failure) if failure.status() == Some(416) => self.nothing_of(key),
            // A store that ignores Range answers 200 with the whole object,
            // which object_store refuses; cut the range out here instead.
            Err(failure) if failure.reply.is_none() && failure.last_status == Some(200) => {
                let mut whole = self.get_whole(&op, &path)?;
                let size = whole.data.len() as u64;
                let end = length.map_or(size, |n| offset.saturating_add(n).min(size));
                let start = offset.min(end);
                whole.data = whole.data[start as usize..end as usize].to_vec();
                Ok(whole)
            }
            Err(failure) => Err(self.error(&op, *failure)),
        }
    }

    fn get_whole(&self, op: &Op<'_>, path: &Path) -> Result<GetResult, Error> {
        let (object, data) = self.call(op, self.fetch(path, GetOptions::default()))?;
        Ok(result(op.key, &object, data))
    }

    /// The object's description and (the requested range of) its bytes.
    async fn fetch(
        &self,
        path: &Path,
        options: GetOptions,
    ) -> object_store::Result<(object_store::ObjectMeta, Bytes)> {
        let result = self.client.get_opts(path, options).await?;
        let meta = result.meta.clone();
        Ok((meta, result.bytes().await?))
    }

    /// No bytes of an object that exists.
    fn nothing_of(&self, key: &str) -> Result<GetResult, Error> {
        Ok(GetResult {
            meta: self.head(key)?,
            data: Vec::new(),
        })
    }

    pub fn put(&self, key: &str, data: Vec<u8>, options: &PutOptions) -> Result<ObjectMeta, Error> {
        let path = self.path(key)?;
        let create_only = options.mode == WitPutMode::CreateOnly;
        let op = Op::new(Action::Write, key).create_only(create_only);
        let size = data.len() as u64;
        let put_options = object_store::PutOptions {
            // Create is `If-None-Match: *` (S3ConditionalPut::ETagMatch).
            mode: if create_only {
                PutMode::Create
            } else {
                PutMode::Overwrite
            },
            attributes: self.attributes(options.content_type.as_deref()),
            ..Default::default()
        };
        let body = Bytes::from(data);
        // The host's SHA-256 of the body, computed natively: object_store's
        // checksum and payload digests take it instead of hashing again in
        // wasm (the store checks it against the body all the same).
        let _known =
            known_sha256(options).map(|sha256| walship_guest_http::KnownSha256::new(&body, sha256));
        let result = match self.call(
            &op,
            self.client
                .put_opts(&path, PutPayload::from(body), put_options),
        ) {
            // A store that refuses a conditional PUT early (412 before the
            // body is read) and closes the connection can cut the answer
            // off. Whether or not the key was ours, if it exists now the
            // host must compare contents; already-exists makes it do so.
            Err(Error::Transient(message)) if create_only => match self.head(key) {
                Ok(_) => {
                    return Err(Error::AlreadyExists(format!(
                        "{key}: the create-only put was cut off ({message}) and the key exists"
                    )));
                }
                Err(_) => return Err(Error::Transient(message)),
            },
            other => other?,
        };
        Ok(ObjectMeta {
            key: key.to_string(),
            size,
            // S3 does not say when a put took effect.
            last_modified_ms: None,
            etag: result.e_tag,
        })
    }

    /// One DeleteObjects request for up to 1000 keys (object_store's bulk
    /// delete). Keys that do not exist count as deleted.
    pub fn delete(&self, keys: Vec<String>) -> Result<Vec<DeleteFailure>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let paths = keys
            .iter()
            .map(|key| self.path(key))
            .collect::<Result<Vec<_>, _>>()?;
        self.hooks.reset();
        let locations = futures::stream::iter(paths.into_iter().map(Ok)).boxed();
        let results: Vec<object_store::Result<_>> =
            self.block_on(self.client.delete_stream(locations).collect());
        // A failed request (rather than failed keys) shows as an S3 error
        // reply or a transport failure, and as one result for the batch.
        let reply = self.hooks.take_failure();
        let request_failed = reply.is_some()
            || results.len() != keys.len()
            || results.iter().any(|r| {
                r.as_ref()
                    .err()
                    .is_some_and(|e| errors::find::<walship_guest_http::HttpFailure>(e).is_some())
            });
        if request_failed {
            let first_key = keys[0].as_str();
            let op = Op::new(Action::Delete, first_key);
            let error = results
                .into_iter()
                .find_map(Result::err)
                .unwrap_or_else(|| object_store::Error::Generic {
                    store: "S3",
                    source: "DeleteObjects failed".into(),
                });
            let mut mapped = self.error(
                &op,
                Failure {
                    error,
                    reply,
                    last_status: None,
                },
            );
            if keys.len() > 1 {
                mapped = with_batch_note(mapped, keys.len());
            }
            return Err(mapped);
        }
        Ok(keys
            .into_iter()
            .zip(results)
            .filter_map(|(key, result)| {
                let error = result.err()?;
                let code = errors::delete_failure_code(&error);
                if code.as_deref() == Some("NoSuchKey") {
                    return None;
                }
                let reply = crate::hooks::S3Reply {
                    // The request succeeded; only this key failed.
                    status: 0,
                    code,
                    message: None,
                    retry_after_ms: None,
                };
                let error =
                    errors::from_reply(&reply, &Op::new(Action::Delete, &key), &self.context);
                Some(DeleteFailure { key, error })
            })
            .collect())
    }
}

fn result(key: &str, object: &object_store::ObjectMeta, data: Bytes) -> GetResult {
    GetResult {
        meta: meta(key, object),
        // Without a copy when object_store holds the only reference.
        data: Vec::from(data),
    }
}

/// The contract's description of an object object_store found.
fn meta(key: &str, object: &object_store::ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        key: key.to_string(),
        size: object.size,
        last_modified_ms: last_modified_ms(object),
        etag: object.e_tag.clone(),
    }
}

/// When the object was last written, if the store said: object_store
/// reports a missing `Last-Modified` as the epoch.
pub(crate) fn last_modified_ms(object: &object_store::ObjectMeta) -> Option<u64> {
    u64::try_from(object.last_modified.timestamp_millis())
        .ok()
        .filter(|&ms| ms > 0)
}

/// Says that a failed batch delete was for several keys (the message names
/// only the first).
fn with_batch_note(error: Error, count: usize) -> Error {
    let note = |m: String| format!("{m} (deleting a batch of {count} keys)");
    match error {
        Error::NotFound(m) => Error::NotFound(note(m)),
        Error::AlreadyExists(m) => Error::AlreadyExists(note(m)),
        Error::PreconditionFailed(m) => Error::PreconditionFailed(note(m)),
        Error::Unauthenticated(m) => Error::Unauthenticated(note(m)),
        Error::PermissionDenied(m) => Error::PermissionDenied(note(m)),
        Error::Throttled(mut t) => {
            t.message = note(t.message);
            Error::Throttled(t)
        }
        Error::Transient(m) => Error::Transient(note(m)),
        Error::InvalidConfig(m) => Error::InvalidConfig(note(m)),
        Error::Unsupported(m) => Error::Unsupported(note(m)),
        Error::Other(m) => Error::Other(note(m)),
    }
}

/// The host's SHA-256 of a put's body, if it gave one.
fn known_sha256(options: &PutOptions) -> Option<[u8; 32]> {
    options.checksums.sha256.as_deref()?.try_into().ok()
}

//! Single-object operations: head and get through object_store; put and
//! delete as signed requests carrying what object_store cannot send.

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use md5::{Digest, Md5};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};

use crate::errors::{self, Action, Op, Reply};
use crate::store::{AzureStore, Failure};
use crate::walship::storage::types::{
    ByteRange, DeleteFailure, Error, GetResult, ObjectMeta, PutMode as WitPutMode, PutOptions,
};

pub const CONTENT_MD5: HeaderName = HeaderName::from_static("content-md5");
pub const BLOB_TYPE: HeaderName = HeaderName::from_static("x-ms-blob-type");
pub const BLOB_CONTENT_TYPE: HeaderName = HeaderName::from_static("x-ms-blob-content-type");

impl AzureStore {
    pub fn head(&self, key: &str) -> Result<ObjectMeta, Error> {
        let path = self.path(key)?;
        let op = Op::new(Action::Read, key);
        let options = GetOptions {
            head: true,
            ..Default::default()
        };
        match self.run(self.client.get_opts(&path, options)) {
            Ok(result) => Ok(meta(key, &result.meta)),
            Err(failure) => Err(self.explain_head_failure(&op, &path, *failure)),
        }
    }

    /// Answers to HEAD have no body, and Azurite tells a wrong key from a
    /// missing permission only in the body's message (403
    /// `AuthorizationFailure` either way). A one-byte GET, which needs the
    /// same permission, says; it is made only on this failure path.
    fn explain_head_failure(&self, op: &Op<'_>, path: &Path, failure: Failure) -> Error {
        let unexplained = failure
            .reply
            .as_ref()
            .is_some_and(|r| r.status == 403 && r.message.is_none());
        if unexplained {
            let probe = GetOptions {
                range: Some(GetRange::Bounded(0..1)),
                ..Default::default()
            };
            if let Err(probe) = self.run(self.client.get_opts(path, probe))
                && probe.reply.as_ref().is_some_and(|r| r.message.is_some())
            {
                return self.error(op, *probe);
            }
        }
        self.error(op, failure)
    }

    pub fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetResult, Error> {
        let path = self.path(key)?;
        let op = Op::new(Action::Read, key);
        let get_range = match range {
            // The whole object: no Range header, so an empty object is no
            // special case.
            None
            | Some(ByteRange {
                offset: 0,
                length: None,
            }) => return self.get_whole(&op, &path),
            Some(ByteRange {
                length: Some(0), ..
            }) => return self.nothing_of(key),
            Some(ByteRange {
                offset,
                length: None,
            }) => GetRange::Offset(offset),
            Some(ByteRange {
                offset,
                length: Some(length),
            }) => GetRange::Bounded(offset..offset.saturating_add(length)),
        };
        let options = GetOptions {
            range: Some(get_range),
            ..Default::default()
        };
        match self.run(self.fetch(&path, options)) {
            Ok((object, data)) => Ok(result(key, &object, data)),
            // The range starts at or past the end: the contract returns what
            // exists there, nothing.
            Err(failure) if failure.status() == Some(416) => self.nothing_of(key),
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

    /// One Put Blob: atomic (the blob appears whole or not at all), with
    /// `Content-MD5`, which Azure checks against the body it received, and
    /// `If-None-Match: *` for create-only puts, which Azure enforces.
    pub fn put(&self, key: &str, data: Vec<u8>, options: &PutOptions) -> Result<ObjectMeta, Error> {
        self.path(key)?;
        let create_only = options.mode == WitPutMode::CreateOnly;
        let op = Op::new(Action::Write, key).create_only(create_only);
        let size = data.len() as u64;
        let md5 = match options.checksums.md5.as_deref() {
            // The host's digest, taken before the bytes were copied in here.
            Some(md5) if md5.len() == 16 => md5.to_vec(),
            _ => Md5::digest(&data).to_vec(),
        };
        let mut headers = vec![
            (BLOB_TYPE, HeaderValue::from_static("BlockBlob")),
            (CONTENT_MD5, base64_header(&md5)),
        ];
        if let Some(value) = content_type(options) {
            headers.push((BLOB_CONTENT_TYPE, value));
        }
        if create_only {
            headers.push((http::header::IF_NONE_MATCH, HeaderValue::from_static("*")));
        }
        let response = self.send(Method::PUT, self.blob_url(key), headers, Bytes::from(data))?;
        if let Some(reply) = Reply::of(&response) {
            return Err(errors::from_reply(&reply, &op, &self.context));
        }
        Ok(ObjectMeta {
            key: key.to_string(),
            size,
            last_modified_ms: None,
            etag: etag(&response),
        })
    }

    /// One Delete Blob per key (with its snapshots). A missing blob counts
    /// as deleted; a missing container or refused credentials fail the call.
    pub fn delete(&self, keys: Vec<String>) -> Result<Vec<DeleteFailure>, Error> {
        let mut failures = Vec::new();
        for key in keys {
            self.path(&key)?;
            let op = Op::new(Action::Delete, &key);
            let headers = vec![(
                HeaderName::from_static("x-ms-delete-snapshots"),
                HeaderValue::from_static("include"),
            )];
            let response = self.send(Method::DELETE, self.blob_url(&key), headers, Bytes::new())?;
            let Some(reply) = Reply::of(&response) else {
                continue;
            };
            match errors::from_reply(&reply, &op, &self.context) {
                Error::NotFound(_) => {}
                // The same for every key: the whole call failed.
                error @ (Error::InvalidConfig(_)
                | Error::Unauthenticated(_)
                | Error::PermissionDenied(_)
                | Error::Throttled(_)
                | Error::Transient(_)) => return Err(error),
                error => failures.push(DeleteFailure { key, error }),
            }
        }
        Ok(failures)
    }
}

/// `x-ms-blob-content-type`, if the host gave a usable one.
pub fn content_type(options: &PutOptions) -> Option<HeaderValue> {
    options
        .content_type
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
}

pub fn base64_header(bytes: &[u8]) -> HeaderValue {
    HeaderValue::from_str(&BASE64_STANDARD.encode(bytes)).expect("base64 is a valid header value")
}

pub fn etag(response: &http::Response<Bytes>) -> Option<String> {
    response
        .headers()
        .get(http::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn result(key: &str, object: &object_store::ObjectMeta, data: Bytes) -> GetResult {
    GetResult {
        meta: meta(key, object),
        // Without a copy when object_store holds the only reference.
        data: Vec::from(data),
    }
}

/// The contract's description of an object object_store found.
pub(crate) fn meta(key: &str, object: &object_store::ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        key: key.to_string(),
        size: object.size,
        last_modified_ms: last_modified_ms(object),
        etag: object.e_tag.clone(),
    }
}

/// When the object was last written, if the store said.
pub(crate) fn last_modified_ms(object: &object_store::ObjectMeta) -> Option<u64> {
    u64::try_from(object.last_modified.timestamp_millis())
        .ok()
        .filter(|&ms| ms > 0)
}

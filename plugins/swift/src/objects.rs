//! Single objects: head, (ranged) get and put.

use bytes::Bytes;
use md5::{Digest, Md5};

use crate::errors::{Action, Op};
use crate::store::{SwiftStore, authed, finish};
use crate::time;
use crate::walship::storage::types::{
    ByteRange, Error, GetResult, ObjectMeta, PutMode, PutOptions,
};

impl SwiftStore {
    pub fn head(&self, key: &str) -> Result<ObjectMeta, Error> {
        let name = self.object_name(key)?;
        let op = Op::new(Action::Head, self.location.url_of(key));
        let response = self.request(&op, |s| {
            finish(
                authed(http::Method::HEAD, &self.object_url(s, &name), s),
                Bytes::new(),
            )
        })?;
        if !response.status().is_success() {
            return Err(self.failed(&op, &response));
        }
        let size = header(&response, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(meta(key, size, &response))
    }

    /// The object, or `range` of it. A range past the end is what exists:
    /// nothing (Swift answers 416; the size comes from a HEAD).
    pub fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetResult, Error> {
        let name = self.object_name(key)?;
        let op = Op::new(Action::Get, self.location.url_of(key));
        let range_header = match range {
            None => None,
            Some(ByteRange {
                length: Some(0), ..
            }) => {
                let meta = self.head(key)?;
                return Ok(GetResult {
                    meta,
                    data: Vec::new(),
                });
            }
            Some(ByteRange { offset, length }) => Some(match length {
                Some(n) => format!("bytes={offset}-{}", offset.saturating_add(n - 1)),
                None => format!("bytes={offset}-"),
            }),
        };
        let response = self.request(&op, |s| {
            let mut builder = authed(http::Method::GET, &self.object_url(s, &name), s);
            if let Some(range) = &range_header {
                builder = builder.header("range", range);
            }
            finish(builder, Bytes::new())
        })?;
        let status = response.status().as_u16();
        if status == 416 && range.is_some() {
            let meta = self.head(key)?;
            return Ok(GetResult {
                meta,
                data: Vec::new(),
            });
        }
        if !response.status().is_success() {
            return Err(self.failed(&op, &response));
        }
        let size = if status == 206 {
            // Content-Range: bytes 0-9/1234
            header(&response, "content-range")
                .and_then(|v| v.rsplit('/').next().and_then(|n| n.parse().ok()))
        } else {
            Some(response.body().len() as u64)
        };
        let meta = meta(key, size.unwrap_or(response.body().len() as u64), &response);
        Ok(GetResult {
            meta,
            data: Vec::from(response.into_body()),
        })
    }

    /// Stores `data` with its MD5 as ETag, which Swift checks (422 if the
    /// body it got differs). Create-only sends `If-None-Match: *`: Swift
    /// refuses with 412 when the key is taken as the request starts.
    pub fn put(&self, key: &str, data: Vec<u8>, options: &PutOptions) -> Result<ObjectMeta, Error> {
        let name = self.object_name(key)?;
        let create_only = options.mode == PutMode::CreateOnly;
        let action = if create_only {
            Action::CreateOnlyPut
        } else {
            Action::Put
        };
        let op = Op::new(action, self.location.url_of(key));
        let size = data.len() as u64;
        let etag = md5_hex(options.checksums.md5.as_deref(), &data);
        let content_type = options
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".to_string());
        let body = Bytes::from(data);
        let response = self.request(&op, |s| {
            let mut builder = authed(http::Method::PUT, &self.object_url(s, &name), s)
                .header("etag", &etag)
                .header("content-type", &content_type);
            if create_only {
                builder = builder.header("if-none-match", "*");
            }
            finish(builder, body.clone())
        })?;
        if !response.status().is_success() {
            return Err(self.failed(&op, &response));
        }
        Ok(meta(key, size, &response))
    }
}

/// The MD5 the host computed, as hex, or our own of `data`.
pub(crate) fn md5_hex(given: Option<&[u8]>, data: &[u8]) -> String {
    match given {
        Some(digest) if digest.len() == 16 => hex(digest),
        _ => hex(&Md5::digest(data)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn header<'r>(response: &'r http::Response<Bytes>, name: &str) -> Option<&'r str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Swift quotes the ETag of a large object (`"<md5 of the segments' md5s>"`).
pub(crate) fn unquote(etag: &str) -> String {
    etag.trim().trim_matches('"').to_string()
}

fn meta(key: &str, size: u64, response: &http::Response<Bytes>) -> ObjectMeta {
    ObjectMeta {
        key: key.to_string(),
        size,
        last_modified_ms: header(response, "last-modified").and_then(time::http_date_ms),
        etag: header(response, "etag").map(unquote),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_is_the_hosts_or_our_own() {
        assert_eq!(md5_hex(None, b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(Some(&[0xab; 16]), b"x"), "ab".repeat(16));
        assert_eq!(
            md5_hex(Some(&[1, 2]), b""),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(unquote("\"abc\""), "abc");
    }
}

//! Large objects as Static Large Objects, uploaded in parts the host sends
//! (possibly each through another plugin instance).
//!
//! An upload id is 128 random bits; part `n` of upload `id` is the object
//! `.walship-segments/<id>/<n>` in the store's container (see
//! `names::SEGMENTS_PREFIX` for why there). Nothing else is kept: any
//! instance derives every name from the id. Completing PUTs the manifest
//! (`?multipart-manifest=put`), which Swift checks against each segment's
//! size and MD5; only then is the key visible, whole. Deleting the key
//! (`delete.rs`) deletes its segments too.

use bytes::Bytes;
use serde_json::json;

use crate::errors::{Action, Op, one_line};
use crate::info::MAX_PARTS;
use crate::names;
use crate::objects::{header, md5_hex, unquote};
use crate::store::{SwiftStore, authed, finish};
use crate::walship::storage::types::{Error, ObjectMeta, PartReceipt, PutMode, PutOptions};

impl SwiftStore {
    /// Nothing to tell Swift yet: the id names the segments to come.
    pub fn start_multipart(&self, key: &str, _options: &PutOptions) -> Result<String, Error> {
        self.object_name(key)?;
        Ok(names::new_upload_id())
    }

    pub fn put_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        data: Vec<u8>,
    ) -> Result<PartReceipt, Error> {
        let op = Op::new(Action::UploadPart, self.location.url_of(key));
        if !names::is_upload_id(upload_id) {
            return Err(Error::NotFound(format!(
                "cannot {} {}: {upload_id:?} is not an upload id of this plugin",
                op.action, op.what
            )));
        }
        if !(1..=MAX_PARTS).contains(&number) {
            return Err(Error::Other(format!(
                "cannot {} {}: part number {number} is outside 1..={MAX_PARTS} (Swift's \
                 max_manifest_segments)",
                op.action, op.what
            )));
        }
        let segment = names::segment_name(upload_id, number);
        let size = data.len() as u64;
        let etag = md5_hex(None, &data);
        let body = Bytes::from(data);
        let response = self.request(&op, |s| {
            finish(
                authed(http::Method::PUT, &self.object_url(s, &segment), s)
                    .header("etag", &etag)
                    .header("content-type", "application/octet-stream"),
                body.clone(),
            )
        })?;
        if !response.status().is_success() {
            return Err(self.failed(&op, &response));
        }
        Ok(PartReceipt { number, etag, size })
    }

    /// PUTs the manifest of parts 1..=n (no gaps), with `If-None-Match: *`
    /// for create-only: Swift refuses a taken key with 412 then, and the
    /// segments are deleted, since nothing refers to them.
    pub fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[PartReceipt],
        options: &PutOptions,
    ) -> Result<ObjectMeta, Error> {
        let name = self.object_name(key)?;
        let create_only = options.mode == PutMode::CreateOnly;
        let op = Op::new(Action::CompleteUpload, self.location.url_of(key));
        if !names::is_upload_id(upload_id) {
            return Err(Error::NotFound(format!(
                "cannot {} {}: {upload_id:?} is not an upload id of this plugin",
                op.action, op.what
            )));
        }
        let mut parts = parts.to_vec();
        parts.sort_by_key(|part| part.number);
        if parts.is_empty() {
            return Err(Error::Other(format!(
                "cannot {} {}: an upload needs at least one part",
                op.action, op.what
            )));
        }
        if let Some((index, _)) = parts
            .iter()
            .enumerate()
            .find(|(index, part)| part.number as usize != index + 1)
        {
            return Err(Error::Other(format!(
                "cannot {} {}: parts must be numbered 1 to {} without gaps or repeats, and part \
                 {} is missing or repeated",
                op.action,
                op.what,
                parts.len(),
                index + 1
            )));
        }
        let manifest: Vec<serde_json::Value> = parts
            .iter()
            .map(|part| {
                json!({
                    "path": format!(
                        "/{}/{}",
                        self.location.container,
                        names::segment_name(upload_id, part.number)
                    ),
                    "etag": part.etag,
                    "size_bytes": part.size,
                })
            })
            .collect();
        let body = Bytes::from(serde_json::Value::Array(manifest).to_string());
        let size = parts.iter().map(|part| part.size).sum();
        let content_type = options
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".to_string());
        let put_manifest = || {
            self.request(&op, |s| {
                let url = format!("{}?multipart-manifest=put", self.object_url(s, &name));
                let mut builder = authed(http::Method::PUT, &url, s)
                    .header("content-type", &content_type)
                    .header("accept", "application/json");
                if create_only {
                    builder = builder.header("if-none-match", "*");
                }
                finish(builder, body.clone())
            })
        };
        let mut response = put_manifest()?;
        // SLO checks each segment with the token: it may lapse midway.
        if response.status() == http::StatusCode::BAD_REQUEST
            && String::from_utf8_lossy(response.body()).contains("401 Unauthorized")
        {
            self.sessions.renew(&op);
            response = put_manifest()?;
        }
        let status = response.status().as_u16();
        if status == 412 && create_only {
            // Best effort: the key's object is not ours, its segments are.
            let _ = self.abort_multipart(key, upload_id);
        }
        if status == 400 {
            // SLO explains which segment it refused (name, status or MD5).
            let why = String::from_utf8_lossy(response.body());
            return Err(Error::Other(one_line(&format!(
                "cannot {} {}: Swift refused the manifest: {}",
                op.action,
                op.what,
                why.trim()
            ))));
        }
        if !response.status().is_success() {
            return Err(self.failed(&op, &response));
        }
        Ok(ObjectMeta {
            key: key.to_string(),
            size,
            last_modified_ms: header(&response, "last-modified")
                .and_then(crate::time::http_date_ms),
            etag: header(&response, "etag").map(unquote),
        })
    }

    /// Deletes the upload's segments; an unknown upload has none.
    pub fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), Error> {
        if !names::is_upload_id(upload_id) {
            return Ok(());
        }
        let op = Op::new(Action::AbortUpload, self.location.url_of(key));
        let segments = self.names_under(&op, &names::upload_prefix(upload_id))?;
        let failures = self.delete_names(&op, &segments)?;
        match failures.into_iter().next() {
            None => Ok(()),
            Some((_, error)) => Err(error),
        }
    }
}

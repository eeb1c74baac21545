//! Multipart uploads as Azure block blobs: each part a Put Block, completion
//! one Put Block List. Nothing is visible under the key until the block list
//! is committed, and the commit is atomic.
//!
//! The host sends parts from several plugin instances in parallel, so
//! nothing may live in an instance's memory: the upload id is a random
//! string made at start (no request), and the id of part `n`'s block is
//! derived from it and `n`. Ids of one upload all have the same length, as
//! Azure requires of a blob's uncommitted blocks, and two uploads to one key
//! never share a block id.
//!
//! Azure cannot discard uncommitted blocks alone: an aborted upload's blocks
//! are dropped by the next commit to the blob, or after seven days. They are
//! never visible as (part of) an object.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use bytes::Bytes;
use http::{HeaderValue, Method};
use md5::{Digest, Md5};

use crate::errors::{self, Action, Op, Reply};
use crate::info::MAX_PARTS;
use crate::objects::{BLOB_CONTENT_TYPE, CONTENT_MD5, base64_header, content_type, etag};
use crate::store::AzureStore;
use crate::walship::storage::types::{
    Error, ObjectMeta, PartReceipt, PutMode as WitPutMode, PutOptions,
};

/// Hex digits of an upload id (96 random bits).
const UPLOAD_ID_LEN: usize = 24;

impl AzureStore {
    /// A fresh upload id; Azure needs nothing at the start of a block blob.
    pub fn start_multipart(&self, key: &str, _options: &PutOptions) -> Result<String, Error> {
        self.path(key)?;
        Ok(new_upload_id())
    }

    pub fn put_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        data: Vec<u8>,
    ) -> Result<PartReceipt, Error> {
        self.path(key)?;
        let op = Op::new(Action::UploadPart, key);
        let block = block_id(upload_id, number).map_err(|why| self.bad_upload(key, &why))?;
        let size = data.len() as u64;
        let mut url = self.blob_url(key);
        url.query_pairs_mut()
            .append_pair("comp", "block")
            .append_pair("blockid", &block);
        let headers = vec![(CONTENT_MD5, base64_header(&Md5::digest(&data)))];
        let response = self.send(Method::PUT, url, headers, Bytes::from(data))?;
        if let Some(reply) = Reply::of(&response) {
            return Err(errors::from_reply(&reply, &op, &self.context));
        }
        Ok(PartReceipt {
            number,
            etag: block,
            size,
        })
    }

    /// Commits the parts in number order (1..n without gaps), honouring
    /// create-only with `If-None-Match: *`.
    pub fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[PartReceipt],
        options: &PutOptions,
    ) -> Result<ObjectMeta, Error> {
        self.path(key)?;
        let create_only = options.mode == WitPutMode::CreateOnly;
        let op = Op::new(Action::CompleteUpload, key).create_only(create_only);
        let mut parts = parts.to_vec();
        parts.sort_by_key(|part| part.number);
        let mut blocks = Vec::with_capacity(parts.len());
        for (index, part) in parts.iter().enumerate() {
            let expected = index as u32 + 1;
            if part.number != expected {
                return Err(Error::Other(format!(
                    "cannot complete the multipart upload of {}: parts must be numbered 1 to {} \
                     without gaps or repeats, and part {expected} is missing or repeated",
                    self.context.location.url_of(key),
                    parts.len(),
                )));
            }
            let block =
                block_id(upload_id, part.number).map_err(|why| self.bad_upload(key, &why))?;
            if part.etag != block {
                return Err(self.bad_upload(
                    key,
                    &format!("part {} was not uploaded under this upload id", part.number),
                ));
            }
            blocks.push(block);
        }
        let body = Bytes::from(block_list(&blocks));
        let mut url = self.blob_url(key);
        url.query_pairs_mut().append_pair("comp", "blocklist");
        let mut headers = vec![(CONTENT_MD5, base64_header(&Md5::digest(&body)))];
        if let Some(value) = content_type(options) {
            headers.push((BLOB_CONTENT_TYPE, value));
        }
        if create_only {
            headers.push((http::header::IF_NONE_MATCH, HeaderValue::from_static("*")));
        }
        let response = self.send(Method::PUT, url, headers, body)?;
        if let Some(reply) = Reply::of(&response) {
            return Err(self.explain_commit_failure(&op, &reply));
        }
        Ok(ObjectMeta {
            key: key.to_string(),
            size: parts.iter().map(|part| part.size).sum(),
            last_modified_ms: None,
            etag: etag(&response),
        })
    }

    /// `InvalidBlockList`: a block of the list is gone. Another write
    /// committed the blob meanwhile (which drops every uncommitted block) or
    /// the upload is older than Azure keeps blocks.
    fn explain_commit_failure(&self, op: &Op<'_>, reply: &Reply) -> Error {
        if reply.code.as_deref() != Some("InvalidBlockList") {
            return errors::from_reply(reply, op, &self.context);
        }
        let target = self.context.location.url_of(op.key);
        if op.create_only && self.head(op.key).is_ok() {
            return Error::AlreadyExists(format!(
                "{target} already exists (another write committed it while this upload was \
                 sending its parts)"
            ));
        }
        Error::NotFound(format!(
            "the blocks of this multipart upload of {target} are gone: another write committed \
             the blob meanwhile, or they expired (Azure keeps uncommitted blocks seven days)"
        ))
    }

    /// Azure cannot drop uncommitted blocks alone; see the module's doc.
    pub fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), Error> {
        self.path(key)?;
        check_upload_id(upload_id).map_err(|why| self.bad_upload(key, &why))
    }

    fn bad_upload(&self, key: &str, why: &str) -> Error {
        Error::NotFound(format!(
            "no such multipart upload of {}: {why}",
            self.context.location.url_of(key)
        ))
    }
}

/// 96 random bits as hex (std's `RandomState` is keyed from wasi:random).
fn new_upload_id() -> String {
    let half = || {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u8(0);
        hasher.finish()
    };
    let id = format!("{:016x}{:016x}", half(), half());
    id[..UPLOAD_ID_LEN].to_string()
}

fn check_upload_id(upload_id: &str) -> Result<(), String> {
    let valid = upload_id.len() == UPLOAD_ID_LEN
        && upload_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{upload_id:?} is not an upload id this plugin made"
        ))
    }
}

/// The block id of part `number` of upload `upload_id`, base64 as Azure
/// takes it: `<upload id>-<number, 6 digits>` (31 bytes for every part).
fn block_id(upload_id: &str, number: u32) -> Result<String, String> {
    check_upload_id(upload_id)?;
    if !(1..=MAX_PARTS).contains(&number) {
        return Err(format!("part number {number} is outside 1..={MAX_PARTS}"));
    }
    Ok(BASE64_STANDARD.encode(format!("{upload_id}-{number:06}")))
}

/// The Put Block List body. `Latest` takes the block from the uncommitted
/// list, or from the committed one when a retried commit already went
/// through.
fn block_list(blocks: &[String]) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
    for block in blocks {
        xml.push_str("<Latest>");
        xml.push_str(block);
        xml.push_str("</Latest>");
    }
    xml.push_str("</BlockList>");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_ids_are_fresh_hex_of_one_length() {
        let (a, b) = (new_upload_id(), new_upload_id());
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert_eq!(id.len(), UPLOAD_ID_LEN);
            check_upload_id(id).unwrap();
        }
    }

    #[test]
    fn block_ids_derive_from_upload_and_part() {
        let id = "0123456789abcdef01234567";
        let one = block_id(id, 1).unwrap();
        assert_eq!(
            BASE64_STANDARD.decode(&one).unwrap(),
            b"0123456789abcdef01234567-000001"
        );
        // Same input, same id: any instance derives it.
        assert_eq!(block_id(id, 1).unwrap(), one);
        // Every part's id has the same length, as Azure requires.
        assert_eq!(block_id(id, MAX_PARTS).unwrap().len(), one.len());
        assert_ne!(block_id("fedcba9876543210fedcba98", 1).unwrap(), one);
        assert!(block_id(id, 0).is_err());
        assert!(block_id(id, MAX_PARTS + 1).is_err());
        assert!(block_id("not-an-id", 1).is_err());
        assert!(block_id("0123456789ABCDEF01234567", 1).is_err());
    }

    #[test]
    fn the_block_list_names_every_block_in_order() {
        assert_eq!(
            block_list(&["QQ==".into(), "Qg==".into()]),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>QQ==</Latest>\
             <Latest>Qg==</Latest></BlockList>"
        );
    }
}

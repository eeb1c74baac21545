//! Objects larger than one request, host-driven: each part is uploaded as
//! an object of its own under `<path>/.walship-uploads/<upload id>/`, and
//! `complete` composes them into the final name (with `ifGenerationMatch=0`
//! for create-only) and deletes them.
//!
//! Nothing is visible under the key until the compose, which is atomic on
//! GCS; listings hide the uploads directory. Every step is derived from the
//! upload id alone, so parts can go up in parallel through different plugin
//! instances and processes. The receipts carry each part's generation (so
//! the compose takes exactly the bytes that were acknowledged) and CRC32C
//! (so the composed object is checked against the CRC32C of all the parts
//! together, computed without the data).

use bytes::Bytes;
use http::Method;

use crate::client::query;
use crate::errors::{Action, Op};
use crate::host_log;
use crate::info::MAX_PARTS;
use crate::objects::FIELDS;
use crate::random;
use crate::store::{GcsStore, Resource, decode_crc32c, encode_crc32c};
use crate::walship::storage::types::{Error, ObjectMeta, PartReceipt, PutMode, PutOptions};

/// Sources one compose request takes.
const COMPOSE_FAN_IN: usize = 32;
/// Upload ids are this many random 64-bit words, in hex.
const ID_WORDS: usize = 2;

/// A composable piece: an object name and the generation to take.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Source {
    name: String,
    generation: String,
    crc32c: u32,
    size: u64,
}

impl GcsStore {
    /// Nothing is sent: the upload exists once its first part does.
    pub fn start_multipart(&self, key: &str, _options: &PutOptions) -> Result<String, Error> {
        self.name(key)?;
        Ok(random::hex(ID_WORDS))
    }

    pub fn put_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        data: Vec<u8>,
    ) -> Result<PartReceipt, Error> {
        self.name(key)?;
        let op = Op::new(Action::UploadPart, key);
        if !(1..=MAX_PARTS).contains(&number) {
            return Err(Error::Other(format!(
                "part number {number} of {} is outside 1..={MAX_PARTS}",
                self.context.location.url_of(key)
            )));
        }
        let size = data.len() as u64;
        let name = self.part_name(key, upload_id, &format!("{number:05}"))?;
        let (resource, crc) = self.upload(&op, &name, data, None, false)?;
        let generation = resource.generation.unwrap_or_default();
        Ok(PartReceipt {
            number,
            etag: format!("{generation}:{}", encode_crc32c(crc)),
            size,
        })
    }

    /// Composes the parts, in number order (1..n without gaps), into `key`.
    pub fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[PartReceipt],
        options: &PutOptions,
    ) -> Result<ObjectMeta, Error> {
        let name = self.name(key)?;
        let create_only = options.mode == PutMode::CreateOnly;
        let op = Op::new(Action::CompleteUpload, key).create_only(create_only);
        let url = self.context.location.url_of(key);
        let mut parts = parts.to_vec();
        parts.sort_by_key(|part| part.number);
        if parts.is_empty() {
            return Err(Error::Other(format!(
                "cannot complete the upload of {url}: no parts"
            )));
        }
        let mut sources = Vec::with_capacity(parts.len());
        for (index, part) in parts.iter().enumerate() {
            if part.number as usize != index + 1 {
                return Err(Error::Other(format!(
                    "cannot complete the upload of {url}: parts must be numbered 1 to {} without \
                     gaps or repeats, and part {} is missing or repeated",
                    parts.len(),
                    index + 1
                )));
            }
            let (generation, crc32c) = parse_receipt(&part.etag).ok_or_else(|| {
                Error::Other(format!(
                    "cannot complete the upload of {url}: the receipt of part {} is not one this \
                     plugin issued",
                    part.number
                ))
            })?;
            sources.push(Source {
                name: self.part_name(key, upload_id, &format!("{:05}", part.number))?,
                generation,
                crc32c,
                size: part.size,
            });
        }
        let expected = combined_crc32c(&sources);

        // More than 32 parts: compose groups of 32 into intermediate objects
        // (beside the parts) until one request can take them all.
        let mut level = 0;
        while sources.len() > COMPOSE_FAN_IN {
            let mut next = Vec::with_capacity(sources.len().div_ceil(COMPOSE_FAN_IN));
            for (index, group) in sources.chunks(COMPOSE_FAN_IN).enumerate() {
                let target = self.part_name(key, upload_id, &format!("c{level}-{index:05}"))?;
                let part_op = Op::new(Action::CompleteUpload, key);
                let resource = self
                    .compose(&part_op, &target, group, None, false)
                    .map_err(|e| parts_missing(e, &url))?;
                next.push(Source {
                    name: target,
                    generation: resource.generation.unwrap_or_default(),
                    crc32c: combined_crc32c(group),
                    size: group.iter().map(|s| s.size).sum(),
                });
            }
            sources = next;
            level += 1;
        }

        // GCS enforces ifGenerationMatch=0 on compose atomically; stores
        // that ignore it there (fake-gcs-server) would overwrite, so look
        // first too: a second create is refused everywhere, atomically where
        // the store enforces the precondition (see docs/gcs.md).
        if create_only && self.head(key).is_ok() {
            return Err(Error::AlreadyExists(format!(
                "{url} already exists (create-only compose refused)"
            )));
        }
        let resource = self
            .compose(
                &op,
                &name,
                &sources,
                options.content_type.as_deref(),
                create_only,
            )
            .map_err(|e| parts_missing(e, &url))?;
        if let Some(stored) = resource.crc32c()
            && stored != expected
        {
            self.remove_generation(&name, resource.generation.as_deref());
            return Err(Error::Other(format!(
                "the object composed at {url} does not match its parts (CRC32C); it was removed"
            )));
        }
        self.clean_up(key, upload_id);
        Ok(resource.meta(key))
    }

    /// Deletes the upload's parts. Aborting an unknown upload is ok.
    pub fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), Error> {
        self.name(key)?;
        // An id this plugin never issued names no upload: nothing to abort.
        let Ok(prefix) = self.part_name(key, upload_id, "") else {
            return Ok(());
        };
        let op = Op::new(Action::AbortUpload, key);
        for name in self.names_under(&op, &prefix)? {
            let url = self.client.object_url(&name);
            self.call(
                &op,
                Method::DELETE,
                &url,
                &[],
                Bytes::new(),
                &[200, 204, 404],
            )?;
        }
        Ok(())
    }

    /// After a complete: the parts are garbage, and a failure to delete
    /// them is only worth a warning (they stay hidden from listings).
    fn clean_up(&self, key: &str, upload_id: &str) {
        if let Err(e) = self.abort_multipart(key, upload_id) {
            host_log::warn(&format!(
                "the parts of a completed upload of {} were not all deleted (they stay hidden \
                 under {}): {e:?}",
                self.context.location.url_of(key),
                self.context.location.uploads_base()
            ));
        }
    }

    /// Every object name under `prefix` (a few pages at most: one upload's
    /// parts).
    fn names_under(&self, op: &Op<'_>, prefix: &str) -> Result<Vec<String>, Error> {
        #[derive(serde::Deserialize, Default)]
        #[serde(rename_all = "camelCase")]
        struct Page {
            #[serde(default)]
            items: Vec<Resource>,
            next_page_token: Option<String>,
        }
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut params = vec![("prefix", prefix), ("fields", "items(name),nextPageToken")];
            if let Some(token) = &token {
                params.push(("pageToken", token));
            }
            let url = format!("{}{}", self.client.objects_url(), query(&params));
            let reply = self.call(op, Method::GET, &url, &[], Bytes::new(), &[200])?;
            let page: Page = serde_json::from_slice(&reply.body).unwrap_or_default();
            names.extend(page.items.into_iter().map(|item| item.name));
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next),
                None => return Ok(names),
            }
        }
    }

    /// One compose request into `target`.
    fn compose(
        &self,
        op: &Op<'_>,
        target: &str,
        sources: &[Source],
        content_type: Option<&str>,
        create_only: bool,
    ) -> Result<Resource, Error> {
        let body = serde_json::json!({
            "sourceObjects": sources
                .iter()
                .map(|s| serde_json::json!({ "name": s.name, "generation": s.generation }))
                .collect::<Vec<_>>(),
            "destination": {
                "contentType": content_type.unwrap_or("application/octet-stream"),
            },
        });
        let mut params = Vec::new();
        if create_only {
            params.push(("ifGenerationMatch", "0"));
        }
        params.push(("fields", FIELDS));
        let url = format!(
            "{}/compose{}",
            self.client.object_url(target),
            query(&params)
        );
        let headers = [("content-type", "application/json".to_string())];
        let reply = self.call(
            op,
            Method::POST,
            &url,
            &headers,
            Bytes::from(body.to_string()),
            &[200],
        )?;
        self.resource(op, &reply)
    }

    /// `<path>/.walship-uploads/<id>/<leaf>`; the id must be one this plugin
    /// issued (it becomes part of an object name).
    fn part_name(&self, key: &str, upload_id: &str, leaf: &str) -> Result<String, Error> {
        if upload_id.len() != ID_WORDS * 16
            || !upload_id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Error::NotFound(format!(
                "no upload {upload_id:?} of {}: not an upload id this plugin issued",
                self.context.location.url_of(key)
            )));
        }
        Ok(format!(
            "{}{upload_id}/{leaf}",
            self.context.location.uploads_base()
        ))
    }
}

/// A compose answered 404: a source (a part) is gone, not the target.
fn parts_missing(error: Error, url: &str) -> Error {
    match error {
        Error::NotFound(why) => Error::Other(format!(
            "cannot complete the upload of {url}: a part is missing (aborted, or deleted by a \
             lifecycle rule?): {why}"
        )),
        other => other,
    }
}

/// `generation:crc32c` from a receipt this plugin issued.
fn parse_receipt(etag: &str) -> Option<(String, u32)> {
    let (generation, crc) = etag.split_once(':')?;
    if generation.is_empty() || !generation.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((generation.to_string(), decode_crc32c(crc)?))
}

/// The CRC32C of the sources' bytes one after another.
fn combined_crc32c(sources: &[Source]) -> u32 {
    sources.iter().fold(0, |crc, source| {
        crc32c::crc32c_combine(crc, source.crc32c, source.size as usize)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_round_trip() {
        let etag = format!("1796167494210078:{}", encode_crc32c(0xdead_beef));
        assert_eq!(
            parse_receipt(&etag),
            Some(("1796167494210078".to_string(), 0xdead_beef))
        );
        assert_eq!(parse_receipt("\"etag\""), None);
        assert_eq!(parse_receipt("12:notbase64!"), None);
        assert_eq!(parse_receipt("../x:AAAAAA=="), None);
    }

    #[test]
    fn combined_crc32c_is_the_crc32c_of_the_concatenation() {
        let pieces: [&[u8]; 3] = [b"hello ", b"composed ", b"world"];
        let sources: Vec<Source> = pieces
            .iter()
            .map(|p| Source {
                name: String::new(),
                generation: "1".into(),
                crc32c: crc32c::crc32c(p),
                size: p.len() as u64,
            })
            .collect();
        assert_eq!(
            combined_crc32c(&sources),
            crc32c::crc32c(b"hello composed world")
        );
    }
}

//! Single-object operations: head, get, put, and delete.

use bytes::Bytes;
use http::Method;

use crate::client::{Reply, query};
use crate::errors::{self, Action, Op};
use crate::random;
use crate::store::{GcsStore, Resource, decode_crc32c, encode_crc32c, http_date_ms};
use crate::walship::storage::types::{
    ByteRange, DeleteFailure, Error, GetResult, ObjectMeta, PutMode, PutOptions,
};

/// The object fields the plugin asks for (less to parse on real GCS).
pub const FIELDS: &str = "name,size,generation,crc32c,etag,updated";
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

impl GcsStore {
    pub fn head(&self, key: &str) -> Result<ObjectMeta, Error> {
        let name = self.name(key)?;
        let op = Op::new(Action::Read, key);
        let url = format!(
            "{}{}",
            self.client.object_url(&name),
            query(&[("fields", FIELDS)])
        );
        let reply = self.call(&op, Method::GET, &url, &[], Bytes::new(), &[200])?;
        Ok(self.resource(&op, &reply)?.meta(key))
    }

    pub fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetResult, Error> {
        let name = self.name(key)?;
        let op = Op::new(Action::Read, key);
        let url = format!(
            "{}{}",
            self.client.object_url(&name),
            query(&[("alt", "media")])
        );
        let (offset, length) = match range {
            None => (0, None),
            Some(range) => (range.offset, range.length),
        };
        let header = match (offset, length) {
            (_, Some(0)) => return self.nothing_of(key),
            // The whole object: no Range header, so an empty object is no
            // special case.
            (0, None) => None,
            (offset, None) => Some(format!("bytes={offset}-")),
            (offset, Some(length)) => Some(format!(
                "bytes={offset}-{}",
                offset.saturating_add(length) - 1
            )),
        };
        let headers: Vec<(&str, String)> = header.iter().map(|h| ("range", h.clone())).collect();
        let reply = self
            .client
            .send(Method::GET, &url, &headers, Bytes::new())
            .map_err(|e| errors::from_send(e, &op, &self.context))?;
        match reply.status.as_u16() {
            200 | 206 => {}
            // The range starts at or past the end: the contract returns
            // what exists there, nothing.
            416 if header.is_some() => return self.nothing_of(key),
            _ => return Err(errors::from_reply(&reply, &op, &self.context)),
        }
        let mut meta = media_meta(key, &reply);
        let mut data = Vec::from(reply.body.clone());
        if reply.status == 200 {
            // The whole object (asked for, or a server that ignored Range):
            // check it against the CRC32C GCS stored, then cut the range.
            meta.size = data.len() as u64;
            if let Some(stored) = stored_crc32c(&reply)
                && stored != crc32c::crc32c(&data)
            {
                return Err(Error::Transient(format!(
                    "{} came back damaged: its bytes do not match the CRC32C {} reported",
                    self.context.location.url_of(key),
                    self.context.endpoint
                )));
            }
            if header.is_some() {
                let size = data.len() as u64;
                let end = length.map_or(size, |n| offset.saturating_add(n).min(size));
                let start = offset.min(end);
                data = data[start as usize..end as usize].to_vec();
            }
        }
        Ok(GetResult { meta, data })
    }

    /// No bytes of an object that exists.
    fn nothing_of(&self, key: &str) -> Result<GetResult, Error> {
        Ok(GetResult {
            meta: self.head(key)?,
            data: Vec::new(),
        })
    }

    pub fn put(&self, key: &str, data: Vec<u8>, options: &PutOptions) -> Result<ObjectMeta, Error> {
        let name = self.name(key)?;
        let create_only = options.mode == PutMode::CreateOnly;
        let op = Op::new(Action::Write, key).create_only(create_only);
        let (resource, _) = self.upload(
            &op,
            &name,
            data,
            options.content_type.as_deref(),
            create_only,
        )?;
        Ok(resource.meta(key))
    }

    /// One multipart upload (metadata and bytes in one request): the only
    /// upload fake-gcs-server checks `ifGenerationMatch=0` on, and the one
    /// GCS checks the CRC32C of before the object exists. Returns the new
    /// object and the CRC32C of its bytes.
    pub(crate) fn upload(
        &self,
        op: &Op<'_>,
        name: &str,
        data: Vec<u8>,
        content_type: Option<&str>,
        create_only: bool,
    ) -> Result<(Resource, u32), Error> {
        let crc = crc32c::crc32c(&data);
        let metadata = serde_json::json!({
            "name": name,
            "crc32c": encode_crc32c(crc),
            "contentType": content_type.unwrap_or(DEFAULT_CONTENT_TYPE),
        });
        let boundary = format!("walship-{}", random::hex(2));
        let body = multipart_body(
            &boundary,
            &metadata.to_string(),
            content_type.unwrap_or(DEFAULT_CONTENT_TYPE),
            &data,
        );
        drop(data);
        let mut params = vec![("uploadType", "multipart")];
        if create_only {
            params.push(("ifGenerationMatch", "0"));
        }
        params.push(("fields", FIELDS));
        let url = format!("{}{}", self.client.upload_url(), query(&params));
        let headers = [(
            "content-type",
            format!("multipart/related; boundary={boundary}"),
        )];
        let reply = self.call(op, Method::POST, &url, &headers, Bytes::from(body), &[200])?;
        let resource = self.resource(op, &reply)?;
        // GCS refuses a body that does not match the CRC32C sent with it;
        // a store that did not check (fake-gcs-server) is caught here.
        if let Some(stored) = resource.crc32c()
            && stored != crc
        {
            self.remove_generation(name, resource.generation.as_deref());
            return Err(Error::Transient(format!(
                "{} reached {} damaged (its CRC32C does not match what was sent); the damaged \
                 object was removed",
                self.context.location.url_of(op.key),
                self.context.endpoint
            )));
        }
        Ok((resource, crc))
    }

    /// Deletes exactly this generation of `name` (best effort).
    pub(crate) fn remove_generation(&self, name: &str, generation: Option<&str>) {
        let mut params = Vec::new();
        if let Some(generation) = generation {
            params.push(("ifGenerationMatch", generation));
        }
        let url = format!("{}{}", self.client.object_url(name), query(&params));
        let _ = self.client.send(Method::DELETE, &url, &[], Bytes::new());
    }

    /// One DELETE per key (the JSON API has no multi-object delete outside
    /// its batch endpoint). Keys that do not exist count as deleted. A
    /// failure that would hit every key (credentials, permissions, the
    /// network) fails the call; others are reported per key.
    pub fn delete(&self, keys: Vec<String>) -> Result<Vec<DeleteFailure>, Error> {
        let mut failures = Vec::new();
        for key in keys {
            let name = self.name(&key)?;
            let op = Op::new(Action::Delete, &key);
            let url = self.client.object_url(&name);
            match self.call(
                &op,
                Method::DELETE,
                &url,
                &[],
                Bytes::new(),
                &[200, 204, 404],
            ) {
                Ok(_) => {}
                Err(
                    e @ (Error::Unauthenticated(_)
                    | Error::PermissionDenied(_)
                    | Error::Transient(_)
                    | Error::Throttled(_)
                    | Error::InvalidConfig(_)),
                ) => return Err(e),
                Err(error) => failures.push(DeleteFailure { key, error }),
            }
        }
        Ok(failures)
    }
}

/// `multipart/related`: the object's JSON metadata, then its bytes.
pub fn multipart_body(boundary: &str, metadata: &str, content_type: &str, data: &[u8]) -> Vec<u8> {
    let head = format!(
        "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{metadata}\r\n\
         --{boundary}\r\nContent-Type: {content_type}\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let mut body = Vec::with_capacity(head.len() + data.len() + tail.len());
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(data);
    body.extend_from_slice(tail.as_bytes());
    body
}

/// The object's description from a media download's headers: the whole
/// object's size (from `Content-Range` when ranged), generation-bound etag,
/// last modification.
fn media_meta(key: &str, reply: &Reply) -> ObjectMeta {
    let size = reply
        .header("content-range")
        .and_then(|range| range.rsplit_once('/'))
        .and_then(|(_, total)| total.trim().parse().ok())
        .or_else(|| {
            reply
                .header("x-goog-stored-content-length")
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(reply.body.len() as u64);
    ObjectMeta {
        key: key.to_string(),
        size,
        last_modified_ms: reply.header("last-modified").and_then(http_date_ms),
        etag: reply
            .header("etag")
            .map(|e| e.trim_matches('"').to_string()),
    }
}

/// The CRC32C in `x-goog-hash: crc32c=...,md5=...` (possibly repeated).
fn stored_crc32c(reply: &Reply) -> Option<u32> {
    reply
        .headers
        .get_all("x-goog-hash")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|item| item.trim().strip_prefix("crc32c="))
        .and_then(decode_crc32c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_multipart_body_frames_metadata_and_data() {
        let body = multipart_body("B", "{\"name\":\"k\"}", "application/octet-stream", b"DATA");
        let text = String::from_utf8(body).unwrap();
        assert_eq!(
            text,
            "--B\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{\"name\":\"k\"}\r\n\
             --B\r\nContent-Type: application/octet-stream\r\n\r\nDATA\r\n--B--\r\n"
        );
    }
}

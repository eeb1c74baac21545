//! Multipart uploads, through object_store's `MultipartStore`: the host
//! sends the parts (possibly from several instances), the plugin relays them.

use object_store::multipart::{MultipartStore, PartId};
use object_store::{PutMultipartOptions, PutPayload};

use crate::errors::{Action, Op};
use crate::info::MAX_PARTS;
use crate::store::S3Store;
use crate::walship::storage::types::{
    Error, ObjectMeta, PartReceipt, PutMode as WitPutMode, PutOptions,
};

impl S3Store {
    /// Storage class and content type go with the upload's start: S3 fixes
    /// them then, not at completion.
    pub fn start_multipart(&self, key: &str, options: &PutOptions) -> Result<String, Error> {
        let path = self.path(key)?;
        let op = Op::new(Action::StartUpload, key);
        let options = PutMultipartOptions {
            attributes: self.attributes(options.content_type.as_deref()),
            ..Default::default()
        };
        self.call(&op, self.client.create_multipart_opts(&path, options))
    }

    pub fn put_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        data: Vec<u8>,
    ) -> Result<PartReceipt, Error> {
        let path = self.path(key)?;
        let op = Op::new(Action::UploadPart, key);
        if !(1..=MAX_PARTS).contains(&number) {
            return Err(Error::Other(format!(
                "part number {number} of {} is outside 1..={MAX_PARTS}",
                self.context.location.url_of(key)
            )));
        }
        let size = data.len() as u64;
        let id = upload_id.to_string();
        let part = self.call(
            &op,
            self.client
                .put_part(&path, &id, (number - 1) as usize, PutPayload::from(data)),
        )?;
        Ok(PartReceipt {
            number,
            // The part's ETag and SHA-256, which completing needs.
            etag: part.content_id,
            size,
        })
    }

    /// Assembles the parts in number order; they must be numbered 1..n
    /// without gaps (object_store numbers them by position).
    pub fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[PartReceipt],
        options: &PutOptions,
    ) -> Result<ObjectMeta, Error> {
        let path = self.path(key)?;
        let create_only = options.mode == WitPutMode::CreateOnly;
        let op = Op::new(Action::CompleteUpload, key).create_only(create_only);
        let mut parts = parts.to_vec();
        parts.sort_by_key(|part| part.number);
        if let Some((missing, _)) = parts
            .iter()
            .enumerate()
            .find(|(index, part)| part.number as usize != index + 1)
        {
            return Err(Error::Other(format!(
                "cannot complete the multipart upload of {}: parts must be numbered 1 to {} \
                 without gaps or repeats, and part {} is missing or repeated",
                self.context.location.url_of(key),
                parts.len(),
                missing + 1
            )));
        }
        let size = parts.iter().map(|part| part.size).sum();
        let ids = parts
            .into_iter()
            .map(|part| PartId {
                content_id: part.etag,
            })
            .collect();
        let id = upload_id.to_string();
        let complete = || self.call(&op, self.client.complete_multipart(&path, &id, ids));
        let result = if create_only {
            // object_store's complete always overwrites; the hooks add
            // `If-None-Match: *` to this one request.
            self.hooks.create_only_completes(complete)
        } else {
            complete()
        }?;
        Ok(ObjectMeta {
            key: key.to_string(),
            size,
            last_modified_ms: None,
            etag: result.e_tag,
        })
    }

    /// Aborting an upload S3 no longer knows is not a failure.
    pub fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), Error> {
        let path = self.path(key)?;
        let op = Op::new(Action::AbortUpload, key);
        let id = upload_id.to_string();
        match self.run(self.client.abort_multipart(&path, &id)) {
            Ok(()) => Ok(()),
            Err(failure) if failure.status() == Some(404) => Ok(()),
            Err(failure) => Err(self.error(&op, *failure)),
        }
    }
}

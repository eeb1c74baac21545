//! walship's S3 storage plugin: stores objects in Amazon S3 and S3-compatible
//! stores under an `s3://bucket/optional/path` prefix.
//!
//! It stores opaque bytes and knows nothing of WAL. The work is object_store's
//! (S3 requests, SigV4, checksums) over walship-guest-http (the host's
//! wasi:http); this file is only the glue between the WIT bindings and the
//! modules that do the work, each operation in the module named for it.
//!
//! What the host owns, the plugin leaves alone: retries (object_store's are
//! off), TLS roots, timeouts and which endpoints may be reached (`plan` says
//! which ones this configuration needs; see `endpoints.rs`).

mod config;
mod endpoints;
mod errors;
mod hooks;
mod host_log;
mod info;
mod listing;
mod multipart;
mod objects;
mod prefix;
mod store;
#[cfg(test)]
mod store_tests;
mod web_identity;

wit_bindgen::generate!({
    world: "storage-plugin",
    path: "../../wit",
    additional_derives: [PartialEq],
});

use exports::walship::storage::backend::{Guest, GuestStore, Store};
use walship::storage::types::{
    BackendInfo, ByteRange, DeleteFailure, Error, Features, GetResult, Grants, ListOptions,
    ListPage, ObjectMeta, PartReceipt, PutOptions,
};

use crate::config::Settings;
use crate::store::S3Store;

struct Plugin;

impl Guest for Plugin {
    type Store = S3Store;

    fn info() -> BackendInfo {
        info::info()
    }

    fn plan(prefix: String, config: Vec<(String, String)>) -> Result<Grants, Error> {
        let settings = Settings::parse(&prefix, &config).map_err(Error::InvalidConfig)?;
        Ok(endpoints::grants(&settings))
    }
}

impl GuestStore for S3Store {
    fn open(
        prefix: String,
        config: Vec<(String, String)>,
        secrets: Vec<(String, String)>,
    ) -> Result<Store, Error> {
        let store = S3Store::open(&prefix, &config, &secrets)?;
        host_log::debug(&store.describe());
        Ok(Store::new(store))
    }

    fn features(&self) -> Features {
        S3Store::features(self)
    }

    fn head(&self, key: String) -> Result<ObjectMeta, Error> {
        S3Store::head(self, &key)
    }

    fn get(&self, key: String, range: Option<ByteRange>) -> Result<GetResult, Error> {
        S3Store::get(self, &key, range)
    }

    fn put(&self, key: String, data: Vec<u8>, options: PutOptions) -> Result<ObjectMeta, Error> {
        S3Store::put(self, &key, data, &options)
    }

    fn list_objects(&self, options: ListOptions) -> Result<ListPage, Error> {
        S3Store::list(self, &options)
    }

    fn delete(&self, keys: Vec<String>) -> Result<Vec<DeleteFailure>, Error> {
        S3Store::delete(self, keys)
    }

    fn start_multipart(&self, key: String, options: PutOptions) -> Result<String, Error> {
        S3Store::start_multipart(self, &key, &options)
    }

    fn put_part(
        &self,
        key: String,
        upload_id: String,
        number: u32,
        data: Vec<u8>,
    ) -> Result<PartReceipt, Error> {
        S3Store::put_part(self, &key, &upload_id, number, data)
    }

    fn complete_multipart(
        &self,
        key: String,
        upload_id: String,
        parts: Vec<PartReceipt>,
        options: PutOptions,
    ) -> Result<ObjectMeta, Error> {
        S3Store::complete_multipart(self, &key, &upload_id, &parts, &options)
    }

    fn abort_multipart(&self, key: String, upload_id: String) -> Result<(), Error> {
        S3Store::abort_multipart(self, &key, &upload_id)
    }
}

export!(Plugin);

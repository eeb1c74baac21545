//! walship's Google Cloud Storage plugin: stores objects under a
//! `gs://bucket/optional/path` prefix through GCS's JSON API.
//!
//! It stores opaque bytes and knows nothing of WAL. HTTP goes through
//! walship-guest-http (the host's wasi:http); the host does TLS, timeouts,
//! retries and decides which endpoints may be reached (`plan`, see
//! `config.rs`). This file is only the glue between the WIT bindings and the
//! modules that do the work, each operation in the module named for it.
//!
//! Why the JSON API and not object_store's GCS client: see docs/gcs.md.

mod auth;
mod client;
mod config;
mod errors;
mod host_log;
mod info;
mod listing;
mod multipart;
mod objects;
mod random;
mod store;
#[cfg(test)]
mod store_tests;

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
use crate::store::GcsStore;

struct Plugin;

impl Guest for Plugin {
    type Store = GcsStore;

    fn info() -> BackendInfo {
        info::info()
    }

    fn plan(prefix: String, config: Vec<(String, String)>) -> Result<Grants, Error> {
        let settings = Settings::parse(&prefix, &config).map_err(Error::InvalidConfig)?;
        Ok(settings.grants())
    }
}

impl GuestStore for GcsStore {
    fn open(
        prefix: String,
        config: Vec<(String, String)>,
        secrets: Vec<(String, String)>,
    ) -> Result<Store, Error> {
        let store = GcsStore::open(&prefix, &config, &secrets)?;
        host_log::debug(&store.describe());
        Ok(Store::new(store))
    }

    fn features(&self) -> Features {
        info::FEATURES
    }

    fn head(&self, key: String) -> Result<ObjectMeta, Error> {
        GcsStore::head(self, &key)
    }

    fn get(&self, key: String, range: Option<ByteRange>) -> Result<GetResult, Error> {
        GcsStore::get(self, &key, range)
    }

    fn put(&self, key: String, data: Vec<u8>, options: PutOptions) -> Result<ObjectMeta, Error> {
        GcsStore::put(self, &key, data, &options)
    }

    fn list_objects(&self, options: ListOptions) -> Result<ListPage, Error> {
        GcsStore::list(self, &options)
    }

    fn delete(&self, keys: Vec<String>) -> Result<Vec<DeleteFailure>, Error> {
        GcsStore::delete(self, keys)
    }

    fn start_multipart(&self, key: String, options: PutOptions) -> Result<String, Error> {
        GcsStore::start_multipart(self, &key, &options)
    }

    fn put_part(
        &self,
        key: String,
        upload_id: String,
        number: u32,
        data: Vec<u8>,
    ) -> Result<PartReceipt, Error> {
        GcsStore::put_part(self, &key, &upload_id, number, data)
    }

    fn complete_multipart(
        &self,
        key: String,
        upload_id: String,
        parts: Vec<PartReceipt>,
        options: PutOptions,
    ) -> Result<ObjectMeta, Error> {
        GcsStore::complete_multipart(self, &key, &upload_id, &parts, &options)
    }

    fn abort_multipart(&self, key: String, upload_id: String) -> Result<(), Error> {
        GcsStore::abort_multipart(self, &key, &upload_id)
    }
}

export!(Plugin);

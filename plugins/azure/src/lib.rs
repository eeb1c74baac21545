//! walship's Azure Blob Storage plugin: stores objects as block blobs under
//! an `azure://container/optional/path` prefix (WAL-G's `WALG_AZ_PREFIX`).
//!
//! It stores opaque bytes and knows nothing of WAL. Reads are object_store's
//! (`azure-base`), writes are requests signed by object_store's
//! `AzureAuthorizer` (see `store.rs` for why), all over walship-guest-http
//! (the host's wasi:http). This file is only the glue between the WIT
//! bindings and the modules that do the work, each operation in the module
//! named for it.
//!
//! What the host owns, the plugin leaves alone: retries (object_store's are
//! off), TLS, timeouts and which endpoints may be reached.

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
use crate::store::AzureStore;

struct Plugin;

impl Guest for Plugin {
    type Store = AzureStore;

    fn info() -> BackendInfo {
        info::info()
    }

    fn plan(prefix: String, config: Vec<(String, String)>) -> Result<Grants, Error> {
        let settings = Settings::parse(&prefix, &config)
            .map_err(|e| Error::InvalidConfig(errors::one_line(&e)))?;
        Ok(endpoints::grants(&settings))
    }
}

impl GuestStore for AzureStore {
    fn open(
        prefix: String,
        config: Vec<(String, String)>,
        secrets: Vec<(String, String)>,
    ) -> Result<Store, Error> {
        let store = AzureStore::open(&prefix, &config, &secrets)?;
        host_log::debug(&store.describe());
        Ok(Store::new(store))
    }

    fn features(&self) -> Features {
        AzureStore::features(self)
    }

    fn head(&self, key: String) -> Result<ObjectMeta, Error> {
        AzureStore::head(self, &key)
    }

    fn get(&self, key: String, range: Option<ByteRange>) -> Result<GetResult, Error> {
        AzureStore::get(self, &key, range)
    }

    fn put(&self, key: String, data: Vec<u8>, options: PutOptions) -> Result<ObjectMeta, Error> {
        AzureStore::put(self, &key, data, &options)
    }

    fn list_objects(&self, options: ListOptions) -> Result<ListPage, Error> {
        AzureStore::list(self, &options)
    }

    fn delete(&self, keys: Vec<String>) -> Result<Vec<DeleteFailure>, Error> {
        AzureStore::delete(self, keys)
    }

    fn start_multipart(&self, key: String, options: PutOptions) -> Result<String, Error> {
        AzureStore::start_multipart(self, &key, &options)
    }

    fn put_part(
        &self,
        key: String,
        upload_id: String,
        number: u32,
        data: Vec<u8>,
    ) -> Result<PartReceipt, Error> {
        AzureStore::put_part(self, &key, &upload_id, number, data)
    }

    fn complete_multipart(
        &self,
        key: String,
        upload_id: String,
        parts: Vec<PartReceipt>,
        options: PutOptions,
    ) -> Result<ObjectMeta, Error> {
        AzureStore::complete_multipart(self, &key, &upload_id, &parts, &options)
    }

    fn abort_multipart(&self, key: String, upload_id: String) -> Result<(), Error> {
        AzureStore::abort_multipart(self, &key, &upload_id)
    }
}

export!(Plugin);

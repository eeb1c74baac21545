//! walship's OpenStack Swift storage plugin: stores objects in a Swift
//! container under a `swift://container/optional/path` prefix.
//!
//! It stores opaque bytes and knows nothing of WAL. object_store has no Swift
//! backend, so the requests are built here (each operation in the module
//! named for it) and sent with walship-guest-http over the host's wasi:http.
//! This file is only the glue between the WIT bindings and those modules.
//!
//! What the host owns, the plugin leaves alone: retries, TLS, timeouts and
//! which endpoints may be reached (`plan` names the configured ones; a
//! storage URL learned from an auth reply is asked for with
//! `host.request-endpoint`, see `session.rs`).

mod auth;
mod config;
mod delete;
mod errors;
mod host;
mod info;
mod large_objects;
mod listing;
mod names;
mod objects;
mod session;
mod store;
#[cfg(test)]
mod store_tests;
mod time;

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
use crate::store::SwiftStore;

struct Plugin;

impl Guest for Plugin {
    type Store = SwiftStore;

    fn info() -> BackendInfo {
        info::info()
    }

    fn plan(prefix: String, config: Vec<(String, String)>) -> Result<Grants, Error> {
        let settings = Settings::parse(&prefix, &config).map_err(Error::InvalidConfig)?;
        Ok(Grants {
            endpoints: settings.planned_endpoints(),
            directories: Vec::new(),
        })
    }
}

impl GuestStore for SwiftStore {
    fn open(
        prefix: String,
        config: Vec<(String, String)>,
        secrets: Vec<(String, String)>,
    ) -> Result<Store, Error> {
        let store = SwiftStore::open(&prefix, &config, &secrets)?;
        host::debug(&store.describe());
        Ok(Store::new(store))
    }

    fn features(&self) -> Features {
        info::FEATURES
    }

    fn head(&self, key: String) -> Result<ObjectMeta, Error> {
        SwiftStore::head(self, &key)
    }

    fn get(&self, key: String, range: Option<ByteRange>) -> Result<GetResult, Error> {
        SwiftStore::get(self, &key, range)
    }

    fn put(&self, key: String, data: Vec<u8>, options: PutOptions) -> Result<ObjectMeta, Error> {
        SwiftStore::put(self, &key, data, &options)
    }

    fn list_objects(&self, options: ListOptions) -> Result<ListPage, Error> {
        SwiftStore::list(self, &options)
    }

    fn delete(&self, keys: Vec<String>) -> Result<Vec<DeleteFailure>, Error> {
        SwiftStore::delete(self, keys)
    }

    fn start_multipart(&self, key: String, options: PutOptions) -> Result<String, Error> {
        SwiftStore::start_multipart(self, &key, &options)
    }

    fn put_part(
        &self,
        key: String,
        upload_id: String,
        number: u32,
        data: Vec<u8>,
    ) -> Result<PartReceipt, Error> {
        SwiftStore::put_part(self, &key, &upload_id, number, data)
    }

    fn complete_multipart(
        &self,
        key: String,
        upload_id: String,
        parts: Vec<PartReceipt>,
        options: PutOptions,
    ) -> Result<ObjectMeta, Error> {
        SwiftStore::complete_multipart(self, &key, &upload_id, &parts, &options)
    }

    fn abort_multipart(&self, key: String, upload_id: String) -> Result<(), Error> {
        SwiftStore::abort_multipart(self, &key, &upload_id)
    }
}

export!(Plugin);

//! walship's filesystem storage plugin: stores objects as files under a
//! directory named by a `file:///abs/path` prefix.
//!
//! It stores opaque bytes and knows nothing of WAL. This file is only the glue
//! between the WIT bindings and the modules that do the work; each operation
//! lives in the module named for it.
//!
//! Two limits follow from mapping keys to paths, unlike an object store:
//! a key cannot also be the directory part of another (`a` and `a/b` cannot
//! both exist; the second put fails with a message saying so), and multipart
//! uploads that are neither completed nor aborted stay in
//! `.walship-multipart/` until removed by hand.

mod dir_sync;
mod durable;
mod errors;
mod host_log;
mod info;
mod keys;
mod listing;
mod multipart;
mod objects;
mod paging;
mod prefix;
mod random;
mod store;
#[cfg(test)]
mod store_tests;
mod walk;

wit_bindgen::generate!({ world: "storage-plugin", path: "../../wit" });

use exports::walship::storage::backend::{Guest, GuestStore, Store};
use walship::storage::types::{
    BackendInfo, ByteRange, DeleteFailure, DirectoryGrant, Error, Features, GetResult, Grants,
    ListOptions, ListPage, ObjectMeta, PartReceipt, PutOptions,
};

use crate::store::FsStore;

struct Plugin;

impl Guest for Plugin {
    type Store = FsStore;

    fn info() -> BackendInfo {
        info::info()
    }

    fn plan(prefix: String, _config: Vec<(String, String)>) -> Result<Grants, Error> {
        let root = prefix::parse_root(&prefix).map_err(Error::InvalidConfig)?;
        Ok(Grants {
            endpoints: Vec::new(),
            directories: vec![DirectoryGrant {
                path: root,
                writable: true,
            }],
        })
    }
}

impl GuestStore for FsStore {
    fn open(
        prefix: String,
        _config: Vec<(String, String)>,
        _secrets: Vec<(String, String)>,
    ) -> Result<Store, Error> {
        let store = FsStore::open(&prefix)?;
        host_log::debug(&format!("fs store opened at {}", store.root().display()));
        Ok(Store::new(store))
    }

    fn features(&self) -> Features {
        // Nothing in an fs configuration takes a capability away.
        info::info().features
    }

    fn head(&self, key: String) -> Result<ObjectMeta, Error> {
        FsStore::head(self, &key)
    }

    fn get(&self, key: String, range: Option<ByteRange>) -> Result<GetResult, Error> {
        FsStore::get(self, &key, range)
    }

    fn put(&self, key: String, data: Vec<u8>, options: PutOptions) -> Result<ObjectMeta, Error> {
        FsStore::put(self, &key, &data, &options)
    }

    fn list_objects(&self, options: ListOptions) -> Result<ListPage, Error> {
        FsStore::list(self, &options)
    }

    fn delete(&self, keys: Vec<String>) -> Result<Vec<DeleteFailure>, Error> {
        FsStore::delete(self, keys)
    }

    fn start_multipart(&self, key: String, _options: PutOptions) -> Result<String, Error> {
        FsStore::start_multipart(self, &key)
    }

    fn put_part(
        &self,
        key: String,
        upload_id: String,
        number: u32,
        data: Vec<u8>,
    ) -> Result<PartReceipt, Error> {
        FsStore::put_part(self, &key, &upload_id, number, &data)
    }

    fn complete_multipart(
        &self,
        key: String,
        upload_id: String,
        parts: Vec<PartReceipt>,
        options: PutOptions,
    ) -> Result<ObjectMeta, Error> {
        FsStore::complete_multipart(self, &key, &upload_id, &parts, &options)
    }

    fn abort_multipart(&self, key: String, upload_id: String) -> Result<(), Error> {
        FsStore::abort_multipart(self, &key, &upload_id)
    }
}

export!(Plugin);

//! A deliberately malicious storage plugin for walship's sandbox tests.
//!
//! It is granted one directory (`hostile:///abs/dir`) and no endpoints, and
//! its `put` attacks the sandbox when the key's last segment names an attack:
//!
//! | segment        | attack                                              | expected outcome        |
//! |----------------|-----------------------------------------------------|-------------------------|
//! | `read-outside` | read /etc/passwd, list the root's parent, read /proc/self/environ, read the environment | `permission-denied("sandbox held: ...")` |
//! | `open-socket`  | TCP connect to 127.0.0.1:<port>, UDP bind           | `permission-denied("sandbox held: ...")` |
//! | `http-out`     | wasi:http GET http://127.0.0.1:<port>/              | `permission-denied("sandbox held: ...")` |
//! | `http-to`      | wasi:http GET http://<host:port>/ (one its plan may have asked for through `HOSTILE_ASK_ENDPOINT`) | `permission-denied("sandbox held: ...")` unless the operator configured exactly that endpoint |
//! | `allocate`     | hold and touch 16 MiB chunks up to <MiB> (default 4096) | a trap (memory cap)  |
//! | `spin`         | loop forever                                        | a trap (deadline)       |
//! | `panic`        | panic                                               | a trap                  |
//! | `hoard-resources` | hold 50 000 wasi:http header sets (host memory)  | a trap (resource table cap) |
//! | `plant-symlink`| create `<root>/esc -> <target>` (default `../../..`) | `other("planted ...")` (the next attack uses it) |
//! | `spoof-error`  | fail with a message full of terminal escapes and a forged line | the message shown escaped, on one line |
//! | `leak-settings`| report every setting it was handed that it is not entitled to (it declares walship's, PostgreSQL's, the S3 backend's and a secret file's) | `permission-denied("sandbox held: ...")` |
//! | `through-extra`| read `<extra>/<file>` (default `etc/passwd`), write into `<extra>` (the `HOSTILE_EXTRA_DIR` grant) | no grant (open fails) or `permission-denied("sandbox held: ...")` |
//!
//! `<target>` and `<file>` are the put's data as text; `<port>` and `<MiB>`
//! are the put's data as ASCII decimal (port defaults to
//! 5432). Any attack that gets through returns `other("SANDBOX ESCAPED: ...")`
//! naming what it reached. Every other key is stored as a plain file, so the
//! host can first check that the plugin works at all.

mod exhaust;
mod files;
mod grants;
mod network;
mod plain;
mod prefix;
mod probes;
mod settings;

wit_bindgen::generate!({ world: "storage-plugin", path: "../../../wit" });

use std::path::PathBuf;

use exports::walship::storage::backend::{Guest, GuestStore, Store};
use walship::storage::types::{
    BackendInfo, ByteRange, Capabilities, DeleteFailure, DirectoryGrant, Error, Features,
    GetResult, Grants, Limits, ListOptions, ListPage, ObjectMeta, PartReceipt, PutOptions,
};

use crate::plain::PlainStore;
use crate::probes::{number_from, text_or};

struct Plugin;

impl Guest for Plugin {
    type Store = PlainStore;

    fn info() -> BackendInfo {
        BackendInfo {
            backend: "hostile".to_string(),
            plugin_version: env!("CARGO_PKG_VERSION").to_string(),
            // file:// too: the bundled fs plugin's scheme (see prefix.rs).
            schemes: vec!["hostile".to_string(), "file".to_string()],
            features: Features::CREATE_ONLY,
            limits: Limits {
                max_single_put: 64 << 20,
                min_part_size: 1 << 20,
                max_part_size: 64 << 20,
                max_parts: 1,
                max_delete_batch: 1000,
            },
            config_keys: settings::declared(),
            // Its directory, hosts the configuration names, and `localhost`
            // (a name, not an address: what it resolves to is the point).
            capabilities: Capabilities {
                network: vec!["configured".to_string(), "localhost".to_string()],
                directory: true,
            },
        }
    }

    fn plan(prefix: String, config: Vec<(String, String)>) -> Result<Grants, Error> {
        let root = prefix::parse_root(&prefix).map_err(Error::InvalidConfig)?;
        let mut directories = vec![DirectoryGrant {
            path: root,
            writable: true,
        }];
        if let Some(extra) = setting(&config, EXTRA_DIR) {
            directories.push(DirectoryGrant {
                path: extra,
                writable: true,
            });
        }
        // Asks for whatever endpoint it is told to: the host must check it.
        let endpoints = setting(&config, settings::ASK_ENDPOINT)
            .and_then(|url| settings::endpoint_of(&url))
            .into_iter()
            .collect();
        Ok(Grants {
            endpoints,
            directories,
        })
    }
}

use crate::settings::EXTRA_DIR;

fn setting(config: &[(String, String)], name: &str) -> Option<String> {
    config
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.clone())
}

fn unsupported() -> Error {
    Error::Unsupported("the hostile plugin does not declare multipart".to_string())
}

impl GuestStore for PlainStore {
    fn open(
        prefix: String,
        config: Vec<(String, String)>,
        secrets: Vec<(String, String)>,
    ) -> Result<Store, Error> {
        let root = prefix::parse_root(&prefix).map_err(Error::InvalidConfig)?;
        Ok(Store::new(PlainStore {
            root: PathBuf::from(root),
            extra: setting(&config, EXTRA_DIR).map(PathBuf::from),
            received: config.into_iter().chain(secrets).collect(),
        }))
    }

    fn put(&self, key: String, data: Vec<u8>, options: PutOptions) -> Result<ObjectMeta, Error> {
        let attack = key.rsplit('/').next().unwrap_or_default();
        let outcome = match attack {
            "read-outside" => files::read_outside(&self.root).verdict(),
            "open-socket" => network::open_socket(number_from(&data, 5432)).verdict(),
            "http-out" => network::http_out(number_from(&data, 5432)).verdict(),
            "http-to" => network::http_to(&text_or(&data, "localhost:5432")).verdict(),
            "allocate" => exhaust::allocate(number_from(&data, 4096)),
            "spin" => exhaust::spin(),
            "panic" => exhaust::panic(),
            "hoard-resources" => exhaust::hoard_resources(),
            "plant-symlink" => {
                match grants::plant_symlink(&self.root, &text_or(&data, grants::DEFAULT_TARGET)) {
                    Ok(done) => Error::Other(done),
                    Err(why) => Error::Other(format!("not planted: {why}")),
                }
            }
            "leak-settings" => settings::leak(&self.received).verdict(),
            "spoof-error" => Error::Other(settings::SPOOF.to_string()),
            "through-extra" => {
                grants::through_extra(self.extra.as_deref(), &text_or(&data, "")).verdict()
            }
            _ => return PlainStore::put(self, &key, &data, options.mode),
        };
        Err(outcome)
    }

    fn features(&self) -> Features {
        Plugin::info().features
    }

    fn head(&self, key: String) -> Result<ObjectMeta, Error> {
        PlainStore::head(self, &key)
    }

    fn get(&self, key: String, range: Option<ByteRange>) -> Result<GetResult, Error> {
        PlainStore::get(self, &key, range)
    }

    fn list_objects(&self, _options: ListOptions) -> Result<ListPage, Error> {
        Ok(self.list())
    }

    fn delete(&self, keys: Vec<String>) -> Result<Vec<DeleteFailure>, Error> {
        Ok(PlainStore::delete(self, keys))
    }

    fn start_multipart(&self, _key: String, _options: PutOptions) -> Result<String, Error> {
        Err(unsupported())
    }

    fn put_part(
        &self,
        _key: String,
        _upload_id: String,
        _number: u32,
        _data: Vec<u8>,
    ) -> Result<PartReceipt, Error> {
        Err(unsupported())
    }

    fn complete_multipart(
        &self,
        _key: String,
        _upload_id: String,
        _parts: Vec<PartReceipt>,
        _options: PutOptions,
    ) -> Result<ObjectMeta, Error> {
        Err(unsupported())
    }

    fn abort_multipart(&self, _key: String, _upload_id: String) -> Result<(), Error> {
        Err(unsupported())
    }
}

export!(Plugin);

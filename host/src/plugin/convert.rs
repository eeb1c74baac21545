//! Conversions between the WIT types and the host's storage types. Kept in
//! one place so the rest of the host never sees generated bindings.

use std::path::PathBuf;
use std::time::Duration;

use super::bindings::walship::storage::types as wit;
use super::sandbox::{DirectoryGrant, Endpoint, Grants};
use crate::storage::{
    BackendInfo, ByteRange, Capabilities, ConfigKey, ConfigKind, Features, Limits, ListOptions,
    ListPage, ObjectMeta, PartReceipt, PutMode, PutOptions, StorageError,
};

/// A plugin's error as a `StorageError`. Its message reaches PostgreSQL's
/// log and the operator's terminal: one line, control characters escaped.
pub fn error(e: wit::Error) -> StorageError {
    let clean = |m: String| crate::logging::printable(&m.replace(['\n', '\r', '\t'], " "));
    match error_as_is(e) {
        StorageError::NotFound(m) => StorageError::NotFound(clean(m)),
        StorageError::AlreadyExists(m) => StorageError::AlreadyExists(clean(m)),
        StorageError::PreconditionFailed(m) => StorageError::PreconditionFailed(clean(m)),
        StorageError::Unauthenticated(m) => StorageError::Unauthenticated(clean(m)),
        StorageError::PermissionDenied(m) => StorageError::PermissionDenied(clean(m)),
        StorageError::Throttled {
            message,
            retry_after,
        } => StorageError::Throttled {
            message: clean(message),
            retry_after,
        },
        StorageError::Transient(m) => StorageError::Transient(clean(m)),
        StorageError::InvalidConfig(m) => StorageError::InvalidConfig(clean(m)),
        StorageError::Unsupported(m) => StorageError::Unsupported(clean(m)),
        StorageError::Other(m) => StorageError::Other(clean(m)),
        other => other,
    }
}

fn error_as_is(e: wit::Error) -> StorageError {
    match e {
        wit::Error::NotFound(m) => StorageError::NotFound(m),
        wit::Error::AlreadyExists(m) => StorageError::AlreadyExists(m),
        wit::Error::PreconditionFailed(m) => StorageError::PreconditionFailed(m),
        wit::Error::Unauthenticated(m) => StorageError::Unauthenticated(m),
        wit::Error::PermissionDenied(m) => StorageError::PermissionDenied(m),
        wit::Error::Throttled(t) => StorageError::Throttled {
            message: t.message,
            retry_after: t.retry_after_ms.map(Duration::from_millis),
        },
        wit::Error::Transient(m) => StorageError::Transient(m),
        wit::Error::InvalidConfig(m) => StorageError::InvalidConfig(m),
        wit::Error::Unsupported(m) => StorageError::Unsupported(m),
        wit::Error::Other(m) => StorageError::Other(m),
    }
}

pub fn features(f: wit::Features) -> Features {
    Features {
        create_only: f.contains(wit::Features::CREATE_ONLY),
        atomic_create_only: f.contains(wit::Features::ATOMIC_CREATE_ONLY),
        ranged_get: f.contains(wit::Features::RANGED_GET),
        multipart: f.contains(wit::Features::MULTIPART),
        batch_delete: f.contains(wit::Features::BATCH_DELETE),
        list_start_after: f.contains(wit::Features::LIST_START_AFTER),
        list_delimiter: f.contains(wit::Features::LIST_DELIMITER),
    }
}

pub fn info(i: wit::BackendInfo) -> BackendInfo {
    BackendInfo {
        backend: i.backend,
        plugin_version: i.plugin_version,
        schemes: i.schemes,
        features: features(i.features),
        limits: Limits {
            max_single_put: i.limits.max_single_put,
            min_part_size: i.limits.min_part_size,
            max_part_size: i.limits.max_part_size,
            max_parts: i.limits.max_parts,
            max_delete_batch: i.limits.max_delete_batch,
        },
        config_keys: i
            .config_keys
            .into_iter()
            .map(|k| ConfigKey {
                name: k.name,
                kind: match k.kind {
                    wit::ConfigKind::Plain => ConfigKind::Plain,
                    wit::ConfigKind::Secret => ConfigKind::Secret,
                    wit::ConfigKind::SecretFile => ConfigKind::SecretFile,
                },
                description: k.description,
            })
            .collect(),
        capabilities: Capabilities {
            network: i.capabilities.network,
            directory: i.capabilities.directory,
        },
    }
}

pub fn grants(g: wit::Grants) -> Grants {
    Grants {
        endpoints: g
            .endpoints
            .into_iter()
            .map(|e| Endpoint {
                scheme: e.scheme,
                host: e.host,
                port: e.port,
            })
            .collect(),
        directories: g
            .directories
            .into_iter()
            .map(|d| DirectoryGrant {
                path: PathBuf::from(d.path),
                writable: d.writable,
            })
            .collect(),
    }
}

pub fn meta(m: wit::ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        key: m.key,
        size: m.size,
        last_modified_ms: m.last_modified_ms,
        etag: m.etag,
    }
}

pub fn page(p: wit::ListPage) -> ListPage {
    ListPage {
        objects: p.objects.into_iter().map(meta).collect(),
        common_prefixes: p.common_prefixes,
        next_page_token: p.next_page_token,
    }
}

pub fn receipt(r: wit::PartReceipt) -> PartReceipt {
    PartReceipt {
        number: r.number,
        etag: r.etag,
        size: r.size,
    }
}

pub fn receipt_to_wit(r: &PartReceipt) -> wit::PartReceipt {
    wit::PartReceipt {
        number: r.number,
        etag: r.etag.clone(),
        size: r.size,
    }
}

pub fn range_to_wit(r: ByteRange) -> wit::ByteRange {
    wit::ByteRange {
        offset: r.offset,
        length: r.length,
    }
}

pub fn put_options_to_wit(o: &PutOptions) -> wit::PutOptions {
    wit::PutOptions {
        mode: match o.mode {
            PutMode::Overwrite => wit::PutMode::Overwrite,
            PutMode::CreateOnly => wit::PutMode::CreateOnly,
        },
        checksums: wit::Checksums {
            md5: o.checksums.md5.clone(),
            sha256: o.checksums.sha256.clone(),
            crc32c: o.checksums.crc32c,
        },
        content_type: o.content_type.clone(),
    }
}

pub fn list_options_to_wit(o: &ListOptions) -> wit::ListOptions {
    wit::ListOptions {
        prefix: o.prefix.clone(),
        delimiter: o.delimiter.clone(),
        start_after: o.start_after.clone(),
        page_token: o.page_token.clone(),
        max_keys: o.max_keys,
    }
}

//! What the fs backend is and can do, independent of any configuration.

use crate::walship::storage::types::{BackendInfo, Capabilities, Features, Limits};

/// Largest object one put takes. The host sends puts as one `list<u8>` in
/// guest memory, so this bounds the plugin's memory, not the filesystem.
pub const MAX_SINGLE_PUT: u64 = 64 << 20;
pub const MIN_PART_SIZE: u64 = 1 << 20;
pub const MAX_PART_SIZE: u64 = 256 << 20;
pub const MAX_PARTS: u32 = 10_000;
pub const MAX_DELETE_BATCH: u32 = 1000;

pub fn info() -> BackendInfo {
    BackendInfo {
        backend: "fs".to_string(),
        plugin_version: env!("CARGO_PKG_VERSION").to_string(),
        schemes: vec!["file".to_string()],
        // Not batch-delete: a delete is one unlink per key, whatever the batch.
        features: Features::CREATE_ONLY
            | Features::ATOMIC_CREATE_ONLY
            | Features::RANGED_GET
            | Features::MULTIPART
            | Features::LIST_START_AFTER
            | Features::LIST_DELIMITER,
        limits: Limits {
            max_single_put: MAX_SINGLE_PUT,
            min_part_size: MIN_PART_SIZE,
            max_part_size: MAX_PART_SIZE,
            max_parts: MAX_PARTS,
            max_delete_batch: MAX_DELETE_BATCH,
        },
        config_keys: Vec::new(),
        // No network; the one directory the prefix names.
        capabilities: Capabilities {
            network: Vec::new(),
            directory: true,
        },
    }
}

//! What the gcs backend is and can do, independent of any configuration.

use crate::walship::storage::types::{
    BackendInfo, Capabilities, ConfigKey, ConfigKind, Features, Limits,
};

/// GCS's largest object (5 TiB). One `put` never carries more than 32 MiB:
/// the host sends larger objects as parts.
pub const MAX_OBJECT: u64 = 5 << 40;
/// Parts are objects of their own, composed at the end: GCS sets no minimum.
/// 1 MiB keeps the number of components of a big object sane.
pub const MIN_PART_SIZE: u64 = 1 << 20;
/// Parts composed into one object; compose takes 32 sources per call, so
/// more than 32 parts are composed in a tree (see `multipart.rs`).
pub const MAX_PARTS: u32 = 10_000;
/// Keys per `delete` call: the JSON API deletes one object per request.
pub const MAX_DELETE_BATCH: u32 = 100;

/// Everything the plugin does, in every configuration. Create-only is
/// `ifGenerationMatch=0`, which GCS enforces atomically (see docs/gcs.md for
/// what fake-gcs-server enforces). No batch delete: one DELETE per key.
pub const FEATURES: Features = Features::CREATE_ONLY
    .union(Features::ATOMIC_CREATE_ONLY)
    .union(Features::RANGED_GET)
    .union(Features::MULTIPART)
    .union(Features::LIST_START_AFTER)
    .union(Features::LIST_DELIMITER);

/// The settings the plugin reads: the Google client libraries' names (the
/// prefix itself, `WALG_GS_PREFIX`, is the host's).
const CONFIG_KEYS: &[(&str, ConfigKind, &str)] = &[
    (
        "GOOGLE_APPLICATION_CREDENTIALS",
        ConfigKind::SecretFile,
        "Service-account JSON key file; requests carry a self-signed RS256 JWT made from it",
    ),
    (
        "STORAGE_EMULATOR_HOST",
        ConfigKind::Plain,
        "URL of a GCS emulator (http://127.0.0.1:4443): requests go there without credentials",
    ),
    (
        "WALSHIP_GS_ENDPOINT",
        ConfigKind::Plain,
        "Storage endpoint URL instead of https://storage.googleapis.com (Private Service \
         Connect, a proxy), authenticated as usual",
    ),
];

pub fn info() -> BackendInfo {
    BackendInfo {
        backend: "gcs".to_string(),
        plugin_version: env!("CARGO_PKG_VERSION").to_string(),
        schemes: vec!["gs".to_string()],
        features: FEATURES,
        limits: Limits {
            max_single_put: MAX_OBJECT,
            min_part_size: MIN_PART_SIZE,
            max_part_size: MAX_OBJECT,
            max_parts: MAX_PARTS,
            max_delete_batch: MAX_DELETE_BATCH,
        },
        config_keys: CONFIG_KEYS
            .iter()
            .map(|(name, kind, description)| ConfigKey {
                name: name.to_string(),
                kind: *kind,
                description: description.to_string(),
            })
            .collect(),
        // Google's endpoint, or the one the operator configured (emulator,
        // private endpoint). Self-signed JWTs need no token endpoint.
        capabilities: Capabilities {
            network: ["storage.googleapis.com", "configured"]
                .map(String::from)
                .to_vec(),
            directory: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_is_a_secret_file_and_nothing_else_is_secret() {
        let info = info();
        let kinds: Vec<_> = info
            .config_keys
            .iter()
            .map(|k| (k.name.as_str(), k.kind))
            .collect();
        assert!(kinds.contains(&("GOOGLE_APPLICATION_CREDENTIALS", ConfigKind::SecretFile)));
        assert_eq!(
            kinds
                .iter()
                .filter(|(_, kind)| *kind != ConfigKind::Plain)
                .count(),
            1
        );
    }

    #[test]
    fn limits_let_the_host_send_32_mib_parts() {
        let info = info();
        assert!(info.limits.min_part_size <= 32 << 20);
        assert!(info.limits.max_part_size >= 32 << 20);
        assert!(info.features.contains(Features::ATOMIC_CREATE_ONLY));
        assert!(!info.features.contains(Features::BATCH_DELETE));
    }
}

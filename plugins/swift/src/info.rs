//! What the swift backend is and can do, independent of any configuration.

use crate::walship::storage::types::{
    BackendInfo, Capabilities, ConfigKey, ConfigKind, Features, Limits,
};

/// Swift's default `max_file_size` (5 GiB + 2 bytes; `/info` tells a
/// cluster's own).
pub const MAX_SINGLE_PUT: u64 = 5 << 30;
/// Static Large Object segments: Swift 2.30's `min_segment_size` is 1 byte;
/// 1 MiB keeps manifests small. The host sends 32 MiB parts anyway.
pub const MIN_PART_SIZE: u64 = 1 << 20;
pub const MAX_PART_SIZE: u64 = 5 << 30;
/// SLO's default `max_manifest_segments`.
pub const MAX_PARTS: u32 = 1000;
/// Keys per `delete` call (one bulk-delete request; Swift's default limit is
/// 10,000 per request).
pub const MAX_DELETE_BATCH: u32 = 1000;

/// Not `ATOMIC_CREATE_ONLY`: Swift checks `If-None-Match: *` when a PUT
/// starts, against the object as it is then, so two creates racing each
/// other can both succeed (the later one wins). The host therefore looks
/// before writing and reads back after.
pub const FEATURES: Features = Features::CREATE_ONLY
    .union(Features::RANGED_GET)
    .union(Features::MULTIPART)
    .union(Features::BATCH_DELETE)
    .union(Features::LIST_START_AFTER)
    .union(Features::LIST_DELIMITER);

/// The settings the plugin reads: python-swiftclient's and WAL-G's names, so
/// an existing environment works unchanged.
const CONFIG_KEYS: &[(&str, ConfigKind, &str)] = &[
    (
        "ST_AUTH",
        ConfigKind::Plain,
        "v1 auth URL (tempauth, swauth, RGW), e.g. https://swift.example/auth/v1.0",
    ),
    ("ST_USER", ConfigKind::Plain, "v1 user, e.g. account:user"),
    ("ST_KEY", ConfigKind::Secret, "v1 key (password) of ST_USER"),
    (
        "OS_AUTH_URL",
        ConfigKind::Plain,
        "Keystone v3 URL, e.g. https://keystone.example:5000/v3",
    ),
    ("OS_USERNAME", ConfigKind::Plain, "Keystone user name"),
    ("OS_PASSWORD", ConfigKind::Secret, "Keystone password"),
    (
        "OS_PROJECT_NAME",
        ConfigKind::Plain,
        "Keystone project (tenant) the token is scoped to",
    ),
    (
        "OS_TENANT_NAME",
        ConfigKind::Plain,
        "the project's name under its v2-era name (KubeDB), as python-swiftclient takes it",
    ),
    (
        "OS_PROJECT_ID",
        ConfigKind::Plain,
        "Keystone project id the token is scoped to (instead of a name and domain)",
    ),
    (
        "OS_TENANT_ID",
        ConfigKind::Plain,
        "the project's id under its v2-era name (KubeDB)",
    ),
    (
        "OS_IDENTITY_API_VERSION",
        ConfigKind::Plain,
        "3 (v2 is refused: current Keystone no longer serves it)",
    ),
    (
        "OS_AUTH_VERSION",
        ConfigKind::Plain,
        "3 (v2 is refused: current Keystone no longer serves it)",
    ),
    (
        "OS_USER_DOMAIN_NAME",
        ConfigKind::Plain,
        "Domain of OS_USERNAME (default: Default)",
    ),
    (
        "OS_PROJECT_DOMAIN_NAME",
        ConfigKind::Plain,
        "Domain of OS_PROJECT_NAME (default: Default)",
    ),
    (
        "OS_REGION_NAME",
        ConfigKind::Plain,
        "Region of the object-store endpoint in Keystone's catalog (needed when it has several)",
    ),
    (
        "OS_INTERFACE",
        ConfigKind::Plain,
        "Catalog interface of the object-store endpoint: public (default), internal or admin",
    ),
    (
        "OS_STORAGE_URL",
        ConfigKind::Plain,
        "Storage URL (https://swift.example/v1/AUTH_project): with OS_AUTH_TOKEN a pre-issued \
         session; with v1 or Keystone credentials it replaces the URL the auth reply names",
    ),
    (
        "OS_AUTH_TOKEN",
        ConfigKind::Secret,
        "Pre-issued token for OS_STORAGE_URL (used until refused; then the credentials, if any)",
    ),
];

pub fn info() -> BackendInfo {
    BackendInfo {
        backend: "swift".to_string(),
        plugin_version: env!("CARGO_PKG_VERSION").to_string(),
        schemes: vec!["swift".to_string()],
        features: FEATURES,
        limits: Limits {
            max_single_put: MAX_SINGLE_PUT,
            min_part_size: MIN_PART_SIZE,
            max_part_size: MAX_PART_SIZE,
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
        // Swift has no fixed host names: the auth URL and storage URL the
        // operator configured. A storage URL from an auth reply (v1's
        // X-Storage-Url, Keystone's catalog) is requested at run time and
        // must lie on one of those hosts too; see docs/swift.md.
        capabilities: Capabilities {
            network: vec!["configured".to_string()],
            directory: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_declared_as_secrets() {
        let info = info();
        let kind = |name: &str| {
            info.config_keys
                .iter()
                .find(|k| k.name == name)
                .map(|k| k.kind)
                .unwrap_or_else(|| panic!("{name} not declared"))
        };
        assert_eq!(kind("ST_KEY"), ConfigKind::Secret);
        assert_eq!(kind("OS_PASSWORD"), ConfigKind::Secret);
        assert_eq!(kind("OS_AUTH_TOKEN"), ConfigKind::Secret);
        assert_eq!(kind("ST_USER"), ConfigKind::Plain);
        let secrets = info
            .config_keys
            .iter()
            .filter(|k| k.kind != ConfigKind::Plain)
            .count();
        assert_eq!(secrets, 3);
    }

    #[test]
    fn create_only_is_not_claimed_atomic() {
        assert!(FEATURES.contains(Features::CREATE_ONLY));
        assert!(!FEATURES.contains(Features::ATOMIC_CREATE_ONLY));
    }
}

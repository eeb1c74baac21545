//! What the s3 backend is and can do, independent of any configuration.

use crate::walship::storage::types::{
    BackendInfo, Capabilities, ConfigKey, ConfigKind, Features, Limits,
};

/// S3's own limits (<https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html>).
pub const MAX_SINGLE_PUT: u64 = 5 << 30;
pub const MIN_PART_SIZE: u64 = 5 << 20;
pub const MAX_PART_SIZE: u64 = 5 << 30;
pub const MAX_PARTS: u32 = 10_000;
/// Keys per DeleteObjects request.
pub const MAX_DELETE_BATCH: u32 = 1000;

/// Everything S3 can do. A configuration may take `ATOMIC_CREATE_ONLY` away
/// (see `Settings::if_none_match`).
pub const FEATURES: Features = Features::CREATE_ONLY
    .union(Features::ATOMIC_CREATE_ONLY)
    .union(Features::RANGED_GET)
    .union(Features::MULTIPART)
    .union(Features::BATCH_DELETE)
    .union(Features::LIST_START_AFTER)
    .union(Features::LIST_DELIMITER);

/// The settings the plugin reads: WAL-G's and the AWS SDKs' names, so an
/// existing WAL-G environment works unchanged.
const CONFIG_KEYS: &[(&str, ConfigKind, &str)] = &[
    (
        "AWS_REGION",
        ConfigKind::Plain,
        "Region of the bucket (default us-east-1)",
    ),
    (
        "AWS_DEFAULT_REGION",
        ConfigKind::Plain,
        "Region, when AWS_REGION is not set",
    ),
    (
        "AWS_ENDPOINT",
        ConfigKind::Plain,
        "WAL-G's S3 endpoint URL, for S3-compatible stores (S3 only, not STS)",
    ),
    (
        "AWS_ENDPOINT_URL",
        ConfigKind::Plain,
        "Endpoint URL for S3 and STS (the AWS SDKs' setting)",
    ),
    (
        "AWS_ENDPOINT_URL_S3",
        ConfigKind::Plain,
        "Endpoint URL for S3; wins over AWS_ENDPOINT and AWS_ENDPOINT_URL",
    ),
    (
        "AWS_ENDPOINT_URL_STS",
        ConfigKind::Plain,
        "Endpoint URL for STS (web identity); wins over AWS_ENDPOINT_URL",
    ),
    (
        "AWS_S3_FORCE_PATH_STYLE",
        ConfigKind::Plain,
        "true: address the bucket in the path (https://host/bucket/key), not the host name",
    ),
    (
        "AWS_ACCESS_KEY_ID",
        ConfigKind::Plain,
        "Access key id (with AWS_SECRET_ACCESS_KEY)",
    ),
    (
        "AWS_SECRET_ACCESS_KEY",
        ConfigKind::Secret,
        "Secret access key",
    ),
    (
        "AWS_SESSION_TOKEN",
        ConfigKind::Secret,
        "Session token of temporary credentials",
    ),
    (
        "AWS_ROLE_ARN",
        ConfigKind::Plain,
        "Role to assume with a web identity token (with AWS_WEB_IDENTITY_TOKEN_FILE)",
    ),
    (
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        ConfigKind::SecretFile,
        "File holding a web identity token (EKS, GitHub OIDC), exchanged at STS for credentials",
    ),
    (
        "AWS_ROLE_SESSION_NAME",
        ConfigKind::Plain,
        "Session name for the assumed role (default walship)",
    ),
    (
        "WALG_S3_STORAGE_CLASS",
        ConfigKind::Plain,
        "Storage class of new objects, e.g. STANDARD_IA (default: the bucket's)",
    ),
    (
        "WALG_S3_SSE",
        ConfigKind::Plain,
        "Server-side encryption: AES256 (SSE-S3) or aws:kms (SSE-KMS)",
    ),
    (
        "WALG_S3_SSE_KMS_ID",
        ConfigKind::Plain,
        "KMS key for WALG_S3_SSE=aws:kms (default: the account's aws/s3 key)",
    ),
    (
        "WALSHIP_S3_IF_NONE_MATCH",
        ConfigKind::Plain,
        "enforced or unverified: whether the store rejects a create-only put of an existing key \
         (default: enforced for AWS, unverified for custom endpoints)",
    ),
];

pub fn info() -> BackendInfo {
    BackendInfo {
        backend: "s3".to_string(),
        plugin_version: env!("CARGO_PKG_VERSION").to_string(),
        schemes: vec!["s3".to_string()],
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
        // AWS itself (S3 and STS, also in China's partition), or whatever
        // endpoint the operator configured for an S3-compatible store.
        capabilities: Capabilities {
            network: ["*.amazonaws.com", "*.amazonaws.com.cn", "configured"]
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
    fn secrets_are_declared_as_secrets() {
        let info = info();
        let kind = |name: &str| {
            info.config_keys
                .iter()
                .find(|k| k.name == name)
                .map(|k| k.kind)
                .unwrap_or_else(|| panic!("{name} not declared"))
        };
        assert_eq!(kind("AWS_SECRET_ACCESS_KEY"), ConfigKind::Secret);
        assert_eq!(kind("AWS_SESSION_TOKEN"), ConfigKind::Secret);
        assert_eq!(kind("AWS_WEB_IDENTITY_TOKEN_FILE"), ConfigKind::SecretFile);
        assert_eq!(kind("AWS_ACCESS_KEY_ID"), ConfigKind::Plain);
        let secret_names = info
            .config_keys
            .iter()
            .filter(|k| k.kind != ConfigKind::Plain)
            .count();
        assert_eq!(secret_names, 3);
    }
}

//! What the azure backend is and can do, independent of any configuration.

use crate::config;
use crate::walship::storage::types::{
    BackendInfo, Capabilities, ConfigKey, ConfigKind, Features, Limits,
};

/// Azure's block blob limits (service version 2019-12-12 and later,
/// <https://learn.microsoft.com/rest/api/storageservices/put-block>).
pub const MAX_SINGLE_PUT: u64 = 5000 << 20;
/// Azure has no minimum block size.
pub const MIN_PART_SIZE: u64 = 1;
pub const MAX_PART_SIZE: u64 = 4000 << 20;
pub const MAX_PARTS: u32 = 50_000;
/// Keys per `delete` call: one Delete Blob each, so bounded to stay well
/// inside a call's time limit.
pub const MAX_DELETE_BATCH: u32 = 256;

/// `If-None-Match: *` is enforced by Azure on Put Blob and Put Block List.
/// No batch delete (one request per key) and no start-after (Azure's
/// `startFrom` is recent and Azurite ignores it; the host skips keys itself).
pub const FEATURES: Features = Features::CREATE_ONLY
    .union(Features::ATOMIC_CREATE_ONLY)
    .union(Features::RANGED_GET)
    .union(Features::MULTIPART)
    .union(Features::LIST_DELIMITER);

/// WAL-G's names, then the Azure CLI's, so existing environments work.
const CONFIG_KEYS: &[(&str, ConfigKind, &str)] = &[
    (
        config::ACCOUNT,
        ConfigKind::Plain,
        "Storage account name; the endpoint is https://<account>.blob.core.windows.net",
    ),
    (
        config::ACCESS_KEY,
        ConfigKind::Secret,
        "Account key (shared key auth), WAL-G's name",
    ),
    (
        config::KEY,
        ConfigKind::Secret,
        "Account key, the Azure CLI's name (AZURE_STORAGE_ACCESS_KEY wins)",
    ),
    (
        config::SAS_TOKEN,
        ConfigKind::Secret,
        "SAS token (sv=...&sp=...&sig=...), used when no account key is set",
    ),
    (
        config::CONNECTION_STRING,
        ConfigKind::Secret,
        "Connection string: AccountName, AccountKey or SharedAccessSignature, BlobEndpoint, \
         DefaultEndpointsProtocol, EndpointSuffix (a custom BlobEndpoint must also be set in \
         AZURE_STORAGE_SERVICE_ENDPOINT)",
    ),
    (
        config::SERVICE_ENDPOINT,
        ConfigKind::Plain,
        "Blob service URL for private endpoints or emulators, e.g. \
         http://127.0.0.1:10000/devstoreaccount1",
    ),
    (
        config::ENDPOINT_SUFFIX,
        ConfigKind::Plain,
        "DNS suffix of the endpoint (default core.windows.net)",
    ),
    (
        config::ENVIRONMENT_NAME,
        ConfigKind::Plain,
        "AzurePublicCloud (default), AzureUSGovernmentCloud, AzureChinaCloud or AzureGermanCloud",
    ),
];

pub fn info() -> BackendInfo {
    BackendInfo {
        backend: "azure".to_string(),
        plugin_version: env!("CARGO_PKG_VERSION").to_string(),
        schemes: vec!["azure".to_string()],
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
        // Azure's public and sovereign clouds, or the endpoint the operator
        // named in a plain setting (AZURE_STORAGE_SERVICE_ENDPOINT).
        capabilities: Capabilities {
            network: [
                "*.blob.core.windows.net",
                "*.blob.core.usgovcloudapi.net",
                "*.blob.core.chinacloudapi.cn",
                "*.blob.core.cloudapi.de",
                "configured",
            ]
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
        for secret in [
            config::ACCESS_KEY,
            config::KEY,
            config::SAS_TOKEN,
            config::CONNECTION_STRING,
        ] {
            assert_eq!(kind(secret), ConfigKind::Secret, "{secret}");
        }
        for plain in [
            config::ACCOUNT,
            config::SERVICE_ENDPOINT,
            config::ENDPOINT_SUFFIX,
            config::ENVIRONMENT_NAME,
        ] {
            assert_eq!(kind(plain), ConfigKind::Plain, "{plain}");
        }
    }
}

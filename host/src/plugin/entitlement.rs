//! Which of the operator's settings a plugin receives.
//!
//! A plugin names the settings it wants (`info.config-keys`), and the host
//! hands over the values it finds under those names. Without a bound, a
//! third-party `foo://` plugin could simply declare `AWS_SECRET_ACCESS_KEY`,
//! `PGPASSWORD` or `WALSHIP_CONFIG` (as a secret file: the whole settings
//! file) and receive them. So a plugin that is not bundled with walship never
//! receives, unless the operator allows the name in `WALSHIP_PLUGIN_SETTINGS`:
//! - walship's and WAL-G's own settings (`WALSHIP_*`, `WALG_*`, `WALE_*`:
//!   encryption keys among them), PostgreSQL's (`PG*`), and the process's
//!   (`HOME`, `PATH`, `USER`, `LD_*`, ...);
//! - the names of a bundled backend (`AWS_*` belong to s3, `AZURE_*` to
//!   azure, ...): a plugin declaring them is after another backend's
//!   credentials;
//! - any secret file: the host would read a file of the plugin's choosing.
//!
//! Bundled plugins ship with walship and are as trusted as it is: they get
//! what they declare, with one exception: key material (the encryption key
//! settings, and the files that hold keys) goes to no plugin at all, not
//! even one the operator allows it to: encryption exists so that storage
//! and plugins never hold a key (settings/keys.rs).

use crate::storage::{BackendInfo, ConfigKey, ConfigKind};

/// How the plugin was found: decides whether it is trusted with settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Provenance {
    /// Beside the binary, shipped with walship.
    Bundled,
    /// Installed by the operator, or named by `WALSHIP_PLUGIN`.
    #[default]
    ThirdParty,
}

/// Why a declared setting is not handed over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("it holds or names an encryption key, which no plugin ever receives")]
    EncryptionKey,
    #[error("it is one of walship's or WAL-G's own settings")]
    Walship,
    #[error("it is a PostgreSQL setting")]
    Postgres,
    #[error("it describes the walship process, not a store")]
    Process,
    #[error("it belongs to the bundled {0} backend")]
    OwnedBy(&'static str),
    #[error("a plugin names a file for walship to read only if the operator lists it")]
    SecretFile,
}

/// Bundled backends' setting names, by prefix (or exact name).
const BUNDLED_NAMES: &[(&str, &str)] = &[
    ("AWS_", "s3"),
    ("AZURE_", "azure"),
    ("GOOGLE_", "gcs"),
    ("GCLOUD_", "gcs"),
    ("STORAGE_EMULATOR_HOST", "gcs"),
    ("OS_", "swift"),
    ("ST_", "swift"),
    ("SWIFT_", "swift"),
];

/// Process-wide names no store needs.
const PROCESS_NAMES: &[&str] = &[
    "HOME", "PATH", "USER", "LOGNAME", "SHELL", "PWD", "TMPDIR", "MAIL",
];

/// Why `key` is not handed to a plugin of `provenance`, or `None` if it is.
/// `allowed` are the names the operator allows by name.
pub fn refusal(provenance: Provenance, key: &ConfigKey, allowed: &[String]) -> Option<Refusal> {
    if crate::settings::keys::is_key_setting(&key.name) {
        return Some(Refusal::EncryptionKey);
    }
    if provenance == Provenance::Bundled || allowed.contains(&key.name) {
        return None;
    }
    let name = key.name.as_str();
    if ["WALSHIP_", "WALG_", "WALE_"]
        .iter()
        .any(|p| name.starts_with(p))
    {
        return Some(Refusal::Walship);
    }
    if name.starts_with("PG") {
        return Some(Refusal::Postgres);
    }
    if PROCESS_NAMES.contains(&name) || name.starts_with("LD_") || name.starts_with("XDG_") {
        return Some(Refusal::Process);
    }
    if let Some((_, backend)) = BUNDLED_NAMES
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
    {
        return Some(Refusal::OwnedBy(backend));
    }
    if key.kind == ConfigKind::SecretFile {
        return Some(Refusal::SecretFile);
    }
    None
}

/// `info` with only the settings the plugin may receive, and the refused
/// ones with the reason.
pub fn entitled(
    info: &BackendInfo,
    provenance: Provenance,
    allowed: &[String],
) -> (BackendInfo, Vec<(String, Refusal)>) {
    let mut kept = info.clone();
    let mut refused = Vec::new();
    kept.config_keys
        .retain(|key| match refusal(provenance, key, allowed) {
            None => true,
            Some(why) => {
                refused.push((key.name.clone(), why));
                false
            }
        });
    (kept, refused)
}

/// A plugin's declared settings as an install record keeps them: `NAME`,
/// `NAME (secret)` or `NAME (secret-file)`, in the plugin's order.
pub fn describe_declared(keys: &[ConfigKey]) -> Vec<String> {
    keys.iter()
        .map(|k| match k.kind {
            ConfigKind::Plain => k.name.clone(),
            ConfigKind::Secret => format!("{} (secret)", k.name),
            ConfigKind::SecretFile => format!("{} (secret-file)", k.name),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, kind: ConfigKind) -> ConfigKey {
        ConfigKey {
            name: name.into(),
            kind,
            description: String::new(),
        }
    }

    #[test]
    fn a_third_party_plugin_gets_only_names_of_its_own() {
        let third = Provenance::ThirdParty;
        let none: &[String] = &[];
        for (name, kind, why) in [
            ("WALSHIP_CONFIG", ConfigKind::SecretFile, Refusal::Walship),
            (
                "WALG_LIBSODIUM_KEY",
                ConfigKind::Secret,
                Refusal::EncryptionKey,
            ),
            ("PGPASSWORD", ConfigKind::Secret, Refusal::Postgres),
            ("HOME", ConfigKind::Plain, Refusal::Process),
            ("LD_PRELOAD", ConfigKind::Plain, Refusal::Process),
            (
                "AWS_SECRET_ACCESS_KEY",
                ConfigKind::Secret,
                Refusal::OwnedBy("s3"),
            ),
            (
                "GOOGLE_APPLICATION_CREDENTIALS",
                ConfigKind::SecretFile,
                Refusal::OwnedBy("gcs"),
            ),
            ("OS_PASSWORD", ConfigKind::Secret, Refusal::OwnedBy("swift")),
            (
                "FOO_TOKEN_FILE",
                ConfigKind::SecretFile,
                Refusal::SecretFile,
            ),
        ] {
            assert_eq!(refusal(third, &key(name, kind), none), Some(why), "{name}");
        }
        for (name, kind) in [
            ("FOO_ENDPOINT", ConfigKind::Plain),
            ("FOO_API_KEY", ConfigKind::Secret),
        ] {
            assert_eq!(refusal(third, &key(name, kind), none), None, "{name}");
        }
    }

    #[test]
    fn the_operator_allows_by_name_and_bundled_plugins_get_what_they_declare() {
        let allowed = vec!["AWS_SECRET_ACCESS_KEY".to_string(), "FOO_FILE".to_string()];
        let third = Provenance::ThirdParty;
        assert_eq!(
            refusal(
                third,
                &key("AWS_SECRET_ACCESS_KEY", ConfigKind::Secret),
                &allowed
            ),
            None
        );
        assert_eq!(
            refusal(third, &key("FOO_FILE", ConfigKind::SecretFile), &allowed),
            None
        );
        // Allowing one name allows no other.
        assert!(
            refusal(
                third,
                &key("AWS_SESSION_TOKEN", ConfigKind::Secret),
                &allowed
            )
            .is_some()
        );
        for name in ["AWS_WEB_IDENTITY_TOKEN_FILE", "WALSHIP_S3_IF_NONE_MATCH"] {
            assert_eq!(
                refusal(Provenance::Bundled, &key(name, ConfigKind::SecretFile), &[]),
                None
            );
        }
    }

    /// Issue 18: the encryption key never reaches a plugin: not a bundled
    /// one, not one the operator allows the name to, in no form (the key,
    /// its file as a secret file, older key files).
    #[test]
    fn no_plugin_ever_receives_an_encryption_key() {
        for name in [
            "WALG_LIBSODIUM_KEY",
            "WALSHIP_ENCRYPTION_KEY",
            "WALG_LIBSODIUM_KEY_PATH",
            "WALSHIP_ENCRYPTION_KEY_PATH",
            "WALSHIP_DECRYPTION_KEY_PATHS",
            "WALG_PGP_KEY",
        ] {
            let allowed = vec![name.to_string()];
            for provenance in [Provenance::Bundled, Provenance::ThirdParty] {
                for kind in [
                    ConfigKind::Plain,
                    ConfigKind::Secret,
                    ConfigKind::SecretFile,
                ] {
                    assert_eq!(
                        refusal(provenance, &key(name, kind), &allowed),
                        Some(Refusal::EncryptionKey),
                        "{name} {provenance:?} {kind:?}"
                    );
                }
            }
        }
    }
}

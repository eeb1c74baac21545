//! The encryption key settings: WAL-G's libsodium names, walship's beside
//! them, and the older keys kept for rotation. Resolved once into
//! [`Keys`]; the key's text is then scrubbed from everything else the
//! settings hold, so no `Debug` output, message or plugin ever gets it.

use std::path::{Path, PathBuf};

use super::SettingsError;
use super::sources::{Found, Source, Sources};
use crate::crypto::{self, KeyTransform, Keys};

/// The key itself, as text (walship's name first).
pub const KEY: &[&str] = &["WALSHIP_ENCRYPTION_KEY", "WALG_LIBSODIUM_KEY"];
/// A file holding the key.
pub const KEY_PATH: &[&str] = &["WALSHIP_ENCRYPTION_KEY_PATH", "WALG_LIBSODIUM_KEY_PATH"];
/// How the key's text becomes 32 bytes (WAL-G's default: `none`).
pub const KEY_TRANSFORM: &[&str] = &[
    "WALSHIP_ENCRYPTION_KEY_TRANSFORM",
    "WALG_LIBSODIUM_KEY_TRANSFORM",
];
/// Files of older keys, comma-separated: they decrypt, never encrypt.
pub const OLDER_KEY_PATHS: &str = "WALSHIP_DECRYPTION_KEY_PATHS";

/// What a scrubbed key's value reads as afterwards.
pub const REDACTED: &str = "(not shown)";

/// Every setting that names or holds key material, walship's and WAL-G's
/// (the OpenPGP ones are refused, but are no plugin's business either). No
/// plugin receives any of them, whatever it declares and whatever the
/// operator allows (plugin/entitlement.rs).
pub fn is_key_setting(name: &str) -> bool {
    KEY.contains(&name)
        || KEY_PATH.contains(&name)
        || KEY_TRANSFORM.contains(&name)
        || name == OLDER_KEY_PATHS
        || name.starts_with("WALG_PGP_KEY")
        || name.starts_with("WALG_ENVELOPE_PGP_KEY")
        || name.ends_with("GPG_KEY_ID")
}

/// The keys the settings name, or none. Errors name the setting, never
/// the key's text.
pub fn resolve(sources: &Sources) -> Result<Keys, SettingsError> {
    let key = sources.get(KEY);
    let path = sources.get(KEY_PATH);
    let older = sources.get(&[OLDER_KEY_PATHS]);
    let transform = match sources.get(KEY_TRANSFORM) {
        None => KeyTransform::None,
        Some(f) => KeyTransform::parse(&f.value).ok_or_else(|| SettingsError::Invalid {
            setting: f.origin.assignment(&f.value),
            expected: "base64, hex or none".into(),
        })?,
    };
    let named = |f: &Found| f.origin.to_string();
    let current = match (&key, &path) {
        (None, None) => {
            if let Some(o) = older {
                return Err(SettingsError::Invalid {
                    setting: named(&o),
                    expected: "older keys need a current key too: set WALG_LIBSODIUM_KEY or WALG_LIBSODIUM_KEY_PATH".into(),
                });
            }
            return Ok(Keys::none());
        }
        (Some(k), Some(p)) => {
            return Err(SettingsError::Invalid {
                setting: format!("{} beside {}", named(k), named(p)),
                expected: "set the key or its file, not both".into(),
            });
        }
        (Some(k), None) => {
            if let Source::File(file) = &k.origin.source {
                check_private(file).map_err(|expected| SettingsError::Invalid {
                    setting: named(k),
                    expected,
                })?;
            }
            crypto::key::key_from_text(&k.value, transform).map_err(|e| SettingsError::Invalid {
                setting: named(k),
                expected: e.to_string(),
            })?
        }
        (None, Some(p)) => crypto::key::key_from_file(Path::new(p.value.trim()), transform)
            .map_err(|e| SettingsError::Invalid {
                setting: named(p),
                expected: e.to_string(),
            })?,
    };
    let mut older_keys = Vec::new();
    if let Some(o) = &older {
        for file in o.value.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            let key = crypto::key::key_from_file(&PathBuf::from(file), transform).map_err(|e| {
                SettingsError::Invalid {
                    setting: named(o),
                    expected: e.to_string(),
                }
            })?;
            older_keys.push(key);
        }
    }
    Ok(Keys::new(current, older_keys))
}

/// A settings file that holds a key is a key file: private to its owner.
fn check_private(file: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let mode = std::fs::metadata(file)
        .map_err(|e| format!("cannot check {}: {e}", file.display()))?
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} holds a key and can be read by its group or by others (mode {:04o}): \
             make it private (chmod 600), or give the key in a private file with WALG_LIBSODIUM_KEY_PATH",
            file.display(),
            mode & 0o7777
        ));
    }
    Ok(())
}

/// Removes the key's text from the settings' copies of the sources, now
/// that it has become [`Keys`].
pub fn scrub(sources: &mut Sources) {
    for name in KEY {
        sources.redact(name, REDACTED);
    }
}

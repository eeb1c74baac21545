//! Settings files: walship's TOML file, and WAL-G's JSON file
//! (`~/.walg.json`, or `--config x.json`) read with WAL-G's meaning.
//!
//! Both become one [`Layer`] keyed by setting name, so precedence and
//! refusals work the same whatever the file's format. The TOML file's
//! lower-case keys are walship's own (`prefix`, `compression`, ...) and stand
//! for the `WALSHIP_*` names; upper-case keys act as environment variables,
//! as in WAL-G's file.

use std::path::{Path, PathBuf};

use super::SettingsError;
use super::sources::{Layer, Source};

/// The TOML file's own keys and the setting each stands for.
pub const TOML_KEYS: &[(&str, &str)] = &[
    ("prefix", "WALSHIP_PREFIX"),
    ("plugin", "WALSHIP_PLUGIN"),
    ("plugin_dir", "WALSHIP_PLUGIN_DIR"),
    ("cache_dir", "WALSHIP_CACHE_DIR"),
    ("compression", "WALSHIP_COMPRESSION"),
    ("log_level", "WALSHIP_LOG_LEVEL"),
    ("timeout_seconds", "WALSHIP_TIMEOUT"),
    ("plugin_memory_mib", "WALSHIP_PLUGIN_MEMORY_MIB"),
    ("plugin_call_timeout_seconds", "WALSHIP_PLUGIN_CALL_TIMEOUT"),
    ("allowed_hosts", "WALSHIP_ALLOW_HOSTS"),
    ("allowed_directories", "WALSHIP_ALLOW_DIRECTORIES"),
    ("ca_file", "WALSHIP_CA_FILE"),
    ("volume_size", "WALSHIP_VOLUME_SIZE"),
    ("prefetch_dir", "WALSHIP_PREFETCH_DIR"),
    ("encryption_key_path", "WALSHIP_ENCRYPTION_KEY_PATH"),
    (
        "encryption_key_transform",
        "WALSHIP_ENCRYPTION_KEY_TRANSFORM",
    ),
    ("decryption_key_paths", "WALSHIP_DECRYPTION_KEY_PATHS"),
];

/// WAL-G's default settings file, read when no file is named.
pub const WALG_DEFAULT_FILE: &str = ".walg.json";

/// How a file is read: by its name, as WAL-G (viper) picks a format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    WalgJson,
}

impl Format {
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("json") => Format::WalgJson,
            _ => Format::Toml,
        }
    }
}

/// The file to read: the one named (`--config`, `WALSHIP_CONFIG`), else
/// WAL-G's `~/.walg.json` when it exists. A home directory we may not even
/// look into (PostgreSQL started with root's HOME) has no file for us.
pub fn default_file(home: Option<&str>) -> Option<PathBuf> {
    let path = Path::new(home?).join(WALG_DEFAULT_FILE);
    match std::fs::metadata(&path) {
        Ok(_) => Some(path),
        Err(_) => None,
    }
}

pub fn read(path: &Path) -> Result<Layer, SettingsError> {
    let err = |why: String| SettingsError::File {
        path: path.display().to_string(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let mut layer = Layer::new(Source::File(path.to_path_buf()));
    match Format::of(path) {
        Format::Toml => read_toml(&text, &mut layer).map_err(err)?,
        Format::WalgJson => read_json(&text, &mut layer).map_err(err)?,
    }
    Ok(layer)
}

fn read_toml(text: &str, layer: &mut Layer) -> Result<(), String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let hint = if text.trim_start().starts_with('{') {
            " (this looks like JSON: name the file *.json to have it read as WAL-G's settings file)"
        } else {
            ""
        };
        format!(
            "not valid TOML, which a file not ending in .json must be{hint}: {}",
            e.message().trim()
        )
    })?;
    for (key, value) in table {
        let value = scalar_or_list(&key, value)?;
        if key.chars().any(|c| c.is_ascii_uppercase()) {
            layer.insert(&key, &key, value);
            continue;
        }
        let (_, name) = TOML_KEYS
            .iter()
            .find(|(k, _)| *k == key)
            .ok_or_else(|| {
                format!(
                    "unknown key `{key}` (walship's keys: {}; upper-case keys are settings such as WALG_S3_PREFIX)",
                    TOML_KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
                )
            })?;
        layer.insert(name, &key, value);
    }
    Ok(())
}

fn scalar_or_list(key: &str, value: toml::Value) -> Result<String, String> {
    Ok(match value {
        toml::Value::String(s) => s,
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                toml::Value::String(s) => Ok(s),
                other => Err(format!("{key} must list strings, not {}", other.type_str())),
            })
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
        other => {
            return Err(format!(
                "{key} must be a string, number, boolean or list of strings, not {}",
                other.type_str()
            ));
        }
    })
}

/// WAL-G's file: one object whose keys are setting names. viper matches
/// names without regard to case, so keys are taken upper-cased.
fn read_json(text: &str, layer: &mut Layer) -> Result<(), String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        let hint = if text.contains(" = ") && !text.trim_start().starts_with('{') {
            " (this looks like TOML: a file ending in .json is read as WAL-G's JSON settings file)"
        } else {
            ""
        };
        format!("not valid JSON, which a file ending in .json must be (WAL-G's format){hint}: {e}")
    })?;
    let serde_json::Value::Object(map) = value else {
        return Err("WAL-G's settings file must be one JSON object of NAME: value".into());
    };
    for (key, value) in map {
        let text = match value {
            serde_json::Value::String(s) => s,
            serde_json::Value::Null => String::new(),
            // Numbers, booleans, and the structured settings WAL-G has
            // (WALG_FAILOVER_STORAGES) keep their JSON text.
            other => other.to_string(),
        };
        layer.insert(&key.to_ascii_uppercase(), &key, text);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("walship-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn toml_keys_become_setting_names() {
        let p = temp(
            "a.toml",
            "prefix = \"file:///x\"\nallowed_hosts = [\"a\", \"b\"]\nAWS_REGION = \"r\"\ntimeout_seconds = 5\n",
        );
        let layer = read(&p).unwrap();
        let prefix = layer.get("WALSHIP_PREFIX").unwrap();
        assert_eq!(prefix.value, "file:///x");
        assert_eq!(prefix.origin.key, "prefix");
        assert_eq!(layer.get("WALSHIP_ALLOW_HOSTS").unwrap().value, "a,b");
        assert_eq!(layer.get("AWS_REGION").unwrap().value, "r");
        assert_eq!(layer.get("WALSHIP_TIMEOUT").unwrap().value, "5");
    }

    #[test]
    fn walg_json_is_read_with_walg_meaning() {
        let p = temp(
            "walg.json",
            r#"{"WALG_FILE_PREFIX": "/a", "walg_upload_concurrency": 3, "WALG_VERIFY_PAGE_CHECKSUMS": true}"#,
        );
        let layer = read(&p).unwrap();
        assert_eq!(layer.get("WALG_FILE_PREFIX").unwrap().value, "/a");
        assert_eq!(layer.get("WALG_UPLOAD_CONCURRENCY").unwrap().value, "3");
        assert_eq!(
            layer.get("WALG_VERIFY_PAGE_CHECKSUMS").unwrap().value,
            "true"
        );
    }

    #[test]
    fn a_parse_error_says_which_format_was_expected() {
        let json_named_toml = temp("b.toml", r#"{"WALG_FILE_PREFIX": "/a"}"#);
        let e = read(&json_named_toml).unwrap_err().to_string();
        assert!(
            e.contains("not valid TOML") && e.contains("looks like JSON"),
            "{e}"
        );
        let toml_named_json = temp("c.json", "prefix = \"file:///a\"\n");
        let e = read(&toml_named_json).unwrap_err().to_string();
        assert!(
            e.contains("not valid JSON") && e.contains("looks like TOML"),
            "{e}"
        );
        let typo = temp("d.toml", "prefixx = \"file:///a\"\n");
        let e = read(&typo).unwrap_err().to_string();
        assert!(e.contains("unknown key `prefixx`"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}

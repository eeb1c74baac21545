//! Resolves flags, environment and the TOML file into one `Settings` value,
//! once. Nothing below this module reads the environment or a config file.
//!
//! Precedence: command-line flags, then environment variables, then the TOML
//! file (`--config` / `WALSHIP_CONFIG`). WAL-G's variable names are accepted
//! so existing setups work unchanged; WAL-G settings walship does not
//! implement are refused rather than ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::GlobalArgs;
use crate::logging::LogLevelFilter;
use crate::object_format::Compression;
use crate::plugin::SandboxPolicy;

/// Everything walship runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The archive's location as a URL (`file:///path`, `s3://bucket/path`, ...).
    pub prefix: Option<String>,
    pub plugin_file: Option<PathBuf>,
    /// Where plugins are looked up, in order: the operator's plugin
    /// directory (`--plugin-dir` / `WALSHIP_PLUGIN_DIR`) if set, else the
    /// per-user one (`~/.local/share/walship/plugins`); then the plugins
    /// bundled beside the binary. `plugin install` writes to the first.
    pub plugin_dirs: Vec<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub compression: Compression,
    pub log_level: LogLevelFilter,
    /// Bounds every command (PostgreSQL would otherwise wait forever).
    pub deadline: Duration,
    pub plugin_memory_bytes: usize,
    pub plugin_call_timeout: Duration,
    pub policy: SandboxPolicy,
    /// Extra CA certificates (PEM) trusted for plugins' https endpoints.
    pub ca_file: Option<PathBuf>,
    /// Settings a plugin may declare, by name (environment over TOML). The
    /// plugin runtime hands over only the names a plugin declares.
    pub plugin_settings: BTreeMap<String, String>,
    /// Print where each command spent its time (`WALSHIP_TIMINGS=1`).
    pub timings: bool,
    /// WAL files one `wal-push` uploads at once: the one PostgreSQL asked
    /// for plus up to this many minus one it has marked ready.
    pub upload_concurrency: usize,
    /// Segments `wal-fetch` has downloaded ahead of recovery (0: off).
    pub download_concurrency: usize,
    /// The settings file, if any: handed on to processes walship starts.
    pub config_path: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("cannot read settings file {path}: {why}")]
    File { path: String, why: String },
    #[error("{name}={value:?} is not valid: {expected}")]
    Invalid {
        name: String,
        value: String,
        expected: String,
    },
    #[error(
        "{0} is set, but walship does not implement client-side encryption yet; refusing to store unencrypted data"
    )]
    UnsupportedEncryption(String),
    #[error("several archive prefixes are set ({0}); set exactly one")]
    ConflictingPrefixes(String),
}

/// Defaults, named so they can be found and documented.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(600);
pub const DEFAULT_PLUGIN_MEMORY_MIB: usize = 256;
pub const DEFAULT_PLUGIN_CALL_TIMEOUT: Duration = Duration::from_secs(120);
pub const DEFAULT_COMPRESSION: Compression = Compression::Zstd;
pub const DEFAULT_UPLOAD_CONCURRENCY: usize = 4;
pub const DEFAULT_DOWNLOAD_CONCURRENCY: usize = 4;

/// WAL-G and WAL-E settings that ask for encryption. Ignoring one would store
/// plaintext where the operator asked for ciphertext.
const ENCRYPTION_SETTINGS: &[&str] = &[
    "WALG_LIBSODIUM_KEY",
    "WALG_LIBSODIUM_KEY_PATH",
    "WALG_PGP_KEY",
    "WALG_PGP_KEY_PATH",
    "WALG_CSE_KMS_ID",
    "WALG_GPG_KEY_ID",
    "WALE_GPG_KEY_ID",
];

/// Prefix settings and the scheme a plain path in them implies.
const PREFIX_SETTINGS: &[(&str, Option<&str>)] = &[
    ("WALG_FILE_PREFIX", Some("file")),
    ("WALE_FILE_PREFIX", Some("file")),
    ("WALG_S3_PREFIX", None),
    ("WALE_S3_PREFIX", None),
    ("WALG_GS_PREFIX", None),
    ("WALE_GS_PREFIX", None),
    ("WALG_AZ_PREFIX", None),
    ("WALE_AZ_PREFIX", None),
    ("WALG_SWIFT_PREFIX", None),
    ("WALE_SWIFT_PREFIX", None),
];

/// The process's surroundings, captured once by `main`.
pub struct Environment {
    pub vars: BTreeMap<String, String>,
    /// Where the running binary is, to find bundled plugins beside it.
    pub exe: Option<PathBuf>,
}

impl Environment {
    pub fn capture() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            exe: std::env::current_exe().ok(),
        }
    }
}

/// The TOML file: walship's own lower-case keys, plus upper-case keys that
/// act like environment variables (as in WAL-G's config file).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    prefix: Option<String>,
    plugin: Option<PathBuf>,
    plugin_dir: Option<PathBuf>,
    cache_dir: Option<PathBuf>,
    compression: Option<String>,
    log_level: Option<String>,
    timeout_seconds: Option<u64>,
    plugin_memory_mib: Option<usize>,
    plugin_call_timeout_seconds: Option<u64>,
    allowed_hosts: Option<Vec<String>>,
    allowed_directories: Option<Vec<PathBuf>>,
    ca_file: Option<PathBuf>,
}

pub fn resolve(args: &GlobalArgs, env: &Environment) -> Result<Settings, SettingsError> {
    let config_path = args
        .config
        .clone()
        .or_else(|| env.vars.get("WALSHIP_CONFIG").map(PathBuf::from));
    let (file, file_vars) = match &config_path {
        Some(path) => read_file(path)?,
        None => (FileSettings::default(), BTreeMap::new()),
    };
    // Environment-style settings: the process environment wins over the file.
    let mut vars = file_vars;
    vars.extend(env.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    let var = |name: &str| vars.get(name).filter(|v| !v.is_empty()).cloned();

    for name in ENCRYPTION_SETTINGS {
        if var(name).is_some() {
            return Err(SettingsError::UnsupportedEncryption(name.to_string()));
        }
    }

    let prefix = match args
        .prefix
        .clone()
        .or_else(|| var("WALSHIP_PREFIX"))
        .or(file.prefix.clone())
    {
        Some(p) => Some(normalize_prefix("WALSHIP_PREFIX", &p, None)?),
        None => walg_prefix(&var)?,
    };

    let compression_raw = args
        .compression
        .clone()
        .or_else(|| var("WALSHIP_COMPRESSION"))
        .or_else(|| var("WALG_COMPRESSION_METHOD"))
        .or(file.compression.clone());
    let compression = match compression_raw {
        None => DEFAULT_COMPRESSION,
        Some(v) => parse_compression(&v)?,
    };

    let log_raw = args
        .log_level
        .clone()
        .or_else(|| var("WALSHIP_LOG_LEVEL"))
        .or_else(|| var("WALG_LOG_LEVEL"))
        .or(file.log_level.clone());
    let log_level = match log_raw {
        None => LogLevelFilter::Warn,
        Some(v) => LogLevelFilter::parse(&v)
            .ok_or_else(|| invalid("WALSHIP_LOG_LEVEL", &v, "error, warn, info, debug or trace"))?,
    };

    let seconds = |name: &str,
                   flag: Option<u64>,
                   file: Option<u64>|
     -> Result<Option<Duration>, SettingsError> {
        let v = match flag {
            Some(v) => Some(v),
            None => match var(name) {
                Some(s) => Some(
                    s.parse::<u64>()
                        .map_err(|_| invalid(name, &s, "a whole number of seconds"))?,
                ),
                None => file,
            },
        };
        match v {
            Some(0) => Err(invalid(name, "0", "a positive number of seconds")),
            v => Ok(v.map(Duration::from_secs)),
        }
    };
    let deadline =
        seconds("WALSHIP_TIMEOUT", args.timeout, file.timeout_seconds)?.unwrap_or(DEFAULT_DEADLINE);
    let plugin_call_timeout = seconds(
        "WALSHIP_PLUGIN_CALL_TIMEOUT",
        None,
        file.plugin_call_timeout_seconds,
    )?
    .unwrap_or(DEFAULT_PLUGIN_CALL_TIMEOUT);
    let plugin_memory_mib = match var("WALSHIP_PLUGIN_MEMORY_MIB") {
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|m| (16..=4096).contains(m))
            .ok_or_else(|| {
                invalid(
                    "WALSHIP_PLUGIN_MEMORY_MIB",
                    &s,
                    "a number of MiB from 16 to 4096",
                )
            })?,
        None => file.plugin_memory_mib.unwrap_or(DEFAULT_PLUGIN_MEMORY_MIB),
    };

    let plugin_file = args
        .plugin
        .clone()
        .or_else(|| var("WALSHIP_PLUGIN").map(PathBuf::from))
        .or(file.plugin.clone());
    let install_dir = args
        .plugin_dir
        .clone()
        .or_else(|| var("WALSHIP_PLUGIN_DIR").map(PathBuf::from))
        .or(file.plugin_dir.clone())
        .or_else(|| {
            var("XDG_DATA_HOME")
                .map(|d| PathBuf::from(d).join("walship/plugins"))
                .or_else(|| {
                    var("HOME").map(|h| PathBuf::from(h).join(".local/share/walship/plugins"))
                })
        });
    let plugin_dirs = install_dir
        .into_iter()
        .chain(std::iter::once(bundled_plugin_dir(env.exe.as_deref())))
        .collect();
    let cache_dir = args
        .cache_dir
        .clone()
        .or_else(|| var("WALSHIP_CACHE_DIR").map(PathBuf::from))
        .or(file.cache_dir.clone())
        .or_else(|| var("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("walship")))
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache/walship")));

    let list = |name: &str| {
        var(name).map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        })
    };
    let policy = SandboxPolicy {
        allowed_hosts: list("WALSHIP_ALLOW_HOSTS").or(file.allowed_hosts.clone()),
        allowed_directories: list("WALSHIP_ALLOW_DIRECTORIES")
            .map(|v| v.into_iter().map(PathBuf::from).collect())
            .or(file.allowed_directories.clone())
            .unwrap_or_default(),
    };

    // WAL-G names its CA setting after S3; the host does TLS for every
    // plugin, so it applies to any https endpoint.
    let ca_file = var("WALSHIP_CA_FILE")
        .or_else(|| var("WALG_S3_CA_CERT_FILE"))
        .map(PathBuf::from)
        .or(file.ca_file.clone());
    if let Some(path) = &ca_file {
        crate::plugin::check_ca_file(path).map_err(|why| SettingsError::Invalid {
            name: "WALSHIP_CA_FILE".into(),
            value: path.display().to_string(),
            expected: why,
        })?;
    }
    let count = |names: [&str; 2], default: usize, min: usize| -> Result<usize, SettingsError> {
        match names.iter().find_map(|n| Some((*n, var(n)?))) {
            None => Ok(default),
            Some((name, v)) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (min..=64).contains(n))
                .ok_or_else(|| invalid(name, &v, &format!("a number from {min} to 64"))),
        }
    };
    let upload_concurrency = count(
        ["WALSHIP_UPLOAD_CONCURRENCY", "WALG_UPLOAD_CONCURRENCY"],
        DEFAULT_UPLOAD_CONCURRENCY,
        1,
    )?;
    let download_concurrency = count(
        ["WALSHIP_DOWNLOAD_CONCURRENCY", "WALG_DOWNLOAD_CONCURRENCY"],
        DEFAULT_DOWNLOAD_CONCURRENCY,
        0,
    )?;
    Ok(Settings {
        upload_concurrency,
        download_concurrency,
        config_path: config_path.clone(),
        ca_file,
        prefix,
        plugin_file,
        plugin_dirs,
        cache_dir,
        compression,
        log_level,
        deadline,
        plugin_memory_bytes: plugin_memory_mib << 20,
        plugin_call_timeout,
        policy,
        timings: var("WALSHIP_TIMINGS").is_some_and(|v| v != "0"),
        plugin_settings: vars,
    })
}

fn invalid(name: &str, value: &str, expected: &str) -> SettingsError {
    SettingsError::Invalid {
        name: name.into(),
        value: value.into(),
        expected: expected.into(),
    }
}

fn read_file(path: &Path) -> Result<(FileSettings, BTreeMap<String, String>), SettingsError> {
    let err = |why: String| SettingsError::File {
        path: path.display().to_string(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| err(e.message().to_string()))?;
    let (upper, lower): (toml::Table, toml::Table) = table
        .into_iter()
        .partition(|(k, _)| k.chars().any(|c| c.is_ascii_uppercase()));
    let file: FileSettings = toml::Value::Table(lower)
        .try_into()
        .map_err(|e: toml::de::Error| err(e.message().to_string()))?;
    let mut vars = BTreeMap::new();
    for (k, v) in upper {
        let s = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(err(format!(
                    "{k} must be a string, number or boolean, not {}",
                    other.type_str()
                )));
            }
        };
        vars.insert(k, s);
    }
    Ok((file, vars))
}

fn walg_prefix(var: &impl Fn(&str) -> Option<String>) -> Result<Option<String>, SettingsError> {
    let set: Vec<_> = PREFIX_SETTINGS
        .iter()
        .filter_map(|(name, scheme)| Some((*name, var(name)?, *scheme)))
        .collect();
    // WALG_ and WALE_ spellings of the same location are not a conflict.
    let mut urls = Vec::new();
    for (name, value, scheme) in &set {
        let url = normalize_prefix(name, value, *scheme)?;
        if !urls.iter().any(|(_, u)| *u == url) {
            urls.push((*name, url));
        }
    }
    match urls.len() {
        0 => Ok(None),
        1 => Ok(Some(urls.remove(0).1)),
        _ => Err(SettingsError::ConflictingPrefixes(
            urls.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
        )),
    }
}

/// Turns a prefix setting into a URL. A plain absolute path is a `file://`
/// URL where the setting implies the filesystem (WAL-G's WALG_FILE_PREFIX).
fn normalize_prefix(
    name: &str,
    value: &str,
    plain_path_scheme: Option<&str>,
) -> Result<String, SettingsError> {
    let value = value.trim();
    if let Some((scheme, rest)) = value.split_once("://") {
        let ok_scheme = !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-');
        if !ok_scheme || rest.is_empty() {
            return Err(invalid(
                name,
                value,
                "a URL such as file:///var/lib/walship or s3://bucket/path",
            ));
        }
        if scheme == "file" && !rest.starts_with('/') {
            return Err(invalid(
                name,
                value,
                "file:// followed by an absolute path, e.g. file:///var/lib/walship",
            ));
        }
        return Ok(format!(
            "{}://{}",
            scheme.to_ascii_lowercase(),
            rest.trim_end_matches('/')
        ));
    }
    match plain_path_scheme.or(if value.starts_with('/') {
        Some("file")
    } else {
        None
    }) {
        Some("file") if value.starts_with('/') => {
            Ok(format!("file://{}", value.trim_end_matches('/')))
        }
        _ => Err(invalid(
            name,
            value,
            "an absolute path or a URL (relative paths would depend on the data directory PostgreSQL runs walship in)",
        )),
    }
}

fn parse_compression(v: &str) -> Result<Compression, SettingsError> {
    match v.to_ascii_lowercase().as_str() {
        "zstd" => Ok(Compression::Zstd),
        "lz4" => Ok(Compression::Lz4),
        "none" | "off" => Ok(Compression::None),
        _ => Err(invalid(
            "WALG_COMPRESSION_METHOD",
            v,
            "zstd, lz4 or none (brotli and lzma are not supported)",
        )),
    }
}

/// `<bin>/../lib/walship/plugins`, so a copied `dist/` keeps working.
fn bundled_plugin_dir(exe: Option<&Path>) -> PathBuf {
    exe.and_then(|e| e.parent())
        .and_then(|bin| bin.parent())
        .map(|root| root.join("lib/walship/plugins"))
        .unwrap_or_else(|| PathBuf::from("/usr/lib/walship/plugins"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment {
            vars: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            exe: Some(PathBuf::from("/opt/walship/bin/walship")),
        }
    }

    #[test]
    fn walg_names_work_unchanged() {
        let s = resolve(
            &GlobalArgs::default(),
            &env(&[
                ("WALG_FILE_PREFIX", "/var/lib/archive/"),
                ("WALG_COMPRESSION_METHOD", "lz4"),
                ("WALG_LOG_LEVEL", "DEVEL"),
            ]),
        )
        .unwrap();
        assert_eq!(s.prefix.as_deref(), Some("file:///var/lib/archive"));
        assert_eq!(s.compression, Compression::Lz4);
        assert_eq!(s.log_level, LogLevelFilter::Debug);
        assert_eq!(
            s.plugin_dirs.last(),
            Some(&PathBuf::from("/opt/walship/lib/walship/plugins"))
        );
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let dir = std::env::temp_dir().join(format!("walship-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("walship.toml");
        std::fs::write(
            &file,
            "prefix = \"file:///from-file\"\ncompression = \"none\"\nAWS_REGION = \"eu-west-1\"\n",
        )
        .unwrap();
        let args = GlobalArgs {
            config: Some(file.clone()),
            ..Default::default()
        };
        let s = resolve(&args, &env(&[("WALSHIP_PREFIX", "file:///from-env")])).unwrap();
        assert_eq!(s.prefix.as_deref(), Some("file:///from-env"));
        assert_eq!(s.compression, Compression::None);
        assert_eq!(
            s.plugin_settings.get("AWS_REGION").map(String::as_str),
            Some("eu-west-1")
        );
        let args = GlobalArgs {
            config: Some(file.clone()),
            prefix: Some("file:///from-flag".into()),
            ..Default::default()
        };
        assert_eq!(
            resolve(&args, &env(&[("WALSHIP_PREFIX", "file:///x")]))
                .unwrap()
                .prefix
                .as_deref(),
            Some("file:///from-flag")
        );
        std::fs::write(&file, "prefixx = \"typo\"\n").unwrap();
        assert!(matches!(
            resolve(&args, &env(&[])),
            Err(SettingsError::File { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn encryption_settings_are_refused_not_ignored() {
        let e = resolve(&GlobalArgs::default(), &env(&[("WALG_LIBSODIUM_KEY", "k")])).unwrap_err();
        assert_eq!(
            e,
            SettingsError::UnsupportedEncryption("WALG_LIBSODIUM_KEY".into())
        );
    }

    #[test]
    fn bad_values_are_named() {
        assert!(
            resolve(
                &GlobalArgs::default(),
                &env(&[("WALG_COMPRESSION_METHOD", "brotli")])
            )
            .is_err()
        );
        assert!(
            resolve(
                &GlobalArgs::default(),
                &env(&[("WALG_FILE_PREFIX", "relative/dir")])
            )
            .is_err()
        );
        assert!(resolve(&GlobalArgs::default(), &env(&[("WALSHIP_TIMEOUT", "soon")])).is_err());
        let both = env(&[("WALG_FILE_PREFIX", "/a"), ("WALG_S3_PREFIX", "s3://b/p")]);
        assert!(matches!(
            resolve(&GlobalArgs::default(), &both),
            Err(SettingsError::ConflictingPrefixes(_))
        ));
        let same = env(&[("WALG_FILE_PREFIX", "/a"), ("WALE_FILE_PREFIX", "/a/")]);
        assert!(resolve(&GlobalArgs::default(), &same).is_ok());
    }
}

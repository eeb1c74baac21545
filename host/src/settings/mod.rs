//! Resolves flags, environment and the settings file into one `Settings`
//! value, once. Nothing below this module reads the environment or a
//! settings file.
//!
//! Precedence, for every name: command-line flags, then environment
//! variables, then the settings file (`--config` / `WALSHIP_CONFIG`: TOML,
//! or WAL-G's JSON when the name ends in .json; without either, WAL-G's
//! `~/.walg.json` if there is one). WAL-G's names are accepted so existing
//! setups work unchanged; what walship does with each of WAL-G's names is in
//! `names.rs` (honoured, refused, or ignored with a warning).

pub mod file;
pub mod keys;
pub mod names;
pub mod sources;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use self::sources::{Found, Layer, Origin, Source, Sources};
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
    /// The encryption keys (none: the archive is in the clear). Their
    /// `Debug` shows fingerprints only.
    pub keys: crate::crypto::Keys,
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
    /// Tar bytes per backup volume.
    pub volume_size: u64,
    /// Where restored-ahead segments wait (`WALG_PREFETCH_DIR`); relative
    /// paths are relative to the data directory. `None`: walship's default.
    pub prefetch_dir: Option<PathBuf>,
    /// Where to write Prometheus's node-exporter textfile after each
    /// command (`WALSHIP_METRICS_TEXTFILE`).
    pub metrics_textfile: Option<PathBuf>,
    /// Bytes per second to and from the storage during backups
    /// (`WALG_NETWORK_RATE_LIMIT`); `None`: unlimited.
    pub network_rate_limit: Option<u64>,
    /// Bytes per second read from or written to disk during backups
    /// (`WALG_DISK_RATE_LIMIT`); `None`: unlimited.
    pub disk_rate_limit: Option<u64>,
    /// Bytes per second of WAL to and from the storage, for all walship
    /// processes of an archive together (`WALSHIP_WAL_RATE_LIMIT`).
    pub wal_rate_limit: Option<u64>,
    /// One line each, for settings that are set but change nothing.
    pub warnings: Vec<String>,
    /// What each of walship's own settings resolved to and where it came
    /// from (`walship config`).
    pub effective: Vec<Effective>,
    /// The sources as read, for `walship config`.
    pub sources: Sources,
}

/// One resolved setting, for `walship config`.
#[derive(Debug, Clone)]
pub struct Effective {
    pub setting: &'static str,
    pub value: String,
    /// `None`: walship's default.
    pub origin: Option<Origin>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("cannot read settings file {path}: {why}")]
    File { path: String, why: String },
    /// `setting` is the assignment as the user wrote it (`WALG_X="v"`,
    /// `x = "v" in FILE`, `--x "v"`).
    #[error("{setting} is not valid: {expected}")]
    Invalid { setting: String, expected: String },
    #[error("{setting} is set, but {why}; refusing to run: {instead}")]
    Refused {
        setting: String,
        why: String,
        instead: String,
    },
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
pub const DEFAULT_VOLUME_SIZE: u64 = crate::backup::push::DEFAULT_VOLUME_SIZE;
pub const MIN_VOLUME_SIZE: u64 = 1 << 16;

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

/// Reads the three sources. Flags carry walship's own names.
fn read_sources(args: &GlobalArgs, env: &Environment) -> Result<Sources, SettingsError> {
    let mut flags = Layer::new(Source::Flag);
    let path_text = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    for (name, flag, value) in [
        ("WALSHIP_PREFIX", "--prefix", args.prefix.clone()),
        ("WALSHIP_PLUGIN", "--plugin", path_text(&args.plugin)),
        (
            "WALSHIP_PLUGIN_DIR",
            "--plugin-dir",
            path_text(&args.plugin_dir),
        ),
        (
            "WALSHIP_CACHE_DIR",
            "--cache-dir",
            path_text(&args.cache_dir),
        ),
        ("WALSHIP_LOG_LEVEL", "--log-level", args.log_level.clone()),
        (
            "WALSHIP_TIMEOUT",
            "--timeout",
            args.timeout.map(|t| t.to_string()),
        ),
        (
            "WALSHIP_COMPRESSION",
            "--compression",
            args.compression.clone(),
        ),
    ] {
        if let Some(v) = value {
            flags.insert(name, flag, v);
        }
    }
    let mut env_layer = Layer::new(Source::Environment);
    for (k, v) in &env.vars {
        env_layer.insert(k, k, v.clone());
    }
    let named = args.config.clone().or_else(|| {
        env.vars
            .get("WALSHIP_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let file_path = named.or_else(|| file::default_file(env.vars.get("HOME").map(String::as_str)));
    let file = match &file_path {
        Some(path) => file::read(path)?,
        None => Layer::default(),
    };
    Ok(Sources {
        flags,
        env: env_layer,
        file,
        file_path,
    })
}

/// Resolution of walship's own settings, recording where each came from.
struct Resolver<'s> {
    sources: &'s Sources,
    effective: Vec<Effective>,
}

impl<'s> Resolver<'s> {
    /// The winning value among `names` (walship's name first), recorded
    /// under `setting`.
    fn get(&mut self, setting: &'static str, names: &[&str]) -> Option<Found> {
        let found = self.sources.get(names);
        if let Some(f) = &found {
            self.effective.push(Effective {
                setting,
                value: f.value.clone(),
                origin: Some(f.origin.clone()),
            });
        }
        found
    }

    fn default(&mut self, setting: &'static str, value: impl ToString) {
        if !self.effective.iter().any(|e| e.setting == setting) {
            self.effective.push(Effective {
                setting,
                value: value.to_string(),
                origin: None,
            });
        }
    }

    /// A number in `range`, or the default.
    fn number<T>(
        &mut self,
        setting: &'static str,
        names: &[&str],
        range: std::ops::RangeInclusive<T>,
        expected: &str,
        default: T,
    ) -> Result<T, SettingsError>
    where
        T: std::str::FromStr + PartialOrd + Copy + ToString,
    {
        match self.get(setting, names) {
            None => {
                self.default(setting, default);
                Ok(default)
            }
            Some(f) => f
                .value
                .trim()
                .parse::<T>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| invalid(&f, expected)),
        }
    }
}

pub fn resolve(args: &GlobalArgs, env: &Environment) -> Result<Settings, SettingsError> {
    let mut sources = read_sources(args, env)?;
    let all_set = sources.all_set();
    let warnings = names::review(all_set.iter().map(|(name, found)| names::SetSetting {
        name,
        value: &found.value,
        described: found.origin.to_string(),
    }))?;
    drop(all_set);
    let encryption_keys = keys::resolve(&sources)?;
    keys::scrub(&mut sources);
    let mut r = Resolver {
        sources: &sources,
        effective: Vec::new(),
    };

    let prefix = resolve_prefix(&sources)?;
    if let Some((url, origin)) = &prefix {
        r.effective.push(Effective {
            setting: "prefix",
            value: url.clone(),
            origin: Some(origin.clone()),
        });
    }
    let prefix = prefix.map(|(url, _)| url);

    let compression = match r.get(
        "compression",
        &["WALSHIP_COMPRESSION", "WALG_COMPRESSION_METHOD"],
    ) {
        None => {
            r.default("compression", DEFAULT_COMPRESSION);
            DEFAULT_COMPRESSION
        }
        Some(f) => parse_compression(&f)?,
    };
    let log_level = match r.get("log_level", &["WALSHIP_LOG_LEVEL", "WALG_LOG_LEVEL"]) {
        None => {
            r.default("log_level", "warn");
            LogLevelFilter::Warn
        }
        Some(f) => LogLevelFilter::parse(f.value.trim()).ok_or_else(|| {
            invalid(
                &f,
                "error, warn, info, debug or trace (WAL-G's NORMAL, DEVEL, ERROR too)",
            )
        })?,
    };
    let seconds = "a whole, positive number of seconds";
    let deadline = Duration::from_secs(r.number(
        "timeout",
        &["WALSHIP_TIMEOUT"],
        1..=u64::MAX,
        seconds,
        DEFAULT_DEADLINE.as_secs(),
    )?);
    let plugin_call_timeout = Duration::from_secs(r.number(
        "plugin_call_timeout",
        &["WALSHIP_PLUGIN_CALL_TIMEOUT"],
        1..=u64::MAX,
        seconds,
        DEFAULT_PLUGIN_CALL_TIMEOUT.as_secs(),
    )?);
    let plugin_memory_mib = r.number(
        "plugin_memory_mib",
        &["WALSHIP_PLUGIN_MEMORY_MIB"],
        16..=4096,
        "a number of MiB from 16 to 4096",
        DEFAULT_PLUGIN_MEMORY_MIB,
    )?;

    let mut vars = sources.vars();
    // Key material is walship's alone: not even a bundled plugin gets it.
    vars.retain(|name, _| !keys::is_key_setting(name));
    let var = |name: &str| vars.get(name).filter(|v| !v.is_empty()).cloned();
    let path = |r: &mut Resolver, setting, names: &[&str]| {
        r.get(setting, names).map(|f| PathBuf::from(f.value))
    };
    let plugin_file = path(&mut r, "plugin", &["WALSHIP_PLUGIN"]);
    let install_dir = path(&mut r, "plugin_dir", &["WALSHIP_PLUGIN_DIR"]).or_else(|| {
        var("XDG_DATA_HOME")
            .map(|d| PathBuf::from(d).join("walship/plugins"))
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".local/share/walship/plugins")))
    });
    let plugin_dirs = install_dir
        .into_iter()
        .chain(std::iter::once(bundled_plugin_dir(env.exe.as_deref())))
        .collect();
    let cache_dir = path(&mut r, "cache_dir", &["WALSHIP_CACHE_DIR"])
        .or_else(|| var("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("walship")))
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache/walship")));

    let list = |r: &mut Resolver, setting, name: &str| {
        r.get(setting, &[name]).map(|f| {
            f.value
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        })
    };
    let policy = SandboxPolicy {
        allowed_hosts: list(&mut r, "allowed_hosts", "WALSHIP_ALLOW_HOSTS"),
        allowed_directories: list(&mut r, "allowed_directories", "WALSHIP_ALLOW_DIRECTORIES")
            .map(|v| v.into_iter().map(PathBuf::from).collect())
            .unwrap_or_default(),
    };

    // WAL-G names its CA setting after S3 (and the AWS CLI has its own);
    // the host does TLS for every plugin, so it applies to any https endpoint.
    let ca = r.get(
        "ca_file",
        &["WALSHIP_CA_FILE", "WALG_S3_CA_CERT_FILE", "AWS_CA_BUNDLE"],
    );
    let ca_file = match ca {
        None => None,
        Some(f) => {
            let path = PathBuf::from(&f.value);
            crate::plugin::check_ca_file(&path).map_err(|why| invalid(&f, &why))?;
            Some(path)
        }
    };
    let upload_concurrency = r.number(
        "upload_concurrency",
        &["WALSHIP_UPLOAD_CONCURRENCY", "WALG_UPLOAD_CONCURRENCY"],
        1..=64,
        "a number from 1 to 64",
        DEFAULT_UPLOAD_CONCURRENCY,
    )?;
    let download_concurrency = download_concurrency(&mut r)?;
    let volume_size = r.number(
        "volume_size",
        &["WALSHIP_VOLUME_SIZE", "WALG_TAR_SIZE_THRESHOLD"],
        MIN_VOLUME_SIZE..=u64::MAX,
        "a number of bytes, at least 65536",
        DEFAULT_VOLUME_SIZE,
    )?;
    let prefetch_dir = path(
        &mut r,
        "prefetch_dir",
        &["WALSHIP_PREFETCH_DIR", "WALG_PREFETCH_DIR"],
    );
    let metrics_textfile = path(&mut r, "metrics_textfile", &["WALSHIP_METRICS_TEXTFILE"]);
    // 0 means no limit, as in WAL-G.
    let network_rate_limit = Some(r.number(
        "network_rate_limit",
        &["WALSHIP_NETWORK_RATE_LIMIT", "WALG_NETWORK_RATE_LIMIT"],
        0..=u64::MAX,
        "bytes per second (0: no limit)",
        0u64,
    )?)
    .filter(|n| *n > 0);
    let wal_rate_limit = Some(r.number(
        "wal_rate_limit",
        &["WALSHIP_WAL_RATE_LIMIT"],
        0..=u64::MAX,
        "bytes per second (0: no limit)",
        0u64,
    )?)
    .filter(|n| *n > 0);
    let disk_rate_limit = Some(r.number(
        "disk_rate_limit",
        &["WALSHIP_DISK_RATE_LIMIT", "WALG_DISK_RATE_LIMIT"],
        0..=u64::MAX,
        "bytes per second (0: no limit)",
        0u64,
    )?)
    .filter(|n| *n > 0);
    let timings = r
        .get("timings", &["WALSHIP_TIMINGS"])
        .is_some_and(|f| f.value != "0");
    let effective = r.effective;
    Ok(Settings {
        upload_concurrency,
        download_concurrency,
        config_path: sources.file_path.clone(),
        ca_file,
        prefix,
        plugin_file,
        plugin_dirs,
        cache_dir,
        compression,
        keys: encryption_keys,
        log_level,
        deadline,
        plugin_memory_bytes: plugin_memory_mib << 20,
        plugin_call_timeout,
        policy,
        timings,
        plugin_settings: vars,
        volume_size,
        prefetch_dir,
        metrics_textfile,
        network_rate_limit,
        disk_rate_limit,
        wal_rate_limit,
        warnings,
        effective,
        sources,
    })
}

/// One warning line per setting that is set but changes nothing.
pub fn report_warnings(settings: &Settings) {
    if settings.log_level >= LogLevelFilter::Warn {
        for w in &settings.warnings {
            crate::logging::log_line(LogLevelFilter::Warn, w);
        }
    }
}

/// Segments restored ahead of recovery. WALSHIP_DOWNLOAD_CONCURRENCY counts
/// them (0: off); WAL-G's WALG_DOWNLOAD_CONCURRENCY counts every download at
/// once, the one recovery asked for included, so 1 means no prefetch (what
/// pg_rewind set-ups rely on) and N means N-1 ahead.
fn download_concurrency(r: &mut Resolver) -> Result<usize, SettingsError> {
    const NAMES: &[&str] = &["WALSHIP_DOWNLOAD_CONCURRENCY", "WALG_DOWNLOAD_CONCURRENCY"];
    let Some(found) = r.sources.get(NAMES) else {
        r.default("download_concurrency", DEFAULT_DOWNLOAD_CONCURRENCY);
        return Ok(DEFAULT_DOWNLOAD_CONCURRENCY);
    };
    let walg = found
        .origin
        .key
        .eq_ignore_ascii_case("WALG_DOWNLOAD_CONCURRENCY");
    let (range, expected) = if walg {
        (1..=65, "a number from 1 to 65 (1: no prefetch)")
    } else {
        (0..=64, "a number from 0 to 64 (0: no prefetch)")
    };
    let n = r.number("download_concurrency", NAMES, range, expected, 0)?;
    Ok(if walg { n - 1 } else { n })
}

fn invalid(found: &Found, expected: &str) -> SettingsError {
    SettingsError::Invalid {
        setting: found.origin.assignment(&found.value),
        expected: expected.into(),
    }
}

/// The archive's URL and where it came from: the highest source that sets
/// any prefix; within it walship's WALSHIP_PREFIX (or the file's `prefix`)
/// before WAL-G's names, which must agree with each other.
fn resolve_prefix(sources: &Sources) -> Result<Option<(String, Origin)>, SettingsError> {
    for layer in sources.layers() {
        if let Some(f) = layer.get("WALSHIP_PREFIX") {
            return Ok(Some((normalize_prefix(&f, None)?, f.origin)));
        }
        let mut urls: Vec<(String, Origin)> = Vec::new();
        for (name, scheme) in PREFIX_SETTINGS {
            let Some(f) = layer.get(name) else { continue };
            let url = normalize_prefix(&f, *scheme)?;
            // WALG_ and WALE_ spellings of the same location are no conflict.
            if !urls.iter().any(|(u, _)| *u == url) {
                urls.push((url, f.origin));
            }
        }
        match urls.len() {
            0 => continue,
            1 => return Ok(urls.pop()),
            _ => {
                return Err(SettingsError::ConflictingPrefixes(
                    urls.iter()
                        .map(|(_, o)| o.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                ));
            }
        }
    }
    Ok(None)
}

/// Turns a prefix setting into a URL. A plain absolute path is a `file://`
/// URL where the setting implies the filesystem (WAL-G's WALG_FILE_PREFIX).
fn normalize_prefix(
    found: &Found,
    plain_path_scheme: Option<&str>,
) -> Result<String, SettingsError> {
    let value = found.value.trim();
    if let Some((scheme, rest)) = value.split_once("://") {
        let ok_scheme = !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-');
        if !ok_scheme || rest.is_empty() {
            return Err(invalid(
                found,
                "a URL such as file:///var/lib/walship or s3://bucket/path",
            ));
        }
        if scheme == "file" && !rest.starts_with('/') {
            return Err(invalid(
                found,
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
            found,
            "an absolute path or a URL (relative paths would depend on the data directory PostgreSQL runs walship in)",
        )),
    }
}

fn parse_compression(found: &Found) -> Result<Compression, SettingsError> {
    match found.value.trim().to_ascii_lowercase().as_str() {
        "zstd" => Ok(Compression::Zstd),
        "lz4" => Ok(Compression::Lz4),
        "none" | "off" => Ok(Compression::None),
        _ => Err(invalid(
            found,
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

    fn temp_file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("walship-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        file
    }

    fn with_file(file: &Path) -> GlobalArgs {
        GlobalArgs {
            config: Some(file.to_path_buf()),
            ..Default::default()
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

    /// Issue 24: a file's `prefix` beat the environment's WALG_FILE_PREFIX.
    #[test]
    fn the_environment_beats_the_file_whatever_the_names() {
        let file = temp_file(
            "env-vs-file.toml",
            "prefix = \"file:///from-file\"\ncompression = \"none\"\nlog_level = \"error\"\nWALG_UPLOAD_CONCURRENCY = 7\nAWS_REGION = \"eu-west-1\"\n",
        );
        let s = resolve(
            &with_file(&file),
            &env(&[
                ("WALG_FILE_PREFIX", "/from-env"),
                ("WALG_COMPRESSION_METHOD", "lz4"),
                ("WALG_LOG_LEVEL", "DEVEL"),
                ("WALSHIP_UPLOAD_CONCURRENCY", "3"),
                ("AWS_REGION", "us-east-2"),
            ]),
        )
        .unwrap();
        assert_eq!(s.prefix.as_deref(), Some("file:///from-env"));
        assert_eq!(s.compression, Compression::Lz4);
        assert_eq!(s.log_level, LogLevelFilter::Debug);
        assert_eq!(s.upload_concurrency, 3);
        assert_eq!(
            s.plugin_settings.get("AWS_REGION").map(String::as_str),
            Some("us-east-2")
        );
        // Without the environment, the file decides.
        let s = resolve(&with_file(&file), &env(&[])).unwrap();
        assert_eq!(s.prefix.as_deref(), Some("file:///from-file"));
        assert_eq!(s.compression, Compression::None);
        assert_eq!(s.upload_concurrency, 7);
        let origin = s.effective.iter().find(|e| e.setting == "prefix").unwrap();
        assert_eq!(origin.origin.as_ref().unwrap().key, "prefix");
    }

    #[test]
    fn flags_beat_the_environment() {
        let args = GlobalArgs {
            prefix: Some("file:///from-flag".into()),
            compression: Some("none".into()),
            log_level: Some("error".into()),
            timeout: Some(9),
            ..Default::default()
        };
        let s = resolve(
            &args,
            &env(&[
                ("WALSHIP_PREFIX", "file:///x"),
                ("WALG_S3_PREFIX", "s3://b/p"),
                ("WALG_COMPRESSION_METHOD", "lz4"),
                ("WALG_LOG_LEVEL", "DEVEL"),
                ("WALSHIP_TIMEOUT", "30"),
            ]),
        )
        .unwrap();
        assert_eq!(s.prefix.as_deref(), Some("file:///from-flag"));
        assert_eq!(s.compression, Compression::None);
        assert_eq!(s.log_level, LogLevelFilter::Error);
        assert_eq!(s.deadline, Duration::from_secs(9));
    }

    #[test]
    fn flags_beat_the_file() {
        let file = temp_file(
            "flag-vs-file.toml",
            "prefix = \"file:///from-file\"\nWALG_COMPRESSION_METHOD = \"lz4\"\ntimeout_seconds = 30\n",
        );
        let args = GlobalArgs {
            prefix: Some("file:///from-flag".into()),
            compression: Some("none".into()),
            timeout: Some(9),
            ..with_file(&file)
        };
        let s = resolve(&args, &env(&[])).unwrap();
        assert_eq!(s.prefix.as_deref(), Some("file:///from-flag"));
        assert_eq!(s.compression, Compression::None);
        assert_eq!(s.deadline, Duration::from_secs(9));
    }

    #[test]
    fn walg_json_is_the_default_settings_file() {
        let dir = std::env::temp_dir().join(format!("walship-home-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(".walg.json"),
            r#"{"WALG_FILE_PREFIX": "/from-walg-json", "WALG_DOWNLOAD_CONCURRENCY": "2"}"#,
        )
        .unwrap();
        let home = dir.display().to_string();
        let s = resolve(&GlobalArgs::default(), &env(&[("HOME", &home)])).unwrap();
        assert_eq!(s.prefix.as_deref(), Some("file:///from-walg-json"));
        assert_eq!(s.config_path, Some(dir.join(".walg.json")));
        // A file named explicitly replaces it, as in WAL-G.
        let other = temp_file("named.toml", "log_level = \"info\"\n");
        let s = resolve(&with_file(&other), &env(&[("HOME", &home)])).unwrap();
        assert_eq!(s.prefix, None);
        // And a refused setting kept there is refused like the same
        // environment variable.
        std::fs::write(dir.join(".walg.json"), r#"{"WALG_PGP_KEY": "k"}"#).unwrap();
        let e = resolve(&GlobalArgs::default(), &env(&[("HOME", &home)])).unwrap_err();
        assert!(e.to_string().contains(".walg.json"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Issue 18: WAL-G's libsodium names are honoured (they were refused),
    /// the OpenPGP ones stay refused and point at them, and the key's text
    /// is in nothing the settings keep: not their Debug output, not what
    /// plugins are handed, not an error.
    #[test]
    fn the_libsodium_key_is_honoured_and_never_shown() {
        const KEY: &str = "q83vASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4k=";
        let s = resolve(
            &GlobalArgs::default(),
            &env(&[
                ("WALG_LIBSODIUM_KEY", KEY),
                ("WALG_LIBSODIUM_KEY_TRANSFORM", "base64"),
            ]),
        )
        .unwrap();
        assert!(s.keys.is_set());
        let shown = format!("{s:?}");
        assert!(
            !shown.contains(KEY) && !shown.contains("q83vASNF"),
            "{shown}"
        );
        assert!(!s.plugin_settings.contains_key("WALG_LIBSODIUM_KEY"));
        assert!(
            !s.plugin_settings
                .contains_key("WALG_LIBSODIUM_KEY_TRANSFORM")
        );
        // The default transform is WAL-G's `none`: 44 characters of text.
        let none = resolve(&GlobalArgs::default(), &env(&[("WALG_LIBSODIUM_KEY", KEY)])).unwrap();
        assert_ne!(none.keys.fingerprints(), s.keys.fingerprints());
        // A bad key is named, never shown.
        let e = resolve(
            &GlobalArgs::default(),
            &env(&[
                ("WALG_LIBSODIUM_KEY", "q83vASNFZ4mrze8B"),
                ("WALG_LIBSODIUM_KEY_TRANSFORM", "base64"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("WALG_LIBSODIUM_KEY (environment)"), "{e}");
        assert!(!e.contains("q83vASNF") && !e.contains('\n'), "{e}");
        let both = resolve(
            &GlobalArgs::default(),
            &env(&[
                ("WALG_LIBSODIUM_KEY", KEY),
                ("WALG_LIBSODIUM_KEY_PATH", "/k"),
            ]),
        )
        .unwrap_err();
        assert!(both.to_string().contains("not both"), "{both}");
        for pgp in ["WALG_PGP_KEY", "WALG_PGP_KEY_PATH"] {
            let e = resolve(&GlobalArgs::default(), &env(&[(pgp, "k")])).unwrap_err();
            assert!(
                matches!(&e, SettingsError::Refused { setting, .. } if setting.starts_with(pgp)),
                "{e}"
            );
            assert!(e.to_string().contains("WALG_LIBSODIUM_KEY"), "{e}");
        }
    }

    /// A settings file holding the key is a key file: private, or refused.
    #[test]
    fn a_key_in_a_readable_settings_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let file = temp_file(
            "key.json",
            r#"{"WALG_LIBSODIUM_KEY": "0123456789abcdef0123456789abcdef"}"#,
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = resolve(&with_file(&file), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("chmod 600"), "{e}");
        assert!(!e.contains("0123456789abcdef"), "{e}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = resolve(&with_file(&file), &env(&[])).unwrap();
        assert!(s.keys.is_set());
        assert!(!format!("{s:?}").contains("0123456789abcdef"));
    }

    /// Issue 24: messages named WALSHIP_LOG_LEVEL for WALG_LOG_LEVEL, and
    /// WALG_COMPRESSION_METHOD for the file's `compression`.
    #[test]
    fn errors_name_the_setting_the_user_set() {
        let e = |pairs: &[(&str, &str)]| {
            resolve(&GlobalArgs::default(), &env(pairs))
                .unwrap_err()
                .to_string()
        };
        assert!(e(&[("WALG_LOG_LEVEL", "loud")]).starts_with("WALG_LOG_LEVEL=\"loud\""));
        assert!(
            e(&[("WALG_TAR_SIZE_THRESHOLD", "big")]).starts_with("WALG_TAR_SIZE_THRESHOLD=\"big\"")
        );
        assert!(
            e(&[("WALG_DOWNLOAD_CONCURRENCY", "-1")])
                .starts_with("WALG_DOWNLOAD_CONCURRENCY=\"-1\"")
        );
        let file = temp_file("bad-compression.toml", "compression = \"brotli\"\n");
        let msg = resolve(&with_file(&file), &env(&[]))
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("compression = \"brotli\" in "), "{msg}");
        let msg = resolve(
            &GlobalArgs {
                compression: Some("lzma".into()),
                ..Default::default()
            },
            &env(&[]),
        )
        .unwrap_err()
        .to_string();
        assert!(msg.starts_with("--compression \"lzma\""), "{msg}");
    }

    /// Issue 24: WAL-G documents WALG_DOWNLOAD_CONCURRENCY=1 as "prefetch
    /// off" (pg_rewind set-ups rely on it); walship still prefetched.
    #[test]
    fn walg_download_concurrency_counts_the_file_asked_for() {
        let n = |pairs: &[(&str, &str)]| {
            resolve(&GlobalArgs::default(), &env(pairs)).map(|s| s.download_concurrency)
        };
        assert_eq!(n(&[("WALG_DOWNLOAD_CONCURRENCY", "1")]), Ok(0));
        assert_eq!(n(&[("WALG_DOWNLOAD_CONCURRENCY", "10")]), Ok(9));
        assert!(n(&[("WALG_DOWNLOAD_CONCURRENCY", "0")]).is_err());
        assert_eq!(n(&[("WALSHIP_DOWNLOAD_CONCURRENCY", "0")]), Ok(0));
        assert_eq!(n(&[("WALSHIP_DOWNLOAD_CONCURRENCY", "1")]), Ok(1));
        assert_eq!(n(&[]), Ok(DEFAULT_DOWNLOAD_CONCURRENCY));
        let s = resolve(
            &GlobalArgs::default(),
            &env(&[("WALG_PREFETCH_DIR", "/var/tmp/prefetch")]),
        )
        .unwrap();
        assert_eq!(s.prefetch_dir, Some(PathBuf::from("/var/tmp/prefetch")));
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
        assert!(resolve(&GlobalArgs::default(), &env(&[("WALSHIP_TIMEOUT", "0")])).is_err());
        let both = env(&[("WALG_FILE_PREFIX", "/a"), ("WALG_S3_PREFIX", "s3://b/p")]);
        assert!(matches!(
            resolve(&GlobalArgs::default(), &both),
            Err(SettingsError::ConflictingPrefixes(_))
        ));
        let same = env(&[("WALG_FILE_PREFIX", "/a"), ("WALE_FILE_PREFIX", "/a/")]);
        assert!(resolve(&GlobalArgs::default(), &same).is_ok());
    }
}

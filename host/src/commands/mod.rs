//! One module per command. Each returns `Result<(), Failure>`: the failure
//! carries the exit code PostgreSQL must see and a one-line reason.

pub mod plugin_inspect;
pub mod plugin_test;
pub mod storage_ops;
pub mod wal_fetch;
pub mod wal_push;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::plugin::{Plugin, PluginConfig, RuntimeOptions};
use crate::retry::RetryPolicy;
use crate::settings::Settings;
use crate::storage::StorageError;

/// Exit code for a failure PostgreSQL should retry later (archive_command)
/// or read as "not in the archive" (restore_command).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code above 125: PostgreSQL treats it like a crash of the restore
/// command and stops recovery instead of ending it early (see wal_fetch.rs).
pub const EXIT_STOP_RECOVERY: u8 = 126;

#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl std::fmt::Display) -> Self {
        // One line: PostgreSQL's log is line-oriented.
        let message = message.to_string().replace(['\n', '\r'], " ");
        Self { code, message }
    }
}

/// What every command gets: resolved settings and where it runs.
pub struct Context {
    pub settings: Settings,
    /// The working directory: the data directory when PostgreSQL runs us.
    pub cwd: PathBuf,
    pub started: Instant,
}

impl Context {
    pub fn runtime_options(&self) -> RuntimeOptions {
        RuntimeOptions {
            cache_dir: self.settings.cache_dir.clone(),
            memory_limit_bytes: self.settings.plugin_memory_bytes,
            call_timeout: self.settings.plugin_call_timeout,
            policy: self.settings.policy.clone(),
            log_level: self.settings.log_level,
            ca_file: self.settings.ca_file.clone(),
        }
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            first_backoff: std::time::Duration::from_millis(200),
            max_backoff: std::time::Duration::from_secs(10),
            deadline: self.started + self.settings.deadline,
        }
    }

    pub fn prefix(&self) -> anyhow::Result<&str> {
        self.settings.prefix.as_deref().ok_or_else(|| {
            anyhow::anyhow!("no archive prefix set: set WALSHIP_PREFIX (e.g. file:///var/lib/walship) or WAL-G's WALG_FILE_PREFIX")
        })
    }

    /// Loads the plugin serving the prefix's scheme.
    pub fn load_plugin(&self) -> anyhow::Result<Plugin> {
        let prefix = self.prefix()?;
        let path = plugin_path(&self.settings, scheme_of(prefix))?;
        Plugin::load(&path, self.runtime_options())
    }

    /// The settings the plugin declared, taken from the resolved settings.
    pub fn plugin_config(
        &self,
        info: &crate::storage::BackendInfo,
    ) -> Result<PluginConfig, StorageError> {
        PluginConfig::gather(info, |name| {
            self.settings.plugin_settings.get(name).cloned()
        })
    }
}

pub fn scheme_of(prefix: &str) -> &str {
    prefix.split_once("://").map_or(prefix, |(s, _)| s)
}

/// Bundled plugins are named after the backend, which for a few schemes
/// differs from the scheme.
const BUNDLED_NAMES: &[(&str, &str)] = &[("file", "fs"), ("gs", "gcs"), ("az", "azure")];

pub fn plugin_path(settings: &Settings, scheme: &str) -> anyhow::Result<PathBuf> {
    if let Some(file) = &settings.plugin_file {
        return Ok(file.clone());
    }
    let dir: &Path = &settings.plugin_dir;
    let mut candidates = vec![dir.join(format!("{scheme}.wasm"))];
    if let Some((_, name)) = BUNDLED_NAMES.iter().find(|(s, _)| *s == scheme) {
        candidates.push(dir.join(format!("{name}.wasm")));
    }
    candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        anyhow::anyhow!(
            "no storage plugin for {scheme}:// prefixes (looked for {}); set WALSHIP_PLUGIN or WALSHIP_PLUGIN_DIR",
            candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        )
    })
}

/// Storage errors that mean "fix the configuration", as opposed to a
/// transient problem. Used to word messages.
pub fn storage_hint(e: &StorageError) -> &'static str {
    match e {
        StorageError::Unauthenticated(_)
        | StorageError::PermissionDenied(_)
        | StorageError::InvalidConfig(_) => " (a configuration problem: retrying will not help)",
        _ => "",
    }
}

/// Peak resident memory of this process so far (VmHWM), for `WALSHIP_TIMINGS`.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

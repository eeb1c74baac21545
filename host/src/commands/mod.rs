//! One module per command. Each returns `Result<(), Failure>`: the failure
//! carries the exit code PostgreSQL must see and a one-line reason.

pub mod backup_fetch;
pub mod backup_list;
pub mod backup_mark;
pub mod backup_push;
pub mod check;
pub mod config;
pub mod copy;
pub mod delete;
pub mod metrics;
pub mod plugin_inspect;
pub mod plugin_install;
pub mod plugin_test;
pub mod storage_ops;
pub mod wal_fetch;
pub mod wal_prefetch;
pub mod wal_push;
pub mod wal_push_ahead;
pub mod wal_show;
pub mod wal_verify;

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::plugin::{OwnState, Plugin, PluginConfig, PluginStore, RuntimeOptions};
use crate::plugin_registry::{self, Resolved};
use crate::retry::{RetryPolicy, Retrying};
use crate::settings::Settings;
use crate::storage::StorageError;

/// Exit code for a failure PostgreSQL should retry later (archive_command)
/// or read as "not in the archive" (restore_command).
pub const EXIT_FAILURE: u8 = 1;
/// A detached helper (the pusher, the prefetcher) takes no new work after
/// this long; the next wal-push or wal-fetch starts a fresh one. Its own
/// bound, not the commands' deadline: a helper must never be stopped in the
/// middle of an upload because PostgreSQL's per-file deadline ran out.
pub const HELPER_LIFETIME: std::time::Duration = std::time::Duration::from_secs(300);
/// The hard stop of a helper: far beyond any single upload or download it
/// can have started before its lifetime ended.
pub const HELPER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Whether a helper started at `started` may still take new work.
pub fn helper_takes_work(started: std::time::Instant) -> bool {
    started.elapsed() < HELPER_LIFETIME
}

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

/// Starts `walship ARGS` detached (its own process group, so PostgreSQL's
/// signals to the archive or restore command do not reach it, and nobody
/// waits for it), in the same directory, with the settings this process
/// resolved: what came from flags is handed on as flags or environment,
/// the rest is inherited.
///
/// Its stderr goes to `log` (appended; started afresh past 1 MiB), not to
/// ours: a helper outlives the command that started it, and a caller that
/// reads the command's output to its end would otherwise wait for the
/// helper too. What it logs only ever concerns work PostgreSQL will do
/// (and report) itself if the helper fails.
pub fn spawn_detached(ctx: &Context, args: &[&OsStr], prefix: &str, log: &std::path::Path) {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let s = &ctx.settings;
    let mut cmd = Command::new(exe);
    cmd.arg("--compression")
        .arg(s.compression.to_string())
        .arg("--log-level")
        .arg(format!("{:?}", s.log_level).to_lowercase())
        .args(args)
        .current_dir(&ctx.cwd)
        .env("WALSHIP_PREFIX", prefix)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(helper_log(log).map_or_else(Stdio::null, Stdio::from));
    if let Some(p) = &s.config_path {
        cmd.env("WALSHIP_CONFIG", p);
    }
    if let Some(p) = &s.plugin_file {
        cmd.env("WALSHIP_PLUGIN", p);
    }
    if let (Some(first), true) = (s.plugin_dirs.first(), s.plugin_dirs.len() > 1) {
        cmd.env("WALSHIP_PLUGIN_DIR", first);
    }
    if let Some(p) = &s.cache_dir {
        cmd.env("WALSHIP_CACHE_DIR", p);
    }
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    if let Err(e) = cmd.spawn() {
        crate::logging::log_line(
            crate::logging::LogLevelFilter::Info,
            &format!("cannot start walship {args:?}: {e}"),
        );
    }
}

/// A detached helper's log file, opened for appending.
fn helper_log(path: &std::path::Path) -> Option<std::fs::File> {
    const MAX_LOG: u64 = 1 << 20;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ok()?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .ok()?;
    if file.metadata().is_ok_and(|m| m.len() > MAX_LOG) {
        file.set_len(0).ok()?;
    }
    Some(file)
}

/// A plugin store with the host's retries, as commands use it.
pub type Store<'p> = Retrying<PluginStore<'p>>;

/// Opens the store at the configured prefix, with retries; a failure says
/// what to check (`storage_hint`).
pub async fn open_store<'p>(
    ctx: &Context,
    plugin: &'p Plugin,
    fail: &impl Fn(String) -> Failure,
) -> Result<Store<'p>, Failure> {
    open_store_with(ctx, plugin, fail, ctx.retry_policy()).await
}

/// `open_store` with a retry policy of the caller's.
pub async fn open_store_with<'p>(
    ctx: &Context,
    plugin: &'p Plugin,
    fail: &impl Fn(String) -> Failure,
    policy: RetryPolicy,
) -> Result<Store<'p>, Failure> {
    let prefix = ctx.prefix().map_err(|e| fail(format!("{e:#}")))?;
    let store = plugin
        .open(prefix, |info| ctx.plugin_config(info))
        .await
        .map_err(|e| fail(format!("{e}{}", storage_hint(&e))))?;
    Ok(Retrying::new(store, policy))
}

/// What every command gets: resolved settings and where it runs.
pub struct Context {
    pub settings: Settings,
    /// The working directory: the data directory when PostgreSQL runs us.
    pub cwd: PathBuf,
    pub started: Instant,
    /// The command writes to the archive, so it may create the archive's
    /// directory (never its parents); reads never create anything.
    pub writes: bool,
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
            create_missing_directory: self.writes,
            own_state: self.own_state(),
            allowed_settings: self
                .settings
                .plugin_settings
                .get("WALSHIP_PLUGIN_SETTINGS")
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            allow_http_credentials: self
                .settings
                .plugin_settings
                .get("WALSHIP_ALLOW_HTTP_CREDENTIALS")
                .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes")),
        }
    }

    /// What walship keeps for itself, which no plugin may be granted: native
    /// code it loads (the cache), plugins it runs, its settings, and the
    /// cluster it archives (the working directory when it holds a data
    /// directory, as under archive_command, and PGDATA).
    fn own_state(&self) -> Vec<OwnState> {
        let s = &self.settings;
        let own = |what: &str, path: &std::path::Path| OwnState {
            what: what.to_string(),
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
        };
        let mut state = Vec::new();
        state.extend(s.cache_dir.iter().map(|d| own("the plugin cache", d)));
        state.extend(s.plugin_dirs.iter().map(|d| own("the plugin directory", d)));
        state.extend(s.plugin_file.iter().map(|f| own("the plugin file", f)));
        state.extend(s.config_path.iter().map(|f| own("the settings file", f)));
        if self.cwd.join("PG_VERSION").is_file() {
            state.push(own("the data directory", &self.cwd));
        }
        if let Some(pgdata) = s.plugin_settings.get("PGDATA").filter(|p| !p.is_empty()) {
            state.push(own(
                "the data directory (PGDATA)",
                std::path::Path::new(pgdata),
            ));
        }
        state
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            first_backoff: std::time::Duration::from_millis(200),
            max_backoff: std::time::Duration::from_secs(10),
            deadline: self.started + self.settings.deadline,
        }
    }

    /// WALSHIP_WAL_RATE_LIMIT: one schedule for every walship process of
    /// this archive (in the cache directory), so PostgreSQL's archive and
    /// restore commands, the pusher and the prefetcher share the limit.
    pub fn wal_rate_limit(&self) -> Option<crate::rate_limit::SharedRateLimit> {
        let rate = self.settings.wal_rate_limit?;
        let dir = self.settings.cache_dir.as_deref()?;
        let prefix = self.settings.prefix.as_deref()?;
        let key = blake3::hash(prefix.as_bytes()).to_hex();
        Some(crate::rate_limit::SharedRateLimit::new(
            rate,
            dir.join("rate").join(&key[..16]),
        ))
    }

    /// The bandwidth limits of a backup command, shared by all its lanes.
    pub fn rate_limits(&self) -> crate::rate_limit::Limits {
        crate::rate_limit::Limits {
            network: self
                .settings
                .network_rate_limit
                .map(crate::rate_limit::RateLimit::new),
            disk: self
                .settings
                .disk_rate_limit
                .map(crate::rate_limit::RateLimit::new),
        }
    }

    /// For restores (wal-fetch, backup-fetch): a transient failure is
    /// retried until the command's deadline. Outside standby mode a
    /// wal-fetch that gives up ends recovery (exit 126), so a flaky network
    /// may slow a restore down but must never end it; only the deadline or
    /// an error retrying cannot fix does.
    pub fn restore_retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: u32::MAX,
            ..self.retry_policy()
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
        Ok(load_named(self, scheme_of(prefix))?.0)
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

/// The plugin file for a scheme or backend name: `WALSHIP_PLUGIN` if set,
/// else what the plugin directories hold (see `plugin_registry`).
pub fn plugin_path(settings: &Settings, scheme: &str) -> anyhow::Result<Resolved> {
    if let Some(file) = &settings.plugin_file {
        return Ok(Resolved {
            path: file.clone(),
            expected_sha256: None,
            declared_settings: None,
        });
    }
    Ok(plugin_registry::resolve(&settings.plugin_dirs, scheme)?)
}

/// Loads a plugin named by a file path, a scheme or a backend name. An
/// installed plugin must still have the sha256 it was installed with.
pub fn load_named(ctx: &Context, plugin: &str) -> anyhow::Result<(Plugin, PathBuf)> {
    load_named_with(ctx, plugin, ctx.runtime_options())
}

/// `load_named` with runtime options of the caller's (a copy's destination
/// may be created, its source not).
pub fn load_named_with(
    ctx: &Context,
    plugin: &str,
    options: RuntimeOptions,
) -> anyhow::Result<(Plugin, PathBuf)> {
    let resolved = if plugin.ends_with(".wasm") || plugin.contains('/') {
        Resolved {
            path: PathBuf::from(plugin),
            expected_sha256: None,
            declared_settings: None,
        }
    } else {
        plugin_path(&ctx.settings, plugin)?
    };
    let mut loaded = Plugin::load(&resolved.path, options)?;
    loaded.provenance = provenance(&ctx.settings, &resolved.path);
    loaded.declared_at_install = resolved.declared_settings.clone();
    if let Some(expected) = &resolved.expected_sha256
        && *expected != loaded.digest.0
    {
        anyhow::bail!(
            "plugin {} changed since it was installed (sha256 {} instead of {expected}); reinstall it with `walship plugin install`",
            resolved.path.display(),
            loaded.digest.0
        );
    }
    Ok((loaded, resolved.path))
}

/// Bundled if the file lies in the bundled plugin directory (beside the
/// binary; the last plugin directory), whether found there by scheme or named
/// by `WALSHIP_PLUGIN`; anything else is third-party.
pub fn provenance(settings: &Settings, plugin: &std::path::Path) -> crate::plugin::Provenance {
    let bundled_dir = settings
        .plugin_dirs
        .last()
        .and_then(|d| std::fs::canonicalize(d).ok());
    let parent = std::fs::canonicalize(plugin)
        .ok()
        .and_then(|p| p.parent().map(std::path::Path::to_path_buf));
    match (bundled_dir, parent) {
        (Some(dir), Some(parent)) if dir == parent => crate::plugin::Provenance::Bundled,
        _ => crate::plugin::Provenance::ThirdParty,
    }
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

/// CPU time (user + system, every thread) this process has used so far, in
/// milliseconds, for `WALSHIP_TIMINGS` (the benchmark's CPU per segment).
pub fn cpu_ms() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is valid.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } != 0 {
        return 0.0;
    }
    // SAFETY: initialised by the successful call above.
    let usage = unsafe { usage.assume_init() };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    ms(usage.ru_utime) + ms(usage.ru_stime)
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

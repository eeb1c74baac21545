//! The plugin runtime: loads a storage plugin (a wasm component), sandboxes
//! it, and exposes it as an `ObjectStore`.
//!
//! This module knows nothing of PostgreSQL or of walship's object format.

mod address_class;
mod bindings;
mod cache;
mod convert;
mod engine;
mod entitlement;
mod grant_dir;
mod manifest;
mod outbound;
mod sandbox;
mod state;
mod value_cache;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use wasmtime::component::{Component, HasSelf, Linker, ResourceAny};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpCtx;

pub use bindings::WIT_VERSION;
pub use cache::{ComponentCache, LoadPath, PluginDigest, usable_cache_dir};
pub use entitlement::{Provenance, describe_declared};
pub use grant_dir::OwnState;
pub use outbound::check_ca_file;
pub use sandbox::{Grants, SandboxPolicy};

use bindings::StoragePluginPre;
use bindings::exports::walship::storage::backend::Error as WitError;
use state::{MemoryLimiter, PluginState};

use crate::logging::LogLevelFilter;
use crate::storage::{
    BackendInfo, ByteRange, ConfigKind, Key, ListOptions, ListPage, ObjectMeta, ObjectStore,
    PartReceipt, PutOptions, StorageError,
};

/// Limits and knobs of the runtime, resolved from settings.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Where precompiled plugins are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Cap on a plugin instance's linear memory.
    pub memory_limit_bytes: usize,
    /// Wall-clock limit for one call into a plugin.
    pub call_timeout: Duration,
    pub policy: SandboxPolicy,
    pub log_level: LogLevelFilter,
    /// Extra trusted CA certificates for plugins' https requests.
    pub ca_file: Option<PathBuf>,
    /// Whether a granted directory that does not exist yet may be created
    /// (one level: its parent must exist). Only commands that write to the
    /// archive create it; a read never leaves a directory behind.
    pub create_missing_directory: bool,
    /// walship's own files and directories: never granted to a plugin.
    pub own_state: Vec<OwnState>,
    /// Setting names the operator allows a third-party plugin to receive
    /// (`WALSHIP_PLUGIN_SETTINGS`), beyond those of its own (entitlement.rs).
    pub allowed_settings: Vec<String>,
    /// Let a plugin holding credentials use plain http beyond this machine
    /// (`WALSHIP_ALLOW_HTTP_CREDENTIALS=1`); off by default.
    pub allow_http_credentials: bool,
}

/// A loaded plugin: compiled code plus a linker, ready to instantiate.
pub struct Plugin {
    engine: Engine,
    pre: StoragePluginPre<PluginState>,
    pub digest: PluginDigest,
    pub load_path: LoadPath,
    /// Time to get the compiled component (cache map or compile), and to
    /// link it, for `WALSHIP_TIMINGS` and the benchmark.
    pub load_time: Duration,
    pub link_time: Duration,
    options: RuntimeOptions,
    info: std::cell::OnceCell<BackendInfo>,
    outbound: std::sync::Arc<outbound::Outbound>,
    /// Bundled or not: decides which settings it may receive.
    pub provenance: Provenance,
    /// The settings it declared when it was installed (from its record), if
    /// known: a plugin that declares others now is refused.
    pub declared_at_install: Option<Vec<String>>,
}

impl Plugin {
    /// Loads the plugin file at `path` (from the precompiled cache if possible).
    pub fn load(path: &Path, options: RuntimeOptions) -> Result<Self> {
        let engine = engine::new_engine()
            .map_err(wasm_err)
            .context("cannot create the WebAssembly engine")?;
        let cache = match &options.cache_dir {
            Some(dir) => ComponentCache::new(dir),
            None => ComponentCache::disabled(),
        };
        let t = Instant::now();
        let (component, digest, load_path) = cache.load(&engine, path)?;
        let load_time = t.elapsed();
        let t = Instant::now();
        let pre = link(&engine, &component)
            .map_err(wasm_err)
            .with_context(|| {
                format!(
                    "{} is not a walship storage plugin (walship:storage@{WIT_VERSION})",
                    path.display()
                )
            })?;
        let link_time = t.elapsed();
        engine::start_epoch_ticker(&engine);
        Ok(Self {
            load_time,
            link_time,
            engine,
            pre,
            digest,
            load_path,
            outbound: outbound::Outbound::new(options.ca_file.clone()),
            options,
            info: Default::default(),
            provenance: Provenance::ThirdParty,
            declared_at_install: None,
        })
    }

    /// The settings `info` declares that this plugin will not be handed,
    /// with the reason (see entitlement.rs).
    pub fn refused_settings(&self, info: &BackendInfo) -> Vec<(String, String)> {
        entitlement::entitled(info, self.provenance, &self.options.allowed_settings)
            .1
            .into_iter()
            .map(|(name, why)| (name, why.to_string()))
            .collect()
    }

    /// Refuses a plugin whose declared settings differ from those recorded
    /// when it was installed: the operator agreed to those.
    fn check_declaration(&self, info: &BackendInfo) -> Result<(), StorageError> {
        let Some(recorded) = &self.declared_at_install else {
            return Ok(());
        };
        let now = describe_declared(&info.config_keys);
        if now != *recorded {
            return Err(StorageError::PermissionDenied(format!(
                "plugin {} now declares the settings [{}], but declared [{}] when it was installed; reinstall it (walship plugin install) to accept the change",
                info.backend,
                now.join(", "),
                recorded.join(", ")
            )));
        }
        Ok(())
    }

    /// The contract the component was built against, as it names its
    /// exports: `walship:storage@0.1.0` for a plugin built before 0.1.1.
    pub fn contract(&self) -> String {
        let component = self.pre.instance_pre().component();
        component
            .component_type()
            .exports(&self.engine)
            .find_map(|(name, _)| {
                let version = name.strip_prefix("walship:storage/backend@")?;
                Some(format!("walship:storage@{version}"))
            })
            .unwrap_or_else(|| format!("walship:storage@{WIT_VERSION}"))
    }

    /// Static facts, from an instance with no grants at all. Asked once per
    /// process.
    pub async fn info(&self) -> Result<BackendInfo, StorageError> {
        if let Some(info) = self.info.get() {
            return Ok(info.clone());
        }
        let mut instance = self.instantiate(&[], &[], "plugin", None, None).await?;
        self.info_from(&mut instance).await
    }

    async fn info_from(&self, instance: &mut Instance) -> Result<BackendInfo, StorageError> {
        if let Some(info) = self.info.get() {
            return Ok(info.clone());
        }
        let info = instance
            .call(self.options.call_timeout, "info", async |b, store| {
                Ok(Ok(b.walship_storage_backend().call_info(store).await?))
            })
            .await?;
        Ok(self.info.get_or_init(|| convert::info(info)).clone())
    }

    /// Opens a store at `prefix`: asks the plugin what it needs, checks that
    /// against the policy, then opens it in an instance with exactly those grants.
    ///
    /// `config` picks the settings to hand over, given what the plugin declares.
    pub async fn open(
        &self,
        prefix: &str,
        config: impl FnOnce(&BackendInfo) -> Result<PluginConfig, StorageError>,
    ) -> Result<PluginStore<'_>, StorageError> {
        // info and plan both run in one instance without grants.
        let mut planner = self.instantiate(&[], &[], "plugin", None, None).await?;
        let info = self.info_from(&mut planner).await?;
        if !info
            .schemes
            .iter()
            .any(|s| prefix.starts_with(&format!("{s}:")))
        {
            return Err(StorageError::InvalidConfig(format!(
                "plugin {} serves {} prefixes, not {prefix}",
                info.backend,
                info.schemes
                    .iter()
                    .map(|s| format!("{s}://"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        self.check_declaration(&info)?;
        let (entitled, refused) =
            entitlement::entitled(&info, self.provenance, &self.options.allowed_settings);
        for (name, why) in refused
            .iter()
            .filter(|_| LogLevelFilter::Info <= self.options.log_level)
        {
            crate::logging::log_line(
                LogLevelFilter::Info,
                &format!(
                    "plugin {} declares {name}, which is not handed over: {why} (allow it by name with WALSHIP_PLUGIN_SETTINGS)",
                    info.backend
                ),
            );
        }
        let config = config(&entitled)?;
        let grants = {
            let plain = config.plain.clone();
            let prefix = &prefix.to_string();
            let planned = planner
                .call(self.options.call_timeout, "plan", async |b, store| {
                    b.walship_storage_backend()
                        .call_plan(store, prefix, &plain)
                        .await
                })
                .await?;
            convert::grants(planned)
        };
        let configured = manifest::configured_hosts(prefix, &[&config.plain, &config.secrets]);
        manifest::check(&info.backend, &info.capabilities, &grants, &configured)
            .map_err(StorageError::PermissionDenied)?;
        let dirs = self
            .options
            .policy
            .check(&grants, local_prefix_path(prefix).as_deref())
            .map_err(|e| StorageError::InvalidConfig(e.to_string()))?;
        for dir in &dirs {
            // A missing archive directory is made only by a command that
            // stores, and only one level deep (a mistyped path is an error,
            // not a new archive: archive_dir.rs); then the grant is opened
            // beneath its root without following symlinks, like every later
            // open, which also refuses a bad grant early.
            if dir.writable && !dir.path.exists() {
                crate::archive_dir::create_if_allowed(
                    &dir.path,
                    self.options.create_missing_directory,
                )
                .map_err(StorageError::InvalidConfig)?;
            }
            dir.open(false, &self.options.own_state)
                .map_err(|e| StorageError::PermissionDenied(e.to_string()))?;
        }
        let mut store = PluginStore {
            plugin: self,
            info,
            grants,
            dirs,
            prefix: prefix.to_string(),
            config,
            live: None,
        };
        let timeout = self.options.call_timeout;
        let (instance, handle) = store.live().await?;
        let handle = *handle;
        let effective = instance
            .call(timeout, "features", async |b, s| {
                Ok(Ok(b
                    .walship_storage_backend()
                    .store()
                    .call_features(s, handle)
                    .await?))
            })
            .await?;
        // A configuration can take capabilities away, never add ones the
        // plugin did not declare.
        store.info.features = store.info.features.intersect(convert::features(effective));
        Ok(store)
    }

    /// A fresh instance with exactly `grants`. `manifest` (the plugin's
    /// declared capabilities and the hosts its configuration names) bounds
    /// endpoints it asks for at run time; without one it gets none. `values`
    /// is what it may keep between processes (an open store's only).
    async fn instantiate(
        &self,
        endpoints: &[sandbox::Endpoint],
        dirs: &[grant_dir::GrantedDir],
        name: &str,
        manifest: Option<sandbox::RuntimeManifest>,
        values: Option<value_cache::ValueCache>,
    ) -> Result<Instance, StorageError> {
        let wasi = sandbox::wasi_context(dirs, &self.options.own_state)
            .map_err(|e| StorageError::PermissionDenied(format!("{e:#}")))?;
        let state = PluginState {
            wasi,
            http: {
                let mut http = WasiHttpCtx::new();
                http.set_field_size_limit(MAX_HEADER_BYTES);
                http
            },
            table: {
                // Every WASI resource (header sets, streams, pollables, ...)
                // is host memory the plugin's cap does not count: bound
                // how many it may hold at once.
                let mut table = wasmtime::component::ResourceTable::new();
                table.set_max_capacity(MAX_RESOURCES);
                table
            },
            gate: sandbox::NetworkGate {
                granted: endpoints.to_vec(),
                policy: self.options.policy.clone(),
                timeouts: Default::default(),
                plugin_name: name.to_string(),
                outbound: self.outbound.clone(),
                manifest,
            },
            memory: MemoryLimiter::new(self.options.memory_limit_bytes),
            log_level: self.options.log_level,
            deadline: Instant::now() + self.options.call_timeout,
            values,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory);
        store.set_epoch_deadline(1);
        // Every tick: yield to the executor (so the host-side timeout can
        // fire) or, past the deadline, trap.
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        let timeout = self.options.call_timeout;
        let bindings =
            match tokio::time::timeout(timeout, self.pre.instantiate_async(&mut store)).await {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => return Err(fault(&store, "instantiate", timeout, e)),
                Err(_) => return Err(StorageError::PluginTimeout(timeout)),
            };
        Ok(Instance { store, bindings })
    }
}

/// Host-side resources one plugin instance may hold at once (a store uses
/// a few dozen: streams, pollables, header sets of requests in flight).
const MAX_RESOURCES: usize = 4096;
/// Largest set of HTTP header fields a plugin may build (wasmtime's default
/// is 128 KiB; S3 and Azure requests carry a few KiB).
const MAX_HEADER_BYTES: usize = 64 << 10;

fn link(engine: &Engine, component: &Component) -> wasmtime::Result<StoragePluginPre<PluginState>> {
    let mut linker = Linker::<PluginState>::new(engine);
    // The WASI a Rust wasm32-wasip2 program imports anyway; what it can reach
    // through it is decided by the WasiCtx (see sandbox.rs), not by linking.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    bindings::StoragePlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
    StoragePluginPre::new(linker.instantiate_pre(component)?)
}

/// The path of a `scheme:///path` prefix (no authority): the operator named
/// that directory, so a plugin may be granted it.
fn local_prefix_path(prefix: &str) -> Option<PathBuf> {
    let (_, rest) = prefix.split_once("://")?;
    rest.starts_with('/').then(|| {
        PathBuf::from(rest.trim_end_matches('/'))
            .components()
            .collect()
    })
}

/// Settings handed to a plugin: plain ones and secrets, separately.
#[derive(Clone, Default)]
pub struct PluginConfig {
    pub plain: Vec<(String, String)>,
    pub secrets: Vec<(String, String)>,
}

impl std::fmt::Debug for PluginConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a log, not even a debug one.
        let names: Vec<&str> = self.secrets.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("PluginConfig")
            .field("plain", &self.plain)
            .field("secrets", &names)
            .finish()
    }
}

impl PluginConfig {
    /// Picks exactly the settings the plugin declared, from `lookup`. A
    /// `secret-file` setting is replaced by the contents of the file it names
    /// (read now: platforms rotate such tokens).
    pub fn gather(
        info: &BackendInfo,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, StorageError> {
        let mut config = Self::default();
        for key in &info.config_keys {
            let Some(value) = lookup(&key.name) else {
                continue;
            };
            match key.kind {
                ConfigKind::Plain => config.plain.push((key.name.clone(), value)),
                ConfigKind::Secret => config.secrets.push((key.name.clone(), value)),
                ConfigKind::SecretFile => {
                    let contents = read_secret_file(&key.name, Path::new(&value))?;
                    config.secrets.push((key.name.clone(), contents));
                }
            }
        }
        Ok(config)
    }
}

/// Largest secret file handed over (tokens are a few KiB).
const MAX_SECRET_FILE: u64 = 64 << 10;

fn read_secret_file(setting: &str, path: &Path) -> Result<String, StorageError> {
    use std::io::Read;
    let fail =
        |why: String| StorageError::InvalidConfig(format!("{setting}={}: {why}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let mut text = String::new();
    file.take(MAX_SECRET_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| fail(format!("cannot read it as text: {e}")))?;
    if text.len() as u64 > MAX_SECRET_FILE {
        return Err(fail(format!(
            "larger than {} KiB; is this the right file?",
            MAX_SECRET_FILE >> 10
        )));
    }
    let text = text.trim().to_string();
    if text.is_empty() {
        return Err(fail("the file is empty".into()));
    }
    Ok(text)
}

struct Instance {
    store: Store<PluginState>,
    bindings: bindings::StoragePlugin,
}

impl Instance {
    /// Runs one call with the per-call deadline, turning traps, memory
    /// exhaustion and timeouts into `StorageError`s.
    async fn call<T>(
        &mut self,
        timeout: Duration,
        op: &str,
        f: impl AsyncFnOnce(
            &bindings::StoragePlugin,
            &mut Store<PluginState>,
        ) -> wasmtime::Result<Result<T, WitError>>,
    ) -> Result<T, StorageError> {
        self.store.data_mut().deadline = Instant::now() + timeout;
        let Instance { store, bindings } = self;
        match tokio::time::timeout(timeout, f(bindings, store)).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => Err(convert::error(e)),
            Ok(Err(trap)) => Err(fault(&self.store, op, timeout, trap)),
            Err(_) => Err(StorageError::PluginTimeout(timeout)),
        }
    }
}

fn fault(
    store: &Store<PluginState>,
    op: &str,
    timeout: Duration,
    e: wasmtime::Error,
) -> StorageError {
    let state = store.data();
    if state.memory.exceeded {
        return StorageError::PluginFault(format!(
            "{op}: plugin exceeded its memory limit of {} MiB (WALSHIP_PLUGIN_MEMORY_MIB)",
            state.memory.max_bytes >> 20
        ));
    }
    if Instant::now() >= state.deadline {
        return StorageError::PluginTimeout(timeout);
    }
    // The root cause names the trap ("wasm trap: ..."); the outer layers are
    // a multi-line backtrace.
    let cause = e.root_cause().to_string();
    let cause = cause.lines().next().unwrap_or("trap");
    StorageError::PluginFault(format!("{op}: plugin crashed: {cause}"))
}

/// An open store backed by a plugin instance. A trap or timeout discards the
/// instance; the next call instantiates and opens afresh.
pub struct PluginStore<'p> {
    plugin: &'p Plugin,
    info: BackendInfo,
    grants: Grants,
    /// The directories of `grants`, with the roots they are opened beneath.
    dirs: Vec<grant_dir::GrantedDir>,
    prefix: String,
    config: PluginConfig,
    live: Option<(Instance, ResourceAny)>,
}

impl PluginStore<'_> {
    /// What the sandbox grants this store.
    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// The names (never the values) of the secrets this store was handed.
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        self.config.secrets.iter().map(|(name, _)| name.as_str())
    }

    /// The same store opened in an instance with no grants at all: for the
    /// conformance suite, to check from outside that the sandbox holds.
    pub fn without_grants(&self) -> Self {
        PluginStore {
            plugin: self.plugin,
            info: self.info.clone(),
            grants: Grants::default(),
            dirs: Vec::new(),
            prefix: self.prefix.clone(),
            config: self.config.clone(),
            live: None,
        }
    }

    async fn live(&mut self) -> Result<&mut (Instance, ResourceAny), StorageError> {
        if self.live.is_none() {
            let mut instance = self
                .plugin
                .instantiate(
                    &self.grants.endpoints,
                    &self.dirs,
                    &self.info.backend,
                    Some(sandbox::RuntimeManifest {
                        capabilities: self.info.capabilities.clone(),
                        configured: manifest::configured_hosts(
                            &self.prefix,
                            &[&self.config.plain, &self.config.secrets],
                        ),
                        endpoints: manifest::configured_endpoints(
                            &self.prefix,
                            &[&self.config.plain, &self.config.secrets],
                        ),
                        holds_secrets: !self.config.secrets.is_empty(),
                        cleartext_allowed: self.plugin.options.allow_http_credentials,
                    }),
                    self.plugin.options.cache_dir.as_deref().map(|dir| {
                        value_cache::ValueCache::open(
                            dir,
                            &self.plugin.digest,
                            &self.prefix,
                            &self.config,
                        )
                    }),
                )
                .await?;
            let (prefix, plain, secrets) = (&self.prefix, &self.config.plain, &self.config.secrets);
            let handle = instance
                .call(
                    self.plugin.options.call_timeout,
                    "open",
                    async |b, store| {
                        b.walship_storage_backend()
                            .store()
                            .call_open(store, prefix, plain, secrets)
                            .await
                    },
                )
                .await?;
            self.live = Some((instance, handle));
        }
        Ok(self.live.as_mut().unwrap())
    }
}

/// Calls a method of the plugin's `store` resource, discarding the instance
/// if the call faulted.
macro_rules! store_call {
    ($self:ident, $op:literal, |$b:ident, $store:ident, $h:ident| $call:expr) => {{
        let timeout = $self.plugin.options.call_timeout;
        let (instance, handle) = $self.live().await?;
        let $h = *handle;
        let result = instance
            .call(timeout, $op, async |$b, $store| $call.await)
            .await;
        if matches!(
            result,
            Err(StorageError::PluginFault(_) | StorageError::PluginTimeout(_))
        ) {
            $self.live = None;
        }
        result
    }};
}

impl ObjectStore for PluginStore<'_> {
    fn info(&self) -> &BackendInfo {
        &self.info
    }

    /// A second instance of the plugin, opened the same way when first used.
    fn worker(&self) -> Option<Self> {
        Some(PluginStore {
            plugin: self.plugin,
            info: self.info.clone(),
            grants: self.grants.clone(),
            dirs: self.dirs.clone(),
            prefix: self.prefix.clone(),
            config: self.config.clone(),
            live: None,
        })
    }

    async fn head(&mut self, key: &Key) -> Result<ObjectMeta, StorageError> {
        let k = key.as_string();
        let meta = store_call!(self, "head", |b, store, h| b
            .walship_storage_backend()
            .store()
            .call_head(store, h, k))?;
        Ok(convert::meta(meta))
    }

    async fn get(
        &mut self,
        key: &Key,
        range: Option<ByteRange>,
    ) -> Result<(ObjectMeta, Vec<u8>), StorageError> {
        let k = key.as_string();
        let range = range.map(convert::range_to_wit);
        let got = store_call!(self, "get", |b, store, h| b
            .walship_storage_backend()
            .store()
            .call_get(store, h, k, range))?;
        Ok((convert::meta(got.meta), got.data))
    }

    async fn put(
        &mut self,
        key: &Key,
        data: &[u8],
        options: &PutOptions,
    ) -> Result<ObjectMeta, StorageError> {
        let k = key.as_string();
        let opts = convert::put_options_to_wit(options);
        let meta = store_call!(self, "put", |b, store, h| b
            .walship_storage_backend()
            .store()
            .call_put(store, h, k, data, &opts))?;
        Ok(convert::meta(meta))
    }

    async fn list_page(&mut self, options: &ListOptions) -> Result<ListPage, StorageError> {
        let opts = convert::list_options_to_wit(options);
        let page = store_call!(self, "list", |b, store, h| b
            .walship_storage_backend()
            .store()
            .call_list_objects(store, h, &opts))?;
        Ok(convert::page(page))
    }

    async fn delete(&mut self, keys: &[Key]) -> Result<Vec<(String, StorageError)>, StorageError> {
        let ks: Vec<String> = keys.iter().map(|k| k.as_str().to_string()).collect();
        let failures = store_call!(self, "delete", |b, store, h| b
            .walship_storage_backend()
            .store()
            .call_delete(store, h, &ks))?;
        Ok(failures
            .into_iter()
            .map(|f| (f.key, convert::error(f.error)))
            .collect())
    }

    async fn start_multipart(
        &mut self,
        key: &Key,
        options: &PutOptions,
    ) -> Result<String, StorageError> {
        let k = key.as_string();
        let opts = convert::put_options_to_wit(options);
        store_call!(self, "start-multipart", |b, store, h| b
            .walship_storage_backend()
            .store()
            .call_start_multipart(store, h, k, &opts))
    }

    async fn put_part(
        &mut self,
        key: &Key,
        upload_id: &str,
        number: u32,
        data: &[u8],
    ) -> Result<PartReceipt, StorageError> {
        let k = key.as_string();
        let upload_id = &upload_id.to_string();
        let r = store_call!(self, "put-part", |b, store, h| b
            .walship_storage_backend()
            .store()
            .call_put_part(store, h, k, upload_id, number, data))?;
        Ok(convert::receipt(r))
    }

    async fn complete_multipart(
        &mut self,
        key: &Key,
        upload_id: &str,
        parts: &[PartReceipt],
        options: &PutOptions,
    ) -> Result<ObjectMeta, StorageError> {
        let k = key.as_string();
        let upload_id = &upload_id.to_string();
        let opts = convert::put_options_to_wit(options);
        let parts: Vec<_> = parts.iter().map(convert::receipt_to_wit).collect();
        let meta = store_call!(self, "complete-multipart", |b, store, h| b
            .walship_storage_backend()
            .store()
            .call_complete_multipart(store, h, k, upload_id, &parts, &opts))?;
        Ok(convert::meta(meta))
    }

    async fn abort_multipart(&mut self, key: &Key, upload_id: &str) -> Result<(), StorageError> {
        let k = key.as_string();
        let upload_id = &upload_id.to_string();
        store_call!(self, "abort-multipart", |b, store, h| b
            .walship_storage_backend()
            .store()
            .call_abort_multipart(store, h, k, upload_id))
    }
}

fn wasm_err(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:#}")
}

#[cfg(test)]
mod tests {
    //! These load the hostile test plugin that `cargo xtask dist` builds
    //! (`target/test-plugins/hostile.wasm`, or `$WALSHIP_TEST_PLUGINS`).

    use super::*;
    use crate::storage::PutOptions;

    fn hostile_plugin() -> PathBuf {
        let dir = std::env::var_os("WALSHIP_TEST_PLUGINS")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-plugins")
            });
        let path = dir.join("hostile.wasm");
        assert!(
            path.is_file(),
            "{} is missing: run `cargo xtask dist` (or `cargo xtask test`)",
            path.display()
        );
        path
    }

    fn options() -> RuntimeOptions {
        RuntimeOptions {
            cache_dir: None,
            memory_limit_bytes: 64 << 20,
            call_timeout: Duration::from_secs(2),
            policy: SandboxPolicy::default(),
            log_level: LogLevelFilter::Error,
            ca_file: None,
            create_missing_directory: true,
            own_state: Vec::new(),
            allowed_settings: Vec::new(),
            allow_http_credentials: false,
        }
    }

    /// After a trap, a memory blow-up or a timeout, the same store keeps
    /// working: the faulted instance is discarded and the next call gets a
    /// fresh one.
    #[tokio::test(flavor = "current_thread")]
    async fn a_faulting_plugin_leaves_the_next_call_working() {
        let dir = std::env::temp_dir().join(format!("walship-plugin-test-{}", std::process::id()));
        let plugin = Plugin::load(&hostile_plugin(), options()).unwrap();
        let prefix = format!("hostile://{}", dir.display());
        let mut store = plugin
            .open(&prefix, |_| Ok(PluginConfig::default()))
            .await
            .unwrap();
        let put = PutOptions::overwrite();

        let err = store
            .put(&Key::new("x/spin").unwrap(), b"", &put)
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::PluginTimeout(_)), "{err}");
        let err = store
            .put(&Key::new("x/allocate").unwrap(), b"", &put)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("memory limit of 64 MiB"), "{err}");
        let err = store
            .put(&Key::new("x/panic").unwrap(), b"", &put)
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::PluginFault(_)), "{err}");

        let key = Key::new("fine").unwrap();
        store.put(&key, b"still works", &put).await.unwrap();
        assert_eq!(store.get(&key, None).await.unwrap().1, b"still works");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

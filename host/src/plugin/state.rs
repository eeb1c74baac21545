//! Per-instance host state: the WASI context, the HTTP gate, the memory
//! limiter, and the `host` interface the plugin imports.

use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::bindings::walship::storage::cache::Host as CacheHost;
use super::bindings::walship::storage::host::{Host, LogLevel};
use super::bindings::walship::storage::types::{self as wit_types};
use super::sandbox::{Endpoint, NetworkGate};
use super::value_cache::ValueCache;
use crate::logging::{LogLevelFilter, log_line};

pub struct PluginState {
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub table: ResourceTable,
    pub gate: NetworkGate,
    pub memory: MemoryLimiter,
    pub log_level: LogLevelFilter,
    /// When the current call must end; checked on every epoch tick.
    pub deadline: Instant,
    /// Values kept between processes; only an open store has them.
    pub values: Option<ValueCache>,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.gate,
        }
    }
}

impl wit_types::Host for PluginState {}

impl Host for PluginState {
    fn log(&mut self, level: LogLevel, message: String) {
        let level = match level {
            LogLevel::Trace => LogLevelFilter::Trace,
            LogLevel::Debug => LogLevelFilter::Debug,
            LogLevel::Info => LogLevelFilter::Info,
            LogLevel::Warn => LogLevelFilter::Warn,
            LogLevel::Error => LogLevelFilter::Error,
        };
        if level <= self.log_level {
            // One line per message, control characters escaped: a plugin
            // cannot forge extra log lines or rewrite the terminal.
            let message = crate::logging::printable(&message.replace(['\n', '\r'], " "));
            log_line(
                level,
                &format!("plugin {}: {message}", self.gate.plugin_name),
            );
        }
    }

    fn request_endpoint(&mut self, endpoint: wit_types::Endpoint) -> Result<(), String> {
        let requested = Endpoint {
            scheme: endpoint.scheme,
            host: endpoint.host,
            port: endpoint.port,
        };
        if requested.scheme != "http" && requested.scheme != "https" {
            return Err(format!("scheme {} is not http or https", requested.scheme));
        }
        if self.gate.granted.contains(&requested) {
            return Ok(());
        }
        let Some(manifest) = &self.gate.manifest else {
            return Err("endpoints can only be requested by an open store".into());
        };
        if !super::manifest::allows_endpoint(
            &manifest.capabilities,
            &requested,
            &manifest.configured,
        ) {
            return Err(format!(
                "endpoint {requested} is outside the plugin's declared capabilities (network: {})",
                super::manifest::describe_network(&manifest.capabilities)
            ));
        }
        if self.gate.policy.allows_runtime_endpoint(
            &self.gate.granted,
            &manifest.configured,
            &requested,
        ) {
            self.gate.granted.push(requested);
            Ok(())
        } else {
            Err(format!(
                "endpoint {requested} is outside the operator's policy (add its host to allowed_hosts / WALSHIP_ALLOW_HOSTS)"
            ))
        }
    }
}

impl CacheHost for PluginState {
    fn get(&mut self, name: String) -> Option<Vec<u8>> {
        self.values.as_ref()?.get(&name)
    }

    fn put(&mut self, name: String, value: Vec<u8>, ttl_seconds: u32) -> Result<(), String> {
        let Some(values) = &self.values else {
            return Err(
                "only an open store keeps values (or the cache directory is disabled)".into(),
            );
        };
        values.put(
            &name,
            &value,
            std::time::Duration::from_secs(ttl_seconds.into()),
        )
    }
}

/// Caps what a plugin instance holds in wasm memory: the sum of all its
/// linear memories and tables (a component can have several of each; a
/// per-memory cap would let it hold that much in every one), and how many
/// instances, memories and tables it may create. Growing past the cap traps
/// the plugin with a message that names the cap, instead of failing an
/// allocation somewhere deep inside it.
pub struct MemoryLimiter {
    pub max_bytes: usize,
    pub exceeded: bool,
    /// Bytes granted so far, over every memory and table of the instance.
    pub used: usize,
}

/// What one table element is counted as (a function reference and its
/// bookkeeping in wasmtime).
const TABLE_ELEMENT_BYTES: usize = 16;
/// A Rust wasm32-wasip2 component has a handful of core instances, one
/// memory and a few tables; these leave room and stop a component made of
/// thousands.
const MAX_INSTANCES: usize = 100;
const MAX_MEMORIES: usize = 4;
const MAX_TABLES: usize = 100;

impl MemoryLimiter {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            exceeded: false,
            used: 0,
        }
    }

    fn grow(&mut self, bytes: usize) -> wasmtime::Result<bool> {
        let total = self.used.saturating_add(bytes);
        if total > self.max_bytes {
            self.exceeded = true;
            return Err(wasmtime::format_err!(
                "plugin exceeded its memory limit of {} MiB",
                self.max_bytes >> 20
            ));
        }
        self.used = total;
        Ok(true)
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(desired.saturating_sub(current))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(
            desired
                .saturating_sub(current)
                .saturating_mul(TABLE_ELEMENT_BYTES),
        )
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn the_cap_is_on_the_sum_of_every_memory_and_table() {
        let mut limiter = MemoryLimiter::new(64 << 20);
        assert!(limiter.memory_growing(0, 40 << 20, None).unwrap());
        // A second memory (or a table) of its own size is still over the
        // instance's cap.
        assert!(limiter.memory_growing(0, 40 << 20, None).is_err());
        assert!(limiter.exceeded);
        let mut limiter = MemoryLimiter::new(64 << 20);
        assert!(limiter.memory_growing(0, 40 << 20, None).unwrap());
        assert!(limiter.table_growing(0, 2_000_000, None).is_err());
        let mut limiter = MemoryLimiter::new(64 << 20);
        assert!(limiter.memory_growing(0, 32 << 20, None).unwrap());
        assert!(limiter.memory_growing(32 << 20, 60 << 20, None).unwrap());
        assert!(limiter.memory_growing(60 << 20, 65 << 20, None).is_err());
        assert!(limiter.instances() <= 100 && limiter.memories() <= 4);
    }
}

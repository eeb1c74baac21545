//! The wasmtime engine walship runs plugins on, and the clock that bounds them.

use std::sync::OnceLock;
use std::time::Duration;

use wasmtime::{Config, Engine};

/// How often the epoch advances. Every tick a running plugin yields to the
/// host's executor (so host-side timeouts fire even while it spins) and its
/// deadline is checked.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engine configuration is part of the precompiled-component cache key
/// (through `Engine::precompile_compatibility_hash`), so it must be the same
/// in every process.
pub fn new_engine() -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    Engine::new(&config)
}

/// Starts (once per process) a thread that advances the engine's epoch. It
/// holds only a weak reference, so it never keeps an engine alive.
pub fn start_epoch_ticker(engine: &Engine) {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("walship-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .expect("spawning the epoch thread");
    });
}

//! The host's log (walship's stderr, tagged with the plugin's name).

use crate::walship::storage::host::LogLevel;

pub fn debug(message: &str) {
    emit(LogLevel::Debug, message);
}

pub fn warn(message: &str) {
    emit(LogLevel::Warn, message);
}

#[cfg(target_arch = "wasm32")]
fn emit(level: LogLevel, message: &str) {
    crate::walship::storage::host::log(level, message);
}

/// Native builds only run unit tests, where there is no host to call.
#[cfg(not(target_arch = "wasm32"))]
fn emit(_: LogLevel, _: &str) {}

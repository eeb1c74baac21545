//! What the plugin asks of the walship host: log lines and endpoints learned
//! at run time.

use crate::walship::storage::host::LogLevel;
use crate::walship::storage::types::Endpoint;

pub fn debug(message: &str) {
    emit(LogLevel::Debug, message);
}

#[cfg(target_arch = "wasm32")]
fn emit(level: LogLevel, message: &str) {
    crate::walship::storage::host::log(level, message);
}

/// Native builds only run unit tests, where there is no host to call.
#[cfg(not(target_arch = "wasm32"))]
fn emit(_: LogLevel, _: &str) {}

/// Asks the host to let requests reach `endpoint`; the error says why not.
#[cfg(target_arch = "wasm32")]
pub fn request_endpoint(endpoint: &Endpoint) -> Result<(), String> {
    crate::walship::storage::host::request_endpoint(endpoint)
}

#[cfg(not(target_arch = "wasm32"))]
pub fn request_endpoint(_: &Endpoint) -> Result<(), String> {
    Ok(())
}

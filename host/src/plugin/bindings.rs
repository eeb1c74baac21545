//! Host-side bindings for `walship:storage@0.1.0` (`wit/storage.wit`).
//!
//! One module per contract version (Zed's `since_vX` pattern): when 0.2
//! arrives it gets its own module beside this one, and the host picks by the
//! version the component exports.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "walship:storage/storage-plugin@0.1.0",
    exports: { default: async },
});

/// The contract version these bindings speak.
pub const WIT_VERSION: &str = "0.1.0";

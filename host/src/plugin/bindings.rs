//! Host-side bindings for `walship:storage@0.1.1` (`wit/storage.wit`). They
//! serve plugins built against 0.1.0 too: component names match within 0.1.x
//! and 0.1.1 only adds an import.
//!
//! One module per contract version (Zed's `since_vX` pattern): when 0.2
//! arrives it gets its own module beside this one, and the host picks by the
//! version the component exports.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "walship:storage/storage-plugin@0.1.1",
    exports: { default: async },
});

/// The contract version these bindings speak.
pub const WIT_VERSION: &str = "0.1.1";

//! Blocking HTTP for walship's storage plugins, over the wasi:http the walship
//! host provides.
//!
//! A plugin is a single-threaded wasm32-wasip2 component, so one request at a
//! time, sent and answered before `send` returns, is all it needs: bodies are
//! buffered whole (the host hands objects over as `list<u8>` anyway). What the
//! host does, the plugin must not try: TLS roots, proxies, timeouts and which
//! endpoints may be reached at all are the host's, per the operator's policy.
//!
//! With the `object-store` feature, [`WasiHttpConnector`] plugs `send` into
//! object_store's HTTP client; with `crypto`, [`RustCrypto`] is the
//! SHA-256 / HMAC-SHA256 provider object_store signs with (SigV4, Azure
//! SharedKey).
//!
//! Natively (the plugins' unit tests) there is no wasi:http: [`send`] fails
//! with [`FailureKind::Unavailable`], so plugins still build and test there.

mod failure;
mod headers;
#[cfg(target_arch = "wasm32")]
mod wasi;

#[cfg(feature = "object-store")]
mod connector;
#[cfg(feature = "crypto")]
mod crypto;

use bytes::Bytes;

#[cfg(feature = "object-store")]
pub use connector::{HttpHooks, WasiHttpConnector, WasiHttpService};
#[cfg(feature = "crypto")]
pub use crypto::{KnownSha256, RustCrypto};
pub use failure::{FailureKind, HttpFailure};

/// Sends `request` and returns the whole response, whatever its status.
///
/// `Content-Length` is set from the body (wasi:http would otherwise send it
/// chunked, which S3 refuses). Only a request that got no HTTP answer at all
/// (denied by the host, no connection, TLS, timeout, reset) is an error.
pub fn send(request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpFailure> {
    #[cfg(target_arch = "wasm32")]
    {
        wasi::send(request)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        Err(HttpFailure::new(
            FailureKind::Unavailable,
            failure::authority_of(request.uri()),
            "wasi:http exists only inside the plugin (wasm32-wasip2); this native build cannot \
             send requests",
        ))
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn natively_send_says_why_it_cannot() {
        let request = http::Request::get("https://bucket.s3.us-east-1.amazonaws.com/key")
            .body(Bytes::new())
            .unwrap();
        let err = send(request).unwrap_err();
        assert_eq!(err.kind(), FailureKind::Unavailable);
        assert!(err.to_string().contains("only inside the plugin"), "{err}");
    }
}

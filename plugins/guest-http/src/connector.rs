//! object_store's HTTP client over [`crate::send`].
//!
//! object_store (with `default-features = false`) has no transport of its
//! own on wasm; this is it. `ClientOptions` it cannot honour are ignored on
//! purpose: TLS roots, proxies and timeouts are the walship host's, applied
//! to every request the plugin makes.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::BodyExt;
use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse,
    HttpResponseBody, HttpService,
};

use crate::{FailureKind, HttpFailure};

/// What a plugin may do around each exchange object_store makes: adjust the
/// request just before it goes out (after object_store signed it), and look
/// at the response before object_store does.
pub trait HttpHooks: fmt::Debug + Send + Sync + 'static {
    fn before_send(&self, _request: &mut http::Request<Bytes>) {}
    fn after_receive(
        &self,
        _method: &http::Method,
        _uri: &http::Uri,
        _response: &http::Response<Bytes>,
    ) {
    }
}

/// An `HttpConnector` for object_store builders (`with_http_connector`).
#[derive(Clone, Debug, Default)]
pub struct WasiHttpConnector {
    hooks: Option<Arc<dyn HttpHooks>>,
}

impl WasiHttpConnector {
    pub fn new() -> Self {
        Self::default()
    }

    /// A connector whose every exchange passes through `hooks`.
    pub fn with_hooks(hooks: Arc<dyn HttpHooks>) -> Self {
        WasiHttpConnector { hooks: Some(hooks) }
    }
}

impl HttpConnector for WasiHttpConnector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(WasiHttpService {
            hooks: self.hooks.clone(),
        }))
    }
}

/// The `HttpService` behind [`WasiHttpConnector`]: one blocking [`crate::send`]
/// per call. The component is single-threaded, so blocking inside the future
/// holds up nothing else.
#[derive(Clone, Debug, Default)]
pub struct WasiHttpService {
    hooks: Option<Arc<dyn HttpHooks>>,
}

#[async_trait]
impl HttpService for WasiHttpService {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        // In-memory payloads: collecting is immediate, and a single-chunk
        // payload (every put from the host) is passed on without a copy.
        let body = match body.as_bytes() {
            Some(bytes) => bytes.clone(),
            None => body.collect().await?.to_bytes(),
        };
        let mut request = http::Request::from_parts(parts, body);
        if let Some(hooks) = &self.hooks {
            hooks.before_send(&mut request);
        }
        let (method, uri) = (request.method().clone(), request.uri().clone());
        let response = crate::send(request).map_err(http_error)?;
        if let Some(hooks) = &self.hooks {
            hooks.after_receive(&method, &uri, &response);
        }
        Ok(response.map(HttpResponseBody::from))
    }
}

/// The failure as object_store's error; the kind decides whether object_store
/// would retry, and the failure stays reachable as the error's source.
fn http_error(failure: HttpFailure) -> HttpError {
    HttpError::new(error_kind(failure.kind()), failure)
}

fn error_kind(kind: FailureKind) -> HttpErrorKind {
    match kind {
        FailureKind::Connect | FailureKind::Tls => HttpErrorKind::Connect,
        FailureKind::Timeout => HttpErrorKind::Timeout,
        FailureKind::Interrupted => HttpErrorKind::Interrupted,
        // Nothing a retry can fix.
        FailureKind::Denied
        | FailureKind::TlsCertificate
        | FailureKind::InvalidRequest
        | FailureKind::Unavailable
        | FailureKind::Other => HttpErrorKind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn only_transient_failures_map_to_kinds_object_store_retries() {
        assert_eq!(error_kind(FailureKind::Connect), HttpErrorKind::Connect);
        assert_eq!(error_kind(FailureKind::Timeout), HttpErrorKind::Timeout);
        assert_eq!(
            error_kind(FailureKind::Interrupted),
            HttpErrorKind::Interrupted
        );
        assert_eq!(error_kind(FailureKind::Denied), HttpErrorKind::Unknown);
        assert_eq!(
            error_kind(FailureKind::TlsCertificate),
            HttpErrorKind::Unknown
        );
    }

    #[test]
    fn the_failure_stays_reachable_and_readable() {
        let err = http_error(HttpFailure::new(FailureKind::Denied, "x.example:443", ""));
        assert!(err.to_string().contains("walship host denied"), "{err}");
        let source = err.source().and_then(|s| s.downcast_ref::<HttpFailure>());
        assert_eq!(source.map(HttpFailure::kind), Some(FailureKind::Denied));
    }
}

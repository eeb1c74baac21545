//! What the plugin records of each exchange object_store makes: Azure's
//! error reply (status, `x-ms-error-code`, `Retry-After`), which object_store
//! keeps only as text in error types it does not export.
//!
//! The component is single-threaded and runs one operation at a time, so
//! "the latest exchange" is the one that failed.

use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use walship_guest_http::HttpHooks;

use crate::errors::Reply;

#[derive(Debug, Default)]
pub struct AzureHooks {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last_failure: Option<Reply>,
}

impl AzureHooks {
    /// Forgets the previous operation's exchanges.
    pub fn reset(&self) {
        *self.state() = State::default();
    }

    /// The reply of the latest exchange, if it was a failure.
    pub fn take_failure(&self) -> Option<Reply> {
        self.state().last_failure.take()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl HttpHooks for AzureHooks {
    fn after_receive(
        &self,
        _method: &http::Method,
        _uri: &http::Uri,
        response: &http::Response<Bytes>,
    ) {
        self.state().last_failure = Reply::of(response);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, code: Option<&str>) -> http::Response<Bytes> {
        let mut builder = http::Response::builder().status(status);
        if let Some(code) = code {
            builder = builder.header("x-ms-error-code", code);
        }
        builder.body(Bytes::new()).unwrap()
    }

    #[test]
    fn the_latest_exchange_decides() {
        let hooks = AzureHooks::default();
        let (method, uri) = (http::Method::HEAD, http::Uri::from_static("http://h/c/k"));
        hooks.after_receive(&method, &uri, &response(500, None));
        hooks.after_receive(&method, &uri, &response(200, None));
        assert_eq!(hooks.take_failure(), None);
        hooks.after_receive(&method, &uri, &response(404, Some("BlobNotFound")));
        hooks.reset();
        assert_eq!(hooks.take_failure(), None);
        hooks.after_receive(&method, &uri, &response(404, Some("BlobNotFound")));
        assert_eq!(
            hooks.take_failure().and_then(|r| r.code),
            Some("BlobNotFound".to_string())
        );
        assert_eq!(hooks.take_failure(), None);
    }
}

//! What the plugin does around each HTTP exchange object_store makes.
//!
//! Two things object_store does not offer through its API:
//!
//! - `If-None-Match: *` on CompleteMultipartUpload, for create-only
//!   completes (`MultipartStore::complete_multipart` always overwrites).
//!   The header is added after SigV4 signing, which S3 accepts: only `host`,
//!   `x-amz-*` and the headers a request lists as signed are checked
//!   (object_store's own create-only complete does the same).
//! - The S3 error reply (status, `<Code>`, `<Message>`, `Retry-After`) of the
//!   latest exchange: object_store keeps only the status and the raw body
//!   text, in error types it does not export, and drops the headers.
//!
//! The component is single-threaded and runs one operation at a time, so
//! "the latest exchange" is the one that failed.

use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use quick_xml::events::Event;
use serde::Deserialize;
use walship_guest_http::HttpHooks;

/// An S3 answer that was not a success.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Reply {
    pub status: u16,
    /// S3's error code, such as `NoSuchKey` (absent in answers to HEAD).
    pub code: Option<String>,
    pub message: Option<String>,
    pub retry_after_ms: Option<u64>,
}

impl S3Reply {
    /// ` (S3 said: Code: message)`, or nothing, for the end of a message.
    pub fn said(&self) -> String {
        match (&self.code, &self.message) {
            (Some(code), Some(message)) => format!(" (S3 said {code}: {message})"),
            (Some(code), None) => format!(" (S3 said {code})"),
            (None, Some(message)) => format!(" (S3 said: {message})"),
            (None, None) => String::new(),
        }
    }
}

#[derive(Debug, Default)]
pub struct S3Hooks {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    create_only_complete: bool,
    last_status: Option<u16>,
    last_failure: Option<S3Reply>,
}

impl S3Hooks {
    /// Forgets the previous operation's exchanges.
    pub fn reset(&self) {
        let mut state = self.state();
        state.last_status = None;
        state.last_failure = None;
    }

    /// The status of the latest exchange, if there was one.
    pub fn last_status(&self) -> Option<u16> {
        self.state().last_status
    }

    /// The reply of the latest exchange, if it was a failure.
    pub fn take_failure(&self) -> Option<S3Reply> {
        self.state().last_failure.take()
    }

    /// Runs `f` with `If-None-Match: *` added to CompleteMultipartUpload
    /// requests.
    pub fn create_only_completes<T>(&self, f: impl FnOnce() -> T) -> T {
        self.state().create_only_complete = true;
        let result = f();
        self.state().create_only_complete = false;
        result
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl HttpHooks for S3Hooks {
    fn before_send(&self, request: &mut http::Request<Bytes>) {
        if self.state().create_only_complete && is_complete_multipart(request) {
            request.headers_mut().insert(
                http::header::IF_NONE_MATCH,
                http::HeaderValue::from_static("*"),
            );
        }
    }

    fn after_receive(
        &self,
        _method: &http::Method,
        _uri: &http::Uri,
        response: &http::Response<Bytes>,
    ) {
        let mut state = self.state();
        state.last_status = Some(response.status().as_u16());
        state.last_failure = failure(response);
    }
}

/// `POST <key>?uploadId=...`: CompleteMultipartUpload. (Creating an upload
/// is `POST <key>?uploads`.)
fn is_complete_multipart(request: &http::Request<Bytes>) -> bool {
    request.method() == http::Method::POST
        && request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|pair| pair.starts_with("uploadId=")))
}

/// The reply, if `response` says something failed: an error status, or a
/// 200 whose body is an `<Error>` (S3 can answer CompleteMultipartUpload so).
fn failure(response: &http::Response<Bytes>) -> Option<S3Reply> {
    let error = error_body(response.body());
    if response.status().is_success() && error.is_none() {
        return None;
    }
    let (code, message) = error.map_or((None, None), |e| (e.code, e.message));
    Some(S3Reply {
        status: response.status().as_u16(),
        code,
        message: message.map(|m| m.split_whitespace().collect::<Vec<_>>().join(" ")),
        retry_after_ms: response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|seconds| seconds.saturating_mul(1000)),
    })
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(rename = "Code")]
    code: Option<String>,
    #[serde(rename = "Message")]
    message: Option<String>,
}

/// S3's `<Error><Code>..</Code><Message>..</Message>...</Error>`, if that is
/// what `body` is.
fn error_body(body: &[u8]) -> Option<ErrorBody> {
    let text = std::str::from_utf8(body).ok()?;
    let mut reader = quick_xml::Reader::from_str(text);
    loop {
        match reader.read_event() {
            Ok(Event::Start(start)) if start.name().as_ref() == b"Error" => break,
            // Declaration, comments, white space.
            Ok(Event::Decl(_) | Event::Comment(_) | Event::Text(_) | Event::PI(_)) => {}
            _ => return None,
        }
    }
    quick_xml::de::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> http::Response<Bytes> {
        http::Response::builder()
            .status(status)
            .body(Bytes::from(body.to_string()))
            .unwrap()
    }

    #[test]
    fn reads_s3_error_replies() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not
 match the signature you provided.</Message><AWSAccessKeyId>AKID</AWSAccessKeyId><RequestId>1</RequestId></Error>"#;
        let reply = failure(&response(403, body)).unwrap();
        assert_eq!(reply.status, 403);
        assert_eq!(reply.code.as_deref(), Some("SignatureDoesNotMatch"));
        assert_eq!(
            reply.message.as_deref(),
            Some("The request signature we calculated does not match the signature you provided.")
        );
        assert_eq!(reply.retry_after_ms, None);
    }

    #[test]
    fn successes_are_not_failures_unless_their_body_is_an_error() {
        assert_eq!(
            failure(&response(200, "<CompleteMultipartUploadResult/>")),
            None
        );
        assert_eq!(failure(&response(204, "")), None);
        let reply = failure(&response(
            200,
            "<Error><Code>InternalError</Code><Message>retry</Message></Error>",
        ))
        .unwrap();
        assert_eq!(reply.code.as_deref(), Some("InternalError"));
    }

    #[test]
    fn bodiless_failures_and_retry_after() {
        let mut head = response(503, "");
        head.headers_mut()
            .insert(http::header::RETRY_AFTER, "3".parse().unwrap());
        let reply = failure(&head).unwrap();
        assert_eq!(reply.status, 503);
        assert_eq!(reply.code, None);
        assert_eq!(reply.retry_after_ms, Some(3000));
        assert_eq!(failure(&response(404, "not xml")).unwrap().code, None);
    }

    #[test]
    fn the_latest_exchange_decides() {
        let hooks = S3Hooks::default();
        let (method, uri) = (http::Method::GET, http::Uri::from_static("http://h/b/k"));
        hooks.after_receive(&method, &uri, &response(500, ""));
        hooks.after_receive(&method, &uri, &response(200, ""));
        assert_eq!(hooks.take_failure(), None);
        hooks.after_receive(&method, &uri, &response(404, ""));
        assert_eq!(hooks.take_failure().map(|r| r.status), Some(404));
        assert_eq!(hooks.take_failure(), None);
    }

    #[test]
    fn if_none_match_only_on_create_only_completes() {
        let hooks = S3Hooks::default();
        let request = |method: http::Method, uri: &str| {
            http::Request::builder()
                .method(method)
                .uri(uri)
                .body(Bytes::new())
                .unwrap()
        };
        let complete = "http://h/b/k?uploadId=abc";
        let mut plain = request(http::Method::POST, complete);
        hooks.before_send(&mut plain);
        assert!(!plain.headers().contains_key("if-none-match"));

        hooks.create_only_completes(|| {
            let mut complete = request(http::Method::POST, complete);
            hooks.before_send(&mut complete);
            assert_eq!(complete.headers()["if-none-match"], "*");
            for (method, uri) in [
                (http::Method::POST, "http://h/b/k?uploads"),
                (http::Method::PUT, "http://h/b/k?partNumber=1&uploadId=abc"),
            ] {
                let mut other = request(method, uri);
                hooks.before_send(&mut other);
                assert!(!other.headers().contains_key("if-none-match"), "{uri}");
            }
        });

        let mut after = request(http::Method::POST, complete);
        hooks.before_send(&mut after);
        assert!(!after.headers().contains_key("if-none-match"));
    }
}

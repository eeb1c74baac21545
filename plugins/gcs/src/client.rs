//! Requests to GCS's JSON API: URLs, credentials, and the one place where a
//! request goes out (through a [`Transport`], wasi:http in the component).

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use walship_guest_http::{FailureKind, HttpFailure};

use crate::auth::ServiceAccount;
use crate::config::Target;

/// Sends one request and returns the whole response, whatever its status.
pub trait Transport {
    fn send(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpFailure>;
}

/// The host's wasi:http.
pub struct Wasi;

impl Transport for Wasi {
    fn send(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpFailure> {
        walship_guest_http::send(request)
    }
}

/// How requests are authorised.
pub enum Credentials {
    /// An emulator: nothing is sent.
    None,
    /// A service account's self-signed JWT.
    ServiceAccount(Box<ServiceAccount>),
    /// The key file could not be used; every request fails with this
    /// (unauthenticated) before anything is sent. Kept until the first
    /// request, so that opening a store never fails on credentials.
    Broken(String),
}

/// A response, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Why a request got no usable answer.
pub enum SendError {
    /// The key file is unusable (see [`Credentials::Broken`]).
    Credentials(String),
    /// No HTTP answer at all.
    Transport(HttpFailure),
}

pub struct Client {
    pub target: Target,
    pub bucket: String,
    pub credentials: Credentials,
    transport: Box<dyn Transport>,
}

impl Client {
    pub fn new(
        target: Target,
        bucket: String,
        credentials: Credentials,
        transport: Box<dyn Transport>,
    ) -> Client {
        Client {
            target,
            bucket,
            credentials,
            transport,
        }
    }

    /// `.../storage/v1/b/{bucket}/o` (listing).
    pub fn objects_url(&self) -> String {
        format!(
            "{}/storage/v1/b/{}/o",
            self.target.base,
            encode(&self.bucket)
        )
    }

    /// `.../storage/v1/b/{bucket}/o/{name}` (metadata, media, delete).
    pub fn object_url(&self, name: &str) -> String {
        format!("{}/{}", self.objects_url(), encode(name))
    }

    /// `.../upload/storage/v1/b/{bucket}/o` (uploads).
    pub fn upload_url(&self) -> String {
        format!(
            "{}/upload/storage/v1/b/{}/o",
            self.target.base,
            encode(&self.bucket)
        )
    }

    /// Sends `method url` with `headers` and `body`, authorised.
    pub fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Reply, SendError> {
        let (reply, kept_token) = self.send_once(method.clone(), url, headers, body.clone())?;
        // A token an earlier process kept can be refused where a fresh one
        // would not be (the account's key was revoked and re-added, clocks
        // moved): drop it and try once with a token signed now.
        if reply.status == StatusCode::UNAUTHORIZED
            && kept_token
            && let Credentials::ServiceAccount(account) = &self.credentials
        {
            crate::host_log::debug("the service refused the kept token; signing a new one");
            account.forget();
            return Ok(self.send_once(method, url, headers, body)?.0);
        }
        Ok(reply)
    }

    /// One request; also says whether its token was a kept one.
    fn send_once(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<(Reply, bool), SendError> {
        let mut builder = http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        let mut kept_token = false;
        match &self.credentials {
            Credentials::None => {}
            Credentials::ServiceAccount(account) => {
                let bearer = account.bearer().map_err(SendError::Credentials)?;
                kept_token = bearer.kept;
                builder = builder.header("authorization", format!("Bearer {}", bearer.token));
            }
            Credentials::Broken(why) => return Err(SendError::Credentials(why.clone())),
        }
        let request = builder.body(body).map_err(|e| {
            SendError::Transport(HttpFailure::new(
                FailureKind::InvalidRequest,
                self.target.endpoint.host.clone(),
                format!("cannot build the request: {e}"),
            ))
        })?;
        let idempotent = matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::DELETE
        );
        let retry = idempotent.then(|| clone_request(&request));
        let response = match (self.transport.send(request), retry) {
            // A kept-alive connection the server closed just as the request
            // went out (seen with fake-gcs-server): a read or delete is sent
            // once more at once. Everything else is the host's to retry.
            (Err(failure), Some(again)) if failure.kind() == FailureKind::Interrupted => {
                crate::host_log::debug(&format!("{failure}; sending the request once more"));
                self.transport.send(again)
            }
            (result, _) => result,
        }
        .map_err(SendError::Transport)?;
        let (parts, body) = response.into_parts();
        let reply = Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        };
        Ok((reply, kept_token))
    }
}

/// The same request again (bodies are shared, not copied).
fn clone_request(request: &http::Request<Bytes>) -> http::Request<Bytes> {
    let mut again = http::Request::new(request.body().clone());
    *again.method_mut() = request.method().clone();
    *again.uri_mut() = request.uri().clone();
    *again.headers_mut() = request.headers().clone();
    again
}

/// Percent-encodes everything but RFC 3986's unreserved characters: an
/// object name is one path segment in the JSON API (`/` becomes `%2F`), and
/// query values are encoded the same way.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `?a=1&b=2`, values encoded; empty when there are no pairs.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(name);
        out.push('=');
        out.push_str(&encode(value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_path_segment() {
        assert_eq!(encode("db1/wal/0001"), "db1%2Fwal%2F0001");
        assert_eq!(encode("dir with space/ü"), "dir%20with%20space%2F%C3%BC");
        assert_eq!(encode("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(encode("a+b%c"), "a%2Bb%25c");
    }

    #[test]
    fn queries_encode_values() {
        assert_eq!(query(&[]), "");
        assert_eq!(
            query(&[("prefix", "a/b c"), ("maxResults", "5")]),
            "?prefix=a%2Fb%20c&maxResults=5"
        );
    }
}

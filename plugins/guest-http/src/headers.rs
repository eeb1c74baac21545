//! The header list a request goes out with.
//!
//! Kept apart from the wasi:http calls so the rules can be tested natively.

// Only the wasm build sends requests; natively these are exercised by tests.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use http::{HeaderMap, Method};

/// Headers a wasi:http guest may not set (wasmtime refuses them as
/// "forbidden"): the host's HTTP client owns the connection, and sets `host`
/// from the request's authority.
const FORBIDDEN: &[&str] = &[
    "connection",
    "host",
    "http2-settings",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// The `(name, value)` pairs to send with a body of `body_len` bytes.
///
/// `Content-Length` always comes from the body actually sent: wasi:http does
/// not add one, and without it the host's client sends the request chunked,
/// which S3 answers with 411 (PUT, POST, and DELETE: even an empty body goes
/// out chunked for methods other than GET and HEAD). So every request but a
/// bodiless GET, HEAD, OPTIONS or TRACE states its length, 0 included.
pub(crate) fn outgoing(
    method: &Method,
    headers: &HeaderMap,
    body_len: usize,
) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = headers
        .iter()
        .filter(|(name, _)| {
            *name != http::header::CONTENT_LENGTH && !FORBIDDEN.contains(&name.as_str())
        })
        .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec()))
        .collect();
    let bodiless = matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    if body_len > 0 || !bodiless {
        out.push((
            http::header::CONTENT_LENGTH.as_str().to_string(),
            body_len.to_string().into_bytes(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value<'a>(pairs: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    #[test]
    fn content_length_comes_from_the_body() {
        let mut headers = HeaderMap::new();
        headers.insert("content-length", "999".parse().unwrap());
        headers.insert("x-amz-date", "20250101T000000Z".parse().unwrap());
        let out = outgoing(&Method::PUT, &headers, 5);
        assert_eq!(value(&out, "content-length"), Some(&b"5"[..]));
        assert_eq!(out.iter().filter(|(n, _)| n == "content-length").count(), 1);
        assert_eq!(value(&out, "x-amz-date"), Some(&b"20250101T000000Z"[..]));
    }

    #[test]
    fn empty_bodies_state_their_length_unless_get_or_head() {
        let headers = HeaderMap::new();
        let length = |method: Method, len| {
            value(&outgoing(&method, &headers, len), "content-length").map(<[u8]>::to_vec)
        };
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            assert_eq!(length(method.clone(), 0), Some(b"0".to_vec()), "{method}");
        }
        assert_eq!(length(Method::GET, 0), None);
        assert_eq!(length(Method::HEAD, 0), None);
        assert_eq!(length(Method::DELETE, 3), Some(b"3".to_vec()));
    }

    #[test]
    fn hop_by_hop_headers_are_left_to_the_host() {
        let mut headers = HeaderMap::new();
        headers.insert("host", "bucket.example".parse().unwrap());
        headers.insert("connection", "keep-alive".parse().unwrap());
        headers.insert("transfer-encoding", "chunked".parse().unwrap());
        headers.insert("if-none-match", "*".parse().unwrap());
        let out = outgoing(&Method::GET, &headers, 0);
        assert_eq!(out, vec![("if-none-match".to_string(), b"*".to_vec())]);
    }

    #[test]
    fn repeated_headers_are_all_kept() {
        let mut headers = HeaderMap::new();
        headers.append("x-amz-meta-a", "1".parse().unwrap());
        headers.append("x-amz-meta-a", "2".parse().unwrap());
        let out = outgoing(&Method::GET, &headers, 0);
        assert_eq!(out.len(), 2);
    }
}

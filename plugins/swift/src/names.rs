//! URLs of containers and objects, and the names of large-object segments.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but unreserved characters is escaped in a path segment...
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// ... and in an object name `/` stays, as Swift's own clients send it.
const OBJECT: &AsciiSet = &SEGMENT.remove(b'/');

/// Where the segments of Static Large Objects go: a prefix at the root of the
/// store's container, outside every store path (`swift://c/path` keeps its
/// objects under `path/`), so listings of the store never show them. Only a
/// store at the container's root shares the name space; it hides the prefix
/// (see `listing.rs`) and refuses keys under it.
pub const SEGMENTS_PREFIX: &str = ".walship-segments/";

pub fn container_url(storage_url: &str, container: &str) -> String {
    format!("{storage_url}/{}", utf8_percent_encode(container, SEGMENT))
}

pub fn object_url(storage_url: &str, container: &str, object: &str) -> String {
    format!(
        "{}/{}",
        container_url(storage_url, container),
        utf8_percent_encode(object, OBJECT)
    )
}

/// An object name for query strings and bulk-delete bodies.
pub fn query_value(value: &str) -> String {
    utf8_percent_encode(value, SEGMENT).to_string()
}

/// `/container/object`, escaped, as bulk delete and SLO manifests name
/// objects.
pub fn object_path(container: &str, object: &str) -> String {
    format!(
        "/{}/{}",
        utf8_percent_encode(container, SEGMENT),
        utf8_percent_encode(object, OBJECT)
    )
}

/// A new upload id: 128 random bits as 32 hex digits. Segment names derive
/// from it alone, so any plugin instance can continue an upload.
pub fn new_upload_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    // RandomState is keyed from wasi:random (the OS natively).
    let word = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u64(salt);
        h.finish()
    };
    format!("{:016x}{:016x}", word(1), word(2))
}

/// Whether `id` is one [`new_upload_id`] could have made: anything else
/// (a path, `..`) never reaches a segment name.
pub fn is_upload_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The prefix of an upload's segments.
pub fn upload_prefix(upload_id: &str) -> String {
    format!("{SEGMENTS_PREFIX}{upload_id}/")
}

/// Segment `number` of an upload; zero-padded, so they list in order.
pub fn segment_name(upload_id: &str, number: u32) -> String {
    format!("{}{number:05}", upload_prefix(upload_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_escape_what_must_be_escaped() {
        let url = object_url("http://h/v1/AUTH_t", "my container", "a b/ü?x#y%");
        assert_eq!(
            url,
            "http://h/v1/AUTH_t/my%20container/a%20b/%C3%BC%3Fx%23y%25"
        );
        assert_eq!(container_url("http://h/v1/A", "c/d"), "http://h/v1/A/c%2Fd");
        assert_eq!(object_path("c", "a b/c"), "/c/a%20b/c");
        assert_eq!(query_value("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn upload_ids_are_random_hex_and_checked() {
        let a = new_upload_id();
        let b = new_upload_id();
        assert!(is_upload_id(&a) && is_upload_id(&b), "{a} {b}");
        assert_ne!(a, b);
        assert!(!is_upload_id("../../etc"));
        assert!(!is_upload_id(&a.to_uppercase()));
        assert_eq!(segment_name(&a, 7), format!(".walship-segments/{a}/00007"));
    }
}

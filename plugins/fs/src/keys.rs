//! Which keys may become paths under the store's root.
//!
//! The host validates keys before handing them over, but a key becomes a
//! filesystem path here, so the plugin checks again rather than trust that a
//! `..` can never arrive.

/// Longest key the contract allows, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Names starting with this belong to the plugin itself (temp files, multipart
/// staging). They are never listed and never accepted as part of a key, so an
/// object can never collide with them.
pub const RESERVED_PREFIX: &str = ".walship-";

/// Whether a directory entry is the plugin's own bookkeeping.
pub fn is_reserved(name: &str) -> bool {
    name.starts_with(RESERVED_PREFIX)
}

/// Checks that `key` maps to a path strictly inside the root. The error says
/// what is wrong with it.
pub fn validate(key: &str) -> Result<(), String> {
    let why = if key.is_empty() {
        "it is empty".to_string()
    } else if key.len() > MAX_KEY_BYTES {
        format!(
            "it is {} bytes long; the limit is {MAX_KEY_BYTES}",
            key.len()
        )
    } else if key.contains('\0') {
        "it contains a NUL byte".to_string()
    } else if key.starts_with('/') {
        "it starts with '/'; keys are relative to the store".to_string()
    } else if let Some(segment) = key.split('/').find(|s| !is_plain_segment(s)) {
        match segment {
            "" => "it has an empty segment ('//' or a trailing '/')".to_string(),
            "." | ".." => format!("it has a {segment:?} segment"),
            _ => format!("its segment {segment:?} uses the reserved prefix {RESERVED_PREFIX:?}"),
        }
    } else {
        return Ok(());
    };
    Err(format!("invalid key {key:?}: {why}"))
}

fn is_plain_segment(segment: &str) -> bool {
    !matches!(segment, "" | "." | "..") && !is_reserved(segment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_keys() {
        for key in [
            "a",
            "wal_005/000000010000000000000001",
            "basebackups/base_1/tar_partitions/part_1.tar.lz4",
            "a/.hidden",
            "a/..b",
            "a/b.",
            "é/ü",
        ] {
            assert_eq!(validate(key), Ok(()), "{key}");
        }
        assert_eq!(validate(&"k".repeat(MAX_KEY_BYTES)), Ok(()));
    }

    #[test]
    fn rejects_keys_that_escape_or_collide() {
        for key in [
            "",
            "/abs",
            "a//b",
            "a/",
            "./a",
            "a/./b",
            "..",
            "a/../b",
            "a\0b",
            ".walship-tmp-1",
            "a/.walship-multipart/b",
        ] {
            let err = validate(key).expect_err(key);
            assert!(err.starts_with("invalid key"), "{err}");
        }
        assert!(validate(&"k".repeat(MAX_KEY_BYTES + 1)).is_err());
    }
}

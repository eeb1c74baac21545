//! Turns a store prefix such as `s3://bucket/some/path` into the bucket and
//! the key prefix every object key is stored under.

/// What a valid prefix looks like, for error messages.
const EXAMPLE: &str = "s3://bucket/optional/path";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub bucket: String,
    /// The path under the bucket, without leading or trailing `/`; may be empty.
    pub path: String,
}

impl Location {
    /// The S3 key of the store's `key`.
    pub fn full_key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.path)
        }
    }

    /// What every full key of this store starts with.
    pub fn key_base(&self) -> String {
        self.full_key("")
    }

    /// `s3://bucket/full/key`, for messages.
    pub fn url_of(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.full_key(key))
    }
}

/// Parses `s3://bucket[/path]`. Empty path segments are dropped (`s3://b/a/`
/// is `s3://b/a`); `.` and `..` segments are refused, as object_store refuses
/// such keys.
pub fn parse(prefix: &str) -> Result<Location, String> {
    let rest = prefix
        .split_once("://")
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("s3"))
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("prefix {prefix:?} is not an s3:// URL; write it as {EXAMPLE}"))?;
    if rest.contains(['?', '#']) {
        return Err(format!(
            "prefix {prefix:?} has a query or fragment; write it as {EXAMPLE}"
        ));
    }
    let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
    check_bucket(bucket)
        .map_err(|why| format!("prefix {prefix:?}: {why}; write it as {EXAMPLE}"))?;
    let mut segments = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" => {}
            "." | ".." => {
                return Err(format!(
                    "prefix {prefix:?}: '.' and '..' are not allowed in the path; write it as \
                     {EXAMPLE}"
                ));
            }
            s if s.chars().any(|c| c.is_control()) => {
                return Err(format!(
                    "prefix {prefix:?}: the path contains a control character"
                ));
            }
            s => segments.push(s),
        }
    }
    Ok(Location {
        bucket: bucket.to_string(),
        path: segments.join("/"),
    })
}

/// S3's bucket rules, loosely: S3-compatible stores accept a little more
/// (upper case, `_`), and a name that is not a DNS label is simply addressed
/// path-style (see `endpoints.rs`).
fn check_bucket(bucket: &str) -> Result<(), String> {
    if bucket.is_empty() {
        return Err("no bucket named".to_string());
    }
    if bucket.len() > 255 {
        return Err("the bucket name is longer than 255 characters".to_string());
    }
    if let Some(c) = bucket
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "bucket {bucket:?} contains {c:?}; bucket names are letters, digits, '.', '-' and '_'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_path() {
        assert_eq!(
            parse("s3://bucket").unwrap(),
            Location {
                bucket: "bucket".into(),
                path: String::new()
            }
        );
        assert_eq!(parse("s3://bucket/").unwrap().path, "");
        assert_eq!(parse("S3://bucket/a/b/").unwrap().path, "a/b");
        assert_eq!(parse("s3://bucket//a//b").unwrap().path, "a/b");
        assert_eq!(parse("s3://my.bucket-1/wal").unwrap().bucket, "my.bucket-1");
    }

    #[test]
    fn keys_are_relative_to_the_path() {
        let at_root = parse("s3://b").unwrap();
        assert_eq!(at_root.full_key("wal/1"), "wal/1");
        assert_eq!(at_root.key_base(), "");
        let under = parse("s3://b/db1").unwrap();
        assert_eq!(under.full_key("wal/1"), "db1/wal/1");
        assert_eq!(under.key_base(), "db1/");
        assert_eq!(under.url_of("wal/1"), "s3://b/db1/wal/1");
    }

    #[test]
    fn rejects_what_is_not_an_s3_prefix() {
        for bad in [
            "",
            "bucket/path",
            "file:///srv",
            "s3:/bucket",
            "s3://",
            "s3:///path",
            "s3://bu cket/x",
            "s3://user@bucket/x",
            "s3://bucket:9000/x",
            "s3://bucket/a/../b",
            "s3://bucket/./b",
            "s3://bucket/a?versionId=1",
            "s3://bucket/a#frag",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(
                err.contains(EXAMPLE) || err.contains("control"),
                "{bad:?}: {err}"
            );
        }
    }
}

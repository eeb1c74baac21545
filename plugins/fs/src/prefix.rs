//! Turns a store prefix such as `file:///var/lib/walship/archive` into the
//! directory it names.
//!
//! The result is both the sandbox grant (the host preopens it at the same path)
//! and the root every key is resolved under, so it is normalised once here: no
//! trailing slash, no `.` or empty segments, and never `..` (a grant that
//! climbs out of the named directory would grant more than the operator wrote).

/// What a valid prefix looks like, for error messages.
const EXAMPLE: &str = "file:///var/lib/walship/archive";

/// Parses `file:///abs/path` or `file://localhost/abs/path` (percent-escapes
/// such as `%20` are decoded) into a normalised absolute path.
pub fn parse_root(prefix: &str) -> Result<String, String> {
    let rest = strip_scheme(prefix).ok_or_else(|| {
        format!("prefix {prefix:?} is not a file:// URL; write the directory as {EXAMPLE}")
    })?;
    if rest.contains(['?', '#']) {
        return Err(format!(
            "prefix {prefix:?} has a query or fragment; write the directory as {EXAMPLE} \
             (escape '?' and '#' in directory names as %3F and %23)"
        ));
    }
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    if !authority.is_empty() && !authority.eq_ignore_ascii_case("localhost") {
        return Err(format!(
            "prefix {prefix:?} names host {authority:?}, but the fs backend only reaches local \
             directories; use three slashes for an absolute path, as in {EXAMPLE}"
        ));
    }
    if path.is_empty() {
        return Err(format!(
            "prefix {prefix:?} names no directory; write it as {EXAMPLE}"
        ));
    }
    let decoded = percent_decode(path).map_err(|why| format!("prefix {prefix:?}: {why}"))?;
    normalise(&decoded).map_err(|why| format!("prefix {prefix:?}: {why}; write it as {EXAMPLE}"))
}

/// The part after `file://`, matching the scheme case-insensitively as URLs do.
fn strip_scheme(prefix: &str) -> Option<&str> {
    let (scheme, rest) = prefix.split_once("://")?;
    scheme.eq_ignore_ascii_case("file").then_some(rest)
}

fn percent_decode(path: &str) -> Result<String, String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    format!("bad percent-escape at byte {i}; write a literal '%' as %25")
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-escapes decode to invalid UTF-8".to_string())
}

fn normalise(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err("the directory must be an absolute path".to_string());
    }
    if path.contains('\0') {
        return Err("the directory contains a NUL byte".to_string());
    }
    let mut segments = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err("'..' is not allowed in the directory".to_string()),
            s => segments.push(s),
        }
    }
    if segments.is_empty() {
        // Granting "/" would hand the plugin the whole filesystem.
        return Err("the filesystem root cannot be a store; name a directory below it".to_string());
    }
    Ok(format!("/{}", segments.join("/")))
}

#[cfg(test)]
mod tests {
    use super::parse_root;

    #[test]
    fn accepts_absolute_paths() {
        assert_eq!(parse_root("file:///srv/archive").unwrap(), "/srv/archive");
        assert_eq!(parse_root("file:///srv/archive/").unwrap(), "/srv/archive");
        assert_eq!(parse_root("FILE:///srv//a/./b").unwrap(), "/srv/a/b");
        assert_eq!(
            parse_root("file://localhost/srv/archive").unwrap(),
            "/srv/archive"
        );
        assert_eq!(parse_root("file://LocalHost/srv").unwrap(), "/srv");
    }

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(
            parse_root("file:///srv/my%20archive").unwrap(),
            "/srv/my archive"
        );
        assert_eq!(parse_root("file:///srv/100%25").unwrap(), "/srv/100%");
        assert_eq!(parse_root("file:///srv/%C3%A9t%C3%A9").unwrap(), "/srv/été");
    }

    #[test]
    fn rejects_what_is_not_a_local_absolute_directory() {
        for bad in [
            "",
            "/srv/archive",
            "srv/archive",
            "s3://bucket/path",
            "file:/srv/archive",
            "file://srv/archive",
            "file://host.example/srv",
            "file://",
            "file:///",
            "file:///srv/../etc",
            "file:///srv/%2E%2E/etc",
            "file:///srv/a?b",
            "file:///srv/a#b",
            "file:///srv/%zz",
            "file:///srv/%4",
            "file:///srv/%00x",
            "file:///srv/%ff",
        ] {
            let err = parse_root(bad).expect_err(bad);
            assert!(err.contains("file://"), "{bad:?}: {err}");
        }
    }
}

//! Turns a store prefix such as `azure://container/some/path` (WAL-G's
//! `WALG_AZ_PREFIX`) into the container and the blob-name prefix every key is
//! stored under.

/// What a valid prefix looks like, for error messages.
pub const EXAMPLE: &str = "azure://container/optional/path";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub container: String,
    /// The path in the container, without leading or trailing `/`; may be empty.
    pub path: String,
}

impl Location {
    /// The blob name of the store's `key`.
    pub fn full_key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.path)
        }
    }

    /// What every blob name of this store starts with.
    pub fn key_base(&self) -> String {
        self.full_key("")
    }

    /// `azure://container/full/key`, for messages.
    pub fn url_of(&self, key: &str) -> String {
        format!("azure://{}/{}", self.container, self.full_key(key))
    }
}

/// Parses `azure://container[/path]`. Empty path segments are dropped;
/// `.` and `..` segments are refused (they would not survive a URL).
pub fn parse(prefix: &str) -> Result<Location, String> {
    let rest = prefix
        .split_once("://")
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("azure"))
        .map(|(_, rest)| rest)
        .ok_or_else(|| {
            format!("prefix {prefix:?} is not an azure:// URL; write it as {EXAMPLE}")
        })?;
    if rest.contains(['?', '#']) {
        return Err(format!(
            "prefix {prefix:?} has a query or fragment; write it as {EXAMPLE}"
        ));
    }
    let (container, path) = rest.split_once('/').unwrap_or((rest, ""));
    check_container(container)
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
            s if s.chars().any(char::is_control) => {
                return Err(format!(
                    "prefix {prefix:?}: the path contains a control character"
                ));
            }
            s => segments.push(s),
        }
    }
    Ok(Location {
        container: container.to_string(),
        path: segments.join("/"),
    })
}

/// Azure's container rules: 3 to 63 lower-case letters, digits and `-`,
/// starting with a letter or digit, no `--`.
fn check_container(container: &str) -> Result<(), String> {
    if container.is_empty() {
        return Err("no container named".to_string());
    }
    let valid_chars = container
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !(3..=63).contains(&container.len())
        || !valid_chars
        || container.starts_with('-')
        || container.ends_with('-')
        || container.contains("--")
    {
        return Err(format!(
            "{container:?} is not a container name (3 to 63 lower-case letters, digits and \
             single '-', starting and ending with a letter or digit)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_container_and_path() {
        assert_eq!(
            parse("azure://archive").unwrap(),
            Location {
                container: "archive".into(),
                path: String::new()
            }
        );
        assert_eq!(parse("azure://archive/").unwrap().path, "");
        assert_eq!(parse("AZURE://archive/a/b/").unwrap().path, "a/b");
        assert_eq!(parse("azure://archive//a//b").unwrap().path, "a/b");
        assert_eq!(parse("azure://wal-01/db").unwrap().container, "wal-01");
    }

    #[test]
    fn keys_are_relative_to_the_path() {
        let at_root = parse("azure://archive").unwrap();
        assert_eq!(at_root.full_key("wal/1"), "wal/1");
        assert_eq!(at_root.key_base(), "");
        let under = parse("azure://archive/db1").unwrap();
        assert_eq!(under.full_key("wal/1"), "db1/wal/1");
        assert_eq!(under.key_base(), "db1/");
        assert_eq!(under.url_of("wal/1"), "azure://archive/db1/wal/1");
    }

    #[test]
    fn rejects_what_is_not_an_azure_prefix() {
        for bad in [
            "",
            "archive/path",
            "s3://archive",
            "azure:/archive",
            "azure://",
            "azure:///path",
            "azure://ab/x",
            "azure://Archive/x",
            "azure://arch_ive/x",
            "azure://-archive/x",
            "azure://arch--ive/x",
            "azure://archive/a/../b",
            "azure://archive/a?sv=1",
            "azure://user@archive/x",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains(EXAMPLE), "{bad:?}: {err}");
        }
    }
}

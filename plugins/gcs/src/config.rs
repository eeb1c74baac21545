//! The plugin's settings, parsed once from what the host hands over: where
//! the objects live (`gs://bucket/path`) and which endpoint serves them.
//!
//! Every refusal names the setting and what a valid value looks like.

use crate::walship::storage::types::{Endpoint, Grants};

/// What a valid prefix looks like, for error messages.
const EXAMPLE: &str = "gs://bucket/optional/path";
/// Google's endpoint for the JSON API.
const GOOGLE: &str = "storage.googleapis.com";
/// Keys under this (relative to the store's path) hold the parts of
/// unfinished multipart uploads; listings never show them.
pub const UPLOADS_DIR: &str = ".walship-uploads/";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub bucket: String,
    /// The path under the bucket, without leading or trailing `/`; may be empty.
    pub path: String,
}

impl Location {
    /// The GCS object name of the store's `key`.
    pub fn full_key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.path)
        }
    }

    /// What every object name of this store starts with.
    pub fn key_base(&self) -> String {
        self.full_key("")
    }

    /// Where the parts of unfinished uploads live.
    pub fn uploads_base(&self) -> String {
        self.full_key(UPLOADS_DIR)
    }

    /// `gs://bucket/full/key`, for messages.
    pub fn url_of(&self, key: &str) -> String {
        format!("gs://{}/{}", self.bucket, self.full_key(key))
    }
}

/// Where requests go, and whether they carry credentials.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// `scheme://host[:port]`, no trailing `/`.
    pub base: String,
    pub endpoint: Endpoint,
    /// An emulator: no credentials are sent (as Google's client libraries do
    /// with STORAGE_EMULATOR_HOST).
    pub emulator: bool,
    /// The setting it came from, for messages (`None`: Google's endpoint).
    pub setting: Option<&'static str>,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub location: Location,
    pub target: Target,
}

impl Settings {
    pub fn parse(prefix: &str, config: &[(String, String)]) -> Result<Settings, String> {
        let get = |name: &str| {
            config
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim())
                .filter(|v| !v.is_empty())
        };
        let location = parse_prefix(prefix)?;
        let target = match (get("STORAGE_EMULATOR_HOST"), get("WALSHIP_GS_ENDPOINT")) {
            (Some(_), Some(_)) => {
                return Err(
                    "STORAGE_EMULATOR_HOST and WALSHIP_GS_ENDPOINT are both set; set \
                            STORAGE_EMULATOR_HOST for an emulator (no credentials) or \
                            WALSHIP_GS_ENDPOINT for another authenticated endpoint, not both"
                        .to_string(),
                );
            }
            (Some(url), None) => custom_target(url, "STORAGE_EMULATOR_HOST", true)?,
            (None, Some(url)) => custom_target(url, "WALSHIP_GS_ENDPOINT", false)?,
            (None, None) => Target {
                base: format!("https://{GOOGLE}"),
                endpoint: Endpoint {
                    scheme: "https".to_string(),
                    host: GOOGLE.to_string(),
                    port: 443,
                },
                emulator: false,
                setting: None,
            },
        };
        Ok(Settings { location, target })
    }

    /// Exactly the endpoint this configuration talks to.
    pub fn grants(&self) -> Grants {
        Grants {
            endpoints: vec![self.target.endpoint.clone()],
            directories: Vec::new(),
        }
    }
}

/// `http(s)://host[:port]` from a setting. A scheme is required: the host
/// grants only hosts it can see in URL-looking settings, and
/// `localhost:4443` is not one.
fn custom_target(url: &str, setting: &'static str, emulator: bool) -> Result<Target, String> {
    let example = if emulator {
        "http://127.0.0.1:4443"
    } else {
        "https://storage.example.internal"
    };
    let bad = |why: &str| format!("{setting}={url:?}: {why}; write it as {example}");
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("no scheme (http:// or https://)"))?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err(bad("the scheme is not http or https")),
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return Err(bad(
            "only scheme, host and port are allowed (no path or user)",
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err(bad("unexpected text after the IPv6 address")),
        };
        (host.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host.to_string(), Some(port)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        None => default_port,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
    };
    let host = host.to_ascii_lowercase();
    let shown_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    Ok(Target {
        base: format!("{scheme}://{shown_host}:{port}"),
        endpoint: Endpoint { scheme, host, port },
        emulator,
        setting: Some(setting),
    })
}

/// Parses `gs://bucket[/path]`. Empty path segments are dropped; `.` and
/// `..` segments are refused (GCS refuses such object names).
pub fn parse_prefix(prefix: &str) -> Result<Location, String> {
    let rest = prefix
        .split_once("://")
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("gs"))
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("prefix {prefix:?} is not a gs:// URL; write it as {EXAMPLE}"))?;
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

/// GCS bucket names: 3 to 222 characters of lower-case letters, digits,
/// `-`, `_` and `.` (<https://cloud.google.com/storage/docs/buckets#naming>).
fn check_bucket(bucket: &str) -> Result<(), String> {
    if bucket.is_empty() {
        return Err("no bucket named".to_string());
    }
    if !(3..=222).contains(&bucket.len()) {
        return Err(format!("bucket {bucket:?} is not 3 to 222 characters long"));
    }
    if let Some(c) = bucket
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!(
            "bucket {bucket:?} contains {c:?}; bucket names are lower-case letters, digits, '.', \
             '-' and '_'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(prefix: &str, config: &[(&str, &str)]) -> Result<Settings, String> {
        let config: Vec<(String, String)> = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::parse(prefix, &config)
    }

    #[test]
    fn parses_bucket_and_path() {
        let l = parse_prefix("gs://my-bucket").unwrap();
        assert_eq!((l.bucket.as_str(), l.path.as_str()), ("my-bucket", ""));
        assert_eq!(parse_prefix("GS://bkt/a//b/").unwrap().path, "a/b");
        let under = parse_prefix("gs://bkt/db1").unwrap();
        assert_eq!(under.full_key("wal/1"), "db1/wal/1");
        assert_eq!(under.key_base(), "db1/");
        assert_eq!(under.uploads_base(), "db1/.walship-uploads/");
        assert_eq!(under.url_of("wal/1"), "gs://bkt/db1/wal/1");
        assert_eq!(
            parse_prefix("gs://bkt").unwrap().uploads_base(),
            ".walship-uploads/"
        );
    }

    #[test]
    fn rejects_what_is_not_a_gs_prefix() {
        for bad in [
            "",
            "s3://bucket/x",
            "gs://",
            "gs:///x",
            "gs://Bucket/x",
            "gs://ab/x",
            "gs://bu cket/x",
            "gs://bucket:1/x",
            "gs://bucket/a/../b",
            "gs://bucket/a?x=1",
        ] {
            let err = parse_prefix(bad).expect_err(bad);
            assert!(err.contains(EXAMPLE), "{bad:?}: {err}");
        }
    }

    #[test]
    fn google_by_default_with_credentials() {
        let s = settings("gs://bkt/p", &[]).unwrap();
        assert_eq!(s.target.base, "https://storage.googleapis.com");
        assert!(!s.target.emulator);
        assert_eq!(s.grants().endpoints[0].port, 443);
    }

    #[test]
    fn the_emulator_is_reached_without_credentials() {
        let s = settings(
            "gs://bkt",
            &[("STORAGE_EMULATOR_HOST", "http://127.0.0.1:4443/")],
        )
        .unwrap();
        assert_eq!(s.target.base, "http://127.0.0.1:4443");
        assert!(s.target.emulator);
        assert_eq!(
            s.grants().endpoints,
            vec![Endpoint {
                scheme: "http".into(),
                host: "127.0.0.1".into(),
                port: 4443
            }]
        );
        let s = settings("gs://bkt", &[("WALSHIP_GS_ENDPOINT", "https://[::1]")]).unwrap();
        assert_eq!(s.target.base, "https://[::1]:443");
        assert!(!s.target.emulator);
    }

    #[test]
    fn endpoint_settings_are_checked() {
        for (name, value) in [
            ("STORAGE_EMULATOR_HOST", "localhost:4443"),
            ("STORAGE_EMULATOR_HOST", "ftp://h"),
            ("WALSHIP_GS_ENDPOINT", "https://h/storage/v1"),
            ("WALSHIP_GS_ENDPOINT", "https://h:0"),
            ("WALSHIP_GS_ENDPOINT", "https://:80"),
        ] {
            let err = settings("gs://bkt", &[(name, value)]).expect_err(value);
            assert!(err.starts_with(name), "{err}");
        }
        let both = settings(
            "gs://bkt",
            &[
                ("STORAGE_EMULATOR_HOST", "http://a"),
                ("WALSHIP_GS_ENDPOINT", "https://b"),
            ],
        );
        assert!(both.unwrap_err().contains("both"));
    }
}

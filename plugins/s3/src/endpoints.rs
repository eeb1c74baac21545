//! Which hosts the plugin talks to.
//!
//! Computed once from the settings for both `plan` (the grants the host
//! checks every request against) and the object_store client (which is given
//! the bucket's URL explicitly, never left to derive it), so the two cannot
//! disagree.

use url::Host;

use crate::config::Settings;
use crate::walship::storage::types::{Endpoint, Grants};

/// How object_store reaches the bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct S3Target {
    /// object_store's `with_endpoint`: with virtual-hosted addressing the
    /// bucket's own URL (object_store appends only the key), else the
    /// service's URL (object_store appends `/<bucket>/<key>`). No trailing `/`.
    pub endpoint: String,
    pub virtual_hosted: bool,
    /// The scheme, host and port requests go to.
    pub grant: Endpoint,
}

/// Where S3 requests go: a custom endpoint, or AWS's regional one.
///
/// Virtual-hosted addressing (`<bucket>.<host>`) is the default, as in the
/// AWS SDKs and WAL-G. Path-style addressing is used when asked for
/// (`AWS_S3_FORCE_PATH_STYLE`), and when virtual-hosted cannot work: a bucket
/// name that is not one DNS label (with dots, TLS wildcard certificates do
/// not match it) or an endpoint given as an IP address or `localhost`.
pub fn s3_target(settings: &Settings) -> S3Target {
    let bucket = settings.location.bucket.as_str();
    let (scheme, host, port, explicit_port, path) = match &settings.s3_endpoint {
        Some(custom) => {
            let url = &custom.url;
            (
                url.scheme().to_string(),
                url.host_str().unwrap_or_default().to_string(),
                url.port_or_known_default().unwrap_or(443),
                url.port(),
                url.path().trim_end_matches('/').to_string(),
            )
        }
        None => (
            "https".to_string(),
            format!("s3.{}.amazonaws.com", settings.region),
            443,
            None,
            String::new(),
        ),
    };
    let virtual_hosted = !settings.force_path_style && is_dns_label(bucket) && is_host_name(&host);
    let host = if virtual_hosted {
        format!("{bucket}.{host}")
    } else {
        host
    };
    let authority = match explicit_port {
        Some(port) => format!("{host}:{port}"),
        None => host.clone(),
    };
    S3Target {
        endpoint: format!("{scheme}://{authority}{path}"),
        virtual_hosted,
        grant: Endpoint { scheme, host, port },
    }
}

/// Where AssumeRoleWithWebIdentity goes, and its grant.
pub fn sts_target(settings: &Settings) -> (String, Endpoint) {
    match &settings.sts_endpoint {
        Some(custom) => {
            let url = &custom.url;
            let grant = Endpoint {
                scheme: url.scheme().to_string(),
                host: url.host_str().unwrap_or_default().to_string(),
                port: url.port_or_known_default().unwrap_or(443),
            };
            (url.as_str().trim_end_matches('/').to_string(), grant)
        }
        None => {
            let host = format!("sts.{}.amazonaws.com", settings.region);
            let grant = Endpoint {
                scheme: "https".to_string(),
                host: host.clone(),
                port: 443,
            };
            (format!("https://{host}"), grant)
        }
    }
}

/// Every endpoint a store with these settings contacts, and nothing else.
pub fn grants(settings: &Settings) -> Grants {
    let mut endpoints = vec![s3_target(settings).grant];
    if settings.uses_web_identity() {
        let (_, sts) = sts_target(settings);
        if !endpoints.contains(&sts) {
            endpoints.push(sts);
        }
    }
    Grants {
        endpoints,
        directories: Vec::new(),
    }
}

/// A bucket name that can be the first label of a host name.
fn is_dns_label(bucket: &str) -> bool {
    (1..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !bucket.starts_with('-')
        && !bucket.ends_with('-')
}

/// A host that `<bucket>.` can be put in front of.
fn is_host_name(host: &str) -> bool {
    matches!(Host::parse(host), Ok(Host::Domain(name)) if !name.eq_ignore_ascii_case("localhost"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(prefix: &str, pairs: &[(&str, &str)]) -> Settings {
        let config: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::parse(prefix, &config).unwrap()
    }

    fn endpoint(scheme: &str, host: &str, port: u16) -> Endpoint {
        Endpoint {
            scheme: scheme.into(),
            host: host.into(),
            port,
        }
    }

    #[test]
    fn aws_virtual_hosted_by_default() {
        let s = settings("s3://archive/db1", &[("AWS_REGION", "eu-west-1")]);
        let target = s3_target(&s);
        assert!(target.virtual_hosted);
        assert_eq!(
            target.endpoint,
            "https://archive.s3.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            grants(&s).endpoints,
            vec![endpoint("https", "archive.s3.eu-west-1.amazonaws.com", 443)]
        );
    }

    #[test]
    fn aws_path_style() {
        let s = settings("s3://archive", &[("AWS_S3_FORCE_PATH_STYLE", "true")]);
        let target = s3_target(&s);
        assert!(!target.virtual_hosted);
        assert_eq!(target.endpoint, "https://s3.us-east-1.amazonaws.com");
        assert_eq!(
            target.grant,
            endpoint("https", "s3.us-east-1.amazonaws.com", 443)
        );
    }

    #[test]
    fn buckets_with_dots_go_path_style() {
        let s = settings("s3://my.archive", &[]);
        assert_eq!(
            s3_target(&s).grant,
            endpoint("https", "s3.us-east-1.amazonaws.com", 443)
        );
    }

    #[test]
    fn custom_endpoint_with_port() {
        let s = settings(
            "s3://archive",
            &[("AWS_ENDPOINT", "https://minio.internal:9000/")],
        );
        let target = s3_target(&s);
        assert_eq!(target.endpoint, "https://archive.minio.internal:9000");
        assert_eq!(
            target.grant,
            endpoint("https", "archive.minio.internal", 9000)
        );

        let s = settings(
            "s3://archive",
            &[
                ("AWS_ENDPOINT", "http://minio.internal:9000"),
                ("AWS_S3_FORCE_PATH_STYLE", "true"),
            ],
        );
        let target = s3_target(&s);
        assert_eq!(target.endpoint, "http://minio.internal:9000");
        assert_eq!(target.grant, endpoint("http", "minio.internal", 9000));
    }

    #[test]
    fn default_ports_are_granted_explicitly() {
        let s = settings(
            "s3://archive",
            &[("AWS_ENDPOINT_URL", "http://storage.example")],
        );
        assert_eq!(
            s3_target(&s).grant,
            endpoint("http", "archive.storage.example", 80)
        );
        let s = settings(
            "s3://archive",
            &[("AWS_ENDPOINT_URL", "https://storage.example:443")],
        );
        let target = s3_target(&s);
        assert_eq!(target.endpoint, "https://archive.storage.example");
        assert_eq!(
            target.grant,
            endpoint("https", "archive.storage.example", 443)
        );
    }

    #[test]
    fn ip_and_localhost_endpoints_go_path_style() {
        for (url, host) in [
            ("http://127.0.0.1:19150", "127.0.0.1"),
            ("http://localhost:9000", "localhost"),
            ("http://[::1]:9000", "[::1]"),
        ] {
            let s = settings("s3://archive", &[("AWS_ENDPOINT_URL", url)]);
            let target = s3_target(&s);
            assert!(!target.virtual_hosted, "{url}");
            assert_eq!(target.endpoint, url);
            assert_eq!(target.grant.host, host);
        }
    }

    #[test]
    fn sts_is_granted_only_for_web_identity() {
        let role = ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r");
        let s = settings("s3://archive", &[role, ("AWS_REGION", "eu-north-1")]);
        assert_eq!(
            grants(&s).endpoints,
            vec![
                endpoint("https", "archive.s3.eu-north-1.amazonaws.com", 443),
                endpoint("https", "sts.eu-north-1.amazonaws.com", 443),
            ]
        );
        assert_eq!(sts_target(&s).0, "https://sts.eu-north-1.amazonaws.com");

        // Static keys win: no STS.
        let s = settings("s3://archive", &[role, ("AWS_ACCESS_KEY_ID", "AKID")]);
        assert_eq!(grants(&s).endpoints.len(), 1);

        let s = settings(
            "s3://archive",
            &[role, ("AWS_ENDPOINT_URL", "http://10.0.0.5:8080")],
        );
        assert_eq!(
            grants(&s).endpoints,
            vec![endpoint("http", "10.0.0.5", 8080)],
            "one endpoint serving both is granted once"
        );
        let s = settings(
            "s3://archive",
            &[
                role,
                ("AWS_ENDPOINT_URL", "http://10.0.0.5:8080"),
                ("AWS_ENDPOINT_URL_STS", "https://sts.example"),
            ],
        );
        assert_eq!(
            grants(&s).endpoints[1],
            endpoint("https", "sts.example", 443)
        );
        assert_eq!(sts_target(&s).0, "https://sts.example");
    }
}

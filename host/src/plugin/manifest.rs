//! A plugin's declared capabilities (its manifest) and the check that what a
//! configuration asks for (`plan`, `host.request-endpoint`) lies within them.
//!
//! The operator's policy (`allowed_hosts`, `allowed_directories`) is a second,
//! independent bound: a grant must pass both.

use super::sandbox::{Endpoint, Grants};
use crate::storage::Capabilities;

/// The hosts a configuration names: the authority of the prefix and of every
/// URL found in a setting's value, plain or secret (an Azure connection
/// string is a secret that names its `BlobEndpoint=` among other fields).
/// `configured` in a manifest means these and their subdomains (a
/// virtual-hosted bucket is `bucket.<endpoint host>`). A secret names hosts
/// the same way a plain setting does: both are the operator's configuration,
/// and the plugin cannot add to either.
pub fn configured_hosts(prefix: &str, settings: &[&[(String, String)]]) -> Vec<String> {
    let mut hosts: Vec<String> = url_host(prefix).into_iter().collect();
    for (_, value) in settings.iter().flat_map(|s| s.iter()) {
        for host in url_hosts_in(value) {
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
    }
    hosts
}

/// The http(s) endpoints a configuration names, with scheme and port: the
/// prefix's and every URL in a setting's value. Only these (and hosts the
/// operator lists in allowed_hosts) may resolve to a loopback, private or
/// link-local address (see `sandbox::NetworkGate`): a plugin whose manifest
/// says "configured" may reach other ports of a configured host, but never
/// another port of an internal one.
pub fn configured_endpoints(prefix: &str, settings: &[&[(String, String)]]) -> Vec<Endpoint> {
    let mut endpoints: Vec<Endpoint> = url_endpoint(prefix).into_iter().collect();
    for (_, value) in settings.iter().flat_map(|s| s.iter()) {
        for url in urls_in(value) {
            if let Some(endpoint) = url_endpoint(url)
                && !endpoints.contains(&endpoint)
            {
                endpoints.push(endpoint);
            }
        }
    }
    endpoints
}

fn url_endpoint(url: &str) -> Option<Endpoint> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let host = url_host(url)?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let port_text = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once("]:").map(|(_, p)| p),
        None => host_port.split_once(':').map(|(_, p)| p),
    };
    let port = match port_text {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    Some(Endpoint { scheme, host, port })
}

/// Every `scheme://host` in `value`, wherever it starts (after `=`, `;`, a
/// space or at the beginning).
fn url_hosts_in(value: &str) -> Vec<String> {
    urls_in(value).into_iter().filter_map(url_host).collect()
}

/// Every URL in `value`, as `url_hosts_in` finds them.
fn urls_in(value: &str) -> Vec<&str> {
    let mut urls = Vec::new();
    let mut rest = value;
    while let Some(at) = rest.find("://") {
        let scheme_start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
            .map_or(0, |i| i + 1);
        let end = rest[at + 3..]
            .find(|c: char| c == ';' || c == ',' || c.is_whitespace())
            .map_or(rest.len(), |i| at + 3 + i);
        if scheme_start < at {
            urls.push(&rest[scheme_start..end]);
        }
        rest = &rest[end..];
    }
    urls
}

fn url_host(value: &str) -> Option<String> {
    let (_, rest) = value.trim().split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Whether a manifest pattern names an address instead of a host: a
/// manifest may not (which address is the operator's to configure).
pub fn is_ip_literal(pattern: &str) -> bool {
    let bare = pattern.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>().is_ok()
}

/// Whether `capabilities` let the plugin reach `endpoint`.
pub fn allows_endpoint(
    capabilities: &Capabilities,
    endpoint: &Endpoint,
    configured: &[String],
) -> bool {
    let host = endpoint.host.to_ascii_lowercase();
    let within = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
    capabilities.network.iter().any(|pattern| {
        let pattern = pattern.to_ascii_lowercase();
        if is_ip_literal(&pattern) {
            false
        } else if pattern == "configured" {
            configured.iter().any(|c| within(c))
        } else if let Some(suffix) = pattern.strip_prefix("*.") {
            host.ends_with(&format!(".{suffix}"))
        } else {
            host == pattern
        }
    })
}

/// Checks a plan against the manifest; the error names what was asked for
/// and what was declared.
pub fn check(
    backend: &str,
    capabilities: &Capabilities,
    grants: &Grants,
    configured: &[String],
) -> Result<(), String> {
    if let Some(address) = capabilities.network.iter().find(|p| is_ip_literal(p)) {
        return Err(format!(
            "plugin {backend}'s manifest names the address {address}; a manifest may name hosts only (an address is the operator's to configure)"
        ));
    }
    if !grants.directories.is_empty() && !capabilities.directory {
        return Err(format!(
            "plugin {backend} asked for directory {} but its manifest declares no directory access",
            grants.directories[0].path.display()
        ));
    }
    for endpoint in &grants.endpoints {
        if !allows_endpoint(capabilities, endpoint, configured) {
            return Err(format!(
                "plugin {backend} asked for endpoint {endpoint} which its manifest does not declare (network: {})",
                describe_network(capabilities)
            ));
        }
    }
    Ok(())
}

pub fn describe_network(capabilities: &Capabilities) -> String {
    if capabilities.network.is_empty() {
        "none".into()
    } else {
        capabilities.network.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::sandbox::DirectoryGrant;

    fn ep(host: &str) -> Endpoint {
        Endpoint {
            scheme: "https".into(),
            host: host.into(),
            port: 443,
        }
    }

    fn s3_like() -> Capabilities {
        Capabilities {
            network: vec!["*.amazonaws.com".into(), "configured".into()],
            directory: false,
        }
    }

    #[test]
    fn configured_hosts_come_from_the_prefix_and_url_settings() {
        let plain = vec![
            (
                "AWS_ENDPOINT_URL".into(),
                "http://minio.internal:9000/".into(),
            ),
            ("AWS_REGION".into(), "eu-west-1".into()),
            ("X".into(), "https://user@[::1]:8443/p".into()),
        ];
        assert_eq!(
            configured_hosts("s3://bucket/path", &[&plain]),
            ["bucket", "minio.internal", "::1"]
        );
    }

    #[test]
    fn urls_inside_secret_values_name_hosts_too() {
        let secrets = vec![(
            "AZURE_STORAGE_CONNECTION_STRING".into(),
            "DefaultEndpointsProtocol=http;AccountName=dev;AccountKey=a2V5/+==;\
             BlobEndpoint=http://127.0.0.1:10000/dev;QueueEndpoint=https://q.example:1/"
                .into(),
        )];
        assert_eq!(
            configured_hosts("azure://c/p", &[&[], &secrets]),
            ["c", "127.0.0.1", "q.example"]
        );
        // A value without a URL names nothing.
        let plain = vec![("K".into(), "no url here: x=y".into())];
        assert_eq!(configured_hosts("gs://b", &[&plain]), ["b"]);
    }

    #[test]
    fn patterns_match_exact_suffix_and_configured_hosts_with_subdomains() {
        let configured = vec!["minio.internal".to_string()];
        let caps = s3_like();
        assert!(allows_endpoint(
            &caps,
            &ep("b.s3.eu-west-1.amazonaws.com"),
            &configured
        ));
        assert!(allows_endpoint(&caps, &ep("minio.internal"), &configured));
        assert!(allows_endpoint(
            &caps,
            &ep("bucket.minio.internal"),
            &configured
        ));
        assert!(!allows_endpoint(
            &caps,
            &ep("amazonaws.com.evil.example"),
            &configured
        ));
        assert!(!allows_endpoint(&caps, &ep("evil.example"), &configured));
        assert!(!allows_endpoint(&caps, &ep("xminio.internal"), &configured));
        let exact = Capabilities {
            network: vec!["auth.example".into()],
            directory: false,
        };
        assert!(allows_endpoint(&exact, &ep("AUTH.example"), &[]));
        assert!(!allows_endpoint(&exact, &ep("x.auth.example"), &[]));
    }

    #[test]
    fn a_manifest_naming_an_address_is_refused_and_the_address_never_matches() {
        let caps = Capabilities {
            network: vec!["169.254.169.254".into(), "[fd00:ec2::254]".into()],
            directory: false,
        };
        assert!(!allows_endpoint(&caps, &ep("169.254.169.254"), &[]));
        assert!(!allows_endpoint(&caps, &ep("fd00:ec2::254"), &[]));
        let err = check("x", &caps, &Grants::default(), &[]).unwrap_err();
        assert!(err.contains("names the address 169.254.169.254"), "{err}");
    }

    #[test]
    fn configured_endpoints_keep_scheme_and_port() {
        let secrets = vec![(
            "C".into(),
            "BlobEndpoint=http://127.0.0.1:10000/dev;QueueEndpoint=https://Q.example/".into(),
        )];
        let plain = vec![("E".into(), "https://[::1]:8443/p".into())];
        let endpoint = |scheme: &str, host: &str, port| Endpoint {
            scheme: scheme.into(),
            host: host.into(),
            port,
        };
        assert_eq!(
            configured_endpoints("s3://bucket/p", &[&plain, &secrets]),
            [
                endpoint("https", "::1", 8443),
                endpoint("http", "127.0.0.1", 10000),
                endpoint("https", "q.example", 443),
            ]
        );
    }

    #[test]
    fn a_plan_outside_the_manifest_is_refused_naming_both() {
        let grants = Grants {
            endpoints: vec![ep("evil.example")],
            directories: vec![],
        };
        let err = check("s3", &s3_like(), &grants, &[]).unwrap_err();
        assert!(err.contains("evil.example"), "{err}");
        assert!(err.contains("*.amazonaws.com, configured"), "{err}");
        let dir = Grants {
            endpoints: vec![],
            directories: vec![DirectoryGrant {
                path: "/srv".into(),
                writable: true,
            }],
        };
        let err = check("s3", &s3_like(), &dir, &[]).unwrap_err();
        assert!(err.contains("no directory access"), "{err}");
    }
}

//! Which host the plugin talks to: the blob service endpoint, as a grant.
//!
//! `plan` grants the endpoint the plain settings name; `open` asks the host
//! for the one it resolved (see `store.rs`), which is a no-op when they agree
//! and the only way a connection string's endpoint can be reached otherwise.

use url::Url;

use crate::config::Settings;
use crate::walship::storage::types::{Endpoint, Grants};

/// The scheme, host and port requests to `url` go to.
pub fn grant(url: &Url) -> Endpoint {
    Endpoint {
        scheme: url.scheme().to_string(),
        // An IPv6 address in brackets, as the host's policy writes it.
        host: url.host_str().unwrap_or_default().to_string(),
        port: url.port_or_known_default().unwrap_or(443),
    }
}

/// Every endpoint a store with these plain settings contacts. Empty when
/// only a connection string (a secret, which `plan` never sees) names it.
pub fn grants(settings: &Settings) -> Grants {
    Grants {
        endpoints: settings.planned_endpoint().iter().map(grant).collect(),
        directories: Vec::new(),
    }
}

/// `scheme://host:port`, for messages.
pub fn describe(endpoint: &Endpoint) -> String {
    format!("{}://{}:{}", endpoint.scheme, endpoint.host, endpoint.port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(plain: &[(&str, &str)]) -> Settings {
        let config: Vec<(String, String)> = plain
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::parse("azure://archive", &config).unwrap()
    }

    #[test]
    fn the_account_endpoint_on_443() {
        let g = grants(&settings(&[("AZURE_STORAGE_ACCOUNT", "walship")]));
        assert_eq!(
            g.endpoints,
            vec![Endpoint {
                scheme: "https".into(),
                host: "walship.blob.core.windows.net".into(),
                port: 443
            }]
        );
    }

    #[test]
    fn a_service_endpoint_wins_with_its_port() {
        let g = grants(&settings(&[
            ("AZURE_STORAGE_ACCOUNT", "devstoreaccount1"),
            (
                "AZURE_STORAGE_SERVICE_ENDPOINT",
                "http://127.0.0.1:19130/devstoreaccount1",
            ),
        ]));
        assert_eq!(
            g.endpoints,
            vec![Endpoint {
                scheme: "http".into(),
                host: "127.0.0.1".into(),
                port: 19130
            }]
        );
        let g = grants(&settings(&[(
            "AZURE_STORAGE_SERVICE_ENDPOINT",
            "http://[::1]/acct",
        )]));
        assert_eq!(g.endpoints[0].host, "[::1]");
        assert_eq!(g.endpoints[0].port, 80);
    }

    #[test]
    fn nothing_without_plain_settings() {
        assert!(grants(&settings(&[])).endpoints.is_empty());
    }
}

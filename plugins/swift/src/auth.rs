//! Getting a token and a storage URL: v1 auth (`ST_AUTH`), Keystone v3
//! password auth (the object-store endpoint from the token's catalog), or a
//! pre-issued token (`session.rs` starts with that one).
//!
//! Secrets go into request headers or the JSON body, never into messages.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use crate::config::{AuthMethod, Keystone};
use crate::errors::one_line;
use crate::session::{Send, Session};
use crate::walship::storage::types::Error;

/// Authenticates with `method`; `secret` is ST_KEY or OS_PASSWORD.
pub fn authenticate(method: &AuthMethod, secret: &str, send: &Send) -> Result<Session, Error> {
    match method {
        AuthMethod::V1 { url, user } => v1(url, user, secret, send),
        AuthMethod::Keystone(keystone) => keystone_v3(keystone, secret, send),
        AuthMethod::TokenOnly => Err(Error::Unauthenticated(
            "Swift refused OS_AUTH_TOKEN (expired or revoked) and there are no credentials to \
             get a new one: issue a new token, or set ST_AUTH/ST_USER/ST_KEY or OS_AUTH_URL/\
             OS_USERNAME/OS_PASSWORD"
                .to_string(),
        )),
    }
}

fn v1(url: &url::Url, user: &str, key: &str, send: &Send) -> Result<Session, Error> {
    let request = http::Request::get(url.as_str())
        .header("x-auth-user", user)
        .header("x-auth-key", key)
        .body(Bytes::new())
        .map_err(|e| {
            Error::InvalidConfig(one_line(&format!("ST_USER {user:?} cannot be sent: {e}")))
        })?;
    let response = send(request).map_err(|failure| {
        let message = one_line(&format!("v1 auth at {url} failed: {failure}"));
        if failure.kind().is_retryable() {
            Error::Transient(message)
        } else {
            Error::Other(message)
        }
    })?;
    let status = response.status().as_u16();
    match status {
        200..=299 => {}
        401 | 403 => {
            return Err(Error::Unauthenticated(one_line(&format!(
                "v1 auth at {url} refused ST_USER {user:?} (HTTP {status}): the user or ST_KEY \
                 is wrong"
            ))));
        }
        _ => return Err(auth_status_error(&format!("v1 auth at {url}"), status)),
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .filter(|v| !v.is_empty())
    };
    match (header("x-storage-url"), header("x-auth-token")) {
        (Some(storage_url), Some(token)) => Ok(Session { storage_url, token }),
        _ => Err(Error::Other(one_line(&format!(
            "v1 auth at {url} answered {status} without X-Storage-Url and X-Auth-Token: is \
             ST_AUTH a Swift v1 auth URL?"
        )))),
    }
}

fn keystone_v3(k: &Keystone, password: &str, send: &Send) -> Result<Session, Error> {
    let url = format!("{}/auth/tokens", k.url.as_str().trim_end_matches('/'));
    let body = json!({
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {
                    "name": k.username,
                    "domain": {"name": k.user_domain},
                    "password": password,
                }},
            },
            "scope": {"project": k.project.scope()},
        }
    });
    let request = http::Request::post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(Bytes::from(body.to_string()))
        .map_err(|e| Error::Other(one_line(&format!("cannot build the Keystone request: {e}"))))?;
    let who = format!(
        "user {:?} (domain {:?}) for {}",
        k.username, k.user_domain, k.project
    );
    let response = send(request).map_err(|failure| {
        let message = one_line(&format!("Keystone auth at {} failed: {failure}", k.url));
        if failure.kind().is_retryable() {
            Error::Transient(message)
        } else {
            Error::Other(message)
        }
    })?;
    let status = response.status().as_u16();
    match status {
        200..=299 => {}
        401 => {
            return Err(Error::Unauthenticated(one_line(&format!(
                "Keystone at {} refused {who} (HTTP 401): OS_USERNAME, OS_PASSWORD or a domain \
                 is wrong",
                k.url
            ))));
        }
        403 => {
            return Err(Error::PermissionDenied(one_line(&format!(
                "Keystone at {} does not let {who} get a project-scoped token (HTTP 403): check \
                 the user's role assignment on the project",
                k.url
            ))));
        }
        404 => {
            return Err(Error::InvalidConfig(one_line(&format!(
                "OS_AUTH_URL {} has no /auth/tokens (HTTP 404): is it Keystone's v3 URL?",
                k.url
            ))));
        }
        _ => {
            return Err(auth_status_error(
                &format!("Keystone auth at {}", k.url),
                status,
            ));
        }
    }
    let token = response
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            Error::Other(one_line(&format!(
                "Keystone at {} answered {status} without X-Subject-Token",
                k.url
            )))
        })?
        .to_string();
    let storage_url = object_store_endpoint(response.body(), k).map_err(|message| {
        Error::InvalidConfig(one_line(&format!("Keystone at {}: {message}", k.url)))
    })?;
    Ok(Session { storage_url, token })
}

#[derive(Deserialize)]
struct TokenReply {
    token: TokenBody,
}

#[derive(Deserialize)]
struct TokenBody {
    #[serde(default)]
    catalog: Vec<Service>,
}

#[derive(Deserialize)]
struct Service {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    endpoints: Vec<CatalogEndpoint>,
}

#[derive(Deserialize)]
struct CatalogEndpoint {
    interface: String,
    url: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    region_id: Option<String>,
}

/// The object-store endpoint of the token's catalog with the configured
/// interface and, if OS_REGION_NAME is set, region (matched against the
/// region's name or id). Without OS_REGION_NAME there must be exactly one.
pub fn object_store_endpoint(body: &[u8], k: &Keystone) -> Result<String, String> {
    let reply: TokenReply =
        serde_json::from_slice(body).map_err(|e| format!("unreadable token reply ({e})"))?;
    let candidates: Vec<&CatalogEndpoint> = reply
        .token
        .catalog
        .iter()
        .filter(|s| s.kind == "object-store")
        .flat_map(|s| &s.endpoints)
        .filter(|e| e.interface == k.interface)
        .collect();
    if candidates.is_empty() {
        return Err(format!(
            "the catalog of {} has no {} object-store endpoint (set OS_STORAGE_URL, \
             or OS_INTERFACE)",
            k.project, k.interface
        ));
    }
    let region_of = |e: &CatalogEndpoint| {
        e.region_id
            .clone()
            .or_else(|| e.region.clone())
            .unwrap_or_default()
    };
    let chosen: Vec<&&CatalogEndpoint> = match &k.region {
        Some(region) => candidates
            .iter()
            .filter(|e| {
                e.region.as_deref() == Some(region.as_str())
                    || e.region_id.as_deref() == Some(region.as_str())
            })
            .collect(),
        None => candidates.iter().collect(),
    };
    let regions = || {
        let mut names: Vec<String> = candidates.iter().map(|e| region_of(e)).collect();
        names.sort();
        names.dedup();
        names.join(", ")
    };
    match (chosen.as_slice(), &k.region) {
        ([one], _) => Ok(one.url.clone()),
        ([], Some(region)) => Err(format!(
            "no {} object-store endpoint in region {region:?} (OS_REGION_NAME); the catalog has \
             regions {}",
            k.interface,
            regions()
        )),
        (several, _) if several.iter().all(|e| e.url == several[0].url) => {
            Ok(several[0].url.clone())
        }
        _ => Err(format!(
            "several {} object-store endpoints (regions {}): set OS_REGION_NAME",
            k.interface,
            regions()
        )),
    }
}

fn auth_status_error(what: &str, status: u16) -> Error {
    let message = one_line(&format!("{what} answered HTTP {status}"));
    match status {
        408 | 429 | 500..=599 => Error::Transient(message),
        _ => Error::Other(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keystone(region: Option<&str>) -> Keystone {
        Keystone {
            url: url::Url::parse("http://k:5000/v3").unwrap(),
            username: "u".into(),
            user_domain: "Default".into(),
            project: crate::config::Project::Name {
                name: "p".into(),
                domain: "Default".into(),
            },
            region: region.map(String::from),
            interface: "public".into(),
        }
    }

    const CATALOG: &str = r#"{"token": {"catalog": [
        {"type": "identity", "endpoints": [{"interface": "public", "url": "http://k:5000/v3", "region": "One"}]},
        {"type": "object-store", "endpoints": [
            {"interface": "internal", "url": "http://int:8080/v1/AUTH_p", "region": "One", "region_id": "One"},
            {"interface": "public", "url": "https://one:443/v1/AUTH_p", "region": "One", "region_id": "One"},
            {"interface": "public", "url": "https://two:443/v1/AUTH_p", "region": "Two", "region_id": "Two"}
        ]}]}}"#;

    #[test]
    fn the_region_picks_the_public_endpoint() {
        let url = object_store_endpoint(CATALOG.as_bytes(), &keystone(Some("Two"))).unwrap();
        assert_eq!(url, "https://two:443/v1/AUTH_p");
        let mut internal = keystone(Some("One"));
        internal.interface = "internal".into();
        let url = object_store_endpoint(CATALOG.as_bytes(), &internal).unwrap();
        assert_eq!(url, "http://int:8080/v1/AUTH_p");
    }

    #[test]
    fn several_regions_need_os_region_name() {
        let err = object_store_endpoint(CATALOG.as_bytes(), &keystone(None)).unwrap_err();
        assert!(
            err.contains("OS_REGION_NAME") && err.contains("One, Two"),
            "{err}"
        );
        let err = object_store_endpoint(CATALOG.as_bytes(), &keystone(Some("Three"))).unwrap_err();
        assert!(err.contains("\"Three\""), "{err}");
        let none = r#"{"token": {"catalog": []}}"#;
        let err = object_store_endpoint(none.as_bytes(), &keystone(None)).unwrap_err();
        assert!(err.contains("no public object-store endpoint"), "{err}");
    }
}

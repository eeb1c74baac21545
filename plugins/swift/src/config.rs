//! The settings, resolved once from the prefix and the plain settings:
//! where objects go, and how the plugin authenticates.

use url::Url;

use crate::walship::storage::types::Endpoint;

/// `swift://container/optional/path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub container: String,
    /// Without leading or trailing `/`; empty for the container's root.
    pub path: String,
}

impl Location {
    pub fn parse(prefix: &str) -> Result<Location, String> {
        let rest = prefix.strip_prefix("swift://").ok_or_else(|| {
            format!("prefix {prefix:?} is not a swift:// URL (swift://container/optional/path)")
        })?;
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (container, path) = rest.split_once('/').unwrap_or((rest, ""));
        if container.is_empty() {
            return Err(format!(
                "prefix {prefix:?} names no container (swift://container/optional/path)"
            ));
        }
        if container.len() > 256 {
            return Err(format!(
                "container name in {prefix:?} is longer than Swift's 256 bytes"
            ));
        }
        let path = path.trim_matches('/');
        if path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
            && !path.is_empty()
        {
            return Err(format!(
                "path in {prefix:?} has an empty, `.` or `..` segment"
            ));
        }
        Ok(Location {
            container: container.to_string(),
            path: path.to_string(),
        })
    }

    /// What every object name of the store starts with: `path/`, or nothing.
    pub fn key_base(&self) -> String {
        if self.path.is_empty() {
            String::new()
        } else {
            format!("{}/", self.path)
        }
    }

    /// The Swift object name of the store's `key`.
    pub fn object_name(&self, key: &str) -> String {
        format!("{}{key}", self.key_base())
    }

    /// `swift://container/path/key`, for messages.
    pub fn url_of(&self, key: &str) -> String {
        format!("swift://{}/{}", self.container, self.object_name(key))
    }
}

/// How the plugin gets a token and a storage URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// v1: `GET ST_AUTH` with X-Auth-User / X-Auth-Key.
    V1 { url: Url, user: String },
    /// Keystone v3 password auth, project-scoped; the object-store endpoint
    /// comes from the token's catalog.
    Keystone(Keystone),
    /// Only a pre-issued OS_AUTH_TOKEN for OS_STORAGE_URL: nothing to
    /// authenticate again with.
    TokenOnly,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keystone {
    /// The v3 root, e.g. `https://keystone.example:5000/v3`.
    pub url: Url,
    pub username: String,
    pub user_domain: String,
    pub project: Project,
    pub region: Option<String>,
    pub interface: String,
}

/// The project a token is scoped to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Project {
    /// OS_PROJECT_NAME (or KubeDB's OS_TENANT_NAME) in OS_PROJECT_DOMAIN_NAME.
    Name { name: String, domain: String },
    /// OS_PROJECT_ID (or OS_TENANT_ID): unique, no domain needed.
    Id(String),
}

impl Project {
    /// Keystone v3's `scope.project`.
    pub fn scope(&self) -> serde_json::Value {
        match self {
            Project::Name { name, domain } => {
                serde_json::json!({"name": name, "domain": {"name": domain}})
            }
            Project::Id(id) => serde_json::json!({"id": id}),
        }
    }
}

impl std::fmt::Display for Project {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Project::Name { name, domain } => write!(f, "project {name:?} (domain {domain:?})"),
            Project::Id(id) => write!(f, "project id {id:?}"),
        }
    }
}

/// Keystone v2 is gone from current Keystone (removed in the Queens
/// release); what to set for v3 instead.
const V2_IS_GONE: &str = "Keystone's v2 API, which current Keystone no longer serves (removed in \
    the Queens release) and this plugin does not speak: use the v3 URL (the same host, path /v3) \
    with OS_PROJECT_NAME or OS_TENANT_NAME (or OS_PROJECT_ID / OS_TENANT_ID), and \
    OS_USER_DOMAIN_NAME / OS_PROJECT_DOMAIN_NAME if not Default";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub location: Location,
    pub auth: AuthMethod,
    /// OS_STORAGE_URL: replaces the storage URL auth replies name.
    pub storage_url: Option<Url>,
}

impl Settings {
    pub fn parse(prefix: &str, config: &[(String, String)]) -> Result<Settings, String> {
        let location = Location::parse(prefix)?;
        let get = |name: &str| {
            config
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let storage_url = get("OS_STORAGE_URL")
            .map(|v| http_url("OS_STORAGE_URL", &v))
            .transpose()?;
        let auth = if let Some(auth_url) = get("ST_AUTH") {
            let user = get("ST_USER").ok_or("ST_AUTH is set but ST_USER is not")?;
            AuthMethod::V1 {
                url: http_url("ST_AUTH", &auth_url)?,
                user,
            }
        } else if let Some(auth_url) = get("OS_AUTH_URL") {
            let required = |name: &str| {
                get(name).ok_or_else(|| format!("OS_AUTH_URL is set but {name} is not"))
            };
            for name in ["OS_IDENTITY_API_VERSION", "OS_AUTH_VERSION"] {
                if let Some(v) = get(name)
                    && v.starts_with('2')
                {
                    return Err(format!("{name}={v:?} asks for {V2_IS_GONE}"));
                }
            }
            AuthMethod::Keystone(Keystone {
                url: keystone_v3(&auth_url)?,
                username: required("OS_USERNAME")?,
                user_domain: get("OS_USER_DOMAIN_NAME").unwrap_or_else(|| "Default".into()),
                project: project(&get)?,
                region: get("OS_REGION_NAME"),
                interface: match get("OS_INTERFACE").as_deref() {
                    None => "public".to_string(),
                    Some(i @ ("public" | "internal" | "admin")) => i.to_string(),
                    Some(other) => {
                        return Err(format!(
                            "OS_INTERFACE={other:?}: expected public, internal or admin"
                        ));
                    }
                },
            })
        } else if storage_url.is_some() {
            AuthMethod::TokenOnly
        } else {
            return Err(
                "no Swift credentials: set ST_AUTH, ST_USER and ST_KEY (v1 auth), \
                        OS_AUTH_URL, OS_USERNAME, OS_PASSWORD and OS_PROJECT_NAME (Keystone v3), \
                        or OS_STORAGE_URL and OS_AUTH_TOKEN (a pre-issued token)"
                    .to_string(),
            );
        };
        Ok(Settings {
            location,
            auth,
            storage_url,
        })
    }

    /// The endpoints this configuration names: the auth URL and
    /// OS_STORAGE_URL. A storage URL from an auth reply is asked for when
    /// it is learned.
    pub fn planned_endpoints(&self) -> Vec<Endpoint> {
        let auth = match &self.auth {
            AuthMethod::V1 { url, .. } => Some(url),
            AuthMethod::Keystone(k) => Some(&k.url),
            AuthMethod::TokenOnly => None,
        };
        let mut endpoints: Vec<Endpoint> = Vec::new();
        for url in auth.into_iter().chain(self.storage_url.as_ref()) {
            let endpoint = endpoint_of(url);
            if !endpoints.contains(&endpoint) {
                endpoints.push(endpoint);
            }
        }
        endpoints
    }
}

/// The (scheme, host, port) requests to `url` go to.
pub fn endpoint_of(url: &Url) -> Endpoint {
    Endpoint {
        scheme: url.scheme().to_string(),
        host: url
            .host_str()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port: url.port_or_known_default().unwrap_or(443),
    }
}

/// An http(s) URL with a host, or a message naming the setting.
pub fn http_url(setting: &str, value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("{setting}={value:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "{setting}={value:?} must be an http:// or https:// URL with a host"
        ));
    }
    Ok(url)
}

/// The project, by id or by name; KubeDB's images export the v2-era
/// OS_TENANT_NAME / OS_TENANT_ID, which python-swiftclient takes as the
/// project's name and id with v3, and so does this plugin.
fn project(get: &impl Fn(&str) -> Option<String>) -> Result<Project, String> {
    let either = |a: &str, b: &str| -> Result<Option<String>, String> {
        match (get(a), get(b)) {
            (Some(x), Some(y)) if x != y => Err(format!(
                "{a}={x:?} and {b}={y:?} name different projects; set one"
            )),
            (x, y) => Ok(x.or(y)),
        }
    };
    let id = either("OS_PROJECT_ID", "OS_TENANT_ID")?;
    let name = either("OS_PROJECT_NAME", "OS_TENANT_NAME")?;
    match (id, name) {
        (Some(id), _) => Ok(Project::Id(id)),
        (None, Some(name)) => Ok(Project::Name {
            name,
            domain: get("OS_PROJECT_DOMAIN_NAME").unwrap_or_else(|| "Default".into()),
        }),
        (None, None) => Err(
            "OS_AUTH_URL is set but no project: set OS_PROJECT_NAME (or OS_TENANT_NAME) or \
             OS_PROJECT_ID (or OS_TENANT_ID)"
                .to_string(),
        ),
    }
}

/// OS_AUTH_URL as the v3 root: `/v3` is appended when no version is named.
fn keystone_v3(value: &str) -> Result<Url, String> {
    let trimmed = value.trim_end_matches('/');
    let url = http_url("OS_AUTH_URL", trimmed)?;
    let path = url.path().trim_end_matches('/');
    if path.ends_with("/v3") {
        Ok(url)
    } else if path.ends_with("/v2.0") || path.ends_with("/v2") {
        Err(format!("OS_AUTH_URL={value:?} is {V2_IS_GONE}"))
    } else {
        http_url("OS_AUTH_URL", &format!("{trimmed}/v3"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(prefix: &str, pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let config: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::parse(prefix, &config)
    }

    #[test]
    fn prefixes() {
        let l = Location::parse("swift://walship/db1/").unwrap();
        assert_eq!((l.container.as_str(), l.path.as_str()), ("walship", "db1"));
        assert_eq!(l.object_name("wal/x"), "db1/wal/x");
        assert_eq!(l.url_of("k"), "swift://walship/db1/k");
        let root = Location::parse("swift://walship").unwrap();
        assert_eq!(root.object_name("wal/x"), "wal/x");
        assert!(Location::parse("s3://walship").is_err());
        assert!(Location::parse("swift:///path").is_err());
        assert!(Location::parse("swift://c/a//b").is_err());
    }

    #[test]
    fn v1_plans_its_auth_endpoint() {
        let s = settings(
            "swift://c/p",
            &[
                ("ST_AUTH", "http://127.0.0.1:8080/auth/v1.0"),
                ("ST_USER", "test:tester"),
            ],
        )
        .unwrap();
        assert!(matches!(s.auth, AuthMethod::V1 { .. }));
        let planned = s.planned_endpoints();
        assert_eq!(planned.len(), 1);
        assert_eq!(
            (
                planned[0].scheme.as_str(),
                planned[0].host.as_str(),
                planned[0].port
            ),
            ("http", "127.0.0.1", 8080)
        );
    }

    #[test]
    fn keystone_url_gets_v3_and_domains_default() {
        let s = settings(
            "swift://c",
            &[
                ("OS_AUTH_URL", "https://keystone.example:5000/"),
                ("OS_USERNAME", "u"),
                ("OS_PROJECT_NAME", "p"),
                ("OS_STORAGE_URL", "https://swift.example/v1/AUTH_x"),
            ],
        )
        .unwrap();
        let AuthMethod::Keystone(k) = &s.auth else {
            panic!("{s:?}")
        };
        assert_eq!(k.url.as_str(), "https://keystone.example:5000/v3");
        assert_eq!(k.user_domain, "Default");
        assert_eq!(k.interface, "public");
        let hosts: Vec<_> = s
            .planned_endpoints()
            .into_iter()
            .map(|e| (e.host, e.port))
            .collect();
        assert_eq!(
            hosts,
            [
                ("keystone.example".to_string(), 5000),
                ("swift.example".to_string(), 443)
            ]
        );
        let v2 = settings(
            "swift://c",
            &[
                ("OS_AUTH_URL", "https://k/v2.0"),
                ("OS_USERNAME", "u"),
                ("OS_PROJECT_NAME", "p"),
            ],
        );
        let e = v2.unwrap_err();
        assert!(e.contains("v2") && e.contains("OS_TENANT_NAME"), "{e}");
        let e = settings(
            "swift://c",
            &[
                ("OS_AUTH_URL", "https://k:5000"),
                ("OS_IDENTITY_API_VERSION", "2"),
                ("OS_USERNAME", "u"),
                ("OS_TENANT_NAME", "p"),
            ],
        )
        .unwrap_err();
        assert!(
            e.contains("OS_IDENTITY_API_VERSION") && e.contains("v3"),
            "{e}"
        );
    }

    /// KubeDB's images export OS_TENANT_NAME / OS_TENANT_ID; with v3 they
    /// are the project's name and id, as python-swiftclient takes them.
    #[test]
    fn kubedb_tenant_names_are_the_project() {
        let keystone = |pairs: &[(&str, &str)]| {
            let mut all = vec![("OS_AUTH_URL", "https://k:5000/v3"), ("OS_USERNAME", "u")];
            all.extend_from_slice(pairs);
            settings("swift://c", &all).map(|s| match s.auth {
                AuthMethod::Keystone(k) => k.project,
                other => panic!("{other:?}"),
            })
        };
        assert_eq!(
            keystone(&[("OS_TENANT_NAME", "kubedb")]).unwrap(),
            Project::Name {
                name: "kubedb".into(),
                domain: "Default".into()
            }
        );
        assert_eq!(
            keystone(&[("OS_TENANT_ID", "0123abcd"), ("OS_TENANT_NAME", "kubedb")]).unwrap(),
            Project::Id("0123abcd".into())
        );
        assert!(keystone(&[("OS_TENANT_NAME", "a"), ("OS_PROJECT_NAME", "b")]).is_err());
        let e = keystone(&[]).unwrap_err();
        assert!(e.contains("OS_TENANT_NAME"), "{e}");
    }

    #[test]
    fn pre_issued_token_and_missing_credentials() {
        let s = settings("swift://c", &[("OS_STORAGE_URL", "http://h:1/v1/AUTH_a")]).unwrap();
        assert_eq!(s.auth, AuthMethod::TokenOnly);
        let err = settings("swift://c", &[]).unwrap_err();
        assert!(
            err.contains("ST_AUTH") && err.contains("OS_AUTH_URL"),
            "{err}"
        );
        let err = settings("swift://c", &[("ST_AUTH", "http://h/auth/v1.0")]).unwrap_err();
        assert!(err.contains("ST_USER"), "{err}");
        let err = settings("swift://c", &[("ST_AUTH", "ftp://h/"), ("ST_USER", "u")]).unwrap_err();
        assert!(err.contains("http"), "{err}");
    }
}

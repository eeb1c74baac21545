//! What a plugin may touch. Nothing is reachable unless granted here: the
//! plugin asks (`plan`, `host.request-endpoint`), the operator's policy bounds
//! what may be granted, and the host links exactly that.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};
use wasmtime_wasi_http::{WasiBody, WasiHttpHooks};

use super::grant_dir::{GrantedDir, OwnState};
use super::outbound::Sent;

/// A network endpoint (scheme, host, port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryGrant {
    pub path: PathBuf,
    pub writable: bool,
}

/// What a plugin asked for, for one configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub endpoints: Vec<Endpoint>,
    pub directories: Vec<DirectoryGrant>,
}

/// The operator's bounds on grants.
#[derive(Debug, Clone, Default)]
pub struct SandboxPolicy {
    /// `host` or `host:port` entries. `None`: the endpoints a plugin derives
    /// from the operator's own configuration are trusted, and endpoints
    /// learned at run time must be on a host already granted.
    pub allowed_hosts: Option<Vec<String>>,
    /// Directories a plugin may be given besides the one a `scheme:///path`
    /// prefix names.
    pub allowed_directories: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrantRefused {
    #[error(
        "plugin asked for directory {0} which is neither the prefix's path nor in allowed_directories (WALSHIP_ALLOW_DIRECTORIES)"
    )]
    Directory(String),
    #[error("plugin asked for endpoint {0} which is not in allowed_hosts (WALSHIP_ALLOW_HOSTS)")]
    Endpoint(String),
}

impl SandboxPolicy {
    /// Checks a plugin's `plan` against the policy. `prefix_path` is the path
    /// of a `scheme:///path` prefix: the operator named it, so a plugin may
    /// have it. Each directory comes back with the root it must be opened
    /// beneath (see grant_dir.rs: the check here is of names only).
    pub fn check(
        &self,
        grants: &Grants,
        prefix_path: Option<&Path>,
    ) -> Result<Vec<GrantedDir>, GrantRefused> {
        let mut dirs = Vec::new();
        for dir in &grants.directories {
            let plain =
                dir.path.is_absolute() && !dir.path.components().any(|c| c.as_os_str() == "..");
            let root = prefix_path
                .filter(|p| dir.path == *p)
                .or_else(|| {
                    self.allowed_directories
                        .iter()
                        .map(PathBuf::as_path)
                        .find(|d| dir.path.starts_with(d))
                })
                .filter(|_| plain)
                .ok_or_else(|| GrantRefused::Directory(dir.path.display().to_string()))?;
            dirs.push(GrantedDir {
                root: root.to_path_buf(),
                path: dir.path.clone(),
                writable: dir.writable,
            });
        }
        if let Some(allowed) = &self.allowed_hosts {
            for ep in &grants.endpoints {
                if !host_allowed(allowed, ep) {
                    return Err(GrantRefused::Endpoint(ep.to_string()));
                }
            }
        }
        Ok(dirs)
    }

    /// Whether an endpoint a plugin learned at run time may be added. Without
    /// an operator allowlist: a host already granted, or one the
    /// configuration itself names (`configured`: hosts of URLs in the prefix
    /// and in the settings, e.g. an Azure connection string's
    /// `BlobEndpoint=`), which `plan` cannot see when it is in a secret.
    pub fn allows_runtime_endpoint(
        &self,
        granted: &[Endpoint],
        configured: &[String],
        requested: &Endpoint,
    ) -> bool {
        match &self.allowed_hosts {
            Some(allowed) => host_allowed(allowed, requested),
            None => {
                granted
                    .iter()
                    .any(|g| g.host.eq_ignore_ascii_case(&requested.host))
                    || configured
                        .iter()
                        .any(|c| c.eq_ignore_ascii_case(&requested.host))
            }
        }
    }
}

fn host_allowed(allowed: &[String], ep: &Endpoint) -> bool {
    allowed.iter().any(|entry| match entry.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => {
            host.eq_ignore_ascii_case(&ep.host) && port.parse::<u16>() == Ok(ep.port)
        }
        _ => entry.eq_ignore_ascii_case(&ep.host),
    })
}

/// Builds the WASI context: the granted directories preopened at their own
/// path (each opened beneath its root, never through a symlink, and never
/// overlapping `own`: see grant_dir.rs), stderr for panic messages, and
/// nothing else: no environment, no arguments, no stdin/stdout, no sockets,
/// no name lookups.
pub fn wasi_context(dirs: &[GrantedDir], own: &[OwnState]) -> anyhow::Result<WasiCtx> {
    let mut b = WasiCtxBuilder::new();
    b.inherit_stderr();
    b.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    b.socket_addr_check(|_, _| Box::pin(async { false }));
    // Filesystem calls run on this thread instead of hopping to a blocking
    // pool per call: a 16 MiB write is many calls, and the per-call deadline
    // still holds through the process watchdog.
    b.allow_blocking_current_thread(true);
    for dir in dirs {
        let perms = if dir.writable {
            FsPerms::ReadWrite
        } else {
            FsPerms::ReadOnly
        };
        let guest_path = dir
            .path
            .to_str()
            .ok_or_else(|| anyhow::anyhow!("directory path is not UTF-8"))?;
        let opened = dir.open(false, own)?;
        // WASI opens its own descriptor from ours; `opened` closes after.
        b.preopened_dir(opened.proc_path(), guest_path, perms)
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot open directory {} for the plugin: {e}",
                    dir.path.display()
                )
            })?;
    }
    Ok(b.build())
}

/// Timeouts for one HTTP exchange a plugin makes, unless it asks for shorter.
#[derive(Debug, Clone, Copy)]
pub struct HttpTimeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub between_bytes: Duration,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(60),
            between_bytes: Duration::from_secs(60),
        }
    }
}

/// The outbound HTTP gate: every request a plugin makes passes here, and only
/// granted endpoints get through.
pub struct NetworkGate {
    pub granted: Vec<Endpoint>,
    pub policy: SandboxPolicy,
    pub timeouts: HttpTimeouts,
    pub plugin_name: String,
    pub outbound: std::sync::Arc<super::outbound::Outbound>,
    /// Bounds endpoints granted at run time (`host.request-endpoint`).
    pub manifest: Option<RuntimeManifest>,
}

/// A plugin's declared capabilities and the hosts its configuration names.
#[derive(Debug, Clone)]
pub struct RuntimeManifest {
    pub capabilities: crate::storage::Capabilities,
    pub configured: Vec<String>,
    /// The http(s) endpoints the configuration names, with scheme and port:
    /// the only ones that may lead to an internal address.
    pub endpoints: Vec<Endpoint>,
    /// Whether the instance was handed credentials (any secret).
    pub holds_secrets: bool,
    /// The operator lets credentials go over plain http beyond this machine
    /// (`WALSHIP_ALLOW_HTTP_CREDENTIALS`).
    pub cleartext_allowed: bool,
}

/// Whether a plugin may reach the cloud platform's metadata service (and so
/// the machine's own credentials). This is the hook for the credential-chain
/// capability the workload-identity work will add to the contract (a
/// plugin declaring it, unless the operator turns it off); no contract
/// version has it yet, so no plugin may.
fn may_use_credential_chain(_capabilities: &crate::storage::Capabilities) -> bool {
    false
}

type ResponseFuture = Box<dyn Future<Output = wasmtime_wasi_http::Result<Sent>> + Send>;

impl NetworkGate {
    /// What a request to `uri` may connect to besides public addresses:
    /// internal ones only at an endpoint the operator named (exactly its
    /// scheme, host and port, or a subdomain of a configured name at that
    /// scheme and port: a virtual-hosted bucket), or one listed in
    /// allowed_hosts; metadata services only with the credential chain.
    fn reach(&self, uri: &http::Uri) -> super::address_class::Reach {
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        let Some(manifest) = &self.manifest else {
            return super::address_class::Reach::PUBLIC;
        };
        let configured = manifest.endpoints.iter().any(|e| {
            let name = !super::manifest::is_ip_literal(&e.host);
            e.scheme == scheme
                && e.port == port
                && (e.host == host || (name && host.ends_with(&format!(".{}", e.host))))
        });
        let listed = self.policy.allowed_hosts.as_ref().is_some_and(|allowed| {
            host_allowed(
                allowed,
                &Endpoint {
                    scheme: scheme.clone(),
                    host: host.clone(),
                    port,
                },
            )
        });
        super::address_class::Reach {
            internal: configured || listed,
            metadata: may_use_credential_chain(&manifest.capabilities),
            // Credentials never cross the network in clear text.
            beyond_loopback: scheme != "http"
                || !manifest.holds_secrets
                || manifest.cleartext_allowed,
        }
    }

    fn permits(&self, uri: &http::Uri) -> bool {
        let scheme = uri.scheme_str().unwrap_or("https");
        let Some(host) = uri.host() else { return false };
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        self.granted.iter().any(|e| {
            e.scheme.eq_ignore_ascii_case(scheme)
                && e.host.eq_ignore_ascii_case(host)
                && e.port == port
        })
    }
}

impl WasiHttpHooks for NetworkGate {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> ResponseFuture {
        drop(fut);
        if !self.permits(request.uri()) {
            eprintln!(
                "walship: plugin {} tried to reach {} which was not granted; denied",
                self.plugin_name,
                request.uri().authority().map(|a| a.as_str()).unwrap_or("?")
            );
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        // The guest may ask for shorter timeouts, never longer ones.
        let t = self.timeouts;
        let options = options.unwrap_or_default();
        let cap = |asked: Option<Duration>, max: Duration| asked.map_or(max, |a| a.min(max));
        let timeouts = HttpTimeouts {
            connect: cap(options.connect_timeout, t.connect),
            first_byte: cap(options.first_byte_timeout, t.first_byte),
            between_bytes: cap(options.between_bytes_timeout, t.between_bytes),
        };
        let reach = self.reach(request.uri());
        let plugin = self.plugin_name.clone();
        Box::new(self.outbound.clone().send(request, timeouts, reach, plugin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(host: &str, port: u16) -> Endpoint {
        Endpoint {
            scheme: "https".into(),
            host: host.into(),
            port,
        }
    }

    #[test]
    fn directories_only_for_the_prefix_or_the_allowlist() {
        let policy = SandboxPolicy::default();
        let grants = |p: &str| Grants {
            directories: vec![DirectoryGrant {
                path: PathBuf::from(p),
                writable: true,
            }],
            ..Grants::default()
        };
        assert!(
            policy
                .check(&grants("/archive"), Some(Path::new("/archive")))
                .is_ok()
        );
        assert!(
            policy
                .check(&grants("/"), Some(Path::new("/archive")))
                .is_err()
        );
        assert!(policy.check(&grants("/etc"), None).is_err());
        let policy = SandboxPolicy {
            allowed_directories: vec!["/srv".into()],
            ..Default::default()
        };
        let dirs = policy.check(&grants("/srv/a"), None).unwrap();
        assert_eq!(dirs[0].root, Path::new("/srv"));
        assert!(policy.check(&grants("/srv/../etc"), None).is_err());
    }

    #[test]
    fn endpoints_bounded_by_allowed_hosts() {
        let open = SandboxPolicy::default();
        let g = Grants {
            endpoints: vec![ep("s3.example", 443)],
            ..Default::default()
        };
        assert!(open.check(&g, None).is_ok());
        let strict = SandboxPolicy {
            allowed_hosts: Some(vec!["s3.example:9000".into()]),
            ..Default::default()
        };
        assert!(strict.check(&g, None).is_err());
        let host_only = SandboxPolicy {
            allowed_hosts: Some(vec!["S3.example".into()]),
            ..Default::default()
        };
        assert!(host_only.check(&g, None).is_ok());
    }

    #[test]
    fn runtime_endpoints_need_a_known_host_or_the_allowlist() {
        let open = SandboxPolicy::default();
        let granted = [ep("auth.example", 5000)];
        assert!(open.allows_runtime_endpoint(&granted, &[], &ep("auth.example", 8080)));
        assert!(!open.allows_runtime_endpoint(&granted, &[], &ep("evil.example", 443)));
        // A host the configuration names (in a secret, say) is allowed too.
        let configured = vec!["blob.internal".to_string()];
        assert!(open.allows_runtime_endpoint(&granted, &configured, &ep("blob.internal", 10000)));
        assert!(!open.allows_runtime_endpoint(&granted, &configured, &ep("x.blob.internal", 1)));
    }
}

//! A real OpenStack Swift 2.30 (Debian's packages, installed by
//! `.ci/install-test-tools`) as a single-node cluster on 127.0.0.1, one per
//! test: memcached, the account, container and object servers, and a proxy,
//! each on a free port, with configuration, rings and storage in the test's
//! scratch directory (`/etc/swift` is not touched). Auth is tempauth (v1,
//! optionally with a short token life) or a real Keystone v3 (Debian's
//! python3-keystone, sqlite, fernet tokens) with Swift's keystoneauth.
//!
//! Swift runs as the current user (root in CI: its servers and memcached
//! accept that with `user = root` / `-u root`). Every process is killed when
//! the [`Swift`] is dropped. Starting takes 5-10 s (eventlet's start-up),
//! Keystone another ~30 s (database set-up, its server's imports).
//!
//! The test's own raw HTTP client ([`Swift::object_names`],
//! [`Swift::get_object`], ...) looks at what is stored without walship.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{INSTALL_HINT, Server};
use crate::archive::WalshipArchive;
use crate::pg::free_port;
use crate::process::Run;
use crate::scratch::Scratch;

/// How long the cluster (and Keystone) may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// Adds the object-store endpoints to Keystone's catalog.
const KEYSTONE_CATALOG_SCRIPT: &str = include_str!("swift_keystone_catalog.py");

/// How the proxy authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwiftAuth {
    /// tempauth (v1 auth at `/auth/v1.0`); tokens live `token_life`
    /// seconds (tempauth's default is a day).
    Tempauth { token_life: Option<u32> },
    /// Keystone v3 (authtoken + keystoneauth in the proxy).
    Keystone,
}

/// The Keystone user, project and region of [`SwiftAuth::Keystone`].
pub const KEYSTONE_USER: &str = "admin";
pub const KEYSTONE_PASSWORD: &str = "adminpw";
pub const KEYSTONE_PROJECT: &str = "admin";
pub const KEYSTONE_REGION: &str = "RegionOne";

/// The tempauth user the tests archive as (account `AUTH_test`), and a
/// second account.
pub const TEMPAUTH_USER: &str = "test:tester";
pub const TEMPAUTH_KEY: &str = "testing";

/// An HTTP answer of the test's raw client.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
pub struct Swift {
    // Dropped (killed) first: the proxy, then the rest.
    servers: Vec<Server>,
    auth: SwiftAuth,
    proxy_port: u16,
    keystone_port: Option<u16>,
    proxy_log: PathBuf,
    /// `http://127.0.0.1:PORT/v1/AUTH_...` of the test's account.
    storage_url: String,
    _scratch: Scratch,
}

/// The Swift and Keystone programs, or a panic saying how to install them.
fn require_installed(auth: SwiftAuth) {
    let mut needed = vec![
        "swift-proxy-server",
        "swift-account-server",
        "swift-container-server",
        "swift-object-server",
        "swift-ring-builder",
        "memcached",
    ];
    if auth == SwiftAuth::Keystone {
        needed.extend(["keystone-manage", "keystone-wsgi-public"]);
    }
    for program in needed {
        let found = Run::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .quiet()
            .run()
            .success();
        assert!(found, "{program} is not installed: {INSTALL_HINT}");
    }
}

impl Swift {
    /// Swift with tempauth (v1 auth), tokens valid a day.
    pub fn start(scratch: &Scratch) -> Swift {
        Self::start_with(scratch, SwiftAuth::Tempauth { token_life: None })
    }

    /// Swift with tempauth and Keystone v3.
    pub fn start_keystone(scratch: &Scratch) -> Swift {
        Self::start_with(scratch, SwiftAuth::Keystone)
    }

    pub fn start_with(scratch: &Scratch, auth: SwiftAuth) -> Swift {
        require_installed(auth);
        let root = scratch.dir("swift");
        let etc = root.join("etc");
        let devices = root.join("srv");
        let logs = root.join("log");
        for dir in [&etc, &devices.join("d1"), &logs] {
            fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        }
        let ports = Ports::pick(auth == SwiftAuth::Keystone);
        let user = current_user();
        write_configs(&etc, &devices, &ports, auth, &user);
        build_rings(&etc, &ports);

        let mut servers = Vec::new();
        let mut memcached = Command::new("memcached");
        memcached.args(["-l", "127.0.0.1", "-p", &ports.memcached.to_string()]);
        memcached.args(["-U", "0", "-m", "64"]);
        if user == "root" {
            memcached.args(["-u", "root"]);
        }
        servers.push(spawn("memcached", memcached, logs.join("memcached.log")));
        let mut keystone_port = None;
        if auth == SwiftAuth::Keystone {
            let port = ports.keystone.expect("picked for keystone");
            servers.push(start_keystone(
                &root.join("keystone"),
                &logs,
                port,
                ports.proxy,
                &user,
            ));
            keystone_port = Some(port);
        }
        for name in ["account", "container", "object"] {
            let mut cmd = Command::new(format!("swift-{name}-server"));
            cmd.arg(etc.join(format!("{name}-server.conf"))).arg("-v");
            servers.push(spawn(name, cmd, logs.join(format!("{name}.log"))));
        }
        let proxy_log = logs.join("proxy.log");
        let mut cmd = Command::new("swift-proxy-server");
        cmd.arg(etc.join("proxy-server.conf")).arg("-v");
        servers.push(spawn("proxy", cmd, proxy_log.clone()));
        servers.reverse();

        let mut swift = Swift {
            servers,
            auth,
            proxy_port: ports.proxy,
            keystone_port,
            proxy_log,
            storage_url: String::new(),
            _scratch: scratch.clone(),
        };
        swift.storage_url = swift.wait_ready();
        swift
    }

    /// Waits until a token can be had and a container and an object can be
    /// written (every server answers); returns the account's storage URL.
    fn wait_ready(&mut self) -> String {
        let started = Instant::now();
        loop {
            for server in &mut self.servers {
                if let Some(status) = server.child.try_wait().expect("wait for swift server") {
                    panic!(
                        "swift: {} exited while starting ({status}):\n{}",
                        server.name,
                        server.log_tail(40)
                    );
                }
            }
            let last = match self.try_ready() {
                Ok(storage_url) => return storage_url,
                Err(why) => why,
            };
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "swift not ready within {READY_TIMEOUT:?}: {last}"
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    fn try_ready(&self) -> Result<String, String> {
        let health = http(self.proxy_port, "GET", "/healthcheck", &[], b"")?;
        if health.status != 200 {
            return Err(format!("healthcheck answered {}", health.status));
        }
        let (token, storage_url) = self.try_token()?;
        let container = format!("{storage_url}/_ready");
        let put = http_url("PUT", &container, &[("X-Auth-Token", &token)], b"")?;
        if put.status >= 300 {
            return Err(format!("container PUT answered {}", put.status));
        }
        let put = http_url(
            "PUT",
            &format!("{container}/o"),
            &[("X-Auth-Token", &token)],
            b"ok",
        )?;
        if put.status != 201 {
            return Err(format!("object PUT answered {}", put.status));
        }
        Ok(storage_url)
    }

    /// A new token and the storage URL it is for, from tempauth or Keystone.
    fn try_token(&self) -> Result<(String, String), String> {
        match self.auth {
            SwiftAuth::Tempauth { .. } => {
                let reply = http(
                    self.proxy_port,
                    "GET",
                    "/auth/v1.0",
                    &[("X-Auth-User", TEMPAUTH_USER), ("X-Auth-Key", TEMPAUTH_KEY)],
                    b"",
                )?;
                match (reply.header("x-auth-token"), reply.header("x-storage-url")) {
                    (Some(token), Some(url)) => Ok((token.to_string(), url.to_string())),
                    _ => Err(format!("v1 auth answered {}", reply.status)),
                }
            }
            SwiftAuth::Keystone => {
                let port = self.keystone_port.expect("keystone mode");
                let body = format!(
                    r#"{{"auth":{{"identity":{{"methods":["password"],"password":{{"user":{{"name":"{KEYSTONE_USER}","domain":{{"id":"default"}},"password":"{KEYSTONE_PASSWORD}"}}}}}},"scope":{{"project":{{"name":"{KEYSTONE_PROJECT}","domain":{{"id":"default"}}}}}}}}}}"#
                );
                let reply = http(
                    port,
                    "POST",
                    "/v3/auth/tokens",
                    &[("Content-Type", "application/json")],
                    body.as_bytes(),
                )?;
                let token = reply
                    .header("x-subject-token")
                    .ok_or_else(|| format!("keystone answered {}", reply.status))?
                    .to_string();
                // The catalog's object-store URL, with the project id filled in.
                let text = String::from_utf8_lossy(&reply.body);
                let marker = format!("127.0.0.1:{}/v1/AUTH_", self.proxy_port);
                let at = text
                    .find(&marker)
                    .ok_or("no object-store endpoint in the token's catalog")?;
                let id: String = text[at + marker.len()..]
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect();
                Ok((
                    token,
                    format!("http://127.0.0.1:{}/v1/AUTH_{id}", self.proxy_port),
                ))
            }
        }
    }

    /// A token for the test's account (tempauth or Keystone).
    pub fn token(&self) -> String {
        self.try_token()
            .unwrap_or_else(|e| panic!("swift token: {e}"))
            .0
    }

    /// `http://127.0.0.1:PORT/auth/v1.0` (tempauth).
    pub fn auth_url(&self) -> String {
        format!("http://127.0.0.1:{}/auth/v1.0", self.proxy_port)
    }

    /// `http://127.0.0.1:PORT/v3` (Keystone).
    pub fn keystone_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/v3",
            self.keystone_port.expect("started with Keystone")
        )
    }

    pub fn proxy_port(&self) -> u16 {
        self.proxy_port
    }

    /// The storage URL of the test's account.
    pub fn storage_url(&self) -> &str {
        &self.storage_url
    }

    /// The settings walship's Swift plugin reads for the test's account:
    /// ST_* for tempauth, OS_* for Keystone.
    pub fn env(&self) -> Vec<(String, String)> {
        let pairs: Vec<(&str, String)> = match self.auth {
            SwiftAuth::Tempauth { .. } => vec![
                ("ST_AUTH", self.auth_url()),
                ("ST_USER", TEMPAUTH_USER.into()),
                ("ST_KEY", TEMPAUTH_KEY.into()),
            ],
            SwiftAuth::Keystone => vec![
                ("OS_AUTH_URL", self.keystone_url()),
                ("OS_USERNAME", KEYSTONE_USER.into()),
                ("OS_PASSWORD", KEYSTONE_PASSWORD.into()),
                ("OS_PROJECT_NAME", KEYSTONE_PROJECT.into()),
                ("OS_USER_DOMAIN_NAME", "Default".into()),
                ("OS_PROJECT_DOMAIN_NAME", "Default".into()),
                ("OS_REGION_NAME", KEYSTONE_REGION.into()),
                // The catalog's storage URL is another loopback port than
                // Keystone's: an internal address the configuration does not
                // name, so the operator lists both (as for a private cloud).
                (
                    "WALSHIP_ALLOW_HOSTS",
                    format!(
                        "127.0.0.1:{},127.0.0.1:{}",
                        self.keystone_port.expect("keystone mode"),
                        self.proxy_port
                    ),
                ),
            ],
        };
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// walship archiving to `swift://<container>/<path>` here; the
    /// container is created.
    pub fn archive(&self, scratch: &Scratch, container: &str, path: &str) -> WalshipArchive {
        self.create_container(container);
        let mut archive = WalshipArchive::new(scratch, format!("swift://{container}/{path}"));
        for (key, value) in self.env() {
            archive = archive.with_env(&key, value);
        }
        archive
    }

    pub fn create_container(&self, container: &str) {
        let reply = self.request("PUT", &format!("/{container}"), &[], b"");
        assert!(
            reply.status < 300,
            "create container {container}: {}",
            reply.status
        );
    }

    /// A request to `<storage URL><path>` with a fresh token.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let token = self.token();
        let mut all = vec![("X-Auth-Token", token.as_str())];
        all.extend_from_slice(headers);
        let url = format!("{}{path}", self.storage_url);
        http_url(method, &url, &all, body).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
    }

    /// Every object name in `container` under `prefix`, from Swift's own
    /// listing (plain text, paged).
    pub fn object_names(&self, container: &str, prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        loop {
            let mut query = format!("?prefix={}", encode(prefix));
            if let Some(last) = names.last() {
                query.push_str(&format!("&marker={}", encode(last)));
            }
            let reply = self.request("GET", &format!("/{container}{query}"), &[], b"");
            assert!(reply.status < 300, "list {container}: {}", reply.status);
            let page: Vec<String> = String::from_utf8_lossy(&reply.body)
                .lines()
                .map(str::to_string)
                .collect();
            if page.is_empty() {
                return names;
            }
            names.extend(page);
        }
    }

    /// The object's bytes, or `None` if there is none.
    pub fn get_object(&self, container: &str, name: &str) -> Option<Vec<u8>> {
        let reply = self.request(
            "GET",
            &format!("/{container}/{}", encode_path(name)),
            &[],
            b"",
        );
        match reply.status {
            200 => Some(reply.body),
            404 => None,
            other => panic!("GET {container}/{name}: {other}"),
        }
    }

    /// The object's headers (HEAD), or `None` if there is none.
    pub fn head_object(&self, container: &str, name: &str) -> Option<Reply> {
        let reply = self.request(
            "HEAD",
            &format!("/{container}/{}", encode_path(name)),
            &[],
            b"",
        );
        match reply.status {
            200 => Some(reply),
            404 => None,
            other => panic!("HEAD {container}/{name}: {other}"),
        }
    }

    /// A v1 token straight from tempauth, for tests that need one to
    /// expire or to hand walship a pre-issued token.
    pub fn issue_token(&self) -> String {
        assert!(
            matches!(self.auth, SwiftAuth::Tempauth { .. }),
            "tempauth only"
        );
        self.token()
    }

    /// The status Swift answers a HEAD of the account with `token`.
    pub fn account_status(&self, token: &str) -> u16 {
        http_url("HEAD", &self.storage_url, &[("X-Auth-Token", token)], b"")
            .unwrap_or_else(|e| panic!("HEAD account: {e}"))
            .status
    }

    /// The proxy's log so far (one access line per request, with -v).
    pub fn proxy_log(&self) -> String {
        fs::read_to_string(&self.proxy_log).unwrap_or_default()
    }
}

/// The ports of one cluster.
struct Ports {
    proxy: u16,
    account: u16,
    container: u16,
    object: u16,
    memcached: u16,
    keystone: Option<u16>,
    /// Where syslog datagrams go: nothing listens there.
    syslog: u16,
}

impl Ports {
    fn pick(keystone: bool) -> Ports {
        Ports {
            proxy: free_port(),
            account: free_port(),
            container: free_port(),
            object: free_port(),
            memcached: free_port(),
            keystone: keystone.then(free_port),
            syslog: free_port(),
        }
    }
}

fn current_user() -> String {
    let out = Run::new("id").arg("-un").quiet().run();
    let user = out.out().trim().to_string();
    assert!(!user.is_empty(), "id -un printed nothing: {out}");
    user
}

/// swift.conf, the three storage servers' and the proxy's configuration.
fn write_configs(etc: &Path, devices: &Path, ports: &Ports, auth: SwiftAuth, user: &str) {
    let write = |name: &str, text: String| {
        let path = etc.join(name);
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    };
    write(
        "swift.conf",
        "[swift-hash]\nswift_hash_path_suffix = walship-e2e\nswift_hash_path_prefix = walship-e2e\n\
         [storage-policy:0]\nname = Policy-0\ndefault = yes\n"
            .to_string(),
    );
    // workers = 0: one process each; one replica, so no replicators,
    // updaters, auditors or rsync.
    let common = |port: u16, level: &str| {
        format!(
            "[DEFAULT]\nbind_ip = 127.0.0.1\nbind_port = {port}\nworkers = 0\nuser = {user}\n\
             swift_dir = {}\ndevices = {}\nmount_check = false\ndisable_fallocate = true\n\
             log_udp_host = 127.0.0.1\nlog_udp_port = {}\nlog_level = {level}\n",
            etc.display(),
            devices.display(),
            ports.syslog
        )
    };
    for (name, port) in [
        ("account", ports.account),
        ("container", ports.container),
        ("object", ports.object),
    ] {
        write(
            &format!("{name}-server.conf"),
            format!(
                "{}[pipeline:main]\npipeline = {name}-server\n[app:{name}-server]\nuse = egg:swift#{name}\n",
                common(port, "WARNING")
            ),
        );
    }
    let auth_filters = match auth {
        SwiftAuth::Tempauth { .. } => "tempauth",
        SwiftAuth::Keystone => "authtoken keystoneauth",
    };
    let token_life = match auth {
        SwiftAuth::Tempauth {
            token_life: Some(seconds),
        } => format!("token_life = {seconds}\n"),
        _ => String::new(),
    };
    let keystone_port = ports.keystone.unwrap_or(0);
    // The proxy logs every request (INFO): tests count auth requests there.
    // slo and dlo come after the auth filters (their subrequests need auth).
    let proxy = format!(
        "{common}\
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl {auth_filters} copy slo dlo proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
[filter:tempauth]
use = egg:swift#tempauth
user_admin_admin = admin .admin .reseller_admin
user_test_tester = {TEMPAUTH_KEY} .admin
user_test2_tester2 = testing2 .admin
{token_life}\
[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
www_authenticate_uri = http://127.0.0.1:{keystone_port}/v3
auth_url = http://127.0.0.1:{keystone_port}/v3
auth_type = password
username = {KEYSTONE_USER}
password = {KEYSTONE_PASSWORD}
project_name = {KEYSTONE_PROJECT}
user_domain_id = default
project_domain_id = default
memcached_servers = 127.0.0.1:{memcached}
delay_auth_decision = true
[filter:keystoneauth]
use = egg:swift#keystoneauth
operator_roles = admin, member
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:{memcached}
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:bulk]
use = egg:swift#bulk
[filter:tempurl]
use = egg:swift#tempurl
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
[filter:copy]
use = egg:swift#copy
",
        common = common(ports.proxy, "INFO"),
        memcached = ports.memcached,
    );
    write("proxy-server.conf", proxy);
}

/// One-replica rings with one device each.
fn build_rings(etc: &Path, ports: &Ports) {
    for (name, port) in [
        ("account", ports.account),
        ("container", ports.container),
        ("object", ports.object),
    ] {
        let builder = etc.join(format!("{name}.builder"));
        Run::new("swift-ring-builder")
            .arg(&builder)
            .args(["create", "6", "1", "1"])
            .quiet()
            .run()
            .ok();
        Run::new("swift-ring-builder")
            .arg(&builder)
            .args(["add", &format!("r1z1-127.0.0.1:{port}/d1"), "1"])
            .quiet()
            .run()
            .ok();
        // Exit 1 is a warning (one device, one replica): the ring is written.
        let out = Run::new("swift-ring-builder")
            .arg(&builder)
            .arg("rebalance")
            .quiet()
            .run();
        assert!(
            etc.join(format!("{name}.ring.gz")).is_file(),
            "swift-ring-builder rebalance wrote no {name} ring:\n{out}"
        );
    }
}

/// Sets up Keystone in `dir` (sqlite, fernet keys, bootstrap, the catalog's
/// object-store endpoints) and starts its server on `port`.
fn start_keystone(dir: &Path, logs: &Path, port: u16, proxy_port: u16, user: &str) -> Server {
    fs::create_dir_all(dir.join("fernet")).expect("create keystone fernet dir");
    fs::create_dir_all(dir.join("cred")).expect("create keystone credential dir");
    let conf = dir.join("keystone.conf");
    fs::write(
        &conf,
        format!(
            "[DEFAULT]\nlog_file = {}\n[database]\nconnection = sqlite:///{}\n[token]\nprovider = fernet\n\
             [fernet_tokens]\nkey_repository = {fernet}\n[fernet_receipts]\nkey_repository = {fernet}\n\
             [credential]\nkey_repository = {}\n[cache]\nenabled = false\n",
            logs.join("keystone-app.log").display(),
            dir.join("keystone.db").display(),
            dir.join("cred").display(),
            fernet = dir.join("fernet").display(),
        ),
    )
    .expect("write keystone.conf");
    let group = Run::new("id")
        .arg("-gn")
        .quiet()
        .run()
        .out()
        .trim()
        .to_string();
    let manage = |args: &[&str]| {
        Run::new("keystone-manage")
            .arg("--config-file")
            .arg(&conf)
            .args(args)
            .timeout(Duration::from_secs(300))
            .run()
            .ok();
    };
    let url = format!("http://127.0.0.1:{port}/v3");
    manage(&["db_sync"]);
    manage(&[
        "fernet_setup",
        "--keystone-user",
        user,
        "--keystone-group",
        &group,
    ]);
    manage(&[
        "credential_setup",
        "--keystone-user",
        user,
        "--keystone-group",
        &group,
    ]);
    manage(&[
        "bootstrap",
        "--bootstrap-password",
        KEYSTONE_PASSWORD,
        "--bootstrap-region-id",
        KEYSTONE_REGION,
        "--bootstrap-admin-url",
        &url,
        "--bootstrap-public-url",
        &url,
        "--bootstrap-internal-url",
        &url,
    ]);
    let script = dir.join("swift_keystone_catalog.py");
    fs::write(&script, KEYSTONE_CATALOG_SCRIPT).expect("write catalog script");
    Run::new("python3")
        .arg(&script)
        .arg(dir.join("keystone.db"))
        .arg(format!(
            "http://127.0.0.1:{proxy_port}/v1/AUTH_%(project_id)s"
        ))
        .run()
        .ok();
    let mut cmd = Command::new("keystone-wsgi-public");
    cmd.env("OS_KEYSTONE_CONFIG_FILES", &conf)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--"])
        .arg("--config-file")
        .arg(&conf);
    spawn("keystone", cmd, logs.join("keystone.log"))
}

/// Starts `cmd` in a process group of its own, output to `log`.
fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Server {
    let out = fs::File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
    let err = out.try_clone().expect("clone log file handle");
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    let described = format!("{cmd:?}");
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name} (`{described}`): {e}"));
    Server {
        name: format!("swift {name}"),
        child,
        log,
    }
}

/// Escapes a query value or object name (keeping `/` in names).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn encode_path(name: &str) -> String {
    name.split('/').map(encode).collect::<Vec<_>>().join("/")
}

/// `method url` (an `http://127.0.0.1:PORT/...` URL).
fn http_url(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Reply, String> {
    let rest = url
        .strip_prefix("http://127.0.0.1:")
        .ok_or_else(|| format!("not a loopback http URL: {url}"))?;
    let (port, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let port: u16 = port.parse().map_err(|_| format!("bad port in {url}"))?;
    http(
        port,
        method,
        if path.is_empty() { "/" } else { path },
        headers,
        body,
    )
}

/// One HTTP/1.1 exchange with 127.0.0.1:`port`, connection closed after.
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Reply, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .and_then(|()| stream.write_all(body))
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no HTTP answer from {addr}"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line from {addr}: {head:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = end + 2;
        let stop = (start + size).min(data.len());
        out.extend_from_slice(&data[start..stop]);
        data = &data[(stop + 2).min(data.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_for_urls() {
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
        assert_eq!(encode_path("a b/c"), "a%20b/c");
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
    }
}

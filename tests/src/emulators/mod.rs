//! Local cloud stand-ins, started by the test that uses them and killed when it
//! is done, each on a free port of 127.0.0.1 so that tests run side by side.
//! The S3 ones are here; each other cloud has a submodule of its own (which
//! may use this module's private helpers such as `Server`).
//!
//! - [`S3sFs`]: s3s-fs, a Rust S3 server that stores every object as a plain
//!   file `<data>/<bucket>/<key>` (an independent view of what was stored) and
//!   checks the SigV4 signature and the payload hash of every request.
//! - [`Moto`]: moto's server with IAM auth switched on (signatures checked,
//!   keys it issued only), for what needs STS: session tokens and web
//!   identity.
//! - [`Stunnel`]: a TLS front with a certificate from a test CA, for the
//!   custom-CA setting.
//! - [`gcs`]: fake-gcs-server, and a front that checks service-account JWTs.
//! - [`azure`]: Azurite, which checks SharedKey and SAS signatures.
//! - [`swift`]: a real OpenStack Swift 2.30 (Debian's packages), tempauth or
//!   Keystone v3, one single-node cluster per test.
//!
//! `.ci/install-test-tools` installs them (`cargo xtask test` runs it). The
//! binaries are found in its cache, `${XDG_CACHE_HOME:-~/.cache}/walship-tests`,
//! or where `WALSHIP_TEST_S3S_FS` (the s3s-fs binary) and `WALSHIP_TEST_MOTO`
//! (moto's venv) point.

pub mod azure;
pub mod gcs;
pub mod swift;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::archive::WalshipArchive;
use crate::pg::free_port;
use crate::process::{Run, kill_group};
use crate::scratch::{Scratch, set_mode};

pub const S3S_FS_VERSION: &str = "0.14.1";
pub const MOTO_VERSION: &str = "5.2.5";

/// How long a stand-in may take to answer (moto imports a lot of Python).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

const INSTALL_HINT: &str = "run `.ci/install-test-tools` (or `cargo xtask test`, which runs it)";

/// The cache `.ci/install-test-tools` installs into.
pub(crate) fn tools_cache() -> PathBuf {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache"),
    };
    base.join("walship-tests")
}

/// The s3s-fs binary; panics with the way to install it when it is missing.
pub fn s3s_fs_bin() -> PathBuf {
    let bin = match std::env::var_os("WALSHIP_TEST_S3S_FS") {
        Some(path) => PathBuf::from(path),
        None => tools_cache().join(format!("s3s-fs-{S3S_FS_VERSION}/bin/s3s-fs")),
    };
    assert!(
        bin.is_file(),
        "s3s-fs {S3S_FS_VERSION} is not installed: {INSTALL_HINT} (looked for {})",
        bin.display()
    );
    bin
}

/// moto's venv; panics with the way to install it when it is missing.
pub fn moto_venv() -> PathBuf {
    let venv = match std::env::var_os("WALSHIP_TEST_MOTO") {
        Some(path) => PathBuf::from(path),
        None => tools_cache().join(format!("moto-{MOTO_VERSION}")),
    };
    assert!(
        venv.join("bin/python").is_file() && venv.join("bin/moto_server").is_file(),
        "moto {MOTO_VERSION} is not installed: {INSTALL_HINT} (looked for a venv in {})",
        venv.display()
    );
    venv
}

/// How to reach an S3 endpoint and as whom: the settings walship's S3 plugin
/// reads from the environment.
#[derive(Clone, Debug)]
pub struct S3Access {
    /// `http://127.0.0.1:PORT` or `https://localhost:PORT`.
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub region: String,
}

impl S3Access {
    /// `AWS_ENDPOINT_URL`, the keys (and session token), `AWS_REGION` and
    /// path-style addressing (a bucket cannot be a subdomain of 127.0.0.1).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("AWS_ENDPOINT_URL".to_string(), self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID".to_string(), self.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY".to_string(),
                self.secret_access_key.clone(),
            ),
            ("AWS_REGION".to_string(), self.region.clone()),
            ("AWS_S3_FORCE_PATH_STYLE".to_string(), "true".to_string()),
        ];
        if let Some(token) = &self.session_token {
            env.push(("AWS_SESSION_TOKEN".to_string(), token.clone()));
        }
        env
    }

    /// walship archiving to `s3://bucket/path` with these settings.
    pub fn archive(&self, scratch: &Scratch, bucket: &str, path: &str) -> WalshipArchive {
        let mut archive = WalshipArchive::new(scratch, format!("s3://{bucket}/{path}"));
        for (key, value) in self.env() {
            archive = archive.with_env(&key, value);
        }
        archive
    }

    /// The same credentials at another endpoint (a TLS front).
    pub fn at(&self, endpoint: impl Into<String>) -> S3Access {
        S3Access {
            endpoint: endpoint.into(),
            ..self.clone()
        }
    }

    /// `host:port` of the endpoint, as `WALSHIP_ALLOW_HOSTS` takes it.
    pub fn host_port(&self) -> String {
        let rest = self
            .endpoint
            .split_once("://")
            .map_or(self.endpoint.as_str(), |(_, rest)| rest);
        rest.trim_end_matches('/').to_string()
    }
}

/// A server process of a stand-in: its own process group (killed whole on
/// drop), output in a log file whose tail is printed when a test panics.
#[derive(Debug)]
struct Server {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Starts the command `make(port)` builds on a free port and waits until
    /// `ready(port)`. Another process may take the port between the check and
    /// the bind; then it tries another.
    fn start(
        name: &str,
        log: PathBuf,
        make: impl Fn(u16) -> Command,
        ready: impl Fn(u16) -> bool,
    ) -> (Server, u16) {
        for _attempt in 0..5 {
            let port = free_port();
            let mut cmd = make(port);
            let out =
                File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
            let err = out.try_clone().expect("clone log file handle");
            cmd.stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .process_group(0);
            let described = format!("{cmd:?}");
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {name} (`{described}`): {e}"));
            let mut server = Server {
                name: name.to_string(),
                child,
                log: log.clone(),
            };
            let started = Instant::now();
            loop {
                if ready(port) {
                    return (server, port);
                }
                if let Some(status) = server.child.try_wait().expect("wait for server") {
                    let text = server.log_tail(40);
                    if text.contains("in use") {
                        break; // lost the port to someone else: next one
                    }
                    panic!("{name} exited while starting ({status}):\n$ {described}\n{text}");
                }
                assert!(
                    started.elapsed() < READY_TIMEOUT,
                    "{name} did not answer on port {port} within {READY_TIMEOUT:?}:\n$ {described}\n{}",
                    server.log_tail(40)
                );
                thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("{name}: no free port after 5 attempts");
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "---- log of {} ({}), last lines ----\n{}\n----",
                self.name,
                self.log.display(),
                self.log_tail(40)
            );
        }
        kill_group(self.child.id());
        let _ = self.child.wait();
    }
}

/// True when something on `port` answers an HTTP request (with any status:
/// S3 servers answer an unsigned request with 403).
fn answers_http(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}

fn accepts_tcp(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// s3s-fs serving a data directory of a [`Scratch`].
#[derive(Debug)]
pub struct S3sFs {
    server: Server,
    port: u16,
    data: PathBuf,
    // Keeps the data directory until the server is gone.
    _scratch: Scratch,
}

impl S3sFs {
    /// The bucket every instance has.
    pub const BUCKET: &str = "walship";
    /// s3s-fs takes one fixed key pair. The `/` in the secret is on purpose:
    /// it must survive the signing code's encoding.
    pub const ACCESS_KEY_ID: &str = "LOCALTESTACCESSKEY01";
    pub const SECRET_ACCESS_KEY: &str = "localtestsecretkey/0123456789abcdefghij";

    /// Starts s3s-fs on a free port with a new data directory `s3s-fs/` in
    /// `scratch` holding bucket [`S3sFs::BUCKET`]; returns once it answers.
    pub fn start(scratch: &Scratch) -> S3sFs {
        let bin = s3s_fs_bin();
        let root = scratch.dir("s3s-fs");
        let data = root.join("data");
        fs::create_dir_all(data.join(Self::BUCKET)).expect("create s3s-fs bucket directory");
        let (server, port) = Server::start(
            "s3s-fs",
            root.join("s3s-fs.log"),
            |port| {
                let mut cmd = Command::new(&bin);
                // Debug events of s3s-fs's own crate: one per object written,
                // with the request it came from (see `put_requests`).
                cmd.env("RUST_LOG", "s3s_fs=debug")
                    .env("NO_COLOR", "1")
                    .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--access-key", Self::ACCESS_KEY_ID])
                    .args(["--secret-key", Self::SECRET_ACCESS_KEY])
                    .arg(&data);
                cmd
            },
            answers_http,
        );
        S3sFs {
            server,
            port,
            data,
            _scratch: scratch.clone(),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The valid credentials at this endpoint.
    pub fn access(&self) -> S3Access {
        S3Access {
            endpoint: self.endpoint(),
            access_key_id: Self::ACCESS_KEY_ID.to_string(),
            secret_access_key: Self::SECRET_ACCESS_KEY.to_string(),
            session_token: None,
            region: "us-east-1".to_string(),
        }
    }

    /// walship archiving to `s3://walship/<path>` here.
    pub fn archive(&self, scratch: &Scratch, path: &str) -> WalshipArchive {
        self.access().archive(scratch, Self::BUCKET, path)
    }

    /// The directory s3s-fs serves: one subdirectory per bucket, plus its
    /// own bookkeeping files (dot files) at the top.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Creates another bucket (a directory; s3s-fs needs no restart).
    pub fn create_bucket(&self, bucket: &str) -> PathBuf {
        let dir = self.data.join(bucket);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        dir
    }

    /// The file that holds object `key` of [`S3sFs::BUCKET`].
    pub fn object_file(&self, key: &str) -> PathBuf {
        self.data.join(Self::BUCKET).join(key)
    }

    /// Keys of every file under `key_prefix` (a directory path such as
    /// `pitr/wal`, or empty for the whole bucket) of [`S3sFs::BUCKET`],
    /// sorted: what is really stored, without asking the server.
    pub fn stored_keys(&self, key_prefix: &str) -> Vec<String> {
        let bucket = self.data.join(Self::BUCKET);
        let start = bucket.join(key_prefix);
        let mut keys = Vec::new();
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let key = path.strip_prefix(&bucket).expect("below the bucket");
                    keys.push(key.to_string_lossy().into_owned());
                }
            }
        }
        keys.sort();
        keys
    }

    /// s3s-fs's files for uploads in progress at the top of the data
    /// directory: `.upload-<id>.json`, parts `.upload_id-<id>.part-<n>`,
    /// their metadata `.bucket-*.upload-<id>.metadata.json`, and
    /// `.tmp.<n>.internal.part` files being written. Completing or aborting
    /// an upload removes them.
    pub fn upload_leftovers(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.data)
            .expect("read s3s-fs data directory")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.starts_with(".upload")
                    || n.starts_with(".tmp.")
                    || (n.starts_with(".bucket-") && n.contains(".upload-"))
            })
            .collect();
        names.sort();
        names
    }

    /// The ETag s3s-fs recorded for `key` of [`S3sFs::BUCKET`] (in its
    /// `.bucket-<b64>.object-<b64>.internal.json`), if any. A multipart
    /// upload's ETag ends in `-<number of parts>`.
    pub fn recorded_etag(&self, key: &str) -> Option<String> {
        let name = format!(
            ".bucket-{}.object-{}.internal.json",
            base64_url_no_pad(Self::BUCKET.as_bytes()),
            base64_url_no_pad(key.as_bytes())
        );
        let text = fs::read_to_string(self.data.join(name)).ok()?;
        // {"...":...,"e_tag":"<hex>-3",...}: no JSON parser in a std-only crate.
        let at = text.find("e_tag")?;
        let rest = &text[at + "e_tag".len()..];
        let start = rest.find('"')? + 1;
        let rest = &rest[start..];
        let rest = rest.strip_prefix(':').unwrap_or(rest).trim_start();
        let rest = rest.strip_prefix('"')?;
        Some(rest[..rest.find('"')?].to_string())
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        strip_ansi(&fs::read_to_string(&self.server.log).unwrap_or_default())
    }

    /// The PutObject requests that wrote `key` of [`S3sFs::BUCKET`], as
    /// s3s-fs logs them (`PutObjectInput { ..., if_none_match: Any, key: ...
    /// }`, without the body): what walship really sent. A refused request
    /// wrote nothing and is not there.
    pub fn put_requests(&self, key: &str) -> Vec<String> {
        let wanted = format!("key: {key:?}");
        self.log()
            .lines()
            .filter(|l| l.contains("in s3s_fs::s3::put_object") && l.contains(&wanted))
            .map(|l| l.trim().to_string())
            .collect()
    }
}

/// Removes terminal colour sequences (ESC [ ... letter).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn base64_url_no_pad(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// moto's server with IAM auth on: requests must be signed with a key it
/// issued (or temporary credentials from its STS, session token included).
#[derive(Debug)]
pub struct Moto {
    server: Server,
    port: u16,
    python: PathBuf,
    script: PathBuf,
    access: S3Access,
    _scratch: Scratch,
}

/// The helper run by moto's python: the server with one fix, the IAM
/// bootstrap, STS calls.
const MOTO_SCRIPT: &str = include_str!("walship_moto.py");

impl Moto {
    /// The bucket created at start.
    pub const BUCKET: &str = "walship";
    /// A role that may do anything; web identity and AssumeRole take it.
    pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/walship";

    /// Starts moto on a free port, creates an IAM user and role allowed
    /// everything, an access key and bucket [`Moto::BUCKET`], then switches
    /// IAM auth on.
    pub fn start(scratch: &Scratch) -> Moto {
        let venv = moto_venv();
        let python = venv.join("bin/python");
        let root = scratch.dir("moto");
        let script = root.join("walship_moto.py");
        fs::write(&script, MOTO_SCRIPT).expect("write walship_moto.py");
        let (server, port) = Server::start(
            "moto",
            root.join("moto.log"),
            |port| {
                let mut cmd = Command::new(&python);
                cmd.arg(&script)
                    .args(["serve", "127.0.0.1", &port.to_string()])
                    .env("PYTHONDONTWRITEBYTECODE", "1");
                cmd
            },
            answers_http,
        );
        let endpoint = format!("http://127.0.0.1:{port}");
        let out = Run::new(&python)
            .arg(&script)
            .args(["bootstrap", &endpoint, Self::BUCKET])
            .timeout(Duration::from_secs(120))
            .run()
            .ok();
        let words: Vec<&str> = out.out().split_whitespace().collect();
        assert_eq!(words.len(), 2, "moto bootstrap printed {:?}", out.stdout);
        let access = S3Access {
            endpoint,
            access_key_id: words[0].to_string(),
            secret_access_key: words[1].to_string(),
            session_token: None,
            region: "us-east-1".to_string(),
        };
        Moto {
            server,
            port,
            python,
            script,
            access,
            _scratch: scratch.clone(),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn endpoint(&self) -> String {
        self.access.endpoint.clone()
    }

    /// The IAM user's long-term key.
    pub fn access(&self) -> S3Access {
        self.access.clone()
    }

    /// Temporary credentials (with session token) for [`Moto::ROLE_ARN`],
    /// from moto's STS `AssumeRole`.
    pub fn assume_role(&self) -> S3Access {
        let out = Run::new(&self.python)
            .arg(&self.script)
            .args([
                "assume-role",
                &self.access.endpoint,
                &self.access.access_key_id,
                &self.access.secret_access_key,
                Self::ROLE_ARN,
            ])
            .timeout(Duration::from_secs(120))
            .run()
            .ok();
        let words: Vec<&str> = out.out().split_whitespace().collect();
        assert_eq!(words.len(), 3, "moto assume-role printed {:?}", out.stdout);
        S3Access {
            access_key_id: words[0].to_string(),
            secret_access_key: words[1].to_string(),
            session_token: Some(words[2].to_string()),
            ..self.access.clone()
        }
    }

    /// walship archiving to `s3://walship/<path>` here as the IAM user.
    pub fn archive(&self, scratch: &Scratch, path: &str) -> WalshipArchive {
        self.access.archive(scratch, Self::BUCKET, path)
    }

    /// The server's log so far (one line per request).
    pub fn log(&self) -> String {
        fs::read_to_string(&self.server.log).unwrap_or_default()
    }
}

/// stunnel as a TLS front on a free port of 127.0.0.1, forwarding to a
/// plain-HTTP port; its certificate (for `localhost` and `127.0.0.1`) is
/// signed by a CA made for this instance.
#[derive(Debug)]
pub struct Stunnel {
    _server: Server,
    port: u16,
    ca_file: PathBuf,
    _scratch: Scratch,
}

impl Stunnel {
    /// Generates a CA and a server certificate with openssl, then starts
    /// stunnel in front of `127.0.0.1:backend_port`.
    pub fn start(scratch: &Scratch, backend_port: u16) -> Stunnel {
        let dir = scratch.dir("tls");
        let ca_file = make_certificates(&dir);
        let bin = ["stunnel4", "stunnel"]
            .into_iter()
            .find(|b| {
                Run::new("sh")
                    .args(["-c", &format!("command -v {b}")])
                    .quiet()
                    .run()
                    .success()
            })
            .unwrap_or_else(|| panic!("stunnel is not installed: {INSTALL_HINT}"));
        let (server, port) = Server::start(
            "stunnel",
            dir.join("stunnel.log"),
            |port| {
                let conf = dir.join(format!("stunnel-{port}.conf"));
                let text = format!(
                    "foreground = yes\npid =\ndebug = notice\n\n[s3]\naccept = 127.0.0.1:{port}\n\
                     connect = 127.0.0.1:{backend_port}\ncert = {}\nkey = {}\n",
                    dir.join("server.pem").display(),
                    dir.join("server.key").display(),
                );
                fs::write(&conf, text).expect("write stunnel config");
                let mut cmd = Command::new(bin);
                cmd.arg(conf);
                cmd
            },
            accepts_tcp,
        );
        Stunnel {
            _server: server,
            port,
            ca_file,
            _scratch: scratch.clone(),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `https://localhost:PORT` (the name is in the certificate).
    pub fn endpoint(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// The CA certificate (PEM) that signed the server's, readable by
    /// `postgres`.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }
}

/// A CA (`ca.pem`) and a server certificate it signed (`server.pem`,
/// `server.key`) for DNS:localhost and IP:127.0.0.1, in `dir`. A separate CA,
/// not one self-signed certificate: webpki refuses a CA certificate as a
/// server's. Returns the CA file.
fn make_certificates(dir: &Path) -> PathBuf {
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let ext = dir.join("server.ext");
    fs::write(
        &ext,
        "basicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature, keyEncipherment\n\
         extendedKeyUsage = serverAuth\n\
         subjectAltName = DNS:localhost, IP:127.0.0.1\n",
    )
    .expect("write server.ext");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    Run::new("openssl")
        .args(["req", "-x509"])
        .args(ec)
        .args(["-keyout", &path("ca.key"), "-out", &path("ca.pem")])
        .args(["-days", "3", "-subj", "/CN=walship e2e test CA"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        .run()
        .ok();
    Run::new("openssl")
        .arg("req")
        .args(ec)
        .args(["-keyout", &path("server.key"), "-out", &path("server.csr")])
        .args(["-subj", "/CN=localhost"])
        .run()
        .ok();
    Run::new("openssl")
        .args(["x509", "-req", "-in", &path("server.csr")])
        .args([
            "-CA",
            &path("ca.pem"),
            "-CAkey",
            &path("ca.key"),
            "-set_serial",
            "2",
        ])
        .args(["-days", "3", "-extfile", &path("server.ext")])
        .args(["-out", &path("server.pem")])
        .run()
        .ok();
    let ca = dir.join("ca.pem");
    // walship reads it as `postgres` when PostgreSQL runs it.
    set_mode(&ca, 0o644);
    ca
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_like_s3s_fs() {
        assert_eq!(base64_url_no_pad(b"walship"), "d2Fsc2hpcA");
        assert_eq!(base64_url_no_pad(b"big/object"), "YmlnL29iamVjdA");
        assert_eq!(base64_url_no_pad(b"a?>"), "YT8-");
        assert_eq!(base64_url_no_pad(b""), "");
    }

    #[test]
    fn colour_codes_are_removed() {
        assert_eq!(
            strip_ansi("\u{1b}[2mat\u{1b}[0m x \u{1b}[1;32mDEBUG\u{1b}[0m"),
            "at x DEBUG"
        );
    }

    #[test]
    fn host_port_of_an_endpoint() {
        let access = S3Access {
            endpoint: "http://127.0.0.1:9000/".into(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            session_token: None,
            region: String::new(),
        };
        assert_eq!(access.host_port(), "127.0.0.1:9000");
        assert_eq!(access.at("https://localhost:1").host_port(), "localhost:1");
    }
}

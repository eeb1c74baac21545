//! The sandbox around storage plugins, probed by a deliberately hostile
//! plugin (tests/plugins/hostile). `walship st put <key> <file>` asks it to
//! misbehave in the way the key names; every attempt must fail cleanly (exit
//! 1..=125, a reason on stderr), nothing may get out (the plugin reports
//! "SANDBOX ESCAPED" if it does, and a listener here must see no connection),
//! and walship must stay usable with the same plugin afterwards.
//!
//! These run as the current user (root in CI): a plugin that escaped would
//! have the most to reach.

use std::fs;
use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use walship_e2e::walship::{hostile_plugin, walship_bin};
use walship_e2e::{Outcome, Scratch, Walship};

const ESCAPED: &str = "SANDBOX ESCAPED";

struct Hostile {
    scratch: Scratch,
    walship: Walship,
}

impl Hostile {
    fn new(label: &str) -> Hostile {
        let scratch = Scratch::new(label);
        let store = scratch.dir("store");
        let cache = scratch.dir("cache");
        let walship = Walship::new()
            .arg("--plugin")
            .arg(hostile_plugin())
            .arg("--prefix")
            .arg(format!("hostile://{}", store.display()))
            .arg("--cache-dir")
            .arg(&cache);
        Hostile { scratch, walship }
    }

    fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.scratch.dir("data").join(name);
        fs::write(&path, data).expect("write data file");
        path
    }

    /// `st put key` with `data`, under the extra settings `env`.
    fn put(&self, key: &str, data: &[u8], env: &[(&str, &str)]) -> Outcome {
        let file = self.file(key, data);
        self.walship
            .clone()
            .envs(env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .args(["st", "put", key])
            .arg(&file)
            .run()
    }

    /// The attempt failed cleanly, mentioning `expect` (lower case) if given.
    #[track_caller]
    fn assert_contained(&self, out: &Outcome, expect: Option<&str>) {
        for text in [&out.stdout, &out.stderr] {
            assert!(
                !text.contains(ESCAPED),
                "the plugin got out of the sandbox:\n{out}"
            );
        }
        let code = out.exit_code();
        assert!(
            (1..=125).contains(&code),
            "expected a clean failure (exit 1..=125):\n{out}"
        );
        let lines = out.stderr_lines();
        assert!(
            !lines.is_empty(),
            "failed without a reason on stderr:\n{out}"
        );
        if let Some(word) = expect {
            assert!(
                out.stderr.to_lowercase().contains(word),
                "expected the reason to mention {word:?}:\n{out}"
            );
        }
    }

    /// walship still works with this plugin: a plain put and get round-trip.
    #[track_caller]
    fn assert_still_works(&self) {
        let data = b"an ordinary object after a hostile call\n";
        let file = self.file("ok-data", data);
        self.walship
            .clone()
            .args(["st", "put", "ok-key"])
            .arg(&file)
            .run()
            .ok();
        let back = self.scratch.dir("data").join("ok-back");
        self.walship
            .clone()
            .args(["st", "get", "ok-key"])
            .arg(&back)
            .run()
            .ok();
        assert_eq!(fs::read(&back).expect("read back"), data);
    }
}

/// A listener the plugin is told to reach; it must never see a connection.
struct Bait(TcpListener);

impl Bait {
    fn new() -> Bait {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        Bait(listener)
    }

    fn port(&self) -> String {
        self.0.local_addr().expect("addr").port().to_string()
    }

    #[track_caller]
    fn assert_untouched(&self) {
        match self.0.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Ok((_, peer)) => panic!("the plugin connected to the test's listener from {peer}"),
            Err(e) => panic!("accept: {e}"),
        }
    }
}

#[test]
fn reading_outside_its_directory_is_denied() {
    let h = Hostile::new("read-outside");
    // The plugin decides what it tries (/etc/passwd, /proc/self/environ, the
    // environment, ...); these are what must not come back in any case: a
    // file outside its directory, and a secret in walship's own environment.
    let secret_text = "walship-e2e-secret-7f3a9c";
    let secret = h.scratch.dir("secret").join("secret.txt");
    fs::write(&secret, secret_text).expect("write secret");
    let canary = "walship-e2e-canary-52be10";
    let out = h.put(
        "read-outside",
        secret.display().to_string().as_bytes(),
        &[("E2E_SANDBOX_CANARY", canary)],
    );
    h.assert_contained(&out, None);
    for text in [&out.stdout, &out.stderr] {
        assert!(
            !text.contains(secret_text),
            "the secret file leaked:\n{out}"
        );
        assert!(!text.contains(canary), "the environment leaked:\n{out}");
        assert!(!text.contains("root:x:0:0"), "/etc/passwd leaked:\n{out}");
    }
    h.assert_still_works();
}

#[test]
fn opening_a_socket_is_denied() {
    let h = Hostile::new("open-socket");
    let bait = Bait::new();
    let out = h.put("open-socket", bait.port().as_bytes(), &[]);
    h.assert_contained(&out, None);
    bait.assert_untouched();
    h.assert_still_works();
}

#[test]
fn http_to_a_host_not_granted_is_denied() {
    let h = Hostile::new("http-out");
    let bait = Bait::new();
    let out = h.put("http-out", bait.port().as_bytes(), &[]);
    h.assert_contained(&out, None);
    bait.assert_untouched();
    h.assert_still_works();
}

#[test]
fn allocating_past_the_memory_limit_is_stopped() {
    let h = Hostile::new("allocate");
    let out = h.put("allocate", b"", &[("WALSHIP_PLUGIN_MEMORY_MIB", "64")]);
    h.assert_contained(&out, Some("memory"));
    h.assert_still_works();
}

/// Host resources (here wasi:http header sets) live in walship's memory,
/// not the plugin's: their number is capped too.
#[test]
fn hoarding_host_resources_is_stopped() {
    let h = Hostile::new("hoard");
    let out = h.put("hoard-resources", b"", &[]);
    h.assert_contained(&out, None);
    h.assert_still_works();
}

#[test]
fn spinning_is_timed_out() {
    let h = Hostile::new("spin");
    let out = h.put("spin", b"", &[("WALSHIP_PLUGIN_CALL_TIMEOUT", "3")]);
    h.assert_contained(&out, Some("timed out"));
    h.assert_still_works();
}

#[test]
fn a_panicking_plugin_is_a_clean_failure() {
    let h = Hostile::new("panic");
    let out = h.put("panic", b"", &[]);
    h.assert_contained(&out, None);
    h.assert_still_works();
}

#[test]
fn the_overall_deadline_bounds_a_stuck_command() {
    let h = Hostile::new("deadline");
    let started = Instant::now();
    let out = h.put(
        "spin",
        b"",
        &[
            ("WALSHIP_TIMEOUT", "2"),
            ("WALSHIP_PLUGIN_CALL_TIMEOUT", "600"),
        ],
    );
    h.assert_contained(&out, Some("deadline"));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a 2 s deadline took {:?}:\n{out}",
        started.elapsed()
    );
    h.assert_still_works();
}

/// PostgreSQL (or an operator) stopping walship gets a prompt, clean exit
/// even while the plugin is stuck: the call gets a grace period, then the
/// command is dropped.
#[test]
fn sigterm_stops_a_stuck_command_cleanly() {
    let h = Hostile::new("sigterm");
    // Compile the plugin into the cache first: on a loaded machine that alone
    // can take longer than the wait below, and a SIGTERM that arrives before
    // walship has set up its handler kills it the default way.
    h.assert_still_works();
    let data = h.file("spin", b"");
    let store = h.scratch.dir("store");
    let child = Command::new(walship_bin())
        .arg("--plugin")
        .arg(hostile_plugin())
        .arg("--prefix")
        .arg(format!("hostile://{}", store.display()))
        .arg("--cache-dir")
        .arg(h.scratch.dir("cache"))
        .args(["st", "put", "spin"])
        .arg(&data)
        .env("WALSHIP_PLUGIN_CALL_TIMEOUT", "600")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start walship");
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let out = child.wait_with_output().expect("wait for walship");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("interrupted by SIGTERM"),
        "stderr: {stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?} to stop after SIGTERM",
        started.elapsed()
    );
    h.assert_still_works();
}

/// A plugin plants `esc -> ../outside` in its own directory, then asks for
/// `<its directory>/esc` as a second grant: inside the allowed directory as
/// a string, outside it on disk. The grant must be refused, and nothing
/// outside may be read or written.
#[test]
fn a_symlink_planted_in_a_grant_does_not_widen_it() {
    let h = Hostile::new("symlink-grant");
    let store = h.scratch.dir("store");
    let outside = h.scratch.dir("outside");
    let secret_text = "walship-e2e-outside-3c81d0";
    fs::write(outside.join("secret.txt"), secret_text).expect("write secret");
    let allow = ("WALSHIP_ALLOW_DIRECTORIES", store.display().to_string());

    let planted = h.put("plant-symlink", b"../outside", &[(allow.0, &allow.1)]);
    assert!(planted.stderr.contains("planted"), "{planted}");
    let link = store.join("esc");
    assert!(
        fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()),
        "the plugin could not plant its symlink (the attack needs it):\n{planted}"
    );

    let extra = link.display().to_string();
    let out = h.put(
        "through-extra",
        b"secret.txt",
        &[(allow.0, &allow.1), ("HOSTILE_EXTRA_DIR", &extra)],
    );
    h.assert_contained(&out, Some("symlink"));
    assert!(!out.stderr.contains(secret_text), "read outside:\n{out}");
    assert!(
        !outside.join("hostile-was-here").exists(),
        "wrote outside its directory:\n{out}"
    );
    h.assert_still_works();
}

/// Even inside an allowed directory, walship's own state is never granted:
/// its compiled-plugin cache (native code it loads), its plugin directory,
/// the directory of its settings file, and the data directory it runs in.
#[test]
fn a_grant_overlapping_walships_own_state_is_refused() {
    let h = Hostile::new("own-state");
    let root = h.scratch.path().display().to_string();
    let plugins = h.scratch.dir("plugins");
    let settings_dir = h.scratch.dir("settings");
    let settings = settings_dir.join("walship.toml");
    fs::write(&settings, "# walship settings for the test\n").expect("write settings");
    let data_dir = h.scratch.dir("pgdata");
    fs::write(data_dir.join("PG_VERSION"), "15\n").expect("write PG_VERSION");
    let cases = [
        ("the plugin cache", h.scratch.dir("cache")),
        ("the plugin directory", plugins.clone()),
        ("the settings file's directory", settings_dir.clone()),
        ("the data directory", data_dir.clone()),
        // Containing walship's state is as bad as lying inside it.
        ("a parent of all of them", h.scratch.path().to_path_buf()),
    ];
    for (what, dir) in cases {
        let file = h.file("through-extra", b"");
        let out = h
            .walship
            .clone()
            .arg("--plugin-dir")
            .arg(&plugins)
            .env("WALSHIP_CONFIG", settings.display().to_string())
            .env("WALSHIP_ALLOW_DIRECTORIES", &root)
            .env("HOSTILE_EXTRA_DIR", dir.display().to_string())
            .cwd(&data_dir)
            .args(["st", "put", "through-extra"])
            .arg(&file)
            .run();
        h.assert_contained(&out, Some("walship's own"));
        assert!(
            !dir.join("hostile-was-here").exists(),
            "the plugin wrote into {what}:\n{out}"
        );
    }
    h.assert_still_works();
}

/// The plugin declares settings that are not its to have: another backend's
/// credentials, PostgreSQL's password, walship's settings file as a "secret
/// file", the process's HOME, and a secret file the operator never listed.
/// None is handed over, and the store still opens.
#[test]
fn a_plugin_gets_no_setting_it_is_not_entitled_to() {
    let h = Hostile::new("settings");
    let settings_dir = h.scratch.dir("settings");
    let settings = settings_dir.join("walship.toml");
    let settings_text = "# the operator's settings file 5d2e\n";
    fs::write(&settings, settings_text).expect("write settings");
    let token = settings_dir.join("token");
    fs::write(&token, "token-from-a-file-9a41").expect("write token");
    let canaries = [
        ("AWS_SECRET_ACCESS_KEY", "aws-secret-e2e-1f0c".to_string()),
        ("PGPASSWORD", "pg-password-e2e-77b2".to_string()),
        ("WALSHIP_CONFIG", settings.display().to_string()),
        ("HOSTILE_TOKEN_FILE", token.display().to_string()),
        // Issue 18: the encryption key goes to no plugin, even one the
        // operator allows it to by name.
        (
            "WALG_LIBSODIUM_KEY",
            "libsodium-key-e2e-4c1b-0123456789".to_string(),
        ),
        ("WALSHIP_PLUGIN_SETTINGS", "WALG_LIBSODIUM_KEY".to_string()),
    ];
    let env: Vec<(&str, &str)> = canaries.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = h.put("leak-settings", b"", &env);
    h.assert_contained(&out, Some("sandbox held"));
    for text in [
        "aws-secret-e2e-1f0c",
        "pg-password-e2e-77b2",
        "5d2e",
        "token-from-a-file-9a41",
        "libsodium-key-e2e-4c1b",
    ] {
        assert!(!out.stderr.contains(text), "{text} leaked:\n{out}");
    }
    assert!(!out.stderr.contains("received HOME"), "HOME leaked:\n{out}");
}

/// An HTTP server that answers every request 200 and counts connections:
/// an attack that reaches it gets an answer (and says so at once).
struct Responder {
    port: u16,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Responder {
    fn start() -> Responder {
        Responder::on("127.0.0.1")
    }

    fn on(address: &str) -> Responder {
        use std::io::{Read, Write};
        let listener = TcpListener::bind((address, 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = connections.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            }
        });
        Responder { port, connections }
    }

    fn reached(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The operator configured an emulator at 127.0.0.1:<one port>; the plugin
/// asks for 127.0.0.1:<another port> (same host, so "configured" in its
/// manifest matches) and for `localhost:<port>` (a name its manifest
/// declares, which resolves to loopback). Neither is what the operator
/// meant: after resolution, a loopback, private or link-local address is
/// reached only at exactly the configured scheme, host and port.
#[test]
fn internal_addresses_are_reached_only_at_the_configured_endpoint() {
    let h = Hostile::new("internal");
    let configured = Responder::start();
    let other = Responder::start();
    let endpoint = format!("http://127.0.0.1:{}", configured.port);
    for asked in [
        format!("127.0.0.1:{}", other.port),
        format!("localhost:{}", other.port),
        format!("localhost:{}", configured.port),
    ] {
        let out = h.put(
            "http-to",
            asked.as_bytes(),
            &[
                ("HOSTILE_ENDPOINT", &endpoint),
                ("HOSTILE_ASK_ENDPOINT", &asked),
                ("WALSHIP_PLUGIN_CALL_TIMEOUT", "10"),
            ],
        );
        h.assert_contained(&out, None);
        assert_eq!(other.reached(), 0, "reached {asked}:\n{out}");
        assert_eq!(configured.reached(), 0, "reached {asked}:\n{out}");
    }
    // The configured endpoint itself stays reachable (the hostile plugin
    // calls any answer an escape; here it is the operator's intent).
    let exact = format!("127.0.0.1:{}", configured.port);
    let out = h.put(
        "http-to",
        exact.as_bytes(),
        &[
            ("HOSTILE_ENDPOINT", &endpoint),
            ("HOSTILE_ASK_ENDPOINT", &exact),
        ],
    );
    assert!(out.stderr.contains("got a response, status 200"), "{out}");
    assert_eq!(configured.reached(), 1, "{out}");
    assert_eq!(other.reached(), 0, "{out}");
    h.assert_still_works();
}

/// This machine's address on its network (not loopback): where a request
/// would cross the network.
fn network_address() -> String {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind");
    // Connecting a UDP socket sends nothing; it picks the outgoing address.
    socket
        .connect("192.0.2.1:9")
        .or_else(|_| socket.connect("8.8.8.8:53"))
        .expect("this test needs a network interface besides loopback");
    let ip = socket.local_addr().expect("local address").ip();
    assert!(!ip.is_loopback(), "no address besides loopback: {ip}");
    ip.to_string()
}

/// A plugin holding a credential never sends a request over plain http
/// beyond this machine, even to the endpoint the operator configured; with
/// no credential, or once the operator allows it, the request goes.
#[test]
fn credentials_never_travel_in_clear_text_beyond_loopback() {
    let h = Hostile::new("cleartext");
    let address = network_address();
    let server = Responder::on(&address);
    let asked = format!("{address}:{}", server.port);
    let endpoint = format!("http://{asked}");
    let base = [
        ("HOSTILE_ENDPOINT", endpoint.as_str()),
        ("HOSTILE_ASK_ENDPOINT", asked.as_str()),
        ("WALSHIP_PLUGIN_CALL_TIMEOUT", "10"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        base.iter().copied().chain(extra.iter().copied()).collect()
    };

    let out = h.put(
        "http-to",
        asked.as_bytes(),
        &with(&[("HOSTILE_API_KEY", "api-key-e2e-0d91")]),
    );
    h.assert_contained(&out, Some("clear text"));
    assert_eq!(server.reached(), 0, "sent in clear text:\n{out}");

    // No credential: nothing to leak, the request goes.
    let out = h.put("http-to", asked.as_bytes(), &with(&[]));
    assert!(out.stderr.contains("got a response, status 200"), "{out}");
    assert_eq!(server.reached(), 1, "{out}");
    // The operator's explicit choice.
    let out = h.put(
        "http-to",
        asked.as_bytes(),
        &with(&[
            ("HOSTILE_API_KEY", "api-key-e2e-0d91"),
            ("WALSHIP_ALLOW_HTTP_CREDENTIALS", "1"),
        ]),
    );
    assert!(out.stderr.contains("got a response, status 200"), "{out}");
    assert_eq!(server.reached(), 2, "{out}");
}

//! Settings that change safety are honoured or refused, never ignored
//! (issue 24): WAL-G's names walked through `wal-push` by hand, the settings
//! file and its precedence, `walship config`, and the checks on what
//! `wal-push` stores beside segments (`.history`, `.backup`).
//!
//! Quick on purpose: one stopped cluster per test with finished segments in
//! pg_wal, and `wal-push` called by hand as PostgreSQL would.

use std::fs;
use std::path::{Path, PathBuf};

use walship_e2e::by_hand::assert_refused_with_one_line;
use walship_e2e::{Cluster, Outcome, Scratch, Walship, WalshipArchive};

/// A stopped cluster with one finished segment, and an empty file archive.
struct Setup {
    scratch: Scratch,
    cluster: Cluster,
    archive: WalshipArchive,
    segment: String,
}

impl Setup {
    fn new(label: &str) -> Setup {
        let scratch = Scratch::new(label);
        let cluster = Cluster::with_finished_segments(&scratch, "pg", 1);
        let segment = cluster.wal_segments()[0].clone();
        let archive = WalshipArchive::file(&scratch, "archive");
        Setup {
            scratch,
            cluster,
            archive,
            segment,
        }
    }

    fn push_with(&self, settings: &[(&str, &str)], file: &str) -> Outcome {
        self.archive
            .walship()
            .cwd(self.cluster.data_dir())
            .envs(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .args(["wal-push", &format!("pg_wal/{file}")])
            .run()
    }

    fn archive_dir(&self) -> &Path {
        self.archive.local_dir().expect("a file archive")
    }

    /// Every file under the archive directory, relative to it.
    fn stored(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(self.archive_dir(), self.archive_dir(), &mut out);
        out.sort();
        out
    }

    /// Writes `pg_wal/<name>` (owned by postgres) with `text`.
    fn wal_file(&self, name: &str, text: &str) {
        let rel = self
            .cluster
            .data_dir()
            .join("pg_wal")
            .join(name)
            .strip_prefix(self.scratch.path())
            .expect("the cluster lives in the scratch directory")
            .to_path_buf();
        self.scratch
            .postgres_file(&rel.to_string_lossy(), text.as_bytes());
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, out);
        } else {
            out.push(path.strip_prefix(root).unwrap().display().to_string());
        }
    }
}

/// The names `walship config --names` marks refused, with a value that
/// does not turn the feature off.
fn refused_names() -> Vec<String> {
    let table = Walship::new().args(["config", "--names"]).run().ok();
    table
        .stdout
        .lines()
        .filter(|l| l.contains("| refused"))
        .map(|l| l.split('`').nth(1).expect("| `NAME` | ...").to_string())
        .collect()
}

/// Issue 24: these passed without a word, and `wal-push` stored plaintext
/// (or unlocked objects, or unthrottled traffic) as if all was well.
const PASSED_IN_SILENCE: &[&str] = &[
    "WALG_ENVELOPE_PGP_KEY",
    "WALG_ENVELOPE_PGP_KEY_PATH",
    "YC_CSE_KMS_KEY_ID",
    "GCS_ENCRYPTION_KEY",
    "S3_RETENTION_PERIOD",
    "S3_RETENTION_MODE",
    "WALG_VERIFY_PAGE_CHECKSUMS",
    "WALG_STATSD_ADDRESS",
    "WALG_DELTA_MAX_STEPS",
];

#[test]
fn every_refused_name_stops_wal_push_and_stores_nothing() {
    let s = Setup::new("refused");
    let refused = refused_names();
    for name in PASSED_IN_SILENCE
        .iter()
        .chain(&["WALG_PGP_KEY", "WALG_PGP_KEY_PATH"])
    {
        assert!(
            refused.iter().any(|r| r == name),
            "{name} is not refused by the table: {refused:?}"
        );
    }
    assert!(refused.len() > 30, "{refused:?}");
    for name in &refused {
        let out = s.push_with(&[(name, "7")], &s.segment);
        assert_refused_with_one_line(&out, &[name, "refusing"]);
        assert_eq!(
            s.stored(),
            Vec::<String>::new(),
            "{name} let something be stored"
        );
    }
    // The same name in WAL-G's settings file is refused just the same.
    let json = s
        .scratch
        .postgres_file("walg.json", br#"{"WALG_ENVELOPE_PGP_KEY": "k"}"#);
    let out = s.push_with(
        &[("WALSHIP_CONFIG", &json.display().to_string())],
        &s.segment,
    );
    assert_refused_with_one_line(&out, &["WALG_ENVELOPE_PGP_KEY", "walg.json"]);
    // Beside static keys a role would be ignored (no AssumeRole): refused.
    let out = s.push_with(
        &[
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r"),
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
        ],
        &s.segment,
    );
    assert_refused_with_one_line(&out, &["AWS_ROLE_ARN", "AssumeRole"]);
    assert_eq!(s.stored(), Vec::<String>::new());
    // A value that turns the feature off changes nothing, and is accepted.
    s.push_with(
        &[("WALG_DELTA_MAX_STEPS", "0"), ("S3_RETENTION_PERIOD", "-1")],
        &s.segment,
    )
    .ok();
    assert!(s.stored().contains(&format!("wal/{}", s.segment)));
}

#[test]
fn ignored_and_unknown_names_get_a_warning_line() {
    let s = Setup::new("warned");
    let out = s
        .push_with(
            &[
                ("WALG_UPLOAD_CONCURENCY", "8"),
                ("WALSHIP_PREFX", "file:///elsewhere"),
                ("WALG_S3_MAX_RETRIES", "3"),
            ],
            &s.segment,
        )
        .ok();
    let lines = out.stderr_lines();
    let warned = |name: &str| {
        lines
            .iter()
            .any(|l| l.starts_with("walship: warning: ") && l.contains(name))
    };
    assert!(warned("WALG_UPLOAD_CONCURENCY"), "{out}");
    assert!(warned("WALSHIP_PREFX"), "{out}");
    assert!(warned("WALG_S3_MAX_RETRIES"), "{out}");
    assert_eq!(lines.len(), 3, "one line each:\n{out}");
    assert!(s.stored().contains(&format!("wal/{}", s.segment)));
}

/// Issue 24: WAL-G's `~/.walg.json` was never read, so a prefix kept there
/// was dropped; a JSON file given to --config failed as bad TOML.
#[test]
fn walg_json_settings_files_are_read() {
    let s = Setup::new("walg-json");
    let home = s.scratch.postgres_dir("home", 0o700);
    let archive = s.archive_dir().display().to_string();
    let json = format!(r#"{{"WALG_FILE_PREFIX": "{archive}", "WALG_COMPRESSION_METHOD": "lz4"}}"#);
    fs::write(home.join(".walg.json"), &json).unwrap();
    walship_e2e::process::chown_postgres(&home.join(".walg.json"));
    // No prefix anywhere but in ~/.walg.json. (As the current user:
    // runuser would set HOME to postgres's own.)
    let bare = Walship::new()
        .cwd(s.cluster.data_dir())
        .env("HOME", home.display().to_string())
        .env(
            "WALSHIP_CACHE_DIR",
            s.scratch.postgres_dir("cache", 0o700).display().to_string(),
        );
    bare.clone()
        .args(["wal-push", &format!("pg_wal/{}", s.segment)])
        .run()
        .ok();
    assert!(
        s.stored().contains(&format!("wal/{}", s.segment)),
        "{:?}",
        s.stored()
    );
    let config = bare.clone().arg("config").run().ok();
    let prefix_line = config
        .stdout
        .lines()
        .find(|l| l.starts_with("prefix "))
        .unwrap_or_else(|| panic!("{config}"));
    assert!(
        prefix_line.contains("WALG_FILE_PREFIX (in ") && prefix_line.contains(".walg.json"),
        "{config}"
    );
    // A JSON file named with --config is read as WAL-G's, whatever its place.
    let named = s
        .scratch
        .postgres_file("elsewhere/settings.json", json.as_bytes());
    let out = Walship::new()
        .as_postgres()
        .args(["config", "--config"])
        .arg(&named)
        .run()
        .ok();
    assert!(out.stdout.contains("lz4"), "{out}");
    // TOML in a .json file: the error says JSON was expected, on one line.
    let toml_in_json = s
        .scratch
        .postgres_file("bad/settings.json", b"prefix = \"file:///a\"\n");
    let out = Walship::new()
        .as_postgres()
        .args(["config", "--config"])
        .arg(&toml_in_json)
        .run();
    assert_refused_with_one_line(&out, &["not valid JSON", "looks like TOML"]);
}

/// Issue 24: a settings file's `prefix` beat the environment's
/// WALG_FILE_PREFIX. Precedence is flags > environment > file, by source.
#[test]
fn precedence_is_by_source_for_every_pair() {
    let s = Setup::new("precedence");
    let dir = |name: &str| s.scratch.postgres_dir(name, 0o700).display().to_string();
    let (flag, env, file) = (dir("by-flag"), dir("by-env"), dir("by-file"));
    let toml = s.scratch.postgres_file(
        "walship.toml",
        format!("prefix = \"file://{file}\"\nlog_level = \"error\"\n").as_bytes(),
    );
    let prefix_of = |args: &[&str], env_vars: &[(&str, &str)]| -> String {
        let out = Walship::new()
            .as_postgres()
            .env("WALSHIP_CONFIG", toml.display().to_string())
            .envs(env_vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .args(args)
            .arg("config")
            .run()
            .ok();
        out.stdout
            .lines()
            .find(|l| l.starts_with("prefix "))
            .unwrap_or_else(|| panic!("{out}"))
            .to_string()
    };
    // environment over file
    let line = prefix_of(&[], &[("WALG_FILE_PREFIX", &env)]);
    assert!(
        line.contains(&env) && line.contains("(environment)"),
        "{line}"
    );
    // flag over environment
    let flag_url = format!("file://{flag}");
    let line = prefix_of(&["--prefix", &flag_url], &[("WALG_FILE_PREFIX", &env)]);
    assert!(
        line.contains(&flag) && line.contains("(command line)"),
        "{line}"
    );
    // flag over file
    let line = prefix_of(&["--prefix", &flag_url], &[]);
    assert!(line.contains(&flag), "{line}");
    // the file alone
    let line = prefix_of(&[], &[]);
    assert!(
        line.contains(&file) && line.contains("walship.toml"),
        "{line}"
    );
    // And it is where wal-push stores.
    Walship::new()
        .as_postgres()
        .cwd(s.cluster.data_dir())
        .env("WALSHIP_CONFIG", toml.display().to_string())
        .env("WALG_FILE_PREFIX", &env)
        .env("WALSHIP_CACHE_DIR", dir("cache"))
        .args(["wal-push", &format!("pg_wal/{}", s.segment)])
        .run()
        .ok();
    assert!(Path::new(&env).join("wal").join(&s.segment).is_file());
    assert!(!Path::new(&file).join("wal").exists());
}

#[test]
fn config_masks_secrets() {
    let out = Walship::new()
        .env("WALG_FILE_PREFIX", "/srv/archive")
        .env("AWS_SECRET_ACCESS_KEY", "sUp3r-s3cret")
        .env("PGPASSWORD", "hunter2")
        .env("AWS_REGION", "eu-north-1")
        .arg("config")
        .run()
        .ok();
    assert!(
        !out.stdout.contains("sUp3r-s3cret") && !out.stdout.contains("hunter2"),
        "{out}"
    );
    assert!(
        out.stdout.contains("AWS_SECRET_ACCESS_KEY") && out.stdout.contains("eu-north-1"),
        "{out}"
    );
}

/// Issue 24: messages named WALSHIP_LOG_LEVEL when WALG_LOG_LEVEL was set,
/// the file's `compression` as WALG_COMPRESSION_METHOD, and
/// WALG_TAR_SIZE_THRESHOLD as WALSHIP_VOLUME_SIZE.
#[test]
fn errors_name_the_setting_that_was_set() {
    let s = Setup::new("names");
    let out = s.push_with(&[("WALG_LOG_LEVEL", "loud")], &s.segment);
    assert_refused_with_one_line(&out, &["WALG_LOG_LEVEL=\"loud\""]);
    assert!(!out.stderr.contains("WALSHIP_LOG_LEVEL"), "{out}");
    let out = s.push_with(&[("WALG_TAR_SIZE_THRESHOLD", "tiny")], &s.segment);
    assert_refused_with_one_line(&out, &["WALG_TAR_SIZE_THRESHOLD"]);
    assert!(!out.stderr.contains("WALSHIP_VOLUME_SIZE"), "{out}");
    let toml = s
        .scratch
        .postgres_file("c.toml", b"compression = \"brotli\"\n");
    let out = s.push_with(
        &[("WALSHIP_CONFIG", &toml.display().to_string())],
        &s.segment,
    );
    assert_refused_with_one_line(&out, &["compression = \"brotli\" in", "c.toml"]);
    assert!(!out.stderr.contains("WALG_COMPRESSION_METHOD"), "{out}");
    assert_eq!(s.stored(), Vec::<String>::new());
}

/// Issue 24: `.history` and `.backup` files were stored unchecked, so
/// garbage (or `00000000.history`) took the name, and the real file could
/// never replace it.
#[test]
fn history_and_backup_label_files_are_checked_before_they_are_stored() {
    let s = Setup::new("history");
    for (name, text) in [
        ("00000002.history", "garbage\n"),
        ("00000002.history", ""),
        (
            "00000000.history",
            "1\t0/3000000\tno recovery target specified\n",
        ),
        (
            "00000003.history",
            "2\t0/3000000\tx\n1\t0/4000000\tdecreasing\n",
        ),
        ("000000010000000000000002.00000028.backup", "not a label\n"),
    ] {
        s.wal_file(name, text);
        let out = s.push_with(&[], name);
        assert_refused_with_one_line(&out, &[name, "not a valid"]);
        assert!(
            !s.stored().iter().any(|k| k.ends_with(name)),
            "{name} was stored: {:?}",
            s.stored()
        );
    }
    // The real one is stored afterwards...
    let real = "1\t0/3000000\tno recovery target specified\n";
    s.wal_file("00000002.history", real);
    s.push_with(&[], "00000002.history").ok();
    s.push_with(&[], "00000002.history").ok();
    // ...and a different, valid history under the same name is refused.
    s.wal_file("00000002.history", "1\t0/5000000\tanother promotion\n");
    let out = s.push_with(&[], "00000002.history");
    assert_refused_with_one_line(&out, &["00000002.history", "different content"]);
    let label = format!(
        "START WAL LOCATION: 0/2000028 (file {seg})\nSTOP WAL LOCATION: 0/2000100 (file {seg})\n\
         CHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\n\
         START TIME: 2026-12-01 10:00:00 UTC\nLABEL: x\nSTART TIMELINE: 1\n",
        seg = "000000010000000000000002"
    );
    s.wal_file("000000010000000000000002.00000028.backup", &label);
    s.push_with(&[], "000000010000000000000002.00000028.backup")
        .ok();
    let stored: PathBuf = s
        .archive_dir()
        .join("wal/000000010000000000000002.00000028.backup");
    assert!(stored.is_file());
}

/// Issue 24: WALG_DOWNLOAD_CONCURRENCY=1, WAL-G's "prefetch off" that
/// pg_rewind set-ups rely on, still prefetched into pg_wal; and
/// WALG_PREFETCH_DIR was ignored.
#[test]
fn prefetch_follows_walg_download_concurrency_and_prefetch_dir() {
    let scratch = Scratch::new("prefetch");
    let cluster = Cluster::with_finished_segments(&scratch, "pg", 3);
    let segments = cluster.wal_segments()[..3].to_vec();
    let archive = WalshipArchive::file(&scratch, "archive");
    for seg in &segments {
        walship_e2e::by_hand::push(&archive, &cluster, seg).ok();
    }
    let in_pg_wal = cluster.data_dir().join("pg_wal/walship_prefetch");
    let fetch = |settings: &[(&str, &str)], name: &str| {
        archive
            .walship()
            .cwd(cluster.data_dir())
            .envs(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .args(["wal-fetch", name, "pg_wal/RECOVERYXLOG"])
            .run()
            .ok()
    };
    fetch(&[("WALG_DOWNLOAD_CONCURRENCY", "1")], &segments[0]);
    // A prefetcher, had one been started, would have made its directory
    // at once; give it time anyway.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(
        !in_pg_wal.exists(),
        "prefetched with WALG_DOWNLOAD_CONCURRENCY=1"
    );

    let elsewhere = scratch.postgres_dir("prefetch-elsewhere", 0o700);
    let elsewhere_text = elsewhere.display().to_string();
    let settings = [
        ("WALG_DOWNLOAD_CONCURRENCY", "3"),
        ("WALG_PREFETCH_DIR", elsewhere_text.as_str()),
    ];
    fetch(&settings, &segments[0]);
    let prefetched = |name: &str| {
        let mut found = Vec::new();
        walk(&elsewhere, &elsewhere, &mut found);
        found.iter().any(|f| f.ends_with(name))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !prefetched(&segments[1]) {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never prefetched into {elsewhere_text}",
            segments[1]
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        !in_pg_wal.exists(),
        "prefetched into pg_wal despite WALG_PREFETCH_DIR"
    );
    // Served from there, byte for byte.
    fetch(&settings, &segments[1]);
    let restored = fs::read(cluster.data_dir().join("pg_wal/RECOVERYXLOG")).unwrap();
    assert_eq!(
        restored,
        walship_e2e::by_hand::segment_bytes(&cluster, &segments[1])
    );
    assert!(
        !prefetched(&segments[1]),
        "the prefetched copy was not the one served"
    );
    // The prefetcher leaves 2 s after the last request.
    std::thread::sleep(std::time::Duration::from_secs(3));
}

/// A test CA and a server certificate for `localhost` only (no IP in it),
/// made with openssl in `dir`: (ca.crt, server.crt, server.key).
fn test_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        walship_e2e::Run::new("openssl")
            .args(args)
            .cwd(dir)
            .run()
            .ok();
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=walship test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.crt",
    ]);
    (
        dir.join("ca.crt"),
        dir.join("server.crt"),
        dir.join("server.key"),
    )
}

/// A running cluster on 127.0.0.1 (TLS with `certs` if given), archiving
/// to `archive`, that lets
/// `postgres` in over TCP only with a password (SCRAM), over TLS only when
/// TLS is on.
fn tcp_cluster(
    scratch: &Scratch,
    archive: &WalshipArchive,
    certs: Option<(&Path, &Path)>,
) -> Cluster {
    let mut cluster = Cluster::init(scratch, "tcp");
    cluster.archive_to(archive, "on");
    cluster.set("listen_addresses", "127.0.0.1");
    cluster.set("log_connections", "on");
    let host_line = match certs {
        Some((crt, key)) => {
            let data = cluster.data_dir();
            fs::copy(crt, data.join("server.crt")).unwrap();
            fs::copy(key, data.join("server.key")).unwrap();
            for f in ["server.crt", "server.key"] {
                walship_e2e::process::chown_postgres(&data.join(f));
                walship_e2e::scratch::set_mode(&data.join(f), 0o600);
            }
            cluster.set("ssl", "on");
            "hostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all 127.0.0.1/32 reject\n"
        }
        None => {
            cluster.set("ssl", "off");
            "host all all 127.0.0.1/32 scram-sha-256\n"
        }
    };
    fs::write(
        cluster.data_dir().join("pg_hba.conf"),
        format!("local all all trust\n{host_line}"),
    )
    .unwrap();
    cluster.start();
    cluster.psql("alter user postgres password 'tls-test-secret'");
    cluster
}

fn backup_push_over_tcp(
    archive: &WalshipArchive,
    cluster: &Cluster,
    host: &str,
    tls: &[(&str, &str)],
) -> Outcome {
    archive
        .walship()
        .env("PGHOST", host)
        .env("PGPORT", cluster.port().to_string())
        .env("PGUSER", "postgres")
        .env("PGPASSWORD", "tls-test-secret")
        .envs(tls.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .arg("backup-push")
        .arg(cluster.data_dir())
        .run()
}

/// Issue 24: PGSSLMODE was ignored by backup-push; no TLS was requested
/// and the password went to the server in clear.
#[test]
fn backup_push_speaks_tls_to_postgresql_as_libpq() {
    let scratch = Scratch::new("pg-tls");
    let certs = scratch.postgres_dir("certs", 0o755);
    let (ca, crt, key) = test_certificates(&certs);
    let archive = WalshipArchive::file(&scratch, "archive");
    let cluster = tcp_cluster(&scratch, &archive, Some((&crt, &key)));
    let ca = ca.display().to_string();

    // The server takes TLS only: verify-full with the right CA and name.
    let out = backup_push_over_tcp(
        &archive,
        &cluster,
        "localhost",
        &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &ca)],
    );
    assert!(out.success(), "{out}");
    // verify-ca checks the chain only: an address the certificate does not
    // name is fine; verify-full refuses it.
    let out = backup_push_over_tcp(
        &archive,
        &cluster,
        "127.0.0.1",
        &[("PGSSLMODE", "verify-ca"), ("PGSSLROOTCERT", &ca)],
    );
    assert!(out.success(), "{out}");
    let out = backup_push_over_tcp(
        &archive,
        &cluster,
        "127.0.0.1",
        &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &ca)],
    );
    assert_refused_with_one_line(&out, &["certificate", "sslmode verify-full"]);
    // A root certificate that did not sign the server's: refused even
    // under require (libpq checks the chain when a root certificate is
    // given).
    let other = scratch.postgres_dir("other-ca", 0o755);
    let (other_ca, _, _) = test_certificates(&other);
    let out = backup_push_over_tcp(
        &archive,
        &cluster,
        "localhost",
        &[
            ("PGSSLMODE", "require"),
            ("PGSSLROOTCERT", &other_ca.display().to_string()),
        ],
    );
    assert_refused_with_one_line(&out, &["certificate"]);
    // disable really is plain text, which this server rejects.
    let out = backup_push_over_tcp(&archive, &cluster, "localhost", &[("PGSSLMODE", "disable")]);
    assert_refused_with_one_line(&out, &["pg_hba.conf", "no encryption"]);
    // prefer (libpq's default) encrypts when the server offers it.
    let out = backup_push_over_tcp(&archive, &cluster, "localhost", &[]);
    assert!(out.success(), "{out}");
}

#[test]
fn require_never_talks_in_clear_to_a_server_without_tls() {
    let scratch = Scratch::new("pg-no-tls");
    let archive = WalshipArchive::file(&scratch, "archive");
    let cluster = tcp_cluster(&scratch, &archive, None);
    let log_lines_before = cluster.log_tail(10_000).lines().count();
    let out = backup_push_over_tcp(&archive, &cluster, "127.0.0.1", &[("PGSSLMODE", "require")]);
    assert_refused_with_one_line(&out, &["does not support TLS", "nothing was sent in clear"]);
    // The server never got as far as a user name, let alone a password.
    let log = cluster.log_tail(10_000);
    let new: Vec<&str> = log.lines().skip(log_lines_before).collect();
    assert!(
        !new.iter().any(|l| l.contains("connection authorized")
            || l.contains("authentication")
            || l.contains("user=postgres")),
        "{new:#?}"
    );
    // What went over the wire, byte for byte: only the 8-byte SSLRequest
    // (a listener that answers 'N' as a server without TLS does).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = [0u8; 8];
        conn.read_exact(&mut request).unwrap();
        conn.write_all(b"N").unwrap();
        let mut rest = Vec::new();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let _ = conn.read_to_end(&mut rest);
        (request, rest)
    });
    let out = archive
        .walship()
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", port.to_string())
        .env("PGPASSWORD", "tls-test-secret")
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", "/etc/ssl/certs/ca-certificates.crt")
        .arg("backup-push")
        .arg(cluster.data_dir())
        .run();
    assert!(!out.success(), "{out}");
    let (request, rest) = server.join().unwrap();
    // Length 8, then PostgreSQL's SSLRequest code 80877103.
    assert_eq!(request, [0, 0, 0, 8, 4, 210, 22, 47]);
    assert!(rest.is_empty(), "sent after the refusal: {rest:?}");
    // prefer goes on in clear, as libpq does, and works.
    let out = backup_push_over_tcp(&archive, &cluster, "127.0.0.1", &[]);
    assert!(out.success(), "{out}");
}

/// Issue 24: backup-list printed "No backups found" and exited 0 on a
/// mistyped prefix or a WAL-G archive, so restore loops that wait for it to
/// succeed fell straight through.
#[test]
fn backup_list_fails_on_a_prefix_without_a_walship_archive() {
    let s = Setup::new("backup-list");
    let empty = WalshipArchive::file(&s.scratch, "empty");
    let out = empty.walship().arg("backup-list").run();
    assert_refused_with_one_line(&out, &["no walship archive", "check the prefix"]);
    let walg = WalshipArchive::file(&s.scratch, "walg");
    s.scratch.postgres_file(
        "walg/basebackups_005/base_000000010000000000000002_backup_stop_sentinel.json",
        b"{}",
    );
    s.scratch
        .postgres_file("walg/wal_005/000000010000000000000001.lz4", b"x");
    let out = walg.walship().args(["backup-list", "--json"]).run();
    assert_refused_with_one_line(&out, &["WAL-G archive", "cannot read it yet"]);
    // A walship archive without backups yet: an empty list is the answer.
    s.push_with(&[], &s.segment).ok();
    let out = s.archive.walship().arg("backup-list").run().ok();
    assert_eq!(out.stdout, "No backups found\n");
}

/// `walship ARGS` as postgres from a shell whose umask is 000, as a
/// careless service or an operator's shell might have it.
fn with_umask_000(archive: &WalshipArchive, cwd: &Path, args: &[&str]) -> Outcome {
    walship_e2e::Run::new("sh")
        .args(["-c", "umask 000 && exec \"$0\" \"$@\""])
        .arg(walship_e2e::walship::walship_bin())
        .args(args)
        .envs(archive.settings())
        .cwd(cwd)
        .as_postgres()
        .run()
}

/// Issue 24: archive files followed the caller's umask, so base backups
/// ended up world-readable on the file backend.
#[test]
fn archive_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::new("modes");
    // A prefix walship creates itself (its parent exists).
    let parent = s.scratch.postgres_dir("parent", 0o755);
    let archive = WalshipArchive::new(&s.scratch, format!("file://{}/archive", parent.display()));
    with_umask_000(
        &archive,
        s.cluster.data_dir(),
        &["wal-push", &format!("pg_wal/{}", s.segment)],
    )
    .ok();
    let blob = s
        .scratch
        .postgres_file("blob", b"a volume of a base backup");
    with_umask_000(
        &archive,
        s.cluster.data_dir(),
        &[
            "st",
            "put",
            "backups/base_1/volume_0001.tar.zst",
            &blob.display().to_string(),
        ],
    )
    .ok();
    let root = parent.join("archive");
    let mut seen = 0;
    let mut check = vec![root.clone()];
    while let Some(path) = check.pop() {
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        if path.is_dir() {
            assert_eq!(mode, 0o700, "{} is {mode:o}", path.display());
            check.extend(fs::read_dir(&path).unwrap().flatten().map(|e| e.path()));
        } else {
            assert_eq!(mode, 0o600, "{} is {mode:o}", path.display());
            seen += 1;
        }
    }
    // identity, the segment, the volume
    assert!(seen >= 3, "{seen} files");
}

/// Issue 24: read commands created a missing prefix directory, and
/// wal-push into a mistyped path silently started a new archive.
#[test]
fn reads_create_nothing_and_a_mistyped_path_is_refused() {
    let s = Setup::new("no-create");
    let parent = s.scratch.postgres_dir("parent", 0o700);
    let missing = parent.join("not-there");
    let at = |dir: &Path| WalshipArchive::new(&s.scratch, format!("file://{}", dir.display()));
    let archive = at(&missing);
    for args in [
        vec!["wal-fetch", &s.segment, "pg_wal/RECOVERYXLOG"],
        vec!["wal-show"],
        vec!["wal-verify"],
        vec!["backup-list"],
        vec!["delete", "retain", "1"],
        vec!["st", "ls"],
    ] {
        let out = archive
            .walship()
            .cwd(s.cluster.data_dir())
            .args(&args)
            .run();
        assert!(
            !out.success(),
            "{args:?} succeeded on a missing prefix:\n{out}"
        );
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
    }
    // A typo one level up: the parent is missing too. Refused, nothing made.
    let typo = parent.join("typo/archive");
    let out = at(&typo)
        .walship()
        .cwd(s.cluster.data_dir())
        .args(["wal-push", &format!("pg_wal/{}", s.segment)])
        .run();
    assert_refused_with_one_line(&out, &["does not exist", "mistyped"]);
    assert!(!parent.join("typo").exists());
    // The archive directory itself, in an existing parent, is created.
    s.push_with(
        &[("WALSHIP_PREFIX", &format!("file://{}", missing.display()))],
        &s.segment,
    )
    .ok();
    assert!(missing.join("wal").join(&s.segment).is_file());
}

/// Issue 24: with RUST_BACKTRACE set in the server's environment, frames
/// were appended to the one line PostgreSQL logs. Every failure, whatever
/// its source (settings, storage, a plugin trap, PostgreSQL), stays one
/// line.
#[test]
fn failures_stay_one_line_with_rust_backtrace_set() {
    let s = Setup::new("one-line");
    let backtrace = [("RUST_BACKTRACE", "full"), ("RUST_LIB_BACKTRACE", "1")];
    let one_line = |out: &Outcome, what: &str| {
        assert!(!out.success(), "{what} succeeded:\n{out}");
        assert_eq!(out.stderr_lines().len(), 1, "{what}:\n{out}");
        let lower = out.stderr.to_lowercase();
        assert!(
            !lower.contains("backtrace") && !lower.contains("<unknown>"),
            "{what}:\n{out}"
        );
    };
    let with = |extra: &[(&str, &str)]| {
        s.archive.walship().cwd(s.cluster.data_dir()).envs(
            backtrace
                .iter()
                .chain(extra)
                .map(|(k, v)| (k.to_string(), v.to_string())),
        )
    };
    let push = format!("pg_wal/{}", s.segment);
    one_line(
        &with(&[("WALG_PGP_KEY", "k")])
            .args(["wal-push", &push])
            .run(),
        "a refused setting",
    );
    one_line(
        &with(&[("WALG_UPLOAD_CONCURRENCY", "many")])
            .args(["wal-push", &push])
            .run(),
        "an invalid value",
    );
    let missing = format!("file://{}/missing", s.scratch.path().display());
    one_line(
        &with(&[("WALSHIP_PREFIX", &missing)])
            .args(["backup-list"])
            .run(),
        "a missing archive",
    );
    one_line(
        &with(&[("PGHOST", "127.0.0.1"), ("PGPORT", "1")])
            .arg("backup-push")
            .arg(s.cluster.data_dir())
            .run(),
        "no PostgreSQL to talk to",
    );
    // A plugin stopped at its deadline (the hostile test plugin spins on
    // this key). Not covered: a guest's own panic message, which goes to
    // the plugin's stderr and passes through the sandbox as is.
    let store = s.scratch.postgres_dir("hostile-store", 0o700);
    let data = s.scratch.postgres_file("data", b"x");
    let hostile = Walship::new()
        .as_postgres()
        .envs(
            backtrace
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .arg("--plugin")
        .arg(walship_e2e::walship::hostile_plugin())
        .arg("--prefix")
        .arg(format!("hostile://{}", store.display()))
        .arg("--cache-dir")
        .arg(s.scratch.postgres_dir("hostile-cache", 0o700));
    one_line(
        &hostile
            .env("WALSHIP_PLUGIN_CALL_TIMEOUT", "1")
            .args(["st", "put", "attack/spin"])
            .arg(&data)
            .run(),
        "a plugin past its deadline",
    );
}

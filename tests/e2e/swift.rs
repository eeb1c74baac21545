//! The Swift backend (`plugins/swift`) against a real OpenStack Swift 2.30
//! (Debian's packages) that each test starts itself
//! (`walship_e2e::emulators::swift`): tempauth (v1 auth), a short token life
//! for the expiry test, and a real Keystone v3.
//!
//! What walship stored is checked with the test's own HTTP client against
//! Swift, not only through walship. Every walship command of the archive
//! runs as `postgres`, as PostgreSQL runs it. Exit codes are PostgreSQL's
//! contract (see wal_commands.rs): wal-push 0 = stored, 1..=125 = not stored.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use walship_e2e::by_hand::{fetch, push, read, segment_bytes};
use walship_e2e::emulators::swift::{Swift, SwiftAuth};
use walship_e2e::pg::WAIT_TIMEOUT;
use walship_e2e::pitr::{MIN_SEGMENTS, archive_and_recover};
use walship_e2e::walship::OBJECT_MAGIC;
use walship_e2e::{Archive, Cluster, Outcome, Scratch, Walship, WalshipArchive, random_bytes};

const MIB: usize = 1024 * 1024;
const CONTAINER: &str = "walship";
const SEGMENTS: &str = ".walship-segments/";

/// Runs the conformance suite with `env`; returns its JSON report after
/// checking that the exit status agrees with it.
fn conformance(scratch: &Scratch, prefix: &str, env: &[(String, String)]) -> (Outcome, String) {
    let outcome = Walship::new()
        .arg("--prefix")
        .arg(prefix)
        .arg("--cache-dir")
        .arg(scratch.dir("cache"))
        .envs(env.iter().cloned())
        .args(["plugin", "test", "swift", "--format", "json"])
        .timeout(Duration::from_secs(600))
        .run();
    let report = outcome.out().to_string();
    let failed = report.contains("\"outcome\":\"failed\"");
    assert_eq!(
        outcome.success(),
        !failed,
        "exit status and report disagree:\n{outcome}"
    );
    (outcome, report)
}

/// The outcome (`passed`, `failed`, `skipped`) the JSON report gives `check`.
fn outcome_of<'r>(report: &'r str, check: &str) -> &'r str {
    let start = report
        .find(&format!("\"check\":\"{check}\""))
        .unwrap_or_else(|| panic!("{check:?} is not in the report: {report}"));
    let entry = &report[start..];
    let entry = &entry[..entry.find('}').unwrap_or(entry.len())];
    let value = entry
        .split("\"outcome\":\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no outcome for {check:?}: {entry}"));
    &value[..value.find('"').unwrap_or(value.len())]
}

#[track_caller]
fn assert_suite_passed(report: &str) {
    assert!(report.contains("\"failed\":0"), "{report}");
    for check in [
        "put/get: 16 MiB",
        "create-only: a second create is already-exists, the first object kept",
        "list: pages hold every key once, in byte order, none skipped",
        "multipart: parts assemble in order",
        "multipart: an aborted upload leaves nothing visible",
        "multipart: a create-only complete refuses a taken key",
        "delete: many keys at once; missing keys are no failure",
        "errors: wrong credentials are unauthenticated",
        "sandbox: without its grants the plugin reaches nothing",
    ] {
        assert_eq!(outcome_of(report, check), "passed", "{check}: {report}");
    }
    // Swift checks If-None-Match when a PUT starts, not atomically against
    // a racing PUT: not claimed, so the host verifies instead.
    assert!(
        report.contains("exactly one wins\",\"detail\":\"not claimed (atomic-create-only)\""),
        "{report}"
    );
}

/// The whole archive-and-recover scenario through Swift with v1 auth, then
/// what Swift holds, read with the test's own client: identity.toml, one
/// walship object per WAL file, exactly what `walship st ls` lists, and no
/// large-object segment left over.
#[test]
fn pitr_through_swift_with_v1_auth() {
    let scratch = Scratch::new("swift-pitr");
    let swift = Swift::start(&scratch);
    let archive = swift.archive(&scratch, CONTAINER, "pitr/cluster-a");
    let report = archive_and_recover(&scratch, &archive);

    let stored = swift.object_names(CONTAINER, "pitr/cluster-a/");
    assert!(
        stored.iter().any(|n| n == "pitr/cluster-a/identity.toml"),
        "no identity.toml in Swift: {stored:?}"
    );
    let in_swift: BTreeSet<String> = stored
        .iter()
        .filter_map(|n| n.strip_prefix("pitr/cluster-a/"))
        .filter(|n| n.starts_with("wal/"))
        .map(str::to_string)
        .collect();
    let listed: BTreeSet<String> = archive.list("wal/").into_iter().collect();
    assert_eq!(
        listed, in_swift,
        "`walship st ls wal/` disagrees with Swift's listing"
    );
    assert!(
        in_swift.len() as u64 >= MIN_SEGMENTS,
        "{} objects",
        in_swift.len()
    );
    for name in &report.switched {
        let bytes = swift
            .get_object(CONTAINER, &format!("pitr/cluster-a/wal/{name}"))
            .unwrap_or_else(|| panic!("{name} is not in Swift"));
        assert!(
            bytes.starts_with(OBJECT_MAGIC),
            "{name} is not a walship object ({} bytes)",
            bytes.len()
        );
    }
    assert_eq!(
        swift.object_names(CONTAINER, SEGMENTS),
        Vec::<String>::new(),
        "large-object segments left behind"
    );
    println!(
        "archived {} files through Swift up to {}; recovered to {} ({:?}) and to the end ({:?})",
        report.archiver.archived_count,
        report.last_segment,
        report.target_time,
        report.at_target,
        report.at_end
    );
}

/// An object larger than a part (32 MiB) becomes a Static Large Object of
/// three segments, visible only once whole; it reads back byte for byte,
/// through walship and straight from Swift; `st rm` deletes it with its
/// segments.
#[test]
fn large_object_is_a_static_large_object_deleted_with_its_segments() {
    let scratch = Scratch::new("swift-large");
    let swift = Swift::start(&scratch);
    let archive = swift.archive(&scratch, CONTAINER, "large");
    let data = random_bytes(80 * MIB + 4321, 0x5eed);
    let file = scratch.postgres_file("big.bin", &data);

    let put = archive
        .walship()
        .args(["st", "put", "big/object"])
        .arg(&file)
        .run()
        .ok();
    let head = swift
        .head_object(CONTAINER, "large/big/object")
        .expect("the object is in Swift");
    assert_eq!(
        head.header("x-static-large-object"),
        Some("True"),
        "not a Static Large Object: {:?}",
        head.headers
    );
    assert_eq!(
        head.header("content-length"),
        Some(data.len().to_string().as_str())
    );
    let segments = swift.object_names(CONTAINER, SEGMENTS);
    assert_eq!(
        segments.len(),
        3,
        "expected 3 segments (80 MiB in 32 MiB parts): {segments:?}"
    );
    assert!(
        swift.get_object(CONTAINER, "large/big/object").as_deref() == Some(&data[..]),
        "Swift returns other bytes"
    );
    // The segments are not the store's objects.
    assert_eq!(archive.list(""), vec!["big/object".to_string()]);

    let dir = scratch.postgres_dir("got", 0o700);
    let dest = dir.join("big.bin");
    let get = archive
        .walship()
        .args(["st", "get", "big/object"])
        .arg(&dest)
        .run()
        .ok();
    assert!(read(&dest) == data, "st get returned other bytes");

    archive
        .walship()
        .args(["st", "rm", "big/object"])
        .run()
        .ok();
    assert!(
        swift.head_object(CONTAINER, "large/big/object").is_none(),
        "the manifest is still there"
    );
    assert_eq!(
        swift.object_names(CONTAINER, SEGMENTS),
        Vec::<String>::new(),
        "st rm left the segments behind"
    );
    println!(
        "80 MiB: put {:.1?}, get {:.1?}, segments {segments:?}",
        put.elapsed, get.elapsed
    );
}

/// A wrong ST_KEY: one line naming the v1 auth failure, nothing stored, and
/// PostgreSQL's archiver keeps the segment until the key is fixed; then it
/// archives it and it fetches back.
#[test]
fn wrong_key_is_refused_until_fixed() {
    let scratch = Scratch::new("swift-wrong-key");
    let swift = Swift::start(&scratch);
    let good = swift.archive(&scratch, CONTAINER, "auth");
    let bad = good.clone().with_env("ST_KEY", "not-the-key");

    let mut cluster = Cluster::init(&scratch, "pg");
    cluster.set("wal_keep_size", "1GB").archive_to(&bad, "on");
    cluster.start();
    cluster.psql("create table t (x int); insert into t select generate_series(1, 1000)");
    let segment = cluster.switch_wal();

    let out = push(&bad, &cluster, &segment);
    let code = out.exit_code();
    assert!((1..=125).contains(&code), "expected a refusal:\n{out}");
    assert_eq!(out.stderr_lines().len(), 1, "expected one line:\n{out}");
    assert!(
        out.stderr.contains("ST_KEY") && out.stderr.contains("401"),
        "expected the reason (v1 auth refused, ST_KEY):\n{out}"
    );
    assert!(
        !out.stderr.contains("not-the-key"),
        "the key was printed:\n{out}"
    );
    println!("wrong key: {}", out.stderr.trim());

    let stats = cluster.wait_for("archive_command to fail", WAIT_TIMEOUT, |c| {
        let stats = c.archiver_stats();
        if stats.failed_count > 0 {
            Ok(stats)
        } else {
            Err(format!("{stats:?}"))
        }
    });
    assert_eq!(
        stats.archived_count, 0,
        "archived with a wrong key: {stats:?}"
    );
    assert_eq!(
        swift.object_names(CONTAINER, ""),
        Vec::<String>::new(),
        "stored with a wrong key"
    );

    cluster.psql(&format!(
        "alter system set archive_command = '{}'",
        good.archive_command().replace('\'', "''")
    ));
    cluster.psql("select pg_reload_conf()");
    let stats = cluster.wait_archived(&segment, WAIT_TIMEOUT);
    assert!(stats.failed_count > 0, "{stats:?}");
    assert!(
        swift
            .object_names(CONTAINER, "auth/wal/")
            .contains(&format!("auth/wal/{segment}")),
        "not stored after the fix"
    );
    assert_eq!(
        fetch(&good, &cluster, &scratch, &segment),
        segment_bytes(&cluster, &segment)
    );
}

/// Auth requests the proxy has logged so far.
fn auth_requests(swift: &Swift) -> usize {
    swift
        .proxy_log()
        .lines()
        .filter(|l| l.contains("GET /auth/v1.0"))
        .count()
}

/// A token that expired (tempauth with a 2 s token life) is renewed within
/// the process that holds it: the push that starts with the expired token
/// is refused 401, authenticates again once (one more auth request at the
/// proxy, the plugin's debug line) and stores the segment. The same expired
/// token without credentials to renew it: a clear error, nothing stored.
/// And the conformance suite passes with tokens that keep expiring.
#[test]
fn expired_token_is_renewed_transparently() {
    let scratch = Scratch::new("swift-expiry");
    let swift = Swift::start_with(
        &scratch,
        SwiftAuth::Tempauth {
            token_life: Some(2),
        },
    );
    let archive = swift.archive(&scratch, CONTAINER, "expiry");
    let cluster = Cluster::with_finished_segments(&scratch, "pg", 2);
    let segments = cluster.wal_segments();

    let token = swift.issue_token();
    assert_eq!(swift.account_status(&token), 204, "a fresh token works");
    let started = Instant::now();
    while swift.account_status(&token) != 401 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the token did not expire"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // Only the expired token: nothing to renew it with.
    let token_only = WalshipArchive::new(&scratch, "swift://walship/expiry")
        .with_env("OS_STORAGE_URL", swift.storage_url())
        .with_env("OS_AUTH_TOKEN", &token);
    let out = push(&token_only, &cluster, &segments[0]);
    assert!(
        (1..=125).contains(&out.exit_code()),
        "expected a refusal:\n{out}"
    );
    assert!(out.stderr.contains("OS_AUTH_TOKEN"), "{out}");
    assert!(
        !out.stderr.contains(&token),
        "the token was printed:\n{out}"
    );
    assert_eq!(
        swift.object_names(CONTAINER, "expiry/"),
        Vec::<String>::new()
    );

    // The expired token with credentials: renewed in the same process. Once,
    // as a rule; tempauth hands out its cached token until that lapses, so a
    // renewal a moment before the cached token expires gets one that
    // expires under the next request and is renewed again (seen once in CI
    // with 2 s tokens): every renewal is one auth request, and a few at most.
    let renewing = archive
        .clone()
        .with_env("OS_STORAGE_URL", swift.storage_url())
        .with_env("OS_AUTH_TOKEN", &token)
        .with_env("WALSHIP_LOG_LEVEL", "debug");
    let before = auth_requests(&swift);
    let out = push(&renewing, &cluster, &segments[0]).ok();
    let renewals = out.stderr.matches("authenticating again").count();
    assert!(
        (1..=3).contains(&renewals),
        "expected one renewal (at most 3) in the log:\n{out}"
    );
    assert!(!out.stderr.contains(&token), "the token was logged:\n{out}");
    assert!(
        !out.stderr.contains("testing"),
        "the key was logged:\n{out}"
    );
    // The proxy writes its access line after answering: give it a moment.
    let started = Instant::now();
    while auth_requests(&swift) - before < renewals && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        auth_requests(&swift) - before,
        renewals,
        "expected exactly one v1 auth request per renewal"
    );
    assert_eq!(
        fetch(&archive, &cluster, &scratch, &segments[0]),
        segment_bytes(&cluster, &segments[0])
    );

    // Tokens expire every 2 s while the suite runs.
    let (out, report) = conformance(&scratch, "swift://walship/conformance", &{
        let mut env = swift.env();
        env.push(("WALSHIP_LOG_LEVEL".into(), "debug".into()));
        env
    });
    assert_suite_passed(&report);
    println!(
        "conformance with 2 s tokens: {} renewals in {:.1?}",
        out.stderr.matches("authenticating again").count(),
        out.elapsed
    );
}

/// Keystone v3 for real: password auth, the object-store endpoint from the
/// token's catalog (another port than Keystone's, asked of the host at run
/// time, refused when the operator's allowlist lacks it), push and fetch, a
/// wrong password, and the conformance suite.
#[test]
fn keystone_v3_push_fetch_and_conformance() {
    let scratch = Scratch::new("swift-keystone");
    let swift = Swift::start_keystone(&scratch);
    let archive = swift.archive(&scratch, CONTAINER, "keystone");
    let cluster = Cluster::with_finished_segments(&scratch, "pg", 2);
    let name = &cluster.wal_segments()[0];

    push(&archive, &cluster, name).ok();
    let stored = swift
        .get_object(CONTAINER, &format!("keystone/wal/{name}"))
        .expect("stored in the project's account");
    assert!(stored.starts_with(OBJECT_MAGIC));
    assert_eq!(
        fetch(&archive, &cluster, &scratch, name),
        segment_bytes(&cluster, name)
    );

    // The catalog's storage URL is on another port than Keystone's: an
    // operator allowlist without it refuses it at run time, naming it.
    let keystone = swift.keystone_url();
    let keystone = keystone
        .trim_start_matches("http://")
        .trim_end_matches("/v3");
    let storage = format!("127.0.0.1:{}", swift.proxy_port());
    let second = &cluster.wal_segments()[1];
    let fenced = archive.clone().with_env("WALSHIP_ALLOW_HOSTS", keystone);
    let out = push(&fenced, &cluster, second);
    assert!(
        (1..=125).contains(&out.exit_code()),
        "expected a refusal:\n{out}"
    );
    assert!(
        out.stderr.contains(&storage) && out.stderr.contains("WALSHIP_ALLOW_HOSTS"),
        "expected the storage URL and the setting named:\n{out}"
    );
    assert!(
        swift
            .get_object(CONTAINER, &format!("keystone/wal/{second}"))
            .is_none(),
        "stored although refused"
    );
    println!("refused: {}", out.stderr.trim());
    let allowed = archive
        .clone()
        .with_env("WALSHIP_ALLOW_HOSTS", format!("{keystone},{storage}"));
    push(&allowed, &cluster, second).ok();
    assert_eq!(
        fetch(&archive, &cluster, &scratch, second),
        segment_bytes(&cluster, second)
    );

    let wrong = archive.clone().with_env("OS_PASSWORD", "wrong-password");
    let out = push(&wrong, &cluster, &cluster.wal_segments()[0]);
    assert!(
        (1..=125).contains(&out.exit_code()),
        "expected a refusal:\n{out}"
    );
    assert!(out.stderr.contains("Keystone"), "{out}");
    assert!(!out.stderr.contains("wrong-password"), "{out}");

    // KubeDB's images export the v2-era OS_TENANT_NAME / OS_TENANT_ID: with
    // v3 they are the project's name and id (as python-swiftclient takes
    // them), not a reason to ask for OS_PROJECT_NAME (issue 24).
    let project = swift
        .env()
        .into_iter()
        .find(|(k, _)| k == "OS_PROJECT_NAME")
        .expect("a project")
        .1;
    let kubedb = archive
        .clone()
        .with_env("OS_PROJECT_NAME", "")
        .with_env("OS_TENANT_NAME", project);
    push(&kubedb, &cluster, second).ok();
    assert_eq!(
        fetch(&kubedb, &cluster, &scratch, second),
        segment_bytes(&cluster, second)
    );
    // Keystone v2 is refused, saying it is gone and what to set instead.
    let v2_url = swift.keystone_url().replace("/v3", "/v2.0");
    let v2 = kubedb.clone().with_env("OS_AUTH_URL", v2_url);
    let out = push(&v2, &cluster, second);
    assert!(
        (1..=125).contains(&out.exit_code()),
        "expected a refusal:\n{out}"
    );
    assert!(
        out.stderr.contains("v2") && out.stderr.contains("no longer") && out.stderr.contains("/v3"),
        "{out}"
    );

    let (_, report) = conformance(&scratch, "swift://walship/conformance", &swift.env());
    assert_suite_passed(&report);
}

/// The conformance suite with v1 auth.
#[test]
fn conformance_suite_passes_with_v1_auth() {
    let scratch = Scratch::new("swift-conformance");
    let swift = Swift::start(&scratch);
    swift.create_container(CONTAINER);
    let (out, report) = conformance(&scratch, "swift://walship/conformance", &swift.env());
    assert_suite_passed(&report);
    assert_eq!(
        swift.object_names(CONTAINER, ""),
        Vec::<String>::new(),
        "the suite left objects or segments behind"
    );
    println!("conformance: {:.1?}", out.elapsed);
}

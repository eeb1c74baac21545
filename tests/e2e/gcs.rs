//! The GCS backend (`plugins/gcs`) against fake-gcs-server, which the tests
//! start themselves (`walship_e2e::emulators::gcs`):
//!
//! - fake-gcs-server checks no credentials, so a proxy in front of it checks
//!   every request's bearer token: an RS256 JWT signed with the key of a
//!   service account the test generated (openssl), verified against its
//!   public key and claims. Anything else gets 401 and never reaches the
//!   server;
//! - what walship stored is read straight from fake-gcs-server's JSON API,
//!   not through walship.
//!
//! Every command runs as `postgres`, as PostgreSQL runs it. Exit codes are
//! PostgreSQL's contract (see wal_commands.rs): wal-push 0 = stored, 1..=125
//! = not stored.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use walship_e2e::by_hand::{push, read, segment_bytes};
use walship_e2e::emulators::gcs::{AuthProxy, FakeGcs, ServiceAccountKey};
use walship_e2e::pitr::{MIN_SEGMENTS, archive_and_recover};
use walship_e2e::walship::{OBJECT_HEADER_LEN, OBJECT_MAGIC};
use walship_e2e::{Cluster, Scratch, Walship, WalshipArchive, random_bytes};

const MIB: usize = 1024 * 1024;
/// Where the plugin keeps the parts of unfinished uploads.
const UPLOADS: &str = ".walship-uploads/";

/// fake-gcs-server, a service-account key and the checking proxy.
struct Authenticated {
    gcs: FakeGcs,
    key: ServiceAccountKey,
    proxy: AuthProxy,
}

impl Authenticated {
    fn start(scratch: &Scratch) -> Authenticated {
        let gcs = FakeGcs::start(scratch);
        let key = ServiceAccountKey::generate(scratch, "archiver");
        let proxy = AuthProxy::start(scratch, &gcs, &key);
        Authenticated { gcs, key, proxy }
    }

    fn archive(&self, scratch: &Scratch, path: &str) -> WalshipArchive {
        self.proxy.archive(scratch, path, &self.key)
    }
}

/// The archive-and-recover scenario through GCS with a service account:
/// every request went through the proxy's JWT check and none was refused;
/// fake-gcs-server holds identity.toml and one walship object per WAL file,
/// exactly what `walship st ls` lists, and no upload parts.
#[test]
fn pitr_through_gcs_with_a_service_account() {
    let scratch = Scratch::new("gcs-pitr");
    let env = Authenticated::start(&scratch);
    let archive = env.archive(&scratch, "pitr/cluster-a");
    let report = archive_and_recover(&scratch, &archive);

    assert!(
        env.gcs.object("pitr/cluster-a/identity.toml").is_some(),
        "no identity.toml: {:?}",
        env.gcs.names("")
    );
    let stored: BTreeSet<String> = env
        .gcs
        .names("pitr/cluster-a/wal/")
        .into_iter()
        .map(|k| {
            k.strip_prefix("pitr/cluster-a/")
                .expect("under the path")
                .to_string()
        })
        .collect();
    let listed: BTreeSet<String> = archive.list("wal/").into_iter().collect();
    assert_eq!(
        listed, stored,
        "`walship st ls wal/` disagrees with fake-gcs-server"
    );
    assert!(
        stored.len() as u64 >= MIN_SEGMENTS,
        "{} objects",
        stored.len()
    );
    for name in &report.switched {
        let bytes = env
            .gcs
            .object(&format!("pitr/cluster-a/wal/{name}"))
            .unwrap_or_else(|| panic!("{name} is not stored"));
        assert!(
            bytes.len() > OBJECT_HEADER_LEN && bytes.starts_with(OBJECT_MAGIC),
            "{name} is not a walship object ({} bytes)",
            bytes.len()
        );
    }
    assert_eq!(
        env.gcs.names(&format!("pitr/cluster-a/{UPLOADS}")),
        Vec::<String>::new(),
        "upload parts left behind"
    );
    let (accepted, rejected, last) = env.proxy.stats();
    assert!(
        accepted > stored.len() as u64,
        "only {accepted} requests were checked"
    );
    assert_eq!(rejected, 0, "the proxy refused requests: {last}");
    println!(
        "archived {} files through GCS ({accepted} signed requests) up to {}; recovered to {} \
         ({:?}) and to the end ({:?})",
        report.archiver.archived_count,
        report.last_segment,
        report.target_time,
        report.at_target,
        report.at_end
    );
}

/// Runs the suite; returns its JSON report after checking the exit status
/// agrees with it.
fn suite(walship: Walship) -> String {
    let outcome = walship
        .args(["plugin", "test", "gcs", "--format", "json"])
        .run();
    let report = outcome.out().to_string();
    let failed = report.contains("\"outcome\":\"failed\"");
    assert_eq!(
        outcome.success(),
        !failed,
        "exit status and report disagree:\n{outcome}"
    );
    report
}

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

/// The conformance suite, through the checking proxy (so the
/// wrong-credentials check runs too) and straight against the emulator: every
/// check passes, atomic create-only and multipart included.
#[test]
fn conformance_suite_passes() {
    let scratch = Scratch::new("gcs-conformance");
    let env = Authenticated::start(&scratch);
    let prefix = format!("gs://{}/conformance", FakeGcs::BUCKET);
    let through_proxy = Walship::new()
        .arg("--prefix")
        .arg(&prefix)
        .arg("--cache-dir")
        .arg(scratch.dir("cache"))
        .env("WALSHIP_GS_ENDPOINT", env.proxy.endpoint())
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            env.key.key_file.display().to_string(),
        );
    let report = suite(through_proxy);
    assert!(report.contains("\"failed\":0"), "{report}");
    for check in [
        "put/get: 16 MiB",
        "create-only: a second create is already-exists, the first object kept",
        "create-only: of concurrent creates of one key exactly one wins",
        "ranged get: middle, to the end, past the end",
        "list: pages hold every key once, in byte order, none skipped",
        "list: start-after skips up to and including the key",
        "multipart: parts assemble in order",
        "multipart: an aborted upload leaves nothing visible",
        "multipart: a create-only complete refuses a taken key",
        "errors: wrong credentials are unauthenticated",
        "sandbox: without its grants the plugin reaches nothing",
    ] {
        assert_eq!(outcome_of(&report, check), "passed", "{check}: {report}");
    }
    assert_eq!(env.proxy.stats().1, 0, "requests refused by the proxy");

    let emulator = Walship::new()
        .arg("--prefix")
        .arg(&prefix)
        .arg("--cache-dir")
        .arg(scratch.dir("cache"))
        .env("STORAGE_EMULATOR_HOST", env.gcs.endpoint());
    let report = suite(emulator);
    assert!(report.contains("\"failed\":0"), "{report}");
    assert_eq!(
        outcome_of(
            &report,
            "create-only: of concurrent creates of one key exactly one wins"
        ),
        "passed"
    );
    assert_eq!(
        env.gcs.names("conformance/"),
        Vec::<String>::new(),
        "the suite left objects behind"
    );
}

/// A key file whose RSA key is not the service account's: the proxy refuses
/// the signature, wal-push exits 1 with one line naming the account and the
/// setting, and nothing is stored.
#[test]
fn wrong_key_is_refused_and_nothing_is_archived() {
    let scratch = Scratch::new("gcs-wrong-key");
    let env = Authenticated::start(&scratch);
    let wrong = env.key.with_other_key(&scratch, "rotated");
    let archive = env.proxy.archive(&scratch, "wrong", &wrong);
    let cluster = Cluster::with_finished_segments(&scratch, "pg", 1);
    let name = &cluster.wal_segments()[0];

    let out = push(&archive, &cluster, name);
    let code = out.exit_code();
    assert!((1..=125).contains(&code), "expected a refusal:\n{out}");
    assert_eq!(out.stderr_lines().len(), 1, "expected one line:\n{out}");
    for word in [
        env.key.email.as_str(),
        "GOOGLE_APPLICATION_CREDENTIALS",
        "did not accept",
    ] {
        assert!(out.stderr.contains(word), "expected {word:?}:\n{out}");
    }
    assert!(
        !out.stderr.contains("BEGIN") && !out.stderr.contains("eyJ"),
        "a key or token in the message:\n{out}"
    );
    assert_eq!(
        env.gcs.names(""),
        Vec::<String>::new(),
        "stored with a wrong key"
    );
    let (_, rejected, why) = env.proxy.stats();
    assert!(rejected > 0, "the proxy never refused a request");
    assert!(
        why.contains("signature"),
        "refused for another reason: {why}"
    );

    // The right key archives the same segment.
    let good = env.archive(&scratch, "wrong");
    push(&good, &cluster, name).ok();
    assert!(env.gcs.object(&format!("wrong/wal/{name}")).is_some());
    println!("wrong key: {}", out.stderr.trim());
}

/// PostgreSQL starts walship once per segment, and signing a token costs
/// each process an RSA signature in wasm: the host keeps the token the first
/// process signed (contract 0.1.1's `cache`), in a 0600 file only `postgres`
/// can read, for the next. Kept per configuration: a key file with another
/// key is never served the kept token. A kept token the service refuses is
/// replaced by a new signature.
#[test]
fn a_token_outlives_the_process_but_not_the_key() {
    let scratch = Scratch::new("gcs-token-cache");
    let env = Authenticated::start(&scratch);
    // One file per process: no push-ahead instances signing side by side.
    let archive = env
        .archive(&scratch, "tokens")
        .with_env("WALSHIP_UPLOAD_CONCURRENCY", "1");
    let cluster = Cluster::with_finished_segments(&scratch, "pg", 4);
    let names = cluster.wal_segments();
    let stored = |name: &str| env.gcs.object(&format!("tokens/wal/{name}")).is_some();

    push(&archive, &cluster, &names[0]).ok();
    assert_eq!(env.proxy.tokens(), 1);
    // A JWT's iat counts seconds: a token signed now would differ.
    thread::sleep(std::time::Duration::from_millis(1100));
    push(&archive, &cluster, &names[1]).ok();
    assert!(stored(&names[0]) && stored(&names[1]));
    assert_eq!(
        env.proxy.tokens(),
        1,
        "the second process signed a token of its own"
    );

    // What is kept: one private file owned by postgres, holding a token
    // but never the key.
    // (A directory per configuration, one file per value in it.)
    let values = scratch.path().join("walship-cache/values");
    let scopes: Vec<_> = std::fs::read_dir(&values)
        .unwrap_or_else(|e| panic!("{}: {e}", values.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(scopes.len(), 1, "{scopes:?}");
    let files: Vec<_> = std::fs::read_dir(&scopes[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&files[0]).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    for dir in [&values, &scopes[0]] {
        assert_eq!(std::fs::metadata(dir).unwrap().mode() & 0o777, 0o700);
    }
    assert_eq!(
        meta.uid(),
        std::fs::metadata(cluster.data_dir()).unwrap().uid(),
        "owned by postgres"
    );
    let kept = std::fs::read(&files[0]).unwrap();
    assert!(
        String::from_utf8_lossy(&kept).contains("eyJ"),
        "a JWT is kept"
    );
    assert!(!String::from_utf8_lossy(&kept).contains("PRIVATE KEY"));

    // The same account with another key (same cache directory): signs with
    // its own key, which the proxy refuses; the kept token is not used.
    let wrong = env.key.with_other_key(&scratch, "other");
    let wrong = env
        .proxy
        .archive(&scratch, "tokens", &wrong)
        .with_env("WALSHIP_UPLOAD_CONCURRENCY", "1");
    let out = push(&wrong, &cluster, &names[2]);
    assert!((1..=125).contains(&out.exit_code()), "{out}");
    assert!(!stored(&names[2]), "stored with another key's kept token");
    let (_, rejected_before, why) = env.proxy.stats();
    assert!(why.contains("signature"), "{why}");

    // A kept token that went bad (its signature garbled, same length): the
    // service refuses it once, the plugin signs a new one and the push
    // succeeds; the new token is what is kept now.
    let mut garbled = kept.clone();
    let n = garbled.len();
    garbled[n - 8..].copy_from_slice(b"AAAAAAAA");
    std::fs::write(&files[0], &garbled).unwrap();
    thread::sleep(std::time::Duration::from_millis(1100));
    push(&archive, &cluster, &names[2]).ok();
    assert!(stored(&names[2]));
    let (_, rejected, _) = env.proxy.stats();
    assert_eq!(
        rejected,
        rejected_before + 1,
        "the garbled token was sent once"
    );
    assert_eq!(env.proxy.tokens(), 2);
    assert_ne!(std::fs::read(&files[0]).unwrap(), garbled);
}

/// An object larger than one part (32 MiB) goes up in parts composed at the
/// end: while `st put` runs, a watcher reading fake-gcs-server sees the
/// object either absent or whole, never in part; the parts stay hidden
/// under `.walship-uploads/` (not listed) and are gone afterwards.
#[test]
fn large_object_goes_up_in_parts_never_half_visible() {
    let scratch = Scratch::new("gcs-large");
    let env = Authenticated::start(&scratch);
    let archive = env.archive(&scratch, "large");
    let data = random_bytes(80 * MIB + 4321, 0x6c5);
    let file = scratch.postgres_file("big.bin", &data);

    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = Arc::clone(&done);
        let port = env.gcs.port();
        thread::spawn(move || watch(port, &done))
    };
    let put = archive
        .walship()
        .args(["st", "put", "big/object"])
        .arg(&file)
        .run()
        .ok();
    done.store(true, Ordering::SeqCst);
    let (sizes_seen, most_parts) = watcher.join().expect("watcher");

    assert!(
        sizes_seen.iter().all(|&n| n == data.len()),
        "a partial object was visible: sizes {sizes_seen:?}"
    );
    assert!(
        most_parts >= 2,
        "expected the upload in several parts, saw at most {most_parts} under {UPLOADS}"
    );
    let stored = env.gcs.object("large/big/object").expect("stored");
    assert!(
        stored == data,
        "fake-gcs-server holds {} bytes, not the {} put",
        stored.len(),
        data.len()
    );
    assert_eq!(
        env.gcs.names(&format!("large/{UPLOADS}")),
        Vec::<String>::new(),
        "parts left behind"
    );
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
    println!(
        "80 MiB: put {:.1?} ({} parts seen at once), get {:.1?}",
        put.elapsed, most_parts, get.elapsed
    );
}

/// Polls fake-gcs-server until `done`: the sizes under which
/// `large/big/object` was seen, and the most parts seen at once.
fn watch(port: u16, done: &AtomicBool) -> (Vec<usize>, usize) {
    let gcs = walship_e2e::emulators::gcs::Peek::new(port, FakeGcs::BUCKET);
    let mut sizes = Vec::new();
    let mut most_parts = 0;
    while !done.load(Ordering::SeqCst) {
        if let Some(size) = gcs.size("large/big/object") {
            sizes.push(size);
        }
        most_parts = most_parts.max(gcs.count(&format!("large/{UPLOADS}")));
        thread::sleep(std::time::Duration::from_millis(20));
    }
    (sizes, most_parts)
}

/// More keys than one listing page (1,000) are all listed, in order; a delete
/// of more keys than one call takes removes them all.
#[test]
fn listing_across_pages_and_deleting_many() {
    let scratch = Scratch::new("gcs-many");
    let gcs = FakeGcs::start(&scratch);
    let archive = gcs.archive(&scratch, "many");
    let keys: Vec<String> = (0..1005).map(|i| format!("objects/obj-{i:04}")).collect();
    for (i, key) in keys.iter().enumerate() {
        gcs.put_object(&format!("many/{key}"), i.to_string().as_bytes());
    }

    assert_eq!(
        archive.list("objects/"),
        keys,
        "`walship st ls` after 1,005 objects"
    );
    assert_eq!(archive.list("").len(), 1005);

    let (doomed, kept) = keys.split_at(1003);
    archive.walship().args(["st", "rm"]).args(doomed).run().ok();
    let left: Vec<String> = gcs
        .names("many/")
        .into_iter()
        .map(|k| k.strip_prefix("many/").expect("under many/").to_string())
        .collect();
    assert_eq!(left, kept, "st rm of 1,003 keys left other objects");
    assert_eq!(archive.list("objects/"), kept);
}

/// Create-only: the same segment twice is fine and leaves the object alone
/// (same generation); other content under the taken name exits 1 and the
/// archived object is unchanged.
#[test]
fn create_only_holds() {
    let scratch = Scratch::new("gcs-create-only");
    let gcs = FakeGcs::start(&scratch);
    let cluster = Cluster::with_finished_segments(&scratch, "pg", 2);
    let name = &cluster.wal_segments()[0];
    let archive = gcs.archive(&scratch, "create-only");
    let object = format!("create-only/wal/{name}");
    let peek = walship_e2e::emulators::gcs::Peek::new(gcs.port(), FakeGcs::BUCKET);

    push(&archive, &cluster, name).ok();
    let stored = gcs.object(&object).expect("stored");
    assert!(stored.starts_with(OBJECT_MAGIC));
    let generation = peek.generation(&object).expect("a generation");

    let again = push(&archive, &cluster, name);
    assert_eq!(
        again.exit_code(),
        0,
        "re-push of identical content must succeed:\n{again}"
    );
    assert_eq!(
        peek.generation(&object),
        Some(generation.clone()),
        "re-push rewrote the object"
    );

    let mut bytes = segment_bytes(&cluster, name);
    let mid = bytes.len() / 2 + 100;
    bytes[mid] ^= 0x01;
    let impostor = scratch.postgres_file(&format!("impostor/{name}"), &bytes);
    let out = archive
        .walship()
        .cwd(cluster.data_dir())
        .arg("wal-push")
        .arg(&impostor)
        .run();
    assert_eq!(
        out.exit_code(),
        1,
        "different content under a taken name:\n{out}"
    );
    assert!(out.stderr.to_lowercase().contains("differ"), "{out}");
    assert_eq!(
        gcs.object(&object),
        Some(stored),
        "the archived copy changed"
    );
    assert_eq!(
        peek.generation(&object),
        Some(generation),
        "the object was rewritten"
    );
    println!("create-only: {}", out.stderr.trim());
}

/// The stand-ins start, answer and stop: fake-gcs-server's log has no error,
/// and the proxy refuses an unsigned request.
#[test]
fn stand_ins_start_and_refuse_unsigned_requests() {
    let scratch = Scratch::new("gcs-stand-ins");
    let env = Authenticated::start(&scratch);
    let peek = walship_e2e::emulators::gcs::Peek::new(env.proxy.port(), FakeGcs::BUCKET);
    assert_eq!(peek.status("/storage/v1/b/walship/o"), 401);
    let (accepted, rejected, why) = env.proxy.stats();
    assert_eq!((accepted, rejected), (0, 1));
    assert_eq!(why, "no bearer token");
    assert!(!env.gcs.log().contains("level=error"), "{}", env.gcs.log());
}

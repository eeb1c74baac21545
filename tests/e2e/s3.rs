//! The S3 backend (`plugins/s3`) against real local S3 servers the tests
//! start themselves (`walship_e2e::emulators`):
//!
//! - s3s-fs checks every request's SigV4 signature and payload hash and
//!   stores objects as plain files, so what walship stored is checked on disk,
//!   not only through walship;
//! - moto, with IAM auth on, issues temporary credentials (STS AssumeRole and
//!   AssumeRoleWithWebIdentity) and checks them, session token included;
//! - stunnel puts TLS with a test CA in front of s3s-fs.
//!
//! Every command runs as `postgres`, as PostgreSQL runs it. Exit codes are
//! PostgreSQL's contract (see wal_commands.rs): wal-push 0 = stored, 1..=125
//! = not stored.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use walship_e2e::by_hand::{assert_refused_with_one_line, fetch, push, read, segment_bytes};
use walship_e2e::emulators::{Moto, S3Access, S3sFs, Stunnel};
use walship_e2e::pg::{WAIT_TIMEOUT, free_port};
use walship_e2e::pitr::{MIN_SEGMENTS, archive_and_recover};
use walship_e2e::scratch::set_mode;
use walship_e2e::walship::{OBJECT_HEADER_LEN, OBJECT_MAGIC};
use walship_e2e::{Archive, Cluster, Outcome, Run, Scratch, WalshipArchive, random_bytes};

const MIB: usize = 1024 * 1024;

#[track_caller]
fn assert_mentions(out: &Outcome, text: &str) {
    assert!(
        out.stderr.to_lowercase().contains(&text.to_lowercase()),
        "expected stderr to mention {text:?}:\n{out}"
    );
}

/// The whole archive-and-recover scenario of the file backend, through S3,
/// then what s3s-fs has on disk: identity.toml, one walship object per WAL
/// file, exactly what `walship st ls` lists, and no upload left over.
#[test]
fn pitr_through_s3s_fs() {
    let scratch = Scratch::new("s3-pitr");
    let s3 = S3sFs::start(&scratch);
    let archive = s3.archive(&scratch, "pitr/cluster-a");
    let report = archive_and_recover(&scratch, &archive);

    assert!(
        s3.object_file("pitr/cluster-a/identity.toml").is_file(),
        "no identity.toml in s3s-fs: {:?}",
        s3.stored_keys("")
    );
    let on_disk: BTreeSet<String> = s3
        .stored_keys("pitr/cluster-a/wal")
        .into_iter()
        .map(|k| {
            k.strip_prefix("pitr/cluster-a/")
                .expect("under the path")
                .to_string()
        })
        .collect();
    let listed: BTreeSet<String> = archive.list("wal/").into_iter().collect();
    assert_eq!(
        listed, on_disk,
        "`walship st ls wal/` disagrees with s3s-fs's files"
    );
    assert!(
        on_disk.len() as u64 >= MIN_SEGMENTS,
        "{} objects",
        on_disk.len()
    );
    for name in &report.switched {
        let path = s3.object_file(&format!("pitr/cluster-a/wal/{name}"));
        let bytes = read(&path);
        assert!(
            bytes.len() > OBJECT_HEADER_LEN && bytes.starts_with(OBJECT_MAGIC),
            "{} is not a walship object ({} bytes)",
            path.display(),
            bytes.len()
        );
    }
    assert_eq!(
        s3.upload_leftovers(),
        Vec::<String>::new(),
        "uploads left behind"
    );
    println!(
        "archived {} files through S3 up to {}; recovered to {} ({:?}) and to the end ({:?})",
        report.archiver.archived_count,
        report.last_segment,
        report.target_time,
        report.at_target,
        report.at_end
    );
}

/// Same segment twice: exit 0, object untouched (same file, not rewritten).
/// Other content under the taken name: exit 1, object byte-identical.
fn create_only(label: &str, if_none_match: Option<&str>) {
    let scratch = Scratch::new(label);
    let s3 = S3sFs::start(&scratch);
    let cluster = Cluster::with_finished_segments(&scratch, "pg", 2);
    let name = &cluster.wal_segments()[0];
    let mut archive = s3.archive(&scratch, "create-only");
    if let Some(mode) = if_none_match {
        archive = archive.with_env("WALSHIP_S3_IF_NONE_MATCH", mode);
    }
    let object = s3.object_file(&format!("create-only/wal/{name}"));

    push(&archive, &cluster, name).ok();
    let key = format!("create-only/wal/{name}");
    let puts = s3.put_requests(&key);
    assert_eq!(puts.len(), 1, "one PutObject wrote {key}: {puts:#?}");
    // enforced: the store itself must reject a second create. (unverified
    // may send the header too; it just does not rely on it.)
    if if_none_match == Some("enforced") {
        assert!(
            puts[0].contains("if_none_match: Any"),
            "no If-None-Match: * with WALSHIP_S3_IF_NONE_MATCH=enforced: {}",
            puts[0]
        );
    }
    let stored = read(&object);
    assert!(
        stored.starts_with(OBJECT_MAGIC),
        "object does not start with the magic"
    );
    let inode = fs::metadata(&object).expect("object").ino();

    let again = push(&archive, &cluster, name);
    assert_eq!(
        again.exit_code(),
        0,
        "re-push of identical content must succeed:\n{again}"
    );
    assert_eq!(read(&object), stored, "re-push changed the stored object");
    // s3s-fs writes a new file and renames it over the old one: the same
    // inode means the object was not written again.
    assert_eq!(
        fs::metadata(&object).expect("object").ino(),
        inode,
        "re-push rewrote the object"
    );
    assert_eq!(
        fetch(&archive, &cluster, &scratch, name),
        segment_bytes(&cluster, name)
    );

    // Same name, one byte changed mid-segment.
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
    assert_mentions(&out, "differ");
    assert_eq!(read(&object), stored, "the archived copy changed");
    assert_eq!(
        fs::metadata(&object).expect("object").ino(),
        inode,
        "the object was rewritten"
    );
    assert_eq!(
        fetch(&archive, &cluster, &scratch, name),
        segment_bytes(&cluster, name)
    );
    println!("{label}: {}", out.stderr.trim());
}

/// A custom endpoint defaults to `unverified`: the host looks before it
/// writes and reads back after.
#[test]
fn create_only_unverified_default() {
    create_only("s3-create-unver", None);
}

/// `enforced`: the PUT carries If-None-Match: * (s3s-fs answers 412).
#[test]
fn create_only_enforced() {
    create_only("s3-create-enf", Some("enforced"));
}

/// A wrong secret key: one line naming the signature problem, nothing
/// stored, and PostgreSQL's archiver keeps the segment until the key is
/// fixed; then it archives it and it fetches back.
#[test]
fn wrong_secret_is_refused_until_fixed() {
    let scratch = Scratch::new("s3-wrong-secret");
    let s3 = S3sFs::start(&scratch);
    let good = s3.archive(&scratch, "auth");
    let bad = good.clone().with_env(
        "AWS_SECRET_ACCESS_KEY",
        "wrongsecretkey/0123456789abcdefghijklm",
    );

    let mut cluster = Cluster::init(&scratch, "pg");
    cluster.set("wal_keep_size", "1GB").archive_to(&bad, "on");
    cluster.start();
    cluster.psql("create table t (x int); insert into t select generate_series(1, 1000)");
    let segment = cluster.switch_wal();

    let out = push(&bad, &cluster, &segment);
    assert_refused_with_one_line(&out, &["secret"]);
    println!("wrong secret: {}", out.stderr.trim());

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
        s3.stored_keys(""),
        Vec::<String>::new(),
        "stored with a wrong key"
    );

    // The fix an operator makes: ALTER SYSTEM (postgresql.auto.conf wins
    // over the harness's settings file) and a reload, which wakes the archiver.
    cluster.psql(&format!(
        "alter system set archive_command = '{}'",
        good.archive_command().replace('\'', "''")
    ));
    cluster.psql("select pg_reload_conf()");
    let stats = cluster.wait_archived(&segment, WAIT_TIMEOUT);
    assert!(stats.failed_count > 0, "{stats:?}");
    assert!(
        s3.object_file(&format!("auth/wal/{segment}")).is_file(),
        "{:?}",
        s3.stored_keys("")
    );
    assert_eq!(
        fetch(&good, &cluster, &scratch, &segment),
        segment_bytes(&cluster, &segment)
    );
    println!("after the fix: {stats:?}");
}

/// `WALSHIP_ALLOW_HOSTS` without the endpoint: refused before anything is
/// sent, with a message naming the endpoint and the setting. With the
/// endpoint in the list, the same push works.
#[test]
fn endpoint_outside_allow_hosts_is_refused() {
    let scratch = Scratch::new("s3-allow-hosts");
    let s3 = S3sFs::start(&scratch);
    let cluster = Cluster::with_finished_segments(&scratch, "pg", 1);
    let name = &cluster.wal_segments()[0];
    let elsewhere = format!("127.0.0.1:{}", free_port());
    let endpoint = s3.access().host_port();

    let archive = s3
        .archive(&scratch, "allow")
        .with_env("WALSHIP_ALLOW_HOSTS", &elsewhere);
    let out = push(&archive, &cluster, name);
    let code = out.exit_code();
    assert!((1..=125).contains(&code), "expected a refusal:\n{out}");
    assert_mentions(&out, &endpoint);
    assert_mentions(&out, "WALSHIP_ALLOW_HOSTS");
    assert_eq!(
        s3.stored_keys(""),
        Vec::<String>::new(),
        "stored although refused"
    );
    println!("refused: {}", out.stderr.trim());

    let allowed = archive.with_env("WALSHIP_ALLOW_HOSTS", format!("{elsewhere},{endpoint}"));
    push(&allowed, &cluster, name).ok();
    assert!(s3.object_file(&format!("allow/wal/{name}")).is_file());
}

/// An object larger than one part (32 MiB): uploaded in parts, stored
/// whole, read back byte for byte, and no upload state left in s3s-fs.
#[test]
fn large_object_goes_up_in_parts() {
    let scratch = Scratch::new("s3-large");
    let s3 = S3sFs::start(&scratch);
    let archive = s3.archive(&scratch, "large");
    let data = random_bytes(80 * MIB + 4321, 0x5eed);
    let file = scratch.postgres_file("big.bin", &data);

    let put = archive
        .walship()
        .args(["st", "put", "big/object"])
        .arg(&file)
        .run()
        .ok();
    let stored = read(&s3.object_file("large/big/object"));
    assert!(
        stored == data,
        "s3s-fs holds {} bytes, not the {} put",
        stored.len(),
        data.len()
    );
    let etag = s3.recorded_etag("large/big/object");
    assert!(
        etag.as_deref().is_some_and(|e| e.ends_with("-3")),
        "expected a 3-part upload (80 MiB in 32 MiB parts), s3s-fs recorded ETag {etag:?}"
    );
    assert_eq!(
        s3.upload_leftovers(),
        Vec::<String>::new(),
        "upload state left behind"
    );

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
        "80 MiB: put {:.1?}, get {:.1?}, ETag {}",
        put.elapsed,
        get.elapsed,
        etag.unwrap_or_default()
    );
}

/// More keys than one ListObjectsV2 page (1,000) are all listed; deleting
/// more than one DeleteObjects request holds removes them all.
#[test]
fn listing_past_a_page_and_batch_delete() {
    let scratch = Scratch::new("s3-many");
    let s3 = S3sFs::start(&scratch);
    let archive = s3.archive(&scratch, "many");
    // Written as files: s3s-fs serves whatever is in the bucket directory.
    let dir = s3.object_file("many/objects");
    fs::create_dir_all(&dir).expect("create objects dir");
    let keys: Vec<String> = (0..1005).map(|i| format!("objects/obj-{i:04}")).collect();
    for (i, key) in keys.iter().enumerate() {
        fs::write(s3.object_file(&format!("many/{key}")), i.to_string()).expect("write object");
    }

    assert_eq!(
        archive.list("objects/"),
        keys,
        "`walship st ls` after 1,005 objects"
    );
    assert_eq!(archive.list("").len(), 1005);

    let (doomed, kept) = keys.split_at(1003);
    archive.walship().args(["st", "rm"]).args(doomed).run().ok();
    let on_disk: Vec<String> = s3
        .stored_keys("many/objects")
        .into_iter()
        .map(|k| k.strip_prefix("many/").expect("under many/").to_string())
        .collect();
    assert_eq!(on_disk, kept, "st rm of 1,003 keys left other files");
    assert_eq!(archive.list("objects/"), kept);
}

/// Temporary credentials from moto's STS: the session token is sent and
/// checked (without it, or with another one, moto refuses). A wrong secret
/// of a long-term key is refused too.
#[test]
fn session_token_and_wrong_secret_on_moto() {
    let scratch = Scratch::new("s3-moto-session");
    let moto = Moto::start(&scratch);
    let cluster = Cluster::with_finished_segments(&scratch, "pg", 3);
    let segments = cluster.wal_segments();

    let temporary = moto.assume_role();
    assert!(temporary.access_key_id.starts_with("ASIA"), "{temporary:?}");
    let archive = temporary.archive(&scratch, Moto::BUCKET, "session");
    push(&archive, &cluster, &segments[0]).ok();
    assert_eq!(
        fetch(&archive, &cluster, &scratch, &segments[0]),
        segment_bytes(&cluster, &segments[0])
    );

    let no_token = S3Access {
        session_token: None,
        ..temporary.clone()
    }
    .archive(&scratch, Moto::BUCKET, "session");
    let out = push(&no_token, &cluster, &segments[1]);
    assert!(
        (1..=125).contains(&out.exit_code()),
        "pushed without the session token:\n{out}"
    );
    let other_token = archive
        .clone()
        .with_env("AWS_SESSION_TOKEN", "FQoGZXIvYXdzEOtherToken");
    let out = push(&other_token, &cluster, &segments[1]);
    assert!(
        (1..=125).contains(&out.exit_code()),
        "pushed with another session token:\n{out}"
    );
    println!("other session token: {}", out.stderr.trim());

    let wrong_secret = moto.archive(&scratch, "session").with_env(
        "AWS_SECRET_ACCESS_KEY",
        "wrongsecretkey/0123456789abcdefghijklm",
    );
    let out = push(&wrong_secret, &cluster, &segments[1]);
    assert_refused_with_one_line(&out, &["secret"]);
    println!("wrong secret on moto: {}", out.stderr.trim());

    // The long-term key itself works, and sees exactly the one segment.
    let user = moto.archive(&scratch, "session");
    assert_eq!(user.stored_wal_files(), vec![segments[0].clone()]);
}

/// Web identity: no keys at all, only AWS_ROLE_ARN and a token file (which
/// `postgres` can read, nobody else); walship exchanges the token at moto's
/// STS for credentials that moto then checks. Through PostgreSQL's
/// archive_command, and fetched back.
#[test]
fn web_identity_on_moto_through_postgres() {
    let scratch = Scratch::new("s3-moto-webid");
    let moto = Moto::start(&scratch);
    // A JWT-shaped token; moto does not verify it.
    let token = scratch.postgres_file(
        "web-identity/token",
        b"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6d2Fsc2hpcCJ9.c2lnbmF0dXJl",
    );
    set_mode(&token, 0o600);
    let archive = WalshipArchive::new(&scratch, format!("s3://{}/web-identity", Moto::BUCKET))
        .with_env("AWS_ENDPOINT_URL", moto.endpoint())
        .with_env("AWS_REGION", "us-east-1")
        .with_env("AWS_S3_FORCE_PATH_STYLE", "true")
        .with_env("AWS_ROLE_ARN", Moto::ROLE_ARN)
        .with_env("AWS_WEB_IDENTITY_TOKEN_FILE", token.display().to_string());

    let mut cluster = Cluster::init(&scratch, "pg");
    cluster
        .set("wal_keep_size", "1GB")
        .archive_to(&archive, "on");
    cluster.start();
    cluster.psql("create table t (x int); insert into t select generate_series(1, 1000)");
    let segment = cluster.switch_wal();
    let stats = cluster.wait_archived(&segment, WAIT_TIMEOUT);
    assert_eq!(
        stats.failed_count, 0,
        "archive_command failed with web identity: {stats:?}"
    );
    assert!(archive.stored_wal_files().contains(&segment));
    assert_eq!(
        fetch(&archive, &cluster, &scratch, &segment),
        segment_bytes(&cluster, &segment)
    );
    assert!(
        moto.log().contains("POST / "),
        "no STS call in moto's log:\n{}",
        moto.log()
    );
}

/// https with a certificate from a private CA: refused with one line about
/// the certificate unless WALG_S3_CA_CERT_FILE names the CA; then push and
/// fetch work through the TLS front.
#[test]
fn tls_with_a_custom_ca() {
    let scratch = Scratch::new("s3-tls");
    let s3 = S3sFs::start(&scratch);
    let tls = Stunnel::start(&scratch, s3.port());
    let cluster = Cluster::with_finished_segments(&scratch, "pg", 1);
    let name = &cluster.wal_segments()[0];
    let archive = s3
        .access()
        .at(tls.endpoint())
        .archive(&scratch, S3sFs::BUCKET, "tls");

    let out = push(&archive, &cluster, name);
    assert_refused_with_one_line(&out, &["certificate", "not trusted"]);
    assert_eq!(
        s3.stored_keys(""),
        Vec::<String>::new(),
        "stored over unverified TLS"
    );
    println!("without the CA: {}", out.stderr.trim());

    let trusted = archive.with_env("WALG_S3_CA_CERT_FILE", tls.ca_file().display().to_string());
    push(&trusted, &cluster, name).ok();
    assert!(
        s3.object_file(&format!("tls/wal/{name}")).is_file(),
        "{:?}",
        s3.stored_keys("")
    );
    assert_eq!(
        fetch(&trusted, &cluster, &scratch, name),
        segment_bytes(&cluster, name)
    );
}

/// The stand-ins themselves: each starts, answers, and is gone after drop
/// (so a failure elsewhere is walship's, not the harness's). Needs no walship.
#[test]
fn stand_ins_start_and_stop() {
    let scratch = Scratch::new("s3-stand-ins");
    let port;
    {
        let s3 = S3sFs::start(&scratch);
        let tls = Stunnel::start(&scratch, s3.port());
        port = s3.port();
        // The CA verifies the front's certificate for localhost, and s3s-fs
        // answers through it (403 to an unsigned request).
        let ca = tls.ca_file().display().to_string();
        let through_tls = Run::new("sh")
            .args([
                "-c",
                &format!(
                    "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | openssl s_client -quiet \\
                     -connect 127.0.0.1:{} -servername localhost -verify_hostname localhost \\
                     -CAfile {ca} -verify_return_error",
                    tls.port()
                ),
            ])
            .run()
            .ok();
        assert!(through_tls.stdout.starts_with("HTTP/1."), "{through_tls}");
        let moto = Moto::start(&scratch);
        let temporary = moto.assume_role();
        assert!(temporary.session_token.is_some());
    }
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "s3s-fs still listens on {port} after drop"
    );
}

/// Restores through a flaky network: a proxy in front of s3s-fs answers
/// half the connections with a 503, drops them, or cuts them after a random
/// number of response bytes (bodies that end early), and stalls some. Outside standby mode a wal-fetch that gives up ends recovery
/// (exit 126 by design), so transient faults must be retried until the
/// command's deadline: two full recoveries must both reach the end, with
/// faults seen on the way.
#[test]
fn recovery_survives_a_flaky_network() {
    use walship_e2e::fault_proxy::FaultProxy;
    let scratch = Scratch::new("s3-flaky");
    let s3 = S3sFs::start(&scratch);
    let archive = s3.archive(&scratch, "flaky/cluster");
    let mut primary = Cluster::init(&scratch, "primary");
    primary.archive_to(&archive, "on");
    primary.start();
    primary.pgbench(&["-i", "-s", "1", "-q"]);
    let backup = primary.basebackup("base", &["--wal-method=none"]);
    let mut last = String::new();
    for _ in 0..20 {
        primary.pgbench(&["-n", "-c", "2", "-t", "100"]);
        last = primary.switch_wal();
    }
    let expected = primary.psql("select count(*), sum(delta) from pgbench_history");
    primary.wait_archived(&last, Duration::from_secs(300));
    primary.stop();

    // Half the connections fail: a 503, a drop, or a response cut
    // anywhere in its first 64 KiB (headers or body).
    let proxy = FaultProxy::start(
        format!("127.0.0.1:{}", s3.port()).parse().unwrap(),
        50,
        64 << 10,
    );
    let flaky = archive
        .clone()
        .with_env("AWS_ENDPOINT_URL", proxy.endpoint());
    for round in 1..=2 {
        let mut c = Cluster::from_backup(&scratch, &format!("restored-{round}"), &backup);
        c.restore_from(&flaky);
        c.touch("recovery.signal");
        c.start();
        c.wait_out_of_recovery();
        assert_eq!(
            c.psql("select count(*), sum(delta) from pgbench_history"),
            expected,
            "round {round}: recovery ended early"
        );
        c.stop();
    }
    let counts = &proxy.counts;
    println!("fault proxy: {counts:?}");
    assert!(
        counts.faults() >= 5 && counts.cut.load(std::sync::atomic::Ordering::Relaxed) >= 1,
        "the proxy should have injected faults of every kind: {counts:?}"
    );
}

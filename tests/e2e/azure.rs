//! The Azure Blob backend (`plugins/azure`) against Azurite, which the tests
//! start themselves (`walship_e2e::emulators::azure`). Azurite checks
//! SharedKey and SAS signatures and SAS permissions; what walship stored is
//! read back with the account key by a separate client (`azure_tool.py`),
//! not only through walship.
//!
//! Every command runs as `postgres`, as PostgreSQL runs it. Exit codes are
//! PostgreSQL's contract (see wal_commands.rs): wal-push 0 = stored, 1..=125
//! = not stored.

use std::collections::BTreeSet;

use walship_e2e::by_hand::{assert_refused_with_one_line, fetch, push, read, segment_bytes};
use walship_e2e::emulators::azure::Azurite;
use walship_e2e::pitr::{MIN_SEGMENTS, archive_and_recover};
use walship_e2e::walship::{OBJECT_HEADER_LEN, OBJECT_MAGIC};
use walship_e2e::{Cluster, Scratch, Walship, random_bytes};

const MIB: usize = 1024 * 1024;

/// The whole archive-and-recover scenario through Azure, configured by a
/// connection string (account, key, BlobEndpoint), then what Azurite holds:
/// identity.toml, one walship object per WAL file, exactly what
/// `walship st ls` lists.
#[test]
fn pitr_through_azurite_with_a_connection_string() {
    let scratch = Scratch::new("azure-pitr");
    let azure = Azurite::start(&scratch);
    let archive = azure.archive(&scratch, "pitr/cluster-a", azure.connection_string_env());
    let report = archive_and_recover(&scratch, &archive);

    let stored = azure.stored_names("pitr/cluster-a/");
    assert!(
        stored.iter().any(|n| n == "pitr/cluster-a/identity.toml"),
        "no identity.toml in Azurite: {stored:?}"
    );
    let in_azurite: BTreeSet<String> = azure
        .stored_names("pitr/cluster-a/wal/")
        .into_iter()
        .map(|n| n["pitr/cluster-a/".len()..].to_string())
        .collect();
    let listed: BTreeSet<String> = archive.list("wal/").into_iter().collect();
    assert_eq!(
        listed, in_azurite,
        "`walship st ls wal/` disagrees with Azurite's listing"
    );
    assert!(
        in_azurite.len() as u64 >= MIN_SEGMENTS,
        "{} objects",
        in_azurite.len()
    );
    for name in report.switched.iter().take(3) {
        let bytes = azure.blob(&format!("pitr/cluster-a/wal/{name}"));
        assert!(
            bytes.len() > OBJECT_HEADER_LEN && bytes.starts_with(OBJECT_MAGIC),
            "{name} is not a walship object ({} bytes)",
            bytes.len()
        );
    }
    println!(
        "archived {} files through Azure up to {}; recovered to {} ({:?}) and to the end ({:?})",
        report.archiver.archived_count,
        report.last_segment,
        report.target_time,
        report.at_target,
        report.at_end
    );
}

/// `walship plugin test azure` (the conformance suite) passes every check
/// the plugin claims, wrong credentials included.
#[test]
fn the_conformance_suite_passes() {
    let scratch = Scratch::new("azure-conformance");
    let azure = Azurite::start(&scratch);
    let outcome = Walship::new()
        .arg("--prefix")
        .arg(format!("azure://{}/conformance", Azurite::CONTAINER))
        .arg("--cache-dir")
        .arg(scratch.dir("cache"))
        .envs(azure.shared_key_env())
        .args(["plugin", "test", "azure", "--format", "json"])
        .run();
    let report = outcome.out().to_string();
    assert!(outcome.success(), "{outcome}");
    assert!(report.contains("\"failed\":0"), "{report}");
    for check in [
        "put/get: 16 MiB",
        "create-only: of concurrent creates of one key exactly one wins",
        "ranged get: middle, to the end, past the end",
        "list: pages hold every key once, in byte order, none skipped",
        "multipart: parts assemble in order",
        "multipart: an aborted upload leaves nothing visible",
        "multipart: a create-only complete refuses a taken key",
        "errors: wrong credentials are unauthenticated",
        "sandbox: without its grants the plugin reaches nothing",
    ] {
        let entry = report
            .find(&format!("\"check\":\"{check}\""))
            .map(|at| &report[at..])
            .unwrap_or_else(|| panic!("{check:?} is not in the report: {report}"));
        let entry = &entry[..entry.find('}').unwrap_or(entry.len())];
        assert!(entry.contains("\"outcome\":\"passed\""), "{entry}");
    }
    // The suite leaves nothing behind.
    assert_eq!(azure.stored_names("conformance/"), Vec::<String>::new());
}

/// A wrong account key (WAL-G's settings, WAL-G's prefix variable): exit
/// non-zero with one line naming the key setting, and nothing archived.
#[test]
fn a_wrong_account_key_is_refused_and_stores_nothing() {
    let scratch = Scratch::new("azure-wrong-key");
    let azure = Azurite::start(&scratch);
    let cluster = Cluster::with_finished_segments(&scratch, "pg", 1);
    let name = &cluster.wal_segments()[0];
    let cache = scratch.postgres_dir("walship-cache", 0o700);
    // Valid base64 of 64 bytes, not the account's key.
    let wrong =
        "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXkhIQ==";
    let out = Walship::new()
        .env(
            "WALG_AZ_PREFIX",
            format!("azure://{}/auth", Azurite::CONTAINER),
        )
        .env("WALSHIP_CACHE_DIR", cache.display().to_string())
        .envs(azure.shared_key_env())
        .env("AZURE_STORAGE_ACCESS_KEY", wrong)
        .as_postgres()
        .cwd(cluster.data_dir())
        .args(["wal-push", &format!("pg_wal/{name}")])
        .run();
    assert_refused_with_one_line(&out, &["AZURE_STORAGE_ACCESS_KEY", "devstoreaccount1"]);
    assert!(
        !out.stderr.contains(wrong),
        "the key is in the message:\n{out}"
    );
    assert_eq!(
        azure.stored_names(""),
        Vec::<String>::new(),
        "stored with a wrong key"
    );
    println!("wrong key: {}", out.stderr.trim());
}

/// A read-only SAS token (sp=rl): wal-push is refused with a message naming
/// the missing permission and stores nothing; wal-fetch of a segment
/// archived earlier (with the account key) works.
#[test]
fn a_read_only_sas_fetches_but_cannot_push() {
    let scratch = Scratch::new("azure-sas");
    let azure = Azurite::start(&scratch);
    let cluster = Cluster::with_finished_segments(&scratch, "pg", 2);
    let segments = cluster.wal_segments();
    let (first, second) = (&segments[0], &segments[1]);
    let writer = azure.archive(&scratch, "sas", azure.shared_key_env());
    push(&writer, &cluster, first).ok();
    let before = azure.stored_names("");

    let reader = azure.archive(&scratch, "sas", azure.sas_env("rl"));
    let out = push(&reader, &cluster, second);
    assert_refused_with_one_line(&out, &["permission", "sp=rl", "AZURE_STORAGE_SAS_TOKEN"]);
    assert_eq!(
        azure.stored_names(""),
        before,
        "a read-only SAS stored something"
    );
    println!("read-only SAS: {}", out.stderr.trim());

    assert!(
        fetch(&reader, &cluster, &scratch, first) == segment_bytes(&cluster, first),
        "wal-fetch with the read-only SAS returned other bytes"
    );
}

/// The connection string names the endpoint (PITR above needs nothing
/// else); the operator's allowlist still bounds it: with
/// `WALSHIP_ALLOW_HOSTS` naming another host, the push is refused before any
/// request, in one line that names the endpoint and the setting.
#[test]
fn an_allowlist_bounds_the_endpoint_a_connection_string_names() {
    let scratch = Scratch::new("azure-cs-allowlist");
    let azure = Azurite::start(&scratch);
    let cluster = Cluster::with_finished_segments(&scratch, "pg", 1);
    let name = &cluster.wal_segments()[0];
    let mut env = azure.connection_string_env();
    env.push(("WALSHIP_ALLOW_HOSTS".into(), "blob.example".into()));
    let archive = azure.archive(&scratch, "cs-allowlist", env);
    let out = push(&archive, &cluster, name);
    assert_refused_with_one_line(&out, &["WALSHIP_ALLOW_HOSTS", "127.0.0.1"]);
    assert!(
        !out.stderr.contains(Azurite::KEY),
        "the key is in the message:\n{out}"
    );
    assert_eq!(azure.stored_names(""), Vec::<String>::new());
    println!(
        "connection string, other host allowed: {}",
        out.stderr.trim()
    );
}

/// An object larger than one part (32 MiB) goes up as blocks committed by
/// one block list: stored whole (three committed blocks), read back byte for
/// byte, and while it went up, every look (Get Block List, List Blobs)
/// found it absent or whole.
#[test]
fn a_large_object_goes_up_in_blocks_and_appears_whole() {
    let scratch = Scratch::new("azure-large");
    let azure = Azurite::start(&scratch);
    let archive = azure.archive(&scratch, "large", azure.shared_key_env());
    let data = random_bytes(80 * MIB + 4321, 0x5eed);
    let file = scratch.postgres_file("big.bin", &data);
    let blob = "large/big/object";

    // A watcher looks at the blob as fast as it can while walship uploads.
    let watcher = {
        let azure = &azure;
        let size = data.len() as u64;
        std::thread::scope(|threads| {
            let watcher = threads.spawn(move || azure.watch(blob, size, 110));
            let put = archive
                .walship()
                .args(["st", "put", "big/object"])
                .arg(&file)
                .run()
                .ok();
            (put, watcher.join().expect("watcher thread"))
        })
    };
    let (put, watched) = watcher;
    assert!(
        watched.half_sizes.is_empty(),
        "a half object was listed (sizes {:?} of {} bytes)",
        watched.half_sizes,
        data.len()
    );
    assert!(
        watched.complete,
        "the watcher never saw the whole object: {watched:?}"
    );
    println!(
        "{} looks during the upload; {} found blocks uploaded but no blob",
        watched.looks, watched.unlisted_with_blocks
    );

    assert_eq!(
        azure.stored("large/"),
        vec![(blob.to_string(), data.len() as u64)]
    );
    assert!(azure.blob(blob) == data, "Azurite holds other bytes");
    assert_eq!(
        azure.blocks(blob),
        Some((3, 0)),
        "expected 3 committed blocks (80 MiB in 32 MiB parts), none left uncommitted"
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
    println!("80 MiB: put {:.1?}, get {:.1?}", put.elapsed, get.elapsed);
}

/// More blobs than one List Blobs page (1,000 per call) are all listed, in
/// order; `st rm` of most of them leaves exactly the rest.
#[test]
fn listing_past_a_page_and_deleting_many() {
    let scratch = Scratch::new("azure-many");
    let azure = Azurite::start(&scratch);
    let archive = azure.archive(&scratch, "many", azure.shared_key_env());
    azure.put_many("many/objects/obj-", 1005);
    let keys: Vec<String> = (0..1005).map(|i| format!("objects/obj-{i:04}")).collect();

    assert_eq!(
        archive.list("objects/"),
        keys,
        "`walship st ls` after 1,005 blobs"
    );

    let (doomed, kept) = keys.split_at(1003);
    archive.walship().args(["st", "rm"]).args(doomed).run().ok();
    let left: Vec<String> = azure
        .stored_names("many/")
        .into_iter()
        .map(|n| n["many/".len()..].to_string())
        .collect();
    assert_eq!(left, kept, "st rm of 1,003 keys left other blobs");
}

//! Retention and verification on a real archive: `delete retain`,
//! `wal-verify`, `wal-show`, with PostgreSQL archiving through walship to
//! the filesystem plugin and backups taken with `walship backup-push`.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use walship_e2e::{Cluster, Scratch, WalshipArchive};

/// What a restored copy must show: rows per batch and pgbench's work.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint(String);

fn fingerprint(c: &Cluster) -> Fingerprint {
    Fingerprint(c.psql(
        "select (select count(*) || ':' || coalesce(sum(batch), 0) from marks) || '|' || \
                (select count(*) from pgbench_history) || '|' || \
                (select coalesce(sum(abalance), 0) from pgbench_accounts)",
    ))
}

/// `walship backup-push <PGDATA>` against a running cluster; returns the
/// new backup's name (the one record that was not there before).
fn backup_push(archive: &WalshipArchive, cluster: &Cluster) -> String {
    let before = records(archive);
    archive
        .walship()
        .env("PGUSER", "postgres")
        .env("PGDATABASE", "postgres")
        .arg("backup-push")
        .arg(cluster.data_dir())
        .timeout(Duration::from_secs(600))
        .run()
        .ok();
    let after = records(archive);
    let new: Vec<&String> = after.difference(&before).collect();
    assert_eq!(new.len(), 1, "backup-push made {new:?}");
    new[0].clone()
}

/// Names of the complete backups (their records), from the directory.
fn records(archive: &WalshipArchive) -> BTreeSet<String> {
    let dir = archive.object_path("backups");
    let Ok(entries) = fs::read_dir(&dir) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_suffix(".json")
                .map(str::to_string)
        })
        .collect()
}

/// A backup's finish time, from `backup-list --json`.
fn finish_time_of(archive: &WalshipArchive, name: &str) -> String {
    let list = archive.walship().args(["backup-list", "--json"]).run().ok();
    let at = list.stdout.find(name).expect("listed");
    let rest = &list.stdout[at..];
    let key = "\"finish_time\": \"";
    let start = rest.find(key).expect("finish_time") + key.len();
    rest[start..start + 20].to_string()
}

/// Every object key of the archive.
fn all_keys(archive: &WalshipArchive) -> BTreeSet<String> {
    archive.list("").into_iter().collect()
}

fn wal_keys(archive: &WalshipArchive) -> BTreeSet<String> {
    archive.list("wal/").into_iter().collect()
}

/// The start segment a backup's name carries (`base_<segment>[_n]`).
fn start_segment(name: &str) -> &str {
    &name["base_".len().."base_".len() + 24]
}

/// Segment number (within the timeline) of a WAL key: its 16 hex digits
/// after the timeline, for 16 MiB segments.
fn segno(key: &str) -> u64 {
    let name = key.strip_prefix("wal/").unwrap_or(key);
    let log = u64::from_str_radix(&name[8..16], 16).unwrap();
    let seg = u64::from_str_radix(&name[16..24], 16).unwrap();
    log * 256 + seg
}

fn timeline_of(key: &str) -> u32 {
    let name = key.strip_prefix("wal/").unwrap_or(key);
    u32::from_str_radix(&name[..8], 16).unwrap()
}

/// `backup-fetch` into a fresh directory, then recovery through `wal-fetch`
/// to the end of the archive; returns the restored cluster, running.
fn restore(scratch: &Scratch, archive: &WalshipArchive, backup: &str, label: &str) -> Cluster {
    let target: PathBuf = scratch.postgres_dir(&format!("fetched-{label}"), 0o700);
    archive
        .walship()
        .arg("backup-fetch")
        .arg(&target)
        .arg(backup)
        .timeout(Duration::from_secs(600))
        .run()
        .ok();
    let mut c = Cluster::from_backup(scratch, &format!("restored-{label}"), &target);
    c.restore_from(archive);
    c.touch("recovery.signal");
    c.start();
    c.wait_out_of_recovery();
    c
}

/// Writes a batch, runs pgbench, finishes `switches` segments.
fn work(c: &Cluster, batch: i32, switches: usize) -> String {
    c.psql(&format!(
        "insert into marks select g, {batch} from generate_series(1, 200) g"
    ));
    c.pgbench(&["-n", "-c", "2", "-t", "100"]);
    let mut last = String::new();
    for _ in 0..switches {
        last = c.switch_wal();
    }
    last
}

#[test]
fn retain_two_of_three_then_verify() {
    let scratch = Scratch::new("retention");
    let archive = WalshipArchive::file(&scratch, "archive");
    let mut primary = Cluster::init(&scratch, "primary");
    primary.archive_to(&archive, "on");
    primary.start();
    primary.pgbench(&["-i", "-s", "1", "-q"]);
    primary.psql("create table marks (id int, batch int)");

    let mut backups = Vec::new();
    for batch in 1..=3 {
        work(&primary, batch, 3);
        backups.push(backup_push(&archive, &primary));
    }
    let last = work(&primary, 4, 4);
    let at_end = fingerprint(&primary);
    primary.wait_archived(&last, Duration::from_secs(300));
    primary.stop();
    let (oldest, second) = (&backups[0], &backups[1]);
    println!("backups: {backups:?}; last segment {last}");

    // Interrupted backups (data, no record): one older than every backup
    // that will be kept, one newer (as a backup-push running now would be).
    let junk = scratch.postgres_file("junk.tar", b"not a real volume");
    let stale = "base_000000010000000000000002";
    let running = "base_0000000100000000000000F0";
    for name in [stale, running] {
        archive
            .walship()
            .args(["st", "put", &format!("backups/{name}/0001.tar.zst")])
            .arg(&junk)
            .run()
            .ok();
    }

    // Dry run: prints the oldest backup, changes nothing.
    let before = all_keys(&archive);
    let dry = archive.walship().args(["delete", "retain", "2"]).run().ok();
    println!("{}", dry.stdout);
    assert!(dry.stdout.contains(oldest.as_str()), "{dry}");
    assert!(dry.stdout.contains("dry run"), "{dry}");
    assert!(
        dry.stdout.contains(stale) && dry.stdout.contains(running),
        "{dry}"
    );
    // `delete before` a name or a time, dry: the same backup would go.
    for target in [second.clone(), finish_time_of(&archive, second)] {
        let out = archive
            .walship()
            .args(["delete", "before", "FIND_FULL", &target])
            .run()
            .ok();
        let going = out.stdout.split("backups kept").next().unwrap();
        assert!(going.contains(oldest.as_str()), "{out}");
        assert!(!going.contains(second.as_str()), "{out}");
    }
    // An empty keep-set is refused.
    let none = archive.walship().args(["delete", "retain", "0"]).run();
    assert_eq!(none.exit_code(), 1, "{none}");
    assert!(none.stderr.contains("at least one must be kept"), "{none}");
    assert_eq!(all_keys(&archive), before, "a dry run changed the archive");

    // For real: the oldest backup and exactly the WAL before the second
    // backup's start segment go.
    let wal_before = wal_keys(&archive);
    let out = archive
        .walship()
        .args(["delete", "retain", "FULL", "2", "--confirm"])
        .run()
        .ok();
    println!("{}", out.stdout);
    let boundary = segno(start_segment(second));
    let (gone, kept): (BTreeSet<String>, BTreeSet<String>) = wal_before
        .iter()
        .cloned()
        .partition(|k| !k.ends_with(".history") && segno(k) < boundary);
    assert!(!gone.is_empty(), "nothing before {second} to delete?");
    assert!(
        gone.iter()
            .any(|k| k.ends_with(".backup") && k.contains(start_segment(oldest))),
        "the oldest backup's .backup label should be among {gone:?}"
    );
    let wal_after = wal_keys(&archive);
    assert_eq!(
        wal_after, kept,
        "WAL kept differs from what the second backup needs on"
    );
    assert!(wal_after.is_disjoint(&gone));
    let after = all_keys(&archive);
    assert!(
        !after.iter().any(|k| k.contains(oldest.as_str())),
        "{oldest} still there"
    );
    assert!(
        !after.iter().any(|k| k.contains(stale)),
        "{stale} still there"
    );
    assert!(
        after.contains(&format!("backups/{running}/0001.tar.zst")),
        "the newer interrupted backup was touched"
    );
    for b in &backups[1..] {
        assert!(
            after.contains(&format!("backups/{b}.json")),
            "{b} lost its record"
        );
        assert!(
            after
                .iter()
                .any(|k| k.starts_with(&format!("backups/{b}/"))),
            "{b} lost its data"
        );
    }
    // Running it again finds nothing more to do.
    let again = archive
        .walship()
        .args(["delete", "retain", "2", "--confirm"])
        .run()
        .ok();
    assert!(again.stdout.contains("WAL files to delete: 0"), "{again}");
    assert_eq!(all_keys(&archive), after);

    // Both kept backups still restore to the end.
    for (i, b) in backups[1..].iter().enumerate() {
        let c = restore(&scratch, &archive, b, &format!("kept{i}"));
        assert_eq!(fingerprint(&c), at_end, "restore of {b} to the end");
        c.stop();
    }

    // wal-verify passes...
    let ok = archive.walship().arg("wal-verify").run();
    println!("{}", ok.stdout);
    assert_eq!(ok.exit_code(), 0, "{ok}");

    // ... and names a segment deleted from the middle as missing.
    let wal: Vec<String> = wal_keys(&archive)
        .into_iter()
        .filter(|k| k.len() == "wal/".len() + 24)
        .collect();
    let victim = wal[wal.len() / 2].clone();
    let victim_name = victim.strip_prefix("wal/").unwrap().to_string();
    let victim_path = archive.object_path(&victim);
    let saved = fs::read(&victim_path).unwrap();
    fs::remove_file(&victim_path).unwrap();
    let missing = archive.walship().arg("wal-verify").run();
    println!("{}", missing.stdout);
    assert_eq!(missing.exit_code(), 1, "{missing}");
    assert!(missing.stdout.contains(&victim_name), "{missing}");
    assert!(missing.stdout.contains("missing (1)"), "{missing}");
    assert!(missing.stderr.contains(&victim_name), "{missing}");
    let json = archive.walship().args(["wal-verify", "--json"]).run();
    assert_eq!(json.exit_code(), 1, "{json}");
    assert!(json.stdout.contains("\"ok\": false"), "{json}");

    // wal-show --json shows the gap.
    let show = archive.walship().args(["wal-show", "--json"]).run().ok();
    println!("{}", show.stdout);
    let gap = format!("\"first\": \"{victim_name}\",\n          \"last\": \"{victim_name}\"");
    assert!(
        show.stdout.contains(&gap),
        "no gap at {victim_name}:\n{show}"
    );
    let human = archive.walship().arg("wal-show").run().ok();
    println!("{}", human.stdout);
    assert!(human.stdout.contains("gaps      1 missing:"), "{human}");

    // Put it back; flip a byte in another: named as damaged.
    fs::write(&victim_path, &saved).unwrap();
    let other = wal[wal.len() / 2 + 1].clone();
    let other_path = archive.object_path(&other);
    let mut bytes = fs::read(&other_path).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x40;
    fs::write(&other_path, &bytes).unwrap();
    let damaged = archive.walship().arg("wal-verify").run();
    println!("{}", damaged.stdout);
    assert_eq!(damaged.exit_code(), 1, "{damaged}");
    assert!(damaged.stdout.contains("damaged (1)"), "{damaged}");
    assert!(
        damaged.stdout.contains(other.strip_prefix("wal/").unwrap()),
        "{damaged}"
    );
}

#[test]
fn a_branch_taken_by_a_kept_backup_stays() {
    let scratch = Scratch::new("retention-tli");
    let archive = WalshipArchive::file(&scratch, "archive");
    let mut primary = Cluster::init(&scratch, "primary");
    primary.archive_to(&archive, "on");
    primary.start();
    primary.pgbench(&["-i", "-s", "1", "-q"]);
    primary.psql("create table marks (id int, batch int)");
    work(&primary, 1, 2);
    let first = backup_push(&archive, &primary);
    work(&primary, 2, 2);
    thread::sleep(Duration::from_millis(1100));
    let target = primary.psql("select now()");
    thread::sleep(Duration::from_millis(1100));
    let last = work(&primary, 3, 3);
    primary.wait_archived(&last, Duration::from_secs(300));
    primary.stop();

    // Point-in-time recovery of the first backup to `target`, promoted and
    // archiving into the same archive: timeline 2.
    let fetched = scratch.postgres_dir("fetched-pitr", 0o700);
    archive
        .walship()
        .arg("backup-fetch")
        .arg(&fetched)
        .arg(&first)
        .run()
        .ok();
    let mut branch = Cluster::from_backup(&scratch, "branch", &fetched);
    branch
        .restore_from(&archive)
        .archive_to(&archive, "on")
        .set("recovery_target_time", &target)
        .set("recovery_target_action", "promote");
    branch.touch("recovery.signal");
    branch.start();
    branch.wait_out_of_recovery();
    assert_eq!(
        branch.psql("select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"),
        "00000002"
    );
    work(&branch, 4, 2);
    let on_two = backup_push(&archive, &branch);
    assert!(start_segment(&on_two).starts_with("00000002"), "{on_two}");
    let last = work(&branch, 5, 3);
    let at_end = fingerprint(&branch);
    branch.wait_archived(&last, Duration::from_secs(300));
    branch.stop();
    let wal = wal_keys(&archive);
    assert!(wal.contains("wal/00000002.history"), "{wal:?}");
    println!("{}", archive.walship().arg("wal-show").run().ok().stdout);

    // Keeping both: timeline 2 forked after the first backup started, so
    // nothing of it goes; only WAL before the first backup does.
    let boundary = segno(start_segment(&first));
    let out = archive
        .walship()
        .args(["delete", "retain", "2", "--confirm"])
        .run()
        .ok();
    println!("{}", out.stdout);
    let expected: BTreeSet<String> = wal
        .iter()
        .filter(|k| k.ends_with(".history") || segno(k) >= boundary)
        .cloned()
        .collect();
    assert_eq!(wal_keys(&archive), expected);

    // Keeping only the backup on timeline 2: timeline 1's WAL is needed by
    // no kept backup (the branch took what it needed as timeline 2's first
    // segment), timeline 2's from that backup's start on stays, and the
    // histories stay.
    let wal = wal_keys(&archive);
    let out = archive
        .walship()
        .args(["delete", "retain", "1", "--confirm"])
        .run()
        .ok();
    println!("{}", out.stdout);
    let boundary = segno(start_segment(&on_two));
    let expected: BTreeSet<String> = wal
        .iter()
        .filter(|k| k.ends_with(".history") || (timeline_of(k) == 2 && segno(k) >= boundary))
        .cloned()
        .collect();
    assert_eq!(wal_keys(&archive), expected);
    let verify = archive.walship().arg("wal-verify").run();
    println!("{}", verify.stdout);
    assert_eq!(verify.exit_code(), 0, "{verify}");
    let c = restore(&scratch, &archive, &on_two, "two");
    assert_eq!(fingerprint(&c), at_end);
    c.stop();
}

/// A server restored from an older backup, recovered to a point before the
/// newest backup and promoted into the same prefix, archives timeline 2.
/// `delete retain 1` would keep only the newest backup (on timeline 1, which
/// cannot be recovered onto timeline 2), delete the one the running server
/// came from, and every WAL file of timeline 2: refused, naming the
/// timeline and its fork point, and nothing is deleted; `--force` deletes.
/// A kept backup whose own WAL is missing is refused the same way.
#[test]
fn the_wal_of_a_promoted_restore_is_not_deleted_without_force() {
    let scratch = Scratch::new("retention-promoted");
    let archive = WalshipArchive::file(&scratch, "archive");
    let mut primary = Cluster::init(&scratch, "primary");
    primary.archive_to(&archive, "on");
    primary.start();
    primary.pgbench(&["-i", "-s", "1", "-q"]);
    primary.psql("create table marks (id int, batch int)");
    work(&primary, 1, 2);
    let old = backup_push(&archive, &primary);
    work(&primary, 2, 2);
    thread::sleep(Duration::from_millis(1100));
    let target = primary.psql("select now()");
    thread::sleep(Duration::from_millis(1100));
    work(&primary, 3, 2);
    let newest = backup_push(&archive, &primary);
    let last = work(&primary, 4, 2);
    primary.wait_archived(&last, Duration::from_secs(300));
    primary.stop();

    // The old backup, restored to before the newest began, promoted and
    // archiving into the same prefix.
    let fetched = scratch.postgres_dir("fetched-old", 0o700);
    archive
        .walship()
        .arg("backup-fetch")
        .arg(&fetched)
        .arg(&old)
        .run()
        .ok();
    let mut server = Cluster::from_backup(&scratch, "promoted", &fetched);
    server
        .restore_from(&archive)
        .archive_to(&archive, "on")
        .set("recovery_target_time", &target)
        .set("recovery_target_action", "promote");
    server.touch("recovery.signal");
    server.start();
    server.wait_out_of_recovery();
    let last = work(&server, 5, 3);
    server.wait_archived(&last, Duration::from_secs(300));
    assert!(timeline_of(&last) == 2, "{last}");

    let before = all_keys(&archive);
    let out = archive
        .walship()
        .args(["delete", "retain", "1", "--confirm"])
        .run();
    println!("{out}");
    assert_eq!(out.exit_code(), 1, "refused:\n{out}");
    let why = out.stderr.trim();
    assert_eq!(out.stderr_lines().len(), 1, "one line:\n{out}");
    for words in [
        "timeline 2",
        "forked from timeline 1",
        "--force",
        &newest,
        &old,
    ] {
        assert!(why.contains(words), "mentions {words:?}: {why}");
    }
    assert_eq!(all_keys(&archive), before, "nothing deleted");

    let out = archive
        .walship()
        .args(["delete", "retain", "1", "--confirm", "--force"])
        .run();
    assert!(out.success(), "--force deletes:\n{out}");
    assert!(records(&archive).len() == 1 && records(&archive).contains(&newest));
    server.stop();

    // The kept backup loses one of its own WAL files: a delete is refused.
    let own = wal_keys(&archive)
        .into_iter()
        .find(|k| timeline_of(k) == 1 && segno(k) == segno(start_segment(&newest)))
        .expect("the newest backup's first segment");
    archive.walship().args(["st", "rm", &own]).run().ok();
    let out = archive.walship().args(["delete", "retain", "1"]).run();
    assert_eq!(out.exit_code(), 1, "{out}");
    assert!(
        out.stderr.contains(&newest) && out.stderr.contains("missing"),
        "{out}"
    );
}

/// `backup-mark` (WAL-G's name): a permanent backup survives `delete retain
/// 1`, keeps the WAL from its start to its stop (and nothing after it), is
/// shown as permanent, and restores to its consistency point; unmarked, the
/// next delete takes it.
#[test]
fn a_permanent_backup_survives_retention_with_its_own_wal() {
    let scratch = Scratch::new("retention-permanent");
    let archive = WalshipArchive::file(&scratch, "archive");
    let mut primary = Cluster::init(&scratch, "primary");
    primary.archive_to(&archive, "on");
    primary.start();
    primary.pgbench(&["-i", "-s", "1", "-q"]);
    primary.psql("create table marks (id int, batch int)");
    work(&primary, 1, 2);
    let at_first = fingerprint(&primary);
    let first = backup_push(&archive, &primary);
    work(&primary, 2, 2);
    let second = backup_push(&archive, &primary);
    work(&primary, 3, 2);
    let third = backup_push(&archive, &primary);
    let last = work(&primary, 4, 2);
    primary.wait_archived(&last, Duration::from_secs(300));
    primary.stop();

    let out = archive.walship().args(["backup-mark", &first]).run();
    assert!(out.success(), "{out}");
    let table = archive.walship().arg("backup-list").run().ok();
    let row = table
        .stdout
        .lines()
        .find(|l| l.starts_with(&first))
        .unwrap();
    assert!(row.ends_with(" yes"), "{}", table.stdout);
    let json = archive.walship().args(["backup-list", "--json"]).run().ok();
    assert_eq!(
        json.stdout.matches("\"is_permanent\": true").count(),
        1,
        "{}",
        json.stdout
    );

    let out = archive
        .walship()
        .args(["delete", "retain", "1", "--confirm"])
        .run()
        .ok();
    println!("{}", out.stdout);
    assert!(
        out.stdout.contains("permanent backups kept"),
        "{}",
        out.stdout
    );
    let kept = records(&archive);
    assert!(
        kept.contains(&first) && kept.contains(&third) && !kept.contains(&second),
        "{kept:?}"
    );
    // The first backup's own WAL stays; what lies between it and the newest
    // backup goes.
    let wal = wal_keys(&archive);
    let (start, boundary) = (segno(start_segment(&first)), segno(start_segment(&third)));
    assert!(
        wal.iter()
            .any(|k| !k.ends_with(".history") && segno(k) == start)
    );
    let is_segment = |k: &str| k.len() == "wal/".len() + 24;
    assert!(
        !wal.iter()
            .any(|k| is_segment(k) && segno(k) > start + 1 && segno(k) < boundary),
        "WAL after the permanent backup's range was kept: {wal:?}"
    );

    // Restored to its consistency point, it shows the data it was taken with.
    let target = scratch.postgres_dir("fetched-permanent", 0o700);
    archive
        .walship()
        .arg("backup-fetch")
        .arg(&target)
        .arg(&first)
        .run()
        .ok();
    let mut c = Cluster::from_backup(&scratch, "restored-permanent", &target);
    c.restore_from(&archive)
        .set("recovery_target", "immediate")
        .set("recovery_target_action", "promote");
    c.touch("recovery.signal");
    c.start();
    c.wait_out_of_recovery();
    assert_eq!(fingerprint(&c), at_first);
    c.stop();

    let out = archive
        .walship()
        .args(["backup-mark", "--impermanent", &first])
        .run();
    assert!(out.success(), "{out}");
    archive
        .walship()
        .args(["delete", "retain", "1", "--confirm"])
        .run()
        .ok();
    assert_eq!(records(&archive), [third].into_iter().collect());
}

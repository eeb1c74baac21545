//! `walship copy --to PREFIX`: a file archive copied to S3 (another
//! plugin), killed at several moments and run again; the copy then holds
//! every object of the original, a further run copies nothing, and a
//! restore from the copy alone (backup-fetch, then recovery through
//! wal-fetch from it) gets exactly the data.

use std::time::{Duration, Instant};

use walship_e2e::emulators::S3sFs;
use walship_e2e::{Cluster, Scratch, WalshipArchive};

#[test]
fn a_copy_to_another_backend_restores_and_an_interrupted_copy_finishes() {
    let scratch = Scratch::new("copy");
    let s3 = S3sFs::start(&scratch);
    let source = WalshipArchive::file(&scratch, "archive");
    let copy = s3.archive(&scratch, "copy");
    let mut primary = Cluster::init(&scratch, "primary");
    primary.archive_to(&source, "on");
    primary.start();
    primary.pgbench(&["-i", "-s", "1", "-q"]);
    primary.psql("create table marks (id int)");
    let out = source
        .walship()
        .env("PGUSER", "postgres")
        .arg("backup-push")
        .arg(primary.data_dir())
        .timeout(Duration::from_secs(600))
        .run();
    assert!(out.success(), "{out}");
    let mut last = String::new();
    for i in 0..8 {
        primary.psql(&format!(
            "insert into marks select generate_series(1, {})",
            100 * (i + 1)
        ));
        primary.pgbench(&["-n", "-t", "50"]);
        last = primary.switch_wal();
    }
    let expected = primary.psql("select count(*), sum(id) from marks");
    primary.wait_archived(&last, Duration::from_secs(300));
    primary.stop();
    let out = source.walship().args(["backup-mark", "LATEST"]).run();
    assert!(out.success(), "{out}");

    // The source's settings and the S3 ones: one command reaches both.
    let walship = || {
        let mut w = source.walship().timeout(Duration::from_secs(600));
        for (k, v) in s3.access().env() {
            w = w.env(k, v);
        }
        w.args(["copy", "--to", copy.prefix()])
    };
    let logs = scratch.postgres_dir("copy-logs", 0o755);
    for (round, after) in [150u64, 400, 900].into_iter().enumerate() {
        let log = logs.join(format!("copy-{round}.log"));
        let mut child = walship().spawn(&log);
        let started = Instant::now();
        while started.elapsed() < Duration::from_millis(after) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let out = walship().run();
    assert!(out.success(), "copy after interrupted ones:\n{out}");
    println!("{}", out.stdout);

    let originals: Vec<String> = source
        .list("")
        .into_iter()
        .filter(|k| !k.ends_with("/in_progress"))
        .collect();
    let copied = copy.list("");
    for k in &originals {
        assert!(copied.contains(k), "{k} is not in the copy: {copied:?}");
    }
    let again = walship().run();
    assert!(again.success(), "{again}");
    assert!(
        again.stdout.starts_with("copied 0 WAL files") && again.stdout.contains(", 0 backups"),
        "a second run copies nothing:\n{again}"
    );
    let listed = copy.walship().arg("backup-list").run();
    assert!(
        listed.success() && listed.stdout.contains(" yes"),
        "the mark was copied:\n{listed}"
    );

    // A restore from the copy alone.
    let target = scratch.postgres_dir("from-copy", 0o700);
    let out = copy
        .walship()
        .timeout(Duration::from_secs(600))
        .arg("backup-fetch")
        .arg(&target)
        .arg("LATEST")
        .run();
    assert!(out.success(), "{out}");
    let mut restored = Cluster::from_backup(&scratch, "restored", &target);
    restored.restore_from(&copy);
    restored.touch("recovery.signal");
    restored.start();
    restored.wait_out_of_recovery();
    assert_eq!(
        restored.psql("select count(*), sum(id) from marks"),
        expected
    );
    restored.stop();
}

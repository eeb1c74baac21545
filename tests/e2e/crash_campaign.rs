//! The crash campaign: `backup-push`, `backup-fetch` and `delete --confirm`
//! are killed with SIGKILL at random moments, over and over, on a real
//! cluster, and afterwards:
//!
//! - every backup listed restores (to its consistency point) to exactly the
//!   data the cluster held when it was taken;
//! - a `delete` run again after a killed one completes;
//! - a killed `backup-fetch` leaves a directory PostgreSQL refuses to start
//!   (no `global/pg_control` until everything else is durable; once it is
//!   there, the restore is complete).
//!
//! Lean in CI (a few runs per command); an operator or a release runs it
//! fuller: `WALSHIP_CAMPAIGN_RUNS=50 WALSHIP_CAMPAIGN_S3_RUNS=20 cargo xtask
//! test --test crash_campaign -- --nocapture`. Each run prints its seed
//! (`WALSHIP_CAMPAIGN_SEED` repeats one) and the counts.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

use walship_e2e::emulators::S3sFs;
use walship_e2e::pg::pg_bin_dir;
use walship_e2e::{Cluster, Run, Scratch, WalshipArchive};

/// Runs per command on the file backend when WALSHIP_CAMPAIGN_RUNS is unset.
const CI_RUNS: usize = 4;
/// Runs per command on S3 when WALSHIP_CAMPAIGN_S3_RUNS is unset.
const CI_S3_RUNS: usize = 2;
/// How many backups `delete retain` keeps.
const KEEP: usize = 2;

fn runs(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn kill_push_fetch_and_delete_at_random_moments_on_the_file_backend() {
    let scratch = Scratch::new("campaign-file");
    let archive = WalshipArchive::file(&scratch, "archive");
    campaign(&scratch, &archive, runs("WALSHIP_CAMPAIGN_RUNS", CI_RUNS));
}

#[test]
fn kill_push_fetch_and_delete_at_random_moments_on_s3() {
    let scratch = Scratch::new("campaign-s3");
    let s3 = S3sFs::start(&scratch);
    let archive = s3.archive(&scratch, "campaign");
    campaign(
        &scratch,
        &archive,
        runs("WALSHIP_CAMPAIGN_S3_RUNS", CI_S3_RUNS),
    );
}

/// xorshift64*, seeded per run (printed, and repeatable).
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::env::var("WALSHIP_CAMPAIGN_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        println!("campaign seed {seed} (WALSHIP_CAMPAIGN_SEED repeats it)");
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }

    /// A moment in [0, 1.3 × typical): mostly while the command runs,
    /// sometimes after it finished.
    fn moment(&mut self, typical: Duration) -> Duration {
        let ms = typical.as_millis() as u64 * 13 / 10;
        Duration::from_millis(self.below(ms.max(1)))
    }
}

#[derive(Debug, Default)]
struct Counts {
    push_killed: usize,
    push_finished: usize,
    fetch_killed: usize,
    fetch_killed_when_complete: usize,
    fetch_finished: usize,
    fetch_start_refused: usize,
    delete_killed: usize,
    delete_finished: usize,
    restores_checked: usize,
}

/// What the data looks like (rows per batch, pgbench's sums).
fn fingerprint(c: &Cluster) -> String {
    c.psql(
        "select (select count(*) || ':' || coalesce(sum(batch), 0) from marks) || '|' || \
                (select coalesce(sum(abalance), 0) from pgbench_accounts)",
    )
}

/// Kills `child` after `after` unless it ends first; whether it was killed
/// before it finished (a child that finished with failure is a failure of
/// the test).
fn kill_after(child: &mut Child, after: Duration, log: &Path) -> bool {
    let deadline = Instant::now() + after;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "the command failed on its own:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            return false;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let status = child.wait().unwrap();
            // It may have finished in the last moment.
            return !status.success();
        }
        thread::sleep(Duration::from_millis(2));
    }
}

fn timed(what: &str, run: impl FnOnce() -> walship_e2e::Outcome) -> Duration {
    let t = Instant::now();
    let out = run();
    assert!(out.success(), "{what}:\n{out}");
    t.elapsed()
}

fn wait_for_backup_sessions_to_end(c: &Cluster) {
    c.wait_for(
        "killed backup sessions to end",
        Duration::from_secs(60),
        |c| match c.psql_i64(
            "select count(*) from pg_stat_activity where application_name = 'walship backup-push'",
        ) {
            0 => Ok(()),
            n => Err(format!("{n} sessions")),
        },
    );
}

/// PostgreSQL refuses to start on what a killed backup-fetch left.
fn assert_postgres_refuses(dir: &Path) {
    let out = Run::new(pg_bin_dir().join("pg_ctl"))
        .as_postgres()
        .arg("-D")
        .arg(dir)
        .args(["-o", "-c listen_addresses='' -c port=1"])
        .args(["-w", "-t", "20", "start"])
        .quiet()
        .timeout(Duration::from_secs(60))
        .run();
    if out.success() {
        let _ = Run::new(pg_bin_dir().join("pg_ctl"))
            .as_postgres()
            .arg("-D")
            .arg(dir)
            .args(["-m", "immediate", "stop"])
            .run();
        panic!(
            "PostgreSQL started on an interrupted restore in {}",
            dir.display()
        );
    }
}

fn campaign(scratch: &Scratch, archive: &WalshipArchive, runs: usize) {
    let mut rng = Rng::seeded();
    let mut counts = Counts::default();
    let mut primary = Cluster::init(scratch, "primary");
    primary.archive_to(archive, "on");
    primary.start();
    primary.pgbench(&["-i", "-s", "1", "-q"]);
    primary.psql("create table marks (id int, batch int)");
    let logs = scratch.postgres_dir("logs", 0o755);
    let walship = |args: &[&str]| {
        archive
            .walship()
            .env("PGUSER", "postgres")
            .timeout(Duration::from_secs(600))
            .args(args)
    };

    // The data at each backup, by name: the cluster is idle while one runs.
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    let data_dir = primary.data_dir().display().to_string();
    let mut push_time = Duration::ZERO;
    let first = walship(&["backup-push", &data_dir]).run();
    assert!(first.success(), "{first}");
    expected.insert(first.stdout.trim().to_string(), fingerprint(&primary));
    for batch in 1..=runs {
        primary.psql(&format!(
            "insert into marks select g, {batch} from generate_series(1, 100) g"
        ));
        primary.pgbench(&["-n", "-t", "50"]);
        primary.switch_wal();
        let data = fingerprint(&primary);

        // backup-push, killed at a random moment (or not at all).
        if push_time.is_zero() {
            let t = Instant::now();
            let out = walship(&["backup-push", &data_dir]).run();
            assert!(out.success(), "{out}");
            push_time = t.elapsed();
            expected.insert(out.stdout.trim().to_string(), data.clone());
        }
        let log = logs.join(format!("push-{batch}.log"));
        let mut child = walship(&["backup-push", &data_dir]).spawn(&log);
        if kill_after(&mut child, rng.moment(push_time), &log) {
            counts.push_killed += 1;
            wait_for_backup_sessions_to_end(&primary);
        } else {
            counts.push_finished += 1;
            let out = std::fs::read_to_string(&log).unwrap();
            let name = out
                .lines()
                .find(|l| l.starts_with("base_"))
                .expect("a finished push prints its name");
            expected.insert(name.to_string(), data.clone());
        }

        // backup-fetch of the newest backup, killed at a random moment.
        let whole = scratch.postgres_dir(&format!("fetch-{batch}-whole"), 0o700);
        let fetch_time = timed("backup-fetch", || {
            walship(&["backup-fetch", &whole.display().to_string(), "LATEST"]).run()
        });
        std::fs::remove_dir_all(&whole).unwrap();
        let target = scratch.postgres_dir(&format!("fetch-{batch}"), 0o700);
        let log = logs.join(format!("fetch-{batch}.log"));
        let mut child =
            walship(&["backup-fetch", &target.display().to_string(), "LATEST"]).spawn(&log);
        if kill_after(&mut child, rng.moment(fetch_time), &log) {
            if target.join("global/pg_control").exists() {
                // Killed in the moment between putting pg_control in place,
                // the very last step, and exiting: the restore is complete.
                assert!(target.join("backup_label").is_file());
                counts.fetch_killed_when_complete += 1;
            } else {
                counts.fetch_killed += 1;
                if counts.fetch_start_refused < 3 && target.join("PG_VERSION").exists() {
                    assert_postgres_refuses(&target);
                    counts.fetch_start_refused += 1;
                }
            }
        } else {
            counts.fetch_finished += 1;
            assert!(target.join("global/pg_control").is_file());
        }
        let _ = std::fs::remove_dir_all(&target);

        // delete retain, killed at a random moment, then run again.
        let keep = KEEP.to_string();
        let delete_time = timed("delete", || walship(&["delete", "retain", &keep]).run());
        let log = logs.join(format!("delete-{batch}.log"));
        let mut child = walship(&["delete", "retain", &keep, "--confirm"]).spawn(&log);
        if kill_after(&mut child, rng.moment(delete_time * 3), &log) {
            counts.delete_killed += 1;
        } else {
            counts.delete_finished += 1;
        }
        let again = walship(&["delete", "retain", &keep, "--confirm"]).run();
        assert!(again.success(), "delete after a killed one:\n{again}");
    }
    primary.stop();

    // Every backup listed restores to exactly its data.
    let listed = walship(&["backup-list", "--json"]).run();
    assert!(listed.success(), "{listed}");
    let names: Vec<String> = listed
        .stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("\"name\": \""))
        .map(|l| l.trim_end_matches(['"', ',']).to_string())
        .collect();
    assert!(!names.is_empty(), "no backup left:\n{listed}");
    for name in &names {
        let want = expected
            .get(name)
            .unwrap_or_else(|| panic!("{name} is listed but no run finished it"));
        let dir = scratch.postgres_dir(&format!("check-{name}"), 0o700);
        let out = walship(&["backup-fetch", &dir.display().to_string(), name]).run();
        assert!(out.success(), "{out}");
        let mut c =
            Cluster::from_backup(scratch, &format!("check-{}", counts.restores_checked), &dir);
        c.restore_from(archive)
            .set("recovery_target", "immediate")
            .set("recovery_target_action", "promote");
        c.touch("recovery.signal");
        c.start();
        c.wait_out_of_recovery();
        assert_eq!(&fingerprint(&c), want, "backup {name} restored other data");
        c.stop();
        counts.restores_checked += 1;
    }
    println!(
        "campaign on {} ({runs} runs per command): {counts:?}",
        archive.prefix()
    );
}

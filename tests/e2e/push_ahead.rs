//! `wal-push` archives ahead: besides the file PostgreSQL asked for, it
//! starts a background pusher that uploads the files PostgreSQL has marked
//! ready and records each one it stored, so PostgreSQL's later calls for
//! them return at once. Killed at any moment (`wal-push` and the pusher
//! each have a kill test), neither ever leaves a record for something not
//! durably stored.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use walship_e2e::walship::walship_bin;
use walship_e2e::{Cluster, Scratch, WalshipArchive};

/// A stopped cluster whose finished segments are all marked ready, as
/// PostgreSQL's archiver would leave them when archiving falls behind.
struct Backlog {
    scratch: Scratch,
    cluster: Cluster,
    archive: WalshipArchive,
    segments: Vec<String>,
}

impl Backlog {
    fn new(label: &str, switches: usize) -> Backlog {
        let scratch = Scratch::new(label);
        let cluster = Cluster::with_finished_segments(&scratch, "pg", switches);
        let all = cluster.wal_segments();
        // The newest segment is the one PostgreSQL was writing at shutdown.
        let segments = all[..all.len() - 1].to_vec();
        for s in &segments {
            fs::write(ready(cluster.data_dir(), s), b"").unwrap();
        }
        let archive = WalshipArchive::file(&scratch, "archive");
        Backlog {
            scratch,
            cluster,
            archive,
            segments,
        }
    }

    fn data(&self) -> &Path {
        self.cluster.data_dir()
    }

    /// walship as the test's own user (root in CI, so a kill reaches it
    /// directly), with a plugin cache that user owns.
    fn walship(&self) -> Command {
        let mut cmd = Command::new(walship_bin());
        cmd.current_dir(self.data())
            .envs(self.archive.settings())
            .env("WALSHIP_CACHE_DIR", self.scratch.dir("own-cache"));
        cmd
    }

    /// wal-push as PostgreSQL would start it.
    fn wal_push(&self, name: &str, concurrency: usize) -> Command {
        let mut cmd = self.walship();
        cmd.arg("wal-push")
            .arg(format!("pg_wal/{name}"))
            .env("WALSHIP_UPLOAD_CONCURRENCY", concurrency.to_string())
            .env("WALSHIP_LOG_LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0);
        cmd
    }

    /// Starts over with an empty archive and the whole backlog ready again,
    /// so the kill loop never runs out of work.
    fn new_round(&mut self, round: usize) {
        let _ = self.kill_pusher();
        self.wait_for_pusher();
        self.archive = WalshipArchive::file(&self.scratch, &format!("archive-{round}"));
        let status = self.data().join("pg_wal/archive_status");
        for s in &self.segments {
            let _ = fs::rename(status.join(format!("{s}.done")), ready(self.data(), s));
        }
        let _ = fs::remove_dir_all(self.data().join("pg_wal/walship_status"));
    }

    /// PostgreSQL's bookkeeping after a successful archive_command.
    fn mark_done(&self, name: &str) {
        let status = self.data().join("pg_wal/archive_status");
        fs::rename(
            ready(self.data(), name),
            status.join(format!("{name}.done")),
        )
        .unwrap();
    }

    fn ready_now(&self) -> Vec<String> {
        self.segments
            .iter()
            .filter(|s| ready(self.data(), s).exists())
            .cloned()
            .collect()
    }

    fn marker(&self, name: &str) -> PathBuf {
        self.data().join("pg_wal/walship_status").join(name)
    }

    /// The background pusher's pid while it runs (it holds a lock on the
    /// file its pid is written in).
    fn pusher(&self) -> Option<u32> {
        let path = self.data().join("pg_wal/walship_status/.pusher.lock");
        let file = fs::File::open(&path).ok()?;
        match file.try_lock() {
            Err(fs::TryLockError::WouldBlock) => {
                fs::read_to_string(&path).ok()?.trim().parse().ok()
            }
            _ => None,
        }
    }

    /// Waits until no pusher runs (it leaves on its own once nothing is
    /// left to do).
    #[track_caller]
    fn wait_for_pusher(&self) {
        let start = Instant::now();
        while self.pusher().is_some() {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "the pusher never left"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL to the pusher, if one runs: no clean-up runs. Whether one
    /// did.
    fn kill_pusher(&self) -> bool {
        let Some(pid) = self.pusher() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        true
    }

    /// The archived copy of `name`, fetched and compared with pg_wal.
    #[track_caller]
    fn assert_archived_identical(&self, name: &str) {
        let target = self.data().join("pg_wal/RECOVERYXLOG");
        let fetch = self
            .walship()
            .args(["wal-fetch", name, "pg_wal/RECOVERYXLOG"])
            .output()
            .unwrap();
        assert!(
            fetch.status.success(),
            "{name} is not fetchable: {}",
            String::from_utf8_lossy(&fetch.stderr)
        );
        let fetched = fs::read(&target).unwrap();
        let local = fs::read(self.data().join("pg_wal").join(name)).unwrap();
        assert!(fetched == local, "{name}: the archived copy differs");
        fs::remove_file(&target).unwrap();
    }
}

fn ready(data: &Path, name: &str) -> PathBuf {
    data.join("pg_wal/archive_status")
        .join(format!("{name}.ready"))
}

#[test]
fn one_push_starts_a_pusher_that_archives_every_ready_file() {
    let b = Backlog::new("push-ahead", 6);
    assert!(b.segments.len() >= 5, "{:?}", b.segments);
    let first = &b.segments[0];
    let out = b.wal_push(first, 4).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The pusher goes on in the background, in its own process, and leaves
    // once nothing is left: every other ready file is then stored and
    // vouched for.
    b.wait_for_pusher();
    for s in &b.segments[1..] {
        assert!(b.marker(s).exists(), "no marker for {s}");
        b.assert_archived_identical(s);
    }
    b.mark_done(first);

    // PostgreSQL asks for the next one: answered from the marker, which is
    // consumed, as is the first one's now that it is done.
    let second = &b.segments[1];
    let out = b.wal_push(second, 4).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("already archived ahead"), "{stderr}");
    assert!(!b.marker(second).exists(), "a consumed marker is removed");
    assert!(!b.marker(first).exists(), "a done file's marker is swept");
    b.mark_done(second);

    // A marker vouches only for the exact bytes: change the file and the
    // marker no longer short-cuts (the archive then refuses the different
    // content under a taken name).
    let third = &b.segments[2];
    let path = b.data().join("pg_wal").join(third);
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&path, &bytes).unwrap();
    let out = b.wal_push(third, 1).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("different content"), "{stderr}");
}

/// While the pusher holds a file (its claim), PostgreSQL's call for that
/// file waits for it instead of uploading it a second time, and exits 0 on
/// the pusher's marker. Held here by the test, as a pusher would.
#[test]
fn a_call_for_a_file_the_pusher_holds_waits_for_it() {
    let b = Backlog::new("push-ahead-claim", 3);
    let first = b.segments[0].clone();
    let status = b.data().join("pg_wal/walship_status");
    fs::create_dir_all(&status).unwrap();
    let claim = fs::File::create(status.join(format!(".claim-{first}"))).unwrap();
    claim.lock().unwrap();
    let mut push = b.wal_push(&first, 1).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        push.try_wait().unwrap().is_none(),
        "wal-push did not wait for the claim"
    );
    assert!(b.archive.list("wal/").is_empty(), "uploaded while claimed");
    // The "pusher" stores it and leaves its marker, then lets go: a copy
    // of the file pushed from another directory (which has its own claims)
    // stores the same object and writes the same marker there.
    let elsewhere = b.scratch.dir("elsewhere");
    fs::copy(b.data().join("pg_wal").join(&first), elsewhere.join(&first)).unwrap();
    let other = b
        .walship()
        .arg("wal-push")
        .arg(elsewhere.join(&first))
        .env("WALSHIP_UPLOAD_CONCURRENCY", "1")
        .output()
        .unwrap();
    assert!(
        other.status.success(),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
    fs::copy(
        elsewhere.join("walship_status").join(&first),
        status.join(&first),
    )
    .unwrap();
    drop(claim);
    let out = push.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("already archived ahead"), "{stderr}");
}

/// A tiny deterministic generator: the seed is printed, so a failure can be
/// replayed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

#[test]
fn killed_at_random_moments_nothing_is_ever_vouched_for_that_is_not_stored() {
    let mut b = Backlog::new("push-ahead-kill", 24);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("seed {seed}");
    let mut rng = Lcg(seed);
    // Compile and cache the plugin first, so kills land in pushes, not in
    // the one-time compilation.
    let warm = b.walship().args(["st", "ls"]).output().unwrap();
    assert!(
        warm.status.success(),
        "{}",
        String::from_utf8_lossy(&warm.stderr)
    );
    let (mut killed, mut finished, mut round) = (0, 0, 0);
    // The longest uploading push seen so far, so kill moments land in
    // every phase however fast this machine is.
    let mut longest = Duration::from_millis(150);
    for run in 0..100 {
        if b.ready_now().is_empty() {
            // Everything PostgreSQL considered archived was checked as it
            // went; start again on an empty archive.
            round += 1;
            b.new_round(round);
            let warm = b.walship().args(["st", "ls"]).output().unwrap();
            assert!(warm.status.success());
        }
        let ready_now = b.ready_now();
        let next = &ready_now[0];
        // A call answered from a marker takes a few milliseconds; one that
        // uploads takes the longest seen so far. Kill moments spread over
        // the whole of either: before the plugin loads, during uploads,
        // between an upload and its marker, after.
        let shortcut = b.marker(next).exists();
        let span = if shortcut {
            Duration::from_millis(20)
        } else {
            longest
        };
        let delay = Duration::from_micros(rng.next(span.as_micros() as u64 + 1));
        let mut child = b.wal_push(next, 3).spawn().unwrap();
        let start = Instant::now();
        let mut exited = None;
        while start.elapsed() < delay {
            if let Some(status) = child.try_wait().unwrap() {
                exited = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let status = match exited {
            Some(status) => status,
            None => {
                // SIGKILL to the whole process group: no clean-up runs.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                child.wait().unwrap()
            }
        };
        if status.success() {
            finished += 1;
            if !shortcut {
                longest = longest.max(start.elapsed());
            }
            // Exit 0: PostgreSQL considers it archived. It must be.
            b.assert_archived_identical(next);
            b.mark_done(next);
        } else {
            killed += 1;
        }
        // Every marker must vouch for a stored, identical copy.
        let status_dir = b.data().join("pg_wal/walship_status");
        if let Ok(entries) = fs::read_dir(&status_dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') {
                    b.assert_archived_identical(&name);
                }
            }
        }
        if run % 20 == 19 {
            eprintln!(
                "run {}: {finished} finished, {killed} killed, round {round}",
                run + 1
            );
        }
    }
    assert!(
        killed >= 10 && finished >= 5,
        "{finished} finished, {killed} killed: the delays missed"
    );
    // Finish the backlog without kills: every segment ends up archived.
    b.wait_for_pusher();
    for next in b.ready_now() {
        let out = b.wal_push(&next, 4).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        b.mark_done(&next);
    }
    for s in &b.segments {
        b.assert_archived_identical(s);
    }
}

/// The pusher is killed with SIGKILL at random moments of its work (before,
/// during and after uploads, between an upload and its marker), 20 times on
/// a fresh archive each: every marker it left must vouch for a stored,
/// identical copy, and PostgreSQL's calls then finish the backlog.
#[test]
fn a_pusher_killed_at_random_moments_never_vouches_for_what_is_not_stored() {
    let mut b = Backlog::new("pusher-kill", 12);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("seed {seed}");
    let mut rng = Lcg(seed);
    let warm = b.walship().args(["st", "ls"]).output().unwrap();
    assert!(warm.status.success());
    // How long a pusher works on this backlog (it then lingers a second).
    let first = b.segments[0].clone();
    let start = Instant::now();
    assert!(b.wal_push(&first, 4).status().unwrap().success());
    b.wait_for_pusher();
    let span = start
        .elapsed()
        .saturating_sub(Duration::from_secs(1))
        .max(Duration::from_millis(100));
    let (mut killed, mut marked, mut unmarked) = (0, 0, 0);
    for round in 1..=20 {
        b.new_round(round);
        let warm = b.walship().args(["st", "ls"]).output().unwrap();
        assert!(warm.status.success());
        // The moment is counted from the call's start: the pusher works
        // while the call uploads its own file.
        let delay = Duration::from_micros(rng.next(span.as_micros() as u64 + 1));
        let start = Instant::now();
        let out = b.wal_push(&first, 4).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(delay.saturating_sub(start.elapsed()));
        if b.kill_pusher() {
            killed += 1;
        }
        b.wait_for_pusher();
        b.assert_archived_identical(&first);
        for s in &b.segments[1..] {
            if b.marker(s).exists() {
                marked += 1;
                b.assert_archived_identical(s);
            } else {
                unmarked += 1;
            }
        }
        b.mark_done(&first);
    }
    eprintln!(
        "{killed} of 20 pushers killed; {marked} markers checked, {unmarked} files left unmarked"
    );
    assert!(
        killed >= 10 && unmarked >= 10,
        "the kills missed the pushers' work: {killed} killed, {unmarked} files left unmarked"
    );
    // PostgreSQL's own calls finish what the killed pusher left.
    for next in b.ready_now() {
        let out = b.wal_push(&next, 1).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        b.mark_done(&next);
    }
    for s in &b.segments {
        b.assert_archived_identical(s);
    }
}

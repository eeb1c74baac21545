//! `cargo xtask bench -- backup [--scale N]`: base backup and restore
//! throughput of a pgbench database (scale 100 by default, about 1.5 GB).
//!
//! - walship backup-push into a file:// archive and into s3s-fs (zstd
//!   level 1, the default), then backup-fetch of each back to local disk;
//! - pg_basebackup -Ft -X none to local disk (the floor: the server streams
//!   its files, nothing is uploaded), plain and with client-side zstd:1;
//! - pgBackRest's full backup to a posix repository with zstd level 1 and
//!   process-max 4 (walship's default concurrency), and its restore.
//!
//! Figures: wall time, MB/s of the data directory's bytes (the same
//! numerator for every tool), stored bytes, and peak RSS of the measured
//! process (VmHWM of its /proc entry, polled; for pgBackRest the main
//! process only, its workers are separate processes). Peers that cannot run
//! are reported as skipped, with why. Nothing is asserted.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use walship_e2e::emulators::S3sFs;
use walship_e2e::process::{is_root, postgres_ids, shell_quote};
use walship_e2e::walship::walship_bin;
use walship_e2e::{Archive, Cluster, Run, Scratch, WalshipArchive};

const DEFAULT_SCALE: u32 = 100;
/// A run slower than this is killed and reported as failed.
const RUN_TIMEOUT: Duration = Duration::from_secs(1800);

struct Measured {
    seconds: f64,
    peak_rss_kib: u64,
    stored: u64,
}

pub fn main(args: &[String]) {
    let mut scale = DEFAULT_SCALE;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--scale" => {
                scale = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--scale takes a number")
            }
            other => panic!("unknown argument {other:?} (backup [--scale N])"),
        }
    }
    let scratch = Scratch::new("bench-backup");
    let file_archive = WalshipArchive::file(&scratch, "file-archive");
    let s3 = S3sFs::start(&scratch);
    let s3_archive = s3.archive(&scratch, "bench");
    let pgbackrest = PgBackRest::new(&scratch);

    let mut cluster = Cluster::init(&scratch, "source");
    // Every archive this benchmark backs up into gets the WAL (backup-push
    // and pgBackRest wait for it; so does pg_basebackup -X none).
    let walship_command = format!(
        "{} && {}",
        file_archive.archive_command(),
        s3_archive.archive_command()
    );
    cluster
        .set("archive_mode", "on")
        .set("archive_command", &walship_command)
        .set("max_wal_size", "1GB");
    cluster.start();
    let pgbackrest = pgbackrest.and_then(|p| p.stanza_create(&cluster).map(|()| p));
    if let Ok(p) = &pgbackrest {
        let command = format!("{walship_command} && {}", p.archive_push(&cluster));
        cluster.set("archive_command", command);
        cluster.psql("select pg_reload_conf()");
    }
    println!("# base backups ({})", walship_bin().display());
    println!(
        "machine: {} cores, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let t = Instant::now();
    cluster.pgbench(&["-i", "-s", &scale.to_string(), "-q"]);
    cluster.psql("checkpoint");
    // Archiving catches up first, so no run waits for the initial load's WAL.
    let last = cluster.switch_wal();
    cluster.wait_archived(&last, RUN_TIMEOUT);
    let bytes = dir_bytes(cluster.data_dir(), Some("pg_wal"));
    println!(
        "database: pgbench -i -s {scale} in {:.0}s; data directory without pg_wal: {:.0} MB\n",
        t.elapsed().as_secs_f64(),
        bytes as f64 / 1e6
    );
    println!("| tool | operation | seconds | MB/s | stored MB | peak RSS MiB |");
    println!("|---|---|---|---|---|---|");
    let row = |tool: &str, op: &str, r: Result<Measured, String>| match r {
        Ok(m) => println!(
            "| {tool} | {op} | {:.1} | {:.0} | {:.0} | {} |",
            m.seconds,
            bytes as f64 / 1e6 / m.seconds.max(0.001),
            m.stored as f64 / 1e6,
            if m.peak_rss_kib == 0 {
                "-".to_string()
            } else {
                format!("{:.0}", m.peak_rss_kib as f64 / 1024.0)
            }
        ),
        Err(why) => println!("| {tool} | {op} | skipped: {why} | | | |"),
    };

    let file_dir = file_archive.local_dir().unwrap().to_path_buf();
    let bucket_dir = s3.data_dir().join(S3sFs::BUCKET).join("bench");
    for (name, archive, stored_dir) in [
        ("walship file://", &file_archive, file_dir),
        ("walship s3 (s3s-fs)", &s3_archive, bucket_dir),
    ] {
        let pushed = walship_measured(archive, &["backup-push".into(), path(cluster.data_dir())])
            .map(|mut m| {
                m.stored = dir_bytes(&stored_dir.join("backups"), None);
                m
            });
        let ok = pushed.is_ok();
        row(name, "backup-push", pushed);
        if ok {
            let target = scratch.postgres_dir(&format!("restore-{}", name.len()), 0o700);
            let fetched = walship_measured(
                archive,
                &["backup-fetch".into(), path(&target), "LATEST".into()],
            );
            row(name, "backup-fetch", fetched);
            let _ = std::fs::remove_dir_all(&target);
        }
    }

    for (label, extra) in [
        ("pg_basebackup -Ft -X none", None),
        (
            "pg_basebackup -Ft -X none --compress=client-zstd:1",
            Some("--compress=client-zstd:1"),
        ),
    ] {
        let dest = scratch.postgres_dir(&format!("pgbb-{}", extra.is_some()), 0o700);
        let mut args = vec![
            "-h".to_string(),
            path(cluster.socket_dir()),
            "-p".into(),
            cluster.port().to_string(),
            "-U".into(),
            "postgres".into(),
            "-D".into(),
            path(&dest),
            "-Ft".into(),
            "-X".into(),
            "none".into(),
            "--checkpoint=fast".into(),
            "--no-sync".into(),
        ];
        args.extend(extra.map(str::to_string));
        let r = measured(&pg_bin("pg_basebackup"), &args, &[]).map(|mut m| {
            m.stored = dir_bytes(&dest, None);
            m
        });
        row(label, "backup", r);
        let _ = std::fs::remove_dir_all(&dest);
    }

    match &pgbackrest {
        Ok(p) => {
            let backed = p.backup(&cluster);
            let ok = backed.is_ok();
            row("pgBackRest full zst:1 process-max=4", "backup", backed);
            if ok {
                let target = scratch.postgres_dir("pgbackrest-restore", 0o700);
                row(
                    "pgBackRest full zst:1 process-max=4",
                    "restore",
                    p.restore(&target),
                );
            }
        }
        Err(why) => row("pgBackRest", "backup", Err(why.clone())),
    }
    cluster.stop();
}

fn postgres_home() -> String {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 5 && f[0] == "postgres").then(|| f[5].to_string())
        })
        .unwrap_or_else(|| "/tmp".into())
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn pg_bin(name: &str) -> PathBuf {
    walship_e2e::pg::pg_bin_dir().join(name)
}

/// Runs `program` as `postgres` and polls its peak RSS until it exits.
fn measured(program: &Path, args: &[String], env: &[(String, String)]) -> Result<Measured, String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if is_root() {
        // As runuser would: postgres's own HOME (walship's per-user plugin
        // directory, pgBackRest's and libpq's files), not root's.
        let (uid, gid) = postgres_ids();
        cmd.uid(uid)
            .gid(gid)
            .current_dir("/tmp")
            .env("HOME", postgres_home());
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let status = loop {
        if let Some(hwm) = std::fs::read_to_string(&status_file).ok().and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        }) {
            peak = peak.max(hwm);
        }
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if started.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{} took over {RUN_TIMEOUT:?}", program.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        return Err(format!(
            "{} failed ({status}): {}",
            program.display(),
            err.lines().last().unwrap_or("")
        ));
    }
    Ok(Measured {
        seconds,
        peak_rss_kib: peak,
        stored: 0,
    })
}

fn walship_measured(archive: &WalshipArchive, args: &[String]) -> Result<Measured, String> {
    let mut env = archive.settings();
    env.push(("PATH".into(), std::env::var("PATH").unwrap_or_default()));
    measured(walship_bin(), args, &env)
}

/// pgBackRest 2.45 with a posix repository, zstd level 1, 4 processes.
struct PgBackRest {
    conf: PathBuf,
    repo: PathBuf,
}

impl PgBackRest {
    fn new(scratch: &Scratch) -> Result<Self, String> {
        crate::peers::tools::install("pgbackrest", "pgbackrest")?;
        let dir = scratch.postgres_dir("pgbackrest", 0o700);
        let sub = |n: &str| scratch.postgres_dir(&format!("pgbackrest/{n}"), 0o700);
        let (repo, log, lock, spool) = (sub("repo"), sub("log"), sub("lock"), sub("spool"));
        let conf = format!(
            "[global]\nrepo1-type=posix\nrepo1-path={}\ncompress-type=zst\ncompress-level=1\n\
             process-max=4\nlog-path={}\nlock-path={}\nspool-path={}\nlog-level-console=warn\n\
             log-level-stderr=warn\nstart-fast=y\nrepo1-retention-full=9\n\n[bench]\n",
            repo.display(),
            log.display(),
            lock.display(),
            spool.display()
        );
        let _ = dir;
        let conf = scratch.postgres_file("pgbackrest/pgbackrest.conf", conf.as_bytes());
        Ok(Self { conf, repo })
    }

    fn base(&self, c: &Cluster) -> String {
        format!(
            "{} --pg1-socket-path={} --pg1-port={}",
            self.archive_base(c),
            shell_quote(&c.socket_dir().to_string_lossy()),
            c.port()
        )
    }

    /// archive-push takes no connection options.
    fn archive_base(&self, c: &Cluster) -> String {
        format!(
            "pgbackrest --config={} --stanza=bench --pg1-path={}",
            shell_quote(&self.conf.to_string_lossy()),
            shell_quote(&c.data_dir().to_string_lossy()),
        )
    }

    fn archive_push(&self, c: &Cluster) -> String {
        format!("{} archive-push %p", self.archive_base(c))
    }

    fn stanza_create(&self, c: &Cluster) -> Result<(), String> {
        let out = Run::new("sh")
            .args(["-c", &format!("{} stanza-create", self.base(c))])
            .as_postgres()
            .run();
        if out.success() {
            Ok(())
        } else {
            Err(format!("stanza-create failed: {}", out.stderr.trim()))
        }
    }

    fn backup(&self, c: &Cluster) -> Result<Measured, String> {
        let line = format!("exec {} --type=full backup", self.base(c));
        measured(Path::new("/bin/sh"), &["-c".into(), line], &[]).map(|mut m| {
            m.stored = dir_bytes(&self.repo.join("backup"), None);
            m
        })
    }

    fn restore(&self, target: &Path) -> Result<Measured, String> {
        let line = format!(
            "exec pgbackrest --config={} --stanza=bench --pg1-path={} restore",
            shell_quote(&self.conf.to_string_lossy()),
            shell_quote(&target.to_string_lossy())
        );
        measured(Path::new("/bin/sh"), &["-c".into(), line], &[])
    }
}

/// Bytes of the regular files below `dir`, leaving out a top-level `skip`.
fn dir_bytes(dir: &Path, skip: Option<&str>) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if d == dir && skip.is_some_and(|s| e.file_name() == s) {
                continue;
            }
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) if m.is_file() => total += m.len(),
                _ => {}
            }
        }
    }
    total
}

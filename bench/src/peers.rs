//! `cargo xtask bench -- peers [--segments N] [--only WORD]`: walship side
//! by side with the archivers installed on this machine, on the same WAL.
//!
//! The workload is made once: a PostgreSQL 15 cluster initialised with
//! pgbench, a base backup, then pgbench (its TPC-B transactions plus bulk
//! inserts of hex text) until N segments follow the backup, with archiving
//! held (`archive_mode = on`, empty `archive_command`: PostgreSQL marks each
//! finished segment `.ready` and archives nothing). The stopped cluster is
//! the template of every archive run:
//!
//! - archive: a copy of the template starts, still held; the tool's
//!   `archive_command` is set and the configuration reloaded, and the clock
//!   runs until no segment is `.ready` and `pg_stat_archiver` has the last
//!   one. This is archiving speed alone, the backlog drained as PostgreSQL's
//!   archiver drives it (one process per segment).
//! - restore: a copy of the base backup (its own WAL removed, so everything
//!   comes through `restore_command`) with `recovery.signal` starts; the
//!   clock runs from `pg_ctl start` until `pg_is_in_recovery()` is false,
//!   after recovery reached the end of the archive (checked).
//!
//! Tools: `cp` + fsync (the floor), walship (file, S3 over HTTP and over TLS),
//! pgBackRest (posix and S3 repositories, sync and async, gz and zst) and
//! barman-cloud (S3), the S3 ones against one local s3s-fs. Debian packages
//! that are missing are installed when running as root. A tool that cannot
//! be installed or fails is reported as skipped, with why. Figures are
//! printed, with the targets next to the ratios; nothing is asserted.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use walship_e2e::emulators::{S3sFs, Stunnel};
use walship_e2e::pg::segment_number;
use walship_e2e::process::shell_quote;
use walship_e2e::walship::{walship_bin, workspace_root};
use walship_e2e::{Cluster, Run, Scratch};

pub(crate) mod tools;

use tools::{S3, Skipped, Tool, first_lines};

const DEFAULT_SEGMENTS: u64 = 64;
const SEGMENT_MIB: f64 = 16.0;
/// A run slower than this is reported as failed (barman at 2 s a segment
/// takes 2 minutes for 64).
const RUN_TIMEOUT: Duration = Duration::from_secs(1200);
/// archive_command failures after which a tool is declared broken.
const MAX_FAILURES: i64 = 5;

struct Options {
    segments: u64,
    only: Vec<String>,
}

fn options(args: &[String]) -> Options {
    let mut options = Options {
        segments: DEFAULT_SEGMENTS,
        only: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--segments" => {
                options.segments = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n >= 2)
                    .expect("--segments takes a number ≥ 2");
            }
            "--only" => options
                .only
                .push(args.next().expect("--only takes a word").clone()),
            other => panic!(
                "peers: unknown argument {other:?}; usage: peers [--segments N] [--only WORD]..."
            ),
        }
    }
    options
}

/// The WAL every tool archives and restores.
struct Workload {
    scratch: Scratch,
    /// A stopped cluster whose finished segments all wait as `.ready`.
    template: PathBuf,
    /// A base backup taken before that WAL, without WAL of its own.
    backup: PathBuf,
    /// The last finished segment: the end of every archive.
    last: String,
    /// Segments waiting to be archived.
    pending: u64,
    /// Segments recovery of the backup replays (its start to `last`).
    replayed: u64,
}

/// One timed run.
struct Measure {
    segments: u64,
    seconds: f64,
    /// CPU time the whole machine spent during the run (every process:
    /// PostgreSQL, the tool, the S3 stand-in): near cores × seconds means
    /// the run was CPU-bound, well below means it waited.
    cpu_seconds: f64,
    stored: u64,
}

type Outcome = Result<Measure, String>;

pub fn main(args: &[String]) {
    let options = options(args);
    let scratch = Scratch::new("peers");
    snapshot_walship(&scratch);
    println!(
        "# walship and its peers, same WAL ({})",
        walship_bin().display()
    );
    println!(
        "machine: {} cores, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    let t = Instant::now();
    let workload = generate(&scratch, options.segments);
    println!(
        "workload: pgbench -i -s 10, base backup, then pgbench (tpcb-like@4 + bulk insert of \
         hex text@1, 2 clients) until at least {} segments follow the backup; made in {:.0}s.\n\
         archive: {} held segments (archive_mode=on, empty archive_command), the tool's command \
         set and reloaded, timed until none is .ready and pg_stat_archiver has {}.\n\
         restore: the base backup (its pg_wal emptied) with recovery.signal, {} segments through \
         restore_command, timed from pg_ctl start until pg_is_in_recovery() is false.\n",
        options.segments,
        t.elapsed().as_secs_f64(),
        workload.pending,
        workload.last,
        workload.replayed
    );

    let (s3, s3_why) = match catch(|| {
        let server = S3sFs::start(&scratch);
        let tls = Stunnel::start(&scratch, server.port());
        S3 { server, tls }
    }) {
        Ok(s3) => (Some(s3), String::new()),
        Err(why) => (None, format!("no local S3 server: {why}")),
    };
    let tools = tools::all(&scratch, s3.as_ref(), &s3_why);
    versions();

    println!(
        "| tool | workload | segments | seconds | MiB/s | stored bytes | machine CPU s | CPU ms per segment |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut rows: Vec<(String, &'static str, Outcome)> = Vec::new();
    let mut by_key: BTreeMap<(String, &'static str), f64> = BTreeMap::new();
    for tool in tools {
        let tool = match tool {
            Ok(tool) => tool,
            Err(Skipped { name, why }) => {
                for workload in ["archive", "restore"] {
                    let outcome = Err(why.clone());
                    print_row(&name, workload, &outcome);
                    rows.push((name.clone(), workload, outcome));
                }
                continue;
            }
        };
        let wanted = options.only.is_empty()
            || options
                .only
                .iter()
                .any(|w| tool.key.contains(w.as_str()) || tool.key == "cp");
        if !wanted {
            continue;
        }
        eprintln!("peers: {} ...", tool.name);
        let archived = catch(|| archive(&workload, &tool)).and_then(|r| r);
        print_row(&tool.name, "archive", &archived);
        let restored = match &archived {
            Ok(_) => catch(|| restore(&workload, &tool)).and_then(|r| r),
            Err(_) => Err("nothing archived".to_string()),
        };
        print_row(&tool.name, "restore", &restored);
        tool.remove_archive();
        for (workload, outcome) in [("archive", &archived), ("restore", &restored)] {
            if let Ok(m) = outcome {
                by_key.insert((tool.key.clone(), workload), m.seconds);
            }
        }
        rows.push((tool.name.clone(), "archive", archived));
        rows.push((tool.name.clone(), "restore", restored));
    }

    println!("\n## all runs (load average now {})", loadavg());
    println!(
        "| tool | workload | segments | seconds | MiB/s | stored bytes | machine CPU s | CPU ms per segment |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, workload, outcome) in &rows {
        print_row(name, workload, outcome);
    }
    ratios(&by_key);
}

/// Runs `f`, turning a panic of the harness (a server that did not start, a
/// command that failed) into its message.
fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let text = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".to_string());
        format!("failed: {}", first_lines(&text))
    })
}

fn print_row(name: &str, workload: &str, outcome: &Outcome) {
    match outcome {
        Ok(m) => println!(
            "| {name} | {workload} | {} | {:.1} | {:.0} | {} | {:.1} | {:.0} |",
            m.segments,
            m.seconds,
            m.segments as f64 * SEGMENT_MIB / m.seconds,
            m.stored,
            m.cpu_seconds,
            m.cpu_seconds * 1000.0 / m.segments as f64,
        ),
        Err(why) => println!("| {name} | {workload} | skipped: {why} | | | | | |"),
    }
}

/// Busy CPU seconds of the whole machine since boot (all cores; `/proc/stat`
/// counts in USER_HZ, 100 per second on Linux).
fn machine_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(total) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    // user nice system idle iowait irq softirq steal: busy is all but idle
    // and iowait.
    let ticks: Vec<f64> = total
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|t| t.parse().ok())
        .collect();
    let busy: f64 = ticks
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    busy / 100.0
}

/// A private copy of `dist/`, used by every run: a `cargo xtask dist`
/// elsewhere in the tree during the benchmark (it deletes `dist/` first)
/// would otherwise fail the runs in flight.
fn snapshot_walship(scratch: &Scratch) {
    if std::env::var_os("WALSHIP_BIN").is_some() {
        return;
    }
    let dist = workspace_root().join("dist");
    let copy = scratch.path().join("dist");
    Run::new("cp").arg("-a").arg(&dist).arg(&copy).run().ok();
    Run::new("chmod").args(["-R", "a+rX"]).arg(&copy).run().ok();
    // SAFETY: no other thread exists yet; walship_bin() reads it once, later.
    unsafe { std::env::set_var("WALSHIP_BIN", copy.join("bin/walship")) };
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn versions() {
    let version = |line: &str| {
        let out = Run::new("sh").args(["-c", line]).quiet().run();
        if out.success() {
            first_lines(&(out.stdout + &out.stderr))
        } else {
            "not installed".to_string()
        }
    };
    println!(
        "versions: {}; {}; {}; {}; s3s-fs {} (S3 stand-in)\n",
        version(&format!(
            "{} --version",
            shell_quote(&walship_bin().to_string_lossy())
        )),
        version("pgbackrest version"),
        version("barman-cloud-wal-archive --version"),
        version("cp --version | head -1"),
        walship_e2e::emulators::S3S_FS_VERSION
    );
}

fn generate(scratch: &Scratch, segments: u64) -> Workload {
    let mut source = Cluster::init(scratch, "source");
    source
        .set("max_wal_size", "4GB")
        .set("checkpoint_timeout", "30min");
    source.start();
    source.pgbench(&["-i", "-s", "10", "-q"]);
    source.psql("create table bulk (id int, payload text)");
    source.stop();
    // From here on every finished segment waits as .ready.
    source.set("archive_mode", "on").set("archive_command", "");
    source.start();
    // With WAL included, pg_basebackup does not wait for archiving.
    let backup = source.basebackup("base", &["--wal-method=fetch"]);
    let label = std::fs::read_to_string(backup.join("backup_label")).expect("read backup_label");
    let start = label
        .lines()
        .find_map(|l| l.strip_prefix("START WAL LOCATION: "))
        .and_then(|l| l.split("(file ").nth(1))
        .map(|f| f.trim_end_matches(')').to_string())
        .expect("backup_label names its start segment");
    empty_pg_wal(&backup);
    // Hex text compresses about 2:1, like much real data; pgbench's own
    // transactions add the small records and page images of an OLTP load.
    let script = scratch.postgres_file(
        "bulk.sql",
        b"insert into bulk select g, repeat(md5(random()::text), 7) \
          from generate_series(1, 2000) g;\n",
    );
    let bulk = format!("{}@1", script.display());
    loop {
        source.pgbench(&[
            "-n",
            "-c",
            "2",
            "-j",
            "2",
            "-T",
            "1",
            "-b",
            "tpcb-like@4",
            "-f",
            &bulk,
        ]);
        let current = source.psql("select pg_walfile_name(pg_current_wal_lsn())");
        if segment_number(&current) - segment_number(&start) + 1 >= segments {
            break;
        }
    }
    let last = source.switch_wal();
    source.stop();
    let template = source.data_dir().to_path_buf();
    let pending = ready(&template) as u64;
    Workload {
        scratch: scratch.clone(),
        template,
        backup,
        replayed: segment_number(&last) - segment_number(&start) + 1,
        last,
        pending,
    }
}

/// Removes the WAL files of a base backup, so that recovery takes every
/// segment from the archive.
fn empty_pg_wal(data: &Path) {
    for entry in std::fs::read_dir(data.join("pg_wal"))
        .expect("read pg_wal")
        .flatten()
    {
        if entry.path().is_file() {
            std::fs::remove_file(entry.path()).expect("remove WAL file of the backup");
        }
    }
}

/// Segments marked `.ready` in a data directory.
fn ready(data: &Path) -> usize {
    std::fs::read_dir(data.join("pg_wal/archive_status"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".ready"))
                .count()
        })
        .unwrap_or(0)
}

/// A copy of a data directory as a new cluster, removed when done.
struct Copy(Option<Cluster>);

impl Copy {
    fn cluster(&mut self) -> &mut Cluster {
        self.0
            .as_mut()
            .expect("the cluster lives until the copy is dropped")
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        if let Some(cluster) = self.0.take() {
            let root = cluster.root_dir().to_path_buf();
            // Stops the server if it still runs.
            drop(cluster);
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

fn archive(w: &Workload, tool: &Tool) -> Outcome {
    let mut copy = Copy(Some(Cluster::from_backup(
        &w.scratch,
        &format!("a-{}", tool.key),
        &w.template,
    )));
    let cluster = copy.cluster();
    cluster
        .set("max_wal_size", "4GB")
        .set("archive_mode", "on")
        .set("archive_command", "");
    cluster.start();
    tool.prepare(cluster)?;
    let command = tool.archive_command(cluster);
    cluster.set("archive_command", command);
    cluster.psql("select pg_reload_conf()");
    let start = Instant::now();
    let cpu_start = machine_cpu_seconds();
    let mut checked = Instant::now();
    loop {
        // Polling the directory costs no process; pg_stat_archiver is asked
        // once it looks done, and twice a second for failures.
        let empty = ready(cluster.data_dir()) == 0;
        if empty || checked.elapsed() > Duration::from_millis(500) {
            checked = Instant::now();
            let stats = cluster.archiver_stats();
            if empty && stats.last_archived_wal.as_str() >= w.last.as_str() {
                break;
            }
            if stats.failed_count >= MAX_FAILURES {
                return Err(format!(
                    "{} archive_command failures, last for {}: {}",
                    stats.failed_count,
                    stats.last_failed_wal,
                    first_lines(&failure_lines(cluster))
                ));
            }
        }
        if start.elapsed() > RUN_TIMEOUT {
            return Err(format!(
                "not done after {RUN_TIMEOUT:?}: {} still .ready",
                ready(cluster.data_dir())
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu_seconds = machine_cpu_seconds() - cpu_start;
    cluster.stop();
    Ok(Measure {
        segments: w.pending,
        seconds,
        cpu_seconds,
        stored: tool.stored_bytes(),
    })
}

fn restore(w: &Workload, tool: &Tool) -> Outcome {
    let mut copy = Copy(Some(Cluster::from_backup(
        &w.scratch,
        &format!("r-{}", tool.key),
        &w.backup,
    )));
    let cluster = copy.cluster();
    let command = tool.restore_command(cluster);
    cluster.set("restore_command", command);
    cluster.touch("recovery.signal");
    let start = Instant::now();
    let cpu_start = machine_cpu_seconds();
    cluster.start();
    loop {
        if let Ok(s) = cluster.try_psql("select pg_is_in_recovery()")
            && s == "f"
        {
            break;
        }
        if !cluster.is_running() {
            return Err(format!(
                "the server stopped during recovery: {}",
                first_lines(&failure_lines(cluster))
            ));
        }
        if start.elapsed() > RUN_TIMEOUT {
            return Err(format!("still in recovery after {RUN_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu_seconds = machine_cpu_seconds() - cpu_start;
    // The new timeline begins where recovery ended: after the last
    // archived segment, unless recovery stopped early.
    let now = cluster.psql("select pg_walfile_name(pg_current_wal_lsn())");
    if segment_number(&now) <= segment_number(&w.last) {
        return Err(format!(
            "recovery ended early, in {now}; the archive ends with {}",
            w.last
        ));
    }
    cluster.stop();
    Ok(Measure {
        segments: w.replayed,
        seconds,
        cpu_seconds,
        stored: tool.stored_bytes(),
    })
}

/// The server log's error lines (where the tools' stderr goes).
fn failure_lines(cluster: &Cluster) -> String {
    cluster
        .log_tail(200)
        .lines()
        .filter(|l| {
            !l.contains(" LOG: ")
                && !l.contains("WARNING:  archive_mode enabled, yet archiving is not configured")
        })
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .join("\n")
}

/// walship against its peers, with the targets. For archiving the
/// ratio is of speed (peer seconds / walship seconds, higher is better);
/// for restore it is of time (walship seconds / cp seconds, lower is better).
fn ratios(by_key: &BTreeMap<(String, &'static str), f64>) {
    println!("\n## walship / peer");
    println!("| comparison | walship s | peer s | ratio | target | met |");
    println!("|---|---|---|---|---|---|");
    let speed = |what: &str, walship: &str, peer: &str, target: f64| {
        comparison(by_key, what, walship, peer, "archive", target, true)
    };
    speed(
        "archive, walship file:// vs cp + fsync (speed)",
        "walship-file",
        "cp",
        1.0,
    );
    for (walship, label) in [
        ("walship-s3-tls", "walship s3:// https"),
        ("walship-s3-tls-lz4", "walship s3:// https lz4"),
        ("walship-s3", "walship s3:// http"),
    ] {
        speed(
            &format!("archive, {label} vs pgBackRest s3 async gz (speed)"),
            walship,
            "pgbackrest-s3-async-gz",
            3.0,
        );
        speed(
            &format!("archive, {label} vs pgBackRest s3 async zst (speed)"),
            walship,
            "pgbackrest-s3-async-zst",
            1.5,
        );
    }
    for (walship, label) in [
        ("walship-file", "walship file://"),
        ("walship-s3", "walship s3:// http"),
        ("walship-s3-tls", "walship s3:// https"),
    ] {
        comparison(
            by_key,
            &format!("restore, {label} vs cp floor (time)"),
            walship,
            "cp",
            "restore",
            1.05,
            false,
        );
    }
    println!(
        "\nspeed ratio = peer seconds / walship seconds (target: at least); \
         time ratio = walship seconds / cp seconds (target: at most). Printed, not asserted."
    );
}

fn comparison(
    by_key: &BTreeMap<(String, &'static str), f64>,
    what: &str,
    walship: &str,
    peer: &str,
    workload: &'static str,
    target: f64,
    speed: bool,
) {
    let get = |key: &str| by_key.get(&(key.to_string(), workload)).copied();
    match (get(walship), get(peer)) {
        (Some(w), Some(p)) => {
            let (ratio, met, sign) = if speed {
                (p / w, p / w >= target, "≥")
            } else {
                (w / p, w / p <= target, "≤")
            };
            println!(
                "| {what} | {w:.1} | {p:.1} | {ratio:.2}× | {sign} {target}× | {} |",
                if met { "yes" } else { "NO" }
            );
        }
        _ => println!("| {what} | | | | | no figure (a run was skipped) |"),
    }
}

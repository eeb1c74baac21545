//! A PostgreSQL cluster for one test: initdb or a copy of a base backup, its
//! settings, start/stop, queries, and waiting for archiving and recovery.
//!
//! Every cluster lives in its own directory of a [`Scratch`]: the data
//! directory, a private Unix socket directory and the server log. It listens on
//! no TCP address at all (`listen_addresses = ''`), so parallel tests cannot
//! collide; its port number, picked free anyway, only names the socket.
//!
//! Settings go to `walship_e2e.conf`, included at the end of
//! `postgresql.conf`, and are rewritten whole on every change, so a cluster
//! restored from a base backup starts from this harness's defaults rather than
//! inheriting the primary's.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::archive::Archive;
use crate::process::{Outcome, POSTGRES_USER, Run, chown_postgres, is_root, wait_for};
use crate::scratch::{Scratch, set_mode};

/// Name of the settings file the harness owns inside each data directory.
const CONF_FILE: &str = "walship_e2e.conf";

/// How long a server may take to start or stop. Generous: CI machines are
/// small and often busy compiling.
pub const START_TIMEOUT: Duration = Duration::from_secs(180);

/// Default bound for waits on archiving, replication and recovery.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(180);

/// Directory of the PostgreSQL server binaries: `$WALSHIP_E2E_PG_BIN`, else
/// Debian's PostgreSQL 15, else `pg_config --bindir`.
pub fn pg_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WALSHIP_E2E_PG_BIN") {
        return PathBuf::from(dir);
    }
    let debian = PathBuf::from("/usr/lib/postgresql/15/bin");
    if debian.join("initdb").is_file() {
        return debian;
    }
    let out = Run::new("pg_config").arg("--bindir").run();
    assert!(
        out.success(),
        "PostgreSQL server binaries not found: install postgresql-15 or set WALSHIP_E2E_PG_BIN"
    );
    PathBuf::from(out.out())
}

fn pg_tool(name: &str) -> Run {
    Run::new(pg_bin_dir().join(name)).as_postgres()
}

/// A port no other cluster of this process was given and that was free a
/// moment ago.
pub fn free_port() -> u16 {
    static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let taken = taken.get_or_insert_with(HashSet::new);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        if taken.insert(port) {
            return port;
        }
    }
}

/// Options for `initdb`.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// `--data-checksums`.
    pub data_checksums: bool,
    /// `--wal-segsize` in MiB; `None` keeps PostgreSQL's 16 MiB.
    pub wal_segsize_mb: Option<u32>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            data_checksums: true,
            wal_segsize_mb: None,
        }
    }
}

/// What `pg_stat_archiver` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiverStats {
    pub archived_count: i64,
    pub last_archived_wal: String,
    pub failed_count: i64,
    pub last_failed_wal: String,
}

/// One PostgreSQL cluster. Stopped (`pg_ctl stop -m immediate`) when dropped,
/// also when the test panics; a panicking test also gets the tail of the
/// server log printed.
#[derive(Debug)]
pub struct Cluster {
    name: String,
    root: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    log: PathBuf,
    port: u16,
    settings: BTreeMap<String, String>,
    // Keeps the directories alive until this cluster has been stopped.
    scratch: Scratch,
}

impl Cluster {
    /// `initdb` a new cluster named `name` (checksums on, trust auth,
    /// superuser `postgres`), with the harness's default settings. Not started.
    pub fn init(scratch: &Scratch, name: &str) -> Cluster {
        Cluster::init_with(scratch, name, &InitOptions::default())
    }

    pub fn init_with(scratch: &Scratch, name: &str, options: &InitOptions) -> Cluster {
        let cluster = Cluster::layout(scratch, name);
        let mut initdb = pg_tool("initdb")
            .arg("-D")
            .arg(&cluster.data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .timeout(Duration::from_secs(300));
        if options.data_checksums {
            initdb = initdb.arg("--data-checksums");
        }
        if let Some(mb) = options.wal_segsize_mb {
            initdb = initdb.arg(format!("--wal-segsize={mb}"));
        }
        initdb.run().ok();
        let conf = cluster.data.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf).expect("read postgresql.conf");
        text.push_str(&format!(
            "\n# Settings of the walship end-to-end tests.\ninclude '{CONF_FILE}'\n"
        ));
        fs::write(&conf, text).expect("write postgresql.conf");
        cluster.write_settings();
        cluster
    }

    /// A stopped cluster `name` that wrote a little data and finished
    /// `switches` segments, kept in pg_wal (`wal_keep_size`): material for
    /// calling `wal-push` by hand, from a data directory with pg_control.
    pub fn with_finished_segments(scratch: &Scratch, name: &str, switches: usize) -> Cluster {
        let mut cluster = Cluster::init(scratch, name);
        cluster.set("wal_keep_size", "1GB");
        cluster.start();
        cluster.psql("create table t (x int); insert into t select generate_series(1, 10000)");
        for _ in 0..switches {
            cluster.switch_wal();
        }
        cluster.stop();
        cluster
    }

    /// A new, stopped cluster whose data directory is a copy of `backup` (a
    /// directory made by [`Cluster::basebackup`]), with the harness's default
    /// settings (archiving off; no recovery settings). Add `recovery.signal`
    /// or `standby.signal` with [`Cluster::touch`].
    pub fn from_backup(scratch: &Scratch, name: &str, backup: &Path) -> Cluster {
        let cluster = Cluster::layout(scratch, name);
        fs::remove_dir(&cluster.data).expect("remove empty data dir");
        Run::new("cp")
            .arg("-a")
            .arg(backup)
            .arg(&cluster.data)
            .run()
            .ok();
        if is_root() {
            Run::new("chown")
                .arg("-R")
                .arg(POSTGRES_USER)
                .arg(&cluster.data)
                .run()
                .ok();
        }
        set_mode(&cluster.data, 0o700);
        // The copy carries the primary's settings file; replace it.
        cluster.write_settings();
        cluster
    }

    fn layout(scratch: &Scratch, name: &str) -> Cluster {
        let root = scratch.postgres_dir(name, 0o700);
        let data = scratch.postgres_dir(&format!("{name}/data"), 0o700);
        let socket_dir = scratch.postgres_dir(&format!("{name}/sock"), 0o700);
        let log = root.join("postgres.log");
        let port = free_port();
        let mut settings = BTreeMap::new();
        for (k, v) in [
            ("listen_addresses", ""),
            ("unix_socket_directories", &socket_dir.to_string_lossy()),
            ("port", &port.to_string()),
            ("lc_messages", "C"),
            ("TimeZone", "UTC"),
            ("log_line_prefix", "%m [%p] %b "),
            // Durability against OS crashes is not under test; speed is welcome.
            ("fsync", "off"),
            ("shared_buffers", "32MB"),
            ("max_connections", "30"),
            ("wal_level", "replica"),
            ("max_wal_size", "64MB"),
            ("min_wal_size", "32MB"),
            ("max_wal_senders", "5"),
            ("max_replication_slots", "5"),
            ("archive_mode", "off"),
            ("archive_timeout", "0"),
        ] {
            settings.insert(k.to_string(), v.to_string());
        }
        Cluster {
            name: name.to_string(),
            root,
            data,
            socket_dir,
            log,
            port,
            settings,
            scratch: scratch.clone(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding data, socket and log; owned by `postgres`.
    pub fn root_dir(&self) -> &Path {
        &self.root
    }

    /// A libpq connection string for this cluster (over its socket).
    pub fn conninfo(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.socket_dir.display(),
            self.port
        )
    }

    /// Sets a server setting (written at once; `reload` or restart to apply).
    /// The value is written quoted, which PostgreSQL accepts for every type.
    pub fn set(&mut self, key: &str, value: impl ToString) -> &mut Self {
        self.settings.insert(key.to_string(), value.to_string());
        self.write_settings();
        self
    }

    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings.get(key).map(String::as_str)
    }

    /// Archives every finished WAL file through `archive` (`archive_mode` =
    /// `mode`: "on" or "always").
    pub fn archive_to(&mut self, archive: &dyn Archive, mode: &str) -> &mut Self {
        self.set("archive_mode", mode)
            .set("archive_command", archive.archive_command())
            .set("archive_timeout", 0)
    }

    /// Recovers WAL from `archive` (`restore_command`).
    pub fn restore_from(&mut self, archive: &dyn Archive) -> &mut Self {
        self.set("restore_command", archive.restore_command())
    }

    fn write_settings(&self) {
        let mut text = String::from("# Written by walship-e2e; rewritten on every change.\n");
        for (k, v) in &self.settings {
            text.push_str(&format!("{k} = '{}'\n", v.replace('\'', "''")));
        }
        let path = self.data.join(CONF_FILE);
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        chown_postgres(&path);
    }

    /// Creates an empty file in the data directory (`recovery.signal`,
    /// `standby.signal`), owned by `postgres`.
    pub fn touch(&self, name: &str) {
        let path = self.data.join(name);
        fs::write(&path, b"").unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        chown_postgres(&path);
    }

    /// Removes a file from the data directory if it is there.
    pub fn remove(&self, name: &str) {
        let _ = fs::remove_file(self.data.join(name));
    }

    /// Starts the server and waits until it accepts connections (for a
    /// server in recovery: until it is consistent).
    pub fn start(&self) {
        let out = pg_tool("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-t", &START_TIMEOUT.as_secs().to_string(), "start"])
            .timeout(START_TIMEOUT + Duration::from_secs(30))
            .run();
        assert!(
            out.success(),
            "cluster {} did not start:\n{out}\nserver log:\n{}",
            self.name,
            self.log_tail(60)
        );
    }

    /// Stops the server cleanly (`-m fast`); the archiver gets to finish.
    pub fn stop(&self) {
        self.pg_ctl_stop("fast").ok();
    }

    /// Stops the server like a crash (`-m immediate`).
    pub fn stop_immediate(&self) {
        self.pg_ctl_stop("immediate").ok();
    }

    fn pg_ctl_stop(&self, mode: &str) -> Outcome {
        pg_tool("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args([
                "-m",
                mode,
                "-w",
                "-t",
                &START_TIMEOUT.as_secs().to_string(),
                "stop",
            ])
            .timeout(START_TIMEOUT + Duration::from_secs(30))
            .run()
    }

    pub fn is_running(&self) -> bool {
        self.data.join("postmaster.pid").exists()
    }

    /// Promotes a standby or a paused recovery, and waits until it is done.
    pub fn promote(&self) {
        pg_tool("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", &START_TIMEOUT.as_secs().to_string(), "promote"])
            .timeout(START_TIMEOUT + Duration::from_secs(30))
            .run()
            .ok();
        self.wait_out_of_recovery();
    }

    fn psql_run(&self, sql: &str) -> Run {
        pg_tool("psql")
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ])
            .timeout(Duration::from_secs(300))
    }

    /// Runs `sql` and returns its output (unaligned, tuples only, no trailing
    /// newline). With several statements, psql prints every result.
    #[track_caller]
    pub fn psql(&self, sql: &str) -> String {
        match self.try_psql(sql) {
            Ok(out) => out,
            Err(out) => panic!(
                "query failed on cluster {}:\n{out}\nserver log:\n{}",
                self.name,
                self.log_tail(40)
            ),
        }
    }

    /// Like [`Cluster::psql`], but a failure is returned, not a panic.
    pub fn try_psql(&self, sql: &str) -> Result<String, Outcome> {
        let out = self.psql_run(sql).quiet().run();
        if out.success() {
            Ok(out.out().to_string())
        } else {
            Err(out)
        }
    }

    /// Runs a query that returns one integer.
    #[track_caller]
    pub fn psql_i64(&self, sql: &str) -> i64 {
        let out = self.psql(sql);
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("`{sql}` returned {out:?}, not an integer"))
    }

    /// Runs pgbench against this cluster's `postgres` database.
    pub fn pgbench(&self, args: &[&str]) {
        pg_tool("pgbench")
            .arg("-h")
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres"])
            .args(args)
            .arg("postgres")
            .timeout(Duration::from_secs(600))
            .run()
            .ok();
    }

    /// Writes a WAL record, then switches to a new segment; returns the name of
    /// the segment that was finished. (Without the record a switch would be a
    /// no-op.) Primary only.
    pub fn switch_wal(&self) -> String {
        self.psql("select pg_logical_emit_message(false, 'walship-e2e', 'switch')");
        self.psql("select pg_walfile_name(pg_switch_wal())")
    }

    pub fn archiver_stats(&self) -> ArchiverStats {
        let row = self.psql(
            "select archived_count, coalesce(last_archived_wal, ''), failed_count, \
             coalesce(last_failed_wal, '') from pg_stat_archiver",
        );
        let fields: Vec<&str> = row.split('|').collect();
        assert_eq!(fields.len(), 4, "unexpected pg_stat_archiver row {row:?}");
        ArchiverStats {
            archived_count: fields[0].parse().expect("archived_count"),
            last_archived_wal: fields[1].to_string(),
            failed_count: fields[2].parse().expect("failed_count"),
            last_failed_wal: fields[3].to_string(),
        }
    }

    /// Waits until WAL file `name` and every file before it have been
    /// archived: none of them is still `.ready`, and the archiver has reached
    /// `name` (it may be recycled already, so `.done` is not required).
    /// Works on a standby with `archive_mode = always` too.
    #[track_caller]
    pub fn wait_archived(&self, name: &str, timeout: Duration) -> ArchiverStats {
        self.wait_for(&format!("{name} to be archived"), timeout, |c| {
            let pending = c.psql_i64(&format!(
                "select count(*) from pg_ls_archive_statusdir() \
                 where name like '%.ready' and name <= '{name}.ready'"
            ));
            let done = c.psql_i64(&format!(
                "select count(*) from pg_ls_archive_statusdir() where name = '{name}.done'"
            ));
            let stats = c.archiver_stats();
            if pending == 0 && (done == 1 || stats.last_archived_wal.as_str() >= name) {
                Ok(stats)
            } else {
                Err(format!(
                    "{pending} file(s) up to {name} still .ready; {stats:?}"
                ))
            }
        })
    }

    pub fn is_in_recovery(&self) -> bool {
        self.psql("select pg_is_in_recovery()") == "t"
    }

    /// Waits until recovery has ended and the server accepts writes.
    #[track_caller]
    pub fn wait_out_of_recovery(&self) {
        self.wait_for("recovery to end", WAIT_TIMEOUT, |c| {
            match c.try_psql("select pg_is_in_recovery()") {
                Ok(s) if s == "f" => Ok(()),
                Ok(s) => Err(format!("pg_is_in_recovery() = {s}")),
                Err(out) => Err(out.to_string()),
            }
        });
    }

    /// Polls `probe` (given this cluster) until it returns `Ok`; panics after
    /// `timeout` with the last `Err`, or at once if the server has died.
    #[track_caller]
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut(&Cluster) -> Result<T, String>,
    ) -> T {
        let what = format!("{what} on cluster {}", self.name);
        wait_for(&what, timeout, || {
            let result = probe(self);
            assert!(
                result.is_ok() || self.is_running(),
                "the server stopped while waiting for {what}; server log:\n{}",
                self.log_tail(30)
            );
            result
        })
    }

    /// `pg_basebackup` into a new directory `name` of the scratch directory
    /// (fast checkpoint, plus `extra` arguments such as `--wal-method=none`
    /// or `-R`). Returns the directory.
    pub fn basebackup(&self, name: &str, extra: &[&str]) -> PathBuf {
        let dest = self.scratch.postgres_dir(name, 0o700);
        pg_tool("pg_basebackup")
            .arg("-h")
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-D"])
            .arg(&dest)
            .args(["--checkpoint=fast", "--no-sync"])
            .args(extra)
            .timeout(Duration::from_secs(600))
            .run()
            .ok();
        dest
    }

    /// The database system identifier (from pg_control).
    pub fn system_identifier(&self) -> String {
        let out = pg_tool("pg_controldata").arg(&self.data).run().ok();
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix("Database system identifier:"))
            .map(|s| s.trim().to_string())
            .expect("pg_controldata prints the system identifier")
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Finished WAL segment files in `pg_wal` (24 hex digits), sorted.
    pub fn wal_segments(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.data.join("pg_wal"))
            .expect("read pg_wal")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| is_segment_name(n))
            .collect();
        names.sort();
        names
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- server log of cluster {} ({}), last lines ----\n{}\n----",
                self.name,
                self.data.display(),
                self.log_tail(60)
            );
        }
        if self.is_running() {
            let out = self.pg_ctl_stop("immediate");
            if !out.success() {
                eprintln!("could not stop cluster {}:\n{out}", self.name);
            }
        }
    }
}

/// True for a WAL segment file name: 24 upper-case hex digits.
pub fn is_segment_name(name: &str) -> bool {
    name.len() == 24
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

/// The position of a segment within its timeline, for counting how many lie
/// between two names. Assumes PostgreSQL's default 16 MiB segments (256 per
/// "log" number).
pub fn segment_number(name: &str) -> u64 {
    assert!(is_segment_name(name), "{name:?} is not a segment name");
    let log = u64::from_str_radix(&name[8..16], 16).expect("hex");
    let seg = u64::from_str_radix(&name[16..24], 16).expect("hex");
    log * 256 + seg
}

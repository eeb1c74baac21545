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
//!
//! A cluster runs the binaries of one major version ([`PgBinaries`]): the
//! default installation, or any of the matrix 10..18. What differs between
//! versions is handled here: recovery settings go to `recovery.conf` (with
//! `standby_mode`) before 12 and to the settings file plus a signal file from
//! 12 on ([`Cluster::request_recovery`]); `wal_keep_segments` before 13,
//! `wal_keep_size` after ([`Cluster::keep_wal_mb`]).

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::archive::Archive;
pub use crate::pg_versions::PgBinaries;
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

/// Settings that belong to recovery: before PostgreSQL 12 they live in
/// `recovery.conf` and a server refuses to start with them in
/// postgresql.conf; from 12 on they are ordinary settings.
const RECOVERY_SETTINGS: &[&str] = &[
    "restore_command",
    "archive_cleanup_command",
    "recovery_end_command",
    "recovery_target",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_xid",
    "recovery_target_lsn",
    "recovery_target_inclusive",
    "recovery_target_timeline",
    "recovery_target_action",
    "primary_conninfo",
    "primary_slot_name",
    "recovery_min_apply_delay",
];

/// The first major version with `recovery.signal` / `standby.signal` and
/// recovery settings in postgresql.conf.
const SIGNAL_FILES_SINCE: u32 = 12;
/// The first major version with `wal_keep_size` (before: `wal_keep_segments`).
const WAL_KEEP_SIZE_SINCE: u32 = 13;

/// How a cluster started from a base backup recovers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Archive recovery, to the target settings or the end of the WAL
    /// (`recovery.signal`; `recovery.conf` before 12).
    Archive,
    /// A standby (`standby.signal`; `recovery.conf` with `standby_mode = on`
    /// before 12).
    Standby,
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
    /// The binaries; `None`: the default installation.
    pub binaries: Option<PgBinaries>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            data_checksums: true,
            wal_segsize_mb: None,
            binaries: None,
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
    bins: PgBinaries,
    /// Set by [`Cluster::request_recovery`]: before 12, the recovery
    /// settings are written to `recovery.conf` while it has not been
    /// consumed (renamed `recovery.done`) by the server.
    recovery: Option<Recovery>,
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
        let bins = options
            .binaries
            .clone()
            .unwrap_or_else(PgBinaries::default_install);
        let mut cluster = Cluster::layout(scratch, name, bins);
        let mut initdb = cluster
            .server_tool("initdb")
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
        cluster.fit_wal_sizes();
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
        // The binaries of the backup's own major version.
        let version = fs::read_to_string(backup.join("PG_VERSION"))
            .unwrap_or_else(|e| panic!("{}/PG_VERSION: {e}", backup.display()));
        let major = version
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{}/PG_VERSION holds {version:?}", backup.display()));
        let mut cluster = Cluster::layout(scratch, name, PgBinaries::for_major(major));
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
        cluster.fit_wal_sizes();
        // The copy carries the primary's settings file; replace it.
        cluster.write_settings();
        cluster
    }

    fn layout(scratch: &Scratch, name: &str, bins: PgBinaries) -> Cluster {
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
            bins,
            recovery: None,
            scratch: scratch.clone(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// PostgreSQL's major version of this cluster (10, ..., 18).
    pub fn major(&self) -> u32 {
        self.bins.major
    }

    pub fn binaries(&self) -> &PgBinaries {
        &self.bins
    }

    /// `initdb`, `pg_ctl`: the cluster's own version, as `postgres`.
    fn server_tool(&self, name: &str) -> Run {
        Run::new(self.bins.server.join(name)).as_postgres()
    }

    /// `psql`, `pgbench`, ...: the default installation's, as `postgres`.
    fn client_tool(&self, name: &str) -> Run {
        Run::new(self.bins.client.join(name)).as_postgres()
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

    /// PostgreSQL refuses to start with a `min_wal_size` below two
    /// segments: with segments larger than the harness's defaults allow
    /// (`initdb --wal-segsize`), raise both sizes.
    fn fit_wal_sizes(&mut self) {
        let segment_mb = self.wal_segment_size() >> 20;
        if 2 * segment_mb > 32 {
            let min = 2 * segment_mb;
            self.settings
                .insert("min_wal_size".into(), format!("{min}MB"));
            self.settings
                .insert("max_wal_size".into(), format!("{}MB", 2 * min));
        }
    }

    /// Keeps at least `mb` MiB of finished WAL in pg_wal (`wal_keep_size`,
    /// or as many `wal_keep_segments` before 13).
    pub fn keep_wal_mb(&mut self, mb: u64) -> &mut Self {
        if self.major() >= WAL_KEEP_SIZE_SINCE {
            self.set("wal_keep_size", format!("{mb}MB"))
        } else {
            let segment_mb = self.wal_segment_size() >> 20;
            self.set("wal_keep_segments", mb.div_ceil(segment_mb.max(1)))
        }
    }

    /// The WAL segment size initdb chose, read from `global/pg_control`
    /// (the field after the float-format marker), so it is known before the
    /// server first starts.
    pub fn wal_segment_size(&self) -> u64 {
        let bytes = fs::read(self.data.join("global/pg_control")).expect("read pg_control");
        let marker = 1_234_567.0f64.to_le_bytes();
        let at = (64..512)
            .step_by(8)
            .find(|&o| bytes[o..o + 8] == marker)
            .expect("float-format marker in pg_control");
        u64::from(u32::from_le_bytes(
            bytes[at + 20..at + 24].try_into().unwrap(),
        ))
    }

    /// Makes the next start recover: `recovery.signal` / `standby.signal`
    /// from 12 on; before 12, `recovery.conf` with the recovery settings
    /// (and `standby_mode = 'on'` for a standby), kept up to date by
    /// [`Cluster::set`] until the server has consumed it.
    pub fn request_recovery(&mut self, how: Recovery) -> &mut Self {
        self.recovery = Some(how);
        if self.major() >= SIGNAL_FILES_SINCE {
            self.touch(match how {
                Recovery::Archive => "recovery.signal",
                Recovery::Standby => "standby.signal",
            });
        } else {
            self.remove("recovery.done");
        }
        self.write_settings();
        self
    }

    fn write_settings(&self) {
        let old_style_recovery = self.major() < SIGNAL_FILES_SINCE;
        let is_recovery_setting = |k: &str| RECOVERY_SETTINGS.contains(&k);
        let line = |k: &str, v: &str| format!("{k} = '{}'\n", v.replace('\'', "''"));
        let mut text = String::from("# Written by walship-e2e; rewritten on every change.\n");
        for (k, v) in &self.settings {
            if !(old_style_recovery && is_recovery_setting(k)) {
                text.push_str(&line(k, v));
            }
        }
        let path = self.data.join(CONF_FILE);
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        chown_postgres(&path);

        // Before 12: recovery.conf, until the server renames it recovery.done
        // at the end of recovery (writing it again then would send the next
        // start back into recovery).
        if let Some(how) = self.recovery
            && old_style_recovery
            && !self.data.join("recovery.done").exists()
        {
            let mut text = String::from("# Written by walship-e2e.\n");
            if how == Recovery::Standby {
                text.push_str(&line("standby_mode", "on"));
            }
            for (k, v) in self.settings.iter().filter(|(k, _)| is_recovery_setting(k)) {
                text.push_str(&line(k, v));
            }
            let path = self.data.join("recovery.conf");
            fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            chown_postgres(&path);
        }
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
        let out = self
            .server_tool("pg_ctl")
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
        self.server_tool("pg_ctl")
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
        self.server_tool("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", &START_TIMEOUT.as_secs().to_string(), "promote"])
            .timeout(START_TIMEOUT + Duration::from_secs(30))
            .run()
            .ok();
        self.wait_out_of_recovery();
    }

    fn psql_run(&self, sql: &str) -> Run {
        self.client_tool("psql")
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
        self.client_tool("pgbench")
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
        // pg_ls_archive_statusdir() is 12+; pg_ls_dir works everywhere.
        let status_dir = if self.major() >= 12 {
            "pg_ls_archive_statusdir()"
        } else {
            "(select pg_ls_dir('pg_wal/archive_status') as name) s"
        };
        self.wait_for(&format!("{name} to be archived"), timeout, |c| {
            let pending = c.psql_i64(&format!(
                "select count(*) from {status_dir} \
                 where name like '%.ready' and name <= '{name}.ready'"
            ));
            let done = c.psql_i64(&format!(
                "select count(*) from {status_dir} where name = '{name}.done'"
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
        self.client_tool("pg_basebackup")
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
        if !self.bins.clients_match() {
            // No pg_controldata of this version: ask the server.
            assert!(
                self.is_running(),
                "system_identifier() of a PostgreSQL {} cluster needs it running",
                self.major()
            );
            return self.psql("select system_identifier from pg_control_system()");
        }
        let out = self
            .client_tool("pg_controldata")
            .arg(&self.data)
            .run()
            .ok();
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

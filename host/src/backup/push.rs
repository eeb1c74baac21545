//! Taking a base backup with PostgreSQL's low-level API: `pg_backup_start`
//! and `pg_backup_stop` in one SQL session, the files read by walship itself
//! in between, as volumes built, compressed and uploaded in parallel.
//!
//! Why not the replication protocol's BASE_BACKUP (docs/backups.md): the
//! server sends one stream per tablespace over one connection, so it could
//! not be read, compressed and uploaded on several cores and connections at
//! once; it needs a replication connection and a pg_hba entry for it; and
//! tokio-postgres does not speak that protocol. WAL-G and pgBackRest copy
//! the files themselves too.

use std::cell::{Cell, RefCell};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, anyhow, bail};
use tokio::sync::mpsc;

use super::catalog::{self, BackupRecord, Reservation, VolumeRecord};
use super::connect::{ConnSettings, chain};
use super::progress::{Progress, human_bytes};
use super::volume::{self, Msg};
use super::walk::{self, EntryKind};
use crate::archive::ArchiveError;
use crate::identity::IDENTITY_KEY;
use crate::object_format::Compression;
use crate::pg_control::{ClusterIdentity, read_cluster_identity, read_consistent_control_file};
use crate::storage::{Key, ObjectStore, StorageError};

/// WAL-G's default for WALG_TAR_SIZE_THRESHOLD: about 1 GiB of tar per volume.
pub const DEFAULT_VOLUME_SIZE: u64 = 1 << 30;
/// Stored bytes per part: with a part being built, one queued and one in the
/// plugin, per volume in flight, this keeps memory well under 256 MiB.
const PART_SIZE: u64 = 8 << 20;
/// How long to wait for the first WAL file to reach an archive that has none.
const FIRST_ARCHIVE_WAIT: Duration = Duration::from_secs(60);
/// Where PostgreSQL keeps its control file, relative to the data directory.
const CONTROL_FILE: &str = "global/pg_control";
/// Reads of pg_control until one has a valid CRC (a few ms apart).
const CONTROL_FILE_READS: u32 = 200;
/// Server settings that would end the backup's SQL session half-way: it
/// sits idle for as long as the copy takes, then waits in pg_backup_stop
/// for the last WAL to be archived. Off for this session only (the names a
/// server version lacks are skipped).
const SESSION_TIMEOUTS: &[&str] = &[
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "idle_session_timeout",
    "transaction_timeout",
];

/// PostgreSQL 10: the oldest server whose non-exclusive backup API
/// (`pg_start_backup(label, fast, false)`, `pg_stop_backup(false, true)`
/// with the label returned) and `pg_wal` naming walship relies on.
const OLDEST_SUPPORTED_VERSION_NUM: u32 = 100_000;
/// PostgreSQL 15 renamed the backup functions (`pg_backup_start`,
/// `pg_backup_stop`) and dropped exclusive mode.
const BACKUP_START_STOP_RENAMED: u32 = 150_000;

/// The low-level backup API of a server version: one session, never
/// exclusive (an exclusive backup leaves a backup_label in the data
/// directory that stops a crashed primary from starting again).
struct BackupApi {
    /// Takes the label; returns the start LSN as text.
    start_sql: &'static str,
    start_name: &'static str,
    /// Returns the stop LSN, backup_label and tablespace_map as text.
    stop_sql: &'static str,
    stop_name: &'static str,
}

fn backup_api(version_num: u32) -> BackupApi {
    if version_num >= BACKUP_START_STOP_RENAMED {
        BackupApi {
            start_sql: "SELECT pg_backup_start($1, true)::text",
            start_name: "pg_backup_start",
            stop_sql: "SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(true)",
            stop_name: "pg_backup_stop",
        }
    } else {
        // 10-14: exclusive = false, wait_for_archive = true.
        BackupApi {
            start_sql: "SELECT pg_start_backup($1, true, false)::text",
            start_name: "pg_start_backup",
            stop_sql: "SELECT lsn::text, labelfile, spcmapfile FROM pg_stop_backup(false, true)",
            stop_name: "pg_stop_backup",
        }
    }
}

/// `server_version_num` as people write it: 100023 is 10.23, 90624 is 9.6.24.
fn version_label(version_num: u32) -> String {
    if version_num >= 100_000 {
        format!("{}.{}", version_num / 10_000, version_num % 10_000)
    } else {
        format!(
            "{}.{}.{}",
            version_num / 10_000,
            version_num / 100 % 100,
            version_num % 100
        )
    }
}

pub struct PushOptions {
    pub data_dir: PathBuf,
    pub conn: ConnSettings,
    /// The archive's URL, for messages.
    pub prefix: String,
    pub compression: Compression,
    /// Volumes read, compressed and uploaded at once.
    pub concurrency: usize,
    /// Target tar bytes per volume.
    pub volume_size: u64,
    /// Bandwidth limits (WALG_NETWORK_RATE_LIMIT, WALG_DISK_RATE_LIMIT).
    pub limits: crate::rate_limit::Limits,
    /// Encrypt volumes and records under these (none: in the clear).
    pub keys: crate::crypto::Keys,
}

/// Runs a whole backup-push; returns the record written.
pub async fn push<S: ObjectStore>(
    mut store: S,
    opts: &PushOptions,
) -> anyhow::Result<BackupRecord> {
    let local = read_cluster_identity(&opts.data_dir)?;
    let client = opts
        .conn
        .connect("walship backup-push")
        .await
        .map_err(|e| anyhow!(e))?;
    disable_session_timeouts(&client).await?;
    let server = check_server(&client, &local, &opts.conn).await?;
    check_archive(&mut store, &client, &local, opts).await?;

    let started_at = SystemTime::now();
    let t0 = Instant::now();
    let label = format!("walship backup-push {}", catalog::format_time(started_at));
    let api = backup_api(server.version_num);
    let start_lsn: String = client
        .query_one(api.start_sql, &[&label])
        .await
        .map_err(|e| anyhow!("{} failed: {}", api.start_name, chain(&e)))?
        .get(0);
    let start = catalog::parse_lsn(&start_lsn)
        .ok_or_else(|| anyhow!("{} returned {start_lsn:?}, not an LSN", api.start_name))?;
    let timeline: i32 = client
        .query_one("SELECT timeline_id FROM pg_control_checkpoint()", &[])
        .await
        .map_err(|e| anyhow!("cannot read the timeline: {}", chain(&e)))?
        .get(0);
    let start_wal = catalog::segment_name(timeline as u32, start, local.wal_segment_size);
    // First act in the archive: own a name, and tell `delete` which WAL this
    // backup needs while it runs. Nothing is uploaded before this succeeds.
    let template = Reservation {
        format: catalog::IN_PROGRESS_FORMAT.into(),
        name: String::new(),
        run_id: crate::random_id::random_hex128(),
        timeline: timeline as u32,
        start_lsn: catalog::format_lsn(start),
        start_wal: start_wal.clone(),
        wal_segment_size: local.wal_segment_size,
        start_time: catalog::format_time(started_at),
        heartbeat_time: catalog::format_time(started_at),
        from_standby: server.in_recovery,
        created_by: format!("walship {}", env!("CARGO_PKG_VERSION")),
    };
    let reservation = catalog::reserve(&mut store, &template, &opts.keys)
        .await
        .map_err(|e| anyhow!("cannot reserve a name for the backup: {e}"))?;
    let name = reservation.name.clone();

    let start = StartInfo {
        time: started_at,
        lsn: &start_lsn,
        wal: &start_wal,
    };
    let heartbeat_store = store.worker();
    let result = {
        let work = copy_and_stop(&mut store, opts, &client, &server, &local, &name, start);
        keep_alive(heartbeat_store, reservation.clone(), &opts.keys, work).await
    };
    match result {
        Ok(record) => {
            // The record makes the backup complete; the reservation has
            // done its job (a leftover one is harmless: it sits under a
            // backup that has a record).
            let _ = store.delete(&[reservation.key()]).await;
            let secs = t0.elapsed().as_secs_f64().max(0.001);
            eprintln!(
                "walship: backup-push: {} complete: {} volumes, {} read, {} stored ({}), {:.1}s, {:.1} MB/s read",
                record.name,
                record.volumes.len(),
                human_bytes(record.original_bytes),
                human_bytes(record.stored_bytes),
                record.compression,
                secs,
                record.original_bytes as f64 / secs / 1e6,
            );
            Ok(record)
        }
        Err(e) => {
            // PostgreSQL aborts the backup when this session ends; what was
            // uploaded has no record and would never be restored: remove it.
            // The name is this run's, so nothing of another run goes.
            drop(client);
            if let Err(cleanup) = catalog::release(&mut store, &name).await {
                eprintln!(
                    "walship: warning: could not remove the volumes of failed backup {name}: {cleanup}"
                );
            }
            Err(e)
        }
    }
}

/// Runs `work` while refreshing the reservation's heartbeat on a store
/// handle of its own, so `delete` sees the backup alive however long the
/// copy takes. A failed refresh is only a warning: the backup still checks
/// its WAL before it writes its record.
async fn keep_alive<S: ObjectStore, T>(
    store: Option<S>,
    mut reservation: Reservation,
    keys: &crate::crypto::Keys,
    work: impl std::future::Future<Output = T>,
) -> T {
    let beat = async {
        let Some(mut store) = store else {
            return std::future::pending::<T>().await;
        };
        loop {
            tokio::time::sleep(catalog::HEARTBEAT_EVERY).await;
            if let Err(e) =
                catalog::heartbeat(&mut store, &mut reservation, SystemTime::now(), keys).await
            {
                eprintln!("walship: warning: backup-push heartbeat: {e}");
            }
        }
    };
    tokio::select! {
        result = work => result,
        never = beat => never,
    }
}

/// Turns off, for this session, every server timeout that could end it
/// while the backup runs (`SESSION_TIMEOUTS`).
async fn disable_session_timeouts(client: &tokio_postgres::Client) -> anyhow::Result<()> {
    let names: Vec<String> = SESSION_TIMEOUTS.iter().map(|s| s.to_string()).collect();
    client
        .query(
            "SELECT set_config(name, '0', false) FROM pg_settings WHERE name = ANY($1)",
            &[&names],
        )
        .await
        .map_err(|e| anyhow!("cannot turn off the session's timeouts: {}", chain(&e)))?;
    Ok(())
}

struct StartInfo<'a> {
    time: SystemTime,
    lsn: &'a str,
    wal: &'a str,
}

struct Server {
    version_num: u32,
    /// A standby: PostgreSQL takes the backup's end from the copied
    /// pg_control, so it must be copied last.
    in_recovery: bool,
}

async fn query_text(client: &tokio_postgres::Client, sql: &str) -> Result<String, String> {
    client
        .query_one(sql, &[])
        .await
        .map(|row| row.get::<_, Option<String>>(0).unwrap_or_default())
        .map_err(|e| chain(&e))
}

/// The server is the one whose data directory we read, and its archiving
/// is on: pg_backup_stop waits for the backup's WAL to be archived, forever
/// if nothing archives it.
async fn check_server(
    client: &tokio_postgres::Client,
    local: &ClusterIdentity,
    conn: &ConnSettings,
) -> anyhow::Result<Server> {
    let version_num: u32 = query_text(client, "SHOW server_version_num")
        .await
        .map_err(|e| anyhow!("cannot read server_version_num: {e}"))?
        .parse()
        .context("server_version_num")?;
    if version_num < OLDEST_SUPPORTED_VERSION_NUM {
        bail!(
            "PostgreSQL {} is too old for backup-push: walship supports 10 and later \
             (9.6 and older have no pg_wal and no non-exclusive pg_stop_backup(false, true))",
            version_label(version_num)
        );
    }
    let sysid = query_text(
        client,
        "SELECT system_identifier::text FROM pg_control_system()",
    )
    .await
    .map_err(|e| anyhow!("cannot read the system identifier: {e}"))?;
    if sysid != local.system_identifier.to_string() {
        bail!(
            "the server at {} (system identifier {sysid}) does not run the data directory given \
             (system identifier {}): set PGHOST/PGPORT to the server of that directory",
            conn.describe(),
            local.system_identifier
        );
    }
    let mode = query_text(client, "SELECT current_setting('archive_mode')")
        .await
        .map_err(|e| anyhow!("cannot read archive_mode: {e}"))?;
    let in_recovery = query_text(client, "SELECT pg_is_in_recovery()::text")
        .await
        .unwrap_or_default()
        == "true";
    if mode == "off" {
        bail!(
            "archive_mode is off: the backup's WAL would never be archived (pg_backup_stop would wait forever); \
             set archive_mode = on and archive_command = 'walship wal-push %p', then restart PostgreSQL"
        );
    }
    if in_recovery && mode != "always" {
        bail!(
            "this server is a standby with archive_mode = {mode}: a backup taken here needs archive_mode = always"
        );
    }
    let command = query_text(client, "SELECT current_setting('archive_command', true)").await;
    // archive_library exists from 15 on.
    let library = if version_num >= 150_000 {
        query_text(client, "SELECT current_setting('archive_library', true)").await
    } else {
        Ok(String::new())
    };
    if let (Ok(command), Ok(library)) = (&command, &library)
        && (command.trim().is_empty() || command.trim() == "(disabled)")
        && library.trim().is_empty()
    {
        bail!(
            "archive_command is empty: the backup's WAL would never be archived (pg_backup_stop would wait forever); \
             set archive_command = 'walship wal-push %p'"
        );
    }
    Ok(Server {
        version_num,
        in_recovery,
    })
}

/// The prefix is this cluster's archive. A prefix with no WAL yet is given
/// a minute after a WAL switch: a fresh cluster whose archive_command is
/// walship archives its first segment then; if none arrives, archive_command
/// points elsewhere and the backup could never be restored from here.
async fn check_archive<S: ObjectStore>(
    store: &mut S,
    client: &tokio_postgres::Client,
    local: &ClusterIdentity,
    opts: &PushOptions,
) -> anyhow::Result<()> {
    let prefix = opts.prefix.as_str();
    let mut switched = false;
    let deadline = Instant::now() + FIRST_ARCHIVE_WAIT;
    let record = loop {
        match crate::archive::read_identity(store).await {
            Ok(Some(record)) => break record,
            Ok(None) => {
                if !switched {
                    switched = true;
                    let _ = client.query_one("SELECT pg_switch_wal()::text", &[]).await;
                }
                if Instant::now() >= deadline {
                    bail!(
                        "{prefix} holds no WAL of this cluster (no {IDENTITY_KEY}, even after a WAL switch and {}s): \
                         archive_command must be 'walship wal-push %p' with this same prefix, or the backup could never be restored",
                        FIRST_ARCHIVE_WAIT.as_secs()
                    );
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(ArchiveError::Storage { source, .. }) => bail!(
                "get {IDENTITY_KEY}: {source}{}",
                crate::commands::storage_hint(&source)
            ),
            Err(e) => return Err(e.into()),
        }
    };
    if record.cluster.system_identifier != local.system_identifier {
        return Err(ArchiveError::OtherCluster {
            prefix: prefix.to_string(),
            archive: record.cluster.system_identifier,
            local: local.system_identifier,
        }
        .into());
    }
    if record.cluster.wal_segment_size != local.wal_segment_size {
        return Err(ArchiveError::SegmentSizeMismatch {
            prefix: prefix.to_string(),
            archive: record.cluster.wal_segment_size,
            local: local.wal_segment_size,
        }
        .into());
    }
    // Before anything is uploaded: the keys must be the archive's.
    crate::archive::check_keys(prefix, &record, &opts.keys)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn copy_and_stop<S: ObjectStore>(
    store: &mut S,
    opts: &PushOptions,
    client: &tokio_postgres::Client,
    server: &Server,
    local: &ClusterIdentity,
    name: &str,
    start: StartInfo<'_>,
) -> anyhow::Result<BackupRecord> {
    let data_dir = opts.data_dir.clone();
    let mut tree = tokio::task::spawn_blocking(move || walk::walk(&data_dir))
        .await?
        .with_context(|| format!("reading {}", opts.data_dir.display()))?;
    // pg_control goes last, in a volume of its own, after every other file
    // (see `control_file_volume`).
    tree.entries.retain(|e| e.archive_path != CONTROL_FILE);
    // Directories first, so each volume's files find their parents early.
    tree.entries.sort_by_key(|e| e.kind != EntryKind::Dir);
    let plan = plan_volumes(&tree.entries, opts.volume_size);
    let entries = Arc::new(tree.entries);
    let ext = volume::extension(opts.compression);
    let volume_key = |i: usize| format!("{}{:04}.{ext}", catalog::data_prefix(name), i + 1);
    let keys: Vec<String> = (0..plan.len()).map(volume_key).collect();

    let progress = Progress::start(format!("backup-push {name}"), tree.total_file_bytes);
    let uploaded = upload_volumes(store, opts, &entries, &plan, &keys, &progress).await;
    let uploaded = match uploaded {
        Ok(mut sums) => {
            let control = control_file_volume(&opts.data_dir).await?;
            // One volume holding the one entry.
            let last: Range<usize> = 0..1;
            let key = volume_key(plan.len());
            upload_volumes(
                store,
                opts,
                &Arc::new(vec![control]),
                std::slice::from_ref(&last),
                std::slice::from_ref(&key),
                &progress,
            )
            .await
            .map(|mut s| {
                sums.append(&mut s);
                (sums, key)
            })
        }
        Err(e) => Err(e),
    };
    progress.finish().await;
    let (sums, control_key) = uploaded?;
    let mut keys = keys;
    keys.push(control_key);

    let api = backup_api(server.version_num);
    let row = client
        .query_one(api.stop_sql, &[])
        .await
        .map_err(|e| anyhow!("{} failed: {}", api.stop_name, chain(&e)))?;
    let stop_lsn: String = row.get(0);
    let backup_label: String = row.get::<_, Option<String>>(1).unwrap_or_default();
    let spcmap: Option<String> = row.get::<_, Option<String>>(2).filter(|s| !s.is_empty());
    let finished_at = SystemTime::now();
    let timeline = label_timeline(&backup_label)
        .ok_or_else(|| anyhow!("the backup label names no start timeline: {backup_label:?}"))?;
    let stop = catalog::parse_lsn(&stop_lsn)
        .ok_or_else(|| anyhow!("{} returned {stop_lsn:?}, not an LSN", api.stop_name))?;
    // The last byte recovery needs is just before the stop LSN.
    let stop_wal = catalog::segment_name(timeline, stop.saturating_sub(1), local.wal_segment_size);
    // The label's timeline is authoritative (the name used the checkpoint's).
    let start_wal = catalog::segment_name(
        timeline,
        catalog::parse_lsn(start.lsn).unwrap_or(0),
        local.wal_segment_size,
    );
    if start_wal != start.wal {
        eprintln!(
            "walship: warning: the backup starts in {start_wal}, not {} as its name says",
            start.wal
        );
    }

    let volumes: Vec<VolumeRecord> = keys
        .iter()
        .zip(&sums)
        .map(|(key, s)| VolumeRecord {
            key: key.clone(),
            original_len: s.original_len,
            stored_len: s.stored_len,
            stored_blake3: s.stored_blake3.to_hex().to_string(),
            original_blake3: s.original_blake3.to_hex().to_string(),
        })
        .collect();
    // The record vouches that this backup can be restored: check first
    // that everything it depends on is in this archive.
    check_dependencies(
        store,
        &volumes,
        timeline,
        start.lsn,
        stop,
        local.wal_segment_size,
    )
    .await?;

    let record = BackupRecord {
        format: catalog::RECORD_FORMAT.into(),
        version: catalog::RECORD_VERSION,
        name: name.to_string(),
        system_identifier: local.system_identifier.to_string(),
        pg_version_num: server.version_num,
        wal_segment_size: local.wal_segment_size,
        timeline,
        start_lsn: catalog::format_lsn(catalog::parse_lsn(start.lsn).unwrap_or(0)),
        stop_lsn: catalog::format_lsn(stop),
        start_wal,
        stop_wal,
        start_time: catalog::format_time(start.time),
        finish_time: catalog::format_time(finished_at),
        data_dir: opts.data_dir.display().to_string(),
        original_bytes: volumes.iter().map(|v| v.original_len).sum(),
        stored_bytes: volumes.iter().map(|v| v.stored_len).sum(),
        compression: opts.compression,
        encrypted: opts.keys.is_set(),
        volumes,
        tablespaces: tree.tablespaces,
        backup_label,
        tablespace_map: spcmap,
        created_by: format!("walship {}", env!("CARGO_PKG_VERSION")),
    };
    catalog::write_record(store, &record, &opts.keys).await?;
    Ok(record)
}

/// pg_control as the backup's last entry. On a standby PostgreSQL writes no
/// end-of-backup record: recovery takes the backup's end from the copied
/// pg_control's minimum recovery point (`do_pg_backup_stop`: "we assume
/// that pg_control was backed up last"), so it must be copied after every
/// other file, and whole: it is re-read until its CRC is valid, as a read
/// can tear against the server's rewrite of it.
async fn control_file_volume(data_dir: &std::path::Path) -> anyhow::Result<walk::Entry> {
    let dir = data_dir.to_path_buf();
    let bytes =
        tokio::task::spawn_blocking(move || read_consistent_control_file(&dir, CONTROL_FILE_READS))
            .await??;
    let meta = std::fs::metadata(data_dir.join(CONTROL_FILE))
        .with_context(|| format!("reading {}", data_dir.join(CONTROL_FILE).display()))?;
    use std::os::unix::fs::MetadataExt;
    Ok(walk::Entry {
        archive_path: CONTROL_FILE.to_string(),
        source: data_dir.join(CONTROL_FILE),
        kind: EntryKind::Bytes(bytes.into()),
        mode: meta.mode() & 0o7777,
        mtime: meta.mtime().max(0) as u64,
    })
}

/// Before the record is written: every volume is in the store with the
/// length uploaded, and every WAL segment from the backup's start to its
/// stop is in THIS archive (an archive_command that points at another
/// prefix or bucket passes pg_backup_stop's wait, and would leave a backup
/// that can never be restored from here).
async fn check_dependencies<S: ObjectStore>(
    store: &mut S,
    volumes: &[VolumeRecord],
    timeline: u32,
    start_lsn: &str,
    stop: u64,
    segment_size: u32,
) -> anyhow::Result<()> {
    for v in volumes {
        let key = Key::new(v.key.clone()).map_err(|e| anyhow!("{e}"))?;
        match store.head(&key).await {
            Ok(meta) if meta.size == v.stored_len => {}
            Ok(meta) => bail!(
                "volume {} holds {} bytes, {} were uploaded: no record written",
                v.key,
                meta.size,
                v.stored_len
            ),
            Err(StorageError::NotFound(_)) => {
                bail!(
                    "volume {} is missing from the archive: no record written",
                    v.key
                )
            }
            Err(e) => bail!("cannot check volume {}: {e}", v.key),
        }
    }
    let size = u64::from(segment_size.max(1));
    let first = catalog::parse_lsn(start_lsn).unwrap_or(0) / size;
    let last = stop.saturating_sub(1) / size;
    let mut missing = Vec::new();
    for segno in first..=last.max(first) {
        let seg = catalog::segment_name(timeline, segno * size, segment_size);
        let key = Key::new(format!("wal/{seg}")).expect("valid key");
        match store.head(&key).await {
            Ok(_) => {}
            Err(StorageError::NotFound(_)) => missing.push(seg),
            Err(e) => bail!("cannot check that {seg} is archived: {e}"),
        }
    }
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().take(5).map(String::as_str).collect();
        bail!(
            "{} WAL file(s) the backup needs are not in this archive ({}{}): \
             archive_command must be 'walship wal-push %p' with this same prefix; no record written",
            missing.len(),
            shown.join(", "),
            if missing.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// The timeline a backup starts on, from its backup_label: the `START
/// TIMELINE:` line (PostgreSQL 11 and later), else the timeline part of the
/// WAL file named by `START WAL LOCATION: 0/50B20B8 (file
/// 000000010000000000000005)` (PostgreSQL 10 writes only that).
pub fn label_timeline(label: &str) -> Option<u32> {
    if let Some(t) = label_field(label, "START TIMELINE:") {
        return t.parse().ok();
    }
    let location = label_field(label, "START WAL LOCATION:")?;
    let file = location.split_once("(file ")?.1.strip_suffix(')')?;
    if file.len() != 24 || !file.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(&file[..8], 16).ok()
}

/// A value from backup_label (`START TIMELINE: 1`).
pub fn label_field<'a>(label: &'a str, field: &str) -> Option<&'a str> {
    label
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(str::trim)
}

/// Contiguous ranges of entries, each about `target` tar bytes (a file
/// larger than that gets a volume of its own).
fn plan_volumes(entries: &[walk::Entry], target: u64) -> Vec<Range<usize>> {
    let mut plan = Vec::new();
    let (mut start, mut size) = (0usize, 0u64);
    for (i, e) in entries.iter().enumerate() {
        let bytes = 512
            + match &e.kind {
                EntryKind::File { size } => size.div_ceil(512) * 512,
                EntryKind::Bytes(b) => (b.len() as u64).div_ceil(512) * 512,
                EntryKind::Dir => 0,
            };
        if size > 0 && size + bytes > target {
            plan.push(start..i);
            (start, size) = (i, 0);
        }
        size += bytes;
    }
    if start < entries.len() || plan.is_empty() {
        plan.push(start..entries.len());
    }
    plan
}

/// Builds and uploads every volume, `concurrency` at once, each lane with
/// its own plugin instance. After a failure no new volume starts.
async fn upload_volumes<S: ObjectStore>(
    store: &mut S,
    opts: &PushOptions,
    entries: &Arc<Vec<walk::Entry>>,
    plan: &[Range<usize>],
    keys: &[String],
    progress: &Progress,
) -> anyhow::Result<Vec<volume::VolumeSums>> {
    let limits = store.info().limits;
    let part_size = PART_SIZE
        .max(limits.min_part_size)
        .min(limits.max_part_size.max(1)) as usize;
    let lanes_wanted = opts.concurrency.clamp(1, plan.len());
    let mut stores: Vec<S> = (0..lanes_wanted).map_while(|_| store.worker()).collect();
    let next = Cell::new(0usize);
    let failure: RefCell<Option<anyhow::Error>> = RefCell::new(None);
    let sums: RefCell<Vec<Option<volume::VolumeSums>>> = RefCell::new(vec![None; plan.len()]);
    let (next, failure, sums) = (&next, &failure, &sums);
    let lane = async |s: &mut S| {
        loop {
            let i = next.get();
            if i >= plan.len() || failure.borrow().is_some() {
                return;
            }
            next.set(i + 1);
            let key = Key::new(keys[i].clone()).expect("valid volume key");
            let (tx, mut rx) = mpsc::channel::<Msg>(1);
            let (entries, range) = (entries.clone(), plan[i].clone());
            let format = volume::VolumeFormat {
                key: keys[i].clone(),
                compression: opts.compression,
                keys: opts.keys.clone(),
            };
            let counter = progress.done.clone();
            let disk = opts.limits.disk.clone();
            let producer = tokio::task::spawn_blocking(move || {
                volume::produce(&entries[range], &format, part_size, tx, counter, disk)
            });
            let uploaded = volume::upload(s, &key, &mut rx, opts.limits.network.as_ref()).await;
            drop(rx);
            let produced = producer.await;
            let outcome = match (produced, uploaded) {
                (Ok(Ok(sum)), Ok(())) => Ok(sum),
                (Ok(Err(e)), _) if !volume::UploadStopped::is(&e) => {
                    Err(anyhow!("volume {key}: {e}"))
                }
                (_, Err(e)) => Err(anyhow!(
                    "upload of {key}: {e}{}",
                    crate::commands::storage_hint(&e)
                )),
                (Ok(Err(e)), Ok(())) => Err(anyhow!("volume {key}: {e}")),
                (Err(e), _) => Err(anyhow!("volume {key}: {e}")),
            };
            match outcome {
                Ok(sum) => sums.borrow_mut()[i] = Some(sum),
                Err(e) => {
                    failure.borrow_mut().get_or_insert(e);
                }
            }
        }
    };
    if stores.is_empty() {
        lane(store).await;
    } else {
        futures::future::join_all(stores.iter_mut().map(lane)).await;
    }
    if let Some(e) = failure.take() {
        return Err(e);
    }
    Ok(sums
        .take()
        .into_iter()
        .map(|s| s.expect("every volume done"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64) -> walk::Entry {
        walk::Entry {
            archive_path: "f".into(),
            source: PathBuf::from("f"),
            kind: EntryKind::File { size },
            mode: 0o600,
            mtime: 0,
        }
    }

    #[test]
    fn volumes_hold_about_the_target_size() {
        let entries = vec![file(400), file(400), file(5000), file(100), file(100)];
        let plan = plan_volumes(&entries, 2048);
        assert_eq!(plan, [0..2, 2..3, 3..5]);
        assert_eq!(plan_volumes(&[], 2048), vec![0..0]);
    }

    #[test]
    fn the_backup_api_is_never_exclusive_and_follows_the_version() {
        for v in [100_023, 110_022, 120_022, 130_023, 140_023] {
            let api = backup_api(v);
            assert!(
                api.start_sql.contains("pg_start_backup($1, true, false)"),
                "{v}"
            );
            assert!(api.stop_sql.contains("pg_stop_backup(false, true)"), "{v}");
        }
        for v in [150_018, 160_014, 170_010, 180_004] {
            let api = backup_api(v);
            assert!(api.start_sql.contains("pg_backup_start($1, true)"), "{v}");
            assert!(api.stop_sql.contains("pg_backup_stop(true)"), "{v}");
        }
        assert_eq!(version_label(100_023), "10.23");
        assert_eq!(version_label(180_004), "18.4");
        assert_eq!(version_label(90_624), "9.6.24");
    }

    #[test]
    fn label_fields() {
        let label = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\
                     CHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\n\
                     START TIMELINE: 3\nLABEL: x\n";
        assert_eq!(label_field(label, "START TIMELINE:"), Some("3"));
        assert_eq!(label_field(label, "NOPE:"), None);
        assert_eq!(label_timeline(label), Some(3));
    }

    #[test]
    fn the_timeline_of_a_postgresql_10_label() {
        // pg_stop_backup(false, true) of PostgreSQL 10.23, verbatim: no
        // START TIMELINE line yet.
        let label = "START WAL LOCATION: 0/50B20B8 (file 000000020000000000000005)\n\
                     CHECKPOINT LOCATION: 0/50B20F8\nBACKUP METHOD: streamed\n\
                     BACKUP FROM: master\nSTART TIME: 2026-12-03 18:58:57 UTC\n\
                     LABEL: walship backup-push 2026-12-03T18:58:57Z\n";
        assert_eq!(label_timeline(label), Some(2));
        assert_eq!(
            label_timeline("START WAL LOCATION: 0/50B20B8 (file 0001)\n"),
            None
        );
        assert_eq!(label_timeline("LABEL: x\n"), None);
    }
}

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

use super::catalog::{self, BackupRecord, VolumeRecord};
use super::connect::{ConnSettings, chain};
use super::progress::{Progress, human_bytes};
use super::volume::{self, Msg};
use super::walk::{self, EntryKind};
use crate::archive::ArchiveError;
use crate::identity::{IDENTITY_KEY, IdentityRecord};
use crate::object_format::Compression;
use crate::pg_control::{ClusterIdentity, read_cluster_identity};
use crate::storage::{Key, ObjectStore, StorageError};

/// WAL-G's default for WALG_TAR_SIZE_THRESHOLD: about 1 GiB of tar per volume.
pub const DEFAULT_VOLUME_SIZE: u64 = 1 << 30;
/// Stored bytes per part: with a part being built, one queued and one in the
/// plugin, per volume in flight, this keeps memory well under 256 MiB.
const PART_SIZE: u64 = 8 << 20;
/// How long to wait for the first WAL file to reach an archive that has none.
const FIRST_ARCHIVE_WAIT: Duration = Duration::from_secs(60);

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
    let server = check_server(&client, &local, &opts.conn).await?;
    check_archive(&mut store, &client, &local, &opts.prefix).await?;

    let started_at = SystemTime::now();
    let t0 = Instant::now();
    let label = format!("walship backup-push {}", catalog::format_time(started_at));
    let start_sql = if server.version_num >= 150000 {
        "SELECT pg_backup_start($1, true)::text"
    } else {
        "SELECT pg_start_backup($1, true, false)::text"
    };
    let start_lsn: String = client
        .query_one(start_sql, &[&label])
        .await
        .map_err(|e| anyhow!("pg_backup_start failed: {}", chain(&e)))?
        .get(0);
    let start = catalog::parse_lsn(&start_lsn)
        .ok_or_else(|| anyhow!("pg_backup_start returned {start_lsn:?}, not an LSN"))?;
    let timeline: i32 = client
        .query_one("SELECT timeline_id FROM pg_control_checkpoint()", &[])
        .await
        .map_err(|e| anyhow!("cannot read the timeline: {}", chain(&e)))?
        .get(0);
    let start_wal = catalog::segment_name(timeline as u32, start, local.wal_segment_size);
    let name = catalog::free_name(&mut store, &start_wal).await?;

    let start = StartInfo {
        time: started_at,
        lsn: &start_lsn,
        wal: &start_wal,
    };
    let result = copy_and_stop(&mut store, opts, &client, &server, &local, &name, start).await;
    match result {
        Ok(record) => {
            let secs = t0.elapsed().as_secs_f64().max(0.001);
            eprintln!(
                "walship: backup-push: {} complete: {} volumes, {} read, {} stored ({}), {:.1}s, {:.1} MB/s",
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
            drop(client);
            if let Err(cleanup) = catalog::delete_backup(&mut store, &name).await {
                eprintln!(
                    "walship: warning: could not remove the volumes of failed backup {name}: {cleanup}"
                );
            }
            Err(e)
        }
    }
}

struct StartInfo<'a> {
    time: SystemTime,
    lsn: &'a str,
    wal: &'a str,
}

struct Server {
    version_num: u32,
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
    if version_num < 130000 {
        bail!("PostgreSQL {version_num} is too old: walship supports 13 and later");
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
    let library = if version_num >= 150000 {
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
    Ok(Server { version_num })
}

/// The prefix is this cluster's archive. A prefix with no WAL yet is given
/// a minute after a WAL switch: a fresh cluster whose archive_command is
/// walship archives its first segment then; if none arrives, archive_command
/// points elsewhere and the backup could never be restored from here.
async fn check_archive<S: ObjectStore>(
    store: &mut S,
    client: &tokio_postgres::Client,
    local: &ClusterIdentity,
    prefix: &str,
) -> anyhow::Result<()> {
    let key = Key::new(IDENTITY_KEY).expect("constant key");
    let mut switched = false;
    let deadline = Instant::now() + FIRST_ARCHIVE_WAIT;
    let record = loop {
        match store.get(&key, None).await {
            Ok((_, bytes)) => {
                let text = String::from_utf8(bytes)
                    .map_err(|_| ArchiveError::DamagedIdentity("not UTF-8".into()))?;
                break IdentityRecord::parse(&text).map_err(ArchiveError::DamagedIdentity)?;
            }
            Err(StorageError::NotFound(_)) => {
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
            Err(e) => bail!(
                "get {IDENTITY_KEY}: {e}{}",
                crate::commands::storage_hint(&e)
            ),
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
    // Directories first, so each volume's files find their parents early.
    tree.entries.sort_by_key(|e| e.kind != EntryKind::Dir);
    let plan = plan_volumes(&tree.entries, opts.volume_size);
    let entries = Arc::new(tree.entries);
    let ext = volume::extension(opts.compression);
    let keys: Vec<String> = (0..plan.len())
        .map(|i| format!("{}{:04}.{ext}", catalog::data_prefix(name), i + 1))
        .collect();

    let progress = Progress::start(format!("backup-push {name}"), tree.total_file_bytes);
    let uploaded = upload_volumes(store, opts, &entries, &plan, &keys, &progress).await;
    progress.finish().await;
    let sums = uploaded?;

    let stop_sql = if server.version_num >= 150000 {
        "SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(true)"
    } else {
        "SELECT lsn::text, labelfile, spcmapfile FROM pg_stop_backup(false, true)"
    };
    let row = client
        .query_one(stop_sql, &[])
        .await
        .map_err(|e| anyhow!("pg_backup_stop failed: {}", chain(&e)))?;
    let stop_lsn: String = row.get(0);
    let backup_label: String = row.get::<_, Option<String>>(1).unwrap_or_default();
    let spcmap: Option<String> = row.get::<_, Option<String>>(2).filter(|s| !s.is_empty());
    let finished_at = SystemTime::now();
    let timeline = label_field(&backup_label, "START TIMELINE:")
        .and_then(|t| t.parse::<u32>().ok())
        .ok_or_else(|| anyhow!("the backup label has no START TIMELINE: {backup_label:?}"))?;
    let stop = catalog::parse_lsn(&stop_lsn)
        .ok_or_else(|| anyhow!("pg_backup_stop returned {stop_lsn:?}, not an LSN"))?;
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
        volumes,
        tablespaces: tree.tablespaces,
        backup_label,
        tablespace_map: spcmap,
        created_by: format!("walship {}", env!("CARGO_PKG_VERSION")),
    };
    catalog::write_record(store, &record).await?;
    Ok(record)
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
            + match e.kind {
                EntryKind::File { size } => size.div_ceil(512) * 512,
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
            let (compression, counter) = (opts.compression, progress.done.clone());
            let producer = tokio::task::spawn_blocking(move || {
                volume::produce(&entries[range], compression, part_size, tx, counter)
            });
            let uploaded = volume::upload(s, &key, &mut rx).await;
            drop(rx);
            let produced = producer.await;
            let outcome = match (produced, uploaded) {
                (Ok(Ok(sum)), Ok(())) => Ok(sum),
                (Ok(Err(e)), _) if !e.to_string().contains("the upload stopped") => {
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
    fn label_fields() {
        let label = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\
                     CHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\n\
                     START TIMELINE: 3\nLABEL: x\n";
        assert_eq!(label_field(label, "START TIMELINE:"), Some("3"));
        assert_eq!(label_field(label, "NOPE:"), None);
    }
}

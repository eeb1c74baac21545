//! The catalog of base backups at the archive prefix.
//!
//! Layout (keys relative to the prefix):
//! - `backups/<name>/...`: the backup's volumes (and nothing else);
//! - `backups/<name>.json`: its record, in walship's object format (64-byte
//!   header, BLAKE3 over the JSON), written LAST and create-only.
//!
//! In an encrypted archive every object here (records, reservations,
//! permanence marks) is encrypted like a WAL object, under its own key
//! name: a record carries the backup's `backup_label`.
//!
//! The record's existence is what makes a backup complete: a backup-push
//! that dies half-way leaves volumes without a record, which is never listed
//! nor restored (`list_unfinished` finds them for retention).
//!
//! A running backup-push owns its name through `backups/<name>/in_progress`
//! (walship's object format over JSON), written create-only as its first
//! act after `pg_backup_start`: two runs that start in the same segment can
//! never share a name, and so never write into each other's volumes nor
//! delete them when one fails. The object says where the backup's WAL
//! starts and carries a heartbeat the run refreshes, so `delete` keeps that
//! WAL and those volumes while the run is alive (`Reservation::is_running`).

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::crypto::Keys;
use crate::object_format::{self, Compression, Stored};
use crate::storage::{Key, ListOptions, ObjectStore, PutOptions, StorageError};
use crate::transfer;
use crate::wal_name::WalFileName;

pub const BACKUPS_PREFIX: &str = "backups/";
pub const RECORD_SUFFIX: &str = ".json";
pub const RECORD_FORMAT: &str = "walship-backup";
pub const RECORD_VERSION: u32 = 1;
/// What `backup-fetch` and retention accept in place of a name.
pub const LATEST: &str = "LATEST";
/// Under a backup's data prefix: the reservation of a running backup-push.
pub const IN_PROGRESS: &str = "in_progress";
/// Under a backup's data prefix: the mark of a permanent backup.
pub const PERMANENT: &str = "permanent";
pub const IN_PROGRESS_FORMAT: &str = "walship-backup-in-progress";
/// How often a running backup-push refreshes its reservation's heartbeat.
pub const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// A reservation whose heartbeat is older than this belongs to a run that
/// died (killed, its machine gone). Generous: clocks of the machine that
/// deletes and the one that backs up may differ, and a run that was only
/// paused still checks its WAL before it writes its record.
pub const HEARTBEAT_STALE: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Everything known about one complete backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    pub format: String,
    pub version: u32,
    pub name: String,
    /// Decimal: a u64 does not survive every JSON reader.
    pub system_identifier: String,
    /// `server_version_num`, e.g. 150018.
    pub pg_version_num: u32,
    pub wal_segment_size: u32,
    /// START TIMELINE from backup_label.
    pub timeline: u32,
    /// `X/Y`, as PostgreSQL prints LSNs.
    pub start_lsn: String,
    pub stop_lsn: String,
    /// Segment names of `start_lsn` and `stop_lsn` on `timeline`.
    pub start_wal: String,
    pub stop_wal: String,
    /// RFC 3339, UTC, whole seconds.
    pub start_time: String,
    pub finish_time: String,
    /// The data directory the backup was taken from.
    pub data_dir: String,
    /// Sum of the volumes' tar bytes.
    pub original_bytes: u64,
    /// Sum of the volumes' stored bytes.
    pub stored_bytes: u64,
    pub compression: Compression,
    /// The volumes are encrypted (sealed streams, crypto/stream.rs). Absent
    /// in records of backups in the clear.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypted: bool,
    pub volumes: Vec<VolumeRecord>,
    pub tablespaces: Vec<TablespaceRecord>,
    pub backup_label: String,
    pub tablespace_map: Option<String>,
    pub created_by: String,
}

/// One volume: a tar stream compressed as one frame (or not at all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    /// Relative to the archive prefix, under `data_prefix(name)`.
    pub key: String,
    /// Tar bytes.
    pub original_len: u64,
    /// Bytes stored (after compression).
    pub stored_len: u64,
    /// BLAKE3 of the stored bytes, hex.
    pub stored_blake3: String,
    /// BLAKE3 of the tar bytes, hex.
    pub original_blake3: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TablespaceRecord {
    pub oid: u32,
    /// Where the tablespace lived (the target of `pg_tblspc/<oid>`).
    pub location: String,
}

/// A running (or dead, if its heartbeat is stale) backup-push's claim on a
/// name, and what retention must keep for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub format: String,
    pub name: String,
    /// Random per run: tells this run's reservation from another's on a
    /// store that cannot refuse an overwrite atomically.
    pub run_id: String,
    pub timeline: u32,
    pub start_lsn: String,
    pub start_wal: String,
    pub wal_segment_size: u32,
    pub start_time: String,
    /// RFC 3339; refreshed every `HEARTBEAT_EVERY` while the run is alive.
    pub heartbeat_time: String,
    /// Taken on a standby: its start can be older than the newest backup.
    pub from_standby: bool,
    pub created_by: String,
}

impl Reservation {
    pub fn start_lsn(&self) -> u64 {
        parse_lsn(&self.start_lsn).unwrap_or(0)
    }

    /// Alive at `now`: the heartbeat is recent (or from a clock ahead of ours).
    pub fn is_running(&self, now: SystemTime) -> bool {
        parse_time(&self.heartbeat_time).is_some_and(|beat| {
            now.duration_since(beat)
                .map_or(true, |age| age < HEARTBEAT_STALE)
        })
    }

    pub fn key(&self) -> Key {
        reservation_key(&self.name)
    }

    pub fn encode(&self, keys: &Keys) -> Result<Vec<u8>, BackupError> {
        let json = serde_json::to_vec_pretty(self).expect("a reservation always serializes");
        seal_json(&self.key(), &json, keys)
    }

    pub fn decode(key: &str, object: Vec<u8>, keys: &Keys) -> Result<Self, BackupError> {
        let damaged = |why: String| BackupError::DamagedRecord {
            key: key.to_string(),
            why,
        };
        let json = open_json(key, object, keys)?;
        let r: Reservation = serde_json::from_slice(&json).map_err(|e| damaged(e.to_string()))?;
        if r.format != IN_PROGRESS_FORMAT {
            return Err(damaged(format!("format is {:?}", r.format)));
        }
        check_name(&r.name).map_err(|e| damaged(e.to_string()))?;
        WalFileName::parse(&r.start_wal).map_err(|e| damaged(format!("start_wal: {e}")))?;
        parse_lsn(&r.start_lsn).ok_or_else(|| damaged("start_lsn is not an LSN".into()))?;
        Ok(r)
    }
}

/// `backups/<name>/permanent`.
pub fn permanent_key(name: &str) -> Key {
    Key::new(format!("{}{PERMANENT}", data_prefix(name))).expect("checked backup names")
}

/// Whether the backup `name` is marked permanent.
pub async fn is_permanent<S: ObjectStore>(store: &mut S, name: &str) -> Result<bool, BackupError> {
    let key = permanent_key(name);
    match store.head(&key).await {
        Ok(_) => Ok(true),
        Err(StorageError::NotFound(_)) => Ok(false),
        Err(e) => Err(storage("head", key.as_str())(e)),
    }
}

/// Marks the backup `name` permanent, or takes the mark off.
pub async fn set_permanent<S: ObjectStore>(
    store: &mut S,
    name: &str,
    permanent: bool,
    keys: &Keys,
) -> Result<(), BackupError> {
    check_name(name)?;
    let key = permanent_key(name);
    if permanent {
        let json = serde_json::json!({
            "format": "walship-backup-permanent",
            "name": name,
            "marked_at": format_time(SystemTime::now()),
        });
        let body = seal_json(&key, json.to_string().as_bytes(), keys)?;
        store
            .put(&key, &body, &PutOptions::overwrite())
            .await
            .map(|_| ())
            .map_err(storage("put", key.as_str()))
    } else {
        delete_keys(store, &[key]).await
    }
}

/// `backups/<name>/in_progress`.
pub fn reservation_key(name: &str) -> Key {
    Key::new(format!("{}{IN_PROGRESS}", data_prefix(name))).expect("checked backup names")
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{op} {key}: {source}")]
    Storage {
        op: &'static str,
        key: String,
        source: StorageError,
    },
    #[error("backup record {key} is damaged: {why}")]
    DamagedRecord { key: String, why: String },
    /// Cannot be decrypted (no key, another key): no re-read helps.
    #[error("{key} cannot be read: {source}")]
    Unreadable {
        key: String,
        source: object_format::FormatError,
    },
    #[error("cannot encrypt {key}: {why}")]
    Seal { key: String, why: String },
    #[error("no backup named {0} in the archive (see `walship backup-list`)")]
    NotFound(String),
    #[error("the archive has no complete backup (see `walship backup-list`)")]
    NoBackups,
    #[error("a backup record named {0} already exists")]
    AlreadyExists(String),
    #[error("{0:?} is not a backup name")]
    InvalidName(String),
}

/// A small JSON object as stored: in walship's object format, encrypted
/// under `keys` (if any) and bound to its storage key.
fn seal_json(key: &Key, json: &[u8], keys: &Keys) -> Result<Vec<u8>, BackupError> {
    let stored = Stored {
        at: key.as_str(),
        keys,
    };
    object_format::encode(json, Compression::None, stored)
        .map(|(object, _)| object)
        .map_err(|e| BackupError::Seal {
            key: key.to_string(),
            why: e.to_string(),
        })
}

/// The JSON inside a stored object: `DamagedRecord` if a re-read may help,
/// `Unreadable` if it cannot (a key problem).
fn open_json(key: &str, object: Vec<u8>, keys: &Keys) -> Result<Vec<u8>, BackupError> {
    object_format::decode(object, Stored { at: key, keys }).map_err(|e| {
        if e.may_be_transient() {
            BackupError::DamagedRecord {
                key: key.to_string(),
                why: e.to_string(),
            }
        } else {
            BackupError::Unreadable {
                key: key.to_string(),
                source: e,
            }
        }
    })
}

fn storage(op: &'static str, key: &str) -> impl FnOnce(StorageError) -> BackupError + use<> {
    let key = key.to_string();
    move |source| BackupError::Storage { op, key, source }
}

impl BackupRecord {
    pub fn start_lsn(&self) -> u64 {
        parse_lsn(&self.start_lsn).unwrap_or(0)
    }

    pub fn stop_lsn(&self) -> u64 {
        parse_lsn(&self.stop_lsn).unwrap_or(0)
    }

    /// The first WAL segment a restore of this backup needs.
    #[allow(dead_code)] // the catalog's API (docs/backups.md); callers use the name for now
    pub fn start_segment(&self) -> WalFileName {
        WalFileName::parse(&self.start_wal).expect("validated when the record was read")
    }

    pub fn finish_time(&self) -> Option<SystemTime> {
        parse_time(&self.finish_time)
    }

    /// The record as stored: JSON in a walship object (checksummed, and
    /// encrypted under `keys` if any).
    pub fn encode(&self, keys: &Keys) -> Result<Vec<u8>, BackupError> {
        let json = serde_json::to_vec_pretty(self).expect("a record always serializes");
        seal_json(&record_key(&self.name), &json, keys)
    }

    /// Reads a stored record, checking its checksum and its fields.
    pub fn decode(key: &str, object: Vec<u8>, keys: &Keys) -> Result<Self, BackupError> {
        let damaged = |why: String| BackupError::DamagedRecord {
            key: key.to_string(),
            why,
        };
        let json = open_json(key, object, keys)?;
        let record: BackupRecord =
            serde_json::from_slice(&json).map_err(|e| damaged(e.to_string()))?;
        if record.format != RECORD_FORMAT {
            return Err(damaged(format!(
                "format is {:?}, not {RECORD_FORMAT:?}",
                record.format
            )));
        }
        if record.version != RECORD_VERSION {
            return Err(damaged(format!(
                "record version {} is not supported by this walship ({RECORD_VERSION}): upgrade walship",
                record.version
            )));
        }
        check_name(&record.name).map_err(|e| damaged(e.to_string()))?;
        for (what, name) in [
            ("start_wal", &record.start_wal),
            ("stop_wal", &record.stop_wal),
        ] {
            WalFileName::parse(name).map_err(|e| damaged(format!("{what}: {e}")))?;
        }
        for (what, lsn) in [
            ("start_lsn", &record.start_lsn),
            ("stop_lsn", &record.stop_lsn),
        ] {
            parse_lsn(lsn).ok_or_else(|| damaged(format!("{what} {lsn:?} is not an LSN")))?;
        }
        let prefix = data_prefix(&record.name);
        if let Some(v) = record.volumes.iter().find(|v| !v.key.starts_with(&prefix)) {
            return Err(damaged(format!("volume {} is outside {prefix}", v.key)));
        }
        Ok(record)
    }
}

/// `backups/<name>.json`.
pub fn record_key(name: &str) -> Key {
    Key::new(format!("{BACKUPS_PREFIX}{name}{RECORD_SUFFIX}")).expect("checked backup names")
}

/// `backups/<name>/`: everything of the backup but its record.
pub fn data_prefix(name: &str) -> String {
    format!("{BACKUPS_PREFIX}{name}/")
}

/// Names are one key segment of printable ASCII, never `LATEST`.
pub fn check_name(name: &str) -> Result<(), BackupError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name != LATEST
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(BackupError::InvalidName(name.to_string()))
    }
}

/// Reserves the first free name for a backup starting in `start_wal`
/// (`base_<segment>`, then `_2`, `_3`, ...) by writing `template` (its name
/// filled in) create-only. A name with a record or any data is skipped; a
/// name another run reserved first is skipped. Where the store cannot
/// refuse an overwrite atomically, the reservation is read back: another
/// run's id there means that run won.
pub async fn reserve<S: ObjectStore>(
    store: &mut S,
    template: &Reservation,
    keys: &Keys,
) -> Result<Reservation, BackupError> {
    const MAX_TRIES: u32 = 1000;
    let base = base_name(&template.start_wal);
    let (records, data) = scan(store).await?;
    let taken = |n: &str| records.iter().chain(&data).any(|t| t == n);
    let atomic = store.info().features.atomic_create_only;
    for n in 1..=MAX_TRIES {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{base}_{n}")
        };
        if taken(&name) {
            continue;
        }
        let mine = Reservation {
            name: name.clone(),
            ..template.clone()
        };
        let key = mine.key();
        match store
            .put(&key, &mine.encode(keys)?, &PutOptions::create_only())
            .await
        {
            Ok(_) if atomic => return Ok(mine),
            Ok(_) | Err(StorageError::AlreadyExists(_)) => {
                // Ours (a retried put whose first answer was lost, or a store
                // that may have let a racing writer through), or another's?
                match read_reservation(store, &name, keys).await {
                    Ok(Some(r)) if r.run_id == mine.run_id => return Ok(mine),
                    Ok(_) | Err(BackupError::DamagedRecord { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(storage("put", key.as_str())(e)),
        }
    }
    Err(BackupError::InvalidName(format!(
        "{base}_{MAX_TRIES} (no free name left)"
    )))
}

/// Refreshes the heartbeat of a reservation this run holds.
pub async fn heartbeat<S: ObjectStore>(
    store: &mut S,
    reservation: &mut Reservation,
    now: SystemTime,
    keys: &Keys,
) -> Result<(), BackupError> {
    reservation.heartbeat_time = format_time(now);
    let key = reservation.key();
    store
        .put(&key, &reservation.encode(keys)?, &PutOptions::overwrite())
        .await
        .map(|_| ())
        .map_err(storage("put", key.as_str()))
}

/// The reservation under `name`, if there is one.
pub async fn read_reservation<S: ObjectStore>(
    store: &mut S,
    name: &str,
    keys: &Keys,
) -> Result<Option<Reservation>, BackupError> {
    read_verified(store, &reservation_key(name), |k, o| {
        Reservation::decode(k, o, keys)
    })
    .await
}

/// Backups without a record: each with its reservation, when it has a
/// readable one (a run in progress, or one that died), else `None` (an
/// interrupted run of an older walship, or a damaged reservation).
pub async fn list_unfinished_with_reservations<S: ObjectStore>(
    store: &mut S,
    keys: &Keys,
) -> Result<Vec<(String, Option<Reservation>)>, BackupError> {
    let mut out = Vec::new();
    for name in list_unfinished(store).await? {
        let reservation = match read_reservation(store, &name, keys).await {
            Ok(r) => r,
            Err(BackupError::DamagedRecord { .. }) => None,
            Err(e) => return Err(e),
        };
        out.push((name, reservation));
    }
    Ok(out)
}

/// WAL-G's name for a backup starting in `start_wal`.
pub fn base_name(start_wal: &str) -> String {
    format!("base_{start_wal}")
}

/// Names with a record, and names with data objects, under `backups/`.
async fn scan<S: ObjectStore>(store: &mut S) -> Result<(Vec<String>, Vec<String>), BackupError> {
    let mut records = Vec::new();
    let mut data = Vec::new();
    let add_key = |key: &str, records: &mut Vec<String>, data: &mut Vec<String>| {
        let Some(rest) = key.strip_prefix(BACKUPS_PREFIX) else {
            return;
        };
        match rest.split_once('/') {
            Some((name, _)) if !name.is_empty() => {
                if data.last().is_none_or(|l: &String| l != name) {
                    data.push(name.to_string());
                }
            }
            Some(_) => {}
            None => {
                if let Some(name) = rest.strip_suffix(RECORD_SUFFIX)
                    && check_name(name).is_ok()
                {
                    records.push(name.to_string());
                }
            }
        }
    };
    if store.info().features.list_delimiter {
        let mut token = None;
        loop {
            let page = store
                .list_page(&ListOptions {
                    prefix: BACKUPS_PREFIX.to_string(),
                    delimiter: Some("/".to_string()),
                    page_token: token.take(),
                    max_keys: 1000,
                    ..Default::default()
                })
                .await
                .map_err(storage("list", BACKUPS_PREFIX))?;
            for o in &page.objects {
                add_key(&o.key, &mut records, &mut data);
            }
            for p in &page.common_prefixes {
                add_key(p, &mut records, &mut data);
            }
            match page.next_page_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
    } else {
        let (objects, _) = transfer::list_all(store, BACKUPS_PREFIX, None)
            .await
            .map_err(storage("list", BACKUPS_PREFIX))?;
        for o in &objects {
            add_key(&o.key, &mut records, &mut data);
        }
    }
    records.sort();
    records.dedup();
    data.sort();
    data.dedup();
    Ok((records, data))
}

/// Every complete backup, oldest first by (finish time, name).
pub async fn list_backups<S: ObjectStore>(
    store: &mut S,
    keys: &Keys,
) -> Result<Vec<BackupRecord>, BackupError> {
    let (names, _) = scan(store).await?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        out.push(read_backup(store, &name, keys).await?);
    }
    sort_oldest_first(&mut out);
    Ok(out)
}

pub fn sort_oldest_first(records: &mut [BackupRecord]) {
    records.sort_by(|a, b| {
        (a.finish_time(), &a.finish_time, &a.name).cmp(&(b.finish_time(), &b.finish_time, &b.name))
    });
}

/// Names that have data under `backups/<name>/` but no record: interrupted
/// backups, or one in progress right now.
pub async fn list_unfinished<S: ObjectStore>(store: &mut S) -> Result<Vec<String>, BackupError> {
    let (records, data) = scan(store).await?;
    Ok(data.into_iter().filter(|d| !records.contains(d)).collect())
}

/// The record of the backup `name` (not `LATEST`: resolve that with
/// `list_backups`).
pub async fn read_backup<S: ObjectStore>(
    store: &mut S,
    name: &str,
    keys: &Keys,
) -> Result<BackupRecord, BackupError> {
    check_name(name)?;
    let key = record_key(name);
    let record = read_verified(store, &key, |k, o| BackupRecord::decode(k, o, keys))
        .await?
        .ok_or_else(|| BackupError::NotFound(name.to_string()))?;
    if record.name != name {
        return Err(BackupError::DamagedRecord {
            key: key.to_string(),
            why: format!("it names backup {}", record.name),
        });
    }
    Ok(record)
}

/// Reads a small checksummed object and decodes it (`None`: not there). A
/// read that fails verification is read again before the object is called
/// damaged: a byte flipped in transit must not fail a restore or a delete.
async fn read_verified<S: ObjectStore, T>(
    store: &mut S,
    key: &Key,
    decode: impl Fn(&str, Vec<u8>) -> Result<T, BackupError>,
) -> Result<Option<T>, BackupError> {
    const READS: u32 = 3;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let bytes = match store.get(key, None).await {
            Ok((_, bytes)) => bytes,
            Err(StorageError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(storage("get", key.as_str())(e)),
        };
        match decode(key.as_str(), bytes) {
            Ok(v) => return Ok(Some(v)),
            Err(e @ BackupError::DamagedRecord { .. }) if attempt >= READS => return Err(e),
            Err(BackupError::DamagedRecord { .. }) => {
                tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt))).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Resolves `LATEST` (the complete backup that finished last) or checks a name.
pub async fn resolve<S: ObjectStore>(
    store: &mut S,
    name_or_latest: &str,
    keys: &Keys,
) -> Result<BackupRecord, BackupError> {
    if name_or_latest == LATEST {
        list_backups(store, keys)
            .await?
            .pop()
            .ok_or(BackupError::NoBackups)
    } else {
        read_backup(store, name_or_latest, keys).await
    }
}

/// Writes the record, create-only: the backup becomes visible with it.
pub async fn write_record<S: ObjectStore>(
    store: &mut S,
    record: &BackupRecord,
    keys: &Keys,
) -> Result<(), BackupError> {
    check_name(&record.name)?;
    let key = record_key(&record.name);
    match store
        .put(&key, &record.encode(keys)?, &PutOptions::create_only())
        .await
    {
        Ok(_) => Ok(()),
        Err(StorageError::AlreadyExists(_)) => Err(BackupError::AlreadyExists(record.name.clone())),
        Err(e) => Err(storage("put", key.as_str())(e)),
    }
}

/// Deletes a backup: the record FIRST (so it is never listed half-deleted),
/// then every object under its data prefix. Re-running finishes an
/// interrupted delete; deleting the data of an unfinished backup works too.
pub async fn delete_backup<S: ObjectStore>(store: &mut S, name: &str) -> Result<(), BackupError> {
    check_name(name)?;
    let key = record_key(name);
    delete_keys(store, std::slice::from_ref(&key)).await?;
    let prefix = data_prefix(name);
    let (objects, _) = transfer::list_all(store, &prefix, None)
        .await
        .map_err(storage("list", &prefix))?;
    let keys = objects
        .iter()
        .map(|o| Key::new(o.key.clone()).map_err(storage("delete", &o.key)))
        .collect::<Result<Vec<_>, _>>()?;
    delete_keys(store, &keys).await
}

/// Removes what a failed run uploaded under the name it reserved: the
/// volumes first, the reservation last, so that the name is never free for
/// another run while keys of this one are still being deleted.
pub async fn release<S: ObjectStore>(store: &mut S, name: &str) -> Result<(), BackupError> {
    check_name(name)?;
    let prefix = data_prefix(name);
    let reservation = reservation_key(name);
    let (objects, _) = transfer::list_all(store, &prefix, None)
        .await
        .map_err(storage("list", &prefix))?;
    let keys = objects
        .iter()
        .filter(|o| o.key != reservation.as_str())
        .map(|o| Key::new(o.key.clone()).map_err(storage("delete", &o.key)))
        .collect::<Result<Vec<_>, _>>()?;
    delete_keys(store, &keys).await?;
    delete_keys(store, std::slice::from_ref(&reservation)).await
}

/// Deletes keys in batches the backend accepts; a key already gone is fine.
pub async fn delete_keys<S: ObjectStore>(store: &mut S, keys: &[Key]) -> Result<(), BackupError> {
    let batch = store.info().limits.max_delete_batch.max(1) as usize;
    for chunk in keys.chunks(batch) {
        let failed = store
            .delete(chunk)
            .await
            .map_err(storage("delete", chunk[0].as_str()))?;
        if let Some((key, e)) = failed
            .into_iter()
            .find(|(_, e)| !matches!(e, StorageError::NotFound(_)))
        {
            return Err(BackupError::Storage {
                op: "delete",
                key,
                source: e,
            });
        }
    }
    Ok(())
}

/// `X/Y` (hex halves) to a 64-bit LSN.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    let hi = u32::from_str_radix(hi, 16).ok()?;
    let lo = u32::from_str_radix(lo, 16).ok()?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// The name of the segment holding `lsn` on `timeline` (XLByteToSeg +
/// XLogFileName).
pub fn segment_name(timeline: u32, lsn: u64, segment_size: u32) -> String {
    let segment_size = u64::from(segment_size.max(1));
    let segno = lsn / segment_size;
    let per_log = 0x1_0000_0000u64 / segment_size;
    format!(
        "{timeline:08X}{:08X}{:08X}",
        segno / per_log,
        segno % per_log
    )
}

/// RFC 3339 in UTC, whole seconds: `2026-12-01T23:59:01Z`.
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Parses RFC 3339 (`2026-12-01T23:59:01Z`, fractions and offsets of zero
/// accepted).
pub fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crypto::tests::test_key;

    fn none() -> Keys {
        Keys::none()
    }

    pub(crate) fn sample_record(name: &str, start_wal: &str, finish_time: &str) -> BackupRecord {
        BackupRecord {
            format: RECORD_FORMAT.into(),
            version: RECORD_VERSION,
            name: name.into(),
            system_identifier: "7441234567890123456".into(),
            pg_version_num: 150018,
            wal_segment_size: 16 << 20,
            timeline: 1,
            start_lsn: "0/4000028".into(),
            stop_lsn: "0/4000138".into(),
            start_wal: start_wal.into(),
            stop_wal: start_wal.into(),
            start_time: "2026-12-01T23:59:01Z".into(),
            finish_time: finish_time.into(),
            data_dir: "/var/lib/postgresql/15/main".into(),
            original_bytes: 3 << 20,
            stored_bytes: 1 << 20,
            compression: Compression::Zstd,
            encrypted: false,
            volumes: vec![VolumeRecord {
                key: format!("{}0001.tar.zst", data_prefix(name)),
                original_len: 3 << 20,
                stored_len: 1 << 20,
                stored_blake3: "00".repeat(32),
                original_blake3: "11".repeat(32),
            }],
            tablespaces: vec![TablespaceRecord {
                oid: 16390,
                location: "/srv/ts1".into(),
            }],
            backup_label: "START WAL LOCATION: 0/4000028 (file 000000010000000000000004)\n".into(),
            tablespace_map: Some("16390 /srv/ts1\n".into()),
            created_by: "walship 0.1.0".into(),
        }
    }

    #[test]
    fn records_round_trip_and_damage_is_caught() {
        let r = sample_record(
            "base_000000010000000000000004",
            "000000010000000000000004",
            "2026-12-02T00:00:00Z",
        );
        let bytes = r.encode(&none()).unwrap();
        assert_eq!(
            &bytes[..8],
            b"WALSHIP\0",
            "stored in walship's object format"
        );
        let back = BackupRecord::decode("k", bytes.clone(), &none()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.start_lsn(), 0x400_0028);
        assert_eq!(back.stop_lsn(), 0x400_0138);
        assert_eq!(back.start_segment().as_str(), "000000010000000000000004");
        // The JSON carries the compression by name.
        let json = String::from_utf8(bytes[object_format::HEADER_LEN..].to_vec()).unwrap();
        assert!(json.contains("\"compression\": \"zstd\""), "{json}");

        let mut flipped = bytes.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 1;
        assert!(matches!(
            BackupRecord::decode("k", flipped, &none()),
            Err(BackupError::DamagedRecord { .. })
        ));
        let mut foreign = r.clone();
        foreign.volumes[0].key = "wal/000000010000000000000004".into();
        assert!(BackupRecord::decode("k", foreign.encode(&none()).unwrap(), &none()).is_err());
        let mut newer = r;
        newer.version = 2;
        let e = BackupRecord::decode("k", newer.encode(&none()).unwrap(), &none()).unwrap_err();
        assert!(e.to_string().contains("upgrade walship"), "{e}");
    }

    #[test]
    fn key_layout() {
        assert_eq!(
            record_key("base_000000010000000000000004").as_str(),
            "backups/base_000000010000000000000004.json"
        );
        assert_eq!(
            data_prefix("base_000000010000000000000004"),
            "backups/base_000000010000000000000004/"
        );
        assert_eq!(
            base_name("000000010000000000000004"),
            "base_000000010000000000000004"
        );
        for bad in ["", "LATEST", "a/b", "..", "x y"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("base_000000010000000000000004_2").unwrap();
    }

    #[test]
    fn lsns_segments_and_times() {
        assert_eq!(parse_lsn("0/4000028"), Some(0x400_0028));
        assert_eq!(parse_lsn("1A/FF"), Some((0x1A << 32) | 0xFF));
        assert_eq!(parse_lsn("nope"), None);
        assert_eq!(format_lsn(0x1_0400_0028), "1/4000028");
        assert_eq!(
            segment_name(1, 0x400_0028, 16 << 20),
            "000000010000000000000004"
        );
        assert_eq!(
            segment_name(2, 0x1_A000_0000, 16 << 20),
            "0000000200000001000000A0"
        );
        assert_eq!(
            segment_name(1, 0x1_C000_0000, 1 << 30),
            "000000010000000100000003"
        );
        let t = parse_time("2026-12-01T23:59:01Z").unwrap();
        assert_eq!(format_time(t), "2026-12-01T23:59:01Z");
        assert!(parse_time("yesterday").is_none());
    }

    fn template(run_id: &str) -> Reservation {
        Reservation {
            format: IN_PROGRESS_FORMAT.into(),
            name: String::new(),
            run_id: run_id.into(),
            timeline: 1,
            start_lsn: "0/4000028".into(),
            start_wal: "000000010000000000000004".into(),
            wal_segment_size: 16 << 20,
            start_time: "2026-12-01T23:59:01Z".into(),
            heartbeat_time: "2026-12-01T23:59:01Z".into(),
            from_standby: false,
            created_by: "walship test".into(),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn runs_that_start_in_one_segment_never_share_a_name() {
        use crate::memory_store::MemoryStore;
        let mut a = MemoryStore::new();
        let mut b = a.worker().unwrap();
        let ra = reserve(&mut a, &template("a"), &none()).await.unwrap();
        let rb = reserve(&mut b, &template("b"), &none()).await.unwrap();
        assert_eq!(ra.name, "base_000000010000000000000004");
        assert_eq!(rb.name, "base_000000010000000000000004_2");
        // A complete backup's name is not reused either.
        let mut record =
            sample_record(&rb.name, "000000010000000000000004", "2026-12-02T00:00:00Z");
        record.name = "base_000000010000000000000004_3".into();
        record.volumes.clear();
        write_record(&mut a, &record, &none()).await.unwrap();
        let rc = reserve(&mut a, &template("c"), &none()).await.unwrap();
        assert_eq!(rc.name, "base_000000010000000000000004_4");
        assert_eq!(
            read_reservation(&mut a, &rb.name, &none())
                .await
                .unwrap()
                .unwrap()
                .run_id,
            "b"
        );

        // The loser of a race finds the winner's reservation and moves on:
        // create-only on the reservation is what decides.
        let key = reservation_key("base_000000010000000000000009");
        let mut other = template("winner");
        other.name = "base_000000010000000000000009".into();
        a.put(
            &key,
            &other.encode(&none()).unwrap(),
            &PutOptions::create_only(),
        )
        .await
        .unwrap();
        let mut loser = template("loser");
        loser.name = other.name.clone();
        let err = a
            .put(
                &key,
                &loser.encode(&none()).unwrap(),
                &PutOptions::create_only(),
            )
            .await;
        assert!(matches!(err, Err(StorageError::AlreadyExists(_))));

        // A failed run removes its own volumes, then its reservation, and
        // nothing of the other run.
        for (name, n) in [(&ra.name, 1), (&ra.name, 2), (&rb.name, 1)] {
            let k = Key::new(format!("{}{n:04}.tar.zst", data_prefix(name))).unwrap();
            a.put(&k, b"v", &PutOptions::create_only()).await.unwrap();
        }
        release(&mut a, &ra.name).await.unwrap();
        assert!(
            a.keys()
                .iter()
                .all(|k| !k.starts_with(&data_prefix(&ra.name))),
            "{:?}",
            a.keys()
        );
        assert!(
            a.object(&format!("{}0001.tar.zst", data_prefix(&rb.name)))
                .is_some()
        );
        assert!(a.object(reservation_key(&rb.name).as_str()).is_some());
    }

    #[test]
    fn a_reservation_is_running_while_its_heartbeat_is_fresh() {
        let mut r = template("x");
        r.name = "base_000000010000000000000004".into();
        let beat = parse_time(&r.heartbeat_time).unwrap();
        assert!(r.is_running(beat + std::time::Duration::from_secs(60)));
        assert!(
            r.is_running(beat - std::time::Duration::from_secs(600)),
            "a clock behind ours"
        );
        assert!(!r.is_running(beat + HEARTBEAT_STALE));
        let back = Reservation::decode("k", r.encode(&none()).unwrap(), &none()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn oldest_first_by_finish_time_then_name() {
        let mut v = vec![
            sample_record("b", "000000010000000000000004", "2026-12-02T00:00:00Z"),
            sample_record("a", "000000010000000000000006", "2026-12-02T00:00:00Z"),
            sample_record("c", "000000010000000000000002", "2026-12-01T00:00:00Z"),
        ];
        sort_oldest_first(&mut v);
        let names: Vec<_> = v.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["c", "a", "b"]);
    }

    /// Issue 18: in an encrypted archive a record (it carries the
    /// backup_label) shows nothing in the clear, opens only with the key and
    /// under its own name, and a key problem is not "damaged" (no re-reads).
    #[test]
    fn encrypted_records_hide_the_backup_label() {
        let keys = Keys::new(test_key(1), Vec::new());
        let name = "base_000000010000000000000004";
        let r = sample_record(name, "000000010000000000000004", "2026-12-02T00:00:00Z");
        let bytes = r.encode(&keys).unwrap();
        assert!(!bytes.windows(19).any(|w| w == b"START WAL LOCATION:"));
        assert!(!bytes.windows(6).any(|w| w == b"/srv/t"));
        let at = record_key(name);
        assert_eq!(
            BackupRecord::decode(at.as_str(), bytes.clone(), &keys).unwrap(),
            r
        );
        let e = BackupRecord::decode(at.as_str(), bytes.clone(), &none()).unwrap_err();
        assert!(matches!(e, BackupError::Unreadable { .. }), "{e}");
        assert!(
            e.to_string()
                .contains(&test_key(1).fingerprint().to_string()),
            "{e}"
        );
        // Another record's name: the storage handed out the wrong object.
        let elsewhere = record_key("base_000000010000000000000009");
        let e = BackupRecord::decode(elsewhere.as_str(), bytes, &keys).unwrap_err();
        assert!(matches!(e, BackupError::DamagedRecord { .. }), "{e}");
        let mut res = template("x");
        res.name = name.into();
        let back = Reservation::decode(res.key().as_str(), res.encode(&keys).unwrap(), &keys);
        assert_eq!(back.unwrap(), res);
    }
}

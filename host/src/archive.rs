//! The archive at a prefix: where WAL files go (`wal/<name>`), which cluster
//! it belongs to (`identity.toml`), and the rules for pushing and fetching.
//!
//! "Identical" (docs/archive-layout.md): an archived file is identical to a
//! local one when their lengths and BLAKE3 hashes of the original bytes are
//! equal, whatever compression either was stored with. A primary and its
//! streaming replicas (`archive_mode = always`) produce byte-identical
//! finished segments, which tests/e2e/replica.rs checks on a real pair, so
//! their pushes of the same segment both succeed.

use crate::crypto::Keys;
use crate::identity::{IDENTITY_KEY, IdentityCache, IdentityRecord};
use crate::object_format::{
    self, Compression, ContentId, Encoded, FormatError, HEADER_LEN, Stored,
};
use crate::pg_control::{ClusterIdentity, parse_segment_header};
use crate::storage::{Key, ObjectStore, PutOptions, StorageError};
use crate::transfer;
use crate::wal_name::{WalFileKind, WalFileName, segment_start_lsn};

pub fn wal_key(name: &WalFileName) -> Key {
    Key::new(format!("wal/{name}")).expect("validated WAL names are valid keys")
}

fn identity_key() -> Key {
    Key::new(IDENTITY_KEY).expect("constant key")
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{op} {key}: {source}")]
    Storage {
        op: &'static str,
        key: String,
        source: StorageError,
    },
    #[error(
        "the archive at {prefix} belongs to another cluster (system identifier {archive}, this data directory has {local}); \
         give each cluster its own prefix"
    )]
    OtherCluster {
        prefix: String,
        archive: u64,
        local: u64,
    },
    #[error(
        "the archive at {prefix} was made with {archive}-byte WAL segments, this cluster uses {local}"
    )]
    SegmentSizeMismatch {
        prefix: String,
        archive: u32,
        local: u32,
    },
    #[error(
        "{prefix} holds a {tool} archive ({evidence}); walship will not write into it: use an empty prefix"
    )]
    ForeignArchive {
        prefix: String,
        tool: &'static str,
        evidence: String,
    },
    #[error(
        "{prefix} is not empty and holds no walship archive (found {found}); use an empty prefix"
    )]
    NotAnArchive { prefix: String, found: String },
    #[error(
        "{prefix} holds no walship archive (no {IDENTITY_KEY}): check the prefix (a typo in a bucket or path looks exactly like this)"
    )]
    NoArchive { prefix: String },
    #[error("the archive's {IDENTITY_KEY} is damaged: {0}")]
    DamagedIdentity(String),
    #[error(
        "the archive at {prefix} is encrypted (key {fingerprint}) and no encryption key is set: \
         set WALG_LIBSODIUM_KEY or WALG_LIBSODIUM_KEY_PATH to that key; nothing was stored"
    )]
    KeyNeeded { prefix: String, fingerprint: String },
    #[error(
        "the archive at {prefix} is encrypted under key {fingerprint}, and the keys set are {have}: \
         set that key (or, after a rotation, keep it in WALSHIP_DECRYPTION_KEY_PATHS); nothing was stored"
    )]
    WrongKey {
        prefix: String,
        fingerprint: String,
        have: String,
    },
    #[error(
        "the archive at {prefix} is not encrypted, and an encryption key is set: walship does not mix \
         plaintext and encrypted objects; archive into a new, empty prefix to encrypt, or unset the key"
    )]
    NotEncrypted { prefix: String },
    #[error("{name} is not a WAL file of this cluster: {why}")]
    ForeignSegment { name: String, why: String },
    #[error(
        "{name} is already archived with different content (archived {archived_len} bytes, blake3 {archived}…; \
         local {local_len} bytes, blake3 {local}…); the archived copy was left untouched"
    )]
    DifferentContent {
        name: String,
        archived: String,
        archived_len: u64,
        local: String,
        local_len: u64,
    },
    #[error("archived {key} is unreadable: {source}")]
    Corrupt { key: String, source: FormatError },
    #[error("{0} is not in the archive")]
    NotInArchive(String),
    #[error(transparent)]
    InvalidText(#[from] crate::wal_text_files::InvalidWalText),
}

impl ArchiveError {
    fn different_content(name: &WalFileName, archived: &ContentId, local: &ContentId) -> Self {
        ArchiveError::DifferentContent {
            name: name.to_string(),
            archived: archived.short_hex(),
            archived_len: archived.length,
            local: local.short_hex(),
            local_len: local.length,
        }
    }

    fn storage(op: &'static str, key: &Key) -> impl FnOnce(StorageError) -> ArchiveError + use<> {
        let key = key.to_string();
        move |source| ArchiveError::Storage { op, key, source }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    Stored,
    AlreadyArchived,
}

/// Where a push spent its time, for `WALSHIP_TIMINGS` and the benchmark.
#[derive(Debug, Clone, Copy, Default)]
pub struct PushTimings {
    pub identity: std::time::Duration,
    pub encode: std::time::Duration,
    pub store: std::time::Duration,
}

pub struct Archive<'c, S> {
    pub timings: PushTimings,
    /// The archive id of the identity record last read (see identity.rs).
    archive_id: Option<String>,
    store: S,
    prefix: String,
    compression: Compression,
    keys: Keys,
    identities: &'c IdentityCache,
    /// WALSHIP_WAL_RATE_LIMIT, shared by every process of this archive.
    rate_limit: Option<crate::rate_limit::SharedRateLimit>,
}

impl<'c, S: ObjectStore> Archive<'c, S> {
    /// Paces WAL transfers to a limit shared with every other walship
    /// process of this archive.
    pub fn with_rate_limit(mut self, limit: Option<crate::rate_limit::SharedRateLimit>) -> Self {
        self.rate_limit = limit;
        self
    }

    /// The id of the archive the last push went into (`None` before the
    /// first push, or for an archive created before walship had ids).
    pub fn archive_id(&self) -> Option<&str> {
        self.archive_id.as_deref()
    }

    /// The compression new objects get (encode with it before `push`).
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The keys objects are encrypted and decrypted with (none: in the clear).
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn new(
        store: S,
        prefix: &str,
        compression: Compression,
        keys: Keys,
        identities: &'c IdentityCache,
    ) -> Self {
        Self {
            timings: PushTimings::default(),
            archive_id: None,
            rate_limit: None,
            store,
            prefix: prefix.to_string(),
            compression,
            keys,
            identities,
        }
    }

    /// Archives one WAL file. `local` is the identity of the data directory
    /// walship runs in.
    pub async fn push(
        &mut self,
        name: &WalFileName,
        encoded: Encoded,
        local: &ClusterIdentity,
    ) -> Result<PushOutcome, ArchiveError> {
        check_belongs_to(name, &encoded.leading, encoded.content.length, local)?;
        crate::wal_text_files::check(name, &encoded, &self.keys)?;
        let t = std::time::Instant::now();
        self.archive_id = self.ensure_identity(local).await?;
        self.timings.identity = t.elapsed();
        let key = wal_key(name);
        let (object, content) = (encoded.object, encoded.content);
        let t = std::time::Instant::now();
        if let Some(limit) = &self.rate_limit {
            limit.take(object.len() as u64).await;
        }
        let result = self.store_object(name, &key, &object, &content).await;
        self.timings.store = t.elapsed();
        result
    }

    async fn store_object(
        &mut self,
        name: &WalFileName,
        key: &Key,
        object: &[u8],
        content: &ContentId,
    ) -> Result<PushOutcome, ArchiveError> {
        let features = self.store.info().features;
        if features.atomic_create_only {
            return match transfer::upload(&mut self.store, key, object, &PutOptions::create_only())
                .await
            {
                Ok(_) => Ok(PushOutcome::Stored),
                Err(StorageError::AlreadyExists(_)) => {
                    self.compare_existing(name, key, content).await
                }
                Err(e) => Err(ArchiveError::storage("put", key)(e)),
            };
        }

        // The store may not refuse an overwrite (no create-only at all, or an
        // S3-compatible store that ignores If-None-Match): look first, so an
        // archived object is never replaced; write (still asking for
        // create-only where the plugin can); then read back to catch a racing
        // writer. A weaker guarantee, which `walship plugin inspect` reports.
        match self.store.head(key).await {
            Ok(_) => return self.compare_existing(name, key, content).await,
            Err(StorageError::NotFound(_)) => {}
            Err(e) => return Err(ArchiveError::storage("head", key)(e)),
        }
        let mode = if features.create_only {
            PutOptions::create_only()
        } else {
            PutOptions::overwrite()
        };
        match transfer::upload(&mut self.store, key, object, &mode).await {
            Ok(_) => self.verify_read_back(name, key, content).await,
            Err(StorageError::AlreadyExists(_)) => self.compare_existing(name, key, content).await,
            Err(e) => Err(ArchiveError::storage("put", key)(e)),
        }
    }

    /// Fetches one WAL file, verified. `local` (when the data directory has a
    /// control file) is checked against segment headers and the archive.
    pub async fn fetch(
        &mut self,
        name: &WalFileName,
        local: Option<&ClusterIdentity>,
    ) -> Result<Vec<u8>, ArchiveError> {
        let key = wal_key(name);
        // A segment holds exactly the cluster's segment size when that is
        // known (and never more than the largest PostgreSQL allows): a
        // larger object, or one claiming to unpack to more, is refused
        // before it is read or unpacked.
        let limit = match local {
            Some(l) if name.has_page_header() => u64::from(l.wal_segment_size),
            _ => object_format::MAX_DECODED,
        };
        // A read that fails verification is read again before the object is
        // called corrupt: a byte flipped in transit must not end a restore.
        const READS: u32 = 3;
        let mut attempt = 0;
        let bytes = loop {
            attempt += 1;
            let object = match transfer::download_at_most(
                &mut self.store,
                &key,
                limit + object_format::HEADER_LEN as u64,
            )
            .await
            {
                Ok(o) => o,
                Err(StorageError::NotFound(_)) => {
                    // Make "not here" believable before PostgreSQL acts on it.
                    let record =
                        self.read_identity()
                            .await?
                            .ok_or_else(|| ArchiveError::NoArchive {
                                prefix: self.prefix.clone(),
                            })?;
                    if let Some(local) = local {
                        self.check_record(&record, local)?;
                    }
                    return Err(ArchiveError::NotInArchive(name.to_string()));
                }
                Err(e) => return Err(ArchiveError::storage("get", &key)(e)),
            };
            if let Some(rate) = &self.rate_limit {
                rate.take(object.len() as u64).await;
            }
            let stored = Stored {
                at: key.as_str(),
                keys: &self.keys,
            };
            match object_format::decode_at_most(object, limit, stored) {
                Ok(decoded) => break decoded.bytes,
                // A missing or wrong key is no accident of transport: say
                // so at once.
                Err(source) if attempt >= READS || !source.may_be_transient() => {
                    return Err(ArchiveError::Corrupt {
                        key: key.to_string(),
                        source,
                    });
                }
                Err(source) => {
                    eprintln!(
                        "walship: warning: {key} failed verification ({source}); reading it again"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt)))
                        .await;
                }
            }
        };
        if let (Some(local), true) = (local, name.has_page_header()) {
            let header =
                parse_segment_header(&bytes).map_err(|why| ArchiveError::ForeignSegment {
                    name: name.to_string(),
                    why: why.into(),
                })?;
            if header.system_identifier != local.system_identifier {
                return Err(ArchiveError::OtherCluster {
                    prefix: self.prefix.clone(),
                    archive: header.system_identifier,
                    local: local.system_identifier,
                });
            }
        }
        Ok(bytes)
    }

    async fn compare_existing(
        &mut self,
        name: &WalFileName,
        key: &Key,
        local: &ContentId,
    ) -> Result<PushOutcome, ArchiveError> {
        // Read and verify the whole archived copy: a corrupt copy must not
        // count as "already archived".
        let object = transfer::download(&mut self.store, key)
            .await
            .map_err(ArchiveError::storage("get", key))?;
        let stored = Stored {
            at: key.as_str(),
            keys: &self.keys,
        };
        let archived = object_format::decode_at_most(object, object_format::MAX_DECODED, stored)
            .map_err(|source| ArchiveError::Corrupt {
                key: key.to_string(),
                source,
            })?
            .content;
        if archived == *local {
            Ok(PushOutcome::AlreadyArchived)
        } else {
            Err(ArchiveError::different_content(name, &archived, local))
        }
    }

    async fn verify_read_back(
        &mut self,
        name: &WalFileName,
        key: &Key,
        local: &ContentId,
    ) -> Result<PushOutcome, ArchiveError> {
        let head = transfer::read_head(&mut self.store, key, HEADER_LEN as u64)
            .await
            .map_err(ArchiveError::storage("get", key))?;
        let header =
            object_format::decode_header(&head).map_err(|source| ArchiveError::Corrupt {
                key: key.to_string(),
                source,
            })?;
        match header.content() {
            Some(archived) if archived == *local => Ok(PushOutcome::Stored),
            Some(archived) => Err(ArchiveError::different_content(name, &archived, local)),
            // An encrypted object's hash is inside it: read it whole.
            None => match self.compare_existing(name, key, local).await? {
                PushOutcome::AlreadyArchived | PushOutcome::Stored => Ok(PushOutcome::Stored),
            },
        }
    }

    async fn read_identity(&mut self) -> Result<Option<IdentityRecord>, ArchiveError> {
        read_identity(&mut self.store).await
    }

    fn check_record(
        &self,
        record: &IdentityRecord,
        local: &ClusterIdentity,
    ) -> Result<(), ArchiveError> {
        if record.cluster.system_identifier != local.system_identifier {
            return Err(ArchiveError::OtherCluster {
                prefix: self.prefix.clone(),
                archive: record.cluster.system_identifier,
                local: local.system_identifier,
            });
        }
        if record.cluster.wal_segment_size != local.wal_segment_size {
            return Err(ArchiveError::SegmentSizeMismatch {
                prefix: self.prefix.clone(),
                archive: record.cluster.wal_segment_size,
                local: local.wal_segment_size,
            });
        }
        Ok(())
    }

    /// Makes sure the prefix is this cluster's archive, creating the identity
    /// record on an empty prefix. Reads the record every time (one small
    /// GET): an archive wiped and started again under the same prefix is
    /// noticed at once, and gets its record back. Returns the archive id.
    pub async fn ensure_identity(
        &mut self,
        local: &ClusterIdentity,
    ) -> Result<Option<String>, ArchiveError> {
        let record = match self.read_identity().await? {
            Some(record) => record,
            None => self.create_identity(local).await?,
        };
        self.check_record(&record, local)?;
        check_keys(&self.prefix, &record, &self.keys)?;
        self.identities
            .remember(&self.prefix, local, record.archive_id.as_deref());
        Ok(record.archive_id)
    }

    /// Creates the identity record of a new archive. Several processes may
    /// start the same empty prefix at once (PostgreSQL's push and the
    /// background pusher, or several servers' first pushes): create-only
    /// decides, and every loser reads the winner's record and goes on.
    async fn create_identity(
        &mut self,
        local: &ClusterIdentity,
    ) -> Result<IdentityRecord, ArchiveError> {
        if let Some(record) = self.refuse_foreign_contents().await? {
            return Ok(record);
        }
        let key = identity_key();
        let mine = IdentityRecord::new(*local, self.keys.current().map(|k| k.fingerprint()));
        let atomic = self.store.info().features.atomic_create_only;
        match self
            .store
            .put(&key, mine.to_toml().as_bytes(), &PutOptions::create_only())
            .await
        {
            Ok(_) if atomic => Ok(mine),
            // Another process created it first (or, where the store may
            // ignore create-only, raced us): what is there now counts.
            Ok(_) | Err(StorageError::AlreadyExists(_)) => self
                .read_identity()
                .await?
                .ok_or_else(|| ArchiveError::DamagedIdentity("vanished after creation".into())),
            Err(e) => Err(ArchiveError::storage("put", &key)(e)),
        }
    }

    /// An empty prefix is fine (`None`); one where another process has just
    /// created the identity record gives that record; another tool's
    /// archive, or anything else, is refused.
    async fn refuse_foreign_contents(&mut self) -> Result<Option<IdentityRecord>, ArchiveError> {
        let (mut objects, _) = transfer::list_all(&mut self.store, "", Some(100))
            .await
            .map_err(ArchiveError::storage("list", &identity_key()))?;
        // A probe `walship check` could not delete is no archive content.
        objects.retain(|o| !o.key.starts_with(crate::commands::check::PROBE_PREFIX));
        let Some(first) = objects.first() else {
            return Ok(None);
        };
        if objects.iter().any(|o| o.key == IDENTITY_KEY)
            && let Some(record) = self.read_identity().await?
        {
            return Ok(Some(record));
        }
        let keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
        let prefix = self.prefix.clone();
        let foreign = |tool, evidence: &str| ArchiveError::ForeignArchive {
            prefix: prefix.clone(),
            tool,
            evidence: evidence.to_string(),
        };
        if let Some(k) = keys
            .iter()
            .find(|k| k.starts_with("wal_005/") || k.starts_with("basebackups_005/"))
        {
            return Err(foreign("WAL-G", k));
        }
        if let Some(k) = keys.iter().find(|k| {
            k.ends_with("archive.info")
                || k.ends_with("backup.info")
                || k.ends_with("archive.info.copy")
        }) {
            return Err(foreign("pgBackRest", k));
        }
        if let Some(k) = keys
            .iter()
            .find(|k| k.contains("/wals/") || k.contains("/base/") && k.ends_with("backup.info"))
        {
            return Err(foreign("barman-cloud", k));
        }
        if let Some(k) = keys.iter().find(|k| k.starts_with("wal/")) {
            return Err(ArchiveError::NotAnArchive {
                prefix: self.prefix.clone(),
                found: format!("walship objects such as {k} but no {IDENTITY_KEY}"),
            });
        }
        Err(ArchiveError::NotAnArchive {
            prefix: self.prefix.clone(),
            found: first.key.clone(),
        })
    }
}

/// Writing into the archive `record` describes needs the keys to match:
/// an encrypted archive takes objects only under a key that can read its
/// first ones (a typo'd key file would otherwise leave WAL no one can
/// restore), and a plaintext archive takes no encrypted objects (nor an
/// encrypted one plaintext: see `NotEncrypted`).
pub fn check_keys(prefix: &str, record: &IdentityRecord, keys: &Keys) -> Result<(), ArchiveError> {
    match (record.encryption, keys.is_set()) {
        (None, false) => Ok(()),
        (None, true) => Err(ArchiveError::NotEncrypted {
            prefix: prefix.to_string(),
        }),
        (Some(fp), false) => Err(ArchiveError::KeyNeeded {
            prefix: prefix.to_string(),
            fingerprint: fp.to_string(),
        }),
        (Some(fp), true) if keys.find(fp).is_some() => Ok(()),
        (Some(fp), true) => Err(ArchiveError::WrongKey {
            prefix: prefix.to_string(),
            fingerprint: fp.to_string(),
            have: keys.describe(),
        }),
    }
}

/// Reads and verifies the archive's identity record (`None`: there is
/// none). A record that fails verification is read again before it is
/// called damaged: a byte flipped in transit must not end a restore.
pub async fn read_identity<S: ObjectStore>(
    store: &mut S,
) -> Result<Option<IdentityRecord>, ArchiveError> {
    const READS: u32 = 3;
    let key = identity_key();
    let mut last_problem = String::new();
    for attempt in 0..READS {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(50 * u64::from(attempt))).await;
        }
        let bytes = match store.get(&key, None).await {
            Ok((_, bytes)) => bytes,
            Err(StorageError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(ArchiveError::storage("get", &key)(e)),
        };
        match String::from_utf8(bytes)
            .map_err(|_| "not UTF-8".to_string())
            .and_then(|text| IdentityRecord::parse(&text))
        {
            Ok(record) => return Ok(Some(record)),
            Err(why) => last_problem = why,
        }
    }
    Err(ArchiveError::DamagedIdentity(format!(
        "{last_problem} (read {READS} times)"
    )))
}

/// Checks that a segment's page header belongs to the cluster in the data
/// directory and to the position its name claims. History and backup-label
/// files carry no header.
fn check_belongs_to(
    name: &WalFileName,
    leading: &[u8],
    length: u64,
    local: &ClusterIdentity,
) -> Result<(), ArchiveError> {
    let (timeline, segment_no) = match name.kind() {
        WalFileKind::Segment {
            timeline,
            segment_no,
        }
        | WalFileKind::Partial {
            timeline,
            segment_no,
        } => (timeline, segment_no),
        WalFileKind::History { .. } | WalFileKind::BackupLabel { .. } => return Ok(()),
    };
    let fail = |why: String| ArchiveError::ForeignSegment {
        name: name.to_string(),
        why,
    };
    if length != u64::from(local.wal_segment_size) {
        return Err(fail(format!(
            "it is {length} bytes, WAL segments of this cluster are {}",
            local.wal_segment_size
        )));
    }
    let header = parse_segment_header(leading).map_err(|why| fail(why.to_string()))?;
    if header.system_identifier != local.system_identifier {
        return Err(fail(format!(
            "its system identifier is {}, the data directory's is {}",
            header.system_identifier, local.system_identifier
        )));
    }
    if header.wal_segment_size != local.wal_segment_size {
        return Err(fail(format!(
            "its header says {}-byte segments",
            header.wal_segment_size
        )));
    }
    let expected = segment_start_lsn(segment_no, local.wal_segment_size);
    if header.page_address != expected {
        return Err(fail(format!(
            "its first page is at LSN {:X}/{:X}, the name says {:X}/{:X}",
            header.page_address >> 32,
            header.page_address as u32,
            expected >> 32,
            expected as u32
        )));
    }
    // The first segment of a new timeline starts as a copy of the old one, so
    // its header may carry an older timeline, never a newer one.
    if header.timeline > timeline {
        return Err(fail(format!(
            "its header is on timeline {}, the name says {timeline}",
            header.timeline
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg_control::tests::fake_segment;

    const ID: ClusterIdentity = ClusterIdentity {
        system_identifier: 99,
        wal_segment_size: 1 << 20,
    };

    fn check(name: &WalFileName, bytes: &[u8]) -> Result<(), ArchiveError> {
        check_belongs_to(name, &bytes[..bytes.len().min(64)], bytes.len() as u64, &ID)
    }

    #[test]
    fn segment_checks_catch_other_clusters_and_misnamed_files() {
        let name = WalFileName::parse("000000010000000000000003").unwrap();
        let good = fake_segment(99, 1, 3 << 20, 1 << 20);
        assert!(check(&name, &good).is_ok());
        let other = fake_segment(98, 1, 3 << 20, 1 << 20);
        assert!(
            check(&name, &other)
                .unwrap_err()
                .to_string()
                .contains("system identifier")
        );
        let misplaced = fake_segment(99, 1, 4 << 20, 1 << 20);
        assert!(check(&name, &misplaced).is_err());
        assert!(check(&name, &good[..1000]).is_err());
        let newer_tli = fake_segment(99, 2, 3 << 20, 1 << 20);
        assert!(check(&name, &newer_tli).is_err());
        let next_tli = WalFileName::parse("000000020000000000000003").unwrap();
        assert!(check(&next_tli, &good).is_ok());
        let history = WalFileName::parse("00000002.history").unwrap();
        assert!(check(&history, b"1\t0/3000000\tno recovery target specified\n").is_ok());
    }
}

//! The archive's identity record (`identity.toml` at the prefix): which
//! cluster the archive belongs to, and a random id of this archive. Written
//! once, create-only, by the first push; never changed. It ends with a
//! BLAKE3 checksum of itself, so a byte flipped in storage or in transit is
//! caught (and the read retried) instead of parsed into a wrong identity.
//!
//! An encrypted archive says so here, in the clear, with the fingerprint of
//! the key it was created with (never the key): a push with no key or an
//! unrelated key is refused before anything is stored. Its layout version
//! is 2, so a walship older than encryption refuses it instead of writing
//! plaintext into it.

use std::path::PathBuf;

use crate::crypto::Fingerprint;
use crate::pg_control::ClusterIdentity;

pub const IDENTITY_KEY: &str = "identity.toml";
/// An archive in the clear.
pub const LAYOUT_VERSION: u32 = 1;
/// An archive whose objects are all encrypted (docs/archive-format.md).
pub const LAYOUT_VERSION_ENCRYPTED: u32 = 2;
/// The only encryption there is so far (crypto/stream.rs).
pub const ENCRYPTION_METHOD: &str = "xchacha20-poly1305-stream";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRecord {
    pub cluster: ClusterIdentity,
    pub layout_version: u32,
    /// Random, drawn when the archive is created: an archive wiped and
    /// created again under the same prefix gets a new one, so what a cache
    /// or a push-ahead marker vouches for can be tied to one archive.
    /// `None` in records written before walship had it.
    pub archive_id: Option<String>,
    /// The fingerprint of the key the archive was created with; `None`: the
    /// archive is not encrypted.
    pub encryption: Option<Fingerprint>,
}

/// The keys a record written before the checksum has, exactly: a record
/// with any other key must carry a valid checksum.
const LEGACY_KEYS: &[&str] = &[
    "format",
    "layout_version",
    "system_identifier",
    "wal_segment_size",
    "created_by",
];
const CHECKSUM_PREFIX: &str = "checksum = \"blake3:";

impl IdentityRecord {
    /// A new archive's record, with a fresh archive id; encrypted under
    /// the key with fingerprint `encryption`, if given.
    pub fn new(cluster: ClusterIdentity, encryption: Option<Fingerprint>) -> Self {
        Self {
            cluster,
            layout_version: if encryption.is_some() {
                LAYOUT_VERSION_ENCRYPTED
            } else {
                LAYOUT_VERSION
            },
            archive_id: Some(crate::random_id::random_hex128()),
            encryption,
        }
    }

    /// TOML, readable by people and by older walships (which ignore the
    /// keys they do not know), ending with a BLAKE3 of every byte before it.
    pub fn to_toml(&self) -> String {
        let mut body = format!(
            "# walship archive identity: written once by the first wal-push, never changed.\n\
             format = \"walship\"\n\
             layout_version = {}\n\
             system_identifier = \"{}\"\n\
             wal_segment_size = {}\n",
            self.layout_version, self.cluster.system_identifier, self.cluster.wal_segment_size,
        );
        if let Some(id) = &self.archive_id {
            body.push_str(&format!("archive_id = \"{id}\"\n"));
        }
        if let Some(fp) = &self.encryption {
            body.push_str(&format!(
                "# every object is encrypted; the key itself is never stored here\n\
                 encryption = \"{ENCRYPTION_METHOD}\"\n\
                 key_fingerprint = \"{fp}\"\n"
            ));
        }
        body.push_str(&format!(
            "created_by = \"walship {}\"\n",
            env!("CARGO_PKG_VERSION")
        ));
        let sum = blake3::hash(body.as_bytes()).to_hex();
        format!("{body}{CHECKSUM_PREFIX}{sum}\"\n")
    }

    /// Parses a record, verifying its checksum. A record without one is
    /// accepted only with exactly the keys records had before checksums
    /// (so a damaged checksum line cannot pass as an old record).
    pub fn parse(text: &str) -> Result<Self, String> {
        let checked = match text.rfind(CHECKSUM_PREFIX) {
            Some(at) if at == 0 || text.as_bytes()[at - 1] == b'\n' => {
                let (body, line) = text.split_at(at);
                let hex = line[CHECKSUM_PREFIX.len()..]
                    .trim_end()
                    .strip_suffix('"')
                    .ok_or("its checksum line is malformed")?;
                if blake3::hash(body.as_bytes()).to_hex().as_str() != hex {
                    return Err("its checksum does not match its contents".into());
                }
                true
            }
            _ => false,
        };
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| e.message().to_string())?;
        if !checked && let Some(k) = table.keys().find(|k| !LEGACY_KEYS.contains(&k.as_str())) {
            return Err(format!("it has no valid checksum line (and a key {k:?})"));
        }
        if table.get("format").and_then(|v| v.as_str()) != Some("walship") {
            return Err("format is not \"walship\"".into());
        }
        let layout_version = table
            .get("layout_version")
            .and_then(|v| v.as_integer())
            .and_then(|v| u32::try_from(v).ok())
            .ok_or("layout_version missing")?;
        if layout_version != LAYOUT_VERSION && layout_version != LAYOUT_VERSION_ENCRYPTED {
            return Err(format!(
                "archive layout version {layout_version} is not supported by this walship (1 and 2): upgrade walship"
            ));
        }
        let encryption = match table.get("encryption").map(|v| v.as_str()) {
            None => None,
            Some(Some(ENCRYPTION_METHOD)) => Some(
                table
                    .get("key_fingerprint")
                    .and_then(|v| v.as_str())
                    .and_then(Fingerprint::parse)
                    .ok_or("key_fingerprint missing or not 16 hex digits")?,
            ),
            Some(other) => {
                return Err(format!(
                    "the archive is encrypted with {other:?}, which this walship does not know: upgrade walship"
                ));
            }
        };
        if (layout_version == LAYOUT_VERSION_ENCRYPTED) != encryption.is_some() {
            return Err(format!(
                "layout_version {layout_version} does not go with {}",
                if encryption.is_some() {
                    "encryption"
                } else {
                    "no encryption"
                }
            ));
        }
        let system_identifier = table
            .get("system_identifier")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or("system_identifier missing")?;
        let wal_segment_size = table
            .get("wal_segment_size")
            .and_then(|v| v.as_integer())
            .and_then(|v| u32::try_from(v).ok())
            .ok_or("wal_segment_size missing")?;
        let archive_id = table
            .get("archive_id")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        Ok(Self {
            cluster: ClusterIdentity {
                system_identifier,
                wal_segment_size,
            },
            layout_version,
            archive_id,
            encryption,
        })
    }
}

/// Remembers, per prefix, the archive last verified there (its cluster and
/// archive id). Every push still reads `identity.toml` (one small GET) to
/// notice an archive that was wiped and created again; what the cache
/// spares is creating it, and it lets a push-ahead marker be checked
/// against the archive it was made for without any request.
pub struct IdentityCache {
    dir: Option<PathBuf>,
}

impl IdentityCache {
    pub fn new(cache_dir: Option<&std::path::Path>) -> Self {
        Self {
            dir: cache_dir.map(|d| d.join("identities")),
        }
    }

    fn file(&self, prefix: &str) -> Option<PathBuf> {
        Some(
            self.dir
                .as_ref()?
                .join(blake3::hash(prefix.as_bytes()).to_hex().as_str()),
        )
    }

    /// The archive id last verified at `prefix` for `cluster`, if any (empty
    /// for an archive made before archive ids).
    pub fn archive_id(&self, prefix: &str, cluster: &ClusterIdentity) -> Option<String> {
        let text = std::fs::read_to_string(self.file(prefix)?).ok()?;
        let rest = text.strip_prefix(&remembered(prefix, cluster))?;
        Some(rest.strip_prefix("archive ")?.trim_end().to_string())
    }

    /// Best effort: a failure only costs a marker shortcut next time.
    pub fn remember(&self, prefix: &str, cluster: &ClusterIdentity, archive_id: Option<&str>) {
        let (Some(dir), Some(file)) = (&self.dir, self.file(prefix)) else {
            return;
        };
        let text = format!(
            "{}archive {}\n",
            remembered(prefix, cluster),
            archive_id.unwrap_or("")
        );
        if std::fs::read_to_string(&file).is_ok_and(|t| t == text) {
            return;
        }
        let tmp = file.with_extension(format!("tmp-{}", crate::random_id::random_hex128()));
        let _ = std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(&tmp, text))
            .and_then(|_| std::fs::rename(&tmp, &file));
        let _ = std::fs::remove_file(&tmp);
    }
}

fn remembered(prefix: &str, c: &ClusterIdentity) -> String {
    format!(
        "{prefix}\n{}\n{}\n",
        c.system_identifier, c.wal_segment_size
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flipped_byte_is_caught_and_old_records_still_read() {
        let cluster = ClusterIdentity {
            system_identifier: 7_441_234_567_890_123_456,
            wal_segment_size: 16 << 20,
        };
        let fp = crate::crypto::tests::test_key(1).fingerprint();
        for rec in [
            IdentityRecord::new(cluster, None),
            IdentityRecord::new(cluster, Some(fp)),
        ] {
            every_flip_is_caught(&rec);
        }
        let rec = IdentityRecord::new(cluster, None);
        // A record written before archive ids and checksums.
        let legacy = "format = \"walship\"\nlayout_version = 1\nsystem_identifier = \"42\"\n\
                      wal_segment_size = 16777216\ncreated_by = \"walship 0.1.0\"\n";
        let old = IdentityRecord::parse(legacy).unwrap();
        assert_eq!(old.cluster.system_identifier, 42);
        assert_eq!(old.archive_id, None);
        assert_eq!(old.encryption, None);
        assert_ne!(
            IdentityRecord::new(old.cluster, None).archive_id,
            rec.archive_id
        );
    }

    fn every_flip_is_caught(rec: &IdentityRecord) {
        let text = rec.to_toml();
        assert_eq!(IdentityRecord::parse(&text).unwrap(), *rec);
        for i in 0..text.len() {
            for bit in [0x01u8, 0x20] {
                let mut bytes = text.clone().into_bytes();
                bytes[i] ^= bit;
                let Ok(flipped) = String::from_utf8(bytes) else {
                    continue;
                };
                // The checksum covers every byte, the comment line too.
                if let Ok(parsed) = IdentityRecord::parse(&flipped) {
                    panic!("byte {i} ^ {bit:#x} passed as {parsed:?}:\n{flipped}");
                }
            }
        }
    }

    /// An encrypted archive's record says so, names the key by its
    /// fingerprint only, and has layout version 2 (which walships older
    /// than encryption refuse); a record claiming encryption with layout 1,
    /// or the reverse, is refused.
    #[test]
    fn an_encrypted_archive_says_so_and_names_only_the_fingerprint() {
        let cluster = ClusterIdentity {
            system_identifier: 42,
            wal_segment_size: 16 << 20,
        };
        let key = crate::crypto::tests::test_key(7);
        let rec = IdentityRecord::new(cluster, Some(key.fingerprint()));
        let text = rec.to_toml();
        assert!(text.contains("layout_version = 2\n"), "{text}");
        assert!(text.contains(&format!("key_fingerprint = \"{}\"", key.fingerprint())));
        assert_eq!(
            IdentityRecord::parse(&text).unwrap().encryption,
            Some(key.fingerprint())
        );
        let relabelled = |from: &str, to: &str| {
            let body = text[..text.rfind(CHECKSUM_PREFIX).unwrap()].replace(from, to);
            format!(
                "{body}{CHECKSUM_PREFIX}{}\"\n",
                blake3::hash(body.as_bytes()).to_hex()
            )
        };
        assert!(
            IdentityRecord::parse(&relabelled("layout_version = 2", "layout_version = 1")).is_err()
        );
        let e = IdentityRecord::parse(&relabelled(ENCRYPTION_METHOD, "rot13")).unwrap_err();
        assert!(e.contains("upgrade walship"), "{e}");
        let plain = IdentityRecord::new(cluster, None).to_toml();
        assert!(plain.contains("layout_version = 1\n") && !plain.contains("encryption"));
    }

    #[test]
    fn the_cache_holds_the_archive_id_per_prefix_and_cluster() {
        let dir = std::env::temp_dir().join(format!("walship-idcache-{}", std::process::id()));
        let cache = IdentityCache::new(Some(&dir));
        let c = ClusterIdentity {
            system_identifier: 9,
            wal_segment_size: 16 << 20,
        };
        assert_eq!(cache.archive_id("file:///a", &c), None);
        cache.remember("file:///a", &c, Some("abc"));
        assert_eq!(cache.archive_id("file:///a", &c).as_deref(), Some("abc"));
        assert_eq!(cache.archive_id("file:///b", &c), None);
        let other = ClusterIdentity {
            system_identifier: 10,
            ..c
        };
        assert_eq!(cache.archive_id("file:///a", &other), None);
        cache.remember("file:///a", &c, Some("def"));
        assert_eq!(cache.archive_id("file:///a", &c).as_deref(), Some("def"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn record_round_trips_and_keeps_u64_precision() {
        let rec = IdentityRecord::new(
            ClusterIdentity {
                system_identifier: u64::MAX - 1,
                wal_segment_size: 16 << 20,
            },
            None,
        );
        assert_eq!(IdentityRecord::parse(&rec.to_toml()).unwrap(), rec);
        assert!(IdentityRecord::parse("format = \"other\"").is_err());
        assert!(
            IdentityRecord::parse(
                &rec.to_toml()
                    .replace("layout_version = 1", "layout_version = 3")
            )
            .is_err()
        );
    }
}

//! The archive's identity record (`identity.toml` at the prefix): which
//! cluster the archive belongs to. Written once, create-only, by the first
//! push; never changed. Because it never changes, a process that has checked
//! it once may remember that in its private cache and skip the read next time.

use std::path::PathBuf;

use crate::pg_control::ClusterIdentity;

pub const IDENTITY_KEY: &str = "identity.toml";
pub const LAYOUT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRecord {
    pub cluster: ClusterIdentity,
    pub layout_version: u32,
}

impl IdentityRecord {
    pub fn new(cluster: ClusterIdentity) -> Self {
        Self {
            cluster,
            layout_version: LAYOUT_VERSION,
        }
    }

    pub fn to_toml(&self) -> String {
        format!(
            "# walship archive identity: written once by the first wal-push, never changed.\n\
             format = \"walship\"\n\
             layout_version = {}\n\
             system_identifier = \"{}\"\n\
             wal_segment_size = {}\n\
             created_by = \"walship {}\"\n",
            self.layout_version,
            self.cluster.system_identifier,
            self.cluster.wal_segment_size,
            env!("CARGO_PKG_VERSION"),
        )
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| e.message().to_string())?;
        if table.get("format").and_then(|v| v.as_str()) != Some("walship") {
            return Err("format is not \"walship\"".into());
        }
        let layout_version = table
            .get("layout_version")
            .and_then(|v| v.as_integer())
            .and_then(|v| u32::try_from(v).ok())
            .ok_or("layout_version missing")?;
        if layout_version != LAYOUT_VERSION {
            return Err(format!(
                "archive layout version {layout_version} is not supported by this walship (1): upgrade walship"
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
        Ok(Self {
            cluster: ClusterIdentity {
                system_identifier,
                wal_segment_size,
            },
            layout_version,
        })
    }
}

/// Remembers, per prefix, the identity already verified there.
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

    pub fn is_verified(&self, prefix: &str, cluster: &ClusterIdentity) -> bool {
        self.file(prefix)
            .and_then(|f| std::fs::read_to_string(f).ok())
            .is_some_and(|s| s == remembered(prefix, cluster))
    }

    /// Best effort: a failure only costs a read next time.
    pub fn remember(&self, prefix: &str, cluster: &ClusterIdentity) {
        let (Some(dir), Some(file)) = (&self.dir, self.file(prefix)) else {
            return;
        };
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(&tmp, remembered(prefix, cluster)))
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
    fn record_round_trips_and_keeps_u64_precision() {
        let rec = IdentityRecord::new(ClusterIdentity {
            system_identifier: u64::MAX - 1,
            wal_segment_size: 16 << 20,
        });
        assert_eq!(IdentityRecord::parse(&rec.to_toml()).unwrap(), rec);
        assert!(IdentityRecord::parse("format = \"other\"").is_err());
        assert!(
            IdentityRecord::parse(
                &rec.to_toml()
                    .replace("layout_version = 1", "layout_version = 2")
            )
            .is_err()
        );
    }
}

//! The `cache` interface (contract 0.1.1): small values a plugin keeps from
//! one process to the next.
//!
//! PostgreSQL starts a walship process for every WAL segment, so a bearer
//! token that costs a plugin an RSA signature (GCS: about 25 ms in wasm) or a
//! round trip would otherwise be made again for every segment. A value is a
//! file `<cache dir>/values/<name hash>`, mode 0600 in a 0700 directory owned
//! by the user walship runs as, because values may be credentials.
//!
//! Values are kept apart per plugin file and per configuration (a scope):
//! each scope has a directory named by the hash of the plugin's sha256, the
//! prefix, every setting and every secret, and each value a file in it named
//! by the hash of the scope and the value's name. A store opened with a
//! rotated key, another prefix or another plugin build finds nothing of the
//! old one's.
//!
//! A plugin decides what it keeps, so what it can keep is bounded: at most
//! `MAX_VALUES_PER_SCOPE` values in its scope, and at most `MAX_SCOPES`
//! scopes in all (so at most MAX_SCOPES x MAX_VALUES_PER_SCOPE x MAX_VALUE
//! bytes on disk). A put looks at its own scope only; the whole directory
//! is swept of expired values at most once per `SWEEP_INTERVAL`, or when a
//! new scope would go over the total.
//!
//! Best effort by contract: an unusable directory, a damaged or expired file
//! reads as "nothing kept", and a plugin always copes without a value.

use std::cell::OnceCell;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::PluginConfig;
use super::cache::{PluginDigest, prepare_private_dir};

/// Longest time a value is kept: a day (tokens live an hour or so).
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Largest value (a token is a few KiB).
pub const MAX_VALUE: usize = 64 << 10;
/// Longest name.
const MAX_NAME: usize = 64;
/// Values one scope (one store's configuration) may keep at once.
pub const MAX_VALUES_PER_SCOPE: usize = 16;
/// Scopes kept at once, over every plugin and configuration.
pub const MAX_SCOPES: usize = 64;
/// How often a put sweeps every scope of expired values.
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);
/// When the directory was last swept (its modification time).
const SWEPT_MARKER: &str = ".swept";
/// First bytes of every value file; a file without them is not ours.
const MAGIC: &[u8; 8] = b"wshpval1";
/// Magic, expiry (seconds since the epoch) and value length.
const HEADER: usize = 8 + 8 + 4;

/// One store's values: a directory and the scope its files are named in.
#[derive(Clone)]
pub struct ValueCache {
    dir: PathBuf,
    scope: [u8; 32],
    /// Whether `dir` is private to this user, found out on first use: most
    /// plugins never keep a value, and opening a store is on every
    /// wal-push's path.
    private: OnceCell<bool>,
}

impl std::fmt::Debug for ValueCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The scope is a hash of secrets among others: not for logs.
        f.debug_struct("ValueCache")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl ValueCache {
    /// The values of a store opened at `prefix` with `config` by the plugin
    /// `digest`, in `<cache_dir>/values` (made, or made private, on first
    /// use; a directory that cannot be keeps nothing, with a warning).
    pub fn open(
        cache_dir: &Path,
        digest: &PluginDigest,
        prefix: &str,
        config: &PluginConfig,
    ) -> ValueCache {
        ValueCache {
            dir: cache_dir.join("values"),
            scope: scope(digest, prefix, config),
            private: OnceCell::new(),
        }
    }

    fn private(&self) -> bool {
        *self.private.get_or_init(|| {
            match prepare_private_dir(&self.dir).and_then(|()| make_unreadable_to_others(&self.dir))
            {
                Ok(()) => true,
                Err(e) => {
                    eprintln!(
                        "walship: warning: plugins cannot keep values between runs in {}: {e:#}",
                        self.dir.display()
                    );
                    false
                }
            }
        })
    }

    /// The value kept under `name`, unless it expired, was never kept, or
    /// its file is damaged. An expired file is removed.
    pub fn get(&self, name: &str) -> Option<Vec<u8>> {
        check_name(name).ok()?;
        if !self.private() {
            return None;
        }
        let path = self.path(name);
        let file = std::fs::File::open(&path).ok()?;
        let mut data = Vec::new();
        file.take((HEADER + MAX_VALUE) as u64 + 1)
            .read_to_end(&mut data)
            .ok()?;
        match decode(&data, now()) {
            Decoded::Value(value) => Some(value.to_vec()),
            Decoded::Expired | Decoded::Damaged => {
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Keeps `value` under `name` for `ttl` (0 removes it), replacing what
    /// was kept. The file appears whole or not at all (temp file, rename).
    pub fn put(&self, name: &str, value: &[u8], ttl: Duration) -> Result<(), String> {
        check_name(name)?;
        if value.len() > MAX_VALUE {
            return Err(format!(
                "a value of {} bytes is larger than the {} KiB kept",
                value.len(),
                MAX_VALUE >> 10
            ));
        }
        if !self.private() {
            return Err(format!(
                "{} cannot be made private to this user",
                self.dir.display()
            ));
        }
        let path = self.path(name);
        if ttl.is_zero() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                _ => Ok(()),
            };
        }
        let scope_dir = self.scope_dir();
        if !scope_dir.is_dir() {
            self.make_scope_dir(&scope_dir)?;
        }
        if !path.exists() {
            let kept = live_values(&scope_dir);
            if kept >= MAX_VALUES_PER_SCOPE {
                return Err(format!(
                    "this store already keeps {kept} values, the most a store may keep; let one expire or remove one (ttl 0) first"
                ));
            }
        }
        let expires = now() + ttl.min(MAX_TTL).as_secs();
        let tmp = scope_dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            path.file_name().unwrap().to_string_lossy()
        ));
        let written = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(&encode(value, expires))?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!("cannot write {}: {e}", path.display()));
        }
        if self.sweep_due() {
            self.sweep();
        }
        Ok(())
    }

    fn scope_dir(&self) -> PathBuf {
        self.dir.join(hex(&self.scope))
    }

    fn path(&self, name: &str) -> PathBuf {
        let mut hash = Sha256::new();
        hash.update(self.scope);
        hash.update(name.as_bytes());
        self.scope_dir().join(hex(&hash.finalize()))
    }

    /// A new scope, if the total allows one (after a sweep if it did not).
    fn make_scope_dir(&self, scope_dir: &Path) -> Result<(), String> {
        if scope_count(&self.dir) >= MAX_SCOPES {
            self.sweep();
            if scope_count(&self.dir) >= MAX_SCOPES {
                return Err(format!(
                    "{} already keeps values for {MAX_SCOPES} stores, the most it keeps; they expire within a day",
                    self.dir.display()
                ));
            }
        }
        match std::fs::DirBuilder::new().mode(0o700).create(scope_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                Err(format!("cannot create {}: {e}", scope_dir.display()))
            }
            _ => Ok(()),
        }
    }

    fn sweep_due(&self) -> bool {
        std::fs::metadata(self.dir.join(SWEPT_MARKER))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age >= SWEEP_INTERVAL)
    }

    /// Removes expired values of every scope (a rotated key leaves its old
    /// token behind, which nothing would read again), scopes left empty,
    /// and files of the flat layout older walships used once expired.
    fn sweep(&self) {
        let _ = std::fs::write(self.dir.join(SWEPT_MARKER), b"");
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                live_values(&path);
                let _ = std::fs::remove_dir(&path); // only if empty
            } else if path.file_name().is_some_and(|n| n != SWEPT_MARKER) && !is_live(&path) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// How many scopes `dir` holds (directory names only: nothing is read).
fn scope_count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .count()
    })
}

/// Counts the live values in one scope's directory, removing expired and
/// damaged ones and temp files a killed process left behind.
fn live_values(scope_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(scope_dir) else {
        return 0;
    };
    let mut live = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let temp = entry.file_name().to_string_lossy().starts_with(".tmp-");
        if temp {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= SWEEP_INTERVAL);
            if stale {
                let _ = std::fs::remove_file(&path);
            }
        } else if is_live(&path) {
            live += 1;
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
    live
}

/// Whether `path` holds an unexpired value (its header is enough).
fn is_live(path: &Path) -> bool {
    let mut header = [0u8; HEADER];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok_and(|()| header[..8] == MAGIC[..] && expiry(&header) > now())
}

/// Names are plain words so that a plugin cannot reach outside its scope
/// (they are hashed anyway) and messages stay readable.
fn check_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "value name {name:?} is not 1-{MAX_NAME} characters of a-z, 0-9, '-' and '.'"
        ))
    }
}

/// Hash of everything that makes a configuration: fields length-prefixed so
/// that no two configurations encode alike.
fn scope(digest: &PluginDigest, prefix: &str, config: &PluginConfig) -> [u8; 32] {
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    field(digest.0.as_bytes());
    field(prefix.as_bytes());
    for (kind, settings) in [("plain", &config.plain), ("secret", &config.secrets)] {
        for (name, value) in settings {
            field(kind.as_bytes());
            field(name.as_bytes());
            field(value.as_bytes());
        }
    }
    hash.finalize().into()
}

/// The directory holds credentials: nobody else may even list it.
fn make_unreadable_to_others(dir: &Path) -> anyhow::Result<()> {
    let mode = std::fs::metadata(dir)?.mode() & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

fn encode(value: &[u8], expires: u64) -> Vec<u8> {
    let mut data = Vec::with_capacity(HEADER + value.len());
    data.extend_from_slice(MAGIC);
    data.extend_from_slice(&expires.to_le_bytes());
    data.extend_from_slice(&(value.len() as u32).to_le_bytes());
    data.extend_from_slice(value);
    data
}

enum Decoded<'a> {
    Value(&'a [u8]),
    Expired,
    Damaged,
}

fn decode(data: &[u8], now: u64) -> Decoded<'_> {
    if data.len() < HEADER || data[..8] != MAGIC[..] {
        return Decoded::Damaged;
    }
    let len = u32::from_le_bytes(data[16..20].try_into().unwrap()) as usize;
    if data.len() != HEADER + len {
        return Decoded::Damaged;
    }
    if expiry(data) <= now {
        return Decoded::Expired;
    }
    Decoded::Value(&data[HEADER..])
}

fn expiry(header: &[u8]) -> u64 {
    u64::from_le_bytes(header[8..16].try_into().unwrap())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(secret: &str) -> PluginConfig {
        PluginConfig {
            plain: vec![("WALSHIP_GS_ENDPOINT".into(), "http://127.0.0.1:1".into())],
            secrets: vec![("GOOGLE_APPLICATION_CREDENTIALS".into(), secret.into())],
        }
    }

    fn digest() -> PluginDigest {
        PluginDigest("ab".repeat(32))
    }

    fn cache(dir: &Path, secret: &str) -> ValueCache {
        ValueCache::open(dir, &digest(), "gs://bucket/a", &config(secret))
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("walship-value-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_value_is_kept_in_a_private_file_until_it_expires() {
        let dir = temp_dir("kept");
        let values = cache(&dir, "key-1");
        assert_eq!(values.get("bearer-token"), None);
        values
            .put("bearer-token", b"token", Duration::from_secs(60))
            .unwrap();
        // Another process with the same configuration: a new handle.
        assert_eq!(
            cache(&dir, "key-1").get("bearer-token").as_deref(),
            Some(&b"token"[..])
        );
        let files: Vec<_> = std::fs::read_dir(values.scope_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!(std::fs::metadata(&files[0]).unwrap().mode() & 0o777, 0o600);
        for private in [dir.join("values"), values.scope_dir()] {
            assert_eq!(std::fs::metadata(private).unwrap().mode() & 0o777, 0o700);
        }
        assert!(
            !files[0].to_string_lossy().contains("bearer"),
            "the name is hashed"
        );

        // A ttl of 0 removes it.
        values.put("bearer-token", b"", Duration::ZERO).unwrap();
        assert_eq!(values.get("bearer-token"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn another_configuration_sees_none_of_the_values() {
        let dir = temp_dir("scope");
        cache(&dir, "key-1")
            .put("bearer-token", b"token of key 1", Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            cache(&dir, "key-2").get("bearer-token"),
            None,
            "rotated key"
        );
        let other_prefix = ValueCache::open(&dir, &digest(), "gs://bucket/b", &config("key-1"));
        assert_eq!(other_prefix.get("bearer-token"), None, "other prefix");
        let other_plugin = ValueCache::open(
            &dir,
            &PluginDigest("cd".repeat(32)),
            "gs://bucket/a",
            &config("key-1"),
        );
        assert_eq!(other_plugin.get("bearer-token"), None, "other plugin build");
        // A setting moved from plain to secret is another configuration too.
        let moved = PluginConfig {
            plain: vec![],
            secrets: vec![
                ("WALSHIP_GS_ENDPOINT".into(), "http://127.0.0.1:1".into()),
                ("GOOGLE_APPLICATION_CREDENTIALS".into(), "key-1".into()),
            ],
        };
        let moved = ValueCache::open(&dir, &digest(), "gs://bucket/a", &moved);
        assert_eq!(moved.get("bearer-token"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn expired_and_damaged_files_read_as_nothing_and_are_removed() {
        let dir = temp_dir("expired");
        let values = cache(&dir, "key-1");
        values.put("a", b"value", Duration::from_secs(60)).unwrap();
        let path = values.path("a");
        // Expired a second ago.
        std::fs::write(&path, encode(b"value", now() - 1)).unwrap();
        assert_eq!(values.get("a"), None);
        assert!(!path.exists());
        // Torn: shorter than its header says.
        let mut torn = encode(b"value", now() + 60);
        torn.pop();
        std::fs::write(&path, torn).unwrap();
        assert_eq!(values.get("a"), None);
        // Not ours.
        std::fs::write(&path, b"something else entirely").unwrap();
        assert_eq!(values.get("a"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_put_sweeps_expired_values_of_other_scopes_once_in_a_while() {
        let dir = temp_dir("sweep");
        let old = cache(&dir, "key-1");
        old.put("a", b"old", Duration::from_secs(60)).unwrap();
        std::fs::write(old.path("a"), encode(b"old", now() - 1)).unwrap();
        let new = cache(&dir, "key-2");
        // Swept a moment ago (by the first put): a put reads its own scope
        // only.
        new.put("a", b"new", Duration::from_secs(60)).unwrap();
        assert!(old.path("a").exists());
        // Once the last sweep is old enough, the next put sweeps.
        let marker = std::fs::File::options()
            .write(true)
            .open(dir.join("values").join(SWEPT_MARKER))
            .unwrap();
        marker
            .set_modified(SystemTime::now() - SWEEP_INTERVAL)
            .unwrap();
        new.put("b", b"new", Duration::from_secs(60)).unwrap();
        assert!(!old.path("a").exists());
        assert!(!old.scope_dir().exists(), "the empty scope stays");
        assert_eq!(new.get("a").as_deref(), Some(&b"new"[..]));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_store_keeps_at_most_its_quota_of_values() {
        let dir = temp_dir("quota");
        let values = cache(&dir, "key-1");
        for i in 0..MAX_VALUES_PER_SCOPE {
            values
                .put(&format!("v{i}"), b"value", Duration::from_secs(60))
                .unwrap();
        }
        let err = values
            .put("one-more", b"value", Duration::from_secs(60))
            .expect_err("kept more than its quota");
        assert!(err.contains("the most a store may keep"), "{err}");
        // Replacing a value it keeps is fine, and so is a new one once
        // another is gone.
        values.put("v0", b"again", Duration::from_secs(60)).unwrap();
        values.put("v1", b"", Duration::ZERO).unwrap();
        values
            .put("one-more", b"value", Duration::from_secs(60))
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_number_of_stores_keeping_values_is_bounded() {
        let dir = temp_dir("scopes");
        for i in 0..MAX_SCOPES {
            cache(&dir, &format!("key-{i}"))
                .put("a", b"value", Duration::from_secs(60))
                .unwrap();
        }
        let err = cache(&dir, "one-more")
            .put("a", b"value", Duration::from_secs(60))
            .expect_err("kept values for more stores than the total allows");
        assert!(err.contains("the most it keeps"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_sizes_and_lifetimes_are_bounded() {
        let dir = temp_dir("bounds");
        let values = cache(&dir, "key-1");
        for bad in ["", "Token", "a/b", "../x", &"a".repeat(65)] {
            let err = values.put(bad, b"v", Duration::from_secs(1)).unwrap_err();
            assert!(err.contains("a-z"), "{bad:?}: {err}");
            assert_eq!(values.get(bad), None);
        }
        let err = values
            .put("big", &vec![0; MAX_VALUE + 1], Duration::from_secs(1))
            .unwrap_err();
        assert!(err.contains("64 KiB"), "{err}");
        values
            .put("long", b"v", Duration::from_secs(365 * 24 * 3600))
            .unwrap();
        let data = std::fs::read(values.path("long")).unwrap();
        assert!(expiry(&data) <= now() + MAX_TTL.as_secs());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_others_can_read_is_made_private() {
        let dir = temp_dir("private");
        std::fs::create_dir_all(dir.join("values")).unwrap();
        std::fs::set_permissions(dir.join("values"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let values = cache(&dir, "key-1");
        // Nothing happens to the directory until a value is looked for.
        assert_eq!(
            std::fs::metadata(dir.join("values")).unwrap().mode() & 0o777,
            0o755
        );
        assert_eq!(values.get("a"), None);
        assert_eq!(
            std::fs::metadata(dir.join("values")).unwrap().mode() & 0o777,
            0o700
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

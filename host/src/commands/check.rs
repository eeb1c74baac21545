//! `walship check [--json]`: is this set-up right, today? Run as the
//! PostgreSQL user, from the data directory (or with `PGDATA`), it checks,
//! one line each, ✓ or what is wrong and how to fix it:
//!
//! - the settings resolve and name an archive prefix;
//! - the plugin for that prefix loads, and what the sandbox grants it;
//! - the storage accepts the credentials, answers, stores an object
//!   create-only (and refuses a second create), and tells a missing key from
//!   a forbidden one (S3 without `s3:ListBucket` cannot);
//! - the archive at the prefix is this cluster's (or none yet);
//! - the running server: `wal_level`, `archive_mode`, `archive_command`
//!   (walship's wal-push?), `archive_timeout`, `restore_command`;
//! - a round trip, as pgBackRest's check does: a WAL switch, then that very
//!   segment must reach this archive.
//!
//! Exit 0 only when every check passes. A check that cannot run because an
//! earlier one failed is not shown.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Context, EXIT_FAILURE, Failure};
use crate::backup::connect::{ConnSettings, chain};
use crate::pg_control::read_cluster_identity;
use crate::retry::Retrying;
use crate::storage::{Key, ObjectStore, PutOptions, StorageError};

/// Probe objects live here, under the archive prefix, for a moment.
pub const PROBE_PREFIX: &str = "check/";
/// How long the round trip waits for the switched segment.
const ROUND_TRIP_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Serialize)]
struct Check {
    check: &'static str,
    ok: bool,
    /// What was found (✓), or what is wrong.
    detail: String,
    /// How to fix it (only when not ok).
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

#[derive(Default, Serialize)]
struct Report {
    ok: bool,
    checks: Vec<Check>,
}

impl Report {
    fn pass(&mut self, check: &'static str, detail: impl Into<String>) {
        self.checks.push(Check {
            check,
            ok: true,
            detail: detail.into(),
            fix: None,
        });
    }

    fn fail(&mut self, check: &'static str, detail: impl Into<String>, fix: impl Into<String>) {
        self.checks.push(Check {
            check,
            ok: false,
            detail: one_line(detail.into()),
            fix: Some(fix.into()),
        });
    }

    fn print(mut self, json: bool) -> Result<(), Failure> {
        self.ok = self.checks.iter().all(|c| c.ok);
        let mut out = std::io::stdout().lock();
        if json {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&self).expect("serializes")
            );
        } else {
            for c in &self.checks {
                let _ = match &c.fix {
                    None => writeln!(out, "✓ {}: {}", c.check, c.detail),
                    Some(fix) => writeln!(out, "✗ {}: {} (fix: {fix})", c.check, c.detail),
                };
            }
        }
        if self.ok {
            Ok(())
        } else {
            let failed: Vec<&str> = self
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| c.check)
                .collect();
            Err(Failure::new(
                EXIT_FAILURE,
                format!("check: failed: {}", failed.join(", ")),
            ))
        }
    }
}

fn one_line(s: String) -> String {
    s.replace(['\n', '\r'], " ")
}

pub async fn run(ctx: &Context, json: bool) -> Result<(), Failure> {
    let mut report = Report::default();
    check_all(ctx, &mut report).await;
    report.print(json)
}

async fn check_all(ctx: &Context, report: &mut Report) {
    let Some(prefix) = ctx.settings.prefix.clone() else {
        report.fail(
            "settings",
            "no archive prefix is set",
            "set WALSHIP_PREFIX (or WAL-G's WALG_S3_PREFIX, WALG_FILE_PREFIX, ...)",
        );
        return;
    };
    report.pass(
        "settings",
        match &ctx.settings.config_path {
            Some(p) => format!("archive prefix {prefix} (settings file {})", p.display()),
            None => format!("archive prefix {prefix}"),
        },
    );

    let plugin = match ctx.load_plugin() {
        Ok(p) => {
            report.pass(
                "plugin",
                format!(
                    "{} (sha256 {}…)",
                    super::scheme_of(&prefix),
                    &p.digest.0[..12.min(p.digest.0.len())]
                ),
            );
            p
        }
        Err(e) => {
            report.fail(
                "plugin",
                format!("{e:#}"),
                "install the plugin for this scheme (walship plugin list shows what is there)",
            );
            return;
        }
    };
    let store = match plugin.open(&prefix, |info| ctx.plugin_config(info)).await {
        Ok(store) => {
            let grants = store.grants();
            let mut granted: Vec<String> = grants.endpoints.iter().map(|e| e.to_string()).collect();
            granted.extend(grants.directories.iter().map(|d| {
                format!(
                    "{} ({})",
                    d.path.display(),
                    if d.writable {
                        "read-write"
                    } else {
                        "read-only"
                    }
                )
            }));
            report.pass(
                "sandbox",
                if granted.is_empty() {
                    "the plugin is granted nothing".to_string()
                } else {
                    format!("the plugin may reach only {}", granted.join(", "))
                },
            );
            store
        }
        Err(e) => {
            report.fail(
                "sandbox",
                e.to_string(),
                "fix the storage settings or WALSHIP_ALLOW_HOSTS / WALSHIP_ALLOW_DIRECTORIES",
            );
            return;
        }
    };
    let mut store = Retrying::new(store, ctx.retry_policy());
    if !check_storage(&mut store, report).await {
        return;
    }

    let data_dir = data_directory(ctx);
    let local = data_dir
        .as_ref()
        .and_then(|d| read_cluster_identity(d).ok());
    match crate::archive::read_identity(&mut store).await {
        Ok(Some(record)) => match &local {
            Some(l) if record.cluster.system_identifier != l.system_identifier => report.fail(
                "archive",
                format!(
                    "{prefix} belongs to another cluster (system identifier {}, this one is {})",
                    record.cluster.system_identifier, l.system_identifier
                ),
                "give each cluster its own prefix",
            ),
            Some(l) if record.cluster.wal_segment_size != l.wal_segment_size => report.fail(
                "archive",
                format!(
                    "{prefix} holds {}-byte WAL segments, this cluster writes {}",
                    record.cluster.wal_segment_size, l.wal_segment_size
                ),
                "give this cluster its own prefix",
            ),
            _ => {
                report.pass(
                    "archive",
                    format!(
                        "this cluster's (system identifier {}{})",
                        record.cluster.system_identifier,
                        record
                            .archive_id
                            .as_deref()
                            .map(|id| format!(", archive id {}", &id[..8.min(id.len())]))
                            .unwrap_or_default()
                    ),
                );
                check_encryption(&prefix, Some(&record), &ctx.settings.keys, report);
            }
        },
        Ok(None) => match foreign_contents(&mut store).await {
            Some(found) => report.fail(
                "archive",
                format!("{prefix} holds no walship archive but is not empty ({found})"),
                "use an empty prefix for walship",
            ),
            None => {
                report.pass("archive", "none yet: the first wal-push creates it");
                check_encryption(&prefix, None, &ctx.settings.keys, report);
            }
        },
        Err(e) => report.fail(
            "archive",
            e.to_string(),
            "check the prefix; a damaged identity.toml needs an operator",
        ),
    }

    let Some(data_dir) = data_dir else {
        report.fail(
            "server",
            "no data directory: run check in it (as PostgreSQL runs archive_command) or set PGDATA",
            "cd to the data directory, or set PGDATA",
        );
        return;
    };
    check_server(ctx, &mut store, &data_dir, report).await;
}

/// Whether the keys set open this archive: the same rule wal-push applies
/// before it stores anything (`archive::check_keys`), said before the first
/// push rather than by a failing archive_command. Names fingerprints only.
fn check_encryption(
    prefix: &str,
    record: Option<&crate::identity::IdentityRecord>,
    keys: &crate::crypto::Keys,
    report: &mut Report,
) {
    let sealing = |keys: &crate::crypto::Keys| {
        keys.current()
            .map(|k| format!("new objects are sealed with key {}", k.fingerprint()))
            .unwrap_or_default()
    };
    let Some(record) = record else {
        report.pass(
            "encryption",
            if keys.is_set() {
                format!(
                    "the first wal-push creates an encrypted archive; {}",
                    sealing(keys)
                )
            } else {
                "off: the first wal-push creates an unencrypted archive".to_string()
            },
        );
        return;
    };
    match crate::archive::check_keys(prefix, record, keys) {
        Ok(()) => report.pass(
            "encryption",
            match record.encryption {
                Some(fp) => format!(
                    "the archive is encrypted (key {fp}), a key set opens it; {}",
                    sealing(keys)
                ),
                None => "off (the archive is not encrypted)".to_string(),
            },
        ),
        Err(e) => {
            use crate::archive::ArchiveError;
            const SET_THE_KEY: &str = "set WALG_LIBSODIUM_KEY or WALG_LIBSODIUM_KEY_PATH to the archive's key \
                                       (after a rotation, keep it in WALSHIP_DECRYPTION_KEY_PATHS)";
            let (what, fix) = match &e {
                ArchiveError::KeyNeeded { fingerprint, .. } => (
                    format!(
                        "the archive is encrypted (key {fingerprint}) and no encryption key is set"
                    ),
                    SET_THE_KEY,
                ),
                ArchiveError::WrongKey {
                    fingerprint, have, ..
                } => (
                    format!(
                        "the archive is encrypted under key {fingerprint}; the keys set are {have}"
                    ),
                    SET_THE_KEY,
                ),
                ArchiveError::NotEncrypted { .. } => (
                    "the archive is not encrypted, and an encryption key is set".to_string(),
                    "unset the encryption key, or archive into a new, empty prefix to encrypt",
                ),
                other => (other.to_string(), SET_THE_KEY),
            };
            report.fail("encryption", what, fix);
        }
    }
}

/// Stores a probe object create-only, tries again (a store that enforces
/// create-only refuses), reads it back and deletes it; asks for a key that
/// is not there, which must be "not found", not "forbidden".
async fn check_storage<S: ObjectStore>(store: &mut S, report: &mut Report) -> bool {
    let id = crate::random_id::random_hex128();
    let probe = Key::new(format!("{PROBE_PREFIX}probe-{id}")).expect("valid key");
    let body = format!("walship check {id}");
    match store
        .put(&probe, body.as_bytes(), &PutOptions::create_only())
        .await
    {
        Ok(_) => {}
        Err(e) => {
            report.fail(
                "storage",
                format!("cannot store an object: {e}"),
                fix_for(&e),
            );
            return false;
        }
    }
    let features = store.info().features;
    let second = store
        .put(&probe, b"second", &PutOptions::create_only())
        .await;
    let read = store.get(&probe, None).await;
    let deleted = store.delete(std::slice::from_ref(&probe)).await;
    match (&second, &read) {
        (_, Err(e)) => {
            report.fail(
                "storage",
                format!("cannot read back an object: {e}"),
                fix_for(e),
            );
            return false;
        }
        (Ok(_), _) if features.atomic_create_only => {
            report.fail(
                "storage",
                "the store overwrote an object written create-only, though the plugin says it refuses",
                "report this plugin; for S3-compatible stores check If-None-Match support",
            );
            return false;
        }
        (_, Ok((_, bytes))) if bytes.as_slice() != body.as_bytes() && features.create_only => {
            report.fail(
                "storage",
                "a second create-only write replaced the object",
                "this store does not honour create-only: walship then looks before every write",
            );
            return false;
        }
        _ => {}
    }
    if let Err(e) = deleted {
        report.fail(
            "storage",
            format!("cannot delete the probe {probe}: {e}"),
            "grant delete permission (retention needs it too), and remove the probe by hand",
        );
        return false;
    }
    report.pass(
        "storage",
        format!(
            "credentials accepted; stored, read back and deleted a probe; create-only {}",
            if features.atomic_create_only {
                "enforced by the store"
            } else if features.create_only {
                "asked for, not guaranteed (walship looks first and reads back)"
            } else {
                "not supported (walship looks first and reads back)"
            }
        ),
    );
    let missing = Key::new(format!("{PROBE_PREFIX}missing-{id}")).expect("valid key");
    match store.head(&missing).await {
        Err(StorageError::NotFound(_)) => {
            report.pass("missing keys", "a missing key is reported missing");
            true
        }
        Err(StorageError::PermissionDenied(m)) => {
            report.fail(
                "missing keys",
                format!("a missing key is answered as forbidden ({m})"),
                "grant list permission on the bucket (s3:ListBucket): without it a missing WAL \
                 file cannot be told from a forbidden one",
            );
            false
        }
        Ok(_) => {
            report.fail(
                "missing keys",
                "a key never written is reported present",
                "report this plugin",
            );
            false
        }
        Err(e) => {
            report.fail("missing keys", e.to_string(), fix_for(&e));
            false
        }
    }
}

fn fix_for(e: &StorageError) -> &'static str {
    match e {
        StorageError::Unauthenticated(_) => "check the credentials the message names",
        StorageError::PermissionDenied(_) => {
            "grant the role read, write, list and delete on the prefix"
        }
        StorageError::InvalidConfig(_) => "fix the storage setting the message names",
        StorageError::Transient(_)
        | StorageError::Throttled { .. }
        | StorageError::PluginTimeout(_) => {
            "check that the storage endpoint is reachable from here"
        }
        _ => "see the message",
    }
}

/// What makes a prefix without identity.toml not a fresh one, if anything.
async fn foreign_contents<S: ObjectStore>(store: &mut S) -> Option<String> {
    let (objects, _) = crate::transfer::list_all(store, "", Some(20)).await.ok()?;
    objects
        .iter()
        .find(|o| !o.key.starts_with(PROBE_PREFIX))
        .map(|o| match o.key.split('/').next() {
            Some("wal_005" | "basebackups_005") => format!("a WAL-G archive: {}", o.key),
            _ => o.key.clone(),
        })
}

fn data_directory(ctx: &Context) -> Option<PathBuf> {
    if ctx.cwd.join("global/pg_control").is_file() {
        return Some(ctx.cwd.clone());
    }
    super::backup_push::var(ctx, "PGDATA").map(PathBuf::from)
}

async fn check_server<S: ObjectStore>(
    ctx: &Context,
    store: &mut S,
    data_dir: &std::path::Path,
    report: &mut Report,
) {
    let conn = match ConnSettings::resolve(|n| super::backup_push::var(ctx, n), data_dir) {
        Ok(c) => c,
        Err(e) => {
            report.fail("server", e, "fix the PG* settings");
            return;
        }
    };
    let client = match conn.connect("walship check").await {
        Ok(c) => c,
        Err(e) => {
            report.fail(
                "server",
                e,
                "start the server, or set PGHOST/PGPORT/PGUSER to reach it",
            );
            return;
        }
    };
    let setting = async |name: &str| -> String {
        client
            .query_one("SELECT coalesce(current_setting($1, true), '')", &[&name])
            .await
            .map(|row| row.get::<_, String>(0))
            .unwrap_or_default()
    };
    let wal_level = setting("wal_level").await;
    if wal_level == "replica" || wal_level == "logical" {
        report.pass("wal_level", wal_level);
    } else {
        report.fail(
            "wal_level",
            format!("wal_level is {wal_level:?}: archived WAL cannot restore a base backup"),
            "set wal_level = replica and restart PostgreSQL",
        );
    }
    let in_recovery = client
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .map(|r| r.get::<_, bool>(0))
        .unwrap_or(false);
    let failed_before = report.checks.iter().filter(|c| !c.ok).count();
    let archive_mode = setting("archive_mode").await;
    match archive_mode.as_str() {
        "always" => report.pass("archive_mode", "always"),
        "on" if !in_recovery => report.pass("archive_mode", "on"),
        "on" => report.fail(
            "archive_mode",
            "on, but this server is a standby: it archives nothing",
            "set archive_mode = always on a standby that should archive",
        ),
        other => report.fail(
            "archive_mode",
            format!("archive_mode is {other:?}: nothing is archived"),
            "set archive_mode = on and restart PostgreSQL",
        ),
    }
    let archive_command = setting("archive_command").await;
    let prefix = ctx.settings.prefix.as_deref().unwrap_or_default();
    if !(archive_command.contains("walship") && archive_command.contains("wal-push")) {
        report.fail(
            "archive_command",
            format!(
                "archive_command is {:?}, not walship's",
                masked(&archive_command)
            ),
            "set archive_command = 'walship wal-push %p'",
        );
    } else if let Some(other) =
        prefix_named_in(&archive_command).filter(|p| !same_prefix(p, prefix))
    {
        report.fail(
            "archive_command",
            format!("archive_command archives to {other}, this check looked at {prefix}"),
            "use the same prefix in archive_command and for backups and restores",
        );
    } else {
        report.pass("archive_command", masked(&archive_command));
    }
    let timeout = setting("archive_timeout").await;
    report.pass(
        "archive_timeout",
        if matches!(timeout.as_str(), "0" | "0s" | "") {
            "0: a segment is archived only when full; on a quiet server the newest changes may \
             wait for hours (set archive_timeout, e.g. 60s, to bound that)"
                .to_string()
        } else {
            timeout
        },
    );
    let restore = setting("restore_command").await;
    report.pass(
        "restore_command",
        if restore.is_empty() {
            "not set (needed only for recovery and standbys)".to_string()
        } else if restore.contains("walship") && restore.contains("wal-fetch") {
            masked(&restore)
        } else {
            format!("{} (not walship's wal-fetch)", masked(&restore))
        },
    );
    if in_recovery {
        report.pass(
            "round trip",
            "skipped: a standby cannot switch WAL (run check on the primary)",
        );
        return;
    }
    // With archiving off or elsewhere, the round trip cannot succeed: the
    // lines above already say why.
    if report.checks.iter().filter(|c| !c.ok).count() == failed_before {
        round_trip(&client, store, report).await;
    }
}

/// A command line with the values of secret settings (`NAME=value` where
/// NAME is a secret walship knows, or looks like one) replaced by `***`:
/// check's output goes to terminals and logs.
fn masked(command: &str) -> String {
    command
        .split(' ')
        .map(|word| match word.split_once('=') {
            Some((name, _))
                if crate::settings::names::is_secret(name)
                    || ["SECRET", "PASSWORD", "TOKEN", "PRIVATE"]
                        .iter()
                        .any(|s| name.to_ascii_uppercase().contains(s)) =>
            {
                format!("{name}=***")
            }
            _ => word.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The prefix an archive_command names explicitly, if it does.
fn prefix_named_in(command: &str) -> Option<String> {
    for word in command.split_whitespace() {
        let word = word.trim_matches(['\'', '"']);
        if let Some((name, value)) = word.split_once('=')
            && (name == "WALSHIP_PREFIX"
                || (name.starts_with("WALG_") && name.ends_with("_PREFIX"))
                || (name.starts_with("WALE_") && name.ends_with("_PREFIX")))
        {
            return Some(value.trim_matches(['\'', '"']).to_string());
        }
    }
    let words: Vec<&str> = command.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "--prefix")
        .map(|w| w[1].trim_matches(['\'', '"']).to_string())
        .or_else(|| {
            words
                .iter()
                .find_map(|w| w.strip_prefix("--prefix="))
                .map(|p| p.trim_matches(['\'', '"']).to_string())
        })
}

/// `/var/lib/x` (WALG_FILE_PREFIX) and `file:///var/lib/x` are one prefix.
fn same_prefix(a: &str, b: &str) -> bool {
    let norm = |p: &str| {
        let p = p.trim_end_matches('/');
        if p.starts_with('/') {
            format!("file://{p}")
        } else {
            p.to_string()
        }
    };
    norm(a) == norm(b)
}

async fn round_trip<S: ObjectStore>(
    client: &tokio_postgres::Client,
    store: &mut S,
    report: &mut Report,
) {
    // A record first, so the switch is never a no-op on an idle server.
    let switched = async {
        client
            .query_one(
                "SELECT pg_logical_emit_message(false, 'walship', 'check')::text",
                &[],
            )
            .await?;
        client
            .query_one("SELECT pg_walfile_name(pg_switch_wal())", &[])
            .await
            .map(|r| r.get::<_, String>(0))
    }
    .await;
    let segment = match switched {
        Ok(s) => s,
        Err(e) => {
            report.fail(
                "round trip",
                format!("cannot switch WAL: {}", chain(&e)),
                "run check as a role allowed pg_switch_wal() (a superuser, or granted it)",
            );
            return;
        }
    };
    let key = Key::new(format!("wal/{segment}")).expect("valid key");
    let started = Instant::now();
    loop {
        match store.head(&key).await {
            Ok(_) => {
                report.pass(
                    "round trip",
                    format!(
                        "switched to a new WAL file; {segment} reached the archive in {:.1}s",
                        started.elapsed().as_secs_f64()
                    ),
                );
                return;
            }
            Err(StorageError::NotFound(_)) if started.elapsed() < ROUND_TRIP_WAIT => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(StorageError::NotFound(_)) => {
                report.fail(
                    "round trip",
                    format!(
                        "{segment} did not reach this archive within {}s of a WAL switch",
                        ROUND_TRIP_WAIT.as_secs()
                    ),
                    "archive_command must archive into this very prefix: see pg_stat_archiver \
                     and the server log for its errors",
                );
                return;
            }
            Err(e) => {
                report.fail("round trip", e.to_string(), fix_for(&e));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_named_in_an_archive_command() {
        assert_eq!(
            prefix_named_in("WALSHIP_PREFIX=s3://b/p walship wal-push %p").as_deref(),
            Some("s3://b/p")
        );
        assert_eq!(
            prefix_named_in("env WALG_FILE_PREFIX='/srv/a' /usr/bin/walship wal-push %p")
                .as_deref(),
            Some("/srv/a")
        );
        assert_eq!(
            prefix_named_in("walship --prefix file:///x wal-push %p").as_deref(),
            Some("file:///x")
        );
        assert_eq!(prefix_named_in("walship wal-push %p"), None);
        assert!(same_prefix("/srv/a/", "file:///srv/a"));
        assert_eq!(
            masked(
                "AWS_SECRET_ACCESS_KEY='s3cr3t' PGPASSWORD=x AZURE_STORAGE_SAS_TOKEN=t walship wal-push %p"
            ),
            "AWS_SECRET_ACCESS_KEY=*** PGPASSWORD=*** AZURE_STORAGE_SAS_TOKEN=*** walship wal-push %p"
        );
        assert!(!same_prefix("/srv/a", "file:///srv/b"));
    }
}

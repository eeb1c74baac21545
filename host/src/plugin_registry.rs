//! Where plugins live and how a scheme finds its plugin.
//!
//! `walship plugin install` copies a plugin into the first plugin directory
//! as `<backend>.wasm` beside a record, `<backend>.toml`, that names the
//! schemes it serves and the sha256 it was installed with. A prefix's scheme
//! is served by the first directory (in `Settings::plugin_dirs` order) whose
//! record lists it, else by the bundled plugin named after the scheme
//! (`fs.wasm` for `file://`, ...) in the bundled directory, the last one. A
//! plugin whose bytes no longer match its record is refused, not loaded.
//!
//! A `.wasm` file without a record in any other directory is never loaded:
//! a file dropped into the per-user plugin directory (by anyone or anything
//! that can write there) would otherwise silently take over `file://` or
//! `s3://` from the bundled plugin. Installing over a bundled scheme takes
//! `plugin install --force`, which says what it shadows.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What `plugin install` wrote about one plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallRecord {
    pub backend: String,
    pub plugin_version: String,
    pub contract: String,
    pub schemes: Vec<String>,
    pub sha256: String,
    /// The file, relative to the record's directory.
    pub file: String,
    /// Unix seconds.
    pub installed_at: u64,
    /// The settings the plugin declared when installed (`NAME`, `NAME
    /// (secret)`, `NAME (secret-file)`): the operator saw and accepted these,
    /// and a plugin declaring others later is refused. `None` in records
    /// written before walship kept them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<Vec<String>>,
}

/// A plugin file for a scheme, and the sha256 it must have if installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub path: PathBuf,
    pub expected_sha256: Option<String>,
    /// The settings it declared at install, if recorded.
    pub declared_settings: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "no storage plugin for {scheme}:// prefixes (looked in {searched}); install one with `walship plugin install FILE`, or set WALSHIP_PLUGIN"
    )]
    NoPlugin { scheme: String, searched: String },
    #[error("plugin record {path} is damaged: {why}")]
    DamagedRecord { path: String, why: String },
    #[error("cannot read plugin directory {dir}: {why}")]
    Unreadable { dir: String, why: String },
    #[error("{0}")]
    Io(String),
}

/// Bundled plugins are named after the backend, which for a few schemes
/// differs from the scheme.
const BUNDLED_NAMES: &[(&str, &str)] = &[("file", "fs"), ("gs", "gcs"), ("az", "azure")];

/// The install records in `dir` (none if it does not exist).
pub fn records(dir: &Path) -> Result<Vec<(PathBuf, InstallRecord)>, RegistryError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(RegistryError::Unreadable {
                dir: dir.display().to_string(),
                why: e.to_string(),
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "toml") {
            let damaged = |why: String| RegistryError::DamagedRecord {
                path: path.display().to_string(),
                why,
            };
            let text = std::fs::read_to_string(&path).map_err(|e| damaged(e.to_string()))?;
            let record: InstallRecord =
                toml::from_str(&text).map_err(|e| damaged(e.message().to_string()))?;
            out.push((path, record));
        }
    }
    out.sort_by(|a, b| a.1.backend.cmp(&b.1.backend));
    Ok(out)
}

/// The plugin serving `scheme`, or named `name` (a backend name such as
/// `s3`, for `inspect`). `dirs` ends with the bundled directory.
pub fn resolve(dirs: &[PathBuf], scheme_or_name: &str) -> Result<Resolved, RegistryError> {
    let bundled = dirs.last();
    for dir in dirs {
        let records = match records(dir) {
            // HOME pointing at a home this user cannot read (`su postgres`
            // without `-`): nothing installed there can be used anyway.
            Err(e @ RegistryError::Unreadable { .. }) if Some(dir) != bundled => {
                eprintln!("walship: warning: {e}; skipping it");
                continue;
            }
            other => other?,
        };
        for (_, record) in records {
            if record.schemes.iter().any(|s| s == scheme_or_name)
                || record.backend == scheme_or_name
            {
                return Ok(Resolved {
                    path: dir.join(&record.file),
                    expected_sha256: Some(record.sha256),
                    declared_settings: record.settings,
                });
            }
        }
        let found = bundled_file(dir, scheme_or_name);
        if Some(dir) == bundled {
            if let Some(path) = found {
                return Ok(Resolved {
                    path,
                    expected_sha256: None,
                    declared_settings: None,
                });
            }
        } else if let Some(path) = found {
            eprintln!(
                "walship: warning: ignoring {}: a plugin file without an install record is never used (install it with `walship plugin install`)",
                path.display()
            );
        }
    }
    Err(RegistryError::NoPlugin {
        scheme: scheme_or_name.to_string(),
        searched: dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The file a bundled plugin for `scheme_or_name` would have in `dir`.
fn bundled_file(dir: &Path, scheme_or_name: &str) -> Option<PathBuf> {
    let mut names = vec![scheme_or_name];
    if let Some((_, name)) = BUNDLED_NAMES.iter().find(|(s, _)| *s == scheme_or_name) {
        names.push(name);
    }
    names
        .into_iter()
        .map(|name| dir.join(format!("{name}.wasm")))
        .find(|path| path.is_file())
}

/// The bundled plugin files (in `bundled_dir`) that a plugin serving
/// `schemes` would take the place of, by scheme.
pub fn shadowed_bundled(bundled_dir: &Path, schemes: &[String]) -> Vec<(String, PathBuf)> {
    schemes
        .iter()
        .filter_map(|s| Some((s.clone(), bundled_file(bundled_dir, s)?)))
        .collect()
}

/// Copies `source` into `dir` as `<backend>.wasm` and writes its record,
/// both atomically (a concurrent `wal-push` sees the old plugin or the new
/// one). Another backend's record claiming one of the same schemes in the
/// same directory is an error: which one would serve it?
pub fn install(
    dir: &Path,
    source: &Path,
    record: &InstallRecord,
) -> Result<PathBuf, RegistryError> {
    let io = |what: &str, e: std::io::Error| RegistryError::Io(format!("{what}: {e}"));
    for (path, other) in records(dir)? {
        if other.backend != record.backend
            && let Some(s) = other.schemes.iter().find(|s| record.schemes.contains(s))
        {
            return Err(RegistryError::Io(format!(
                "{s}:// is already served by plugin {} ({}); remove that record first",
                other.backend,
                path.display()
            )));
        }
    }
    // An installed plugin is read by whoever runs walship (PostgreSQL's
    // user, when root installs): the directory, the file and its record are
    // readable by all and writable by the installer only, whatever the
    // umask (walship runs with 077 so that archive files stay private).
    use std::os::unix::fs::PermissionsExt;
    let readable = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| io(&format!("cannot set the mode of {}", path.display()), e))
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .map_err(|e| io(&format!("cannot create {}", dir.display()), e))?;
        readable(dir, 0o755)?;
    }
    let target = dir.join(&record.file);
    let tmp = dir.join(format!(".{}.{}.tmp", record.file, std::process::id()));
    std::fs::copy(source, &tmp)
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .map_err(|e| {
            io(
                &format!("cannot copy {} to {}", source.display(), tmp.display()),
                e,
            )
        })?;
    readable(&tmp, 0o644)?;
    std::fs::rename(&tmp, &target)
        .map_err(|e| io(&format!("cannot install {}", target.display()), e))?;
    let record_path = dir.join(format!("{}.toml", record.backend));
    let text = toml::to_string(record).map_err(|e| RegistryError::Io(e.to_string()))?;
    let tmp = dir.join(format!(
        ".{}.toml.{}.tmp",
        record.backend,
        std::process::id()
    ));
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::File::open(&tmp)?.sync_all())
        .map_err(|e| io(&format!("cannot write {}", tmp.display()), e))?;
    readable(&tmp, 0o644)?;
    std::fs::rename(&tmp, &record_path)
        .map_err(|e| io(&format!("cannot write {}", record_path.display()), e))?;
    // The renames are durable once the directory is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(&format!("cannot sync {}", dir.display()), e))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(backend: &str, schemes: &[&str]) -> InstallRecord {
        InstallRecord {
            backend: backend.into(),
            plugin_version: "1.0.0".into(),
            contract: "walship:storage@0.1.0".into(),
            schemes: schemes.iter().map(|s| s.to_string()).collect(),
            sha256: "ab".repeat(32),
            file: format!("{backend}.wasm"),
            installed_at: 0,
            settings: Some(vec!["A".into(), "B (secret)".into()]),
        }
    }

    fn temp(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("walship-registry-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn installed_plugins_come_first_then_bundled_names() {
        let installed = temp("installed");
        let bundled = temp("bundled");
        std::fs::write(bundled.join("fs.wasm"), b"bundled fs").unwrap();
        std::fs::write(bundled.join("s3.wasm"), b"bundled s3").unwrap();
        let source = installed.join("src.wasm");
        std::fs::write(&source, b"my s3").unwrap();
        install(&installed, &source, &record("mys3", &["s3", "s3x"])).unwrap();
        let dirs = [installed.clone(), bundled.clone()];

        let s3 = resolve(&dirs, "s3").unwrap();
        assert_eq!(s3.path, installed.join("mys3.wasm"));
        assert_eq!(std::fs::read(&s3.path).unwrap(), b"my s3");
        assert_eq!(
            s3.expected_sha256.as_deref(),
            Some("ab".repeat(32).as_str())
        );
        assert_eq!(
            resolve(&dirs, "mys3").unwrap().path,
            installed.join("mys3.wasm")
        );
        let file = resolve(&dirs, "file").unwrap();
        assert_eq!(
            (file.path, file.expected_sha256),
            (bundled.join("fs.wasm"), None)
        );
        assert_eq!(
            s3.declared_settings,
            Some(vec!["A".to_string(), "B (secret)".to_string()])
        );
        let err = resolve(&dirs, "gs").unwrap_err().to_string();
        assert!(err.contains("no storage plugin for gs://"), "{err}");
        assert_eq!(
            shadowed_bundled(&bundled, &["file".into(), "x".into(), "s3".into()]),
            [
                ("file".to_string(), bundled.join("fs.wasm")),
                ("s3".to_string(), bundled.join("s3.wasm"))
            ]
        );

        // A second backend may not claim a scheme that is already served.
        let err = install(&installed, &source, &record("other", &["s3x"])).unwrap_err();
        assert!(
            err.to_string().contains("already served by plugin mys3"),
            "{err}"
        );
        // The same backend may be reinstalled (an upgrade).
        install(&installed, &source, &record("mys3", &["s3"])).unwrap();
        std::fs::remove_dir_all(&installed).unwrap();
        std::fs::remove_dir_all(&bundled).unwrap();
    }

    #[test]
    fn an_unrecorded_file_outside_the_bundled_directory_is_never_used() {
        let per_user = temp("per-user");
        let bundled = temp("bundled-only");
        std::fs::write(bundled.join("fs.wasm"), b"bundled fs").unwrap();
        // Dropped in, not installed: no record.
        std::fs::write(per_user.join("fs.wasm"), b"planted").unwrap();
        std::fs::write(per_user.join("gs.wasm"), b"planted").unwrap();
        let dirs = [per_user.clone(), bundled.clone()];
        assert_eq!(
            resolve(&dirs, "file").unwrap().path,
            bundled.join("fs.wasm")
        );
        assert!(resolve(&dirs, "gs").is_err());
        std::fs::remove_dir_all(&per_user).unwrap();
        std::fs::remove_dir_all(&bundled).unwrap();
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_skip() {
        let dir = temp("damaged");
        std::fs::write(dir.join("x.toml"), "backend = 3").unwrap();
        let err = resolve(std::slice::from_ref(&dir), "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is damaged"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

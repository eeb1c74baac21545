//! The conformance suite a storage plugin must pass: one list of checks, run
//! by `walship plugin test` against any plugin and any configured service,
//! and by the project's tests against every bundled plugin.
//!
//! The core every plugin must pass: put/get/head/delete round trips, list
//! with pagination, typed errors. Optional features are checked where the
//! plugin claims them (as configured: `store.features`) and reported skipped
//! otherwise; a claim the plugin cannot back is a failure.
//!
//! Everything happens under a fresh sub-prefix of the configured one
//! (`walship-conformance-<time>-<pid>/`), deleted at the end; a sibling
//! sub-prefix holds a sentinel object that must come through untouched.

mod checks;
pub mod report;

use std::time::{Duration, Instant};

use crate::plugin::{Plugin, PluginConfig, PluginStore};
use crate::storage::{BackendInfo, StorageError};

pub use report::{Outcome, Report};

/// One check's result.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// The rule, as the operator reads it ("create-only: a second create is
    /// already-exists").
    pub name: &'static str,
    pub outcome: Outcome,
    pub elapsed: Duration,
}

/// Where and how to run the suite.
pub struct SuiteOptions {
    /// The configured prefix; the suite works under a fresh child of it.
    pub base_prefix: String,
    /// Keep the test area instead of deleting it (for debugging a plugin).
    pub keep: bool,
}

/// Runs every check against `plugin` configured by `config`.
pub async fn run(
    plugin: &Plugin,
    config: impl Fn(&BackendInfo) -> Result<PluginConfig, StorageError>,
    options: &SuiteOptions,
) -> Result<Report, StorageError> {
    let run_id = format!(
        "walship-conformance-{}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0),
        std::process::id()
    );
    let area = child_prefix(&options.base_prefix, &run_id);
    let sibling = child_prefix(&options.base_prefix, &format!("{run_id}-sibling"));
    let info = plugin.info().await?;
    let store = plugin.open(&area, &config).await?;
    let sibling_store = plugin.open(&sibling, &config).await?;
    let bad_credentials = {
        let good = config(&info)?;
        (!good.secrets.is_empty()).then(|| spoil_secrets(good))
    };
    let bad_store = match bad_credentials {
        Some(spoiled) => Some(plugin.open(&area, |_| Ok(spoiled.clone())).await?),
        None => None,
    };

    let mut suite = checks::Suite {
        store,
        sibling: sibling_store,
        bad_credentials: bad_store,
        results: Vec::new(),
    };
    suite.run_all().await;
    if !options.keep {
        suite.clean_up().await;
    }
    Ok(Report {
        backend: info.backend.clone(),
        plugin_version: info.plugin_version.clone(),
        prefix: area,
        features: suite.store_features(),
        checks: suite.results,
    })
}

/// `base` + `/child`, for any scheme: `s3://bucket` → `s3://bucket/child`,
/// `file:///srv/a/` → `file:///srv/a/child`.
fn child_prefix(base: &str, child: &str) -> String {
    format!("{}/{child}", base.trim_end_matches('/'))
}

/// The same settings with every secret replaced by a wrong value of the
/// same shape, to check that bad credentials come back as
/// `unauthenticated`.
fn spoil_secrets(mut config: PluginConfig) -> PluginConfig {
    for (_, value) in &mut config.secrets {
        *value = value
            .chars()
            .map(|c| match c {
                'a'..='y' | 'A'..='Y' | '0'..='8' => ((c as u8) + 1) as char,
                'z' => 'a',
                'Z' => 'A',
                '9' => '0',
                other => other,
            })
            .collect();
    }
    config
}

/// Times one check.
async fn timed(name: &'static str, check: impl AsyncFnOnce() -> Outcome) -> CheckResult {
    let t = Instant::now();
    let outcome = check().await;
    CheckResult {
        name,
        outcome,
        elapsed: t.elapsed(),
    }
}

/// For checks: `store` is always the one opened at the test area.
pub(crate) type Store<'p> = PluginStore<'p>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_prefixes_join_with_one_slash() {
        assert_eq!(child_prefix("s3://b", "x"), "s3://b/x");
        assert_eq!(child_prefix("s3://b/p/", "x"), "s3://b/p/x");
        assert_eq!(child_prefix("file:///srv/a", "x"), "file:///srv/a/x");
    }

    #[test]
    fn spoiled_secrets_differ_everywhere_but_keep_their_shape() {
        let good = PluginConfig {
            plain: vec![("AWS_ACCESS_KEY_ID".into(), "AKIA".into())],
            secrets: vec![("AWS_SECRET_ACCESS_KEY".into(), "abz/09+Z".into())],
        };
        let bad = spoil_secrets(good.clone());
        assert_eq!(bad.plain, good.plain);
        assert_eq!(bad.secrets[0].1, "bca/10+A");
    }
}

//! The suite's results, for people (a table) and for CI (`--format json`).

use std::fmt::Write;

use super::CheckResult;
use crate::storage::Features;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// What rule broke and what was seen instead.
    Failed(String),
    /// Why the check did not apply (a feature not claimed, ...).
    Skipped(String),
}

#[derive(Debug, Clone)]
pub struct Report {
    pub backend: String,
    pub plugin_version: String,
    /// The sub-prefix the suite worked in.
    pub prefix: String,
    /// The features the plugin claims as configured.
    pub features: Features,
    pub checks: Vec<CheckResult>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed(_)))
    }

    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.checks.iter().filter(|c| f(&c.outcome)).count()
    }

    pub fn human(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "walship plugin test: {} {} at {}",
            self.backend, self.plugin_version, self.prefix
        );
        let _ = writeln!(out, "claims: {}", self.features.names().join(", "));
        let width = self
            .checks
            .iter()
            .map(|c| c.name.chars().count())
            .max()
            .unwrap_or(0);
        for c in &self.checks {
            let ms = c.elapsed.as_secs_f64() * 1000.0;
            let pad = " ".repeat(width - c.name.chars().count());
            let _ = match &c.outcome {
                Outcome::Passed => writeln!(out, "  ✓ {}{pad} {ms:>8.1} ms", c.name),
                Outcome::Failed(why) => {
                    writeln!(out, "  ✗ {}{pad} {ms:>8.1} ms  {why}", c.name)
                }
                Outcome::Skipped(why) => writeln!(out, "  - {}{pad}  skipped: {why}", c.name),
            };
        }
        let _ = writeln!(
            out,
            "passed {}, failed {}, skipped {}",
            self.count(|o| *o == Outcome::Passed),
            self.failed(),
            self.count(|o| matches!(o, Outcome::Skipped(_)))
        );
        out
    }

    pub fn json(&self) -> String {
        let checks: Vec<serde_json::Value> = self
            .checks
            .iter()
            .map(|c| {
                let (outcome, detail) = match &c.outcome {
                    Outcome::Passed => ("passed", None),
                    Outcome::Failed(why) => ("failed", Some(why.as_str())),
                    Outcome::Skipped(why) => ("skipped", Some(why.as_str())),
                };
                serde_json::json!({
                    "check": c.name,
                    "outcome": outcome,
                    "detail": detail,
                    "ms": (c.elapsed.as_secs_f64() * 1000.0 * 10.0).round() / 10.0,
                })
            })
            .collect();
        serde_json::json!({
            "backend": self.backend,
            "plugin_version": self.plugin_version,
            "prefix": self.prefix,
            "features": self.features.names(),
            "passed": self.count(|o| *o == Outcome::Passed),
            "failed": self.failed(),
            "skipped": self.count(|o| matches!(o, Outcome::Skipped(_))),
            "checks": checks,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn report() -> Report {
        let check = |name, outcome| CheckResult {
            name,
            outcome,
            elapsed: Duration::from_millis(3),
        };
        Report {
            backend: "fs".into(),
            plugin_version: "0.1.0".into(),
            prefix: "file:///tmp/x".into(),
            features: Features::default(),
            checks: vec![
                check("put/get: 1 byte", Outcome::Passed),
                check("create-only", Outcome::Failed("overwrote".into())),
                check("ranged get", Outcome::Skipped("not claimed".into())),
            ],
        }
    }

    #[test]
    fn both_formats_name_every_check_and_count_outcomes() {
        let r = report();
        assert_eq!(r.failed(), 1);
        let human = r.human();
        assert!(human.contains("✓ put/get: 1 byte"), "{human}");
        assert!(human.contains("✗ create-only"), "{human}");
        assert!(human.contains("overwrote"), "{human}");
        assert!(human.contains("passed 1, failed 1, skipped 1"), "{human}");
        let json: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(json["failed"], 1);
        assert_eq!(json["checks"][1]["outcome"], "failed");
        assert_eq!(json["checks"][1]["detail"], "overwrote");
    }
}

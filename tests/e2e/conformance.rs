//! `walship plugin test`, the conformance suite, against every bundled plugin
//! and its real service (the filesystem here; S3 against s3s-fs in s3.rs),
//! through the released binary, both output formats.

use walship_e2e::{Scratch, Walship};

/// Runs the suite against `plugin` (a scheme or a file); returns its JSON
/// report after checking the exit status agrees with it.
fn suite(walship: Walship, plugin: &str) -> String {
    let outcome = walship
        .args(["plugin", "test", plugin, "--format", "json"])
        .run();
    let report = outcome.out().to_string();
    let failed = report.contains("\"outcome\":\"failed\"");
    assert_eq!(
        outcome.success(),
        !failed,
        "exit status and report disagree:\n{outcome}"
    );
    report
}

/// The outcome (`passed`, `failed`, `skipped`) the JSON report gives `check`.
fn outcome_of<'r>(report: &'r str, check: &str) -> &'r str {
    let start = report
        .find(&format!("\"check\":\"{check}\""))
        .unwrap_or_else(|| panic!("{check:?} is not in the report: {report}"));
    let entry = &report[start..];
    let entry = &entry[..entry.find('}').unwrap_or(entry.len())];
    let value = entry
        .split("\"outcome\":\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no outcome for {check:?}: {entry}"));
    &value[..value.find('"').unwrap_or(value.len())]
}

#[test]
fn the_filesystem_plugin_passes_every_check_it_claims() {
    let scratch = Scratch::new("conformance-fs");
    let archive = scratch.dir("archive");
    let walship = Walship::new()
        .arg("--prefix")
        .arg(format!("file://{}", archive.display()))
        .arg("--cache-dir")
        .arg(scratch.dir("cache"));

    let report = suite(walship.clone(), "file");
    assert!(report.contains("\"failed\":0"), "{report}");
    // The fs plugin claims everything but batch delete, and needs no
    // secrets: exactly those checks are skipped.
    assert!(report.contains("\"passed\":22"), "{report}");
    assert!(report.contains("\"skipped\":1"), "{report}");
    assert!(
        report.contains("wrong credentials are unauthenticated\",\"detail\":\"the configuration has no secrets\""),
        "{report}"
    );

    // Human output: a table with a tick per check and a summary line.
    let human = walship.args(["plugin", "test", "file"]).run().ok();
    assert!(human.out().contains("✓ put/get: 16 MiB"), "{human}");
    assert!(
        human.out().contains("passed 22, failed 0, skipped 1"),
        "{human}"
    );

    // Clean-up left no objects behind (empty directories may remain).
    let files = walkdir_files(&archive);
    assert!(files.is_empty(), "left behind: {files:?}");
}

fn walkdir_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// A plugin that breaks one rule on request (tests/plugins/broken) fails the
/// suite, and the failure names the broken rule; unbroken, it passes.
#[test]
fn a_broken_plugin_fails_with_the_rule_it_broke() {
    let plugin = walship_e2e::walship::test_plugin("broken");
    let cases = [
        ("", None),
        (
            "missing-key-error",
            Some("errors: a missing key is not-found (head, get)"),
        ),
        (
            "create-overwrites",
            Some("create-only: a second create is already-exists, the first object kept"),
        ),
        (
            "list-skips",
            Some("list: pages hold every key once, in byte order, none skipped"),
        ),
    ];
    for (rule, broken) in cases {
        let scratch = Scratch::new("conformance-broken");
        let run = Walship::new()
            .arg("--prefix")
            .arg(format!("broken://{}", scratch.dir("store").display()))
            .arg("--cache-dir")
            .arg(scratch.dir("cache"))
            .env("BROKEN_RULE", rule)
            .args(["plugin", "test"])
            .arg(&plugin)
            .run();
        match broken {
            None => {
                assert!(run.success(), "unbroken, the plugin passes:\n{run}");
                assert!(run.out().contains("failed 0"), "{run}");
            }
            Some(check) => {
                assert_eq!(run.exit_code(), 1, "BROKEN_RULE={rule}:\n{run}");
                let failed_line = run
                    .out()
                    .lines()
                    .find(|l| l.contains('✗') && l.contains(check));
                assert!(
                    failed_line.is_some(),
                    "BROKEN_RULE={rule}: {check} not failed:\n{run}"
                );
                // The one-line error names the failed rule too.
                let last = run.stderr_lines().last().copied().unwrap_or_default();
                assert!(last.contains(check), "BROKEN_RULE={rule}: {last}");
            }
        }
    }
}

/// The S3 plugin against s3s-fs: every check passes in the default mode for a
/// custom endpoint (create-only asked for, not claimed atomic). Claiming
/// atomicity the store does not have (`WALSHIP_S3_IF_NONE_MATCH=enforced`;
/// s3s-fs ignores If-None-Match under concurrency) is caught by the
/// concurrent-creates check.
#[test]
fn the_s3_plugin_passes_against_s3s_fs_and_an_unbacked_claim_fails() {
    use walship_e2e::emulators::S3sFs;
    let scratch = Scratch::new("conformance-s3");
    let s3 = S3sFs::start(&scratch);
    let walship = Walship::new()
        .arg("--prefix")
        .arg(format!("s3://{}/conformance", S3sFs::BUCKET))
        .arg("--cache-dir")
        .arg(scratch.dir("cache"))
        .envs(s3.access().env());

    let report = suite(walship.clone(), "s3");
    assert!(report.contains("\"failed\":0"), "{report}");
    for check in [
        "put/get: 16 MiB",
        "list: pages hold every key once, in byte order, none skipped",
        "multipart: an aborted upload leaves nothing visible",
        "errors: wrong credentials are unauthenticated",
        "sandbox: without its grants the plugin reaches nothing",
    ] {
        assert_eq!(outcome_of(&report, check), "passed", "{report}");
    }
    assert!(
        report.contains("exactly one wins\",\"detail\":\"not claimed (atomic-create-only)\""),
        "{report}"
    );

    let claimed = walship
        .env("WALSHIP_S3_IF_NONE_MATCH", "enforced")
        .args(["plugin", "test", "s3"])
        .run();
    assert_eq!(claimed.exit_code(), 1, "{claimed}");
    assert!(
        claimed
            .out()
            .lines()
            .any(|l| l.contains('✗') && l.contains("exactly one wins")),
        "{claimed}"
    );
}

/// The 0.1.0 contract is frozen: a plugin binary built against it (the fs
/// plugin as of the freeze, kept in tests/fixtures) must keep loading and
/// passing the suite. A change to wit/ that breaks it belongs in a new
/// contract version beside 0.1.0, not in place.
#[test]
fn a_plugin_built_against_contract_0_1_0_still_loads_and_passes() {
    let fixture =
        walship_e2e::walship::workspace_root().join("tests/fixtures/fs-plugin-wit-0.1.0.wasm");
    let scratch = Scratch::new("conformance-wit-0.1.0");
    let walship = Walship::new()
        .arg("--prefix")
        .arg(format!("file://{}", scratch.dir("archive").display()))
        .arg("--cache-dir")
        .arg(scratch.dir("cache"));
    let report = suite(walship.clone(), &fixture.display().to_string());
    assert!(report.contains("\"failed\":0"), "{report}");
    let inspect = walship.args(["plugin", "inspect"]).arg(&fixture).run().ok();
    assert!(inspect.out().contains("walship:storage@0.1.0"), "{inspect}");
}

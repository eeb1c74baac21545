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

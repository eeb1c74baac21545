//! A plugin written outside this repository: `docs/plugin-template` and the
//! published `wit/` are copied to a fresh directory outside the workspace and
//! built there the way a plugin author builds (`cargo build --release
//! --target wasm32-wasip2`, its own workspace and target directory). The
//! released walship, built before the plugin existed, installs it, runs the
//! conformance suite against it, and a real PostgreSQL archives through it
//! and recovers from it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use walship_e2e::pitr::archive_and_recover;
use walship_e2e::scratch::set_mode;
use walship_e2e::walship::workspace_root;
use walship_e2e::{Scratch, Walship, WalshipArchive};

/// What the template's `Cargo.toml` builds.
const COMPONENT: &str = "target/wasm32-wasip2/release/walship_plugin_tmpl.wasm";

/// Copies the directory `from` to `to`, leaving out the top-level entries
/// named in `skip`.
fn copy_tree(from: &Path, to: &Path, skip: &[&str]) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let entry = entry.expect("directory entry");
        let name = entry.file_name();
        if skip.iter().any(|s| name == **s) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&src, &dst, &[]);
        } else {
            fs::copy(&src, &dst)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), dst.display()));
        }
    }
}

/// Runs cargo in `dir` as the plugin's author would: its own workspace and
/// target directory, none of this test's package variables. Panics with
/// cargo's output unless it succeeds without warnings from the template.
fn cargo(dir: &Path, args: &[&str]) {
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", dir.join("target"));
    // `cargo test` gave this process walship-e2e's package variables; the
    // plugin's build must not see them (as in xtask's `cargo()`).
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
        ]
        .iter()
        .any(|p| key.starts_with(p))
        {
            cargo.env_remove(key.as_ref());
        }
    }
    let out = cargo.output().expect("run cargo");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "`cargo {}` of the template failed outside the workspace ({}):\n{output}",
        args.join(" "),
        out.status
    );
    assert!(
        !output.contains("`walship-plugin-tmpl` (lib"),
        "`cargo {}` of the template warns:\n{output}",
        args.join(" ")
    );
}

/// Builds the template in `dir` (outside the workspace) as its author would;
/// returns the component.
fn build_template(dir: &Path) -> PathBuf {
    let root = workspace_root();
    // Not a build left in the checkout, nor a wit/ copied there: the
    // repository's own wit/ is the published contract.
    copy_tree(&root.join("docs/plugin-template"), dir, &["target", "wit"]);
    copy_tree(&root.join("wit"), &dir.join("wit"), &[]);

    let started = Instant::now();
    // The template's lock file holds (and so checks) the versions it was
    // last built with.
    cargo(
        dir,
        &[
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
        ],
    );
    eprintln!(
        "built the template in {:.1?} in {}",
        started.elapsed(),
        dir.display()
    );
    // Its unit tests, natively.
    cargo(dir, &["test", "--release", "--locked"]);
    let component = dir.join(COMPONENT);
    assert!(component.is_file(), "no {}", component.display());
    component
}

/// `walship plugin install` into a plugin directory of the test's own,
/// readable by `postgres` (PostgreSQL runs walship as that user); returns
/// that directory, for `WALSHIP_PLUGIN_DIR`.
fn install(scratch: &Scratch, component: &Path) -> String {
    let dir = scratch.dir("plugins");
    set_mode(&dir, 0o755);
    let dir = dir.display().to_string();
    let walship = Walship::new()
        .arg("--cache-dir")
        .arg(scratch.dir("cache"))
        .env("WALSHIP_PLUGIN_DIR", &dir);
    let installed = walship
        .clone()
        .args(["plugin", "install"])
        .arg(component)
        .run()
        .ok();
    assert!(installed.out().contains("installed tmpl"), "{installed}");
    let list = walship.args(["plugin", "list"]).run().ok();
    assert!(
        list.out()
            .lines()
            .any(|l| l.starts_with("tmpl ") && l.contains("installed")),
        "{list}"
    );
    dir
}

#[test]
fn a_plugin_built_outside_the_tree_archives_and_restores() {
    let scratch = Scratch::new("out-of-tree");
    let template = scratch.dir("template");
    let component = build_template(&template);
    let plugin_dir = install(&scratch, &component);
    // From here on walship has only its installed copy.
    fs::remove_dir_all(template.join("target")).expect("remove the build");

    // The conformance suite, as the current user, in a directory of its own.
    let suite_dir = scratch.dir("conformance");
    let suite = Walship::new()
        .arg("--prefix")
        .arg(format!("tmpl://{}", suite_dir.display()))
        .arg("--cache-dir")
        .arg(scratch.dir("cache"))
        .env("WALSHIP_PLUGIN_DIR", &plugin_dir)
        .args(["plugin", "test", "tmpl"])
        .run();
    assert!(suite.success(), "the template fails the suite:\n{suite}");
    assert!(!suite.out().contains('✗'), "{suite}");
    assert!(suite.out().contains("failed 0"), "{suite}");

    // PostgreSQL archives through it and recovers from it.
    let store = scratch.postgres_dir("archive", 0o700);
    let archive = WalshipArchive::new(&scratch, format!("tmpl://{}", store.display()))
        .with_env("WALSHIP_PLUGIN_DIR", plugin_dir);
    let report = archive_and_recover(&scratch, &archive);

    // The objects are plain files, and no temp file was left behind.
    for name in &report.switched {
        let object = store.join("wal").join(name);
        assert!(object.is_file(), "{} is missing", object.display());
    }
    let leftovers: Vec<_> = fs::read_dir(store.join("wal"))
        .expect("the archive has a wal/ directory")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmpl-tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    println!(
        "archived {} files up to {} through the out-of-tree plugin; recovered to {} and to the end",
        report.archiver.archived_count, report.last_segment, report.target_time
    );
}

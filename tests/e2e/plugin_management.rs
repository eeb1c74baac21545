//! `walship plugin install | list | inspect` with the released binary: an
//! installed plugin serves the schemes it declares, shows up in the list
//! before the bundled ones, and is refused once its bytes change.

use walship_e2e::walship::test_plugin;
use walship_e2e::{Scratch, Walship};

#[test]
fn install_list_inspect_and_a_tampered_plugin_is_refused() {
    let scratch = Scratch::new("plugin-management");
    let plugins = scratch.dir("plugins");
    let walship = Walship::new()
        .arg("--cache-dir")
        .arg(scratch.dir("cache"))
        .arg("--plugin-dir")
        .arg(&plugins);

    // Before: no plugin serves broken://, the bundled ones are listed.
    let store = scratch.dir("store");
    let prefix = format!("broken://{}", store.display());
    let missing = walship
        .clone()
        .args(["--prefix", &prefix, "st", "ls"])
        .run();
    assert_eq!(missing.exit_code(), 1, "{missing}");
    assert!(
        missing.stderr.contains("no storage plugin for broken://"),
        "{missing}"
    );
    let list = walship.clone().args(["plugin", "list"]).run().ok();
    assert!(list.out().contains("bundled"), "{list}");
    assert!(list.out().lines().any(|l| l.starts_with("s3 ")), "{list}");

    // Install: validated, recorded, and serving its scheme.
    let install = walship
        .clone()
        .args(["plugin", "install"])
        .arg(test_plugin("broken"))
        .run()
        .ok();
    assert!(install.out().contains("installed broken"), "{install}");
    assert!(plugins.join("broken.wasm").is_file() && plugins.join("broken.toml").is_file());
    let list = walship.clone().args(["plugin", "list"]).run().ok();
    let first = list.out().lines().nth(1).unwrap_or_default();
    assert!(
        first.starts_with("broken") && first.contains("installed"),
        "installed plugins come first:\n{list}"
    );
    walship
        .clone()
        .args(["--prefix", &prefix, "st", "ls"])
        .run()
        .ok();
    let inspect = walship
        .clone()
        .args(["plugin", "inspect", "broken"])
        .run()
        .ok();
    assert!(
        inspect.out().contains("schemes:         broken"),
        "{inspect}"
    );
    assert!(inspect.out().contains("directory: yes"), "{inspect}");

    // Not a component at all: refused, nothing installed.
    let junk = scratch.dir("junk").join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let refused = walship.clone().args(["plugin", "install"]).arg(&junk).run();
    assert_eq!(refused.exit_code(), 1, "{refused}");
    assert!(!plugins.join("junk.wasm").exists());

    // Tampered: another valid component in its place is refused by sha256.
    let other = test_plugin("hostile");
    std::fs::copy(&other, plugins.join("broken.wasm")).unwrap();
    let tampered = walship.args(["--prefix", &prefix, "st", "ls"]).run();
    assert_eq!(tampered.exit_code(), 1, "{tampered}");
    assert!(
        tampered.stderr.contains("changed since it was installed"),
        "{tampered}"
    );
}

/// `install` shows the settings a plugin declares and which of them it will
/// not be handed; the record keeps them, and a plugin whose declaration no
/// longer matches its record is refused (here the record is edited, as the
/// declaration of a plugin that varies it at run time would differ).
#[test]
fn declared_settings_are_shown_recorded_and_a_changed_declaration_is_refused() {
    let scratch = Scratch::new("plugin-settings");
    let plugins = scratch.dir("plugins");
    let walship = Walship::new()
        .arg("--cache-dir")
        .arg(scratch.dir("cache"))
        .arg("--plugin-dir")
        .arg(&plugins);
    let install = walship
        .clone()
        .args(["plugin", "install", "--force"])
        .arg(test_plugin("hostile"))
        .run()
        .ok();
    assert!(
        install
            .out()
            .contains("AWS_SECRET_ACCESS_KEY (secret): not handed over"),
        "{install}"
    );
    assert!(install.out().contains("HOSTILE_EXTRA_DIR"), "{install}");
    let record_path = plugins.join("hostile.toml");
    let record = std::fs::read_to_string(&record_path).unwrap();
    assert!(record.contains("\"PGPASSWORD (secret)\""), "{record}");

    let store = scratch.dir("store");
    let prefix = format!("hostile://{}", store.display());
    walship
        .clone()
        .args(["--prefix", &prefix, "st", "ls"])
        .run()
        .ok();
    std::fs::write(
        &record_path,
        record.replace("\"PGPASSWORD (secret)\", ", ""),
    )
    .unwrap();
    let changed = walship.args(["--prefix", &prefix, "st", "ls"]).run();
    assert_eq!(changed.exit_code(), 1, "{changed}");
    assert!(
        changed.stderr.contains("when it was installed") && changed.stderr.contains("reinstall"),
        "{changed}"
    );
}

/// A plugin file dropped into the per-user plugin directory, without an
/// install record, never takes a scheme over from the bundled plugin: here
/// the hostile plugin (which claims file:// too) as `fs.wasm`.
#[test]
fn an_unrecorded_plugin_file_never_replaces_a_bundled_one() {
    let scratch = Scratch::new("plugin-planted");
    let plugins = scratch.dir("plugins");
    std::fs::copy(test_plugin("hostile"), plugins.join("fs.wasm")).unwrap();
    let store = scratch.dir("store");
    let data = scratch.dir("data").join("object");
    std::fs::write(&data, b"an ordinary object").unwrap();
    let walship = Walship::new()
        .arg("--cache-dir")
        .arg(scratch.dir("cache"))
        .arg("--plugin-dir")
        .arg(&plugins)
        .arg("--prefix")
        .arg(format!("file://{}", store.display()));
    // `leak-settings` is an attack to the hostile plugin, a key to fs.
    let put = walship
        .clone()
        .args(["st", "put", "leak-settings"])
        .arg(&data)
        .run();
    assert!(
        put.success(),
        "the planted plugin served file:// instead of the bundled one:\n{put}"
    );
    assert!(put.stderr.contains("without an install record"), "{put}");
    let list = walship.args(["plugin", "list"]).run().ok();
    assert!(
        list.out()
            .lines()
            .any(|l| l.contains("ignored") && l.contains("fs.wasm")),
        "{list}"
    );
}

/// Installing a plugin that serves a bundled plugin's scheme takes --force,
/// and says which bundled plugin it shadows.
#[test]
fn installing_over_a_bundled_scheme_needs_force_and_says_what_it_shadows() {
    let scratch = Scratch::new("plugin-shadow");
    let plugins = scratch.dir("plugins");
    let walship = Walship::new()
        .arg("--cache-dir")
        .arg(scratch.dir("cache"))
        .arg("--plugin-dir")
        .arg(&plugins);
    let refused = walship
        .clone()
        .args(["plugin", "install"])
        .arg(test_plugin("hostile"))
        .run();
    assert_eq!(refused.exit_code(), 1, "{refused}");
    assert!(
        refused.stderr.contains("file://") && refused.stderr.contains("--force"),
        "{refused}"
    );
    assert!(!plugins.join("hostile.toml").exists(), "{refused}");
    let forced = walship
        .args(["plugin", "install", "--force"])
        .arg(test_plugin("hostile"))
        .run()
        .ok();
    assert!(
        forced.out().contains("shadows file:// (bundled") && forced.out().contains("fs.wasm"),
        "{forced}"
    );
}

/// A plugin's strings (setting descriptions, error messages, ...) reach
/// the operator's terminal: escape sequences and forged lines in them are
/// shown escaped. `install` shows what the plugin asks for.
#[test]
fn plugin_supplied_text_cannot_spoof_what_the_operator_reads() {
    let scratch = Scratch::new("plugin-spoof");
    let plugins = scratch.dir("plugins");
    let walship = Walship::new()
        .arg("--cache-dir")
        .arg(scratch.dir("cache"))
        .arg("--plugin-dir")
        .arg(&plugins);
    let clean = |out: &walship_e2e::Outcome| {
        for text in [&out.stdout, &out.stderr] {
            assert!(
                !text.contains('\x1b') && !text.contains('\r'),
                "raw control characters reached the terminal:\n{out:?}"
            );
            assert!(
                !text.lines().any(|l| l.starts_with("sha256 0000")),
                "a forged line:\n{out}"
            );
        }
    };
    let hostile = test_plugin("hostile");
    let inspect = walship
        .clone()
        .args(["plugin", "inspect"])
        .arg(&hostile)
        .run()
        .ok();
    clean(&inspect);
    assert!(inspect.out().contains("\\u{1b}"), "{inspect}");
    let install = walship
        .clone()
        .args(["plugin", "install", "--force"])
        .arg(&hostile)
        .run()
        .ok();
    clean(&install);
    assert!(
        install
            .out()
            .contains("asks for: network: configured, localhost; directory access: yes"),
        "{install}"
    );
    let list = walship.clone().args(["plugin", "list"]).run().ok();
    clean(&list);
    let data = scratch.dir("data").join("x");
    std::fs::write(&data, b"x").unwrap();
    let failed = walship
        .args([
            "--prefix",
            &format!("hostile://{}", scratch.dir("store").display()),
        ])
        .args(["st", "put", "spoof-error"])
        .arg(&data)
        .run();
    assert_eq!(failed.exit_code(), 1, "{failed}");
    clean(&failed);
}

/// `su postgres` without `-` (and many container images) leaves HOME at a
/// home postgres cannot read. The per-user plugin directory there is
/// skipped with a warning line (not an error on every wal-push), and the
/// compiled-plugin cache falls back to a private directory postgres owns.
/// (Issue 15 point 10.)
#[test]
fn an_unreadable_home_is_skipped_with_a_warning_and_the_cache_falls_back() {
    assert!(
        walship_e2e::process::is_root(),
        "this test runs walship as postgres with HOME=/root: run it as root"
    );
    let scratch = Scratch::new("home-root");
    let store = scratch.postgres_dir("store", 0o700);
    let object = scratch.postgres_file("object", b"stored with HOME=/root\n");
    let back = scratch.postgres_dir("back", 0o700).join("object");
    // runuser resets HOME to postgres's own; `env` puts /root back, as
    // `su` without `-` leaves it.
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--", "env", "HOME=/root"])
            .env_remove("XDG_CACHE_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("WALSHIP_CACHE_DIR")
            .env_remove("WALSHIP_PLUGIN_DIR")
            .arg(walship_e2e::walship::walship_bin())
            .arg("--prefix")
            .arg(format!("file://{}", store.display()))
            .args(args)
            .output()
            .expect("run walship as postgres");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?} failed:\n{stderr}");
        stderr
    };
    let put = run(&[
        "st".as_ref(),
        "put".as_ref(),
        "object".as_ref(),
        object.as_os_str(),
    ]);
    assert!(
        put.lines().any(
            |l| l.starts_with("walship: warning: cannot read plugin directory /root/")
                && l.ends_with("skipping it")
        ),
        "no warning line for the skipped plugin directory:\n{put}"
    );
    assert!(
        put.lines().any(
            |l| l.contains("cache directory /root/.cache/walship is not usable")
                && l.contains("using ")
        ),
        "no warning line for the cache fallback:\n{put}"
    );
    run(&[
        "st".as_ref(),
        "get".as_ref(),
        "object".as_ref(),
        back.as_os_str(),
    ]);
    assert_eq!(std::fs::read(&back).unwrap(), b"stored with HOME=/root\n");
}

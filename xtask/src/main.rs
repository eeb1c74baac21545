//! Project tasks, the cargo-xtask way: `cargo xtask <task>`.
//!
//! - `dist`:  release build of the host and every plugin into `dist/`
//!   (`dist/bin/walship`, `dist/lib/walship/plugins/*.wasm`). The host finds
//!   its plugins relative to itself, so `dist/` can be copied anywhere.
//! - `test`:  `dist`, then every test against that same build.
//! - `demo`:  `dist`, then a throwaway PostgreSQL archived to a local
//!   directory and restored to a point in time, narrated (`--pg MAJOR`: on
//!   PostgreSQL 10..18 of the version matrix instead of Debian's 15).
//! - `bench`: `dist`, then the start-up/compression/storage benchmark.
//!
//! `test`, `demo` and `bench` install what they need first: `.ci/setup`
//! every time (it checks each piece, PostgreSQL 15 and the wasm32-wasip2
//! target of the pinned toolchain, and is quick when all is there); `test`
//! and `bench` also run `.ci/install-test-tools` (the cloud stand-ins, the
//! PostgreSQL 10..18 servers of the version matrix) when one is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// (crate, file name in dist/lib/walship/plugins)
const BUNDLED_PLUGINS: &[(&str, &str)] = &[
    ("walship-plugin-fs", "fs.wasm"),
    ("walship-plugin-s3", "s3.wasm"),
    ("walship-plugin-azure", "azure.wasm"),
    ("walship-plugin-gcs", "gcs.wasm"),
    ("walship-plugin-swift", "swift.wasm"),
];
/// Plugins only the tests use; never shipped.
const TEST_PLUGINS: &[(&str, &str)] = &[
    ("walship-test-plugin-hostile", "hostile.wasm"),
    ("walship-test-plugin-broken", "broken.wasm"),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().map(String::as_str).unwrap_or("help");
    let rest = &args[args.len().min(1)..];
    let result = match task {
        "dist" => dist(),
        "test" => setup()
            .and_then(|_| test_tools())
            .and_then(|_| dist())
            .and_then(|_| test(rest)),
        "demo" => setup()
            .and_then(|_| demo_servers(rest))
            .and_then(|_| dist())
            .and_then(|_| demo(rest)),
        "bench" => setup()
            .and_then(|_| test_tools())
            .and_then(|_| dist())
            .and_then(|_| bench(rest)),
        _ => {
            eprintln!(
                "usage: cargo xtask <dist|test|demo|bench> [args for the test runner; demo: --pg MAJOR]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed: {status}"))
    }
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    // `cargo run` gave this process the xtask package's CARGO_PKG_* and
    // CARGO_MANIFEST_* variables; some build scripts (ring's) rerun when such
    // variables change, so passing them on would make an xtask build and a
    // plain `cargo build` rebuild each other's dependencies.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_PRIMARY_PACKAGE",
        ]
        .iter()
        .any(|p| key.starts_with(p))
        {
            c.env_remove(key.as_ref());
        }
    }
    c
}

/// Installs whatever is missing of PostgreSQL 15 and the wasm32-wasip2
/// target (root needed only to install PostgreSQL). Not skipped when
/// PostgreSQL is there: a machine with PostgreSQL may still lack the wasm
/// target, and the build would fail only after building the host.
fn setup() -> Result<(), String> {
    run(Command::new("bash").arg(root().join(".ci/setup")))
}

/// Installs the local S3 servers the S3 tests and the benchmark start
/// (s3s-fs, moto, stunnel) when one is missing. They live in a cache outside
/// the clone, where the tests look for them.
fn test_tools() -> Result<(), String> {
    let script = root().join(".ci/install-test-tools");
    let installed = Command::new("bash")
        .arg(&script)
        .arg("--check")
        .status()
        .is_ok_and(|s| s.success());
    if installed {
        return Ok(());
    }
    run(Command::new("bash").arg(script))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// The native packages, built together. `test` runs `cargo test` over the
/// same set, so cargo resolves the same features for shared dependencies and
/// reuses this build instead of compiling wasmtime's TLS stack a second time.
/// Named one by one (not `--workspace`), so a new plugin crate needs no entry
/// here. Plugins are wasm-only (their exports do not link as a native cdylib); the
/// fs plugin's own unit tests run natively in a separate invocation.
const NATIVE_SET: &[&str] = &[
    "-p",
    "walship",
    "-p",
    "xtask",
    "-p",
    "walship-e2e",
    "-p",
    "walship-bench",
];

fn dist() -> Result<(), String> {
    run(cargo()
        .args(["build", "--release", "--locked"])
        .args(NATIVE_SET))?;
    let mut wasm = cargo();
    wasm.args([
        "build",
        "--release",
        "--locked",
        "--target",
        "wasm32-wasip2",
    ]);
    for (krate, _) in BUNDLED_PLUGINS.iter().chain(TEST_PLUGINS) {
        wasm.args(["-p", krate]);
    }
    run(&mut wasm)?;

    let target = target_dir();
    let dist = root().join("dist");
    let plugins = dist.join("lib/walship/plugins");
    let _ = std::fs::remove_dir_all(&dist);
    std::fs::create_dir_all(dist.join("bin")).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&plugins).map_err(|e| e.to_string())?;
    copy(&target.join("release/walship"), &dist.join("bin/walship"))?;
    let wasm_dir = target.join("wasm32-wasip2/release");
    for (krate, file) in BUNDLED_PLUGINS {
        copy(
            &wasm_dir.join(format!("{}.wasm", krate.replace('-', "_"))),
            &plugins.join(file),
        )?;
    }
    let test_plugins = target.join("test-plugins");
    std::fs::create_dir_all(&test_plugins).map_err(|e| e.to_string())?;
    for (krate, file) in TEST_PLUGINS {
        copy(
            &wasm_dir.join(format!("{}.wasm", krate.replace('-', "_"))),
            &test_plugins.join(file),
        )?;
    }
    // PostgreSQL runs walship as its own user: everything must be readable.
    make_world_readable(&dist)?;
    make_world_readable(&test_plugins)?;
    eprintln!("xtask: dist/ ready: {}", dist.display());
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

fn make_world_readable(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::metadata(&p).map_err(|e| e.to_string())?;
        let mode = meta.permissions().mode();
        let extra = if meta.is_dir() || mode & 0o100 != 0 {
            0o755
        } else {
            0o644
        };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode | extra))
            .map_err(|e| e.to_string())?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&p).map_err(|e| e.to_string())? {
                stack.push(entry.map_err(|e| e.to_string())?.path());
            }
        }
    }
    Ok(())
}

fn test_env(cmd: &mut Command) -> &mut Command {
    cmd.env("WALSHIP_BIN", root().join("dist/bin/walship"))
        .env("WALSHIP_TEST_PLUGINS", target_dir().join("test-plugins"))
}

/// Every test, against the release build `dist` just made (`--release`, so
/// dependencies are shared with it instead of built a second time).
fn test(extra: &[String]) -> Result<(), String> {
    run(test_env(&mut cargo())
        .args(["test", "--release", "--locked"])
        .args(NATIVE_SET)
        .args(extra))?;
    // The plugins' own unit tests, natively, in a second invocation: in the
    // first their dependencies would change the features cargo resolves for
    // the host's and rebuild wasmtime's stack. Only for a full run (a
    // `--test NAME` filter names a test the plugins do not have).
    if extra.is_empty() {
        let mut plugins = cargo();
        test_env(&mut plugins).args(["test", "--release", "--locked"]);
        for krate in NATIVE_TESTED_PLUGINS {
            plugins.args(["-p", krate]);
        }
        run(&mut plugins)?;
    }
    Ok(())
}

/// Plugin crates whose unit tests run natively (the test plugins have none).
const NATIVE_TESTED_PLUGINS: &[&str] = &[
    "walship-plugin-fs",
    "walship-plugin-s3",
    "walship-plugin-azure",
    "walship-plugin-gcs",
    "walship-plugin-swift",
    "walship-guest-http",
];

/// `demo --pg MAJOR` runs a server of the version matrix: install those
/// (only those, not the cloud stand-ins) when one is missing.
fn demo_servers(args: &[String]) -> Result<(), String> {
    if !args.iter().any(|a| a == "--pg") {
        return Ok(());
    }
    let script = root().join(".ci/install-test-tools");
    let installed = Command::new("bash")
        .arg(&script)
        .args(["--check", "--postgres"])
        .status()
        .is_ok_and(|s| s.success());
    if installed {
        return Ok(());
    }
    run(Command::new("bash").arg(script).arg("--postgres"))
}

fn demo(args: &[String]) -> Result<(), String> {
    run(test_env(&mut cargo())
        .args([
            "run",
            "--release",
            "--locked",
            "-p",
            "walship-e2e",
            "--bin",
            "walship-demo",
            "--",
        ])
        .args(args))
}

fn bench(extra: &[String]) -> Result<(), String> {
    run(test_env(&mut cargo())
        .args(["run", "--release", "--locked", "-p", "walship-bench", "--"])
        .args(extra))
}

//! Finding and running the walship binary under test.
//!
//! The binary is `$WALSHIP_BIN`, else `<workspace>/dist/bin/walship` as
//! `cargo xtask dist` lays it out (bundled plugins in `dist/lib/walship/`,
//! found by the binary itself). PostgreSQL runs it as `postgres`; when that
//! account cannot reach the binary (a checkout under /root), the `dist` tree is
//! copied once per process to a directory it can reach.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::process::{Outcome, Run, RunAs, is_root, shell_quote};

const NOT_BUILT: &str =
    "walship is not built: run `cargo xtask dist` first (or `cargo xtask test`)";

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crate has a parent directory")
        .to_path_buf()
}

/// The walship binary, runnable by `postgres` too. Panics with a hint when it
/// has not been built.
pub fn walship_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = match std::env::var_os("WALSHIP_BIN") {
            Some(path) => PathBuf::from(path),
            None => workspace_root().join("dist/bin/walship"),
        };
        assert!(bin.is_file(), "{NOT_BUILT} (looked for {})", bin.display());
        // Absolute (archive_command runs in the data directory), but not
        // canonicalized: the binary finds its plugins relative to itself.
        let bin = std::path::absolute(&bin).expect("absolute walship path");
        if postgres_can_run(&bin) {
            bin
        } else {
            stage_for_postgres(&bin)
        }
    })
}

/// The hostile test plugin: `$WALSHIP_TEST_PLUGINS/hostile.wasm`, else
/// `<workspace>/target/test-plugins/hostile.wasm` (where `cargo xtask dist` puts it).
pub fn hostile_plugin() -> PathBuf {
    test_plugin("hostile")
}

/// A test plugin (`hostile`, `broken`) as `cargo xtask dist` lays them out.
pub fn test_plugin(name: &str) -> PathBuf {
    let dir = match std::env::var_os("WALSHIP_TEST_PLUGINS") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("target/test-plugins"),
    };
    let plugin = dir.join(format!("{name}.wasm"));
    assert!(
        plugin.is_file(),
        "the {name} test plugin is not built: run `cargo xtask dist` first (or `cargo xtask test`) \
         (looked for {})",
        plugin.display()
    );
    plugin
}

fn postgres_can_run(bin: &Path) -> bool {
    if !is_root() {
        return true;
    }
    let plugins = bin
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("lib/walship"));
    let mut check = format!("test -x {}", shell_quote(&bin.to_string_lossy()));
    if let Some(dir) = plugins.filter(|d| d.is_dir()) {
        check.push_str(&format!(
            " && test -r {0} && test -x {0}",
            shell_quote(&dir.to_string_lossy())
        ));
    }
    Run::new("sh")
        .args(["-c", &check])
        .as_postgres()
        .run()
        .success()
}

/// Copies `<dist>/bin/walship` and `<dist>/lib/walship/` (keeping the layout
/// the binary uses to find its plugins) to a per-process directory under the
/// system temp directory; removes copies left by processes that have ended.
fn stage_for_postgres(bin: &Path) -> PathBuf {
    let tmp = std::env::temp_dir();
    let me = std::process::id();
    if let Ok(entries) = fs::read_dir(&tmp) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("walship-e2e-dist-")
                && pid.parse::<u32>().is_ok_and(|pid| pid != me)
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
    let stage = tmp.join(format!("walship-e2e-dist-{me}"));
    let _ = fs::remove_dir_all(&stage);
    fs::create_dir_all(stage.join("bin")).expect("create staging dir");
    fs::create_dir_all(stage.join("lib")).expect("create staging dir");
    let staged_bin = stage.join("bin/walship");
    let mut copy = Run::new("cp").arg("-a").arg(bin).arg(&staged_bin);
    let plugins = bin
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("lib/walship"));
    if let Some(dir) = plugins.filter(|d| d.is_dir()) {
        copy = Run::new("sh").args([
            "-c",
            &format!(
                "cp -a {} {} && cp -a {} {}",
                shell_quote(&bin.to_string_lossy()),
                shell_quote(&staged_bin.to_string_lossy()),
                shell_quote(&dir.to_string_lossy()),
                shell_quote(&stage.join("lib/walship").to_string_lossy()),
            ),
        ]);
    }
    copy.run().ok();
    Run::new("chmod")
        .args(["-R", "a+rX"])
        .arg(&stage)
        .run()
        .ok();
    eprintln!(
        "note: postgres cannot reach {}; running a copy in {}",
        bin.display(),
        stage.display()
    );
    staged_bin
}

/// A walship command line: global settings (environment), arguments, working
/// directory and user. Cheap to clone, so a configured base can be reused:
///
/// ```ignore
/// let base = Walship::new().env("WALSHIP_PREFIX", prefix).as_postgres();
/// base.clone().args(["wal-push", "pg_wal/000000010000000000000001"]).cwd(data).run();
/// ```
#[derive(Clone, Debug)]
pub struct Walship {
    run: Run,
}

impl Default for Walship {
    fn default() -> Self {
        Self::new()
    }
}

impl Walship {
    /// The binary under test, run as the current user, with a 120 s deadline
    /// (a hung walship fails the test instead of hanging it).
    pub fn new() -> Walship {
        Walship {
            run: Run::new(walship_bin()).timeout(Duration::from_secs(120)),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.run = self.run.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run = self.run.args(args);
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.run = self.run.env(key, value);
        self
    }

    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.run = self.run.envs(vars);
        self
    }

    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Self {
        self.run = self.run.cwd(dir);
        self
    }

    pub fn run_as(mut self, who: RunAs) -> Self {
        self.run = self.run.run_as(who);
        self
    }

    /// Runs as `postgres`, as PostgreSQL's archive and restore commands do.
    pub fn as_postgres(self) -> Self {
        self.run_as(RunAs::Postgres)
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.run = self.run.timeout(timeout);
        self
    }

    /// Runs walship. A failure is printed (command and stderr) but is not a
    /// panic: many tests expect one.
    pub fn run(&self) -> Outcome {
        self.run.run()
    }

    /// Starts walship without waiting (see [`Run::spawn`]).
    pub fn spawn(&self, log: &Path) -> std::process::Child {
        self.run.spawn(log)
    }

    /// This command as a shell line (environment assignments, binary,
    /// arguments, then `extra` verbatim) for `archive_command` and
    /// `restore_command`. The working directory and user are PostgreSQL's.
    pub fn shell_command(&self, extra: &str) -> String {
        let mut line = self.run.shell_line();
        if !extra.is_empty() {
            line.push(' ');
            line.push_str(extra);
        }
        line
    }
}

/// The magic that starts every stored WAL object.
pub const OBJECT_MAGIC: &[u8; 8] = b"WALSHIP\0";

/// Length of the header before the payload of a stored WAL object.
pub const OBJECT_HEADER_LEN: usize = 64;

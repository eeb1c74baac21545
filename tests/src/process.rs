//! Running child processes: as which user, with what environment, and for how
//! long at most.
//!
//! PostgreSQL refuses to run as root, and the suites usually run as root, so
//! every PostgreSQL binary (and every walship command that plays PostgreSQL's
//! part) runs as the `postgres` user through `runuser`. When the suites already
//! run as an ordinary user, that user plays both parts.

use std::ffi::OsStr;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// The account PostgreSQL runs as when the suites run as root.
pub const POSTGRES_USER: &str = "postgres";

/// Environment variables that configure walship (or WAL-G, whose names walship
/// accepts), and the AWS SDK settings the S3 plugin reads (a developer's
/// `AWS_PROFILE` or `AWS_CA_BUNDLE`). They are removed from every child so that
/// a developer's shell cannot leak settings into a test; each test sets what
/// it means.
/// The settings of walship and of every bundled backend (WAL-G's names, the
/// clouds' SDK names): a developer's shell must not change what is tested.
const SCRUBBED_PREFIXES: &[&str] = &[
    "WALSHIP_",
    "WALG_",
    "WALE_",
    "AWS_",
    "AZURE_",
    "GOOGLE_",
    "STORAGE_EMULATOR_HOST",
    "ST_",
    "OS_",
];

/// Who a child process runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunAs {
    /// The user running the tests.
    Current,
    /// The `postgres` account (the current user when that is not root).
    Postgres,
}

/// True when the tests run as root (and so must switch to `postgres`).
pub fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    // /proc/self belongs to the effective user of the process.
    *ROOT.get_or_init(|| {
        std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false)
    })
}

/// uid and gid of the `postgres` account, read from /etc/passwd.
pub fn postgres_ids() -> (u32, u32) {
    static IDS: OnceLock<(u32, u32)> = OnceLock::new();
    *IDS.get_or_init(|| {
        let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
        passwd
            .lines()
            .find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.len() > 3 && fields[0] == POSTGRES_USER)
                    .then(|| (fields[2].parse().ok(), fields[3].parse().ok()))
                    .and_then(|ids| Some((ids.0?, ids.1?)))
            })
            .expect("the `postgres` account must exist (install PostgreSQL)")
    })
}

/// Gives `path` to the `postgres` account (a no-op unless running as root).
pub fn chown_postgres(path: &Path) {
    if is_root() {
        let (uid, gid) = postgres_ids();
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("chown postgres {}: {e}", path.display()));
    }
}

/// A command to run: program, arguments, environment, working directory,
/// user and deadline. Built up, then [`Run::run`].
#[derive(Clone, Debug)]
pub struct Run {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<std::path::PathBuf>,
    run_as: RunAs,
    timeout: Duration,
    quiet: bool,
}

impl Run {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Run {
            program: program.as_ref().to_string_lossy().into_owned(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            run_as: RunAs::Current,
            timeout: Duration::from_secs(120),
            quiet: false,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_string_lossy().into_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.into()));
        self
    }

    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    pub fn run_as(mut self, who: RunAs) -> Self {
        self.run_as = who;
        self
    }

    pub fn as_postgres(self) -> Self {
        self.run_as(RunAs::Postgres)
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Does not print the command when it fails (for polling; the caller
    /// reports).
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    /// Starts the command without waiting, its stdout and stderr appended
    /// to `log`, for a test to pause, kill or wait for. As `postgres` it
    /// runs under that uid directly (not through runuser), so a signal to
    /// the child reaches the program itself; its environment is only PATH
    /// and what was set with [`Run::env`].
    pub fn spawn(&self, log: &Path) -> std::process::Child {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open {}: {e}", log.display()));
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone log"))
            .stderr(out);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        if self.run_as == RunAs::Postgres && is_root() {
            let (uid, gid) = postgres_ids();
            cmd.uid(uid).gid(gid);
        }
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", self.describe()))
    }

    /// The command as a shell line, for logs and for reproducing by hand.
    pub fn describe(&self) -> String {
        let mut line = String::new();
        if let Some(dir) = &self.cwd {
            line.push_str(&format!("cd {} && ", shell_quote(&dir.to_string_lossy())));
        }
        line.push_str(&self.env_assignments());
        if self.run_as == RunAs::Postgres && is_root() {
            line.push_str("runuser -u postgres -- ");
        }
        line.push_str(&self.program_and_args());
        line
    }

    /// Environment, program and arguments as a shell line, without working
    /// directory or user: what goes into `archive_command`.
    pub fn shell_line(&self) -> String {
        self.env_assignments() + &self.program_and_args()
    }

    fn env_assignments(&self) -> String {
        self.env
            .iter()
            .map(|(k, v)| format!("{k}={} ", shell_quote(v)))
            .collect()
    }

    fn program_and_args(&self) -> String {
        let mut line = shell_quote(&self.program);
        for a in &self.args {
            line.push(' ');
            line.push_str(&shell_quote(a));
        }
        line
    }

    /// Runs the command to completion, or kills it (and everything it started
    /// in its process group) at the deadline. Never panics on a non-zero exit;
    /// see [`Outcome::ok`].
    pub fn run(&self) -> Outcome {
        let mut cmd = if self.run_as == RunAs::Postgres && is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", POSTGRES_USER, "--"]).arg(&self.program);
            c
        } else {
            Command::new(&self.program)
        };
        cmd.args(&self.args);
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if SCRUBBED_PREFIXES.iter().any(|p| key.starts_with(p)) {
                cmd.env_remove(&*key);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Own process group, so that a timeout kills runuser's child too.
            .process_group(0);

        let described = self.describe();
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{described}`: {e}"));
        let stdout = drain(child.stdout.take().expect("piped stdout"));
        let stderr = drain(child.stderr.take().expect("piped stderr"));

        let mut timed_out = false;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for child") {
                break status;
            }
            if started.elapsed() > self.timeout {
                timed_out = true;
                kill_group(child.id());
                break child.wait().expect("wait for killed child");
            }
            thread::sleep(Duration::from_millis(20));
        };
        let outcome = Outcome {
            command: described,
            code: status.code(),
            signal: status.signal(),
            timed_out,
            stdout: String::from_utf8_lossy(&stdout.join().expect("stdout reader")).into_owned(),
            stderr: String::from_utf8_lossy(&stderr.join().expect("stderr reader")).into_owned(),
            elapsed: started.elapsed(),
        };
        if outcome.code != Some(0) && !self.quiet {
            // Captured by the test harness and shown only when the test fails.
            eprintln!("{outcome}");
        }
        outcome
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

pub(crate) fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// What a finished command did.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The command line, as [`Run::describe`] gives it.
    pub command: String,
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// Killed by the harness at its deadline.
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics unless the command exited 0.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(self.success(), "command failed:\n{self}");
        self
    }

    /// The exit code; panics if the command was killed or timed out.
    #[track_caller]
    pub fn exit_code(&self) -> i32 {
        match self.code {
            Some(code) if !self.timed_out => code,
            _ => panic!("command did not exit normally:\n{self}"),
        }
    }

    /// stdout without the trailing newline.
    pub fn out(&self) -> &str {
        self.stdout.trim_end_matches('\n')
    }

    /// The non-empty lines of stderr.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.command)?;
        match (self.timed_out, self.code, self.signal) {
            (true, _, _) => writeln!(f, "  -> KILLED after {:.1?} (timeout)", self.elapsed)?,
            (false, Some(code), _) => writeln!(f, "  -> exit {code} after {:.1?}", self.elapsed)?,
            (false, None, sig) => writeln!(f, "  -> killed by signal {sig:?}")?,
        }
        for (name, text) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            if !text.trim().is_empty() {
                writeln!(f, "  {name}:")?;
                for line in text.lines().take(200) {
                    writeln!(f, "    | {line}")?;
                }
            }
        }
        Ok(())
    }
}

/// Quotes `s` for a POSIX shell (single quotes; no quoting when not needed).
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b':' | b'=' | b',')
        });
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Polls `probe` until it returns `Some`, or panics after `timeout` with
/// `what` and the last `Err` the probe gave (its explanation of the state).
#[track_caller]
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let started = Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        match probe() {
            Ok(value) => return value,
            Err(state) if started.elapsed() > timeout => {
                panic!("timed out after {timeout:?} waiting for {what}; last state: {state}")
            }
            Err(_) => {
                thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(500));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/a/b-c_1.x"), "/a/b-c_1.x");
        assert_eq!(shell_quote("file:///x"), "file:///x");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn timeout_kills() {
        let out = Run::new("sh")
            .args(["-c", "sleep 30"])
            .timeout(Duration::from_millis(300))
            .run();
        assert!(out.timed_out);
        assert!(out.elapsed < Duration::from_secs(10));
    }

    #[test]
    fn captures_and_scrubs() {
        let out = Run::new("sh")
            .args([
                "-c",
                "echo out; echo err >&2; echo \"[$WALSHIP_X]\"; exit 3",
            ])
            .env("WALSHIP_X", "set")
            .run();
        assert_eq!(out.exit_code(), 3);
        assert_eq!(out.out(), "out\n[set]");
        assert_eq!(out.stderr_lines(), ["err"]);
    }
}

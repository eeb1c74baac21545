//! The archivers compared by `peers`: what PostgreSQL runs for each
//! (`archive_command`, `restore_command`), what must happen before the first
//! push (a pgBackRest stanza, a warm plugin cache), and where its bytes end
//! up, so that the same directory walk measures every tool.

use std::path::{Path, PathBuf};

use walship_e2e::emulators::{S3sFs, Stunnel};
use walship_e2e::process::{is_root, shell_quote};
use walship_e2e::{Archive, Cluster, Run, Scratch, WalshipArchive};

/// The stanza every pgBackRest repository here holds.
const STANZA: &str = "bench";

/// pgBackRest's async processes and walship's archive-ahead both move this
/// many segments at once, so the comparison is one of work per segment, not
/// of parallelism settings.
pub const PARALLEL: u32 = 4;

type CommandFor = Box<dyn Fn(&Cluster) -> String>;
type Prepare = Box<dyn Fn(&Cluster) -> Result<(), String>>;

/// One archiver under one configuration.
pub struct Tool {
    /// Stable id, used to pair runs for the ratios.
    pub key: String,
    /// For the table.
    pub name: String,
    archive: CommandFor,
    restore: CommandFor,
    /// Run against the cluster about to archive, before the clock starts.
    prepare: Prepare,
    /// Everything this tool stored lives below this directory.
    stored: PathBuf,
}

impl Tool {
    pub fn archive_command(&self, cluster: &Cluster) -> String {
        (self.archive)(cluster)
    }

    pub fn restore_command(&self, cluster: &Cluster) -> String {
        (self.restore)(cluster)
    }

    pub fn prepare(&self, cluster: &Cluster) -> Result<(), String> {
        (self.prepare)(cluster)
    }

    /// Bytes of every file below the tool's storage directory.
    pub fn stored_bytes(&self) -> u64 {
        dir_bytes(&self.stored)
    }

    /// Frees the disk once both runs are done (an uncompressed archive of
    /// 64 segments is 1 GiB).
    pub fn remove_archive(&self) {
        let _ = std::fs::remove_dir_all(&self.stored);
    }
}

/// A tool that could not be set up, and why.
pub struct Skipped {
    pub name: String,
    pub why: String,
}

/// Where the S3 tools store: s3s-fs, plain HTTP and behind a TLS front.
pub struct S3 {
    pub server: S3sFs,
    pub tls: Stunnel,
}

impl S3 {
    fn bucket_dir(&self, prefix: &str) -> PathBuf {
        self.server.data_dir().join(S3sFs::BUCKET).join(prefix)
    }
}

/// Every tool of the comparison, in the order they run; peers that cannot
/// be installed come back as [`Skipped`].
pub fn all(scratch: &Scratch, s3: Option<&S3>, s3_why: &str) -> Vec<Result<Tool, Skipped>> {
    let mut tools = vec![Ok(cp_floor(scratch))];
    tools.push(Ok(walship(
        "walship-file",
        "walship file://",
        WalshipArchive::file(scratch, "walship-file"),
        None,
    )));
    let skip = |name: String, why: &str| {
        Err(Skipped {
            name,
            why: why.to_string(),
        })
    };
    match s3 {
        Some(s3) => {
            tools.push(Ok(walship(
                "walship-s3",
                "walship s3:// (http)",
                s3.server.archive(scratch, "walship-s3"),
                Some(s3.bucket_dir("walship-s3")),
            )));
            let tls = s3
                .server
                .access()
                .at(s3.tls.endpoint())
                .archive(scratch, S3sFs::BUCKET, "walship-s3-tls")
                .with_env("WALSHIP_CA_FILE", s3.tls.ca_file().display().to_string());
            tools.push(Ok(walship(
                "walship-s3-tls",
                "walship s3:// (https, stunnel)",
                tls,
                Some(s3.bucket_dir("walship-s3-tls")),
            )));
            // The compression default, revisited with parallel pushes: lz4
            // costs less CPU and stores more.
            let lz4 = s3
                .server
                .access()
                .at(s3.tls.endpoint())
                .archive(scratch, S3sFs::BUCKET, "walship-s3-tls-lz4")
                .with_env("WALSHIP_CA_FILE", s3.tls.ca_file().display().to_string())
                .with_env("WALSHIP_COMPRESSION", "lz4");
            tools.push(Ok(walship(
                "walship-s3-tls-lz4",
                "walship s3:// (https, stunnel, lz4)",
                lz4,
                Some(s3.bucket_dir("walship-s3-tls-lz4")),
            )));
        }
        None => {
            tools.push(skip("walship s3:// (http)".into(), s3_why));
            tools.push(skip("walship s3:// (https, stunnel)".into(), s3_why));
        }
    }

    let pgbackrest_missing = install("pgbackrest", "pgbackrest").err();
    for repo in ["posix", "s3"] {
        for mode in ["sync", "async"] {
            for compress in ["gz", "zst"] {
                let name = format!("pgBackRest {repo} {mode} {compress}");
                let tool = match (&pgbackrest_missing, repo, s3) {
                    (Some(why), _, _) => skip(name, why),
                    (None, "s3", None) => skip(name, s3_why),
                    (None, _, s3) => Ok(pgbackrest(scratch, repo, mode, compress, s3)),
                };
                tools.push(tool);
            }
        }
    }

    let barman_missing = install("barman-cli-cloud", "barman-cloud-wal-archive").err();
    for compress in [None, Some("gzip")] {
        let name = match compress {
            None => "barman-cloud s3 (no compression, its default)".to_string(),
            Some(c) => format!("barman-cloud s3 --{c}"),
        };
        tools.push(match (&barman_missing, s3) {
            (Some(why), _) => skip(name, why),
            (None, None) => skip(name, s3_why),
            (None, Some(s3)) => Ok(barman(s3, compress, name)),
        });
    }
    tools
}

/// The floor: `cp`, the file and the directory fsynced, a rename in between
/// so that a crash never leaves half a segment under its name.
fn cp_floor(scratch: &Scratch) -> Tool {
    let dir = scratch.postgres_dir("cp-archive", 0o700);
    let d = shell_quote(&dir.to_string_lossy());
    Tool {
        key: "cp".into(),
        name: "cp + fsync (floor)".into(),
        archive: Box::new(move |_| {
            format!(
                "test ! -f {d}/%f && cp %p {d}/%f.tmp && sync {d}/%f.tmp && mv {d}/%f.tmp {d}/%f && sync {d}"
            )
        }),
        restore: {
            let d = shell_quote(&dir.to_string_lossy());
            Box::new(move |_| format!("cp {d}/%f %p"))
        },
        prepare: Box::new(|_| Ok(())),
        stored: dir,
    }
}

fn walship(key: &str, name: &str, archive: WalshipArchive, stored: Option<PathBuf>) -> Tool {
    let stored = stored
        .or_else(|| archive.local_dir().map(Path::to_path_buf))
        .expect("a walship archive with a known storage directory");
    let (push, fetch) = (archive.archive_command(), archive.restore_command());
    Tool {
        key: key.into(),
        name: format!("{name} ({PARALLEL} ahead)"),
        archive: Box::new(move |_| push.clone()),
        restore: Box::new(move |_| fetch.clone()),
        // The first command compiles the plugin into the cache: keep that
        // out of the figure, as a production host has it cached.
        prepare: Box::new(move |_| {
            let out = archive.walship().args(["st", "ls"]).run();
            if out.success() {
                Ok(())
            } else {
                Err(format!(
                    "walship st ls failed: {}",
                    first_lines(&out.stderr)
                ))
            }
        }),
        stored,
    }
}

fn pgbackrest(scratch: &Scratch, repo: &str, mode: &str, compress: &str, s3: Option<&S3>) -> Tool {
    let key = format!("pgbackrest-{repo}-{mode}-{compress}");
    let dir = scratch.postgres_dir(&key, 0o700);
    let sub = |name: &str| scratch.postgres_dir(&format!("{key}/{name}"), 0o700);
    let (spool, log, lock) = (sub("spool"), sub("log"), sub("lock"));
    let mut conf = String::from("[global]\n");
    let stored = match (repo, s3) {
        ("s3", Some(s3)) => {
            // pgBackRest 2.45 speaks S3 over TLS only: through the stunnel
            // front, certificate not verified (a test CA), path-style.
            conf.push_str(&format!(
                "repo1-type=s3\nrepo1-path=/{key}\nrepo1-s3-bucket={}\n\
                 repo1-s3-endpoint=localhost\nrepo1-storage-port={}\n\
                 repo1-s3-region=us-east-1\nrepo1-s3-key={}\nrepo1-s3-key-secret={}\n\
                 repo1-s3-uri-style=path\nrepo1-storage-verify-tls=n\n",
                S3sFs::BUCKET,
                s3.tls.port(),
                S3sFs::ACCESS_KEY_ID,
                S3sFs::SECRET_ACCESS_KEY,
            ));
            s3.bucket_dir(&key)
        }
        _ => {
            let path = dir.join("repo");
            conf.push_str(&format!(
                "repo1-type=posix\nrepo1-path={}\n",
                path.display()
            ));
            path
        }
    };
    conf.push_str(&format!(
        "compress-type={compress}\narchive-async={}\nspool-path={}\nprocess-max={PARALLEL}\n\
         log-path={}\nlock-path={}\nlog-level-console=warn\nlog-level-stderr=warn\n\
         log-level-file=info\n\n[{STANZA}]\n",
        if mode == "async" { "y" } else { "n" },
        spool.display(),
        log.display(),
        lock.display(),
    ));
    let conf_file = scratch.postgres_file(&format!("{key}/pgbackrest.conf"), conf.as_bytes());
    let base = format!(
        "pgbackrest --config={} --stanza={STANZA}",
        shell_quote(&conf_file.to_string_lossy())
    );
    let pg1 = |c: &Cluster| {
        format!(
            "--pg1-path={}",
            shell_quote(&c.data_dir().to_string_lossy())
        )
    };
    let (push_base, get_base, create_base) = (base.clone(), base.clone(), base);
    Tool {
        key: key.clone(),
        name: format!(
            "pgBackRest {repo} {mode} {compress}{}",
            if mode == "async" {
                format!(" (process-max={PARALLEL})")
            } else {
                String::new()
            }
        ),
        archive: Box::new(move |c| format!("{push_base} {} archive-push %p", pg1(c))),
        restore: Box::new(move |c| format!("{get_base} {} archive-get %f \"%p\"", pg1(c))),
        prepare: Box::new(move |c| {
            let line = format!(
                "{create_base} {} --pg1-socket-path={} --pg1-port={} stanza-create",
                pg1(c),
                shell_quote(&c.socket_dir().to_string_lossy()),
                c.port()
            );
            let out = Run::new("sh").args(["-c", &line]).as_postgres().run();
            if out.success() {
                Ok(())
            } else {
                Err(format!(
                    "stanza-create failed: {}",
                    first_lines(&(out.stderr + &out.stdout))
                ))
            }
        }),
        stored,
    }
}

fn barman(s3: &S3, compress: Option<&str>, name: String) -> Tool {
    let key = match compress {
        None => "barman-s3".to_string(),
        Some(c) => format!("barman-s3-{c}"),
    };
    // boto3 over plain HTTP to s3s-fs (an IP endpoint, so path-style).
    let access = s3.server.access();
    let env = format!(
        "AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_DEFAULT_REGION={}",
        shell_quote(&access.access_key_id),
        shell_quote(&access.secret_access_key),
        access.region
    );
    let common = format!(
        "--cloud-provider aws-s3 --endpoint-url {} s3://{}/{key} {STANZA}",
        access.endpoint,
        S3sFs::BUCKET
    );
    let flag = compress.map(|c| format!(" --{c}")).unwrap_or_default();
    let push = format!("{env} barman-cloud-wal-archive{flag} {common} %p");
    let fetch = format!("{env} barman-cloud-wal-restore {common} %f %p");
    // --test checks connectivity only, but still wants a WAL file name.
    let test = format!("{env} barman-cloud-wal-archive --test {common} 000000010000000000000001");
    let stored = s3.bucket_dir(&key);
    Tool {
        key,
        name,
        archive: Box::new(move |_| push.clone()),
        restore: Box::new(move |_| fetch.clone()),
        prepare: Box::new(move |_| {
            let out = Run::new("sh").args(["-c", &test]).as_postgres().run();
            if out.success() {
                Ok(())
            } else {
                Err(format!(
                    "barman-cloud-wal-archive --test failed: {}",
                    first_lines(&(out.stderr + &out.stdout))
                ))
            }
        }),
        stored,
    }
}

/// Makes sure `binary` is on PATH, installing Debian's `package` when we are
/// root (as `.ci/install-test-tools` does); the error says why not.
pub fn install(package: &str, binary: &str) -> Result<(), String> {
    let found = |b: &str| {
        Run::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .quiet()
            .run()
            .success()
    };
    if found(binary) {
        return Ok(());
    }
    if !is_root() {
        return Err(format!(
            "{binary} is not installed; as root: apt-get install {package}"
        ));
    }
    eprintln!(
        "peers: {binary} is missing; installing Debian's {package} (apt-get install -y --no-install-recommends {package}) ..."
    );
    let apt = |args: &[&str]| {
        Run::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .timeout(std::time::Duration::from_secs(600))
            .quiet()
            .run()
    };
    let install = ["install", "-y", "-q", "--no-install-recommends", package];
    let mut out = apt(&install);
    if !out.success() {
        // The package lists of a fresh machine may be missing or stale.
        apt(&["update", "-q"]);
        out = apt(&install);
    }
    if out.success() && found(binary) {
        eprintln!("peers: installed {package}");
        Ok(())
    } else {
        Err(format!(
            "apt-get install {package} failed: {}",
            first_lines(&out.stderr)
        ))
    }
}

/// Sum of the sizes of the regular files below `dir` (0 when it is absent).
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) if m.is_file() => total += m.len(),
                _ => {}
            }
        }
    }
    total
}

/// The first few non-empty lines of a tool's output, on one line.
pub fn first_lines(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .collect();
    let joined = lines.join(" / ");
    if joined.chars().count() > 300 {
        joined.chars().take(300).collect::<String>() + "..."
    } else {
        joined
    }
}

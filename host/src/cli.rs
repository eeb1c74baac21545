//! What the user typed: the command line, parsed and nothing more. Turning it
//! into the settings walship runs with is `settings.rs`'s job.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "walship",
    version,
    about = "Continuous archiving for PostgreSQL, with sandboxed WebAssembly storage backends",
    long_about = "Continuous archiving for PostgreSQL.\n\n\
        In postgresql.conf:\n  archive_command = 'walship wal-push %p'\n  restore_command = 'walship wal-fetch %f %p'\n\n\
        Settings come from flags, then environment variables (WALSHIP_* and WAL-G's names), then the settings file \
        given by --config or WALSHIP_CONFIG (TOML, or WAL-G's JSON for a .json name; else ~/.walg.json). \
        `walship config` shows what each resolved to and where it came from."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Default)]
pub struct GlobalArgs {
    /// Settings file: TOML, or WAL-G's JSON when the name ends in .json
    /// [env: WALSHIP_CONFIG; default ~/.walg.json if it exists]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the archive lives, e.g. file:///var/lib/walship [env: WALSHIP_PREFIX, WALG_FILE_PREFIX, ...]
    #[arg(long, global = true, value_name = "URL")]
    pub prefix: Option<String>,
    /// Use this plugin file instead of the bundled one for the prefix's scheme [env: WALSHIP_PLUGIN]
    #[arg(long, global = true, value_name = "FILE")]
    pub plugin: Option<PathBuf>,
    /// Where plugins are looked up by scheme [env: WALSHIP_PLUGIN_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// Cache of precompiled plugins [env: WALSHIP_CACHE_DIR; default ~/.cache/walship]
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// error, warn, info, debug or trace [env: WALSHIP_LOG_LEVEL, WALG_LOG_LEVEL]
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Overall deadline for the command, in seconds [env: WALSHIP_TIMEOUT]
    #[arg(long, global = true, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Compression for new objects: zstd, lz4 or none [env: WALSHIP_COMPRESSION, WALG_COMPRESSION_METHOD]
    #[arg(long, global = true, value_name = "METHOD")]
    pub compression: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Archive one WAL file (PostgreSQL's archive_command: walship wal-push %p)
    WalPush {
        /// Path of the file, relative to the data directory (%p)
        path: PathBuf,
    },
    /// Restore one WAL file (PostgreSQL's restore_command: walship wal-fetch %f %p)
    WalFetch {
        /// Name of the WAL file (%f)
        name: String,
        /// Where to put it (%p)
        destination: PathBuf,
    },
    /// Download the segments after NAME into the prefetch directory (started
    /// by wal-fetch in the background; not for direct use)
    #[command(hide = true)]
    WalPrefetch {
        /// The segment recovery asked for last
        name: String,
    },
    /// Upload the files PostgreSQL has marked ready in PG_WAL (started by
    /// wal-push in the background; not for direct use)
    #[command(hide = true)]
    WalPushAhead {
        /// The directory of the WAL files (pg_wal)
        wal_dir: PathBuf,
    },
    /// The archived WAL per timeline: parent and switch point, first and last
    /// segment, count, gaps, and the backups on each
    WalShow {
        /// One JSON document instead of text
        #[arg(long)]
        json: bool,
    },
    /// Check that every segment from the oldest backup's start to the newest
    /// archived WAL is present and intact; exit 1 with the list otherwise
    WalVerify {
        /// WAL-G's check names (integrity, timeline); both always run
        #[arg(value_name = "CHECK")]
        checks: Vec<String>,
        /// One JSON document instead of text
        #[arg(long)]
        json: bool,
    },
    /// Delete old backups and the WAL no kept backup needs (a dry run
    /// unless --confirm)
    #[command(subcommand)]
    Delete(DeleteCommand),
    /// Take a base backup of a running cluster (pg_backup_start/stop over a
    /// SQL session; PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD as libpq)
    BackupPush {
        /// The data directory [default: $PGDATA]
        #[arg(value_name = "PGDATA")]
        data_dir: Option<PathBuf>,
    },
    /// List the complete base backups, oldest first
    BackupList {
        /// One JSON document (the backup records) instead of a table
        #[arg(long)]
        json: bool,
        /// More columns: start time, LSNs, PostgreSQL version, data directory
        #[arg(long)]
        detail: bool,
    },
    /// Keep a backup forever (retention never deletes it, nor the WAL it
    /// needs to become consistent), or with --impermanent let retention
    /// treat it like any other again (WAL-G's backup-mark)
    BackupMark {
        /// A backup name from backup-list, or LATEST
        #[arg(value_name = "NAME|LATEST")]
        name: String,
        /// Take the mark off
        #[arg(long)]
        impermanent: bool,
    },
    /// Restore a base backup into a missing or empty directory
    BackupFetch {
        /// Where to restore (missing or empty)
        #[arg(value_name = "PGDATA")]
        data_dir: PathBuf,
        /// A backup name from backup-list, or LATEST
        #[arg(value_name = "NAME|LATEST")]
        name: String,
        /// Restore the tablespace at OLD into NEW instead (repeatable), as pg_basebackup's
        #[arg(long = "tablespace-mapping", value_name = "OLD=NEW")]
        tablespace_mapping: Vec<String>,
        /// As root, restore tablespaces without a mapping to the locations the
        /// backup's record names (anyone who can write to the bucket can write
        /// a record, so root needs this said explicitly)
        #[arg(long)]
        use_recorded_tablespace_locations: bool,
    },
    /// Check the set-up, one line per check: settings, plugin and sandbox,
    /// storage (credentials, create-only, missing vs forbidden), the
    /// archive's identity, the running server's archiving settings, and a
    /// round trip (a WAL switch that must reach the archive). Run it as the
    /// PostgreSQL user in the data directory (or with PGDATA)
    Check {
        /// One JSON document instead of lines
        #[arg(long)]
        json: bool,
    },
    /// Copy the archive (WAL and backups) to another prefix, on any
    /// backend: only what is missing there, every object verified and read
    /// back, records last; run again after an interruption to finish
    Copy {
        /// Where the copy goes (e.g. s3://other-bucket/path); the storage
        /// settings are the same ones this command runs with
        #[arg(long, value_name = "PREFIX")]
        to: String,
    },
    /// Print what walship did at this prefix (successes, failures, bytes,
    /// prefetch hits, archive lag) in Prometheus's text format; the same
    /// goes to WALSHIP_METRICS_TEXTFILE after every command
    Metrics,
    /// Print the settings walship would run with, where each came from
    /// (flag, environment, settings file or default), secrets masked
    Config {
        /// Print instead what walship does with each of WAL-G's setting
        /// names (honoured, refused or ignored), as a Markdown table
        #[arg(long)]
        names: bool,
    },
    /// Raw object operations through the storage plugin (no archive format)
    #[command(name = "st", subcommand)]
    Storage(StorageCommand),
    /// Inspect plugins
    #[command(subcommand)]
    Plugin(PluginCommand),
}

impl Command {
    /// Whether the command stores into the archive, and so may create the
    /// archive's directory on the file backend. Everything else only reads
    /// (or deletes from an archive that must already be there).
    pub fn writes_to_archive(&self) -> bool {
        matches!(
            self,
            Command::WalPush { .. }
                | Command::WalPushAhead { .. }
                | Command::BackupPush { .. }
                | Command::Storage(StorageCommand::Put { .. })
                | Command::Plugin(PluginCommand::Test { .. })
        )
    }
}

#[derive(Debug, Subcommand)]
pub enum DeleteCommand {
    /// Keep the newest N backups: `delete retain [FULL|FIND_FULL] N`
    Retain {
        /// [FULL|FIND_FULL] N (the modifiers are WAL-G's; every walship backup is full)
        #[arg(required = true, num_args = 1..=2, value_name = "ARG")]
        args: Vec<String>,
        /// Delete for real (without it, print what would go)
        #[arg(long)]
        confirm: bool,
        /// Delete even WAL that looks like a running server's and that no
        /// kept backup can restore, or when a kept backup lacks its own WAL
        #[arg(long)]
        force: bool,
    },
    /// Delete the backups older than NAME, or older than the newest backup
    /// finished by TIME (RFC 3339): `delete before [FIND_FULL] NAME|TIME`
    Before {
        /// [FIND_FULL] NAME|TIME
        #[arg(required = true, num_args = 1..=2, value_name = "ARG")]
        args: Vec<String>,
        /// Delete for real (without it, print what would go)
        #[arg(long)]
        confirm: bool,
        /// Delete even WAL that looks like a running server's and that no
        /// kept backup can restore, or when a kept backup lacks its own WAL
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// List object keys under a key prefix
    Ls {
        /// Only keys starting with this (relative to the archive prefix)
        #[arg(default_value = "", value_name = "KEY_PREFIX")]
        key_prefix: String,
    },
    /// Copy an object to a local file
    Get { key: String, file: PathBuf },
    /// Store a local file as an object (overwrites)
    Put { key: String, file: PathBuf },
    /// Delete objects
    Rm {
        #[arg(required = true)]
        keys: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show a plugin's name, version, contract, schemes, features, limits and settings
    Inspect {
        /// A plugin file, or a scheme (file, s3, ...) to inspect the plugin serving it
        #[arg(value_name = "PLUGIN")]
        file_or_scheme: String,
    },
    /// Validate a plugin, precompile it and install it into the plugin directory
    /// (--plugin-dir / WALSHIP_PLUGIN_DIR, else ~/.local/share/walship/plugins),
    /// where prefixes of the schemes it declares find it
    Install {
        /// The plugin's .wasm component
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Install it even though it serves a scheme a bundled plugin serves
        /// (it will be used in the bundled plugin's place)
        #[arg(long)]
        force: bool,
    },
    /// List installed and bundled plugins, in the order schemes are looked up
    List,
    /// Run the conformance suite against a plugin and the service the prefix names
    /// (works under a fresh sub-prefix and deletes it afterwards)
    Test {
        /// A plugin file, or a scheme (file, s3, ...) to test the plugin serving it
        #[arg(value_name = "PLUGIN")]
        file_or_scheme: String,
        /// human (a table) or json
        #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
        format: ReportFormat,
        /// Keep the objects the suite wrote (to debug a plugin)
        #[arg(long)]
        keep: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Human,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// clap panics at run time when a subcommand's argument shares an id
    /// with a global flag; its own checks find that here.
    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
        for args in [
            &["walship", "--prefix", "file:///a", "st", "ls", "wal/"][..],
            &["walship", "--plugin", "x.wasm", "plugin", "inspect", "file"],
            &[
                "walship", "plugin", "test", "s3", "--format", "json", "--keep",
            ],
            &["walship", "plugin", "install", "x.wasm"],
            &["walship", "plugin", "list"],
            &["walship", "backup-push", "/var/lib/postgresql/15/main"],
            &["walship", "backup-push"],
            &["walship", "backup-list", "--json", "--detail"],
            &[
                "walship",
                "backup-fetch",
                "/restore",
                "LATEST",
                "--tablespace-mapping",
                "/a=/b",
            ],
            &["walship", "wal-show", "--json"],
            &["walship", "config"],
            &["walship", "config", "--names"],
            &["walship", "wal-verify", "integrity", "timeline", "--json"],
            &["walship", "delete", "retain", "FULL", "2", "--confirm"],
            &["walship", "delete", "retain", "2"],
            &[
                "walship",
                "delete",
                "before",
                "FIND_FULL",
                "2026-12-01T00:00:00Z",
            ],
            &[
                "walship",
                "wal-fetch",
                "000000010000000000000001",
                "pg_wal/RECOVERYXLOG",
            ],
        ] {
            Cli::try_parse_from(args).unwrap();
        }
    }
}

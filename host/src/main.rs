//! walship: continuous archiving for PostgreSQL.
//!
//! A thin binary: parse the command line, resolve settings once, run one
//! command under a deadline and signal handling, and exit with the code
//! PostgreSQL expects.

/// `eprintln!` that never panics. std's panics when stderr cannot be
/// written (a full log disk, a closed pipe): the command would then die
/// with a panic's code instead of the one PostgreSQL must see, and a
/// wal-push whose segment is stored would fail only for want of a log line.
/// Defined before the modules, so it shadows std's in all of them.
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr(), $($arg)*);
    }};
}

/// `println!` that never panics (`walship backup-list | head` closes the
/// pipe early): what could not be printed is not worth a crash.
macro_rules! println {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stdout(), $($arg)*);
    }};
}

mod archive;
mod archive_dir;
mod backup;
mod cli;
mod commands;
mod conformance;
mod crypto;
mod file_write;
mod identity;
mod logging;
#[cfg(test)]
mod memory_store;
mod metrics;
mod object_format;
mod pg_control;
mod plugin;
mod plugin_registry;
mod prefetch;
mod push_ahead;
mod random_id;
mod rate_limit;
mod retention;
mod retry;
mod settings;
mod standby_mode;
mod storage;
mod timeline;
mod transfer;
mod wal_name;
mod wal_text_files;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

use cli::{Cli, Command, PluginCommand};
use commands::{Context, EXIT_FAILURE, Failure};

/// How long a command may take to clean up after SIGTERM/SIGINT.
const SIGNAL_GRACE: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let started = Instant::now();
    archive_dir::keep_files_private();
    let cli = Cli::parse();
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    // What code a failure outside the command itself (bad settings, deadline,
    // signal) must produce depends on the command.
    let failure_code = match &cli.command {
        Command::WalFetch { .. } => commands::wal_fetch::real_error_code(&cwd),
        _ => EXIT_FAILURE,
    };
    install_panic_hook(failure_code);
    // The table of WAL-G's names needs no settings (and must print even
    // while a refused one is set).
    if let Command::Config { names: true } = cli.command {
        print!("{}", settings::names::markdown_table());
        return ExitCode::SUCCESS;
    }
    let settings = match settings::resolve(&cli.global, &settings::Environment::capture()) {
        // A base backup of a large cluster takes far longer than the default
        // deadline, which is for the commands PostgreSQL runs; WALSHIP_TIMEOUT
        // set to anything else still bounds it.
        Ok(mut s)
            if matches!(
                cli.command,
                Command::BackupPush { .. } | Command::BackupFetch { .. }
            ) && s.deadline == settings::DEFAULT_DEADLINE =>
        {
            s.deadline = commands::backup_push::DEADLINE;
            s
        }
        // wal-verify downloads every segment and a delete may remove
        // thousands of objects: maintenance, bounded like a backup.
        Ok(mut s)
            if matches!(cli.command, Command::WalVerify { .. } | Command::Delete(_))
                && s.deadline == settings::DEFAULT_DEADLINE =>
        {
            s.deadline = commands::backup_push::DEADLINE;
            s
        }
        // The detached helpers bound themselves (HELPER_LIFETIME: no new work
        // after it); their deadline is only a last resort, so that nothing
        // they started is cut off half-way by a per-file deadline.
        Ok(mut s)
            if matches!(
                cli.command,
                Command::WalPushAhead { .. } | Command::WalPrefetch { .. }
            ) =>
        {
            s.deadline = commands::HELPER_DEADLINE;
            s
        }
        Ok(s) => s,
        Err(e) => {
            return exit(Err(Failure::new(
                failure_code,
                format!("configuration: {e}"),
            )));
        }
    };
    settings::report_warnings(&settings);
    start_watchdog(settings.deadline + Duration::from_secs(10), failure_code);
    let deadline = settings.deadline;
    // A cache directory this user cannot use (HOME pointing at another
    // user's home) falls back to a private one, with a warning.
    let mut settings = settings;
    settings.cache_dir = plugin::usable_cache_dir(settings.cache_dir.as_deref());
    let ctx = Context {
        settings,
        cwd,
        started,
        writes: cli.command.writes_to_archive(),
    };

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return exit(Err(Failure::new(
                failure_code,
                format!("cannot start: {e}"),
            )));
        }
    };
    let result = runtime.block_on(async {
        let command = tokio::time::timeout(deadline, run(&ctx, &cli.command));
        tokio::pin!(command);
        let timed_out = || {
            Err(Failure::new(
                failure_code,
                format!(
                    "gave up after the {}s deadline (WALSHIP_TIMEOUT)",
                    deadline.as_secs()
                ),
            ))
        };
        tokio::select! {
            r = &mut command => r.unwrap_or_else(|_| timed_out()),
            signal = termination_signal() => {
                // Let the command clean up: an upload in parts aborts (so no
                // half-object stays behind) and the plugin call in flight ends.
                // Past the grace period its future is dropped, which still
                // removes temporary files through their guards.
                transfer::cancel();
                match tokio::time::timeout(SIGNAL_GRACE, &mut command).await {
                    Ok(Ok(Ok(()))) => Ok(()),
                    _ => Err(Failure::new(failure_code, format!("interrupted by {signal}"))),
                }
            }
        }
    });
    record_metrics(&ctx, &cli.command, result.is_ok());
    exit(result)
}

/// What each archive command did goes into the metrics (metrics.rs); a
/// failure to record changes nothing.
fn record_metrics(ctx: &Context, command: &Command, ok: bool) {
    let name = match command {
        Command::WalPush { .. } => "wal-push",
        Command::WalFetch { .. } => "wal-fetch",
        Command::WalPushAhead { .. } => "wal-push-ahead",
        Command::WalPrefetch { .. } => "wal-prefetch",
        Command::BackupPush { .. } => "backup-push",
        Command::BackupFetch { .. } => "backup-fetch",
        Command::Delete(_) => "delete",
        Command::WalVerify { .. } => "wal-verify",
        Command::Copy { .. } => "copy",
        _ => return,
    };
    let Some(prefix) = ctx.settings.prefix.as_deref() else {
        return;
    };
    let segment_size = pg_control::read_cluster_identity(&ctx.cwd)
        .map(|c| c.wal_segment_size)
        .unwrap_or(16 << 20);
    if let Err(e) = metrics::record_run(
        ctx.settings.cache_dir.as_deref(),
        ctx.settings.metrics_textfile.as_deref(),
        prefix,
        name,
        ok,
        ctx.started.elapsed().as_secs_f64(),
        segment_size,
    ) && ctx.settings.log_level >= logging::LogLevelFilter::Debug
    {
        logging::log_line(
            logging::LogLevelFilter::Debug,
            &format!("cannot record metrics: {e}"),
        );
    }
}

async fn run(ctx: &Context, command: &Command) -> Result<(), Failure> {
    match command {
        Command::WalPush { path } => commands::wal_push::run(ctx, path).await,
        Command::WalFetch { name, destination } => {
            commands::wal_fetch::run(ctx, name, destination).await
        }
        Command::WalPrefetch { name } => commands::wal_prefetch::run(ctx, name).await,
        Command::WalPushAhead { wal_dir } => commands::wal_push_ahead::run(ctx, wal_dir).await,
        Command::Storage(op) => commands::storage_ops::run(ctx, op).await,
        Command::BackupPush { data_dir } => {
            commands::backup_push::run(ctx, data_dir.as_deref()).await
        }
        Command::BackupMark { name, impermanent } => {
            commands::backup_mark::run(ctx, name, !*impermanent).await
        }
        Command::BackupList { json, detail } => {
            commands::backup_list::run(ctx, *json, *detail).await
        }
        Command::BackupFetch {
            data_dir,
            name,
            tablespace_mapping,
            use_recorded_tablespace_locations,
        } => {
            commands::backup_fetch::run(
                ctx,
                data_dir,
                name,
                tablespace_mapping,
                *use_recorded_tablespace_locations,
            )
            .await
        }
        Command::WalShow { json } => commands::wal_show::run(ctx, *json).await,
        Command::WalVerify { checks, json } => commands::wal_verify::run(ctx, checks, *json).await,
        Command::Delete(command) => commands::delete::run(ctx, command).await,
        Command::Config { names } => commands::config::run(ctx, *names).await,
        Command::Check { json } => commands::check::run(ctx, *json).await,
        Command::Metrics => commands::metrics::run(ctx).await,
        Command::Copy { to } => commands::copy::run(ctx, to).await,
        Command::Plugin(PluginCommand::Inspect {
            file_or_scheme: plugin,
        }) => commands::plugin_inspect::run(ctx, plugin).await,
        Command::Plugin(PluginCommand::Install { file, force }) => {
            commands::plugin_install::install(ctx, file, *force).await
        }
        Command::Plugin(PluginCommand::List) => commands::plugin_install::list(ctx).await,
        Command::Plugin(PluginCommand::Test {
            file_or_scheme: plugin,
            format,
            keep,
        }) => commands::plugin_test::run(ctx, plugin, *format, *keep).await,
    }
}

fn exit(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("walship: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

async fn termination_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// A bug must still end with the exit code PostgreSQL expects (a panic's
/// 101 would read as "file not found" to recovery and end it early), in one
/// line, whatever RUST_BACKTRACE says: PostgreSQL's log is line-oriented.
fn install_panic_hook(code: u8) {
    std::panic::set_hook(Box::new(move |info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let line = format!("walship: internal error: {what}{place}").replace(['\n', '\r'], " ");
        eprintln!("{line}");
        std::process::exit(i32::from(code));
    }));
}

/// The last line of defence: if the command is stuck where the async
/// deadline cannot reach it (a blocking filesystem call on a hung mount),
/// exit anyway, so PostgreSQL never waits forever.
fn start_watchdog(after: Duration, code: u8) {
    let _ = std::thread::Builder::new()
        .name("walship-watchdog".into())
        .spawn(move || {
            std::thread::sleep(after);
            eprintln!(
                "walship: still running {}s after the deadline; exiting",
                after.as_secs()
            );
            std::process::exit(i32::from(code));
        });
}

//! `cargo xtask demo [--pg MAJOR]`: the main job, narrated. A throwaway
//! PostgreSQL (Debian's 15, or MAJOR from 10 to 18 of the version matrix)
//! archives through `walship wal-push` into a local directory (the filesystem
//! plugin), takes a base backup with `walship backup-push`; the backup is then
//! restored with `walship backup-fetch` and recovered through
//! `walship wal-fetch` to a point in time between two batches of writes, and
//! again to the end of the archive.

use std::process::ExitCode;
use std::time::Instant;

use walship_e2e::pg::PgBinaries;
use walship_e2e::pitr::{BaseBackups, archive_and_recover_on};
use walship_e2e::walship::walship_bin;
use walship_e2e::{Archive, Scratch, WalshipArchive};

/// `--pg MAJOR`, if given.
fn requested_major() -> Result<Option<u32>, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(None),
        [flag, major] if flag == "--pg" => major
            .parse()
            .ok()
            .filter(|m| (10..=18).contains(m))
            .map(Some)
            .ok_or_else(|| format!("--pg {major}: expected a major version from 10 to 18")),
        _ => Err(format!(
            "usage: walship-demo [--pg MAJOR]; got {}",
            args.join(" ")
        )),
    }
}

fn main() -> ExitCode {
    let major = match requested_major() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("walship demo: {e}");
            return ExitCode::from(2);
        }
    };
    let binaries = major.map(PgBinaries::of_major);
    let shown = binaries.clone().unwrap_or_else(PgBinaries::default_install);
    let started = Instant::now();
    let scratch = Scratch::new("demo");
    let archive = WalshipArchive::file(&scratch, "archive");
    println!("walship demo");
    println!(
        "  PostgreSQL:      {} ({})",
        shown.major,
        shown.server.display()
    );
    println!(
        "  recovery:        {}",
        if shown.major < 12 {
            "recovery.conf holding restore_command and the target (PostgreSQL 10 and 11)"
        } else {
            "restore_command and the target in postgresql.conf, and recovery.signal"
        }
    );
    println!("  walship:         {}", walship_bin().display());
    println!("  archive prefix:  {}", archive.prefix());
    println!("  archive_command: {}", archive.archive_command());
    println!("  restore_command: {}", archive.restore_command());
    println!(
        "\n1. initdb, archive_mode = on, pgbench, walship backup-push, batch 1, a recorded time, batch 2, pg_switch_wal() ..."
    );
    let report =
        archive_and_recover_on(&scratch, &archive, BaseBackups::Walship(&archive), binaries);
    println!(
        "2. archived: {} files ({} segments switched), archiver failures: {}",
        report.archiver.archived_count,
        report.switched.len(),
        report.archiver.failed_count
    );
    println!(
        "   the archive holds {} WAL files, e.g. {}",
        report.stored.len(),
        report
            .stored
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "3. walship backup-fetch LATEST, recovered to {} (recovery_target_time):",
        report.target_time
    );
    println!(
        "   batch 1 rows: {}, batch 2 rows: {}, pgbench history rows: {} (exactly what the primary had then)",
        report.at_target.batch1, report.at_target.batch2, report.at_target.history
    );
    println!("4. the same backup recovered to the end of the archive:");
    println!(
        "   batch 1 rows: {}, batch 2 rows: {}, pgbench history rows: {} (everything)",
        report.at_end.batch1, report.at_end.batch2, report.at_end.history
    );
    println!(
        "\ndone in {:.0}s; every server was throwaway and is gone",
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

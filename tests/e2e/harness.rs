//! Checks the PostgreSQL harness itself, with the `cp` archive from
//! PostgreSQL's documentation standing in for walship. Needs no walship build;
//! ignored by default because it only tests the test code:
//!
//! cargo test -p walship-e2e --release --test harness -- --ignored

use walship_e2e::pitr::{MIN_SEGMENTS, archive_and_recover};
use walship_e2e::{Archive, CopyArchive, Run, Scratch};

#[test]
#[ignore = "checks the harness with a cp stand-in, not walship"]
fn pitr_scenario_with_cp_stand_in() {
    let scratch = Scratch::new("harness-cp");
    let archive = CopyArchive::new(&scratch, "archive");
    let report = archive_and_recover(&scratch, &archive);
    println!(
        "cp stand-in: {} switches, last {}, archived {}, target {} -> {:?}, end {:?}",
        report.switched.len(),
        report.last_segment,
        report.archiver.archived_count,
        report.target_time,
        report.at_target,
        report.at_end,
    );
    assert!(report.archiver.archived_count >= MIN_SEGMENTS as i64);
    assert_ne!(report.at_target, report.at_end);
}

/// The `cp` archive, except that restoring hides every segment from
/// 000000010000000000000010 on, as a broken archive would.
struct LossyArchive(CopyArchive);

impl Archive for LossyArchive {
    fn archive_command(&self) -> String {
        self.0.archive_command()
    }
    fn restore_command(&self) -> String {
        format!(
            "case %f in 0000000100000000000000[1-9A-F]?) exit 1;; esac; {}",
            self.0.restore_command()
        )
    }
    fn stored_wal_files(&self) -> Vec<String> {
        self.0.stored_wal_files()
    }
    fn describe(&self) -> String {
        format!("lossy {}", self.0.describe())
    }
}

/// The scenario must fail when the archive loses WAL, and must stop every
/// cluster it started on the way out.
#[test]
#[ignore = "checks the harness with a cp stand-in, not walship"]
fn pitr_scenario_fails_when_wal_is_lost() {
    let scratch = Scratch::new("harness-lossy");
    let archive = LossyArchive(CopyArchive::new(&scratch, "archive"));
    let result = std::panic::catch_unwind(|| archive_and_recover(&scratch, &archive));
    assert!(
        result.is_err(),
        "the scenario passed on an archive that lost WAL"
    );
    let left = Run::new("pgrep")
        .args(["-f", &scratch.path().to_string_lossy()])
        .run();
    assert!(
        left.out().is_empty(),
        "servers still running after the scenario failed: {}",
        left.out()
    );
}

//! The two text files PostgreSQL archives beside its segments, checked
//! before they are stored: `TTTTTTTT.history` and `<segment>.XXXXXXXX.backup`.
//!
//! Segments carry a page header that `archive.rs` checks against the
//! cluster; these files carry none, so without a check anything with a valid
//! name would be stored, and, being create-only, could never be replaced by
//! the real file afterwards. Recovery reads history files to choose its
//! timeline: a damaged one stored in place of the real one would send a
//! restore the wrong way.

use crate::backup::catalog::parse_lsn;
use crate::crypto::Keys;
use crate::object_format::{self, Encoded, Stored};
use crate::timeline::History;
use crate::wal_name::{WalFileKind, WalFileName};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{name} is not a valid {what}: {why}; not archived")]
pub struct InvalidWalText {
    pub name: String,
    pub what: &'static str,
    pub why: String,
}

/// Checks a history or backup-label file about to be archived (segments
/// pass: `archive.rs` checks their header).
pub fn check(name: &WalFileName, encoded: &Encoded, keys: &Keys) -> Result<(), InvalidWalText> {
    let what = match name.kind() {
        WalFileKind::History { .. } => "timeline history file",
        WalFileKind::BackupLabel { .. } => "backup label file",
        WalFileKind::Segment { .. } | WalFileKind::Partial { .. } => return Ok(()),
    };
    let fail = |why: String| InvalidWalText {
        name: name.to_string(),
        what,
        why,
    };
    // Small files: decoding again costs nothing next to the upload.
    let at = crate::archive::wal_key(name);
    let stored = Stored {
        at: at.as_str(),
        keys,
    };
    let bytes =
        object_format::decode(encoded.object.clone(), stored).map_err(|e| fail(e.to_string()))?;
    check_text(name, &bytes).map_err(fail)
}

/// The same check on the file's bytes.
pub fn check_text(name: &WalFileName, bytes: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "it is not text".to_string())?;
    match name.kind() {
        WalFileKind::History { timeline } => check_history(timeline, text),
        WalFileKind::BackupLabel { .. } => check_backup_label(&name.as_str()[..24], text),
        WalFileKind::Segment { .. } | WalFileKind::Partial { .. } => Ok(()),
    }
}

/// A history file names every ancestor of `timeline`, oldest first: at
/// least one, since timeline 1 has no history file.
fn check_history(timeline: u32, text: &str) -> Result<(), String> {
    if timeline < 2 {
        return Err(format!(
            "timeline {timeline} has no history (PostgreSQL writes history files from timeline 2 on)"
        ));
    }
    let history = History::parse(timeline, text).map_err(|e| e.why)?;
    if history.entries.is_empty() {
        return Err("it names no parent timeline".into());
    }
    Ok(())
}

/// `START WAL LOCATION: X/Y (file <segment>)` must name this file's
/// segment, and `STOP WAL LOCATION` must not come before it.
fn check_backup_label(segment: &str, text: &str) -> Result<(), String> {
    let location = |field: &str| -> Result<(u64, Option<String>), String> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .ok_or_else(|| format!("no {} line", field.trim_end_matches(": ")))?;
        let (lsn_text, rest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
        let lsn =
            parse_lsn(lsn_text).ok_or_else(|| format!("{}{lsn_text:?} is not an LSN", field))?;
        let file = rest
            .trim()
            .strip_prefix("(file ")
            .and_then(|r| r.strip_suffix(')'))
            .map(str::to_string);
        Ok((lsn, file))
    };
    let (start, start_file) = location("START WAL LOCATION: ")?;
    let (stop, _) = location("STOP WAL LOCATION: ")?;
    match start_file {
        Some(f) if f == segment => {}
        Some(f) => return Err(format!("it starts in segment {f}, its name says {segment}")),
        None => return Err("its START WAL LOCATION names no segment".into()),
    }
    if stop < start {
        return Err("it stops before it starts".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, text: &str) -> Result<(), String> {
        check_text(&WalFileName::parse(name).unwrap(), text.as_bytes())
    }

    #[test]
    fn real_history_files_pass() {
        check(
            "00000002.history",
            "1\t0/3000000\tno recovery target specified\n",
        )
        .unwrap();
        check(
            "00000003.history",
            "1\t0/3000000\tno recovery target specified\n\n2\t0/5000098\tat restore point \"x\"\n",
        )
        .unwrap();
    }

    #[test]
    fn damaged_history_files_are_refused() {
        for (name, text) in [
            ("00000000.history", "1\t0/3000000\tx\n"),
            ("00000001.history", ""),
            ("00000002.history", ""),
            ("00000002.history", "garbage\n"),
            ("00000002.history", "1\tnot-an-lsn\treason\n"),
            ("00000002.history", "2\t0/3000000\tparent is not older\n"),
            (
                "00000003.history",
                "2\t0/3000000\tx\n1\t0/4000000\tdecreasing\n",
            ),
        ] {
            assert!(check(name, text).is_err(), "{name} {text:?} passed");
        }
        assert!(
            check_text(
                &WalFileName::parse("00000002.history").unwrap(),
                &[0xff, 0xfe]
            )
            .is_err()
        );
    }

    const LABEL: &str = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\
        STOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)\n\
        CHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\n\
        START TIME: 2026-12-01 10:00:00 UTC\nLABEL: pg_basebackup base backup\n\
        START TIMELINE: 1\nSTOP TIME: 2026-12-01 10:00:01 UTC\nSTOP TIMELINE: 1\n";

    #[test]
    fn backup_labels_must_parse_and_match_their_name() {
        check("000000010000000000000002.00000028.backup", LABEL).unwrap();
        assert!(check("000000010000000000000003.00000028.backup", LABEL).is_err());
        assert!(check("000000010000000000000002.00000028.backup", "garbage").is_err());
        let no_stop: String = LABEL
            .lines()
            .filter(|l| !l.starts_with("STOP WAL"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(check("000000010000000000000002.00000028.backup", &no_stop).is_err());
        let backwards = LABEL.replace(
            "STOP WAL LOCATION: 0/2000100",
            "STOP WAL LOCATION: 0/1000000",
        );
        assert!(check("000000010000000000000002.00000028.backup", &backwards).is_err());
    }
}

//! Whether a data directory belongs to a standby, as PostgreSQL decides it
//! at start: `standby.signal` from 12 on; before 12 (10 and 11),
//! `standby_mode = on` in `recovery.conf`.
//!
//! `wal-fetch` needs to know: a real error makes recovery stop (exit 126)
//! unless the server is a standby, which must keep retrying (exit 1) and
//! can fall back to streaming.

use std::path::Path;

/// True when `data_dir` is configured as a standby.
pub fn is_standby(data_dir: &Path) -> bool {
    if data_dir.join("standby.signal").exists() {
        return true;
    }
    match std::fs::read_to_string(data_dir.join("recovery.conf")) {
        Ok(text) => standby_mode_in(&text),
        Err(_) => false,
    }
}

/// `standby_mode` as PostgreSQL 10/11 read it from recovery.conf: the last
/// `standby_mode = value` line wins (the `=` is optional), the value quoted
/// or not, a boolean as PostgreSQL spells booleans. Off when absent.
fn standby_mode_in(text: &str) -> bool {
    let mut on = false;
    for line in text.lines() {
        let line = strip_comment(line).trim();
        let Some(rest) = line.strip_prefix("standby_mode") else {
            continue;
        };
        // `standby_mode_x = on` is another name.
        if !rest.is_empty() && !rest.starts_with([' ', '\t', '=']) {
            continue;
        }
        let value = rest.trim_start().trim_start_matches('=').trim();
        let value = value
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .unwrap_or(value);
        if let Some(parsed) = parse_bool(value) {
            on = parsed;
        }
    }
    on
}

/// A comment starts at a `#` outside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// PostgreSQL's `parse_bool`: on/off, true/false, yes/no (any unique
/// prefix of the last two pairs), 1/0, in any case.
fn parse_bool(value: &str) -> Option<bool> {
    let v = value.to_ascii_lowercase();
    let prefix_of = |word: &str| !v.is_empty() && word.starts_with(v.as_str());
    match v.as_str() {
        "on" | "1" => Some(true),
        "off" | "of" | "0" => Some(false),
        _ if prefix_of("true") || prefix_of("yes") => Some(true),
        _ if prefix_of("false") || prefix_of("no") => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_standby_mode_as_postgresql_10_and_11_do() {
        for on in [
            "standby_mode = 'on'",
            "standby_mode = on",
            "standby_mode=true",
            "standby_mode 'yes'",
            "  standby_mode = 'ON'   # a standby",
            "standby_mode = 't'",
            "standby_mode = off\nstandby_mode = on",
            "restore_command = 'cp /a/%f %p'\nstandby_mode = '1'\nprimary_conninfo = 'host=x'",
        ] {
            assert!(standby_mode_in(on), "{on:?}");
        }
        for off in [
            "",
            "restore_command = 'walship wal-fetch %f %p'",
            "standby_mode = off",
            "standby_mode = 'false'",
            "# standby_mode = on",
            "standby_mode = on\nstandby_mode = no",
            "standby_mode_extra = on",
            "restore_command = 'x # standby_mode = on'",
        ] {
            assert!(!standby_mode_in(off), "{off:?}");
        }
    }

    #[test]
    fn a_signal_file_or_recovery_conf_makes_a_standby() {
        let dir = std::env::temp_dir().join(format!("walship-standby-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!is_standby(&dir));
        std::fs::write(dir.join("recovery.conf"), "standby_mode = 'on'\n").unwrap();
        assert!(is_standby(&dir));
        std::fs::write(dir.join("recovery.conf"), "restore_command = 'x'\n").unwrap();
        assert!(!is_standby(&dir));
        std::fs::write(dir.join("standby.signal"), "").unwrap();
        assert!(is_standby(&dir));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

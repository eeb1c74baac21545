//! walship's log: one line per message on stderr, which PostgreSQL copies
//! into its server log for archive and restore commands.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevelFilter {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevelFilter {
    /// Accepts walship's names and WAL-G's (`NORMAL`, `DEVEL`, `ERROR`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "error" => Self::Error,
            "warn" | "warning" => Self::Warn,
            "info" | "normal" => Self::Info,
            "debug" | "devel" => Self::Debug,
            "trace" => Self::Trace,
            _ => return None,
        })
    }
}

pub fn log_line(level: LogLevelFilter, message: &str) {
    let tag = match level {
        LogLevelFilter::Error => "error",
        LogLevelFilter::Warn => "warning",
        LogLevelFilter::Info => "info",
        LogLevelFilter::Debug => "debug",
        LogLevelFilter::Trace => "trace",
    };
    eprintln!("walship: {tag}: {message}");
}

/// A string a plugin supplied (its name, version, schemes, settings and
/// their descriptions, host patterns, ...), made safe to print: control
/// characters (escape sequences that move the cursor or recolour the
/// terminal, carriage returns, newlines that start a forged line) are shown
/// escaped, so what an operator reads is what the plugin said, nothing more.
pub fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
                c.escape_unicode().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(printable("s3 1.0"), "s3 1.0");
        assert_eq!(printable("é✓"), "é✓");
        let spoof = "ok\x1b[2K\rinstalled s3\nsha256 0000";
        let shown = printable(spoof);
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert_eq!(shown, "ok\\u{1b}[2K\\u{d}installed s3\\u{a}sha256 0000");
        // Bidirectional overrides reorder what is shown.
        assert_eq!(printable("a\u{202e}b"), "a\\u{202e}b");
    }
}

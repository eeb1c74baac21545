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

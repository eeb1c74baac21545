//! What walship did, where Prometheus can read it.
//!
//! Every command ends by recording its outcome in a small state file per
//! archive prefix (`<cache dir>/metrics/<hash of the prefix>.json`, under a
//! lock: PostgreSQL runs one wal-push after another, the pusher and the
//! prefetcher run beside them): successes and failures per command, the
//! time of the last of each, bytes, files and time spent, prefetch hits and
//! misses, the newest segment stored, and what PostgreSQL still has to
//! archive (`pg_wal/archive_status/*.ready`). When `WALSHIP_METRICS_TEXTFILE`
//! is set, the state is then written there in Prometheus's text exposition
//! format (node-exporter's textfile collector), atomically; `walship
//! metrics` prints the same.
//!
//! Recording never changes a command's outcome: a failure to record is
//! ignored (a warning at debug level).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::wal_name::WalFileName;

/// What the command running in this process reports beside its outcome.
#[derive(Debug, Default, Clone)]
pub struct Work {
    pub bytes: u64,
    pub files: u64,
    pub prefetch_hits: u64,
    pub prefetch_misses: u64,
    /// A WAL file this command stored (or found stored).
    pub archived: Option<String>,
    /// `pg_wal` of the cluster, to count what PostgreSQL has yet to archive.
    pub wal_dir: Option<PathBuf>,
}

static WORK: Mutex<Option<Work>> = Mutex::new(None);

/// Adds to what this process reports.
pub fn note(update: impl FnOnce(&mut Work)) {
    let mut w = WORK.lock().unwrap_or_else(|e| e.into_inner());
    update(w.get_or_insert_with(Work::default));
}

fn take_work() -> Work {
    WORK.lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default()
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandStats {
    pub successes: u64,
    pub failures: u64,
    pub last_success_unix: Option<f64>,
    pub last_failure_unix: Option<f64>,
    pub seconds_total: f64,
    pub last_seconds: f64,
    pub bytes_total: u64,
    pub files_total: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub prefix: String,
    pub commands: BTreeMap<String, CommandStats>,
    pub prefetch_hits: u64,
    pub prefetch_misses: u64,
    /// The newest WAL segment stored, and when.
    pub last_archived: Option<String>,
    pub last_archived_unix: Option<f64>,
    /// Files PostgreSQL had marked ready but not yet archived, and the
    /// newest of them, when last looked at.
    pub ready_files: u64,
    pub newest_ready: Option<String>,
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl State {
    /// Adds one run of `command`.
    pub fn record(&mut self, command: &str, ok: bool, seconds: f64, work: &Work, now: SystemTime) {
        let c = self.commands.entry(command.to_string()).or_default();
        if ok {
            c.successes += 1;
            c.last_success_unix = Some(unix(now));
        } else {
            c.failures += 1;
            c.last_failure_unix = Some(unix(now));
        }
        c.seconds_total += seconds;
        c.last_seconds = seconds;
        if ok {
            c.bytes_total += work.bytes;
            c.files_total += work.files;
        }
        self.prefetch_hits += work.prefetch_hits;
        self.prefetch_misses += work.prefetch_misses;
        if let (true, Some(seg)) = (ok, &work.archived)
            && is_segment(seg)
            && self.last_archived.as_ref().is_none_or(|l| seg >= l)
        {
            self.last_archived = Some(seg.clone());
            self.last_archived_unix = Some(unix(now));
        }
        if let Some(dir) = &work.wal_dir {
            self.refresh_ready(dir);
        }
    }

    /// Looks again at what PostgreSQL has yet to archive in `wal_dir`.
    pub fn refresh_ready(&mut self, wal_dir: &Path) {
        let (count, newest) = ready_files(wal_dir);
        self.ready_files = count;
        self.newest_ready = newest;
    }

    /// Segments between the newest one PostgreSQL has finished (the newest
    /// `.ready`) and the newest one stored; 0 when nothing waits.
    pub fn lag_segments(&self, segment_size: u32) -> u64 {
        let segno = |name: &str| crate::timeline::parse_segment(name, segment_size).map(|(_, n)| n);
        match (self.ready_files, &self.newest_ready, &self.last_archived) {
            (0, _, _) | (_, None, _) => 0,
            (n, Some(_), None) => n,
            (_, Some(ready), Some(stored)) => match (segno(ready), segno(stored)) {
                (Some(r), Some(s)) => r.saturating_sub(s),
                _ => self.ready_files,
            },
        }
    }

    /// Prometheus's text exposition format.
    pub fn exposition(&self, segment_size: u32) -> String {
        let mut o = String::new();
        let prefix = escape(&self.prefix);
        let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
            o.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, value) in samples {
                o.push_str(&format!("{name}{{prefix=\"{prefix}\"{labels}}} {value}\n"));
            }
        };
        let per_command = |f: &dyn Fn(&CommandStats) -> Option<f64>| -> Vec<(String, f64)> {
            self.commands
                .iter()
                .filter_map(|(cmd, s)| f(s).map(|v| (format!(",command=\"{cmd}\""), v)))
                .collect()
        };
        metric(
            "walship_command_success_total",
            "counter",
            "Runs of a walship command that succeeded.",
            per_command(&|s| Some(s.successes as f64)),
        );
        metric(
            "walship_command_failure_total",
            "counter",
            "Runs of a walship command that failed.",
            per_command(&|s| Some(s.failures as f64)),
        );
        metric(
            "walship_command_last_success_timestamp_seconds",
            "gauge",
            "When a walship command last succeeded (Unix time).",
            per_command(&|s| s.last_success_unix),
        );
        metric(
            "walship_command_last_failure_timestamp_seconds",
            "gauge",
            "When a walship command last failed (Unix time).",
            per_command(&|s| s.last_failure_unix),
        );
        metric(
            "walship_command_duration_seconds_total",
            "counter",
            "Time spent in a walship command.",
            per_command(&|s| Some(s.seconds_total)),
        );
        metric(
            "walship_command_last_duration_seconds",
            "gauge",
            "How long the last run of a walship command took.",
            per_command(&|s| Some(s.last_seconds)),
        );
        metric(
            "walship_command_bytes_total",
            "counter",
            "Bytes a walship command archived or restored (before compression).",
            per_command(&|s| Some(s.bytes_total as f64)),
        );
        metric(
            "walship_command_files_total",
            "counter",
            "Files a walship command archived or restored.",
            per_command(&|s| Some(s.files_total as f64)),
        );
        metric(
            "walship_prefetch_hits_total",
            "counter",
            "WAL segments wal-fetch served from what the prefetcher downloaded ahead.",
            vec![(String::new(), self.prefetch_hits as f64)],
        );
        metric(
            "walship_prefetch_misses_total",
            "counter",
            "WAL segments wal-fetch had to download itself.",
            vec![(String::new(), self.prefetch_misses as f64)],
        );
        if let Some(t) = self.last_archived_unix {
            metric(
                "walship_last_archived_timestamp_seconds",
                "gauge",
                "When the newest WAL segment was stored (Unix time).",
                vec![(String::new(), t)],
            );
        }
        metric(
            "walship_archive_ready_files",
            "gauge",
            "WAL files PostgreSQL has finished and not yet archived.",
            vec![(String::new(), self.ready_files as f64)],
        );
        metric(
            "walship_archive_lag_segments",
            "gauge",
            "Segments between the newest one PostgreSQL finished and the newest one stored.",
            vec![(String::new(), self.lag_segments(segment_size) as f64)],
        );
        o
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn is_segment(name: &str) -> bool {
    name.len() == 24 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// (count, newest) of the WAL segments marked ready in `wal_dir`.
fn ready_files(wal_dir: &Path) -> (u64, Option<String>) {
    let Ok(entries) = std::fs::read_dir(wal_dir.join("archive_status")) else {
        return (0, None);
    };
    let mut count = 0;
    let mut newest: Option<String> = None;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(file) = name.strip_suffix(".ready") {
            count += 1;
            if WalFileName::parse(file).is_ok()
                && is_segment(file)
                && newest.as_deref().is_none_or(|n| file > n)
            {
                newest = Some(file.to_string());
            }
        }
    }
    (count, newest)
}

/// The state file of `prefix` under `cache_dir`.
pub fn state_path(cache_dir: &Path, prefix: &str) -> PathBuf {
    cache_dir.join("metrics").join(format!(
        "{}.json",
        &blake3::hash(prefix.as_bytes()).to_hex()[..16]
    ))
}

/// Reads the state (empty when there is none yet).
pub fn load(path: &Path, prefix: &str) -> State {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<State>(&b).ok())
        .filter(|s| s.prefix == prefix)
        .unwrap_or_else(|| State {
            prefix: prefix.to_string(),
            ..State::default()
        })
}

/// Records the end of `command` and writes the textfile, if one is set.
/// Errors are returned for the caller to ignore or log.
pub fn record_run(
    cache_dir: Option<&Path>,
    textfile: Option<&Path>,
    prefix: &str,
    command: &str,
    ok: bool,
    seconds: f64,
    segment_size: u32,
) -> std::io::Result<()> {
    let work = take_work();
    let Some(cache_dir) = cache_dir else {
        return Ok(());
    };
    let path = state_path(cache_dir, prefix);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // One writer at a time: read, add, write back, under the lock.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.with_extension("lock"))?;
    lock.lock()?;
    let mut state = load(&path, prefix);
    state.record(command, ok, seconds, &work, SystemTime::now());
    let json = serde_json::to_vec_pretty(&state).expect("state serializes");
    crate::file_write::write_into_place(&path, &json)?;
    if let Some(textfile) = textfile {
        crate::file_write::write_into_place(textfile, state.exposition(segment_size).as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_known_sequence_gives_known_values() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut s = State {
            prefix: "s3://b/p".into(),
            ..State::default()
        };
        let seg = |n: u32| format!("0000000100000000{n:08X}");
        for n in 1..=3 {
            let w = Work {
                bytes: 16 << 20,
                files: 1,
                archived: Some(seg(n)),
                ..Work::default()
            };
            s.record(
                "wal-push",
                true,
                0.5,
                &w,
                t0 + Duration::from_secs(u64::from(n)),
            );
        }
        s.record(
            "wal-push",
            false,
            0.25,
            &Work::default(),
            t0 + Duration::from_secs(9),
        );
        s.record(
            "wal-fetch",
            true,
            0.1,
            &Work {
                prefetch_hits: 1,
                ..Work::default()
            },
            t0,
        );
        s.ready_files = 2;
        s.newest_ready = Some(seg(5));
        let text = s.exposition(16 << 20);
        let value = |line: &str| -> f64 {
            text.lines()
                .find(|l| l.starts_with(line))
                .unwrap_or_else(|| panic!("no {line} in\n{text}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let l = |name: &str, cmd: &str| format!("{name}{{prefix=\"s3://b/p\",command=\"{cmd}\"}}");
        assert_eq!(value(&l("walship_command_success_total", "wal-push")), 3.0);
        assert_eq!(value(&l("walship_command_failure_total", "wal-push")), 1.0);
        assert_eq!(
            value(&l("walship_command_bytes_total", "wal-push")),
            (48u64 << 20) as f64
        );
        assert_eq!(value(&l("walship_command_files_total", "wal-push")), 3.0);
        assert_eq!(
            value(&l(
                "walship_command_last_failure_timestamp_seconds",
                "wal-push"
            )),
            1_000_009.0
        );
        assert_eq!(value("walship_prefetch_hits_total"), 1.0);
        assert_eq!(
            value("walship_archive_lag_segments"),
            2.0,
            "5 finished, 3 stored"
        );
        assert_eq!(
            value("walship_last_archived_timestamp_seconds"),
            1_000_003.0
        );
        // Every line is a comment or `name{labels} number`.
        for line in text.lines() {
            assert!(
                line.starts_with("# HELP ")
                    || line.starts_with("# TYPE ")
                    || line
                        .split(' ')
                        .nth(1)
                        .is_some_and(|v| v.parse::<f64>().is_ok()),
                "{line}"
            );
        }
    }
}

//! Bandwidth limits (WAL-G's `WALG_NETWORK_RATE_LIMIT` and
//! `WALG_DISK_RATE_LIMIT`, bytes per second): every lane of a transfer
//! takes its bytes from one shared budget, so the average rate of the whole
//! command stays at the limit however many lanes run. The budget is a
//! schedule, not a bucket with a burst, counted from the first bytes.
//!
//! Bytes are paid for before they count: `n` more bytes are due when the
//! clock reaches (bytes so far + n) / rate, the moment they would have
//! finished at exactly the limit. So even a transfer in a few large pieces
//! (8 MiB parts and ranges) keeps its average at or below the limit.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Schedule {
    started: Option<Instant>,
    granted: u64,
}

/// A shared limit; cloning shares the budget.
#[derive(Debug, Clone)]
pub struct RateLimit {
    bytes_per_second: u64,
    schedule: Arc<Mutex<Schedule>>,
}

impl RateLimit {
    pub fn new(bytes_per_second: u64) -> Self {
        Self {
            bytes_per_second: bytes_per_second.max(1),
            schedule: Arc::new(Mutex::new(Schedule {
                started: None,
                granted: 0,
            })),
        }
    }

    /// How long to wait before `n` more bytes may go.
    fn reserve(&self, n: u64) -> Duration {
        let mut s = self.schedule.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let started = *s.started.get_or_insert(now);
        s.granted += n;
        let due = Duration::from_secs_f64(s.granted as f64 / self.bytes_per_second as f64);
        (started + due).saturating_duration_since(now)
    }

    /// Waits (asynchronously) until `n` more bytes may go.
    pub async fn take(&self, n: u64) {
        let wait = self.reserve(n);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Waits (blocking the thread: file reads and writes) until `n` more
    /// bytes may go.
    pub fn take_blocking(&self, n: u64) {
        let wait = self.reserve(n);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

/// A limit shared by every walship process of one archive (`wal-push`
/// runs once per file, beside the pusher and the prefetcher): the schedule
/// lives in a small file, read and moved under a lock. Each transfer of `n`
/// bytes reserves the slot after the last one reserved (or now, if that is
/// past: no credit is saved up while idle) and is due at its end.
#[derive(Debug, Clone)]
pub struct SharedRateLimit {
    bytes_per_second: u64,
    file: std::path::PathBuf,
}

impl SharedRateLimit {
    pub fn new(bytes_per_second: u64, file: std::path::PathBuf) -> Self {
        Self {
            bytes_per_second: bytes_per_second.max(1),
            file,
        }
    }

    /// Reserves `n` bytes; returns how long to wait before they count as
    /// sent. Any failure to use the file makes the limit a no-op (never a
    /// failed archive command).
    fn reserve(&self, n: u64) -> Duration {
        use std::io::{Read, Seek, Write};
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let attempt = || -> std::io::Result<f64> {
            if let Some(dir) = self.file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&self.file)?;
            f.lock()?;
            let mut text = String::new();
            f.read_to_string(&mut text)?;
            let next_free: f64 = text.trim().parse().unwrap_or(0.0);
            let due = next_free.max(now) + n as f64 / self.bytes_per_second as f64;
            f.set_len(0)?;
            f.seek(std::io::SeekFrom::Start(0))?;
            write!(f, "{due}")?;
            Ok(due)
        };
        match attempt() {
            Ok(due) => Duration::from_secs_f64((due - now).max(0.0)),
            Err(_) => Duration::ZERO,
        }
    }

    pub async fn take(&self, n: u64) {
        let wait = self.reserve(n);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Limits of one command, each optional.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Bytes sent to or received from the storage.
    pub network: Option<RateLimit>,
    /// Bytes read from or written to the local disk.
    pub disk: Option<RateLimit>,
}

/// A reader that takes its bytes from a disk limit.
pub struct LimitedRead<R> {
    pub inner: R,
    pub limit: Option<RateLimit>,
}

impl<R: std::io::Read> std::io::Read for LimitedRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(l) = &self.limit {
            l.take_blocking(n as u64);
        }
        Ok(n)
    }
}

/// A writer that takes its bytes from a disk limit.
pub struct LimitedWrite<W> {
    pub inner: W,
    pub limit: Option<RateLimit>,
}

impl<W: std::io::Write> std::io::Write for LimitedWrite<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(l) = &self.limit {
            l.take_blocking(n as u64);
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_shared_limit_holds_across_handles_of_one_file() {
        let file = std::env::temp_dir().join(format!("walship-wal-rate-{}", std::process::id()));
        let _ = std::fs::remove_file(&file);
        let (a, b) = (
            SharedRateLimit::new(8 << 20, file.clone()),
            SharedRateLimit::new(8 << 20, file.clone()),
        );
        let t = Instant::now();
        for _ in 0..4 {
            a.take(1 << 20).await;
            b.take(1 << 20).await;
        }
        // 8 MiB at 8 MiB/s, whichever handle (process) sends it.
        let took = t.elapsed().as_secs_f64();
        assert!((0.95..1.4).contains(&took), "took {took:.2}s");
        let _ = std::fs::remove_file(&file);
    }

    #[test]
    fn the_average_rate_is_the_limit_across_threads() {
        let limit = RateLimit::new(4 << 20);
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..3 {
                let l = limit.clone();
                s.spawn(move || {
                    for _ in 0..8 {
                        l.take_blocking(256 << 10);
                    }
                });
            }
        });
        // 24 pieces of 256 KiB = 6 MiB at 4 MiB/s: 1.5 s.
        let took = t.elapsed().as_secs_f64();
        assert!((1.45..1.8).contains(&took), "took {took:.2}s");
    }
}

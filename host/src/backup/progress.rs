//! Progress of a long transfer: a bar on a terminal, a log line every few
//! seconds otherwise (a log file, a Kubernetes pod's output).

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const LOG_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    pub done: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts reporting `what` (e.g. "backup-push base_...") against `total` bytes.
    pub fn start(what: String, total: u64) -> Self {
        let done = Arc::new(AtomicU64::new(0));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let counter = done.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            if std::io::stderr().is_terminal() {
                let bar = indicatif::ProgressBar::new(total);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{msg} [{bar:40}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_message(what);
                loop {
                    bar.set_position(counter.load(Ordering::Relaxed).min(total));
                    tokio::select! {
                        _ = &mut stopped => break,
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                }
                bar.set_position(counter.load(Ordering::Relaxed).min(total));
                bar.finish_and_clear();
            } else {
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        _ = tokio::time::sleep(LOG_EVERY) => {}
                    }
                    let n = counter.load(Ordering::Relaxed);
                    let secs = started.elapsed().as_secs_f64().max(0.001);
                    eprintln!(
                        "walship: {what}: {} of {} ({:.0}%), {}/s",
                        human_bytes(n),
                        human_bytes(total),
                        if total == 0 {
                            100.0
                        } else {
                            n as f64 * 100.0 / total as f64
                        },
                        human_bytes((n as f64 / secs) as u64),
                    );
                }
            }
        });
        Self {
            done,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn finish(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// 1.5 GiB, 300 MiB, 12 KiB, 512 B.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

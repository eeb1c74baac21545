//! `cargo xtask bench`: figures for one 16 MiB segment, on real WAL.
//!
//! 1. Generates real WAL with pgbench on a throwaway PostgreSQL 15.
//! 2. Compression and hashing of those segments, in-process: ratio and speed
//!    of none / lz4 / zstd levels (the default's justification).
//! 3. Whole-process `wal-push` and `wal-fetch` with a precompiled plugin:
//!    wall time from the parent's point of view, split by walship's own
//!    `WALSHIP_TIMINGS` into start-up, plugin load, compression+hashing and
//!    storage; and peak RSS. Target: everything but compression, hashing and
//!    storage I/O ≤ 5 ms; peak RSS ≤ 64 MiB.
//! 4. S3, against s3s-fs on this machine (`s3.rs`): archive throughput of 64
//!    segments through PostgreSQL's archive_command, and one 16 MiB object
//!    through the plugin against object_store's native client.
//!
//! Prints figures; asserts nothing (tests assert behaviour, not timings).
//!
//! 5. Azure (Azurite), GCS (fake-gcs-server) and Swift (a real Swift 2.30):
//!    archive throughput of 64 segments each (`azure.rs`, `gcs.rs`,
//!    `swift.rs`). `cargo xtask bench -- s3|azure|gcs|swift` runs one cloud's
//!    figures only.
//!
//! 6. `wal-push` CPU time per segment with and without encryption
//!    (`encryption.rs`); `cargo xtask bench -- encryption` runs only that.
//!
//! `cargo xtask bench -- peers [--segments N]` runs the side-by-side
//! comparison with pgBackRest, barman-cloud and `cp` instead (`peers.rs`).
//! `cargo xtask bench -- backup [--scale N]` measures base backups
//! (`backup.rs`): walship backup-push/fetch against pg_basebackup and
//! pgBackRest.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use walship_e2e::walship::walship_bin;
use walship_e2e::{Cluster, Scratch};

mod azure;
mod backup;
mod encryption;
mod gcs;
mod peers;
mod s3;
mod swift;
mod throughput;

const RUNS: usize = 12;

/// One cloud's figures, printed against its local stand-in.
type CloudFigures = fn(&Scratch);

fn main() {
    // `cargo xtask bench -- peers` passes the `--` along.
    let args: Vec<String> = std::env::args().skip(1).skip_while(|a| a == "--").collect();
    if args.first().map(String::as_str) == Some("peers") {
        peers::main(&args[1..]);
        return;
    }
    if args.first().map(String::as_str) == Some("backup") {
        backup::main(&args[1..]);
        return;
    }
    // One cloud's figures only: `cargo xtask bench -- s3|azure|gcs|swift`.
    let clouds: [(&str, CloudFigures); 4] = [
        ("s3", s3::figures),
        ("azure", azure::figures),
        ("gcs", gcs::figures),
        ("swift", swift::figures),
    ];
    if let Some((name, figures)) = clouds
        .iter()
        .find(|(name, _)| args.first().map(String::as_str) == Some(*name))
    {
        figures(&Scratch::new(&format!("bench-{name}")));
        return;
    }
    let encryption_only = args.first().map(String::as_str) == Some("encryption");
    let scratch = Scratch::new("bench");
    let mut cluster = Cluster::init(&scratch, "bench");
    // Keep the finished segments around to measure them.
    cluster
        .set("wal_keep_size", "1GB")
        .set("max_wal_size", "1GB");
    cluster.start();
    println!("# walship benchmark ({})", walship_bin().display());
    println!("machine: {} cores, load average {}", cores(), loadavg());
    let t = Instant::now();
    cluster.pgbench(&["-i", "-s", "10", "-q"]);
    cluster.pgbench(&["-n", "-c", "2", "-t", "3000"]);
    cluster.switch_wal();
    // Only segments before the current one are finished; later names in
    // pg_wal are recycled files waiting to be reused (walship refuses those).
    let current = cluster.psql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    let mut segments: Vec<String> = cluster
        .wal_segments()
        .into_iter()
        .filter(|s| *s < current)
        .collect();
    segments.sort();
    let pg_wal = cluster.data_dir().join("pg_wal");
    let segments: Vec<String> = segments.into_iter().rev().take(RUNS + 1).collect();
    println!(
        "generated real pgbench WAL in {:.1}s; using {} finished segments\n",
        t.elapsed().as_secs_f64(),
        segments.len()
    );
    let data: Vec<Vec<u8>> = segments
        .iter()
        .map(|s| std::fs::read(pg_wal.join(s)).unwrap())
        .collect();

    if encryption_only {
        encryption::figures(&scratch, &cluster, &segments);
        cluster.stop();
        return;
    }
    compression_table(&data);
    process_figures(&scratch, &cluster, &segments);
    encryption::figures(&scratch, &cluster, &segments);
    cluster.stop();
    for (_, figures) in clouds {
        figures(&scratch);
    }
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn compression_table(segments: &[Vec<u8>]) {
    let total: usize = segments.iter().map(Vec::len).sum();
    let mib = total as f64 / (1 << 20) as f64;
    println!(
        "## compression of {} real segments ({mib:.0} MiB), one core",
        segments.len()
    );
    println!(
        "| method | ratio | compress MiB/s | decompress MiB/s | ms per 16 MiB segment (compress) |"
    );
    println!("|---|---|---|---|---|");
    type Codec = (
        &'static str,
        fn(&[u8]) -> Vec<u8>,
        fn(&[u8], usize) -> Vec<u8>,
    );
    let codecs: [Codec; 4] = [
        (
            "lz4",
            |d| lz4_flex::block::compress(d),
            |c, n| lz4_flex::block::decompress(c, n).unwrap(),
        ),
        (
            "zstd -1 (default)",
            |d| zstd::bulk::compress(d, 1).unwrap(),
            |c, n| zstd::bulk::decompress(c, n).unwrap(),
        ),
        (
            "zstd -3",
            |d| zstd::bulk::compress(d, 3).unwrap(),
            |c, n| zstd::bulk::decompress(c, n).unwrap(),
        ),
        (
            "zstd -6",
            |d| zstd::bulk::compress(d, 6).unwrap(),
            |c, n| zstd::bulk::decompress(c, n).unwrap(),
        ),
    ];
    for (name, compress, decompress) in codecs {
        let t = Instant::now();
        let packed: Vec<Vec<u8>> = segments.iter().map(|s| compress(s)).collect();
        let tc = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for (p, s) in packed.iter().zip(segments) {
            assert_eq!(decompress(p, s.len()).len(), s.len());
        }
        let td = t.elapsed().as_secs_f64();
        let out: usize = packed.iter().map(Vec::len).sum();
        println!(
            "| {name} | {:.2} | {:.0} | {:.0} | {:.1} |",
            total as f64 / out as f64,
            mib / tc,
            mib / td,
            tc * 1e3 / segments.len() as f64
        );
    }
    let t = Instant::now();
    for s in segments {
        std::hint::black_box(blake3::hash(s));
    }
    println!("\nBLAKE3: {:.0} MiB/s\n", mib / t.elapsed().as_secs_f64());
}

/// Parses `walship: timings: op=push a_ms=1.0 ...` into a map.
fn timings(stderr: &str) -> BTreeMap<String, f64> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("walship: timings: "))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn run_walship(
    data_dir: &Path,
    env: &[(&str, String)],
    args: &[&str],
) -> (Duration, BTreeMap<String, f64>) {
    let mut cmd = Command::new(walship_bin());
    cmd.current_dir(data_dir)
        .args(args)
        .env("WALSHIP_TIMINGS", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let t = Instant::now();
    let out = cmd.output().expect("run walship");
    let wall = t.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "walship {args:?} failed: {stderr}");
    (wall, timings(&stderr))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn process_figures(scratch: &Scratch, cluster: &Cluster, segments: &[String]) {
    let data_dir = cluster.data_dir();
    for compression in ["zstd", "lz4", "none"] {
        let archive = scratch.dir(&format!("archive-{compression}"));
        let cache = scratch.dir(&format!("cache-{compression}"));
        let env = vec![
            ("WALSHIP_PREFIX", format!("file://{}", archive.display())),
            ("WALSHIP_CACHE_DIR", cache.display().to_string()),
            ("WALSHIP_COMPRESSION", compression.to_string()),
        ];
        // The first run compiles the plugin into the cache; report it apart.
        let first = &segments[0];
        let (cold, _) = run_walship(data_dir, &env, &["wal-push", &format!("pg_wal/{first}")]);
        let mut rows: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for seg in &segments[1..] {
            let (wall, t) = run_walship(data_dir, &env, &["wal-push", &format!("pg_wal/{seg}")]);
            let wall_ms = wall.as_secs_f64() * 1e3;
            let work = t["read_compress_hash_ms"] + t["store_ms"];
            rows.entry("push wall (ms)").or_default().push(wall_ms);
            rows.entry("push start-up to first read (ms)")
                .or_default()
                .push(t["startup_ms"]);
            rows.entry("push open file (ms)")
                .or_default()
                .push(t["open_ms"]);
            rows.entry("push plugin load+open (ms)")
                .or_default()
                .push(t["plugin_open_ms"]);
            rows.entry("push identity check (ms)")
                .or_default()
                .push(t["identity_ms"]);
            rows.entry("push read+compress+hash (ms)")
                .or_default()
                .push(t["read_compress_hash_ms"]);
            rows.entry("push storage (ms)")
                .or_default()
                .push(t["store_ms"]);
            rows.entry("push everything else (ms)")
                .or_default()
                .push(wall_ms - work);
            rows.entry("push peak RSS (MiB)")
                .or_default()
                .push(t["peak_rss_kib"] / 1024.0);
            let dest = scratch.dir("fetched").join(seg);
            let (wall, t) = run_walship(
                data_dir,
                &env,
                &["wal-fetch", seg, &dest.display().to_string()],
            );
            rows.entry("fetch wall (ms)")
                .or_default()
                .push(wall.as_secs_f64() * 1e3);
            rows.entry("fetch peak RSS (MiB)")
                .or_default()
                .push(t["peak_rss_kib"] / 1024.0);
            let _ = std::fs::remove_file(&dest);
        }
        println!(
            "## one 16 MiB segment through the filesystem plugin, compression {compression} ({} runs, medians)",
            segments.len() - 1
        );
        println!(
            "first push (compiles and caches the plugin): {:.0} ms",
            cold.as_secs_f64() * 1e3
        );
        println!("| what | median | min | max |");
        println!("|---|---|---|---|");
        for (what, v) in rows {
            let min = v.iter().cloned().fold(f64::MAX, f64::min);
            let max = v.iter().cloned().fold(0.0, f64::max);
            println!("| {what} | {:.1} | {min:.1} | {max:.1} |", median(v));
        }
        println!();
    }
    let (wall, _) = {
        let t = Instant::now();
        for _ in 0..20 {
            Command::new(walship_bin())
                .arg("--version")
                .output()
                .unwrap();
        }
        (t.elapsed() / 20, ())
    };
    println!(
        "bare process start (`walship --version`): {:.1} ms",
        wall.as_secs_f64() * 1e3
    );
    println!(
        "\ntarget: 'push everything else' ≤ 5 ms, peak RSS ≤ 64 MiB; machine load average now {}",
        loadavg()
    );
}

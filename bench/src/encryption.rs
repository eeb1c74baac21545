//! `wal-push` CPU time per segment with and without encryption (issue 18:
//! the target is at most 10 % more), on the same real segments, for the
//! default compression (zstd) and for none (where encryption has the most
//! bytes to do). CPU time is walship's own (`cpu_ms` in `WALSHIP_TIMINGS`:
//! user + system of every thread of the `wal-push` process), so the
//! background pusher and other processes on the machine do not count.
//! Plain and encrypted pushes of each segment alternate, so drifting load
//! affects both alike.

use std::collections::BTreeMap;
use std::path::Path;

use walship_e2e::{Cluster, Scratch};

use crate::{median, run_walship};

pub fn figures(scratch: &Scratch, cluster: &Cluster, segments: &[String]) {
    let key = scratch.dir("keys").join("key");
    // A fixed test key (hex), private as walship requires.
    std::fs::write(
        &key,
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
    )
    .expect("write key");
    walship_e2e::scratch::set_mode(&key, 0o600);
    println!(
        "## wal-push CPU per 16 MiB segment, without and with encryption ({} segments, medians)",
        segments.len() - 1
    );
    println!(
        "| compression | CPU plain (ms) | CPU encrypted (ms) | more | wall plain (ms) | wall encrypted (ms) |"
    );
    println!("|---|---|---|---|---|---|");
    for compression in ["zstd", "none"] {
        let env_of = |encrypted: bool| {
            let name = format!("enc-{compression}-{encrypted}");
            let mut env = vec![
                (
                    "WALSHIP_PREFIX",
                    format!(
                        "file://{}",
                        scratch.dir(&format!("archive-{name}")).display()
                    ),
                ),
                (
                    "WALSHIP_CACHE_DIR",
                    scratch.dir(&format!("cache-{name}")).display().to_string(),
                ),
                ("WALSHIP_COMPRESSION", compression.to_string()),
                // One file per call: the background pusher would otherwise
                // take the next segments in another process.
                ("WALSHIP_UPLOAD_CONCURRENCY", "1".to_string()),
            ];
            if encrypted {
                env.push(("WALG_LIBSODIUM_KEY_PATH", key.display().to_string()));
                env.push(("WALG_LIBSODIUM_KEY_TRANSFORM", "hex".to_string()));
            }
            env
        };
        let (plain, encrypted) = (env_of(false), env_of(true));
        let data_dir = cluster.data_dir();
        let push = |env: &[(&str, String)], seg: &str| {
            run_walship(data_dir, env, &["wal-push", &format!("pg_wal/{seg}")])
        };
        // Warm-up: the first push compiles the plugin into the cache.
        push(&plain, &segments[0]);
        push(&encrypted, &segments[0]);
        let mut rows: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for (i, seg) in segments[1..].iter().enumerate() {
            let order: [(&str, &[(&str, String)]); 2] = if i % 2 == 0 {
                [("plain", &plain), ("encrypted", &encrypted)]
            } else {
                [("encrypted", &encrypted), ("plain", &plain)]
            };
            for (what, env) in order {
                let (wall, t) = push(env, seg);
                let (cpu, wall_ms) = (t["cpu_ms"], wall.as_secs_f64() * 1e3);
                rows.entry(if what == "plain" {
                    "cpu plain"
                } else {
                    "cpu enc"
                })
                .or_default()
                .push(cpu);
                rows.entry(if what == "plain" {
                    "wall plain"
                } else {
                    "wall enc"
                })
                .or_default()
                .push(wall_ms);
            }
        }
        let m = |k: &str| median(rows[k].clone());
        let (cp, ce) = (m("cpu plain"), m("cpu enc"));
        println!(
            "| {compression} | {cp:.1} | {ce:.1} | {:+.1} % | {:.1} | {:.1} |",
            (ce / cp - 1.0) * 100.0,
            m("wall plain"),
            m("wall enc")
        );
        check_encrypted(&encrypted[0].1);
    }
    println!("target: at most +10 % CPU with encryption\n");
}

/// The encrypted archive really is encrypted (byte 13 of each object).
fn check_encrypted(prefix: &str) {
    let dir = Path::new(prefix.trim_start_matches("file://")).join("wal");
    for entry in std::fs::read_dir(&dir).expect("wal/").flatten() {
        let bytes = std::fs::read(entry.path()).expect("object");
        assert_eq!(bytes[13], 1, "{} is not encrypted", entry.path().display());
    }
}

//! S3 figures, against s3s-fs on this machine (installed by
//! `.ci/install-test-tools`):
//!
//! 1. Archive throughput: 64 segments of real WAL wait in pg_wal (archiving
//!    held back by an empty archive_command), then PostgreSQL's archiver
//!    pushes them through `walship wal-push` into S3, one process per
//!    segment as in production. Timed from the switch of the last segment
//!    until pg_stat_archiver has it.
//! 2. One 16 MiB object through the S3 plugin (`walship st put` / `st get`,
//!    whole processes, plugin precompiled) against the same object through
//!    object_store's native S3 client in this process: the cost of the
//!    sandbox, the process and the plugin's HTTP path together, as a ratio.
//!
//! s3s-fs checks SigV4 and the payload's SHA-256 and writes plain files, so
//! the server's own cost is the same for both sides of the ratio.

use std::ffi::OsStr;
use std::process::Command;
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStoreExt, PutPayload};
use walship_e2e::emulators::{S3Access, S3sFs};
use walship_e2e::walship::walship_bin;
use walship_e2e::{Scratch, random_bytes};

use crate::throughput;

const OBJECT_BYTES: usize = 16 << 20;
const RUNS: usize = 7;

pub fn figures(scratch: &Scratch) {
    let s3 = S3sFs::start(scratch);
    throughput::print_header("S3 (s3s-fs)");
    throughput::archive_64_segments(
        scratch,
        "s3-archiver",
        "http",
        &s3.archive(scratch, "throughput"),
    );
    println!();
    plugin_against_native(scratch, &s3);
}

/// walship as root with exactly the given settings (the caller's shell
/// cannot leak AWS_* or WALSHIP_* into it); wall time.
fn walship<S: AsRef<OsStr>>(env: &[(String, String)], args: &[S]) -> Duration {
    let mut cmd = Command::new(walship_bin());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args);
    let t = Instant::now();
    let out = cmd.output().expect("run walship");
    let wall = t.elapsed();
    assert!(
        out.status.success(),
        "walship {:?} failed: {}",
        args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    wall
}

fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn plugin_against_native(scratch: &Scratch, s3: &S3sFs) {
    let access = s3.access();
    let data = random_bytes(OBJECT_BYTES, 0x9e37_79b9_7f4a_7c15);
    let dir = scratch.dir("s3-object");
    let file = dir.join("object.bin");
    std::fs::write(&file, &data).expect("write object file");
    let back = dir.join("back.bin");

    let mut env = access.env();
    env.push((
        "WALSHIP_PREFIX".into(),
        format!("s3://{}/plugin", S3sFs::BUCKET),
    ));
    env.push((
        "WALSHIP_CACHE_DIR".into(),
        scratch.dir("s3-cache").display().to_string(),
    ));
    // Warm the precompiled-plugin cache.
    walship(&env, &["st", "ls"]);
    let (mut put, mut get, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..RUNS {
        let key = format!("object-{run}");
        put.push(walship(
            &env,
            &[
                OsStr::new("st"),
                "put".as_ref(),
                key.as_ref(),
                file.as_ref(),
            ],
        ));
        get.push(walship(
            &env,
            &[
                OsStr::new("st"),
                "get".as_ref(),
                key.as_ref(),
                back.as_ref(),
            ],
        ));
        assert!(
            std::fs::read(&back).expect("read back") == data,
            "st get returned other bytes"
        );
        bare.push(walship(&env, &["st", "ls", "no-such-key"]));
    }

    let (native_put, native_get) = native(&access, &data);
    let (put, get, bare) = (median_ms(put), median_ms(get), median_ms(bare));
    let (native_put, native_get) = (median_ms(native_put), median_ms(native_get));
    println!(
        "## one 16 MiB object: S3 plugin (whole `walship st` process) vs native object_store ({RUNS} runs, medians)"
    );
    println!("| what | plugin ms | native ms | plugin / native |");
    println!("|---|---|---|---|");
    println!(
        "| put | {put:.1} | {native_put:.1} | {:.2} |",
        put / native_put
    );
    println!(
        "| get | {get:.1} | {native_get:.1} | {:.2} |",
        get / native_get
    );
    println!(
        "| put, less a bare `st ls` ({bare:.1} ms: process, plugin load, one request) | {:.1} | {native_put:.1} | {:.2} |",
        put - bare,
        (put - bare) / native_put
    );
    println!(
        "| get, less a bare `st ls` | {:.1} | {native_get:.1} | {:.2} |\n",
        get - bare,
        (get - bare) / native_get
    );
}

/// The same object through object_store's S3 client (payload signed, as
/// the plugin does), in this process on a current-thread runtime.
fn native(access: &S3Access, data: &[u8]) -> (Vec<Duration>, Vec<Duration>) {
    // reqwest builds its TLS config even for plain http; ring, as the host.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store = AmazonS3Builder::new()
        .with_endpoint(&access.endpoint)
        .with_allow_http(true)
        .with_bucket_name(S3sFs::BUCKET)
        .with_access_key_id(&access.access_key_id)
        .with_secret_access_key(&access.secret_access_key)
        .with_region(&access.region)
        .build()
        .expect("object_store S3 client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let payload = PutPayload::from(data.to_vec());
    runtime.block_on(async {
        let (mut put, mut get) = (Vec::new(), Vec::new());
        // One unmeasured round trip opens the connection, as the
        // plugin's numbers include no cold compile either.
        let warm = object_store::path::Path::from("native/warm-up");
        store.put(&warm, payload.clone()).await.expect("native put");
        for run in 0..RUNS {
            let path = object_store::path::Path::from(format!("native/object-{run}"));
            let t = Instant::now();
            store.put(&path, payload.clone()).await.expect("native put");
            put.push(t.elapsed());
            let t = Instant::now();
            let got = store
                .get(&path)
                .await
                .expect("native get")
                .bytes()
                .await
                .expect("native get body");
            get.push(t.elapsed());
            assert!(got[..] == data[..], "object_store returned other bytes");
        }
        (put, get)
    })
}

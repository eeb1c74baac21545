//! Unpredictable names for temp files and multipart uploads.
//!
//! Several plugin instances (and processes) write into the same directories at
//! once, so names must not collide across them; a per-process counter would.

/// `words` random 64-bit words as lowercase hex (16 characters each).
pub fn hex(words: usize) -> String {
    (0..words).map(|_| format!("{:016x}", u64())).collect()
}

/// wasi:random's secure generator; the sandbox grants it to every plugin.
#[cfg(target_arch = "wasm32")]
fn u64() -> u64 {
    wasip2::random::random::get_random_u64()
}

/// Native builds only run the unit tests; std's randomly keyed hasher is
/// unpredictable enough for temp names there.
#[cfg(not(target_arch = "wasm32"))]
fn u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}

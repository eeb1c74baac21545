//! `allocate`, `spin`, `panic` and `hoard-resources`: attacks on the host's
//! resource limits. None of them should return; the host's memory cap,
//! deadline, resource table cap and trap handling stop them.

use std::hint::black_box;

use crate::walship::storage::types::Error;

const CHUNK: usize = 16 << 20;
const PAGE: usize = 4096;

/// Allocates and touches memory in 16 MiB chunks until `target_mib` are held.
///
/// Allocation failure aborts (a trap), as the host's cap should cause. Note
/// that wasm32 linear memory cannot reach 4 GiB (the default target) even
/// without a cap, so a host test should also check that the trap came from
/// its own limit, or pass a smaller target in the put's data.
pub fn allocate(target_mib: u64) -> Error {
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut total_mib = 0;
    while total_mib < target_mib {
        let mut chunk = vec![0u8; CHUNK];
        // Fresh pages read as zero without being written; write each one so
        // the host really has to back it.
        for offset in (0..CHUNK).step_by(PAGE) {
            chunk[offset] = 1;
        }
        held.push(black_box(chunk));
        total_mib += (CHUNK >> 20) as u64;
    }
    black_box(&held);
    Error::Other(format!("SANDBOX ESCAPED: allocated {total_mib} MiB"))
}

/// Busy-loops forever; `black_box` keeps the optimiser from proving the loop
/// side-effect free and deleting it.
pub fn spin() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

pub fn panic() -> ! {
    panic!("hostile plugin: panicking on purpose (this should reach the host as a trap)");
}

/// How many host resources the attack holds before it calls itself a
/// success: far more than any store needs at once.
const HOARD: usize = 50_000;

/// Creates empty HTTP header sets and keeps them: each lives in the host's
/// memory, outside the plugin's own memory cap. A bounded host traps the
/// plugin long before `HOARD`.
pub fn hoard_resources() -> Error {
    let mut held = Vec::new();
    while held.len() < HOARD {
        held.push(wasip2::http::types::Fields::new());
    }
    Error::Other(format!(
        "SANDBOX ESCAPED: holding {} header sets in host memory",
        held.len()
    ))
}

//! `allocate`, `spin` and `panic`: attacks on the host's resource limits.
//! None of them should return; the host's memory cap, deadline and trap
//! handling stop them.

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

//! `read-outside`: reading what lies beyond the one granted directory.

use std::fs;
use std::path::Path;

use crate::probes::Probes;

pub fn read_outside(root: &Path) -> Probes {
    let mut probes = Probes::default();
    probes.check("read /etc/passwd", fs::read("/etc/passwd"), |data| {
        format!("read {} bytes", data.len())
    });
    // Both spellings: through the preopen (`..` must not climb out of it) and
    // as a plain absolute path (no preopen may hold it).
    let dotdot = root.join("..");
    probes.check(
        &format!("list {}", dotdot.display()),
        count_entries(&dotdot),
        |n| format!("saw {n} entries"),
    );
    if let Some(parent) = root.parent() {
        probes.check(
            &format!("list {}", parent.display()),
            count_entries(parent),
            |n| format!("saw {n} entries"),
        );
    }
    probes.check(
        "read /proc/self/environ",
        fs::read("/proc/self/environ"),
        |data| format!("read {} bytes", data.len()),
    );
    let names: Vec<String> = std::env::vars_os()
        .map(|(name, _)| name.to_string_lossy().into_owned())
        .collect();
    if names.is_empty() {
        probes.held("environment: no variables visible".to_string());
    } else {
        probes.escaped(format!(
            "environment: {} variables visible ({})",
            names.len(),
            names.join(", ")
        ));
    }
    probes
}

fn count_entries(dir: &Path) -> std::io::Result<usize> {
    Ok(fs::read_dir(dir)?.count())
}

//! `plant-symlink` and `through-extra`: widening a directory grant.
//!
//! A plugin may write into its granted directory, symlinks included. The
//! attack plants `esc -> <target>` there in one run (the put's data, by
//! default enough `..` to reach `/`), and in the next asks (through its
//! `HOSTILE_EXTRA_DIR` setting, which `plan` turns into a second grant) for
//! `<root>/esc`: a host that checks the grant as a string and opens it
//! following symlinks hands over whatever the link points at. The same extra
//! grant can also name walship's own state (its cache, its plugin directory,
//! its settings file), which no plugin may be given.

use std::fs;
use std::path::Path;

use wasip2::filesystem::preopens;

use crate::probes::Probes;

/// The name of the symlink planted in the root, and where it points unless
/// told otherwise: enough `..` to reach `/` from any depth.
pub const LINK_NAME: &str = "esc";
pub const DEFAULT_TARGET: &str = "../../../../../../../../../../../../../../../..";

/// Plants `<root>/esc -> target`. Not an escape by itself: the test checks
/// on disk that the link is there, then runs `through-extra`.
pub fn plant_symlink(root: &Path, target: &str) -> Result<String, String> {
    let root_text = root.to_str().ok_or("root is not UTF-8")?;
    let (dir, _) = preopens::get_directories()
        .into_iter()
        .find(|(_, guest_path)| guest_path == root_text)
        .ok_or_else(|| format!("{root_text} is not among the preopened directories"))?;
    match dir.symlink_at(target, LINK_NAME) {
        Ok(()) => Ok(format!("planted {root_text}/{LINK_NAME} -> {target}")),
        Err(code) => Err(format!("cannot plant the symlink: {code:?}")),
    }
}

/// Uses the extra directory the host granted: reads `file` in it (relative;
/// by default `etc/passwd`, there if the grant is really `/`), and writes
/// into it whatever it is (walship's cache, say).
pub fn through_extra(extra: Option<&Path>, file: &str) -> Probes {
    let mut probes = Probes::default();
    let Some(extra) = extra else {
        probes.held("no extra directory was configured".to_string());
        return probes;
    };
    let file = if file.is_empty() { "etc/passwd" } else { file };
    probes.check(
        &format!("read {}/{file}", extra.display()),
        fs::read(extra.join(file)),
        |data| format!("read {:?}", String::from_utf8_lossy(&data)),
    );
    probes.check(
        &format!("write {}/hostile-was-here", extra.display()),
        fs::write(extra.join("hostile-was-here"), b"planted by a plugin"),
        |()| "wrote a file".to_string(),
    );
    probes
}

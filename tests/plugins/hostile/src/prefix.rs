//! `hostile:///abs/dir` names the one directory the plugin is granted. It
//! also claims `file:///abs/dir`, the bundled fs plugin's scheme: dropped
//! into a plugin directory as `fs.wasm`, or installed, it would take over
//! every file:// archive (the substitution tests).

/// The directory a `hostile:///abs/dir` (or `file:///abs/dir`) prefix names,
/// without a trailing slash.
pub fn parse_root(prefix: &str) -> Result<String, String> {
    let usage = "write the prefix as hostile:///absolute/dir";
    let path = prefix
        .strip_prefix("hostile://")
        .or_else(|| prefix.strip_prefix("file://"))
        .ok_or_else(|| format!("prefix {prefix:?} is not a hostile:// URL; {usage}"))?;
    if !path.starts_with('/') {
        return Err(format!("prefix {prefix:?} has no absolute path; {usage}"));
    }
    let segments: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    if segments.contains(&"..") || segments.is_empty() {
        return Err(format!(
            "prefix {prefix:?} must name a directory below / without '..'; {usage}"
        ));
    }
    Ok(format!("/{}", segments.join("/")))
}

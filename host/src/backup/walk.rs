//! What a base backup copies: the data directory and every tablespace,
//! minus what PostgreSQL says to leave out (the "Backing Up the Data
//! Directory" section of its docs, and the exclude lists in
//! src/backend/backup/basebackup.c that pg_basebackup follows).

use std::collections::BTreeSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::catalog::TablespaceRecord;

/// Directories whose contents are left out, the directories themselves kept
/// (PostgreSQL expects them): pg_wal is handled apart (its archive_status/
/// is kept too).
pub const EMPTY_DIRS: &[&str] = &[
    "pg_replslot",
    "pg_dynshmem",
    "pg_notify",
    "pg_serial",
    "pg_snapshots",
    "pg_stat_tmp",
    "pg_subtrans",
];

/// Top-level files left out: the running server's, and an old backup's
/// label (a restore writes the label of *this* backup).
const EXCLUDED_TOP_FILES: &[&str] = &[
    "postmaster.pid",
    "postmaster.opts",
    "backup_label",
    "tablespace_map",
];

/// Anywhere: temporary files and directories, and the relation cache init
/// files (rebuilt at start; stale ones would be wrong after recovery).
const EXCLUDED_PREFIXES: &[&str] = &["pgsql_tmp", "pg_internal.init"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    /// Size when the tree was walked; the copy re-reads the size at open.
    File {
        size: u64,
    },
    /// Contents read and checked before the volume is built (pg_control,
    /// which must be a consistent copy taken after every other file).
    Bytes(std::sync::Arc<[u8]>),
}

#[derive(Debug, Clone)]
pub struct Entry {
    /// The path inside the backup: relative to the data directory, with
    /// tablespaces under `pg_tblspc/<oid>/`.
    pub archive_path: String,
    pub source: PathBuf,
    pub kind: EntryKind,
    pub mode: u32,
    pub mtime: u64,
}

#[derive(Debug, Default)]
pub struct Tree {
    pub entries: Vec<Entry>,
    pub tablespaces: Vec<TablespaceRecord>,
    pub total_file_bytes: u64,
}

/// Walks `data_dir` and the tablespaces its `pg_tblspc/` links to.
pub fn walk(data_dir: &Path) -> io::Result<Tree> {
    let mut tree = Tree::default();
    walk_dir(data_dir, "", &mut tree)?;
    tree.total_file_bytes = tree
        .entries
        .iter()
        .map(|e| match &e.kind {
            EntryKind::File { size } => *size,
            EntryKind::Bytes(b) => b.len() as u64,
            EntryKind::Dir => 0,
        })
        .sum();
    Ok(tree)
}

fn push_dir(tree: &mut Tree, source: &Path, archive_path: String) {
    let (mode, mtime) = std::fs::metadata(source)
        .map(|m| (m.mode() & 0o7777, m.mtime().max(0) as u64))
        .unwrap_or((0o700, 0));
    tree.entries.push(Entry {
        archive_path,
        source: source.to_path_buf(),
        kind: EntryKind::Dir,
        mode,
        mtime,
    });
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

fn walk_dir(dir: &Path, rel: &str, tree: &mut Tree) -> io::Result<()> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect(),
        // Dropped while we walked (a database being dropped): nothing to copy.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
    };
    names.sort();
    let relation_dir = rel.starts_with("base/") || rel.starts_with("pg_tblspc/");
    let unlogged: BTreeSet<&str> = if relation_dir {
        names
            .iter()
            .filter_map(|n| n.strip_suffix("_init"))
            .filter(|n| is_digits(n))
            .collect()
    } else {
        BTreeSet::new()
    };
    for name in &names {
        let path = dir.join(name);
        let archive_path = join(rel, name);
        if EXCLUDED_PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        if rel.is_empty() {
            if EXCLUDED_TOP_FILES.contains(&name.as_str()) || name.ends_with(".tmp") {
                continue;
            }
            if name == "pg_wal" {
                push_dir(tree, &path, archive_path.clone());
                push_dir(
                    tree,
                    &path.join("archive_status"),
                    format!("{archive_path}/archive_status"),
                );
                continue;
            }
            if EMPTY_DIRS.contains(&name.as_str()) {
                push_dir(tree, &path, archive_path);
                continue;
            }
        }
        if rel == "pg_tblspc" {
            let link = std::fs::symlink_metadata(&path);
            if link.as_ref().is_ok_and(|m| m.file_type().is_symlink()) {
                let oid: u32 = name.parse().map_err(|_| {
                    io::Error::other(format!(
                        "{}: a link in pg_tblspc that is not named by a tablespace OID",
                        path.display()
                    ))
                })?;
                let location = std::fs::read_link(&path)?;
                let location = if location.is_absolute() {
                    location
                } else {
                    dir.join(location)
                };
                tree.tablespaces.push(TablespaceRecord {
                    oid,
                    location: location.display().to_string(),
                });
                walk_dir(&location, &archive_path, tree)?;
                continue;
            }
        }
        if relation_dir && skip_relation_file(name, &unlogged) {
            continue;
        }
        // Follows symlinks: a linked pg_wal or config file is copied as
        // what it points to.
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display())));
            }
        };
        if meta.is_dir() {
            push_dir(tree, &path, archive_path.clone());
            walk_dir(&path, &archive_path, tree)?;
        } else if meta.is_file() {
            tree.entries.push(Entry {
                archive_path,
                source: path,
                kind: EntryKind::File { size: meta.len() },
                mode: meta.mode() & 0o7777,
                mtime: meta.mtime().max(0) as u64,
            });
        }
        // Sockets, FIFOs and devices are no part of a cluster's state.
    }
    Ok(())
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Temporary relations (`t<backend>_<relfilenode>...`) and every fork but
/// `_init` of an unlogged relation (recovery resets them from the init fork).
fn skip_relation_file(name: &str, unlogged: &BTreeSet<&str>) -> bool {
    if let Some(rest) = name.strip_prefix('t')
        && let Some((backend, _)) = rest.split_once('_')
        && is_digits(backend)
    {
        return true;
    }
    let base = name
        .split_once('.')
        .map_or(name, |(b, seg)| if is_digits(seg) { b } else { name });
    let (node, fork) = base.split_once('_').unwrap_or((base, ""));
    is_digits(node) && fork != "init" && unlogged.contains(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn leaves_out_what_postgres_says_to_leave_out() {
        let root = std::env::temp_dir().join(format!("walship-walk-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let pg = root.join("data");
        let ts = root.join("ts");
        let files = [
            "PG_VERSION",
            "postgresql.conf",
            "postgresql.auto.conf.tmp",
            "postmaster.pid",
            "postmaster.opts",
            "backup_label",
            "tablespace_map",
            "global/pg_control",
            "global/pg_internal.init",
            "pg_wal/000000010000000000000001",
            "pg_wal/archive_status/000000010000000000000001.done",
            "pg_replslot/slot/state",
            "pg_stat_tmp/global.stat",
            "pg_subtrans/0000",
            "base/1/1259",
            "base/1/pg_internal.init",
            "base/1/16384",
            "base/1/16384_fsm",
            "base/1/16384.1",
            "base/1/16384_init",
            "base/1/t3_16390",
            "base/pgsql_tmp/pgsql_tmp123.0",
            "pg_xact/0000",
        ];
        for f in files {
            let p = pg.join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, f).unwrap();
        }
        fs::create_dir_all(ts.join("PG_15_202209061/5")).unwrap();
        fs::write(ts.join("PG_15_202209061/5/16500"), "ts data").unwrap();
        fs::create_dir_all(pg.join("pg_tblspc")).unwrap();
        std::os::unix::fs::symlink(&ts, pg.join("pg_tblspc/16499")).unwrap();

        let tree = walk(&pg).unwrap();
        let paths: Vec<(&str, bool)> = tree
            .entries
            .iter()
            .map(|e| (e.archive_path.as_str(), e.kind == EntryKind::Dir))
            .collect();
        let expected = [
            ("PG_VERSION", false),
            ("base", true),
            ("base/1", true),
            ("base/1/1259", false),
            ("base/1/16384_init", false),
            ("global", true),
            ("global/pg_control", false),
            ("pg_replslot", true),
            ("pg_stat_tmp", true),
            ("pg_subtrans", true),
            ("pg_tblspc", true),
            ("pg_tblspc/16499/PG_15_202209061", true),
            ("pg_tblspc/16499/PG_15_202209061/5", true),
            ("pg_tblspc/16499/PG_15_202209061/5/16500", false),
            ("pg_wal", true),
            ("pg_wal/archive_status", true),
            ("pg_xact", true),
            ("pg_xact/0000", false),
            ("postgresql.conf", false),
        ];
        assert_eq!(paths, expected);
        assert_eq!(
            tree.tablespaces,
            [TablespaceRecord {
                oid: 16499,
                location: ts.display().to_string()
            }]
        );
        fs::remove_dir_all(&root).unwrap();
    }
}

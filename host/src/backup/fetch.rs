//! Restoring a base backup into an empty directory: volumes downloaded in
//! parallel, each verified (stored length and BLAKE3, tar length and BLAKE3)
//! while it is unpacked, with safe paths only.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context as _, anyhow, bail};
use tokio::sync::mpsc;

use super::catalog::{BackupRecord, VolumeRecord};
use super::progress::Progress;
use super::volume;
use super::walk::EMPTY_DIRS;
use crate::storage::{ByteRange, Key, ObjectStore};

/// Bytes asked of the store per ranged read.
const RANGE: u64 = 8 << 20;
/// PostgreSQL's control file, relative to the data directory.
const CONTROL_FILE: &str = "global/pg_control";
/// Where the control file is restored until everything else is durable: a
/// directory without `global/pg_control` is one PostgreSQL refuses to
/// start, so an interrupted restore can never be taken for a complete one.
pub const CONTROL_FILE_PENDING: &str = "global/pg_control.walship-restore";

pub struct FetchOptions {
    pub target: PathBuf,
    /// `OLD=NEW` tablespace relocations, as pg_basebackup's.
    pub tablespace_mapping: Vec<(PathBuf, PathBuf)>,
    pub concurrency: usize,
    /// Restore unmapped tablespaces to the record's locations even as root.
    pub use_recorded_locations: bool,
    pub as_root: bool,
    /// Bandwidth limits (WALG_NETWORK_RATE_LIMIT, WALG_DISK_RATE_LIMIT).
    pub limits: crate::rate_limit::Limits,
    /// Decrypt the volumes of an encrypted backup (the keys its record was
    /// read with).
    pub keys: crate::crypto::Keys,
}

/// An absolute path with nothing to resolve: no `.` or `..` component, no
/// empty component, no trailing slash. A record names tablespace locations
/// and anyone who can write to the bucket can write a record: a location
/// is taken only as it is written.
pub fn is_clean_absolute(path: &str) -> bool {
    path.len() > 1
        && path.starts_with('/')
        && !path.ends_with('/')
        && path[1..]
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// Where each tablespace goes, by OID.
type Locations = BTreeMap<u32, PathBuf>;

/// Checks the target and the tablespace locations before anything is
/// downloaded: the data directory must be missing or empty, and so must
/// every tablespace location.
pub fn prepare(record: &BackupRecord, opts: &FetchOptions) -> anyhow::Result<Locations> {
    check_empty_or_missing(&opts.target, "the target directory")?;
    for (old, _) in &opts.tablespace_mapping {
        if !record
            .tablespaces
            .iter()
            .any(|t| Path::new(&t.location) == old.as_path())
        {
            bail!(
                "--tablespace-mapping {}: the backup has no tablespace there (it has: {})",
                old.display(),
                if record.tablespaces.is_empty() {
                    "none".to_string()
                } else {
                    record
                        .tablespaces
                        .iter()
                        .map(|t| t.location.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
        }
    }
    let mut locations = Locations::new();
    for t in &record.tablespaces {
        let mapped = opts
            .tablespace_mapping
            .iter()
            .find(|(old, _)| old.as_path() == Path::new(&t.location))
            .map(|(_, new)| new.clone());
        let location = match mapped {
            Some(new) => new,
            None => {
                if !is_clean_absolute(&t.location) {
                    bail!(
                        "the backup's record puts tablespace {} at {:?}, which is not an absolute, \
                         normalised path: refused (give --tablespace-mapping {}=NEW)",
                        t.oid,
                        t.location,
                        t.location
                    );
                }
                if opts.as_root && !opts.use_recorded_locations {
                    bail!(
                        "as root, tablespace {} would be restored to {}, a location taken from the \
                         backup's record: give --tablespace-mapping {}=NEW, or \
                         --use-recorded-tablespace-locations to use the recorded locations",
                        t.oid,
                        t.location,
                        t.location
                    );
                }
                eprintln!(
                    "walship: backup-fetch: tablespace {} goes to {} (the location recorded in the backup)",
                    t.oid, t.location
                );
                PathBuf::from(&t.location)
            }
        };
        let overlaps = |a: &Path, b: &Path| a.starts_with(b) || b.starts_with(a);
        if overlaps(&location, &opts.target) {
            bail!(
                "tablespace {} would go to {}, which overlaps the target directory {}",
                t.oid,
                location.display(),
                opts.target.display()
            );
        }
        if let Some((other, _)) = locations.iter().find(|(_, l)| overlaps(l, &location)) {
            bail!(
                "tablespaces {other} and {} would go to overlapping locations ({})",
                t.oid,
                location.display()
            );
        }
        check_empty_or_missing(&location, &format!("tablespace {}'s location", t.oid))?;
        locations.insert(t.oid, location);
    }
    Ok(locations)
}

fn check_empty_or_missing(dir: &Path, what: &str) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut rd) => {
            if rd.next().is_some() {
                bail!(
                    "{what} {} is not empty: backup-fetch restores only into a missing or empty directory",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow!("{what} {}: {e}", dir.display())),
    }
}

fn create_dir_0700(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Restores `record` into `opts.target`. Returns the files written.
pub async fn fetch<S: ObjectStore>(
    store: &mut S,
    record: &BackupRecord,
    opts: &FetchOptions,
    locations: &Locations,
) -> anyhow::Result<u64> {
    create_dir_0700(&opts.target)
        .with_context(|| format!("cannot create {}", opts.target.display()))?;
    for location in locations.values() {
        create_dir_0700(location)
            .with_context(|| format!("cannot create {}", location.display()))?;
    }
    let files = Arc::new(AtomicU64::new(0));
    let progress = Progress::start(
        format!("backup-fetch {}", record.name),
        record.original_bytes,
    );
    let result = download_volumes(store, record, opts, locations, &progress, &files).await;
    progress.finish().await;
    result?;
    finish_directory(record, &opts.target, locations)?;
    Ok(files.load(Ordering::Relaxed))
}

/// Makes everything written under `dir` durable (one `syncfs` of its file
/// system), as pg_basebackup syncs before it writes backup_label.
fn sync_file_system(dir: &Path) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
    // SAFETY: syncfs takes an open descriptor, which `f` holds until it drops.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("cannot sync the file system of {}", dir.display()));
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}

async fn download_volumes<S: ObjectStore>(
    store: &mut S,
    record: &BackupRecord,
    opts: &FetchOptions,
    locations: &Locations,
    progress: &Progress,
    files: &Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let volumes = &record.volumes;
    if volumes.is_empty() {
        return Ok(());
    }
    let lanes = opts.concurrency.clamp(1, volumes.len());
    let mut stores: Vec<S> = (0..lanes).map_while(|_| store.worker()).collect();
    let next = Cell::new(0usize);
    let failure: RefCell<Option<anyhow::Error>> = RefCell::new(None);
    let (next, failure) = (&next, &failure);
    let target = Arc::new(opts.target.clone());
    let locations = Arc::new(locations.clone());
    let lane = async |s: &mut S| {
        loop {
            let i = next.get();
            if i >= volumes.len() || failure.borrow().is_some() {
                return;
            }
            next.set(i + 1);
            if let Err(e) = fetch_volume(
                s,
                record,
                &opts.keys,
                &volumes[i],
                target.clone(),
                locations.clone(),
                progress.done.clone(),
                files.clone(),
                &opts.limits,
            )
            .await
            {
                failure.borrow_mut().get_or_insert(e);
            }
        }
    };
    if stores.is_empty() {
        lane(store).await;
    } else {
        futures::future::join_all(stores.iter_mut().map(lane)).await;
    }
    match failure.take() {
        Some(e) => Err(anyhow!(
            "{e:#}; {} is incomplete: remove its contents before trying again",
            opts.target.display()
        )),
        None => Ok(()),
    }
}

#[allow(clippy::too_many_arguments)] // one volume's job: where from, where to, what to count
async fn fetch_volume<S: ObjectStore>(
    store: &mut S,
    record: &BackupRecord,
    keys: &crate::crypto::Keys,
    v: &VolumeRecord,
    target: Arc<PathBuf>,
    locations: Arc<Locations>,
    progress: Arc<AtomicU64>,
    files: Arc<AtomicU64>,
    limits: &crate::rate_limit::Limits,
) -> anyhow::Result<()> {
    let key = Key::new(v.key.clone()).map_err(|e| anyhow!("{e}"))?;
    let disk = limits.disk.clone();
    let (tx, rx) = mpsc::channel::<Vec<u8>>(2);
    let format = volume::VolumeFormat {
        key: v.key.clone(),
        compression: record.compression,
        keys: keys.clone(),
    };
    let encrypted = record.encrypted;
    let expected = v.clone();
    let unpacker = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut stored = volume::Verifying::new(volume::AtMost::new(
            volume::ChannelReader::new(rx),
            expected.stored_len,
            "stored",
        ));
        let unpacked = {
            let decompressed = volume::AtMost::new(
                volume::decompressor(&format, encrypted, &mut stored)?,
                expected.original_len,
                "unpacked",
            );
            let mut tar_stream = volume::Verifying::new(decompressed);
            // Read to the end (tar stops at its end blocks) so the hashes
            // cover every byte.
            let drained = unpack(
                &mut tar_stream,
                &target,
                &locations,
                &progress,
                &files,
                disk,
            )
            .and_then(|()| {
                io::copy(&mut tar_stream, &mut io::sink())?;
                Ok(())
            });
            drained.map(|()| tar_stream.finish())
        };
        let damaged = |why: String| anyhow!("volume {} is damaged: {why}", expected.key);
        let (tar_len, tar_hash) = match unpacked {
            Ok(v) => v,
            Err(e) => {
                // Tell a damaged volume from a local problem (a full disk):
                // read what is left and check the stored bytes.
                let _ = io::copy(&mut stored, &mut io::sink());
                let (len, hash) = stored.finish();
                if len == expected.stored_len && hash.to_hex().as_str() == expected.stored_blake3 {
                    return Err(e.context(format!("restoring volume {}", expected.key)));
                }
                return Err(damaged(format!(
                    "its stored bytes do not match the record's length and BLAKE3 ({e:#})"
                )));
            }
        };
        let mut rest = Vec::new();
        let _ = stored.read_to_end(&mut rest);
        let (stored_len, stored_hash) = stored.finish();
        if stored_len != expected.stored_len {
            return Err(damaged(format!(
                "{stored_len} stored bytes, the record says {}",
                expected.stored_len
            )));
        }
        if stored_hash.to_hex().as_str() != expected.stored_blake3 {
            return Err(damaged(format!(
                "stored bytes hash to {}…, the record says {}…",
                &stored_hash.to_hex()[..16],
                &expected.stored_blake3[..16.min(expected.stored_blake3.len())]
            )));
        }
        if tar_len != expected.original_len
            || tar_hash.to_hex().as_str() != expected.original_blake3
        {
            return Err(damaged(format!(
                "unpacked {tar_len} bytes hashing to {}…, the record says {} bytes, {}…",
                &tar_hash.to_hex()[..16],
                expected.original_len,
                &expected.original_blake3[..16.min(expected.original_blake3.len())]
            )));
        }
        Ok(())
    });
    let downloaded: anyhow::Result<()> = async {
        let mut offset = 0u64;
        let ranged = store.info().features.ranged_get;
        let too_large = |size: u64| {
            anyhow!(
                "volume {key} is damaged: {size} bytes stored, its record says {}",
                v.stored_len
            )
        };
        if !ranged {
            // One get brings the whole object: look at its size first.
            let meta = store
                .head(&key)
                .await
                .map_err(|e| anyhow!("head {key}: {e}{}", crate::commands::storage_hint(&e)))?;
            if meta.size > v.stored_len {
                return Err(too_large(meta.size));
            }
        }
        loop {
            let range = ranged.then_some(ByteRange {
                offset,
                length: Some(RANGE),
            });
            let (meta, bytes) = store
                .get(&key, range)
                .await
                .map_err(|e| anyhow!("get {key}: {e}{}", crate::commands::storage_hint(&e)))?;
            if meta.size > v.stored_len {
                return Err(too_large(meta.size));
            }
            let n = bytes.len() as u64;
            if let Some(l) = &limits.network {
                l.take(n).await;
            }
            offset += n;
            if tx.send(bytes).await.is_err() {
                // The unpacker stopped: its error says why.
                return Ok(());
            }
            if !ranged || n == 0 || offset >= meta.size {
                return Ok(());
            }
        }
    }
    .await;
    drop(tx);
    let unpacked = unpacker.await?;
    // A failed download also starves the unpacker: its error is the cause.
    downloaded?;
    unpacked
}

/// Where an archive path goes: under the target, or under a tablespace's
/// location for `pg_tblspc/<oid>/...`. Anything but plain relative
/// components is refused.
fn destination(path: &Path, target: &Path, locations: &Locations) -> anyhow::Result<PathBuf> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::CurDir => {}
            _ => bail!("unsafe path {} in the backup", path.display()),
        }
    }
    if parts.is_empty() {
        bail!("empty path in the backup");
    }
    if parts.len() >= 2
        && parts[0] == "pg_tblspc"
        && let Some(loc) = parts[1]
            .to_str()
            .and_then(|o| o.parse::<u32>().ok())
            .and_then(|oid| locations.get(&oid))
    {
        let mut p = loc.clone();
        p.extend(&parts[2..]);
        return Ok(p);
    }
    let mut p = target.to_path_buf();
    p.extend(&parts);
    Ok(p)
}

fn unpack(
    tar_stream: &mut dyn Read,
    target: &Path,
    locations: &Locations,
    progress: &AtomicU64,
    files: &AtomicU64,
    disk: Option<crate::rate_limit::RateLimit>,
) -> anyhow::Result<()> {
    let mut archive = tar::Archive::new(tar_stream);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let dest = if path == Path::new(CONTROL_FILE) {
            target.join(CONTROL_FILE_PENDING)
        } else {
            destination(&path, target, locations)?
        };
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => {
                create_dir_0700(&dest)
                    .with_context(|| format!("cannot create {}", dest.display()))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = dest.parent() {
                    create_dir_0700(parent)
                        .with_context(|| format!("cannot create {}", parent.display()))?;
                }
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&dest)
                    .with_context(|| format!("cannot create {}", dest.display()))?;
                let n = io::copy(
                    &mut entry,
                    &mut crate::rate_limit::LimitedWrite {
                        inner: &mut file,
                        limit: disk.clone(),
                    },
                )
                .with_context(|| format!("writing {}", dest.display()))?;
                if let Ok(mtime) = entry.header().mtime() {
                    let _ = file.set_modified(
                        std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime),
                    );
                }
                progress.fetch_add(n, Ordering::Relaxed);
                files.fetch_add(1, Ordering::Relaxed);
            }
            // Long-name extensions are consumed by the tar reader; anything
            // else (links, devices) a walship volume never holds.
            other => bail!(
                "unexpected {other:?} entry {} in the backup: refused",
                path.display()
            ),
        }
    }
    Ok(())
}

/// What PostgreSQL needs beside the restored files: this backup's label and
/// tablespace map, the tablespace links, and the directories whose contents
/// a backup leaves out.
fn finish_directory(
    record: &BackupRecord,
    target: &Path,
    locations: &Locations,
) -> anyhow::Result<()> {
    let write = |name: &str, text: &str| -> anyhow::Result<()> {
        let path = target.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        io::Write::write_all(&mut f, text.as_bytes())
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", path.display()))
    };
    // Every restored file is durable before backup_label says what they
    // are, as pg_basebackup does.
    sync_file_system(target)?;
    for location in locations.values() {
        sync_file_system(location)?;
    }
    write("backup_label", &record.backup_label)?;
    if let Some(map) = &record.tablespace_map {
        write("tablespace_map", &remap_tablespace_map(map, locations))?;
    }
    for dir in EMPTY_DIRS
        .iter()
        .chain(&["pg_wal", "pg_wal/archive_status", "pg_tblspc"])
    {
        create_dir_0700(&target.join(dir))
            .with_context(|| format!("cannot create {}", target.join(dir).display()))?;
    }
    for (oid, location) in locations {
        let link = target.join("pg_tblspc").join(oid.to_string());
        let _ = std::fs::remove_dir(&link);
        std::os::unix::fs::symlink(location, &link)
            .with_context(|| format!("cannot link {} to {}", link.display(), location.display()))?;
    }
    // The directories and links above are durable before the control file
    // appears: the directory becomes startable only once it is complete (a
    // crash or a kill before this leaves one PostgreSQL refuses to start).
    sync_file_system(target)?;
    let pending = target.join(CONTROL_FILE_PENDING);
    if !pending.is_file() {
        bail!(
            "the backup holds no {CONTROL_FILE}: {} cannot be started",
            target.display()
        );
    }
    std::fs::rename(&pending, target.join(CONTROL_FILE)).with_context(|| {
        format!(
            "cannot put {} in place",
            target.join(CONTROL_FILE).display()
        )
    })?;
    sync_dir(&target.join("global"))?;
    sync_dir(target)?;
    Ok(())
}

/// tablespace_map lines are `<oid> <path>`; PostgreSQL recreates the
/// pg_tblspc links from it at recovery start, so relocated tablespaces must
/// be written with their new paths.
fn remap_tablespace_map(map: &str, locations: &Locations) -> String {
    let mut out = String::new();
    for line in map.lines() {
        match line.split_once(' ') {
            Some((oid, _))
                if oid
                    .parse::<u32>()
                    .ok()
                    .and_then(|o| locations.get(&o))
                    .is_some() =>
            {
                let loc = &locations[&oid.parse::<u32>().unwrap()];
                out.push_str(&format!("{oid} {}\n", loc.display()));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// When root restores for another user (the parent directory's or an
/// existing target's owner), the files become that user's, as PostgreSQL
/// refuses a data directory it does not own.
pub fn chown_to_owner(
    target: &Path,
    target_existed: bool,
    locations: &Locations,
) -> anyhow::Result<Option<u32>> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let reference = if target_existed {
        target.to_path_buf()
    } else {
        target
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"))
    };
    let meta = std::fs::metadata(&reference)?;
    if meta.uid() == 0 {
        return Ok(None);
    }
    let (uid, gid) = (meta.uid(), meta.gid());
    let mut stack: Vec<PathBuf> = vec![target.to_path_buf()];
    stack.extend(locations.values().cloned());
    while let Some(p) = stack.pop() {
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid))
            .with_context(|| format!("cannot chown {}", p.display()))?;
        let m = std::fs::symlink_metadata(&p)?;
        if m.is_dir() {
            for e in std::fs::read_dir(&p)? {
                stack.push(e?.path());
            }
        }
    }
    Ok(Some(uid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_target_or_a_tablespace() {
        let target = Path::new("/restore");
        let locations: Locations = [(16499, PathBuf::from("/srv/ts"))].into();
        let d = |p: &str| destination(Path::new(p), target, &locations);
        assert_eq!(d("base/1/1259").unwrap(), Path::new("/restore/base/1/1259"));
        assert_eq!(
            d("pg_tblspc/16499/PG_15_1/5/16500").unwrap(),
            Path::new("/srv/ts/PG_15_1/5/16500")
        );
        assert_eq!(
            d("pg_tblspc/1/x").unwrap(),
            Path::new("/restore/pg_tblspc/1/x")
        );
        for bad in ["../etc/passwd", "/etc/passwd", "base/../../x", ""] {
            assert!(d(bad).is_err(), "{bad:?}");
        }
    }

    fn options(
        target: &str,
        mapping: &[(&str, &str)],
        as_root: bool,
        recorded: bool,
    ) -> FetchOptions {
        FetchOptions {
            target: PathBuf::from(target),
            tablespace_mapping: mapping
                .iter()
                .map(|(o, n)| (PathBuf::from(o), PathBuf::from(n)))
                .collect(),
            concurrency: 1,
            use_recorded_locations: recorded,
            as_root,
            limits: Default::default(),
            keys: crate::crypto::Keys::none(),
        }
    }

    #[test]
    fn recorded_tablespace_locations_are_the_operators_decision() {
        use crate::backup::catalog::tests::sample_record;
        let scratch = std::env::temp_dir().join(format!("walship-ts-{}", std::process::id()));
        let target = scratch.join("data");
        let target = target.to_str().unwrap();
        let mut record = sample_record("b", "000000010000000000000004", "2026-12-02T00:00:00Z");
        let recorded = scratch.join("ts-recorded");
        record.tablespaces[0].location = recorded.display().to_string();

        // Not root: the recorded location is used (and printed).
        let locations = prepare(&record, &options(target, &[], false, false)).unwrap();
        assert_eq!(locations[&16390], recorded);
        // Root: only with a mapping or the explicit flag.
        let e = prepare(&record, &options(target, &[], true, false)).unwrap_err();
        assert!(
            e.to_string()
                .contains("--use-recorded-tablespace-locations"),
            "{e}"
        );
        prepare(&record, &options(target, &[], true, true)).unwrap();
        let mapped = scratch.join("elsewhere");
        let locations = prepare(
            &record,
            &options(
                target,
                &[(recorded.to_str().unwrap(), mapped.to_str().unwrap())],
                true,
                false,
            ),
        )
        .unwrap();
        assert_eq!(locations[&16390], mapped);

        // A record that points anywhere but a clean absolute path is refused.
        for bad in [
            "relative/ts",
            "/srv/../etc",
            "/srv/./ts",
            "/srv//ts",
            "/srv/ts/",
            "/",
        ] {
            record.tablespaces[0].location = bad.into();
            let e = prepare(&record, &options(target, &[], false, false)).unwrap_err();
            assert!(e.to_string().contains("normalised"), "{bad}: {e}");
        }
        // Nor may a tablespace land inside the data directory.
        record.tablespaces[0].location = format!("{target}/pg_tblspc/x");
        let e = prepare(&record, &options(target, &[], false, false)).unwrap_err();
        assert!(e.to_string().contains("overlaps"), "{e}");
    }

    #[test]
    fn tablespace_map_gets_the_new_locations() {
        let locations: Locations = [(16499, PathBuf::from("/new/ts"))].into();
        assert_eq!(
            remap_tablespace_map("16499 /old/ts\n16500 /other\n", &locations),
            "16499 /new/ts\n16500 /other\n"
        );
    }
}

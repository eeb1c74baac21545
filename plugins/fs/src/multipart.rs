//! Multipart uploads: parts are staged in `<root>/.walship-multipart/<id>/`
//! and concatenated into the object on completion, which then publishes it
//! exactly like a put.
//!
//! Staging lives under the root (not in a temp directory) so that parts sent
//! by several plugin instances, or processes, meet in one place, and so that
//! the final rename stays on one filesystem. The directory is reserved: it is
//! never listed and no key can name it.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::durable::{ensure_dir, publish_in_existing_dir, publish_new};
use crate::errors::{IoContext, from_io, is_missing};
use crate::host_log;
use crate::info::{MAX_PART_SIZE, MAX_PARTS};
use crate::keys::RESERVED_PREFIX;
use crate::random;
use crate::store::{FsStore, object_meta};
use crate::walship::storage::types::{Error, ObjectMeta, PartReceipt, PutMode, PutOptions};

/// Upload ids are this many random 64-bit words, in hex.
const ID_WORDS: usize = 2;
/// The file in an upload's staging directory that records its key.
const KEY_FILE: &str = "key";
/// Chunk size when concatenating parts: large, because each read and write
/// is a call out of the sandbox.
const COPY_CHUNK: usize = 1 << 20;

fn staging_root(root: &Path) -> PathBuf {
    root.join(format!("{RESERVED_PREFIX}multipart"))
}

fn part_file(number: u32) -> String {
    format!("part-{number:05}")
}

impl FsStore {
    pub fn start_multipart(&self, key: &str) -> Result<String, Error> {
        self.path_of(key)?;
        let base = staging_root(self.root());
        ensure_dir(self.root(), &base)
            .context(|| format!("start-multipart {key:?}: creating {}", base.display()))?;
        let (id, dir) = create_unique_dir(&base).context(|| {
            format!(
                "start-multipart {key:?}: creating a directory in {}",
                base.display()
            )
        })?;
        // Written plainly: the staging area need not survive a crash, since
        // completion checks every part and fsyncs the object it assembles.
        fs::write(dir.join(KEY_FILE), key)
            .context(|| format!("start-multipart {key:?}: writing {}", dir.display()))?;
        host_log::debug(&format!("multipart upload {id} started for {key:?}"));
        Ok(id)
    }

    pub fn put_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        data: &[u8],
    ) -> Result<PartReceipt, Error> {
        if !(1..=MAX_PARTS).contains(&number) {
            return Err(Error::Other(format!(
                "put-part {key:?}: part number {number} is outside 1..={MAX_PARTS}"
            )));
        }
        if data.len() as u64 > MAX_PART_SIZE {
            return Err(Error::Other(format!(
                "put-part {key:?}: part {number} has {} bytes; the limit is {MAX_PART_SIZE}",
                data.len()
            )));
        }
        let dir = self.upload_dir(key, upload_id)?;
        let name = format!("part {number} of multipart upload {upload_id} for {key:?}");
        // Temp file and rename, so that a retried part never leaves a torn
        // one; no directory creation, so that an upload aborted meanwhile is
        // not resurrected.
        publish_in_existing_dir(
            &name,
            &dir.join(part_file(number)),
            PutMode::Overwrite,
            |file| {
                file.write_all(data)
                    .context(|| format!("storing {name}: writing {} bytes", data.len()))
            },
        )?;
        Ok(PartReceipt {
            number,
            etag: part_file(number),
            size: data.len() as u64,
        })
    }

    pub fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[PartReceipt],
        options: &PutOptions,
    ) -> Result<ObjectMeta, Error> {
        let target = self.path_of(key)?;
        let dir = self.upload_dir(key, upload_id)?;
        let what = format!("complete-multipart {key:?} (upload {upload_id})");
        check_part_order(parts).map_err(|why| Error::Other(format!("{what}: {why}")))?;
        // Every part must be there, at the size its receipt says, before
        // anything is written.
        for part in parts {
            let path = dir.join(part_file(part.number));
            let size = match fs::metadata(&path) {
                Ok(metadata) => metadata.len(),
                Err(err) if is_missing(&err) => {
                    return Err(Error::Other(format!(
                        "{what}: part {} was never uploaded; upload it again",
                        part.number
                    )));
                }
                Err(err) => {
                    return Err(from_io(
                        &format!("{what}: stat of {}", path.display()),
                        &err,
                    ));
                }
            };
            if size != part.size {
                return Err(Error::Other(format!(
                    "{what}: part {} holds {size} bytes but its receipt says {}; upload it again",
                    part.number, part.size
                )));
            }
        }
        let name = format!("object {key:?}");
        publish_new(self.root(), &name, &target, options.mode, |out| {
            let mut chunk = vec![0; COPY_CHUNK];
            for part in parts {
                let path = dir.join(part_file(part.number));
                let mut file =
                    File::open(&path).context(|| format!("{what}: opening {}", path.display()))?;
                copy(&mut file, out, &mut chunk)
                    .context(|| format!("{what}: copying {} into the object", path.display()))?;
            }
            Ok(())
        })?;
        // The object is published; a staging directory left behind is
        // invisible and only costs space, so this must not fail the call.
        if let Err(err) = fs::remove_dir_all(&dir) {
            host_log::warn(&format!("{what}: removing {} failed: {err}", dir.display()));
        }
        let metadata =
            fs::metadata(&target).context(|| format!("{what}: stat of {}", target.display()))?;
        Ok(object_meta(key, &metadata))
    }

    pub fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), Error> {
        let dir = match self.upload_dir(key, upload_id) {
            Ok(dir) => dir,
            Err(Error::NotFound(_)) => return Ok(()),
            Err(err) => return Err(err),
        };
        match fs::remove_dir_all(&dir) {
            Err(err) if !is_missing(&err) => Err(from_io(
                &format!("abort-multipart {key:?}: removing {}", dir.display()),
                &err,
            )),
            _ => Ok(()),
        }
    }

    /// The staging directory of `upload_id`, which must have been started for
    /// `key`.
    fn upload_dir(&self, key: &str, upload_id: &str) -> Result<PathBuf, Error> {
        let unknown = || {
            Error::NotFound(format!(
                "multipart upload {upload_id:?} for {key:?} not found; it was completed, \
                 aborted or never started"
            ))
        };
        // Checked before it becomes a path: the id comes from the host.
        if !is_upload_id(upload_id) {
            return Err(unknown());
        }
        let dir = staging_root(self.root()).join(upload_id);
        let recorded = match fs::read_to_string(dir.join(KEY_FILE)) {
            Ok(recorded) => recorded,
            Err(err) if is_missing(&err) => return Err(unknown()),
            Err(err) => return Err(from_io(&format!("reading {}", dir.display()), &err)),
        };
        if recorded != key {
            return Err(Error::Other(format!(
                "multipart upload {upload_id:?} belongs to key {recorded:?}, not {key:?}"
            )));
        }
        Ok(dir)
    }
}

/// A new directory with a random name in `base`, and its name.
fn create_unique_dir(base: &Path) -> std::io::Result<(String, PathBuf)> {
    let mut attempts = 0;
    loop {
        let id = random::hex(ID_WORDS);
        let dir = base.join(&id);
        match fs::create_dir(&dir) {
            Ok(()) => return Ok((id, dir)),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && attempts < 8 => {
                attempts += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

fn is_upload_id(id: &str) -> bool {
    id.len() == ID_WORDS * 16 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Parts must be listed, as S3 requires, in strictly ascending order.
fn check_part_order(parts: &[PartReceipt]) -> Result<(), String> {
    if parts.is_empty() {
        return Err("no parts listed; an upload needs at least one".to_string());
    }
    match parts
        .windows(2)
        .find(|pair| pair[0].number >= pair[1].number)
    {
        Some(pair) => Err(format!(
            "parts must be listed in ascending order of number, but {} comes before {}",
            pair[0].number, pair[1].number
        )),
        None => Ok(()),
    }
}

fn copy(from: &mut File, to: &mut File, chunk: &mut [u8]) -> std::io::Result<()> {
    loop {
        match from.read(chunk)? {
            0 => return Ok(()),
            n => to.write_all(&chunk[..n])?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(number: u32) -> PartReceipt {
        PartReceipt {
            number,
            etag: part_file(number),
            size: 0,
        }
    }

    #[test]
    fn upload_ids_are_checked_before_use() {
        assert!(is_upload_id(&random::hex(ID_WORDS)));
        for bad in [
            "",
            "..",
            "../../etc",
            "0123",
            &"A".repeat(32),
            &"0".repeat(33),
        ] {
            assert!(!is_upload_id(bad), "{bad}");
        }
    }

    #[test]
    fn parts_must_ascend() {
        assert!(check_part_order(&[]).is_err());
        assert!(check_part_order(&[receipt(1)]).is_ok());
        assert!(check_part_order(&[receipt(1), receipt(3), receipt(7)]).is_ok());
        assert!(check_part_order(&[receipt(2), receipt(1)]).is_err());
        assert!(check_part_order(&[receipt(1), receipt(1)]).is_err());
    }

    #[test]
    fn staging_is_reserved() {
        let root = Path::new("/srv");
        let name = staging_root(root);
        assert!(crate::keys::is_reserved(
            name.file_name().unwrap().to_str().unwrap()
        ));
    }
}

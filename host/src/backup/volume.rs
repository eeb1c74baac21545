//! Volumes: tar streams, compressed as one zstd or lz4 frame (or not at
//! all), encrypted as one sealed stream when a key is set (crypto/stream.rs,
//! bound to the volume's storage key), cut into parts on the way to the
//! store. Both hashes (of the stored bytes and of the tar bytes) are
//! computed while streaming, so a volume is never held in memory whole;
//! memory per volume in flight is a few parts (and one 64 KiB chunk).

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use super::walk::{Entry, EntryKind};
use crate::crypto::{Keys, Opening, Sealing, StreamContext};
use crate::object_format::{Compression, ZSTD_LEVEL};
use crate::storage::{Key, ObjectStore, PartReceipt, PutOptions, StorageError};

/// What flows from the thread building a volume to the task uploading it.
/// `End` says the volume is complete: a channel that closes without it
/// means the producer failed, and the upload is aborted, never completed.
pub enum Msg {
    Part(Vec<u8>),
    End,
}

/// What a finished volume hashed to.
#[derive(Debug, Clone)]
pub struct VolumeSums {
    pub original_len: u64,
    pub original_blake3: blake3::Hash,
    pub stored_len: u64,
    pub stored_blake3: blake3::Hash,
}

pub fn extension(compression: Compression) -> &'static str {
    match compression {
        Compression::Zstd => "tar.zst",
        Compression::Lz4 => "tar.lz4",
        Compression::None => "tar",
    }
}

/// The producer's error when the upload side went away (it failed, and
/// its own error says why): a type, so the caller tells it from a real read
/// error without looking at the message.
#[derive(Debug)]
pub struct UploadStopped;

impl std::fmt::Display for UploadStopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the upload stopped")
    }
}

impl std::error::Error for UploadStopped {}

impl UploadStopped {
    /// As an `io::Error`, of a kind no file read produces, so it is still
    /// recognised after a layer rewrapped it with context.
    fn error() -> io::Error {
        io::Error::new(io::ErrorKind::BrokenPipe, UploadStopped)
    }

    /// Whether `e` is this.
    pub fn is(e: &io::Error) -> bool {
        e.kind() == io::ErrorKind::BrokenPipe
            || e.get_ref().is_some_and(|inner| inner.is::<UploadStopped>())
    }
}

/// Cuts the stored stream into parts of at least `part_size` bytes.
struct PartSink {
    buf: Vec<u8>,
    part_size: usize,
    tx: mpsc::Sender<Msg>,
    hasher: blake3::Hasher,
    len: u64,
}

impl PartSink {
    fn send(&mut self) -> io::Result<()> {
        let part = std::mem::replace(&mut self.buf, Vec::with_capacity(self.part_size));
        self.tx
            .blocking_send(Msg::Part(part))
            .map_err(|_| UploadStopped::error())
    }

    fn finish(mut self) -> io::Result<(u64, blake3::Hash)> {
        if !self.buf.is_empty() || self.len == 0 {
            self.send()?;
        }
        self.tx
            .blocking_send(Msg::End)
            .map_err(|_| UploadStopped::error())?;
        Ok((self.len, self.hasher.finalize()))
    }
}

impl Write for PartSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.hasher.update(data);
        self.len += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= self.part_size {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where compressed bytes go: straight into parts, or through encryption.
enum Sink {
    Plain(PartSink),
    Sealed(Sealing<PartSink>),
}

impl Sink {
    fn finish(self) -> io::Result<PartSink> {
        match self {
            Sink::Plain(s) => Ok(s),
            Sink::Sealed(s) => s.finish(),
        }
    }
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(s) => s.write(data),
            Sink::Sealed(s) => s.write(data),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Compressor {
    Zstd(zstd::stream::Encoder<'static, Sink>),
    Lz4(lz4_flex::frame::FrameEncoder<Sink>),
    None(Sink),
}

impl Compressor {
    fn new(compression: Compression, sink: Sink) -> io::Result<Self> {
        Ok(match compression {
            Compression::Zstd => {
                let mut e = zstd::stream::Encoder::new(sink, ZSTD_LEVEL)?;
                e.include_checksum(false)?;
                Compressor::Zstd(e)
            }
            Compression::Lz4 => Compressor::Lz4(lz4_flex::frame::FrameEncoder::new(sink)),
            Compression::None => Compressor::None(sink),
        })
    }

    fn finish(self) -> io::Result<PartSink> {
        match self {
            Compressor::Zstd(e) => e.finish()?.finish(),
            Compressor::Lz4(e) => e.finish().map_err(io::Error::other)?.finish(),
            Compressor::None(s) => s.finish(),
        }
    }
}

impl Write for Compressor {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Zstd(e) => e.write(data),
            Compressor::Lz4(e) => e.write(data),
            Compressor::None(s) => s.write(data),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Hashes and counts the tar bytes on their way into the compressor.
struct TarHashing {
    inner: Compressor,
    hasher: blake3::Hasher,
    len: u64,
}

impl Write for TarHashing {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.hasher.update(&data[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads a file up to the size it had at open: a file that shrinks while
/// read is padded with zeros (WAL replay rewrites those blocks, as with
/// pg_basebackup), one that grows is cut at that size.
struct SizedReader<'a> {
    file: crate::rate_limit::LimitedRead<std::fs::File>,
    remaining: u64,
    eof: bool,
    progress: &'a AtomicU64,
}

impl Read for SizedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.remaining as usize);
        let n = if self.eof {
            buf[..want].fill(0);
            want
        } else {
            match self.file.read(&mut buf[..want]) {
                Ok(0) => {
                    self.eof = true;
                    buf[..want].fill(0);
                    want
                }
                Ok(n) => n,
                Err(e) => return Err(e),
            }
        };
        self.remaining -= n as u64;
        self.progress.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// How a volume is stored: its storage key (an encrypted volume is bound
/// to it), compression, and the keys (none: in the clear).
pub struct VolumeFormat {
    pub key: String,
    pub compression: Compression,
    pub keys: Keys,
}

/// Builds one volume from `entries` and sends its stored bytes to `tx` in
/// parts. Runs on a blocking thread.
pub fn produce(
    entries: &[Entry],
    format: &VolumeFormat,
    part_size: usize,
    tx: mpsc::Sender<Msg>,
    progress: Arc<AtomicU64>,
    disk: Option<crate::rate_limit::RateLimit>,
) -> io::Result<VolumeSums> {
    let parts = PartSink {
        buf: Vec::with_capacity(part_size),
        part_size,
        tx,
        hasher: blake3::Hasher::new(),
        len: 0,
    };
    let sink = match format.keys.current() {
        None => Sink::Plain(parts),
        Some(key) => Sink::Sealed(Sealing::new(
            key,
            StreamContext::Volume { key: &format.key },
            parts,
        )?),
    };
    let mut builder = tar::Builder::new(TarHashing {
        inner: Compressor::new(format.compression, sink)?,
        hasher: blake3::Hasher::new(),
        len: 0,
    });
    builder.mode(tar::HeaderMode::Complete);
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(entry.mode);
        header.set_mtime(entry.mtime);
        match &entry.kind {
            EntryKind::Bytes(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, &entry.archive_path, &bytes[..])?;
                progress.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, &entry.archive_path, io::empty())?;
            }
            EntryKind::File { .. } => {
                let file = match std::fs::File::open(&entry.source) {
                    Ok(f) => f,
                    // Removed since the walk (a dropped table, a finished
                    // temporary file): WAL replay knows.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        return Err(io::Error::new(
                            e.kind(),
                            format!("{}: {e}", entry.source.display()),
                        ));
                    }
                };
                let size = file.metadata()?.len();
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(size);
                let reader = SizedReader {
                    file: crate::rate_limit::LimitedRead {
                        inner: file,
                        limit: disk.clone(),
                    },
                    remaining: size,
                    eof: false,
                    progress: &progress,
                };
                builder
                    .append_data(&mut header, &entry.archive_path, reader)
                    .map_err(|e| {
                        io::Error::new(e.kind(), format!("{}: {e}", entry.source.display()))
                    })?;
            }
        }
    }
    let hashing = builder.into_inner()?;
    let (original_len, original_blake3) = (hashing.len, hashing.hasher.finalize());
    let (stored_len, stored_blake3) = hashing.inner.finish()?.finish()?;
    Ok(VolumeSums {
        original_len,
        original_blake3,
        stored_len,
        stored_blake3,
    })
}

/// Uploads what `rx` yields under `key`, create-only: one put when it is a
/// single part, else a multipart upload, part after part. Completes only
/// after `End`; anything else aborts the upload. Returns the stored length.
///
/// Create-only, because a volume key belongs to the run that reserved the
/// backup's name: finding one there means either this run's own write
/// (a retried put whose first answer was lost) or a bug. The first has
/// exactly the length just sent; anything else is refused.
pub async fn upload<S: ObjectStore>(
    store: &mut S,
    key: &Key,
    rx: &mut mpsc::Receiver<Msg>,
    network: Option<&crate::rate_limit::RateLimit>,
) -> Result<(), StorageError> {
    let pace = async |n: usize| {
        if let Some(l) = network {
            l.take(n as u64).await;
        }
    };
    let producer_failed = || StorageError::Other("the volume could not be read".into());
    let options = PutOptions::create_only();
    let Some(Msg::Part(first)) = rx.recv().await else {
        return Err(producer_failed());
    };
    let second = match rx.recv().await {
        Some(Msg::End) => {
            pace(first.len()).await;
            return match store.put(key, &first, &options).await {
                Ok(_) => Ok(()),
                Err(StorageError::AlreadyExists(_)) => {
                    same_length_or_refuse(store, key, first.len() as u64).await
                }
                Err(e) => Err(e),
            };
        }
        Some(Msg::Part(p)) => p,
        None => return Err(producer_failed()),
    };
    let upload_id = store.start_multipart(key, &options).await?;
    let result: Result<(), StorageError> = async {
        let mut receipts: Vec<PartReceipt> = Vec::new();
        pace(first.len()).await;
        receipts.push(store.put_part(key, &upload_id, 1, &first).await?);
        drop(first);
        let mut next = Some(second);
        while let Some(part) = next.take() {
            let number = receipts.len() as u32 + 1;
            pace(part.len()).await;
            receipts.push(store.put_part(key, &upload_id, number, &part).await?);
            drop(part);
            match rx.recv().await {
                Some(Msg::Part(p)) => next = Some(p),
                Some(Msg::End) => break,
                None => return Err(producer_failed()),
            }
        }
        match store
            .complete_multipart(key, &upload_id, &receipts, &options)
            .await
        {
            Ok(_) => Ok(()),
            Err(StorageError::AlreadyExists(_)) => {
                let sent = receipts.iter().map(|r| r.size).sum();
                same_length_or_refuse(store, key, sent).await
            }
            Err(e) => Err(e),
        }
    }
    .await;
    if result.is_err()
        && let Err(e) = store.abort_multipart(key, &upload_id).await
    {
        eprintln!("walship: warning: could not abort upload {upload_id} of {key}: {e}");
    }
    result
}

async fn same_length_or_refuse<S: ObjectStore>(
    store: &mut S,
    key: &Key,
    sent: u64,
) -> Result<(), StorageError> {
    let meta = store.head(key).await?;
    if meta.size == sent {
        Ok(())
    } else {
        Err(StorageError::AlreadyExists(format!(
            "{key} exists with {} bytes, not the {sent} this run wrote: another writer is using this backup's name",
            meta.size
        )))
    }
}

/// Reads a downloaded volume: verifies both hashes and lengths while
/// decompressing, handing the tar stream to `consume`.
pub struct Verifying<R> {
    inner: R,
    hasher: blake3::Hasher,
    len: u64,
}

impl<R: Read> Verifying<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: blake3::Hasher::new(),
            len: 0,
        }
    }
    pub fn finish(self) -> (u64, blake3::Hash) {
        (self.len, self.hasher.finalize())
    }
}

impl<R: Read> Read for Verifying<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// A `Read` over parts arriving on a channel (from the download task).
pub struct ChannelReader {
    rx: mpsc::Receiver<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl ChannelReader {
    pub fn new(rx: mpsc::Receiver<Vec<u8>>) -> Self {
        Self {
            rx,
            current: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.current.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.current = chunk;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A reader that fails once its source yields more than `limit` bytes: a
/// volume is never longer than its record says, stored or unpacked, so a
/// few KiB that decompress to gigabytes (or a store that keeps sending)
/// stop at the recorded length.
pub struct AtMost<R> {
    inner: R,
    left: u64,
    what: &'static str,
}

impl<R: Read> AtMost<R> {
    pub fn new(inner: R, limit: u64, what: &'static str) -> Self {
        Self {
            inner,
            left: limit,
            what,
        }
    }
}

impl<R: Read> Read for AtMost<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte more than allowed is asked for, to notice an excess.
        let want = buf
            .len()
            .min(self.left.saturating_add(1).min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("more {} bytes than the record says", self.what),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The tar stream inside stored bytes: decrypted (if `encrypted`) and
/// decompressed as they are read. A volume that does not authenticate fails
/// the read; one encrypted under a key walship lacks fails at once.
pub fn decompressor<'a, R: Read + 'a>(
    format: &VolumeFormat,
    encrypted: bool,
    stored: R,
) -> io::Result<Box<dyn Read + 'a>> {
    let compressed: Box<dyn Read + 'a> = if encrypted {
        let context = StreamContext::Volume { key: &format.key };
        Box::new(Opening::new(&format.keys, context, stored).map_err(io::Error::other)?)
    } else {
        Box::new(stored)
    };
    Ok(match format.compression {
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(compressed)?),
        Compression::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(compressed)),
        Compression::None => compressed,
    })
}

#[cfg(test)]
mod at_most_tests {
    use super::*;

    #[test]
    fn a_producer_whose_upload_went_away_says_so_by_type() {
        let dir = std::env::temp_dir().join(format!("walship-stopped-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        std::fs::write(&file, vec![7u8; 3 << 20]).unwrap();
        let entries = vec![Entry {
            archive_path: "f".into(),
            source: file,
            kind: crate::backup::walk::EntryKind::File { size: 3 << 20 },
            mode: 0o600,
            mtime: 0,
        }];
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        for compression in [Compression::None, Compression::Zstd, Compression::Lz4] {
            let format = VolumeFormat {
                key: "backups/b/0001.tar".into(),
                compression,
                keys: crate::crypto::Keys::none(),
            };
            let e = produce(
                &entries,
                &format,
                1 << 16,
                tx.clone(),
                Arc::new(AtomicU64::new(0)),
                None,
            )
            .unwrap_err();
            assert!(UploadStopped::is(&e), "{compression:?}: {e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_stream_longer_than_recorded_fails_at_the_limit() {
        let mut ok = AtMost::new(&b"0123456789"[..], 10, "stored");
        let mut out = Vec::new();
        ok.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), 10);
        let mut long = AtMost::new(&b"0123456789x"[..], 10, "stored");
        let e = long.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("more stored bytes"), "{e}");
        // A compression bomb: 1 MiB of zeros in a few hundred bytes of
        // zstd, recorded as unpacking to 1 KiB, stops after 1 KiB.
        let bomb = zstd::encode_all(&vec![0u8; 1 << 20][..], 19).unwrap();
        assert!(bomb.len() < 1024);
        let format = VolumeFormat {
            key: "backups/b/0001.tar.zst".into(),
            compression: Compression::Zstd,
            keys: crate::crypto::Keys::none(),
        };
        let unpacked = decompressor(&format, false, &bomb[..]).unwrap();
        let mut limited = AtMost::new(unpacked, 1024, "unpacked");
        let mut got = Vec::new();
        assert!(limited.read_to_end(&mut got).is_err());
        assert!(got.len() <= 1024 + 16 * 1024, "read {} bytes", got.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::walk;

    /// A volume built by `produce` reads back, through the same readers
    /// `backup-fetch` uses, to the same tar bytes, with matching sums.
    #[test]
    fn volumes_round_trip_with_every_compression() {
        let dir = std::env::temp_dir().join(format!("walship-volume-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("base/1")).unwrap();
        std::fs::write(dir.join("base/1/1259"), crate_data(3_000_000)).unwrap();
        std::fs::write(dir.join("PG_VERSION"), "15\n").unwrap();
        let tree = walk::walk(&dir).unwrap();
        let marker = crate_data(3_000_000);
        let keyed = Keys::new(crate::crypto::tests::test_key(1), Vec::new());
        for (compression, keys) in [
            (Compression::Zstd, Keys::none()),
            (Compression::Lz4, Keys::none()),
            (Compression::None, Keys::none()),
            (Compression::Zstd, keyed.clone()),
            (Compression::None, keyed.clone()),
        ] {
            let encrypted = keys.is_set();
            let format = VolumeFormat {
                key: "backups/b/0001.tar".into(),
                compression,
                keys,
            };
            let (tx, mut rx) = mpsc::channel(1024);
            let progress = Arc::new(AtomicU64::new(0));
            let sums =
                produce(&tree.entries, &format, 1 << 20, tx, progress.clone(), None).unwrap();
            assert_eq!(progress.load(Ordering::Relaxed), 3_000_003);
            let mut stored = Vec::new();
            let mut parts = 0;
            while let Ok(m) = rx.try_recv() {
                match m {
                    Msg::Part(p) => {
                        parts += 1;
                        stored.extend(p)
                    }
                    Msg::End => break,
                }
            }
            assert!(compression != Compression::None || parts >= 3, "{parts}");
            assert_eq!(stored.len() as u64, sums.stored_len);
            assert_eq!(blake3::hash(&stored), sums.stored_blake3);
            if encrypted {
                // Not one 32-byte run of the file's bytes is stored.
                assert!(!stored.windows(32).any(|w| w == &marker[5000..5032]));
                // Under another volume's name it does not open.
                let moved = VolumeFormat {
                    key: "backups/b/0002.tar".into(),
                    compression,
                    keys: keyed.clone(),
                };
                let mut out = Vec::new();
                assert!(
                    decompressor(&moved, true, &stored[..])
                        .and_then(|mut r| r.read_to_end(&mut out))
                        .is_err()
                );
            }
            let mut verifying = Verifying::new(&stored[..]);
            let mut tar = Vec::new();
            decompressor(&format, encrypted, &mut verifying)
                .unwrap()
                .read_to_end(&mut tar)
                .unwrap();
            assert_eq!(verifying.finish(), (sums.stored_len, sums.stored_blake3));
            assert_eq!(tar.len() as u64, sums.original_len);
            assert_eq!(blake3::hash(&tar), sums.original_blake3);
            let mut archive = tar::Archive::new(&tar[..]);
            let names: Vec<String> = archive
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().display().to_string())
                .collect();
            assert_eq!(names, ["PG_VERSION", "base", "base/1", "base/1/1259"]);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn crate_data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i / 1000 % 251) as u8).collect()
    }
}

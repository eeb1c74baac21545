//! The sealed stream: how walship encrypts any number of bytes with bounded
//! memory. Layout and reasons in docs/archive-format.md ("Encryption").
//!
//! ```text
//! envelope (all integers little-endian)
//!   0   4  magic "WSEC"
//!   4   2  envelope length E, from offset 0 to the first chunk
//!   6   1  cipher: 1 = XChaCha20-Poly1305 in STREAM (nonce = 19-byte prefix
//!          || 32-bit big-endian chunk counter || last-chunk flag)
//!   7   1  chunk size as a power of two (16: 64 KiB of plaintext a chunk)
//!   8  19  nonce prefix, random
//!  27   1  number of key slots
//!  28   …  key slots: type (1 byte), body length (2 bytes), body
//!          type 1, a local key: fingerprint (8) | nonce (24) |
//!          the data key wrapped with XChaCha20-Poly1305 (32 + 16)
//!   …   …  up to E: reserved (readers skip it; it is authenticated)
//! chunks
//!   each: up to 64 KiB of ciphertext, then its 16-byte tag; the last
//!   (possibly empty) chunk carries the last-chunk flag in its nonce.
//! ```
//!
//! Every object gets a fresh random data key; only that key meets the
//! stream cipher, and the operator's key only wraps it (through a key
//! derived from it). That is what leaves room for envelope encryption with a
//! cloud KMS: a KMS-wrapped copy of the same data key is one more slot type,
//! and readers already skip slot types they do not know.
//!
//! Each chunk's associated data is a BLAKE3 digest of what the stream is
//! bound to: the envelope itself (so no slot can be swapped or edited), the
//! storage key the stream was written under (so the storage cannot answer
//! for one backup's file with another's), and, for an archived WAL object,
//! its 64-byte header. Reordered, dropped, repeated or truncated chunks fail
//! authentication: the counter and the last-chunk flag are in the nonce.

use std::io::{self, Read, Write};

use aead_stream::{NewStream, StreamBE32, StreamPrimitive};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use super::{Fingerprint, Keys, SecretKey};

pub const MAGIC: [u8; 4] = *b"WSEC";
pub const CIPHER_XCHACHA20_POLY1305_STREAM: u8 = 1;
/// 64 KiB of plaintext per chunk: the tag costs 0.02 %, and a reader holds
/// one chunk at a time.
pub const CHUNK_LOG2: u8 = 16;
const CHUNK: usize = 1 << CHUNK_LOG2;
/// What a reader accepts: a damaged envelope must not make it allocate.
const CHUNK_LOG2_RANGE: std::ops::RangeInclusive<u8> = 10..=24;
pub const TAG_LEN: usize = 16;
const PREFIX_LEN: usize = 19;
const FIXED_LEN: usize = 28;
const SLOT_LOCAL_KEY: u8 = 1;
const WRAPPED_LEN: usize = 32 + TAG_LEN;
const LOCAL_SLOT_BODY: usize = 8 + 24 + WRAPPED_LEN;
/// The envelope walship writes: one local-key slot.
pub const ENVELOPE_LEN: usize = FIXED_LEN + 3 + LOCAL_SLOT_BODY;

const AAD_CONTEXT: &str = "walship 2026-12 sealed stream associated data";
const SLOT_AAD: &[u8] = b"walship key slot 1";

type Stream = StreamBE32<XChaCha20Poly1305>;

/// What a stream is bound to. Not stored: the reader must name the same.
#[derive(Debug, Clone, Copy)]
pub enum StreamContext<'a> {
    /// An archived object (`wal/<name>`, a backup record, ...) and its
    /// 64-byte object header.
    Object { key: &'a str, header: &'a [u8] },
    /// A backup volume, by its storage key.
    Volume { key: &'a str },
}

/// Why a sealed stream does not open. Says which key is needed, never
/// anything of a key.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("it is not encrypted the way walship encrypts (no WSEC envelope)")]
    NotSealed,
    #[error("it is encrypted with cipher {0}, which this walship does not know: upgrade walship")]
    UnknownCipher(u8),
    #[error(
        "its data key is wrapped in a way this walship does not know (key slot type {0}): upgrade walship"
    )]
    UnknownSlot(u8),
    #[error("its encryption envelope is damaged: {0}")]
    Damaged(&'static str),
    #[error(
        "it is encrypted under key {needed} and no encryption key is set: set WALG_LIBSODIUM_KEY or WALG_LIBSODIUM_KEY_PATH"
    )]
    NoKey { needed: String },
    #[error(
        "it is encrypted under key {needed}, which is not among the keys set ({have}): set that key (older keys go in WALSHIP_DECRYPTION_KEY_PATHS)"
    )]
    WrongKey { needed: String, have: String },
    #[error(
        "it fails authentication (XChaCha20-Poly1305): it was altered, damaged or truncated, or is not the object stored under this name"
    )]
    Unauthentic,
    #[error("{0}")]
    Io(String),
}

impl OpenError {
    /// Whether reading the same bytes again could succeed: a key problem or
    /// a format this walship lacks never goes away by itself.
    pub fn may_be_transient(&self) -> bool {
        matches!(
            self,
            OpenError::Unauthentic | OpenError::Damaged(_) | OpenError::Io(_)
        )
    }
}

/// The bytes a stream of `plain_len` bytes is sealed into, envelope included.
pub fn sealed_len(plain_len: u64) -> u64 {
    let chunks = plain_len.div_ceil(CHUNK as u64).max(1);
    ENVELOPE_LEN as u64 + plain_len + chunks * TAG_LEN as u64
}

fn random<const N: usize>() -> io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| io::Error::other(format!("no randomness for a new data key: {e}")))?;
    Ok(bytes)
}

fn associated_data(context: &StreamContext<'_>, envelope: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(AAD_CONTEXT);
    let mut put = |part: &[u8]| {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    };
    match context {
        StreamContext::Object { key, header } => {
            put(b"object");
            put(key.as_bytes());
            put(header);
        }
        StreamContext::Volume { key } => {
            put(b"volume");
            put(key.as_bytes());
        }
    }
    put(envelope);
    *h.finalize().as_bytes()
}

fn stream_of(data_key: &[u8; 32], prefix: &[u8; PREFIX_LEN]) -> Stream {
    let aead = XChaCha20Poly1305::new(&(*data_key).into());
    Stream::from_aead(aead, &(*prefix).into())
}

fn wrapping_aead(key: &SecretKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&(*key.wrapping_key()).into())
}

/// A new envelope for `key`, and the stream it opens.
fn new_envelope(key: &SecretKey) -> io::Result<(Vec<u8>, Stream)> {
    let data_key = Zeroizing::new(random::<32>()?);
    let prefix = random::<PREFIX_LEN>()?;
    let wrap_nonce = random::<24>()?;
    let mut env = Vec::with_capacity(ENVELOPE_LEN);
    env.extend_from_slice(&MAGIC);
    env.extend_from_slice(&(ENVELOPE_LEN as u16).to_le_bytes());
    env.push(CIPHER_XCHACHA20_POLY1305_STREAM);
    env.push(CHUNK_LOG2);
    env.extend_from_slice(&prefix);
    env.push(1);
    env.push(SLOT_LOCAL_KEY);
    env.extend_from_slice(&(LOCAL_SLOT_BODY as u16).to_le_bytes());
    let fingerprint = key.fingerprint();
    let wrapped = wrapping_aead(key)
        .encrypt(
            &XNonce::from(wrap_nonce),
            Payload {
                msg: &data_key[..],
                aad: &slot_aad(&env[6..27], fingerprint),
            },
        )
        .map_err(|_| io::Error::other("wrapping a data key failed"))?;
    env.extend_from_slice(&fingerprint.0);
    env.extend_from_slice(&wrap_nonce);
    env.extend_from_slice(&wrapped);
    debug_assert_eq!(env.len(), ENVELOPE_LEN);
    Ok((env, stream_of(&data_key, &prefix)))
}

/// A wrapped data key belongs to its stream (cipher, chunk size, nonce
/// prefix: envelope bytes 6..27) and to its key. Not to the slot count:
/// a later walship may add slots beside it.
fn slot_aad(stream_params: &[u8], fingerprint: Fingerprint) -> Vec<u8> {
    [SLOT_AAD, stream_params, &fingerprint.0].concat()
}

/// The length an envelope declares, from its first 6 bytes.
fn declared_len(head: &[u8]) -> Result<usize, OpenError> {
    if head.len() < 6 || head[..4] != MAGIC {
        return Err(OpenError::NotSealed);
    }
    let len = usize::from(u16::from_le_bytes([head[4], head[5]]));
    if len < FIXED_LEN {
        return Err(OpenError::Damaged("shorter than its fixed part"));
    }
    Ok(len)
}

/// Parses an envelope and unwraps its data key with one of `keys`.
/// Returns the stream, the chunk size and the key used.
fn open_envelope(keys: &Keys, env: &[u8]) -> Result<(Stream, usize, Fingerprint), OpenError> {
    declared_len(env)?;
    if env[6] != CIPHER_XCHACHA20_POLY1305_STREAM {
        return Err(OpenError::UnknownCipher(env[6]));
    }
    if !CHUNK_LOG2_RANGE.contains(&env[7]) {
        return Err(OpenError::Damaged("impossible chunk size"));
    }
    let chunk = 1usize << env[7];
    let prefix: [u8; PREFIX_LEN] = env[8..27].try_into().expect("19 bytes");
    let slots = env[27];
    let mut at = FIXED_LEN;
    let mut needed = Vec::new();
    let mut unknown = None;
    for _ in 0..slots {
        let head = env
            .get(at..at + 3)
            .ok_or(OpenError::Damaged("a key slot runs past the envelope"))?;
        let kind = head[0];
        let len = usize::from(u16::from_le_bytes([head[1], head[2]]));
        let body = env
            .get(at + 3..at + 3 + len)
            .ok_or(OpenError::Damaged("a key slot runs past the envelope"))?;
        at += 3 + len;
        if kind != SLOT_LOCAL_KEY {
            unknown.get_or_insert(kind);
            continue;
        }
        if len != LOCAL_SLOT_BODY {
            return Err(OpenError::Damaged("a local key slot has the wrong length"));
        }
        let fingerprint = Fingerprint(body[..8].try_into().expect("8 bytes"));
        let Some(key) = keys.find(fingerprint) else {
            needed.push(fingerprint);
            continue;
        };
        let data_key = wrapping_aead(key)
            .decrypt(
                &XNonce::try_from(&body[8..32]).expect("24 bytes"),
                Payload {
                    msg: &body[32..],
                    aad: &slot_aad(&env[6..27], fingerprint),
                },
            )
            .map_err(|_| OpenError::Unauthentic)?;
        let data_key: Zeroizing<[u8; 32]> = Zeroizing::new(
            data_key[..]
                .try_into()
                .map_err(|_| OpenError::Damaged("a wrapped data key has the wrong length"))?,
        );
        return Ok((stream_of(&data_key, &prefix), chunk, fingerprint));
    }
    if let Some(first) = needed.first() {
        let needed = if needed.len() == 1 {
            first.to_string()
        } else {
            needed
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" or ")
        };
        return Err(if keys.is_set() {
            OpenError::WrongKey {
                needed,
                have: keys.describe(),
            }
        } else {
            OpenError::NoKey { needed }
        });
    }
    Err(match unknown {
        Some(kind) => OpenError::UnknownSlot(kind),
        None => OpenError::Damaged("no key slot"),
    })
}

/// An aead `Buffer` over the end of a Vec, from `start`: a chunk is
/// encrypted or decrypted where it lies in the output, tag appended or
/// dropped there, with no copy of its own.
struct Tail<'a> {
    vec: &'a mut Vec<u8>,
    start: usize,
}

impl AsRef<[u8]> for Tail<'_> {
    fn as_ref(&self) -> &[u8] {
        &self.vec[self.start..]
    }
}

impl AsMut<[u8]> for Tail<'_> {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.vec[self.start..]
    }
}

impl chacha20poly1305::aead::Buffer for Tail<'_> {
    fn extend_from_slice(&mut self, other: &[u8]) -> chacha20poly1305::aead::Result<()> {
        self.vec.extend_from_slice(other);
        Ok(())
    }
    fn truncate(&mut self, len: usize) {
        self.vec.truncate(self.start + len);
    }
}

/// Encrypts what is written to it into `inner`: the envelope at once, then
/// one chunk each time 64 KiB have gathered and more follows; `finish`
/// seals the last chunk. Memory: one chunk.
pub struct Sealing<W: Write> {
    inner: W,
    stream: Stream,
    aad: [u8; 32],
    buf: Vec<u8>,
    position: u32,
}

impl<W: Write> Sealing<W> {
    pub fn new(key: &SecretKey, context: StreamContext<'_>, mut inner: W) -> io::Result<Self> {
        let (envelope, stream) = new_envelope(key)?;
        inner.write_all(&envelope)?;
        Ok(Self {
            inner,
            stream,
            aad: associated_data(&context, &envelope),
            buf: Vec::with_capacity(CHUNK + TAG_LEN),
            position: 0,
        })
    }

    fn seal_chunk(&mut self, last: bool) -> io::Result<()> {
        if self.position == u32::MAX {
            return Err(io::Error::other("more than 2^32 chunks in one stream"));
        }
        self.stream
            .encrypt_in_place(self.position, last, &self.aad, &mut self.buf)
            .map_err(|_| io::Error::other("encryption failed"))?;
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        self.position += 1;
        Ok(())
    }

    /// Seals the last chunk and hands back the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.seal_chunk(true)?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Sealing<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut rest = data;
        while !rest.is_empty() {
            // A full chunk is sealed only once more data shows it is not
            // the last one.
            if self.buf.len() == CHUNK {
                self.seal_chunk(false)?;
            }
            let n = rest.len().min(CHUNK - self.buf.len());
            self.buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Seals `plain` (given in parts) into `out`, after what `out` holds.
pub fn seal_into(
    key: &SecretKey,
    context: StreamContext<'_>,
    parts: &[&[u8]],
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    out.reserve(sealed_len(total as u64) as usize);
    let mut sealing = Sealing::new(key, context, out)?;
    for p in parts {
        sealing.write_all(p)?;
    }
    sealing.finish()?;
    Ok(())
}

/// Opens a whole sealed stream held in memory. Returns the plaintext and
/// the key that opened it.
pub fn open_all(
    keys: &Keys,
    context: StreamContext<'_>,
    sealed: &[u8],
) -> Result<(Vec<u8>, Fingerprint), OpenError> {
    let env_len = declared_len(sealed)?;
    let env = sealed
        .get(..env_len)
        .ok_or(OpenError::Damaged("shorter than its envelope"))?;
    let (stream, chunk, fingerprint) = open_envelope(keys, env)?;
    let aad = associated_data(&context, env);
    let body = &sealed[env_len..];
    let mut out = Vec::with_capacity(body.len());
    let mut chunks = body.chunks(chunk + TAG_LEN).peekable();
    let mut position = 0u32;
    if body.is_empty() {
        return Err(OpenError::Unauthentic);
    }
    while let Some(ct) = chunks.next() {
        let last = chunks.peek().is_none();
        let start = out.len();
        out.extend_from_slice(ct);
        stream
            .decrypt_in_place(
                position,
                last,
                &aad,
                &mut Tail {
                    vec: &mut out,
                    start,
                },
            )
            .map_err(|_| OpenError::Unauthentic)?;
        position = position.checked_add(1).ok_or(OpenError::Unauthentic)?;
    }
    Ok((out, fingerprint))
}

/// Decrypts a sealed stream as it is read, one chunk at a time. A stream
/// that ends anywhere but after its last chunk fails to authenticate.
pub struct Opening<R: Read> {
    inner: R,
    stream: Stream,
    aad: [u8; 32],
    chunk: usize,
    position: u32,
    /// Ciphertext read ahead: a chunk is the last one only if nothing
    /// follows it.
    raw: Vec<u8>,
    plain: Vec<u8>,
    at: usize,
    done: bool,
}

impl<R: Read> Opening<R> {
    pub fn new(keys: &Keys, context: StreamContext<'_>, mut inner: R) -> Result<Self, OpenError> {
        let io_err = |e: io::Error| OpenError::Io(e.to_string());
        let mut head = [0u8; 6];
        read_full(&mut inner, &mut head).map_err(io_err)?;
        let len = declared_len(&head)?;
        let mut env = head.to_vec();
        env.resize(len, 0);
        read_full(&mut inner, &mut env[6..]).map_err(io_err)?;
        let (stream, chunk, _) = open_envelope(keys, &env)?;
        Ok(Self {
            inner,
            stream,
            aad: associated_data(&context, &env),
            chunk,
            position: 0,
            raw: Vec::with_capacity(chunk + TAG_LEN + 1),
            plain: Vec::with_capacity(chunk + TAG_LEN),
            at: 0,
            done: false,
        })
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        let want = self.chunk + TAG_LEN + 1;
        let mut eof = false;
        while self.raw.len() < want {
            let have = self.raw.len();
            self.raw.resize(want, 0);
            let read = self.inner.read(&mut self.raw[have..]);
            self.raw.truncate(have + *read.as_ref().unwrap_or(&0));
            match read {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let last = eof;
        let take = if last {
            self.raw.len()
        } else {
            self.chunk + TAG_LEN
        };
        let unauthentic = || io::Error::other(OpenError::Unauthentic);
        if take < TAG_LEN || (!last && self.position == u32::MAX) {
            return Err(unauthentic());
        }
        self.plain.clear();
        self.plain.extend_from_slice(&self.raw[..take]);
        self.raw.drain(..take);
        self.stream
            .decrypt_in_place(self.position, last, &self.aad, &mut self.plain)
            .map_err(|_| unauthentic())?;
        self.position = self.position.wrapping_add(1);
        self.at = 0;
        self.done = last;
        Ok(())
    }
}

impl<R: Read> Read for Opening<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = buf.len().min(self.plain.len() - self.at);
        buf[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// `read_exact`, with a short stream reported as the envelope's damage.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<()> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::other(OpenError::Damaged("the stream ends inside its envelope"))
        } else {
            e
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::tests::test_key;

    const CTX: StreamContext<'static> = StreamContext::Volume {
        key: "backups/b/0001.tar.zst",
    };

    fn keys(seed: u8) -> Keys {
        Keys::new(test_key(seed), Vec::new())
    }

    fn sealed(plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        seal_into(&test_key(1), CTX, &[plain], &mut out).unwrap();
        out
    }

    fn read_all(keys: &Keys, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let mut r = Opening::new(keys, CTX, sealed)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(|e| {
            e.get_ref()
                .and_then(|inner| inner.downcast_ref::<OpenError>())
                .cloned()
                .unwrap_or(OpenError::Io(e.to_string()))
        })?;
        Ok(out)
    }

    #[test]
    fn round_trips_at_every_chunk_boundary() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let s = sealed(&plain);
            assert_eq!(s.len() as u64, sealed_len(len as u64), "{len}");
            assert_eq!(
                open_all(&keys(1), CTX, &s).unwrap(),
                (plain.clone(), test_key(1).fingerprint())
            );
            assert_eq!(read_all(&keys(1), &s).unwrap(), plain, "{len}");
            // Not a byte of plaintext shows (for long enough inputs, a
            // 16-byte window of it would).
            if len >= 64 {
                assert!(!s.windows(16).any(|w| w == &plain[32..48]));
            }
        }
    }

    /// Truncation at a chunk boundary, a dropped or swapped chunk, a
    /// flipped bit anywhere: each fails, in memory and streaming.
    #[test]
    fn truncation_reordering_and_flips_are_refused() {
        let plain: Vec<u8> = (0..3 * CHUNK + 100).map(|i| (i / 7) as u8).collect();
        let s = sealed(&plain);
        let c = CHUNK + TAG_LEN;
        let body = &s[ENVELOPE_LEN..];
        let env = &s[..ENVELOPE_LEN];
        let at_boundary = [env, &body[..2 * c]].concat();
        let dropped = [env, &body[..c], &body[2 * c..]].concat();
        let swapped = [env, &body[c..2 * c], &body[..c], &body[2 * c..]].concat();
        let no_chunks = env.to_vec();
        let extended = [&s[..], &[0u8; 5][..]].concat();
        for (what, bad) in [
            ("truncated at a chunk boundary", at_boundary),
            ("a chunk dropped", dropped),
            ("two chunks swapped", swapped),
            ("every chunk dropped", no_chunks),
            ("bytes appended", extended),
            ("cut one byte short", s[..s.len() - 1].to_vec()),
        ] {
            assert_eq!(
                open_all(&keys(1), CTX, &bad).unwrap_err(),
                OpenError::Unauthentic,
                "{what}"
            );
            assert_eq!(
                read_all(&keys(1), &bad).unwrap_err(),
                OpenError::Unauthentic
            );
        }
        // Every bit of a small stream, envelope included.
        let small = sealed(b"backup_label: START WAL LOCATION 0/2000028");
        for bit in 0..small.len() * 8 {
            let mut bad = small.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(open_all(&keys(1), CTX, &bad).is_err(), "bit {bit}");
            assert!(read_all(&keys(1), &bad).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn a_stream_opens_only_where_it_was_sealed_and_with_its_key() {
        let s = sealed(b"hello");
        let other = StreamContext::Volume {
            key: "backups/b/0002.tar.zst",
        };
        assert_eq!(
            open_all(&keys(1), other, &s).unwrap_err(),
            OpenError::Unauthentic
        );
        let wrong = open_all(&keys(2), CTX, &s).unwrap_err();
        assert!(matches!(wrong, OpenError::WrongKey { .. }), "{wrong}");
        assert!(!wrong.may_be_transient());
        let msg = wrong.to_string();
        assert!(
            msg.contains(&test_key(1).fingerprint().to_string()),
            "{msg}"
        );
        assert!(
            msg.contains(&test_key(2).fingerprint().to_string()),
            "{msg}"
        );
        let none = open_all(&Keys::none(), CTX, &s).unwrap_err();
        assert!(matches!(none, OpenError::NoKey { .. }), "{none}");
        // Rotation: the old key among the decryption keys opens it.
        let rotated = Keys::new(test_key(2), vec![test_key(1)]);
        assert_eq!(open_all(&rotated, CTX, &s).unwrap().0, b"hello");
        assert_eq!(
            open_all(&keys(1), CTX, b"plain bytes").unwrap_err(),
            OpenError::NotSealed
        );
    }

    /// A slot type from a later walship (a KMS-wrapped data key) is skipped
    /// when a known slot follows, and named when none does.
    #[test]
    fn unknown_key_slots_are_skipped() {
        let s = sealed(b"hello");
        let mut env = s[..ENVELOPE_LEN].to_vec();
        // Insert a type-9 slot of 4 bytes in front of the local one.
        env.splice(FIXED_LEN..FIXED_LEN, [9u8, 4, 0, 1, 2, 3, 4]);
        env[27] = 2;
        let new_len = env.len() as u16;
        env[4..6].copy_from_slice(&new_len.to_le_bytes());
        // The chunk AAD covers the envelope, so re-seal the body under it:
        // decrypt with the old AAD, encrypt with the new.
        let (stream, _, _) = open_envelope(&keys(1), &env).unwrap();
        let mut body = s[ENVELOPE_LEN..].to_vec();
        stream
            .decrypt_in_place(
                0,
                true,
                &associated_data(&CTX, &s[..ENVELOPE_LEN]),
                &mut body,
            )
            .unwrap();
        stream
            .encrypt_in_place(0, true, &associated_data(&CTX, &env), &mut body)
            .unwrap();
        let resealed = [env.clone(), body].concat();
        assert_eq!(open_all(&keys(1), CTX, &resealed).unwrap().0, b"hello");
        // Only the unknown slot: an upgrade is needed.
        let mut only = env[..FIXED_LEN + 7].to_vec();
        only[27] = 1;
        let l = only.len() as u16;
        only[4..6].copy_from_slice(&l.to_le_bytes());
        assert_eq!(
            open_all(&keys(1), CTX, &only).unwrap_err(),
            OpenError::UnknownSlot(9)
        );
    }
}

//! The bytes of every archived file: a 64-byte self-describing header, then the
//! (possibly compressed, possibly encrypted) payload. Layout and rationale:
//! docs/archive-format.md.
//!
//! This module knows nothing of plugins, storage or PostgreSQL.
//!
//! | offset | size | field                                             |
//! |--------|------|---------------------------------------------------|
//! | 0      | 8    | magic `WALSHIP\0`                                  |
//! | 8      | 2    | format version (1), little-endian                 |
//! | 10     | 2    | header length (64)                                |
//! | 12     | 1    | compression: 0 none, 1 lz4 (block), 2 zstd        |
//! | 13     | 1    | encryption: 0 none, 1 sealed (crypto::stream)     |
//! | 14     | 2    | flags, must be 0                                  |
//! | 16     | 8    | original length                                   |
//! | 24     | 8    | payload length                                    |
//! | 32     | 32   | BLAKE3 of the original bytes (zeros if encrypted) |
//!
//! An encrypted object's payload is a sealed stream (crypto/stream.rs)
//! bound to the object's storage key and to this header, holding the
//! original's length and BLAKE3 (40 bytes) followed by the compressed
//! bytes. The hash is kept inside: in the clear it would let anyone who can
//! read the storage confirm a guess at a small file's content.

use std::fmt;

use crate::crypto::{self, Fingerprint, Keys, OpenError, StreamContext};

pub const MAGIC: [u8; 8] = *b"WALSHIP\0";
pub const FORMAT_VERSION: u16 = 1;
pub const HEADER_LEN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Lz4,
    Zstd,
}

impl Compression {
    fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Lz4 => 1,
            Compression::Zstd => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Compression::None),
            1 => Some(Compression::Lz4),
            2 => Some(Compression::Zstd),
            _ => None,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        })
    }
}

/// zstd level 1: on pgbench WAL it compresses several times better than lz4
/// at a speed that keeps a 16 MiB segment well under the storage round trip
/// (figures in docs/object-format.md, from `cargo xtask bench`).
pub const ZSTD_LEVEL: i32 = 1;

/// The content identity of an archived file. Two files are "identical" exactly
/// when their lengths and BLAKE3 hashes are equal, whatever compression each
/// copy was stored with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentId {
    pub length: u64,
    pub blake3: [u8; 32],
}

impl ContentId {
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            length: bytes.len() as u64,
            blake3: *blake3::hash(bytes).as_bytes(),
        }
    }

    pub fn short_hex(&self) -> String {
        self.blake3[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The decoded fixed-size header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub compression: Compression,
    pub encrypted: bool,
    pub original_len: u64,
    pub payload_len: u64,
    /// BLAKE3 of the original bytes; `None` in an encrypted object, where
    /// it is inside the ciphertext.
    pub blake3: Option<[u8; 32]>,
}

impl Header {
    /// What the header alone says the content is (`None` if encrypted).
    pub fn content(&self) -> Option<ContentId> {
        Some(ContentId {
            length: self.original_len,
            blake3: self.blake3?,
        })
    }
}

/// Where an object is stored and the keys walship runs with: an encrypted
/// object is bound to its storage key (`wal/<name>`, `backups/<name>.json`),
/// so the storage cannot hand one object out as another. With no key set,
/// objects are written in the clear.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    pub at: &'a str,
    pub keys: &'a Keys,
}

/// A verified object's content, and the key that decrypted it.
#[derive(Debug)]
pub struct Decoded {
    pub bytes: Vec<u8>,
    pub content: ContentId,
    pub key: Option<Fingerprint>,
}

/// Length (8) and BLAKE3 (32) of the original, first in an encrypted payload.
const INNER_ID_LEN: usize = 40;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("not a walship object (bad magic): the prefix may hold another tool's files")]
    BadMagic,
    #[error(
        "object format version {0} is newer than this walship understands (1): upgrade walship"
    )]
    UnsupportedVersion(u16),
    #[error("object header is damaged: {0}")]
    DamagedHeader(&'static str),
    #[error(
        "object is encrypted with method {0}, which this walship does not know: upgrade walship"
    )]
    UnknownEncryption(u8),
    #[error("{0}")]
    Crypto(#[from] OpenError),
    #[error(
        "it is not encrypted, but an encryption key is set: walship did not write it with this archive's key, so it is refused"
    )]
    NotEncrypted,
    #[error(
        "object is truncated or has trailing bytes: header says {expected} payload bytes, found {found}"
    )]
    PayloadLength { expected: u64, found: u64 },
    #[error("object payload does not decompress ({compression}): {why}")]
    Decompress {
        compression: Compression,
        why: String,
    },
    #[error(
        "checksum mismatch: content hashes to {actual}…, header says {expected}… (the stored object is corrupt)"
    )]
    ChecksumMismatch { expected: String, actual: String },
    #[error(
        "object claims to hold {claimed} bytes, more than the {limit} this object can hold; refusing to unpack it (damaged, or a decompression bomb)"
    )]
    TooLarge { claimed: u64, limit: u64 },
}

impl FormatError {
    /// Whether reading the object again could help (a byte flipped in
    /// transit). A missing or wrong key, or a format this walship lacks,
    /// is the same on every read.
    pub fn may_be_transient(&self) -> bool {
        match self {
            FormatError::Crypto(e) => e.may_be_transient(),
            FormatError::NotEncrypted
            | FormatError::UnknownEncryption(_)
            | FormatError::UnsupportedVersion(_) => false,
            _ => true,
        }
    }
}

/// The most any object decodes to: the largest WAL segment PostgreSQL
/// allows (1 GiB). Callers that know better (the cluster's segment size)
/// pass their own bound to `decode_at_most`.
pub const MAX_DECODED: u64 = 1 << 30;

/// Encodes `original` as a complete object: header + payload, encrypted
/// when `stored` has a key.
///
/// Compressed payloads are produced into their own buffer and copied behind
/// the header: they are small, and pre-sizing one buffer to the compressor's
/// worst case would touch (and so commit) far more memory than they need.
pub fn encode(
    original: &[u8],
    compression: Compression,
    stored: Stored<'_>,
) -> std::io::Result<(Vec<u8>, Header)> {
    let content = ContentId::of(original);
    let payload: std::borrow::Cow<'_, [u8]> = match compression {
        Compression::None => original.into(),
        Compression::Lz4 => lz4_flex::block::compress(original).into(),
        Compression::Zstd => zstd::bulk::compress(original, ZSTD_LEVEL)
            .expect("zstd compression of an in-memory buffer cannot fail")
            .into(),
    };
    if stored.keys.is_set() {
        return seal(&payload, compression, content, stored);
    }
    let header = plain_header(compression, payload.len() as u64, content);
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&encode_header(&header));
    out.extend_from_slice(&payload);
    Ok((out, header))
}

fn plain_header(compression: Compression, payload_len: u64, content: ContentId) -> Header {
    Header {
        compression,
        encrypted: false,
        original_len: content.length,
        payload_len,
        blake3: Some(content.blake3),
    }
}

/// An encrypted object: the header (lengths in the clear, no hash), then
/// the sealed stream of the original's id and the compressed payload.
fn seal(
    payload: &[u8],
    compression: Compression,
    content: ContentId,
    stored: Stored<'_>,
) -> std::io::Result<(Vec<u8>, Header)> {
    let key = stored.keys.current().expect("sealing needs a key");
    let plain_len = (INNER_ID_LEN + payload.len()) as u64;
    let header = Header {
        compression,
        encrypted: true,
        original_len: content.length,
        payload_len: crypto::stream::sealed_len(plain_len),
        blake3: None,
    };
    let header_bytes = encode_header(&header);
    let mut out = Vec::with_capacity(HEADER_LEN + header.payload_len as usize);
    out.extend_from_slice(&header_bytes);
    let mut inner_id = [0u8; INNER_ID_LEN];
    inner_id[..8].copy_from_slice(&content.length.to_le_bytes());
    inner_id[8..].copy_from_slice(&content.blake3);
    crypto::stream::seal_into(
        key,
        StreamContext::Object {
            key: stored.at,
            header: &header_bytes,
        },
        &[&inner_id, payload],
        &mut out,
    )?;
    debug_assert_eq!(out.len() as u64, HEADER_LEN as u64 + header.payload_len);
    Ok((out, header))
}

/// An object encoded from a file, with what the caller needs to check the
/// file without keeping it.
#[derive(Debug)]
pub struct Encoded {
    pub object: Vec<u8>,
    /// What the original is (also when the header does not say it).
    pub content: ContentId,
    /// The first bytes of the original (up to `LEADING_LEN`): enough for a
    /// WAL page header.
    pub leading: Vec<u8>,
}

pub const LEADING_LEN: usize = 64;
const READ_CHUNK: usize = 1 << 20;

/// Encodes what `source` yields (`size_hint` bytes expected) without holding
/// the original in memory when compressing with zstd: it is read in 1 MiB
/// chunks, each hashed and fed to the compressor. A 16 MiB segment then
/// touches about 1 MiB of fresh memory instead of 16 MiB plus the output,
/// which matters for a process started once per segment (see bench/).
/// lz4's block format needs the whole input; `none` reads straight into the
/// object. Encryption, when `stored` has a key, seals the compressed bytes.
pub fn encode_from(
    mut source: impl std::io::Read,
    size_hint: u64,
    compression: Compression,
    stored: Stored<'_>,
) -> std::io::Result<Encoded> {
    let leading_of = |b: &[u8]| b[..b.len().min(LEADING_LEN)].to_vec();
    let (object, content, leading) = match compression {
        Compression::Lz4 => {
            let mut original = Vec::with_capacity(size_hint as usize);
            source.read_to_end(&mut original)?;
            let (object, header) = encode(
                &original,
                compression,
                Stored {
                    keys: &Keys::none(),
                    ..stored
                },
            )?;
            let content = header.content().expect("a plain header has its hash");
            (object, content, leading_of(&original))
        }
        Compression::None => {
            let mut object = Vec::with_capacity(HEADER_LEN + size_hint as usize);
            object.resize(HEADER_LEN, 0);
            source.read_to_end(&mut object)?;
            let original = &object[HEADER_LEN..];
            let content = ContentId::of(original);
            let leading = leading_of(original);
            (object, content, leading)
        }
        Compression::Zstd => {
            use std::io::Write;
            let mut encoder = zstd::stream::Encoder::new(vec![0u8; HEADER_LEN], ZSTD_LEVEL)?;
            encoder.include_contentsize(false)?;
            let mut hasher = blake3::Hasher::new();
            let mut buf = vec![0u8; READ_CHUNK];
            let mut length = 0u64;
            let mut leading = Vec::new();
            loop {
                let n = match source.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                let chunk = &buf[..n];
                if leading.len() < LEADING_LEN {
                    leading
                        .extend_from_slice(&chunk[..chunk.len().min(LEADING_LEN - leading.len())]);
                }
                hasher.update(chunk);
                encoder.write_all(chunk)?;
                length += n as u64;
            }
            let content = ContentId {
                length,
                blake3: *hasher.finalize().as_bytes(),
            };
            (encoder.finish()?, content, leading)
        }
    };
    // `object` is the payload behind HEADER_LEN placeholder bytes.
    let object = if stored.keys.is_set() {
        seal(&object[HEADER_LEN..], compression, content, stored)?.0
    } else {
        let mut object = object;
        let header = plain_header(compression, (object.len() - HEADER_LEN) as u64, content);
        object[..HEADER_LEN].copy_from_slice(&encode_header(&header));
        object
    };
    Ok(Encoded {
        object,
        content,
        leading,
    })
}

pub fn encode_header(h: &Header) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[0..8].copy_from_slice(&MAGIC);
    b[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    b[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
    b[12] = h.compression.code();
    b[13] = u8::from(h.encrypted);
    b[16..24].copy_from_slice(&h.original_len.to_le_bytes());
    b[24..32].copy_from_slice(&h.payload_len.to_le_bytes());
    if let Some(hash) = &h.blake3 {
        b[32..64].copy_from_slice(hash);
    }
    b
}

/// Decodes and checks the header (the first 64 bytes of an object). Every
/// field is validated, so a flipped bit anywhere in it is caught here, by
/// the checksum, or (encrypted) by authentication.
pub fn decode_header(bytes: &[u8]) -> Result<Header, FormatError> {
    if bytes.len() < HEADER_LEN {
        return Err(if bytes.len() >= 8 && bytes[0..8] != MAGIC {
            FormatError::BadMagic
        } else {
            FormatError::DamagedHeader("shorter than 64 bytes")
        });
    }
    if bytes[0..8] != MAGIC {
        return Err(FormatError::BadMagic);
    }
    let u16_at = |o: usize| u16::from_le_bytes(bytes[o..o + 2].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(bytes[o..o + 8].try_into().unwrap());
    let version = u16_at(8);
    if version != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion(version));
    }
    if usize::from(u16_at(10)) != HEADER_LEN {
        return Err(FormatError::DamagedHeader("unexpected header length"));
    }
    let compression = Compression::from_code(bytes[12])
        .ok_or(FormatError::DamagedHeader("unknown compression code"))?;
    let encrypted = match bytes[13] {
        0 => false,
        1 => true,
        other => return Err(FormatError::UnknownEncryption(other)),
    };
    if u16_at(14) != 0 {
        return Err(FormatError::DamagedHeader("reserved flags are set"));
    }
    let original_len = u64_at(16);
    let payload_len = u64_at(24);
    let blake3: [u8; 32] = bytes[32..64].try_into().unwrap();
    if encrypted {
        if blake3 != [0u8; 32] {
            return Err(FormatError::DamagedHeader(
                "an encrypted object's header carries a hash",
            ));
        }
    } else if compression == Compression::None && payload_len != original_len {
        return Err(FormatError::DamagedHeader(
            "uncompressed payload length differs from original length",
        ));
    }
    Ok(Header {
        compression,
        encrypted,
        original_len,
        payload_len,
        blake3: (!encrypted).then_some(blake3),
    })
}

/// Decodes a complete object, verifying length, checksum and (encrypted)
/// authenticity. Returns the original bytes only if they are exactly what
/// was stored. Takes the object by value so an uncompressed payload is
/// reused, not copied.
pub fn decode(object: Vec<u8>, stored: Stored<'_>) -> Result<Vec<u8>, FormatError> {
    decode_at_most(object, MAX_DECODED, stored).map(|d| d.bytes)
}

/// `decode`, for an object known to hold at most `limit` bytes (a WAL
/// segment of the cluster's segment size). The header's claim is checked
/// before anything is allocated, and decompression writes into a buffer of
/// exactly the claimed size, failing rather than growing: a few KiB of
/// compressed zeros cannot make walship allocate gigabytes.
///
/// With a key set, an object in the clear is refused: anyone who can write
/// to the storage could have put it there, and only encrypted objects prove
/// they were written by a holder of the key.
pub fn decode_at_most(
    mut object: Vec<u8>,
    limit: u64,
    stored: Stored<'_>,
) -> Result<Decoded, FormatError> {
    let header = decode_header(&object)?;
    if header.original_len > limit {
        return Err(FormatError::TooLarge {
            claimed: header.original_len,
            limit,
        });
    }
    let found = (object.len() - HEADER_LEN) as u64;
    if found != header.payload_len {
        return Err(FormatError::PayloadLength {
            expected: header.payload_len,
            found,
        });
    }
    let (mut payload, expected, key) = match (header.encrypted, stored.keys.is_set()) {
        (false, true) => return Err(FormatError::NotEncrypted),
        (false, false) => {
            object.drain(..HEADER_LEN);
            let expected = header.content().expect("a plain header has its hash");
            (object, expected, None)
        }
        (true, _) => {
            let (mut plain, key) = crypto::stream::open_all(
                stored.keys,
                StreamContext::Object {
                    key: stored.at,
                    header: &object[..HEADER_LEN],
                },
                &object[HEADER_LEN..],
            )?;
            drop(object);
            if plain.len() < INNER_ID_LEN {
                return Err(FormatError::DamagedHeader("encrypted payload too short"));
            }
            let expected = ContentId {
                length: u64::from_le_bytes(plain[..8].try_into().unwrap()),
                blake3: plain[8..INNER_ID_LEN].try_into().unwrap(),
            };
            if expected.length != header.original_len {
                return Err(FormatError::DamagedHeader(
                    "original length differs inside and outside the encryption",
                ));
            }
            plain.drain(..INNER_ID_LEN);
            (plain, expected, Some(key))
        }
    };
    let original_len = usize::try_from(header.original_len)
        .map_err(|_| FormatError::DamagedHeader("original length does not fit in memory"))?;
    let decompress_err = |why: String| FormatError::Decompress {
        compression: header.compression,
        why,
    };
    let original = match header.compression {
        Compression::None => {
            if payload.len() != original_len {
                return Err(FormatError::DamagedHeader(
                    "uncompressed payload length differs from original length",
                ));
            }
            std::mem::take(&mut payload)
        }
        Compression::Lz4 => lz4_flex::block::decompress(&payload, original_len)
            .map_err(|e| decompress_err(e.to_string()))?,
        Compression::Zstd => zstd::bulk::decompress(&payload, original_len)
            .map_err(|e| decompress_err(e.to_string()))?,
    };
    let actual = ContentId::of(&original);
    if actual != expected {
        return Err(FormatError::ChecksumMismatch {
            expected: expected.short_hex(),
            actual: actual.short_hex(),
        });
    }
    Ok(Decoded {
        bytes: original,
        content: actual,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::tests::test_key;

    const AT: &str = "wal/000000010000000000000003";

    fn plain() -> Stored<'static> {
        static NONE: std::sync::LazyLock<Keys> = std::sync::LazyLock::new(Keys::none);
        Stored {
            at: AT,
            keys: &NONE,
        }
    }

    fn keyed(keys: &Keys) -> Stored<'_> {
        Stored { at: AT, keys }
    }

    fn decode(object: Vec<u8>) -> Result<Vec<u8>, FormatError> {
        super::decode(object, plain())
    }

    fn encode(original: &[u8], c: Compression) -> (Vec<u8>, Header) {
        super::encode(original, c, plain()).unwrap()
    }

    fn sample() -> Vec<u8> {
        (0..100_000u32)
            .flat_map(|i| (i / 7).to_le_bytes())
            .collect()
    }

    /// Zeros compress about 30 000 to one: `claimed` bytes of them as a
    /// zstd object of a few dozen KiB whose header tells the truth.
    fn zero_bomb(claimed: u64) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..claimed >> 20 {
            encoder.write_all(&chunk).unwrap();
        }
        let payload = encoder.finish().unwrap();
        let mut hasher = blake3::Hasher::new();
        for _ in 0..claimed >> 20 {
            hasher.update(&chunk);
        }
        let header = Header {
            compression: Compression::Zstd,
            encrypted: false,
            payload_len: payload.len() as u64,
            original_len: claimed,
            blake3: Some(*hasher.finalize().as_bytes()),
        };
        let mut object = encode_header(&header).to_vec();
        object.extend_from_slice(&payload);
        object
    }

    #[test]
    fn a_compression_bomb_is_refused_before_it_is_unpacked() {
        // 2 GiB: more than any WAL segment, less than the old 4 GiB cap.
        let bomb = zero_bomb(2 << 30);
        assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
        let err = decode(bomb).expect_err("unpacked a 2 GiB bomb");
        assert!(matches!(err, FormatError::TooLarge { .. }), "{err}");
        // Within the default bound, but more than this cluster's segments.
        let err = decode_at_most(zero_bomb(64 << 20), 16 << 20, plain()).unwrap_err();
        assert!(err.to_string().contains("decompression bomb"), "{err}");
        assert_eq!(
            decode_at_most(zero_bomb(16 << 20), 16 << 20, plain())
                .unwrap()
                .bytes
                .len(),
            16 << 20
        );
    }

    #[test]
    fn round_trips_with_every_compression() {
        let data = sample();
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let (obj, header) = encode(&data, c);
            assert_eq!(decode_header(&obj).unwrap(), header);
            assert_eq!(decode(obj).unwrap(), data, "{c}");
        }
        assert_eq!(
            decode(encode(&[], Compression::Zstd).0).unwrap(),
            Vec::<u8>::new()
        );
    }

    #[test]
    fn encoding_from_a_reader_matches_encoding_a_buffer() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i / 1000 % 7) as u8).collect();
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let e = encode_from(&data[..], data.len() as u64, c, plain()).unwrap();
            let header = decode_header(&e.object).unwrap();
            assert_eq!(header.content(), Some(ContentId::of(&data)), "{c}");
            assert_eq!(e.content, ContentId::of(&data), "{c}");
            assert_eq!(e.leading, data[..LEADING_LEN]);
            assert_eq!(decode(e.object).unwrap(), data, "{c}");
        }
        let empty = encode_from(&[][..], 0, Compression::Zstd, plain()).unwrap();
        assert_eq!(decode(empty.object).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn identical_content_has_one_id_whatever_the_compression() {
        let data = sample();
        let a = encode(&data, Compression::Lz4).1.content();
        let b = encode(&data, Compression::Zstd).1.content();
        assert_eq!(a, b);
    }

    /// A flipped bit anywhere never yields wrong content. In the header and
    /// in uncompressed payloads every flip is an error; inside a compressed
    /// payload a flip may decode to the very same bytes (an lz4 match offset
    /// pointing at an identical earlier run), which is harmless.
    #[test]
    fn no_single_bit_flip_yields_wrong_content() {
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let (obj, _) = encode(&data, c);
            for bit in 0..obj.len() * 8 {
                let mut bad = obj.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                match decode(bad) {
                    Err(_) => {}
                    Ok(decoded) => {
                        assert!(
                            bit / 8 >= HEADER_LEN && c != Compression::None,
                            "{c}: flip of bit {bit} went unnoticed"
                        );
                        assert_eq!(
                            decoded, data,
                            "{c}: flip of bit {bit} produced wrong content"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn truncation_and_foreign_bytes_are_refused() {
        let (obj, _) = encode(&sample(), Compression::Zstd);
        assert!(matches!(
            decode(obj[..obj.len() - 1].to_vec()),
            Err(FormatError::PayloadLength { .. })
        ));
        let foreign =
            b"\x28\xb5\x2f\xfd plain zstd from another tool.....................................";
        assert_eq!(decode(foreign.to_vec()), Err(FormatError::BadMagic));
        assert!(decode(obj[..10].to_vec()).is_err());
    }

    /// With a key: every compression round-trips, the header says the
    /// object is encrypted and carries no hash, and none of the original's
    /// bytes are in the object.
    #[test]
    fn encrypted_objects_round_trip_and_show_nothing() {
        let keys = Keys::new(test_key(1), Vec::new());
        let marker = b"walship-secret-marker-7f3a";
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| {
                if i % 1000 == 0 {
                    marker.to_vec()
                } else {
                    vec![(i % 13) as u8]
                }
            })
            .collect();
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let e = encode_from(&data[..], data.len() as u64, c, keyed(&keys)).unwrap();
            let h = decode_header(&e.object).unwrap();
            assert!(
                h.encrypted && h.blake3.is_none() && h.content().is_none(),
                "{c}"
            );
            assert_eq!(h.original_len, data.len() as u64);
            assert_eq!(e.content, ContentId::of(&data));
            assert!(
                !e.object.windows(marker.len()).any(|w| w == marker),
                "{c}: plaintext in the object"
            );
            assert!(
                !e.object.windows(8).any(|w| w == &e.content.blake3[..8]),
                "{c}: hash shows"
            );
            let d = decode_at_most(e.object.clone(), MAX_DECODED, keyed(&keys)).unwrap();
            assert_eq!(d.bytes, data, "{c}");
            assert_eq!(d.content, e.content);
            assert_eq!(d.key, Some(test_key(1).fingerprint()));
            let (obj, h) = super::encode(&data, c, keyed(&keys)).unwrap();
            assert!(h.encrypted);
            assert_eq!(super::decode(obj, keyed(&keys)).unwrap(), data);
        }
        let empty = super::encode(&[], Compression::Zstd, keyed(&keys))
            .unwrap()
            .0;
        assert_eq!(
            super::decode(empty, keyed(&keys)).unwrap(),
            Vec::<u8>::new()
        );
    }

    #[test]
    fn a_wrong_or_missing_key_or_a_plain_object_is_refused_for_good() {
        let k1 = Keys::new(test_key(1), Vec::new());
        let k2 = Keys::new(test_key(2), Vec::new());
        let (obj, _) = super::encode(&sample(), Compression::Zstd, keyed(&k1)).unwrap();
        let wrong = super::decode(obj.clone(), keyed(&k2)).unwrap_err();
        assert!(
            matches!(wrong, FormatError::Crypto(OpenError::WrongKey { .. })),
            "{wrong}"
        );
        let none = decode(obj.clone()).unwrap_err();
        assert!(
            matches!(none, FormatError::Crypto(OpenError::NoKey { .. })),
            "{none}"
        );
        let (clear, _) = encode(&sample(), Compression::Zstd);
        let plain_with_key = super::decode(clear, keyed(&k1)).unwrap_err();
        assert_eq!(plain_with_key, FormatError::NotEncrypted);
        for e in [&wrong, &none, &plain_with_key] {
            assert!(!e.may_be_transient(), "{e}");
            assert!(!e.to_string().contains('\n'));
        }
        // Rotation: the old key among the older keys still decrypts.
        let rotated = Keys::new(test_key(2), vec![test_key(1)]);
        assert_eq!(
            super::decode(obj.clone(), keyed(&rotated)).unwrap(),
            sample()
        );
        // Bound to its storage key: the same bytes under another name fail.
        let elsewhere = Stored {
            at: "wal/000000010000000000000004",
            keys: &k1,
        };
        let moved = super::decode(obj, elsewhere).unwrap_err();
        assert_eq!(moved, FormatError::Crypto(OpenError::Unauthentic));
        assert!(moved.may_be_transient());
    }

    /// Every single bit flip of an encrypted object is refused, header
    /// included; so is a truncation, even with the header edited to match.
    #[test]
    fn every_flip_and_truncation_of_an_encrypted_object_is_refused() {
        let keys = Keys::new(test_key(1), Vec::new());
        let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        for c in [Compression::None, Compression::Zstd] {
            let (obj, _) = super::encode(&data, c, keyed(&keys)).unwrap();
            for bit in 0..obj.len() * 8 {
                let mut bad = obj.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                assert!(
                    super::decode(bad, keyed(&keys)).is_err(),
                    "{c}: flip of bit {bit} went unnoticed"
                );
            }
        }
        let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let (obj, header) = super::encode(&big, Compression::None, keyed(&keys)).unwrap();
        let cut = obj[..obj.len() - 65_552].to_vec();
        assert!(matches!(
            super::decode(cut.clone(), keyed(&keys)),
            Err(FormatError::PayloadLength { .. })
        ));
        let mut relabelled = cut;
        let shorter = Header {
            payload_len: header.payload_len - 65_552,
            ..header
        };
        relabelled[..HEADER_LEN].copy_from_slice(&encode_header(&shorter));
        assert!(super::decode(relabelled, keyed(&keys)).is_err());
    }
}

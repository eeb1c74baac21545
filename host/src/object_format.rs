//! The bytes of every archived file: a 64-byte self-describing header, then the
//! (possibly compressed) payload. Layout and rationale: `docs/object-format.md`.
//!
//! This module knows nothing of plugins, storage or PostgreSQL.
//!
//! | offset | size | field                                             |
//! |--------|------|---------------------------------------------------|
//! | 0      | 8    | magic `WALSHIP\0`                                  |
//! | 8      | 2    | format version (1), little-endian                 |
//! | 10     | 2    | header length (64)                                |
//! | 12     | 1    | compression: 0 none, 1 lz4 (block), 2 zstd        |
//! | 13     | 1    | encryption: 0 none (other values reserved)        |
//! | 14     | 2    | flags, must be 0                                  |
//! | 16     | 8    | original length                                   |
//! | 24     | 8    | payload length                                    |
//! | 32     | 32   | BLAKE3 of the original bytes                      |

use std::fmt;

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
    pub payload_len: u64,
    pub content: ContentId,
}

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
    #[error("object is encrypted (method {0}) and this walship cannot decrypt it")]
    Encrypted(u8),
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

/// The most any object decodes to: the largest WAL segment PostgreSQL
/// allows (1 GiB). Callers that know better (the cluster's segment size)
/// pass their own bound to `decode_at_most`.
pub const MAX_DECODED: u64 = 1 << 30;

/// Encodes `original` as a complete object: header + payload.
///
/// Compressed payloads are produced into their own buffer and copied behind
/// the header: they are small, and pre-sizing one buffer to the compressor's
/// worst case would touch (and so commit) far more memory than they need.
pub fn encode(original: &[u8], compression: Compression) -> (Vec<u8>, Header) {
    let content = ContentId::of(original);
    let payload: std::borrow::Cow<'_, [u8]> = match compression {
        Compression::None => original.into(),
        Compression::Lz4 => lz4_flex::block::compress(original).into(),
        Compression::Zstd => zstd::bulk::compress(original, ZSTD_LEVEL)
            .expect("zstd compression of an in-memory buffer cannot fail")
            .into(),
    };
    let header = Header {
        compression,
        payload_len: payload.len() as u64,
        content,
    };
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&encode_header(&header));
    out.extend_from_slice(&payload);
    (out, header)
}

/// An object encoded from a file, with what the caller needs to check the
/// file without keeping it.
#[derive(Debug)]
pub struct Encoded {
    pub object: Vec<u8>,
    pub header: Header,
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
/// object.
pub fn encode_from(
    mut source: impl std::io::Read,
    size_hint: u64,
    compression: Compression,
) -> std::io::Result<Encoded> {
    let leading_of = |b: &[u8]| b[..b.len().min(LEADING_LEN)].to_vec();
    match compression {
        Compression::Lz4 => {
            let mut original = Vec::with_capacity(size_hint as usize);
            source.read_to_end(&mut original)?;
            let (object, header) = encode(&original, compression);
            Ok(Encoded {
                object,
                header,
                leading: leading_of(&original),
            })
        }
        Compression::None => {
            let mut object = Vec::with_capacity(HEADER_LEN + size_hint as usize);
            object.resize(HEADER_LEN, 0);
            source.read_to_end(&mut object)?;
            let original = &object[HEADER_LEN..];
            let content = ContentId::of(original);
            let leading = leading_of(original);
            Ok(seal(object, compression, content, leading))
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
            Ok(seal(encoder.finish()?, compression, content, leading))
        }
    }
}

/// Fills in the header of an object whose payload follows `HEADER_LEN`
/// placeholder bytes.
fn seal(
    mut object: Vec<u8>,
    compression: Compression,
    content: ContentId,
    leading: Vec<u8>,
) -> Encoded {
    let header = Header {
        compression,
        payload_len: (object.len() - HEADER_LEN) as u64,
        content,
    };
    object[..HEADER_LEN].copy_from_slice(&encode_header(&header));
    Encoded {
        object,
        header,
        leading,
    }
}

pub fn encode_header(h: &Header) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[0..8].copy_from_slice(&MAGIC);
    b[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    b[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
    b[12] = h.compression.code();
    b[13] = 0;
    b[16..24].copy_from_slice(&h.content.length.to_le_bytes());
    b[24..32].copy_from_slice(&h.payload_len.to_le_bytes());
    b[32..64].copy_from_slice(&h.content.blake3);
    b
}

/// Decodes and checks the header (the first 64 bytes of an object). Every
/// field is validated, so a flipped bit anywhere in it is caught here or by
/// the checksum.
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
    if bytes[13] != 0 {
        return Err(FormatError::Encrypted(bytes[13]));
    }
    if u16_at(14) != 0 {
        return Err(FormatError::DamagedHeader("reserved flags are set"));
    }
    let length = u64_at(16);
    let payload_len = u64_at(24);
    if compression == Compression::None && payload_len != length {
        return Err(FormatError::DamagedHeader(
            "uncompressed payload length differs from original length",
        ));
    }
    Ok(Header {
        compression,
        payload_len,
        content: ContentId {
            length,
            blake3: bytes[32..64].try_into().unwrap(),
        },
    })
}

/// Decodes a complete object, verifying length and checksum. Returns the
/// original bytes only if they hash to what the header promised. Takes the
/// object by value so an uncompressed payload is reused, not copied.
pub fn decode(object: Vec<u8>) -> Result<Vec<u8>, FormatError> {
    decode_at_most(object, MAX_DECODED)
}

/// `decode`, for an object known to hold at most `limit` bytes (a WAL
/// segment of the cluster's segment size). The header's claim is checked
/// before anything is allocated, and decompression writes into a buffer of
/// exactly the claimed size, failing rather than growing: a few KiB of
/// compressed zeros cannot make walship allocate gigabytes.
pub fn decode_at_most(mut object: Vec<u8>, limit: u64) -> Result<Vec<u8>, FormatError> {
    let header = decode_header(&object)?;
    if header.content.length > limit {
        return Err(FormatError::TooLarge {
            claimed: header.content.length,
            limit,
        });
    }
    let payload = &object[HEADER_LEN..];
    if payload.len() as u64 != header.payload_len {
        return Err(FormatError::PayloadLength {
            expected: header.payload_len,
            found: payload.len() as u64,
        });
    }
    let original_len = usize::try_from(header.content.length)
        .map_err(|_| FormatError::DamagedHeader("original length does not fit in memory"))?;
    let decompress_err = |why: String| FormatError::Decompress {
        compression: header.compression,
        why,
    };
    let original = match header.compression {
        Compression::None => {
            object.drain(..HEADER_LEN);
            object
        }
        Compression::Lz4 => lz4_flex::block::decompress(payload, original_len)
            .map_err(|e| decompress_err(e.to_string()))?,
        Compression::Zstd => zstd::bulk::decompress(payload, original_len)
            .map_err(|e| decompress_err(e.to_string()))?,
    };
    let actual = ContentId::of(&original);
    if actual != header.content {
        return Err(FormatError::ChecksumMismatch {
            expected: header.content.short_hex(),
            actual: actual.short_hex(),
        });
    }
    Ok(original)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            payload_len: payload.len() as u64,
            content: ContentId {
                length: claimed,
                blake3: *hasher.finalize().as_bytes(),
            },
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
        let err = decode_at_most(zero_bomb(64 << 20), 16 << 20).unwrap_err();
        assert!(err.to_string().contains("decompression bomb"), "{err}");
        assert_eq!(
            decode_at_most(zero_bomb(16 << 20), 16 << 20).unwrap().len(),
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
            let e = encode_from(&data[..], data.len() as u64, c).unwrap();
            assert_eq!(e.header, decode_header(&e.object).unwrap());
            assert_eq!(e.header.content, ContentId::of(&data), "{c}");
            assert_eq!(e.leading, data[..LEADING_LEN]);
            assert_eq!(decode(e.object).unwrap(), data, "{c}");
        }
        let empty = encode_from(&[][..], 0, Compression::Zstd).unwrap();
        assert_eq!(decode(empty.object).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn identical_content_has_one_id_whatever_the_compression() {
        let data = sample();
        let a = encode(&data, Compression::Lz4).1.content;
        let b = encode(&data, Compression::Zstd).1.content;
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
}

//! Keys as the operator gives them (WAL-G's `WALG_LIBSODIUM_KEY`,
//! `WALG_LIBSODIUM_KEY_PATH`, `WALG_LIBSODIUM_KEY_TRANSFORM`), and what
//! walship derives from them.
//!
//! Nothing here ever prints a key: `Debug` and every error name the key by
//! its fingerprint or by the setting it came from, never by its bytes.

use std::fmt;
use std::path::Path;

use zeroize::Zeroizing;

pub const KEY_LEN: usize = 32;
/// WAL-G's shortest key for the `none` transform: a pass phrase shorter
/// than this is refused rather than padded into a weak key.
pub const MIN_NONE_KEY_LEN: usize = 25;

/// BLAKE3 `derive_key` contexts: each value derived from a key has its own,
/// so knowing one (the fingerprint is public) says nothing of another.
const FINGERPRINT_CONTEXT: &str = "walship 2026-12 encryption key fingerprint";
const WRAPPING_CONTEXT: &str = "walship 2026-12 key-encryption key";

/// Names a key without revealing it: the first 8 bytes of a BLAKE3 key
/// derivation from it, printed as 16 hex digits. Stored in every object's
/// key slot and in identity.toml.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint(pub [u8; 8]);

impl Fingerprint {
    pub fn parse(hex: &str) -> Option<Self> {
        let hex = hex.trim();
        if hex.len() != 16 {
            return None;
        }
        let mut out = [0u8; 8];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// One 32-byte key. Its bytes are wiped from memory when it is dropped, and
/// are used for one thing only: deriving the key that wraps each object's
/// data key (so the operator's key never meets a cipher directly).
pub struct SecretKey {
    wrapping: Zeroizing<[u8; KEY_LEN]>,
    fingerprint: Fingerprint,
}

impl SecretKey {
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        let fp = blake3::derive_key(FINGERPRINT_CONTEXT, bytes);
        Self {
            wrapping: Zeroizing::new(blake3::derive_key(WRAPPING_CONTEXT, bytes)),
            fingerprint: Fingerprint(fp[..8].try_into().expect("8 of 32 bytes")),
        }
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The key-encryption key: wraps and unwraps data keys (stream.rs).
    pub(super) fn wrapping_key(&self) -> &[u8; KEY_LEN] {
        &self.wrapping
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(fingerprint {})", self.fingerprint)
    }
}

/// How a key's text becomes 32 bytes: WAL-G's `WALG_LIBSODIUM_KEY_TRANSFORM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTransform {
    Base64,
    Hex,
    /// WAL-G's default: the text's bytes, cut or zero-padded to 32 (at
    /// least 25 of them).
    None,
}

impl KeyTransform {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "base64" => Some(Self::Base64),
            "hex" => Some(Self::Hex),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

/// Why a key could not be loaded. Never holds any of the key's bytes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("it is not valid base64")]
    NotBase64,
    #[error("it is not valid hex")]
    NotHex,
    #[error(
        "it decodes to {0} bytes, a key is exactly 32 (generate one with `openssl rand -base64 32`)"
    )]
    WrongLength(usize),
    #[error(
        "it is {0} bytes long; with WALG_LIBSODIUM_KEY_TRANSFORM=none a key needs at least 25 (better: a random key in base64, `openssl rand -base64 32`)"
    )]
    TooShort(usize),
    #[error("cannot read key file {path}: {why}")]
    Unreadable { path: String, why: String },
    #[error(
        "key file {path} can be read by its group or by others (mode {mode:04o}): make it private, e.g. chmod 600 {path}"
    )]
    Exposed { path: String, mode: u32 },
}

/// Turns a key's text into a key. `text` is wiped by the caller's
/// `Zeroizing` where it came from a file; the intermediate bytes here are.
pub fn key_from_text(text: &str, transform: KeyTransform) -> Result<SecretKey, KeyError> {
    use base64::Engine;
    let bytes: Zeroizing<Vec<u8>> = Zeroizing::new(match transform {
        KeyTransform::Base64 => base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| KeyError::NotBase64)?,
        KeyTransform::Hex => decode_hex(text.trim()).ok_or(KeyError::NotHex)?,
        KeyTransform::None => {
            if text.len() < MIN_NONE_KEY_LEN {
                return Err(KeyError::TooShort(text.len()));
            }
            let mut padded = vec![0u8; KEY_LEN];
            let n = text.len().min(KEY_LEN);
            padded[..n].copy_from_slice(&text.as_bytes()[..n]);
            padded
        }
    });
    let exact: &[u8; KEY_LEN] = bytes[..]
        .try_into()
        .map_err(|_| KeyError::WrongLength(bytes.len()))?;
    Ok(SecretKey::from_bytes(exact))
}

/// Reads a key file: it must be private to its owner (no group or other
/// permission bits), as WAL-G and ssh expect of key files. Surrounding
/// white space (a final newline) is not part of the key, as in WAL-G.
pub fn key_from_file(path: &Path, transform: KeyTransform) -> Result<SecretKey, KeyError> {
    use std::os::unix::fs::MetadataExt;
    let shown = path.display().to_string();
    let unreadable = |e: std::io::Error| KeyError::Unreadable {
        path: shown.clone(),
        why: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mode = file.metadata().map_err(unreadable)?.mode();
    if mode & 0o077 != 0 {
        return Err(KeyError::Exposed {
            path: shown,
            mode: mode & 0o7777,
        });
    }
    let mut text = Zeroizing::new(String::new());
    std::io::Read::read_to_string(&mut &file, &mut text).map_err(unreadable)?;
    key_from_text(text.trim(), transform)
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const B64: &str = "q83vASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4k=";
    const HEX: &str = "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789";

    #[test]
    fn every_transform_gives_the_same_key_for_the_same_bytes() {
        let a = key_from_text(B64, KeyTransform::Base64).unwrap();
        let b = key_from_text(HEX, KeyTransform::Hex).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_eq!(
            key_from_text("short", KeyTransform::Base64).unwrap_err(),
            KeyError::NotBase64
        );
        assert_eq!(
            key_from_text("abcd", KeyTransform::Hex).unwrap_err(),
            KeyError::WrongLength(2)
        );
        assert_eq!(
            key_from_text("zz", KeyTransform::Hex).unwrap_err(),
            KeyError::NotHex
        );
    }

    /// WAL-G's `none`: at least 25 bytes, cut or zero-padded to 32.
    #[test]
    fn the_none_transform_cuts_or_pads_like_walg() {
        let pass = "correct horse battery staple"; // 28 bytes
        let mut padded = [0u8; 32];
        padded[..28].copy_from_slice(pass.as_bytes());
        assert_eq!(
            key_from_text(pass, KeyTransform::None)
                .unwrap()
                .fingerprint(),
            SecretKey::from_bytes(&padded).fingerprint()
        );
        let long = "0123456789abcdef0123456789abcdefEXTRA";
        let cut: [u8; 32] = long.as_bytes()[..32].try_into().unwrap();
        assert_eq!(
            key_from_text(long, KeyTransform::None)
                .unwrap()
                .fingerprint(),
            SecretKey::from_bytes(&cut).fingerprint()
        );
        assert_eq!(
            key_from_text("too short", KeyTransform::None).unwrap_err(),
            KeyError::TooShort(9)
        );
    }

    #[test]
    fn a_key_is_never_printed() {
        let key = key_from_text(HEX, KeyTransform::Hex).unwrap();
        let shown = format!("{key:?} {}", key.fingerprint());
        assert!(!shown.contains("abcdef"), "{shown}");
        assert!(!shown.to_lowercase().contains("q83v"), "{shown}");
        assert_eq!(
            Fingerprint::parse(&key.fingerprint().to_string()),
            Some(key.fingerprint())
        );
        // Errors say what is wrong with a key, never what it is.
        for (text, t) in [
            ("abcdef01abcdef01", KeyTransform::Hex),
            ("abcdef01abcdef01", KeyTransform::Base64),
            ("abcdef01abcdef01", KeyTransform::None),
        ] {
            let e = key_from_text(text, t).unwrap_err().to_string();
            assert!(!e.contains(text), "{e}");
        }
    }

    #[test]
    fn a_key_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("walship-keyfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        std::fs::write(&file, format!("{B64}\n")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = key_from_file(&file, KeyTransform::Base64).unwrap_err();
        assert!(matches!(e, KeyError::Exposed { mode: 0o644, .. }), "{e:?}");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(key_from_file(&file, KeyTransform::Base64).is_err());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let key = key_from_file(&file, KeyTransform::Base64).unwrap();
        assert_eq!(
            key.fingerprint(),
            key_from_text(B64, KeyTransform::Base64)
                .unwrap()
                .fingerprint()
        );
        let missing = key_from_file(&dir.join("nope"), KeyTransform::Base64).unwrap_err();
        assert!(matches!(missing, KeyError::Unreadable { .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

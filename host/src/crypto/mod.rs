//! Client-side encryption: everything walship stores beside `identity.toml`
//! is encrypted in this process, after compression and before a plugin sees
//! a byte, so neither the storage nor the (untrusted) plugin ever holds
//! plaintext or a key. Format and rationale: docs/archive-format.md
//! ("Encryption").
//!
//! - `key`: keys as the operator gives them, fingerprints, key files;
//! - `stream`: the sealed stream (an envelope with wrapped data keys, then
//!   XChaCha20-Poly1305 in the STREAM construction, chunk by chunk).

pub mod key;
pub mod stream;

use std::fmt;
use std::sync::Arc;

pub use key::{Fingerprint, KeyTransform, SecretKey};
pub use stream::{OpenError, Opening, Sealing, StreamContext};

/// The keys walship runs with: the one that encrypts new objects (the
/// newest), and every key that may decrypt (that one first, then older keys
/// kept for rotation). Empty: the archive is not encrypted.
#[derive(Clone, Default)]
pub struct Keys {
    current: Option<Arc<SecretKey>>,
    older: Vec<Arc<SecretKey>>,
}

impl Keys {
    /// No encryption.
    pub fn none() -> Self {
        Self::default()
    }

    /// `current` encrypts; `current` and `older` decrypt.
    pub fn new(current: SecretKey, older: Vec<SecretKey>) -> Self {
        let current = Arc::new(current);
        let older = older
            .into_iter()
            .filter(|k| k.fingerprint() != current.fingerprint())
            .map(Arc::new)
            .collect();
        Self {
            current: Some(current),
            older,
        }
    }

    pub fn is_set(&self) -> bool {
        self.current.is_some()
    }

    /// The key new objects are encrypted under.
    pub fn current(&self) -> Option<&SecretKey> {
        self.current.as_deref()
    }

    /// The key with this fingerprint, if walship has it.
    pub fn find(&self, fingerprint: Fingerprint) -> Option<&SecretKey> {
        self.current
            .iter()
            .chain(&self.older)
            .map(|k| &**k)
            .find(|k| k.fingerprint() == fingerprint)
    }

    /// Every key's fingerprint, the current one first.
    pub fn fingerprints(&self) -> Vec<Fingerprint> {
        self.current
            .iter()
            .chain(&self.older)
            .map(|k| k.fingerprint())
            .collect()
    }

    /// `a1b2…, c3d4…` for messages; `none` when no key is set.
    pub fn describe(&self) -> String {
        let all = self.fingerprints();
        if all.is_empty() {
            return "none".into();
        }
        all.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("current", &self.current.as_ref().map(|k| k.fingerprint()))
            .field(
                "older",
                &self
                    .older
                    .iter()
                    .map(|k| k.fingerprint())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A key for tests, from one byte.
    pub(crate) fn test_key(seed: u8) -> SecretKey {
        SecretKey::from_bytes(&[seed; key::KEY_LEN])
    }

    #[test]
    fn the_current_key_comes_first_and_is_not_repeated() {
        let keys = Keys::new(test_key(2), vec![test_key(1), test_key(2)]);
        assert_eq!(
            keys.fingerprints(),
            [test_key(2).fingerprint(), test_key(1).fingerprint()]
        );
        assert!(keys.find(test_key(1).fingerprint()).is_some());
        assert!(keys.find(test_key(3).fingerprint()).is_none());
        assert_eq!(Keys::none().describe(), "none");
        let shown = format!("{keys:?}");
        assert!(shown.contains(&test_key(1).fingerprint().to_string()));
    }
}

//! SHA-256 and HMAC-SHA256 for object_store, in pure Rust.
//!
//! object_store's own providers (aws-lc-rs, ring) are C and assembly that do
//! not build for wasm32-wasip2. Its S3 signer (SigV4, payload and
//! `x-amz-checksum-sha256` digests) and its Azure signer (SharedKey, SAS) need
//! only these two primitives.
//!
//! HMAC is RFC 2104 over `sha2`, written out: the `hmac` crate would turn on
//! a `digest` feature that the host's `sha2` then gets too, and every
//! `cargo xtask test` would build the host's dependencies twice.
//!
//! SHA-256 in wasm runs at a fraction of the host's speed (no SHA
//! instructions), and a put's body is hashed for its checksum header. The
//! host already hands over the body's SHA-256, computed natively
//! (`put-options.checksums`), so a plugin can say so ([`KnownSha256`]) and
//! the digest of exactly that body is not computed again. The store verifies
//! the checksum against the body it receives: a wrong value would make the
//! put fail, never store damaged bytes.

use std::cell::RefCell;

use bytes::Bytes;
use object_store::client::{
    CryptoProvider, DigestAlgorithm, DigestContext, HmacContext, Signer, SigningAlgorithm,
};
use sha2::{Digest, Sha256};

thread_local! {
    /// The body whose SHA-256 is known, while a [`KnownSha256`] lives.
    static KNOWN: RefCell<Option<(Bytes, [u8; 32])>> = const { RefCell::new(None) };
}

/// While this lives, a digest of exactly `body` (the same buffer, handed to
/// object_store as the payload) is `sha256` instead of being computed.
#[must_use = "the digest is known only while the guard lives"]
pub struct KnownSha256(());

impl KnownSha256 {
    pub fn new(body: &Bytes, sha256: [u8; 32]) -> KnownSha256 {
        KNOWN.with(|k| *k.borrow_mut() = Some((body.clone(), sha256)));
        KnownSha256(())
    }
}

impl Drop for KnownSha256 {
    fn drop(&mut self) {
        KNOWN.with(|k| *k.borrow_mut() = None);
    }
}

/// The known digest if `data` is the known body itself (same bytes in
/// memory, not merely equal ones).
fn known_digest_of(data: &[u8]) -> Option<(Bytes, [u8; 32])> {
    KNOWN.with(|k| {
        k.borrow()
            .as_ref()
            .filter(|(body, _)| body.as_ptr() == data.as_ptr() && body.len() == data.len())
            .cloned()
    })
}

#[derive(Debug)]
pub struct RustCrypto;

impl CryptoProvider for RustCrypto {
    fn digest(&self, algorithm: DigestAlgorithm) -> object_store::Result<Box<dyn DigestContext>> {
        match algorithm {
            DigestAlgorithm::Sha256 => Ok(Box::new(Sha256Context {
                state: Some(Sha256::new()),
                known: None,
                fed: false,
                out: Vec::new(),
            })),
            other => Err(unsupported(format!("digest {other:?}"))),
        }
    }

    fn hmac(
        &self,
        algorithm: DigestAlgorithm,
        secret: &[u8],
    ) -> object_store::Result<Box<dyn HmacContext>> {
        match algorithm {
            DigestAlgorithm::Sha256 => Ok(Box::new(HmacSha256Context::new(secret))),
            other => Err(unsupported(format!("HMAC with {other:?}"))),
        }
    }

    fn sign(
        &self,
        algorithm: SigningAlgorithm,
        _pem: &[u8],
    ) -> object_store::Result<Box<dyn Signer>> {
        // Only GCS service-account keys need RSA signatures.
        Err(unsupported(format!(
            "{algorithm:?} signing (not needed for SigV4 or Azure SharedKey)"
        )))
    }
}

fn unsupported(what: String) -> object_store::Error {
    object_store::Error::NotSupported {
        source: format!("{what} is not built into this plugin").into(),
    }
}

/// object_store finishes each context once; a second `finish` returns the
/// same digest rather than panicking.
struct Sha256Context {
    state: Option<Sha256>,
    /// The first and only update so far was the known body: its digest.
    known: Option<(Bytes, [u8; 32])>,
    /// Whether anything was fed in yet.
    fed: bool,
    out: Vec<u8>,
}

impl DigestContext for Sha256Context {
    fn update(&mut self, data: &[u8]) {
        let Some(state) = &mut self.state else {
            return;
        };
        let first = !std::mem::replace(&mut self.fed, true);
        if first && let Some(known) = known_digest_of(data) {
            self.known = Some(known);
            return;
        }
        // More after the known body: hash it after all, then go on.
        if let Some((body, _)) = self.known.take() {
            state.update(&body);
        }
        state.update(data);
    }

    fn finish(&mut self) -> object_store::Result<&[u8]> {
        if let Some((_, digest)) = self.known.take() {
            self.state = None;
            self.out = digest.to_vec();
        }
        if let Some(state) = self.state.take() {
            self.out = state.finalize().to_vec();
        }
        Ok(&self.out)
    }
}

/// SHA-256's block size, which HMAC pads keys to.
const BLOCK: usize = 64;

/// HMAC-SHA256 (RFC 2104): `H((K ^ opad) || H((K ^ ipad) || message))`.
struct HmacSha256Context {
    inner: Option<Sha256>,
    outer_key: [u8; BLOCK],
    out: Vec<u8>,
}

impl HmacSha256Context {
    fn new(secret: &[u8]) -> Self {
        let mut key = [0u8; BLOCK];
        if secret.len() > BLOCK {
            key[..32].copy_from_slice(&Sha256::digest(secret));
        } else {
            key[..secret.len()].copy_from_slice(secret);
        }
        let mut inner = Sha256::new();
        inner.update(key.map(|b| b ^ 0x36));
        HmacSha256Context {
            inner: Some(inner),
            outer_key: key.map(|b| b ^ 0x5c),
            out: Vec::new(),
        }
    }
}

impl HmacContext for HmacSha256Context {
    fn update(&mut self, data: &[u8]) {
        if let Some(inner) = &mut self.inner {
            inner.update(data);
        }
    }

    fn finish(&mut self) -> object_store::Result<&[u8]> {
        if let Some(inner) = self.inner.take() {
            let mut outer = Sha256::new();
            outer.update(self.outer_key);
            outer.update(inner.finalize());
            self.out = outer.finalize().to_vec();
        }
        Ok(&self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha256_matches_the_standard_vector() {
        let mut ctx = RustCrypto.digest(DigestAlgorithm::Sha256).unwrap();
        ctx.update(b"a");
        ctx.update(b"bc");
        assert_eq!(
            hex(ctx.finish().unwrap()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Idempotent.
        assert_eq!(hex(ctx.finish().unwrap()).len(), 64);
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231_case_2() {
        let mut ctx = RustCrypto.hmac(DigestAlgorithm::Sha256, b"Jefe").unwrap();
        ctx.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(ctx.finish().unwrap()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231_case_6_long_key() {
        let mut ctx = RustCrypto
            .hmac(DigestAlgorithm::Sha256, &[0xaa; 131])
            .unwrap();
        ctx.update(b"Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(
            hex(ctx.finish().unwrap()),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231_case_1_and_is_idempotent() {
        let mut ctx = RustCrypto
            .hmac(DigestAlgorithm::Sha256, &[0x0b; 20])
            .unwrap();
        ctx.update(b"Hi There");
        let want = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7";
        assert_eq!(hex(ctx.finish().unwrap()), want);
        assert_eq!(hex(ctx.finish().unwrap()), want);
    }

    #[test]
    fn rsa_signing_is_refused() {
        assert!(RustCrypto.sign(SigningAlgorithm::RS256, b"").is_err());
    }

    fn sha256_of(chunks: &[&[u8]]) -> Vec<u8> {
        let mut ctx = RustCrypto.digest(DigestAlgorithm::Sha256).unwrap();
        for chunk in chunks {
            ctx.update(chunk);
        }
        ctx.finish().unwrap().to_vec()
    }

    #[test]
    fn a_known_body_is_not_hashed_again_but_only_that_very_buffer() {
        let body = Bytes::from(vec![7u8; 100_000]);
        // A made-up digest, to see which one is used.
        let told = [0xab; 32];
        let guard = KnownSha256::new(&body, told);
        assert_eq!(sha256_of(&[&body]), told, "the very body: the known digest");
        let copy = body.to_vec();
        assert_eq!(
            sha256_of(&[&copy]),
            Sha256::digest(&copy).to_vec(),
            "equal bytes elsewhere are hashed"
        );
        assert_eq!(
            sha256_of(&[&body[..10]]),
            Sha256::digest(&body[..10]).to_vec(),
            "a part of it is hashed"
        );
        assert_eq!(
            sha256_of(&[b"canonical request", &body]),
            Sha256::digest([&b"canonical request"[..], &body].concat()).to_vec(),
            "the body after something else is hashed"
        );
        assert_eq!(
            sha256_of(&[&body, b"more"]),
            Sha256::digest([&body[..], b"more"].concat()).to_vec(),
            "the body followed by more is hashed after all"
        );
        drop(guard);
        assert_eq!(
            sha256_of(&[&body]),
            Sha256::digest(&body).to_vec(),
            "forgotten"
        );
    }
}

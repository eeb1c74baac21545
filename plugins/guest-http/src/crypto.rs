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

use object_store::client::{
    CryptoProvider, DigestAlgorithm, DigestContext, HmacContext, Signer, SigningAlgorithm,
};
use sha2::{Digest, Sha256};

#[derive(Debug)]
pub struct RustCrypto;

impl CryptoProvider for RustCrypto {
    fn digest(&self, algorithm: DigestAlgorithm) -> object_store::Result<Box<dyn DigestContext>> {
        match algorithm {
            DigestAlgorithm::Sha256 => Ok(Box::new(Sha256Context {
                state: Some(Sha256::new()),
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
    out: Vec<u8>,
}

impl DigestContext for Sha256Context {
    fn update(&mut self, data: &[u8]) {
        if let Some(state) = &mut self.state {
            state.update(data);
        }
    }

    fn finish(&mut self) -> object_store::Result<&[u8]> {
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
}

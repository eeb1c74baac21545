//! SHA-256 and HMAC-SHA256 for object_store, in pure Rust.
//!
//! object_store's own providers (aws-lc-rs, ring) are C and assembly that do
//! not build for wasm32-wasip2. S3 needs only these two primitives: SigV4
//! signatures and the payload and `x-amz-checksum-sha256` digests.

use hmac::{Hmac, KeyInit, Mac};
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
            DigestAlgorithm::Sha256 => {
                // HMAC takes keys of any length; this cannot fail.
                let mac = Hmac::<Sha256>::new_from_slice(secret)
                    .map_err(|e| unsupported(format!("HMAC key: {e}")))?;
                Ok(Box::new(HmacSha256Context {
                    state: Some(mac),
                    out: Vec::new(),
                }))
            }
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
            "{algorithm:?} signing (not needed for S3)"
        )))
    }
}

fn unsupported(what: String) -> object_store::Error {
    object_store::Error::NotSupported {
        source: format!("{what} is not built into the s3 plugin").into(),
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

struct HmacSha256Context {
    state: Option<Hmac<Sha256>>,
    out: Vec<u8>,
}

impl HmacContext for HmacSha256Context {
    fn update(&mut self, data: &[u8]) {
        if let Some(state) = &mut self.state {
            state.update(data);
        }
    }

    fn finish(&mut self) -> object_store::Result<&[u8]> {
        if let Some(state) = self.state.take() {
            self.out = state.finalize().into_bytes().to_vec();
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
    fn rsa_signing_is_refused() {
        assert!(RustCrypto.sign(SigningAlgorithm::RS256, b"").is_err());
    }
}

//! TLS to PostgreSQL with libpq's meaning of `sslmode`, over rustls (ring).
//!
//! | mode        | TLS                         | server certificate checked          |
//! |-------------|-----------------------------|-------------------------------------|
//! | disable     | never                       | -                                   |
//! | allow       | only if plain text is refused | no                                |
//! | prefer      | if the server offers it     | chain, if a root certificate exists |
//! | require     | always                      | chain, if a root certificate exists |
//! | verify-ca   | always                      | chain (a root certificate is needed) |
//! | verify-full | always                      | chain and host name                 |
//!
//! "If a root certificate exists" is libpq's rule: `PGSSLROOTCERT`, or
//! `~/.postgresql/root.crt` when it is there. As in libpq, a Unix-domain
//! socket never uses TLS (it never leaves the machine).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(value: &str) -> Result<Self, String> {
        Ok(match value.trim() {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(format!(
                    "PGSSLMODE={other:?} is not valid: disable, allow, prefer, require, verify-ca or verify-full"
                ));
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// Whether the connection must be encrypted (no password in clear).
    pub fn requires_tls(self) -> bool {
        matches!(self, Self::Require | Self::VerifyCa | Self::VerifyFull)
    }
}

/// The TLS settings libpq reads, resolved (defaults under `~/.postgresql/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    /// CA certificates (PEM) to check the server with; `None`: none found.
    pub root_cert: Option<PathBuf>,
    /// Client certificate and key (PEM), when both are there.
    pub client: Option<(PathBuf, PathBuf)>,
}

impl TlsSettings {
    pub fn resolve(var: &impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mode = match var("PGSSLMODE") {
            Some(v) => SslMode::parse(&v)?,
            None => SslMode::Prefer,
        };
        let home = var("HOME").map(|h| PathBuf::from(h).join(".postgresql"));
        let default_file = |name: &str| home.as_ref().map(|d| d.join(name)).filter(|p| p.is_file());
        let root_cert = match var("PGSSLROOTCERT") {
            Some(p) => {
                let p = PathBuf::from(p);
                if !p.is_file() {
                    return Err(format!(
                        "PGSSLROOTCERT={:?}: no such file",
                        p.display().to_string()
                    ));
                }
                Some(p)
            }
            None => default_file("root.crt"),
        };
        if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) && root_cert.is_none() {
            return Err(format!(
                "PGSSLMODE={} needs the CA certificate to check the server with: set PGSSLROOTCERT \
                 (or put it at ~/.postgresql/root.crt)",
                mode.name()
            ));
        }
        let cert = var("PGSSLCERT")
            .map(PathBuf::from)
            .or_else(|| default_file("postgresql.crt"));
        let key = var("PGSSLKEY")
            .map(PathBuf::from)
            .or_else(|| default_file("postgresql.key"));
        let client = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (Some(c), None) if var("PGSSLCERT").is_some() => {
                return Err(format!(
                    "PGSSLCERT={:?} is set but no key: set PGSSLKEY",
                    c.display().to_string()
                ));
            }
            (None, Some(k)) if var("PGSSLKEY").is_some() => {
                return Err(format!(
                    "PGSSLKEY={:?} is set but no certificate: set PGSSLCERT",
                    k.display().to_string()
                ));
            }
            _ => None,
        };
        Ok(Self {
            mode,
            root_cert,
            client,
        })
    }

    /// The rustls configuration for this mode.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match &self.root_cert {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                let (added, _) =
                    roots.add_parsable_certificates(read_certs(path, "PGSSLROOTCERT")?);
                if added == 0 {
                    return Err(format!(
                        "PGSSLROOTCERT {}: no usable certificate",
                        path.display()
                    ));
                }
                let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider.clone(),
                )
                .build()
                .map_err(|e| format!("PGSSLROOTCERT {}: {e}", path.display()))?;
                Arc::new(Verifier {
                    inner: Some(webpki),
                    check_name: self.mode == SslMode::VerifyFull,
                    provider: provider.clone(),
                })
            }
            None => Arc::new(Verifier {
                inner: None,
                check_name: false,
                provider: provider.clone(),
            }),
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        match &self.client {
            None => Ok(builder.with_no_client_auth()),
            Some((cert, key)) => {
                let certs = read_certs(cert, "PGSSLCERT")?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("cannot read PGSSLKEY {}: {e}", key.display()))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| format!("PGSSLCERT/PGSSLKEY: {e}"))
            }
        }
    }
}

fn read_certs(path: &Path, setting: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read {setting} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{setting} {} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// libpq's checks: with a root certificate, the chain always, and the host
/// name only for verify-full; without one, none (require, prefer, allow).
/// The handshake's signatures are always verified.
#[derive(Debug)]
struct Verifier {
    inner: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(inner) = &self.inner else {
            return Ok(ServerCertVerified::assertion());
        };
        match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn resolve(pairs: &[(&str, &str)]) -> Result<TlsSettings, String> {
        let vars: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TlsSettings::resolve(&|n: &str| vars.get(n).cloned())
    }

    #[test]
    fn modes_as_libpq_reads_them() {
        assert_eq!(resolve(&[]).unwrap().mode, SslMode::Prefer);
        assert_eq!(
            resolve(&[("PGSSLMODE", "require")]).unwrap().mode,
            SslMode::Require
        );
        assert!(
            resolve(&[("PGSSLMODE", "required")])
                .unwrap_err()
                .contains("PGSSLMODE")
        );
        // verify-* without a CA certificate cannot verify anything.
        let e = resolve(&[("PGSSLMODE", "verify-full"), ("HOME", "/nonexistent")]).unwrap_err();
        assert!(e.contains("PGSSLROOTCERT"), "{e}");
        let e = resolve(&[("PGSSLROOTCERT", "/nonexistent/ca.crt")]).unwrap_err();
        assert!(e.contains("no such file"), "{e}");
        let e = resolve(&[("PGSSLCERT", "/etc/hostname"), ("HOME", "/nonexistent")]).unwrap_err();
        assert!(e.contains("PGSSLKEY"), "{e}");
    }
}

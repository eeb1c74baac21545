//! Service-account credentials: a self-signed RS256 JWT per instance, used
//! as the bearer token of every request.
//!
//! Google accepts a JWT signed with the service account's own key instead of
//! an OAuth access token (<https://google.aip.dev/auth/4111>): no request to
//! the key's `token_uri` is made, so each wal-push process saves a round trip
//! and the plugin needs no grant for oauth2.googleapis.com. The claims carry
//! a `scope`, as object_store's GCS client does in production (GCS does not
//! take the `aud` form). One token lives an hour; an instance signs once and
//! reuses it until five minutes before it expires.

use std::cell::RefCell;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::PrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use sha2::Sha256;

/// What the token may be used for: read and write objects.
pub const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";
/// Lifetime of a self-signed JWT: Google accepts at most an hour.
const LIFETIME: Duration = Duration::from_secs(3600);
/// A token this close to expiry is replaced.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);
/// The setting the key comes from, for messages.
pub const SETTING: &str = "GOOGLE_APPLICATION_CREDENTIALS";

/// A service account's key, ready to sign.
pub struct ServiceAccount {
    pub client_email: String,
    pub key_id: String,
    key: SigningKey<Sha256>,
    token: RefCell<Option<(String, SystemTime)>>,
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key, never the token.
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key_id: Option<String>,
    private_key: Option<String>,
}

impl ServiceAccount {
    /// Parses the JSON key file's contents. The message names what is wrong
    /// with the file, never its contents.
    pub fn from_json(json: &str) -> Result<ServiceAccount, String> {
        let file: KeyFile = serde_json::from_str(json).map_err(|e| {
            format!(
                "{SETTING}: the file is not JSON ({}); it should be a service-account key file \
                 as downloaded from Google Cloud",
                format!("{:?}", e.classify()).to_lowercase()
            )
        })?;
        match file.kind.as_deref() {
            Some("service_account") => {}
            Some(other) => {
                return Err(format!(
                    "{SETTING}: the key file is of type {other:?}; only service-account keys \
                     (\"type\": \"service_account\") are supported"
                ));
            }
            None => {
                return Err(format!(
                    "{SETTING}: the file has no \"type\"; it should be a service-account JSON key"
                ));
            }
        }
        let missing = |field: &str| format!("{SETTING}: the service-account key has no {field:?}");
        let client_email = file.client_email.ok_or_else(|| missing("client_email"))?;
        let key_id = file
            .private_key_id
            .ok_or_else(|| missing("private_key_id"))?;
        let pem = file.private_key.ok_or_else(|| missing("private_key"))?;
        let key = PrivateKey::from_pkcs8_pem(&pem)
            .or_else(|_| PrivateKey::from_pkcs1_pem(&pem))
            .map_err(|_| {
                format!(
                    "{SETTING}: the \"private_key\" of {client_email} is not an RSA private key in \
                     PEM (PKCS#8 or PKCS#1)"
                )
            })?;
        Ok(ServiceAccount {
            client_email,
            key_id,
            key: SigningKey::<Sha256>::new(key),
            token: RefCell::new(None),
        })
    }

    /// The bearer token for the next request: the cached JWT, or a new one.
    pub fn bearer(&self) -> String {
        let now = SystemTime::now();
        if let Some((token, expires)) = &*self.token.borrow()
            && now + REFRESH_BEFORE < *expires
        {
            return token.clone();
        }
        let token = self.sign_jwt(now);
        *self.token.borrow_mut() = Some((token.clone(), now + LIFETIME));
        token
    }

    /// `header.claims.signature`, RS256 (RFC 7515, 7519).
    pub fn sign_jwt(&self, now: SystemTime) -> String {
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let header = serde_json::json!({ "alg": "RS256", "typ": "JWT", "kid": self.key_id });
        let claims = serde_json::json!({
            "iss": self.client_email,
            "sub": self.client_email,
            "scope": SCOPE,
            "iat": iat,
            "exp": iat + LIFETIME.as_secs(),
        });
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.key.sign(message.as_bytes());
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::signature::Verifier;

    /// A 1024-bit test key (small so the test is quick; never used anywhere).
    pub(crate) const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBAL9PgnpdL1/dk6A1
+awC10/89Uu3PgGRpA2PnLNUxaTw8PVIczBbREJkRIYlEl8bfEEwUiDTVpfeRV+0
BcKt1EM3Ibib2/NqxQUa+DoxaOsECKiIxpYDH9ioMSVOdbRHZnfbH9XxR6CRkBmy
VIpG+Xb/KZIFUyE3WWXrHmwrysjlAgMBAAECgYArkWLolQIt9dsh2Ej0yGzadYQz
axa+6rkOsY8BNCQSrSBi6833zEEeUZFdb2HgsPS6L9P0T8zfpynrYqcRL98vzicO
eHiUais1pjyT7qVA8oc44ABi+aC6i2qZC3ZbjntpPNI9fQnQeO7nmcm9FQtgizUc
3tBbyTM9tfSef4a+AQJBAPYghM3XSosa/0j5+5DlKD0LperZTfF90MLGV1gObjAY
vGVv08qroVYd74X3vgPqzt8QdDQFwqJgEq/DUxWz6WUCQQDG/BSLQpT2ysUUUVP+
vzfYq2jBeriJf8qo1RcZdMFZ49IhmR8q/sTiTF5oX3443F91KbOYBr4cgw+HIS8B
LSmBAkEAtHgHqL7xw6naAfJ6iTXeGVTPJbKMukPcrNSt+r0qAk5A5cfnbbYHKJPu
qzaKt2iWo2z3J6YJnvH/Aa2g4Er5GQJAUNuIYZp5u9tjwEDYF/GN+P6WP+DlcgI6
0OZeT5rRIvzfm4WEU81ZJfgQeOss+GAcbhi3APTkdeOQAMIsPpcigQJBAK7YCEUC
VdJfbFgJJSKRTlOjrBaHE+uPU2+5gFiDnyFVibQafDzn+4jpnfEy0dDv7b7izsGs
W5EH0KBqXFryAP4=
-----END PRIVATE KEY-----
";

    pub(crate) fn key_file(pem: &str) -> String {
        serde_json::json!({
            "type": "service_account",
            "project_id": "p",
            "private_key_id": "kid-1",
            "private_key": pem,
            "client_email": "walship@p.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token",
        })
        .to_string()
    }

    #[test]
    fn signs_a_jwt_the_public_key_verifies() {
        let account = ServiceAccount::from_json(&key_file(TEST_KEY)).unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let jwt = account.sign_jwt(now);
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], "kid-1");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "walship@p.iam.gserviceaccount.com");
        assert_eq!(claims["sub"], claims["iss"]);
        assert_eq!(claims["scope"], SCOPE);
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            3600
        );
        let public = PrivateKey::from_pkcs8_pem(TEST_KEY)
            .unwrap()
            .to_public_key();
        let signature =
            Signature::try_from(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice()).unwrap();
        VerifyingKey::<Sha256>::new(public)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .expect("signature verifies");
    }

    #[test]
    fn the_token_is_reused_within_an_instance() {
        let account = ServiceAccount::from_json(&key_file(TEST_KEY)).unwrap();
        assert_eq!(account.bearer(), account.bearer());
    }

    #[test]
    fn broken_key_files_say_what_is_wrong_without_quoting_them() {
        let cases = [
            ("not json".to_string(), "not JSON"),
            (
                r#"{"type":"authorized_user"}"#.to_string(),
                "authorized_user",
            ),
            (
                key_file("-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----"),
                "not an RSA private key",
            ),
            (
                r#"{"type":"service_account","private_key":"x"}"#.to_string(),
                "client_email",
            ),
        ];
        for (json, want) in cases {
            let err = ServiceAccount::from_json(&json).unwrap_err();
            assert!(err.contains(want), "{err}");
            assert!(err.starts_with(SETTING), "{err}");
            assert!(!err.contains("QUJD") && !err.contains('\n'), "{err}");
        }
    }
}

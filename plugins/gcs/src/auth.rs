//! Service-account credentials: a self-signed RS256 JWT, used as the bearer
//! token of every request, and kept for the next process.
//!
//! Google accepts a JWT signed with the service account's own key instead of
//! an OAuth access token (<https://google.aip.dev/auth/4111>): no request to
//! the key's `token_uri` is made, so each wal-push process saves a round trip
//! and the plugin needs no grant for oauth2.googleapis.com. The claims carry
//! a `scope`, as object_store's GCS client does in production (GCS does not
//! take the `aud` form). One token lives an hour.
//!
//! Signing costs about 25 ms in wasm (parsing the key and one RSA-2048
//! signature), and PostgreSQL starts a process per WAL segment, so the token
//! is kept in the host's `cache` (contract 0.1.1; per configuration, so a
//! rotated key never meets the old key's token) and the key is parsed only
//! when a token must be signed. A kept token the service refuses is dropped
//! and a new one signed (see `Client::send`).

use std::cell::{OnceCell, RefCell};
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

/// Where a token outlives the process.
pub trait Keep {
    fn get(&self) -> Option<Vec<u8>>;
    /// Keeps `value` for `ttl`; a zero ttl drops it.
    fn put(&self, value: &[u8], ttl: Duration);
}

/// The host's `cache` interface, under one name.
pub struct HostCache;

/// The name the token is kept under (the host scopes it to this plugin and
/// configuration).
#[cfg(target_arch = "wasm32")]
const KEPT_AS: &str = "bearer-token";

#[cfg(target_arch = "wasm32")]
impl Keep for HostCache {
    fn get(&self) -> Option<Vec<u8>> {
        crate::walship::storage::cache::get(KEPT_AS)
    }

    fn put(&self, value: &[u8], ttl: Duration) {
        let ttl = u32::try_from(ttl.as_secs()).unwrap_or(u32::MAX);
        if let Err(why) = crate::walship::storage::cache::put(KEPT_AS, value, ttl) {
            crate::host_log::debug(&format!("the token is not kept for the next run: {why}"));
        }
    }
}

/// Native builds only run unit tests, where there is no host: nothing kept.
#[cfg(not(target_arch = "wasm32"))]
impl Keep for HostCache {
    fn get(&self) -> Option<Vec<u8>> {
        None
    }

    fn put(&self, _: &[u8], _: Duration) {}
}

/// A bearer token and where it came from.
#[derive(Clone)]
pub struct Bearer {
    pub token: String,
    /// Kept by an earlier process rather than signed by this one: if the
    /// service refuses it, it is worth signing a new one.
    pub kept: bool,
    expires: SystemTime,
}

impl fmt::Debug for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bearer")
            .field("kept", &self.kept)
            .finish_non_exhaustive()
    }
}

/// A service account's key, signing when it must.
pub struct ServiceAccount {
    pub client_email: String,
    pub key_id: String,
    /// The key's PEM, parsed on first signing (most processes never sign).
    pem: String,
    key: OnceCell<Result<SigningKey<Sha256>, String>>,
    token: RefCell<Option<Bearer>>,
    keep: Box<dyn Keep>,
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
    /// Parses the JSON key file's contents (the RSA key itself waits for the
    /// first signature). The message names what is wrong with the file,
    /// never its contents.
    pub fn from_json(json: &str, keep: Box<dyn Keep>) -> Result<ServiceAccount, String> {
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
        Ok(ServiceAccount {
            client_email,
            key_id,
            pem,
            key: OnceCell::new(),
            token: RefCell::new(None),
            keep,
        })
    }

    /// The bearer token for the next request: this process's, a kept one,
    /// or a new one (then kept). Fails only when a token must be signed and
    /// the key is not a usable RSA key.
    pub fn bearer(&self) -> Result<Bearer, String> {
        let now = SystemTime::now();
        let fresh = |b: &Bearer| now + REFRESH_BEFORE < b.expires;
        if let Some(bearer) = self.token.borrow().as_ref().filter(|b| fresh(b)) {
            return Ok(bearer.clone());
        }
        if let Some(kept) = self.keep.get().as_deref().and_then(decode_kept)
            && fresh(&kept)
        {
            *self.token.borrow_mut() = Some(kept.clone());
            return Ok(kept);
        }
        let token = self.sign_jwt(now)?;
        let bearer = Bearer {
            token,
            kept: false,
            expires: now + LIFETIME,
        };
        // Kept until it needs refreshing, so no process ever reads a token
        // it would replace at once.
        self.keep
            .put(&encode_kept(&bearer), LIFETIME - REFRESH_BEFORE);
        *self.token.borrow_mut() = Some(bearer.clone());
        Ok(bearer)
    }

    /// Drops the token (the service refused it) here and in the cache.
    pub fn forget(&self) {
        *self.token.borrow_mut() = None;
        self.keep.put(&[], Duration::ZERO);
    }

    fn signing_key(&self) -> Result<&SigningKey<Sha256>, String> {
        self.key
            .get_or_init(|| {
                PrivateKey::from_pkcs8_pem(&self.pem)
                    .or_else(|_| PrivateKey::from_pkcs1_pem(&self.pem))
                    .map(SigningKey::<Sha256>::new)
                    .map_err(|_| {
                        format!(
                            "{SETTING}: the \"private_key\" of {} is not an RSA private key in \
                             PEM (PKCS#8 or PKCS#1)",
                            self.client_email
                        )
                    })
            })
            .as_ref()
            .map_err(String::clone)
    }

    /// `header.claims.signature`, RS256 (RFC 7515, 7519).
    pub fn sign_jwt(&self, now: SystemTime) -> Result<String, String> {
        let key = self.signing_key()?;
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
        let signature = key.sign(message.as_bytes());
        Ok(format!(
            "{message}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        ))
    }
}

/// `<expiry, seconds since the epoch> <token>`.
fn encode_kept(bearer: &Bearer) -> Vec<u8> {
    let expires = bearer
        .expires
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    format!("{expires} {}", bearer.token).into_bytes()
}

fn decode_kept(value: &[u8]) -> Option<Bearer> {
    let (expires, token) = std::str::from_utf8(value).ok()?.split_once(' ')?;
    let expires = UNIX_EPOCH + Duration::from_secs(expires.parse().ok()?);
    // A JWT: three base64url parts, nothing that could break a header.
    let plausible = token.split('.').count() == 3
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    plausible.then(|| Bearer {
        token: token.to_string(),
        kept: true,
        expires,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::rc::Rc;

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

    /// PEM armour around something that is not a key.
    const BROKEN_KEY: &str = "-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----";

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

    /// A cache in memory, shared by the accounts of one test as the host's
    /// is shared by processes.
    #[derive(Clone, Default)]
    pub(crate) struct MemoryKeep(pub Rc<RefCell<Option<Kept>>>);

    /// A kept value and its time to live.
    pub(crate) type Kept = (Vec<u8>, Duration);

    impl Keep for MemoryKeep {
        fn get(&self) -> Option<Vec<u8>> {
            self.0.borrow().as_ref().map(|(v, _)| v.clone())
        }

        fn put(&self, value: &[u8], ttl: Duration) {
            *self.0.borrow_mut() = (!ttl.is_zero()).then(|| (value.to_vec(), ttl));
        }
    }

    fn account(pem: &str, keep: &MemoryKeep) -> ServiceAccount {
        ServiceAccount::from_json(&key_file(pem), Box::new(keep.clone())).unwrap()
    }

    #[test]
    fn signs_a_jwt_the_public_key_verifies() {
        let account = account(TEST_KEY, &MemoryKeep::default());
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let jwt = account.sign_jwt(now).unwrap();
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
        let account = account(TEST_KEY, &MemoryKeep::default());
        let first = account.bearer().unwrap();
        assert!(!first.kept);
        assert_eq!(first.token, account.bearer().unwrap().token);
    }

    /// What the next process sees: the kept token, used without parsing the
    /// key (this one's key is broken, so signing would fail).
    #[test]
    fn a_kept_token_serves_the_next_process_without_signing() {
        let keep = MemoryKeep::default();
        let signed = account(TEST_KEY, &keep).bearer().unwrap();
        let (_, ttl) = keep.0.borrow().clone().expect("the token is kept");
        assert_eq!(ttl, LIFETIME - REFRESH_BEFORE);

        let next = account(BROKEN_KEY, &keep);
        let kept = next.bearer().unwrap();
        assert!(kept.kept);
        assert_eq!(kept.token, signed.token);

        // Refused by the service: forgotten here and in the cache, so a new
        // one is signed (which fails with this broken key).
        next.forget();
        assert!(keep.0.borrow().is_none());
        let err = next.bearer().unwrap_err();
        assert!(err.contains("not an RSA private key"), "{err}");
    }

    #[test]
    fn a_kept_token_near_expiry_or_garbled_is_replaced() {
        let keep = MemoryKeep::default();
        let signer = account(TEST_KEY, &keep);
        let now = SystemTime::now();
        let soon = Bearer {
            token: signer
                .sign_jwt(now - LIFETIME + REFRESH_BEFORE / 2)
                .unwrap(),
            kept: false,
            expires: now + REFRESH_BEFORE / 2,
        };
        for garbage in [
            encode_kept(&soon),
            b"not a kept token".to_vec(),
            b"99999999999 a.b.c\r\nx: y".to_vec(),
        ] {
            keep.put(&garbage, Duration::from_secs(60));
            let bearer = account(TEST_KEY, &keep).bearer().unwrap();
            assert!(!bearer.kept, "{:?}", String::from_utf8_lossy(&garbage));
            assert_ne!(bearer.token, soon.token);
        }
    }

    #[test]
    fn broken_key_files_say_what_is_wrong_without_quoting_them() {
        let cases = [
            ("not json".to_string(), "not JSON"),
            (
                r#"{"type":"authorized_user"}"#.to_string(),
                "authorized_user",
            ),
            (key_file(BROKEN_KEY), "not an RSA private key"),
            (
                r#"{"type":"service_account","private_key":"x"}"#.to_string(),
                "client_email",
            ),
        ];
        for (json, want) in cases {
            let err = ServiceAccount::from_json(&json, Box::new(MemoryKeep::default()))
                .and_then(|a| a.bearer().map(|_| ()))
                .unwrap_err();
            assert!(err.contains(want), "{err}");
            assert!(err.starts_with(SETTING), "{err}");
            assert!(!err.contains("QUJD") && !err.contains('\n'), "{err}");
        }
    }
}

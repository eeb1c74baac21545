//! Credentials from a web identity token (EKS service accounts, CI OIDC
//! tokens): STS AssumeRoleWithWebIdentity, cached until shortly before they
//! expire.
//!
//! object_store has a provider for this, but it reads the token from a file
//! path; here the host reads the file (`AWS_WEB_IDENTITY_TOKEN_FILE` is a
//! `secret-file` setting) and the plugin never touches the filesystem.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use object_store::CredentialProvider;
use object_store::aws::AwsCredential;
use serde::Deserialize;
use walship_guest_http::HttpFailure;

use crate::config::Role;
use crate::walship::storage::types::{Error, Throttled};

/// Credentials closer than this to expiring are renewed before use: a
/// request must still be valid when S3 checks it.
const RENEW_BEFORE: TimeDelta = TimeDelta::minutes(5);

pub struct WebIdentity {
    /// `https://sts.<region>.amazonaws.com` or the configured STS endpoint.
    sts_url: String,
    role: Role,
    token: String,
    cache: Mutex<Option<Cached>>,
}

struct Cached {
    credential: Arc<AwsCredential>,
    renew_at: DateTime<Utc>,
}

impl fmt::Debug for WebIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the token.
        f.debug_struct("WebIdentity")
            .field("sts_url", &self.sts_url)
            .field("role", &self.role.arn)
            .finish_non_exhaustive()
    }
}

impl WebIdentity {
    pub fn new(sts_url: String, role: Role, token: String) -> Self {
        WebIdentity {
            sts_url,
            role,
            token,
            cache: Mutex::new(None),
        }
    }

    fn assume_role(&self) -> Result<(AwsCredential, DateTime<Utc>), StsError> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "AssumeRoleWithWebIdentity")
            .append_pair("Version", "2011-06-15")
            .append_pair("RoleArn", &self.role.arn)
            .append_pair("RoleSessionName", &self.role.session_name)
            .append_pair("WebIdentityToken", &self.token)
            .finish();
        // The call is not signed: the token is the proof.
        let request = http::Request::post(format!("{}/", self.sts_url))
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(Bytes::from(form))
            .map_err(|e| self.refused(0, "InvalidRequest", &e.to_string(), None))?;
        let response = walship_guest_http::send(request).map_err(StsError::Transport)?;
        let status = response.status();
        if status.is_success() {
            return parse_credentials(response.body()).map_err(|why| StsError::Unreadable {
                sts: self.sts_url.clone(),
                why,
            });
        }
        let (code, message) = parse_error(response.body());
        let retry_after_ms = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .map(|s| s.saturating_mul(1000));
        Err(self.refused(status.as_u16(), &code, &message, retry_after_ms))
    }

    fn refused(
        &self,
        status: u16,
        code: &str,
        message: &str,
        retry_after_ms: Option<u64>,
    ) -> StsError {
        StsError::Refused {
            sts: self.sts_url.clone(),
            role_arn: self.role.arn.clone(),
            status,
            code: code.to_string(),
            message: message.to_string(),
            retry_after_ms,
        }
    }
}

#[async_trait]
impl CredentialProvider for WebIdentity {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let now = Utc::now();
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(cached) = cache.as_ref().filter(|c| now < c.renew_at) {
            return Ok(Arc::clone(&cached.credential));
        }
        let (credential, expiration) =
            self.assume_role()
                .map_err(|e| object_store::Error::Generic {
                    store: "STS",
                    source: Box::new(e),
                })?;
        let credential = Arc::new(credential);
        *cache = Some(Cached {
            credential: Arc::clone(&credential),
            renew_at: expiration - RENEW_BEFORE,
        });
        Ok(credential)
    }
}

/// Why no credentials came from STS.
#[derive(Debug)]
pub enum StsError {
    /// No answer (the failure is also this error's source).
    Transport(HttpFailure),
    /// STS answered with an error.
    Refused {
        sts: String,
        role_arn: String,
        status: u16,
        code: String,
        message: String,
        retry_after_ms: Option<u64>,
    },
    /// STS answered success with something that is not credentials.
    Unreadable { sts: String, why: String },
}

impl fmt::Display for StsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StsError::Transport(failure) => write!(f, "{failure}"),
            StsError::Refused {
                sts,
                role_arn,
                status,
                code,
                message,
                ..
            } => {
                write!(
                    f,
                    "STS at {sts} refused AssumeRoleWithWebIdentity for {role_arn}: HTTP {status}"
                )?;
                match (code.is_empty(), message.is_empty()) {
                    (false, false) => write!(f, " {code}: {message}"),
                    (false, true) => write!(f, " {code}"),
                    (true, false) => write!(f, ": {message}"),
                    (true, true) => Ok(()),
                }
            }
            StsError::Unreadable { sts, why } => {
                write!(
                    f,
                    "unreadable AssumeRoleWithWebIdentity answer from {sts}: {why}"
                )
            }
        }
    }
}

impl std::error::Error for StsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StsError::Transport(failure) => Some(failure),
            _ => None,
        }
    }
}

impl StsError {
    /// The contract's error for an STS refusal. (Transport failures are
    /// mapped like any other, from the `HttpFailure` source.)
    pub fn to_contract(&self) -> Error {
        let StsError::Refused {
            sts,
            role_arn,
            status,
            code,
            message,
            retry_after_ms,
        } = self
        else {
            return Error::Other(self.to_string());
        };
        match code.as_str() {
            "InvalidIdentityToken" | "ExpiredTokenException" | "IDPRejectedClaim" => {
                Error::Unauthenticated(format!(
                    "STS at {sts} rejected the web identity token ({code}: {message}); check \
                     AWS_WEB_IDENTITY_TOKEN_FILE and that AWS trusts the token's issuer"
                ))
            }
            "AccessDenied" | "AccessDeniedException" => Error::PermissionDenied(format!(
                "STS at {sts} refused to let this web identity assume {role_arn} ({message}); \
                 check the role's trust policy and AWS_ROLE_ARN"
            )),
            "Throttling" | "ThrottlingException" | "RequestLimitExceeded" => {
                Error::Throttled(Throttled {
                    message: format!("STS at {sts} asked to slow down ({code}: {message})"),
                    retry_after_ms: *retry_after_ms,
                })
            }
            "IDPCommunicationError" | "ServiceUnavailable" | "InternalFailure" => {
                Error::Transient(self.to_string())
            }
            "ValidationError"
            | "InvalidParameterValue"
            | "RegionDisabledException"
            | "MalformedPolicyDocument" => Error::InvalidConfig(format!(
                "STS at {sts} refused AssumeRoleWithWebIdentity for AWS_ROLE_ARN={role_arn} \
                 ({code}: {message})"
            )),
            // Not an STS at all (an S3-compatible store without one).
            _ if matches!(*status, 404 | 405 | 501) => Error::InvalidConfig(format!(
                "{self}; {sts} does not serve AssumeRoleWithWebIdentity: set \
                 AWS_ENDPOINT_URL_STS to the STS that trusts this web identity"
            )),
            _ if *status == 429 => Error::Throttled(Throttled {
                message: self.to_string(),
                retry_after_ms: *retry_after_ms,
            }),
            _ if *status >= 500 => Error::Transient(self.to_string()),
            _ => Error::Other(self.to_string()),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AssumeRoleWithWebIdentityResponse {
    assume_role_with_web_identity_result: AssumeRoleWithWebIdentityResult,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AssumeRoleWithWebIdentityResult {
    credentials: StsCredentials,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
}

/// The credentials and their expiry in a successful STS answer.
fn parse_credentials(body: &[u8]) -> Result<(AwsCredential, DateTime<Utc>), String> {
    let text = std::str::from_utf8(body).map_err(|_| "not UTF-8".to_string())?;
    let response: AssumeRoleWithWebIdentityResponse =
        quick_xml::de::from_str(text).map_err(|e| format!("no credentials in it ({e})"))?;
    let credentials = response.assume_role_with_web_identity_result.credentials;
    let expiration = DateTime::parse_from_rfc3339(credentials.expiration.trim())
        .map_err(|e| format!("expiration {:?}: {e}", credentials.expiration))?
        .with_timezone(&Utc);
    Ok((
        AwsCredential {
            key_id: credentials.access_key_id,
            secret_key: credentials.secret_access_key,
            token: Some(credentials.session_token),
        },
        expiration,
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorResponse {
    error: StsErrorBody,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsErrorBody {
    code: Option<String>,
    message: Option<String>,
}

/// `(code, message)` of an STS error answer, as far as it has them.
fn parse_error(body: &[u8]) -> (String, String) {
    let parsed = std::str::from_utf8(body)
        .ok()
        .and_then(|text| quick_xml::de::from_str::<ErrorResponse>(text).ok());
    match parsed {
        Some(ErrorResponse { error }) => (
            error.code.unwrap_or_default(),
            error
                .message
                .map(|m| m.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_default(),
        ),
        None => (String::new(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUCCESS: &str = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:db:walship</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/walship/walship</Arn>
      <AssumedRoleId>AROA:walship</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>FwoGZXIvYXdzEXAMPLE</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY</SecretAccessKey>
      <Expiration>2025-10-24T23:00:23Z</Expiration>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
    </Credentials>
    <Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>ad4156e9</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#;

    #[test]
    fn parses_credentials_and_expiry() {
        let (credential, expiration) = parse_credentials(SUCCESS.as_bytes()).unwrap();
        assert_eq!(credential.key_id, "ASIAEXAMPLE");
        assert_eq!(
            credential.secret_key,
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        );
        assert_eq!(credential.token.as_deref(), Some("FwoGZXIvYXdzEXAMPLE"));
        assert_eq!(expiration.to_rfc3339(), "2025-10-24T23:00:23+00:00");
    }

    #[test]
    fn refuses_answers_without_credentials() {
        let err = parse_credentials(b"<AssumeRoleWithWebIdentityResponse/>").unwrap_err();
        assert!(err.contains("no credentials"), "{err}");
        let bad_time = SUCCESS.replace("2025-10-24T23:00:23Z", "tomorrow");
        assert!(parse_credentials(bad_time.as_bytes()).is_err());
    }

    #[test]
    fn parses_errors() {
        let body = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>
  <Message>No OpenIDConnect provider found in your account</Message></Error>
  <RequestId>c6104cbe</RequestId></ErrorResponse>"#;
        assert_eq!(
            parse_error(body.as_bytes()),
            (
                "InvalidIdentityToken".to_string(),
                "No OpenIDConnect provider found in your account".to_string()
            )
        );
        assert_eq!(
            parse_error(b"gateway timeout"),
            (String::new(), String::new())
        );
    }

    fn refused(status: u16, code: &str) -> StsError {
        StsError::Refused {
            sts: "https://sts.us-east-1.amazonaws.com".into(),
            role_arn: "arn:aws:iam::1:role/walship".into(),
            status,
            code: code.into(),
            message: "because".into(),
            retry_after_ms: None,
        }
    }

    #[test]
    fn refusals_map_to_what_the_operator_must_fix() {
        assert!(matches!(
            refused(400, "InvalidIdentityToken").to_contract(),
            Error::Unauthenticated(m) if m.contains("AWS_WEB_IDENTITY_TOKEN_FILE")
        ));
        assert!(matches!(
            refused(403, "AccessDenied").to_contract(),
            Error::PermissionDenied(m) if m.contains("arn:aws:iam::1:role/walship")
        ));
        assert!(matches!(
            refused(400, "Throttling").to_contract(),
            Error::Throttled(_)
        ));
        assert!(matches!(
            refused(503, "").to_contract(),
            Error::Transient(_)
        ));
        assert!(matches!(
            refused(501, "").to_contract(),
            Error::InvalidConfig(m) if m.contains("AWS_ENDPOINT_URL_STS")
        ));
        assert!(matches!(
            refused(400, "ValidationError").to_contract(),
            Error::InvalidConfig(m) if m.contains("AWS_ROLE_ARN")
        ));
    }

    #[test]
    fn debug_hides_the_token() {
        let provider = WebIdentity::new(
            "https://sts.example".into(),
            Role {
                arn: "arn:aws:iam::1:role/r".into(),
                session_name: "walship".into(),
            },
            "eyJsecret".into(),
        );
        assert!(!format!("{provider:?}").contains("eyJsecret"));
    }
}

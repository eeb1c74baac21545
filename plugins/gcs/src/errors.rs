//! GCS answers and transport failures as the contract's errors, with
//! messages an operator can act on: one line, naming the object, the
//! endpoint and (for auth) the service account, never a key or a token.

use walship_guest_http::{FailureKind, HttpFailure};

use crate::client::{Reply, SendError};
use crate::config::Location;
use crate::walship::storage::types::{Error, Throttled};

/// What was being done, for messages and for what a 412 means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
    List,
    Delete,
    UploadPart,
    CompleteUpload,
    AbortUpload,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::List => "list",
            Action::Delete => "delete",
            Action::UploadPart => "upload a part of",
            Action::CompleteUpload => "compose",
            Action::AbortUpload => "clean up the upload of",
        }
    }

    /// The IAM permission the action needs, for permission-denied messages.
    fn permission(self) -> &'static str {
        match self {
            Action::Read => "storage.objects.get",
            Action::List => "storage.objects.list",
            Action::Write | Action::UploadPart | Action::CompleteUpload => "storage.objects.create",
            Action::Delete | Action::AbortUpload => "storage.objects.delete",
        }
    }
}

pub struct Op<'k> {
    pub action: Action,
    /// The store's key (or list prefix) involved.
    pub key: &'k str,
    pub create_only: bool,
}

impl<'k> Op<'k> {
    pub fn new(action: Action, key: &'k str) -> Self {
        Op {
            action,
            key,
            create_only: false,
        }
    }

    pub fn create_only(mut self, create_only: bool) -> Self {
        self.create_only = create_only;
        self
    }
}

/// What messages say about the store.
pub struct Context {
    pub location: Location,
    /// `scheme://host:port`.
    pub endpoint: String,
    /// Who signs requests: `None` for an emulator (no credentials).
    pub account: Option<Account>,
}

pub struct Account {
    pub email: String,
    pub key_id: String,
}

/// The `error` object of a JSON API error reply.
#[derive(serde::Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(serde::Deserialize, Default)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(serde::Deserialize, Default)]
struct ErrorItem {
    #[serde(default)]
    reason: String,
}

/// Longest piece of a server message quoted in an error.
const MAX_QUOTE: usize = 200;

/// The server's own words: the JSON error message, or the start of the
/// body. Cut short, on one line.
fn server_says(reply: &Reply) -> (String, String) {
    let parsed: ErrorBody = serde_json::from_slice(&reply.body).unwrap_or_default();
    let mut message = if parsed.error.message.is_empty() {
        String::from_utf8_lossy(&reply.body).to_string()
    } else {
        parsed.error.message
    };
    message = one_line(&message);
    if message.len() > MAX_QUOTE {
        let mut cut = MAX_QUOTE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str("...");
    }
    let reason = parsed
        .error
        .errors
        .into_iter()
        .map(|e| e.reason)
        .find(|r| !r.is_empty())
        .unwrap_or_default();
    (message, reason)
}

pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The contract's error for a request that did not get a reply.
pub fn from_send(error: SendError, op: &Op<'_>, ctx: &Context) -> Error {
    match error {
        SendError::Credentials(why) => Error::Unauthenticated(one_line(&format!(
            "cannot {} {}: {why}",
            op.action.verb(),
            ctx.location.url_of(op.key)
        ))),
        SendError::Transport(failure) => from_transport(&failure),
    }
}

pub fn from_transport(failure: &HttpFailure) -> Error {
    let message = one_line(&failure.to_string());
    match failure.kind() {
        FailureKind::Denied => Error::PermissionDenied(message),
        FailureKind::TlsCertificate => Error::InvalidConfig(message),
        kind if kind.is_retryable() => Error::Transient(message),
        _ => Error::Other(message),
    }
}

/// The contract's error for an error reply (any status but 2xx).
pub fn from_reply(reply: &Reply, op: &Op<'_>, ctx: &Context) -> Error {
    let (message, reason) = server_says(reply);
    let status = reply.status.as_u16();
    let object = ctx.location.url_of(op.key);
    let at = &ctx.endpoint;
    let said = if reason.is_empty() {
        format!("{status} {message}")
    } else {
        format!("{status} {reason}: {message}")
    };
    let error = match status {
        404 if op.action == Action::List => Error::InvalidConfig(format!(
            "bucket {:?} does not exist at {at} ({said})",
            ctx.location.bucket
        )),
        404 => Error::NotFound(format!("{object} does not exist ({said})")),
        412 if op.create_only => Error::AlreadyExists(format!(
            "{object} already exists (create-only {} refused: {said})",
            op.action.verb()
        )),
        412 => Error::PreconditionFailed(format!(
            "cannot {} {object}: a precondition failed ({said})",
            op.action.verb()
        )),
        401 => Error::Unauthenticated(match &ctx.account {
            Some(account) => format!(
                "{at} did not accept the credentials of service account {} (key id {}) to {} \
                 {object} ({said}); retrying will not help: check that GOOGLE_APPLICATION_CREDENTIALS \
                 names a current key of an enabled service account",
                account.email,
                account.key_id,
                op.action.verb()
            ),
            None => format!(
                "{at} asks for credentials to {} {object} ({said}), but STORAGE_EMULATOR_HOST \
                 means none are sent; for an authenticated endpoint set WALSHIP_GS_ENDPOINT and \
                 GOOGLE_APPLICATION_CREDENTIALS instead",
                op.action.verb()
            ),
        }),
        403 => Error::PermissionDenied(format!(
            "{} may not {} {object} ({said}); it needs {} on bucket {:?}",
            ctx.account.as_ref().map_or_else(
                || "the caller".to_string(),
                |a| format!("service account {}", a.email)
            ),
            op.action.verb(),
            op.action.permission(),
            ctx.location.bucket
        )),
        429 => Error::Throttled(Throttled {
            message: format!(
                "{at} asked to slow down while trying to {} {object} ({said})",
                op.action.verb()
            ),
            retry_after_ms: retry_after_ms(reply),
        }),
        // A body damaged on the way: GCS refuses it when the CRC32C or MD5
        // the plugin sent does not match. Sending again can work.
        400 if message.contains("CRC32C") || message.contains("MD5") => Error::Transient(format!(
            "{at} refused {object}: the data did not match its checksum ({said})"
        )),
        // 408 request timeout, 409 a concurrent change of the same object
        // (GCS: "the object was edited during the operation"), 5xx.
        408 | 409 | 500..=599 => Error::Transient(format!(
            "cannot {} {object}: {at} answered {said}",
            op.action.verb()
        )),
        _ => Error::Other(format!(
            "cannot {} {object}: {at} answered {said}",
            op.action.verb()
        )),
    };
    one_line_error(error)
}

fn retry_after_ms(reply: &Reply) -> Option<u64> {
    let seconds: u64 = reply.header("retry-after")?.trim().parse().ok()?;
    Some(seconds.saturating_mul(1000))
}

fn one_line_error(error: Error) -> Error {
    match error {
        Error::NotFound(m) => Error::NotFound(one_line(&m)),
        Error::AlreadyExists(m) => Error::AlreadyExists(one_line(&m)),
        Error::PreconditionFailed(m) => Error::PreconditionFailed(one_line(&m)),
        Error::Unauthenticated(m) => Error::Unauthenticated(one_line(&m)),
        Error::PermissionDenied(m) => Error::PermissionDenied(one_line(&m)),
        Error::Throttled(t) => Error::Throttled(Throttled {
            message: one_line(&t.message),
            retry_after_ms: t.retry_after_ms,
        }),
        Error::Transient(m) => Error::Transient(one_line(&m)),
        Error::InvalidConfig(m) => Error::InvalidConfig(one_line(&m)),
        Error::Unsupported(m) => Error::Unsupported(one_line(&m)),
        Error::Other(m) => Error::Other(one_line(&m)),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};

    use super::*;
    use crate::config::parse_prefix;

    fn ctx(account: bool) -> Context {
        Context {
            location: parse_prefix("gs://bkt/db1").unwrap(),
            endpoint: "https://storage.googleapis.com:443".into(),
            account: account.then(|| Account {
                email: "sa@p.iam.gserviceaccount.com".into(),
                key_id: "kid-1".into(),
            }),
        }
    }

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_string()),
        }
    }

    const JSON_401: &str = r#"{"error":{"code":401,"message":"Invalid Credentials","errors":[{"reason":"authError"}]}}"#;

    #[test]
    fn statuses_map_to_what_the_host_acts_on() {
        let op = Op::new(Action::Read, "wal/1");
        let c = ctx(true);
        assert!(
            matches!(from_reply(&reply(404, "{}"), &op, &c), Error::NotFound(m) if m.contains("gs://bkt/db1/wal/1"))
        );
        assert!(matches!(
            from_reply(&reply(404, "{}"), &Op::new(Action::List, ""), &c),
            Error::InvalidConfig(m) if m.contains("bucket \"bkt\"")
        ));
        let create = Op::new(Action::Write, "wal/1").create_only(true);
        assert!(matches!(
            from_reply(&reply(412, "{}"), &create, &c),
            Error::AlreadyExists(_)
        ));
        assert!(matches!(
            from_reply(&reply(412, "{}"), &Op::new(Action::Write, "k"), &c),
            Error::PreconditionFailed(_)
        ));
        assert!(matches!(
            from_reply(&reply(503, "busy"), &op, &c),
            Error::Transient(_)
        ));
        assert!(matches!(
            from_reply(&reply(409, "{}"), &op, &c),
            Error::Transient(_)
        ));
        let mut throttled = reply(429, "{}");
        throttled
            .headers
            .insert("retry-after", "3".parse().unwrap());
        assert!(matches!(
            from_reply(&throttled, &op, &c),
            Error::Throttled(t) if t.retry_after_ms == Some(3000)
        ));
        let crc = r#"{"error":{"code":400,"message":"Provided CRC32C \"AAAAAA==\" doesn't match calculated CRC32C \"mnG7TA==\"."}}"#;
        assert!(matches!(
            from_reply(&reply(400, crc), &op, &c),
            Error::Transient(_)
        ));
        assert!(matches!(
            from_reply(&reply(400, "{}"), &op, &c),
            Error::Other(_)
        ));
    }

    #[test]
    fn auth_failures_name_the_account_and_the_fix() {
        let op = Op::new(Action::Write, "wal/1");
        let err = from_reply(&reply(401, JSON_401), &op, &ctx(true));
        let Error::Unauthenticated(m) = err else {
            panic!("{err:?}")
        };
        assert!(
            m.contains("sa@p.iam.gserviceaccount.com") && m.contains("kid-1"),
            "{m}"
        );
        assert!(m.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{m}");
        assert!(m.contains("authError: Invalid Credentials"), "{m}");
        let err = from_reply(&reply(403, "{}"), &op, &ctx(true));
        assert!(matches!(err, Error::PermissionDenied(m) if m.contains("storage.objects.create")));
        let err = from_reply(&reply(401, "{}"), &op, &ctx(false));
        assert!(matches!(err, Error::Unauthenticated(m) if m.contains("STORAGE_EMULATOR_HOST")));
    }

    #[test]
    fn messages_are_one_short_line() {
        let long = format!("line one\nline two {}", "x".repeat(1000));
        let err = from_reply(&reply(500, &long), &Op::new(Action::Read, "k"), &ctx(true));
        let Error::Transient(m) = err else {
            panic!("{err:?}")
        };
        assert!(!m.contains('\n') && m.len() < 400, "{m}");
    }

    #[test]
    fn broken_credentials_are_unauthenticated() {
        let err = from_send(
            SendError::Credentials("GOOGLE_APPLICATION_CREDENTIALS: no \"private_key\"".into()),
            &Op::new(Action::Read, "k"),
            &ctx(true),
        );
        assert!(matches!(err, Error::Unauthenticated(m) if m.contains("private_key")));
    }
}

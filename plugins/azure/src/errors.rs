//! Turns Azure's answers into the contract's errors.
//!
//! The kind decides what the host does (retry, back off, report); the
//! message is what the operator reads: one line naming the object, the
//! endpoint and, for credential problems, the setting to check. Keys and SAS
//! signatures never appear; account names, setting names and SAS
//! permissions do (they are not secret, and a credentials problem cannot be
//! found without them).
//!
//! Azure names every failure in the `x-ms-error-code` header (also on
//! answers to HEAD, which have no body), so that header and the status are
//! all a mapping needs.

use std::error::Error as StdError;

use walship_guest_http::{FailureKind, HttpFailure};

use crate::config::{self, Auth};
use crate::prefix::Location;
use crate::walship::storage::types::{Error, Throttled};

/// An Azure answer that was not a success.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// Azure's error code, such as `BlobNotFound`.
    pub code: Option<String>,
    /// The first line of Azure's `<Message>`, if the answer had a body.
    pub message: Option<String>,
    pub retry_after_ms: Option<u64>,
}

impl Reply {
    /// The failure `response` reports, if it is one.
    pub fn of<B: AsRef<[u8]>>(response: &http::Response<B>) -> Option<Reply> {
        let status = response.status();
        if status.is_success() || status.is_informational() {
            return None;
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let body = response.body().as_ref();
        let code = header("x-ms-error-code")
            .map(str::to_string)
            .or_else(|| element(body, "Code"))
            .filter(|c| c.bytes().all(|b| b.is_ascii_alphanumeric()));
        Some(Reply {
            status: status.as_u16(),
            code: code.filter(|c| !c.is_empty()),
            message: element(body, "Message")
                .and_then(|m| m.lines().next().map(|line| line.trim().to_string())),
            retry_after_ms: header("retry-after")
                .and_then(|v| v.parse::<u64>().ok())
                .map(|seconds| seconds.saturating_mul(1000)),
        })
    }

    fn code(&self) -> &str {
        self.code.as_deref().unwrap_or("")
    }
}

/// The text of `<name>` in an `<Error>` body (the code, when a proxy
/// dropped the header; the message).
fn element(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body.get(..4096).unwrap_or(body)).ok()?;
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&format!("</{name}>"))?;
    Some(text[start..end].to_string())
}

/// Azurite answers a wrong shared key signature with 403
/// `AuthorizationFailure` (Azure: `AuthenticationFailed`) and this message.
fn failed_to_authenticate(reply: &Reply) -> bool {
    reply
        .message
        .as_deref()
        .is_some_and(|m| m.starts_with("Server failed to authenticate the request"))
}

/// A body that did not match its checksum: Azure's codes, or Azurite's 400
/// `InvalidOperation` "Provided contentMD5 doesn't match."
fn checksum_mismatch(reply: &Reply) -> bool {
    matches!(
        reply.code(),
        "Md5Mismatch" | "InvalidMd5" | "Crc64Mismatch" | "InvalidCrc64"
    ) || reply
        .message
        .as_deref()
        .is_some_and(|m| m.to_ascii_lowercase().contains("md5"))
}

/// What the store was doing, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
    List,
    Delete,
    UploadPart,
    CompleteUpload,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
            Action::List => "list",
            Action::Delete => "delete",
            Action::UploadPart => "upload a block of",
            Action::CompleteUpload => "commit the blocks of",
        }
    }

    /// The SAS permission the action needs, for messages.
    fn permission(self) -> &'static str {
        match self {
            Action::Read => "r (read)",
            Action::List => "l (list)",
            Action::Delete => "d (delete)",
            Action::Write | Action::UploadPart | Action::CompleteUpload => "w (write)",
        }
    }
}

/// One operation on one key (or, for listing, key prefix).
#[derive(Clone, Copy, Debug)]
pub struct Op<'a> {
    pub action: Action,
    /// Relative to the store's prefix.
    pub key: &'a str,
    /// A create-only write: "precondition failed" means "already exists".
    pub create_only: bool,
}

impl<'a> Op<'a> {
    pub fn new(action: Action, key: &'a str) -> Self {
        Op {
            action,
            key,
            create_only: false,
        }
    }

    pub fn create_only(self, create_only: bool) -> Self {
        Op {
            create_only,
            ..self
        }
    }
}

/// How the store signs, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signer {
    SharedKey {
        setting: &'static str,
    },
    Sas {
        setting: &'static str,
        permissions: Option<String>,
    },
}

impl Signer {
    pub fn of(auth: &Auth) -> Signer {
        match auth {
            Auth::SharedKey { setting, .. } => Signer::SharedKey { setting },
            Auth::Sas { setting, .. } => Signer::Sas {
                setting,
                permissions: auth.sas_permissions().map(str::to_string),
            },
        }
    }
}

/// The store's side of every message.
#[derive(Clone, Debug)]
pub struct Context {
    pub location: Location,
    pub account: String,
    /// `scheme://host:port` requests go to.
    pub endpoint: String,
    pub signer: Signer,
}

impl Context {
    fn who(&self) -> String {
        match &self.signer {
            Signer::SharedKey { setting } => format!(
                "account {} (shared key from {})",
                self.account,
                config::describe_key_setting(setting)
            ),
            Signer::Sas {
                setting,
                permissions,
            } => format!(
                "the SAS token in {} (permissions sp={})",
                sas_setting(setting),
                permissions.as_deref().unwrap_or("?")
            ),
        }
    }

    fn not_authenticated(&self, code: &str) -> String {
        match &self.signer {
            Signer::SharedKey { setting } => format!(
                "{} did not accept the shared key signature for account {} ({code}): check {} \
                 (the account key, as the portal shows it) and that it belongs to account {}",
                self.endpoint,
                self.account,
                config::describe_key_setting(setting),
                self.account
            ),
            Signer::Sas { setting, .. } => format!(
                "{} did not accept the SAS token in {} ({code}): it is wrong, expired, not yet \
                 valid, or for another account",
                self.endpoint,
                sas_setting(setting)
            ),
        }
    }
}

fn sas_setting(setting: &str) -> String {
    if setting == config::CONNECTION_STRING {
        format!("the SharedAccessSignature of {}", config::CONNECTION_STRING)
    } else {
        setting.to_string()
    }
}

/// The contract's error for an Azure error reply to `op`.
pub fn from_reply(reply: &Reply, op: &Op<'_>, cx: &Context) -> Error {
    let target = cx.location.url_of(op.key);
    let container = &cx.location.container;
    let verb = op.action.verb();
    let endpoint = &cx.endpoint;
    let status = reply.status;
    let code = reply.code();
    let said = if code.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status} {code}")
    };
    let error = match (status, code) {
        (_, "ContainerNotFound") => Error::InvalidConfig(format!(
            "container {container} does not exist in account {} at {endpoint} (create it, or fix \
             the prefix)",
            cx.account
        )),
        (_, "BlobAlreadyExists") if op.create_only => {
            Error::AlreadyExists(format!("{target} already exists"))
        }
        (412, _) | (_, "ConditionNotMet") if op.create_only => {
            Error::AlreadyExists(format!("{target} already exists"))
        }
        (412, _) | (_, "ConditionNotMet") => Error::PreconditionFailed(format!(
            "a precondition failed trying to {verb} {target} ({said})"
        )),
        (404, _) | (_, "BlobNotFound") => Error::NotFound(format!("{target} not found")),
        (
            _,
            "AuthenticationFailed" | "NoAuthenticationInformation" | "InvalidAuthenticationInfo",
        )
        | (401, _) => Error::Unauthenticated(cx.not_authenticated(if code.is_empty() {
            "HTTP 401"
        } else {
            code
        })),
        (403, "AuthorizationFailure") if failed_to_authenticate(reply) => {
            Error::Unauthenticated(cx.not_authenticated(code))
        }
        (
            _,
            "AuthorizationPermissionMismatch"
            | "AuthorizationFailure"
            | "AuthorizationResourceTypeMismatch"
            | "AuthorizationServiceMismatch",
        ) => Error::PermissionDenied(match &cx.signer {
            Signer::Sas { .. } => format!(
                "{} does not allow to {verb} {target} ({code}): it needs the {} permission",
                cx.who(),
                op.action.permission()
            ),
            Signer::SharedKey { .. } => format!(
                "{} is not allowed to {verb} {target} ({code}; network rules or a policy of the \
                 account?)",
                cx.who()
            ),
        }),
        (_, "AuthorizationProtocolMismatch") => Error::PermissionDenied(format!(
            "{} does not allow this protocol at {endpoint} ({code}): the SAS token requires https",
            cx.who()
        )),
        (_, "AuthorizationSourceIPMismatch") => Error::PermissionDenied(format!(
            "{} does not allow requests from this machine's address ({code})",
            cx.who()
        )),
        (403, _) => {
            Error::PermissionDenied(format!("{} may not {verb} {target} ({said})", cx.who()))
        }
        (_, "Md5Mismatch" | "InvalidMd5" | "Crc64Mismatch" | "InvalidCrc64") | (400, _)
            if checksum_mismatch(reply) =>
        {
            Error::Transient(format!(
                "{endpoint} rejected the data for {target}: it did not match its checksum \
                 (damaged in transit; {said})"
            ))
        }
        (429 | 503, _) | (_, "ServerBusy") => Error::Throttled(Throttled {
            message: format!("{endpoint} asked to slow down trying to {verb} {target} ({said})"),
            retry_after_ms: reply.retry_after_ms,
        }),
        (500.., _) | (_, "InternalError" | "OperationTimedOut") => {
            Error::Transient(format!("{endpoint} failed to {verb} {target} ({said})"))
        }
        (_, "UnsupportedHeader" | "UnsupportedQueryParameter" | "UnsupportedHttpVerb") => {
            Error::Unsupported(format!(
                "{endpoint} does not support what is needed to {verb} {target} ({said})"
            ))
        }
        _ => Error::Other(format!("{endpoint} refused to {verb} {target} ({said})")),
    };
    one_line_error(error)
}

/// A request that got no answer.
pub fn from_transport(failure: &HttpFailure) -> Error {
    let message = one_line(&failure.to_string());
    match failure.kind() {
        FailureKind::Denied => Error::PermissionDenied(message),
        FailureKind::TlsCertificate => Error::InvalidConfig(message),
        kind if kind.is_retryable() => Error::Transient(message),
        _ => Error::Other(message),
    }
}

/// An object_store call that failed; `reply` is the Azure error reply the
/// hooks recorded, if the failure was one.
pub fn from_object_store(
    err: &object_store::Error,
    reply: Option<&Reply>,
    op: &Op<'_>,
    cx: &Context,
) -> Error {
    if let Some(failure) = find::<HttpFailure>(err) {
        return from_transport(failure);
    }
    if let Some(reply) = reply {
        return from_reply(reply, op, cx);
    }
    use object_store::Error as E;
    let target = cx.location.url_of(op.key);
    let verb = op.action.verb();
    let detail = err.to_string();
    let error = match err {
        E::NotFound { .. } => Error::NotFound(format!("{target} not found")),
        E::PermissionDenied { .. } => {
            Error::PermissionDenied(format!("{} may not {verb} {target}: {detail}", cx.who()))
        }
        E::Unauthenticated { .. } => Error::Unauthenticated(format!(
            "{} was not accepted trying to {verb} {target}: {detail}",
            cx.who()
        )),
        E::NotSupported { .. } | E::NotImplemented { .. } => {
            Error::Unsupported(format!("cannot {verb} {target}: {detail}"))
        }
        _ => Error::Other(format!("cannot {verb} {target}: {detail}")),
    };
    one_line_error(error)
}

/// The first error in `err`'s source chain that is a `T`.
fn find<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(found) = err.downcast_ref::<T>() {
            return Some(found);
        }
        next = err.source();
    }
    None
}

/// Messages are one line.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn one_line_error(error: Error) -> Error {
    map_message(error, |m| one_line(&m))
}

/// `error` with its message changed by `f`, kind kept.
pub fn map_message(error: Error, f: impl FnOnce(String) -> String) -> Error {
    match error {
        Error::NotFound(m) => Error::NotFound(f(m)),
        Error::AlreadyExists(m) => Error::AlreadyExists(f(m)),
        Error::PreconditionFailed(m) => Error::PreconditionFailed(f(m)),
        Error::Unauthenticated(m) => Error::Unauthenticated(f(m)),
        Error::PermissionDenied(m) => Error::PermissionDenied(f(m)),
        Error::Throttled(t) => Error::Throttled(Throttled {
            message: f(t.message),
            retry_after_ms: t.retry_after_ms,
        }),
        Error::Transient(m) => Error::Transient(f(m)),
        Error::InvalidConfig(m) => Error::InvalidConfig(f(m)),
        Error::Unsupported(m) => Error::Unsupported(f(m)),
        Error::Other(m) => Error::Other(f(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx(signer: Signer) -> Context {
        Context {
            location: crate::prefix::parse("azure://archive/db1").unwrap(),
            account: "walship".into(),
            endpoint: "https://walship.blob.core.windows.net:443".into(),
            signer,
        }
    }

    fn shared_key() -> Context {
        cx(Signer::SharedKey {
            setting: config::ACCESS_KEY,
        })
    }

    fn sas(permissions: &str) -> Context {
        cx(Signer::Sas {
            setting: config::SAS_TOKEN,
            permissions: Some(permissions.into()),
        })
    }

    fn reply(status: u16, code: &str) -> Reply {
        Reply {
            status,
            code: (!code.is_empty()).then(|| code.to_string()),
            message: None,
            retry_after_ms: None,
        }
    }

    const READ: Op<'static> = Op {
        action: Action::Read,
        key: "wal/1",
        create_only: false,
    };
    const CREATE: Op<'static> = Op {
        action: Action::Write,
        key: "wal/1",
        create_only: true,
    };

    fn message(e: &Error) -> String {
        match e {
            Error::Throttled(t) => t.message.clone(),
            Error::NotFound(m)
            | Error::AlreadyExists(m)
            | Error::PreconditionFailed(m)
            | Error::Unauthenticated(m)
            | Error::PermissionDenied(m)
            | Error::Transient(m)
            | Error::InvalidConfig(m)
            | Error::Unsupported(m)
            | Error::Other(m) => m.clone(),
        }
    }

    #[test]
    fn wrong_key_is_unauthenticated_naming_the_setting() {
        let e = from_reply(&reply(403, "AuthenticationFailed"), &READ, &shared_key());
        assert!(matches!(e, Error::Unauthenticated(_)), "{e:?}");
        let m = message(&e);
        assert!(
            m.contains("AZURE_STORAGE_ACCESS_KEY") && m.contains("walship"),
            "{m}"
        );

        let e = from_reply(&reply(403, "AuthenticationFailed"), &READ, &sas("rl"));
        let m = message(&e);
        assert!(matches!(e, Error::Unauthenticated(_)), "{e:?}");
        assert!(
            m.contains("AZURE_STORAGE_SAS_TOKEN") && m.contains("expired"),
            "{m}"
        );
    }

    #[test]
    fn azurites_authorization_failure_with_a_wrong_key_is_unauthenticated() {
        let mut azurite = reply(403, "AuthorizationFailure");
        azurite.message = Some(
            "Server failed to authenticate the request. Make sure the value of the \
             Authorization header is formed correctly including the signature."
                .into(),
        );
        let e = from_reply(&azurite, &READ, &shared_key());
        assert!(matches!(e, Error::Unauthenticated(_)), "{e:?}");
        // Azure's own AuthorizationFailure (network rules) is a permission.
        let mut azure = reply(403, "AuthorizationFailure");
        azure.message = Some("This request is not authorized to perform this operation.".into());
        let e = from_reply(&azure, &READ, &shared_key());
        assert!(matches!(e, Error::PermissionDenied(_)), "{e:?}");
    }

    #[test]
    fn a_read_only_sas_is_permission_denied_naming_the_permission() {
        for code in ["AuthorizationPermissionMismatch", "AuthorizationFailure"] {
            let e = from_reply(&reply(403, code), &CREATE, &sas("rl"));
            assert!(matches!(e, Error::PermissionDenied(_)), "{e:?}");
            let m = message(&e);
            assert!(m.contains("sp=rl") && m.contains("w (write)"), "{m}");
            assert!(m.contains("azure://archive/db1/wal/1"), "{m}");
        }
    }

    #[test]
    fn create_conflicts_are_already_exists() {
        for (status, code) in [
            (409, "BlobAlreadyExists"),
            (412, "ConditionNotMet"),
            (412, ""),
        ] {
            let e = from_reply(&reply(status, code), &CREATE, &shared_key());
            assert!(
                matches!(e, Error::AlreadyExists(_)),
                "{status} {code}: {e:?}"
            );
        }
        let e = from_reply(&reply(412, "ConditionNotMet"), &READ, &shared_key());
        assert!(matches!(e, Error::PreconditionFailed(_)), "{e:?}");
    }

    #[test]
    fn missing_blob_and_missing_container() {
        let e = from_reply(&reply(404, "BlobNotFound"), &READ, &shared_key());
        assert!(matches!(e, Error::NotFound(_)), "{e:?}");
        let e = from_reply(&reply(404, ""), &READ, &shared_key());
        assert!(matches!(e, Error::NotFound(_)), "{e:?}");
        let e = from_reply(&reply(404, "ContainerNotFound"), &READ, &shared_key());
        assert!(matches!(e, Error::InvalidConfig(_)), "{e:?}");
        assert!(message(&e).contains("container archive"), "{e:?}");
    }

    #[test]
    fn busy_and_failing_servers_are_retried() {
        let mut busy = reply(503, "ServerBusy");
        busy.retry_after_ms = Some(2000);
        match from_reply(&busy, &READ, &shared_key()) {
            Error::Throttled(t) => assert_eq!(t.retry_after_ms, Some(2000)),
            e => panic!("{e:?}"),
        }
        for (status, code) in [
            (500, "InternalError"),
            (500, "OperationTimedOut"),
            (502, ""),
        ] {
            let e = from_reply(&reply(status, code), &READ, &shared_key());
            assert!(matches!(e, Error::Transient(_)), "{status} {code}: {e:?}");
        }
        let e = from_reply(&reply(400, "Md5Mismatch"), &CREATE, &shared_key());
        assert!(matches!(e, Error::Transient(_)), "{e:?}");
        let mut azurite = reply(400, "InvalidOperation");
        azurite.message = Some("Provided contentMD5 doesn't match.".into());
        let e = from_reply(&azurite, &CREATE, &shared_key());
        assert!(matches!(e, Error::Transient(_)), "{e:?}");
        let e = from_reply(&reply(400, "InvalidOperation"), &CREATE, &shared_key());
        assert!(matches!(e, Error::Other(_)), "{e:?}");
    }

    #[test]
    fn replies_are_read_from_the_header_or_the_body() {
        let response = http::Response::builder()
            .status(403)
            .header("x-ms-error-code", "AuthorizationPermissionMismatch")
            .body(Vec::new())
            .unwrap();
        assert_eq!(
            Reply::of(&response).unwrap().code.as_deref(),
            Some("AuthorizationPermissionMismatch")
        );
        let response = http::Response::builder()
            .status(409)
            .body(
                b"<?xml version=\"1.0\"?><Error><Code>BlobAlreadyExists</Code><Message>x</Message></Error>"
                    .to_vec(),
            )
            .unwrap();
        let reply = Reply::of(&response).unwrap();
        assert_eq!(reply.code.as_deref(), Some("BlobAlreadyExists"));
        assert_eq!(reply.message.as_deref(), Some("x"));
        let ok = http::Response::builder()
            .status(201)
            .body(Vec::new())
            .unwrap();
        assert_eq!(Reply::of(&ok), None);
    }

    #[test]
    fn messages_are_one_line() {
        let e = one_line_error(Error::Other("a\n  b".into()));
        assert_eq!(message(&e), "a b");
    }
}

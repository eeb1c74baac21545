//! Turns object_store's failures into the contract's errors.
//!
//! The kind decides what the host does (retry, back off, report), and the
//! message is what the operator reads: one line naming the object, the
//! endpoint and, where there is one, the setting to fix. Secrets never
//! appear; access key ids and role ARNs do (they are not secret, and without
//! them a credentials problem cannot be found).
//!
//! Sources, most precise first: a transport failure from walship-guest-http
//! (denied, no connection, TLS), an STS refusal, the S3 error reply the hooks
//! recorded (status, `<Code>`), and last object_store's own error variant.

use std::error::Error as StdError;

use walship_guest_http::{FailureKind, HttpFailure};

use crate::hooks::S3Reply;
use crate::prefix::Location;
use crate::walship::storage::types::{Error, Throttled};
use crate::web_identity::StsError;

/// What the store was doing, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Read,
    Write,
    List,
    Delete,
    StartUpload,
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
            Action::StartUpload => "start a multipart upload of",
            Action::UploadPart => "upload a part of",
            Action::CompleteUpload => "complete the multipart upload of",
            Action::AbortUpload => "abort the multipart upload of",
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

/// Who signs the requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signer {
    AccessKey {
        id: String,
        with_session_token: bool,
    },
    WebIdentity {
        role_arn: String,
    },
}

/// The store's side of every message.
#[derive(Clone, Debug)]
pub struct Context {
    pub location: Location,
    pub region: String,
    /// `scheme://host:port` requests go to.
    pub endpoint: String,
    pub signer: Signer,
}

impl Context {
    fn who(&self) -> String {
        match &self.signer {
            Signer::AccessKey { id, .. } => format!("access key id {id}"),
            Signer::WebIdentity { role_arn } => format!("role {role_arn} (web identity)"),
        }
    }

    fn signature_mismatch(&self) -> String {
        match &self.signer {
            Signer::AccessKey { id, .. } => format!(
                "the secret key does not match access key id {id} (check AWS_SECRET_ACCESS_KEY)"
            ),
            Signer::WebIdentity { role_arn } => format!(
                "{} rejected the signature made with the temporary credentials of {role_arn} \
                 (do AWS_ENDPOINT_URL_STS and the S3 endpoint belong to the same service?)",
                self.endpoint
            ),
        }
    }

    fn unknown_key(&self) -> String {
        match &self.signer {
            Signer::AccessKey { id, .. } => format!(
                "access key id {id} is not known to {} (check AWS_ACCESS_KEY_ID and the endpoint \
                 settings)",
                self.endpoint
            ),
            Signer::WebIdentity { role_arn } => format!(
                "the temporary credentials STS issued for {role_arn} are not known to {} (do \
                 AWS_ENDPOINT_URL_STS and the S3 endpoint belong to the same service?)",
                self.endpoint
            ),
        }
    }

    fn bad_token(&self, code: &str) -> String {
        match &self.signer {
            Signer::AccessKey {
                id,
                with_session_token: true,
            } => format!(
                "{} rejected the session token of access key id {id} ({code}); AWS_SESSION_TOKEN \
                 has expired or belongs to other keys",
                self.endpoint
            ),
            Signer::AccessKey { id, .. } => format!(
                "{} rejected access key id {id} ({code}); temporary keys also need \
                 AWS_SESSION_TOKEN",
                self.endpoint
            ),
            Signer::WebIdentity { role_arn } => format!(
                "{} rejected the temporary credentials of {role_arn} ({code}); they have expired: \
                 the web identity token is exchanged again when the store is next opened",
                self.endpoint
            ),
        }
    }
}

/// The contract's error for `err`, which happened doing `op`. `reply` is the
/// S3 error reply the hooks recorded, if the failure was one.
pub fn to_contract(
    err: &object_store::Error,
    reply: Option<&S3Reply>,
    op: &Op<'_>,
    cx: &Context,
) -> Error {
    if let Some(failure) = find::<HttpFailure>(err) {
        return from_transport(failure);
    }
    if let Some(sts) = find::<StsError>(err) {
        return sts.to_contract();
    }
    if let Some(reply) = reply {
        return from_reply(reply, op, cx);
    }
    if let Some(http) = find::<object_store::client::HttpError>(err) {
        use object_store::client::HttpErrorKind as K;
        let message = one_line(&format!(
            "{} failed to {} {}: {http}",
            cx.endpoint,
            op.action.verb(),
            cx.location.url_of(op.key)
        ));
        return match http.kind() {
            K::Connect | K::Request | K::Timeout | K::Interrupted => Error::Transient(message),
            _ => Error::Other(message),
        };
    }
    from_variant(err, op, cx)
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

/// An S3 error reply.
pub fn from_reply(reply: &S3Reply, op: &Op<'_>, cx: &Context) -> Error {
    let target = cx.location.url_of(op.key);
    let bucket = &cx.location.bucket;
    let verb = op.action.verb();
    let endpoint = &cx.endpoint;
    let said = reply.said();
    let status = reply.status;
    // Per-key DeleteObjects failures have a code but no status of their own.
    let http = match status {
        0 => String::new(),
        status => format!(": HTTP {status}"),
    };
    let code = reply.code.as_deref().unwrap_or("");
    let error = match (status, code) {
        (_, "NoSuchBucket") => Error::InvalidConfig(format!(
            "bucket {bucket} does not exist at endpoint {endpoint} (check the prefix, AWS_REGION \
             and the endpoint settings)"
        )),
        (_, "NoSuchUpload") => Error::NotFound(format!(
            "the multipart upload of {target} does not exist (completed or aborted already?)"
        )),
        (404, _) | (_, "NoSuchKey") => Error::NotFound(format!("{target} not found")),
        (412, _) | (_, "PreconditionFailed") if op.create_only => {
            Error::AlreadyExists(format!("{target} already exists"))
        }
        (412, _) | (_, "PreconditionFailed") => Error::PreconditionFailed(format!(
            "a precondition failed trying to {verb} {target}{said}"
        )),
        // S3 aborted this conditional write for a concurrent one to the same
        // key still in flight: which one wins is not known yet, so this is
        // not "already exists" (the other may yet fail). A retry learns it.
        (409, "ConditionalRequestConflict") => Error::Transient(format!(
            "another write of {target} was in progress; retrying will tell whether it \
             succeeded{said}"
        )),
        (_, "SignatureDoesNotMatch") => Error::Unauthenticated(cx.signature_mismatch()),
        (_, "InvalidAccessKeyId" | "NotSignedUp") => Error::Unauthenticated(cx.unknown_key()),
        (_, "ExpiredToken" | "InvalidToken" | "TokenRefreshRequired") => {
            Error::Unauthenticated(cx.bad_token(code))
        }
        (_, "RequestTimeTooSkewed") => Error::Unauthenticated(format!(
            "{endpoint} refused the request because this machine's clock is more than 15 minutes \
             off; fix the clock (NTP){said}"
        )),
        (301, _) | (_, "PermanentRedirect" | "AuthorizationHeaderMalformed") => {
            Error::InvalidConfig(format!(
                "bucket {bucket} is not served by {endpoint} in region {} (set AWS_REGION to the \
                 bucket's region){said}",
                cx.region
            ))
        }
        (429, _)
        | (503, "")
        | (
            _,
            "SlowDown"
            | "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "TooManyRequests"
            | "TooManyRequestsException",
        ) => Error::Throttled(Throttled {
            message: format!("{endpoint} asked to slow down trying to {verb} {target}{said}"),
            retry_after_ms: reply.retry_after_ms,
        }),
        (_, "BadDigest" | "XAmzContentSHA256Mismatch" | "InvalidDigest" | "IncompleteBody") => {
            Error::Transient(format!(
                "{endpoint} rejected the data for {target}: it did not match its checksum \
                 (damaged in transit){said}"
            ))
        }
        // Never "not found": without s3:ListBucket S3 answers 403 for a key
        // that does not exist, and a restore must not take a forbidden WAL
        // file for a missing one (that would end recovery early).
        (403, _) | (_, "AccessDenied" | "AllAccessDisabled" | "AccountProblem")
            if matches!(op.action, Action::Read) =>
        {
            Error::PermissionDenied(format!(
                "the credentials of {} are valid but not allowed to {verb} {target}{said}; \
                 if the object may simply not exist, grant s3:ListBucket on bucket {bucket}: \
                 without it S3 answers 403 for a missing key, and walship cannot tell a missing \
                 WAL file from a forbidden one",
                cx.who()
            ))
        }
        (403, _) | (_, "AccessDenied" | "AllAccessDisabled" | "AccountProblem") => {
            Error::PermissionDenied(format!(
                "the credentials of {} are valid but not allowed to {verb} {target}{said}",
                cx.who()
            ))
        }
        (401, _) => Error::Unauthenticated(format!(
            "{endpoint} did not accept the credentials of {} trying to {verb} {target}{said}",
            cx.who()
        )),
        (501, _) | (_, "NotImplemented") => Error::Unsupported(format!(
            "{endpoint} does not implement what is needed to {verb} {target}{said}"
        )),
        (500.., _) | (_, "InternalError" | "ServiceUnavailable" | "RequestTimeout") => {
            Error::Transient(format!("{endpoint} failed to {verb} {target}{http}{said}"))
        }
        _ => Error::Other(format!("{endpoint} refused to {verb} {target}{http}{said}")),
    };
    one_line_error(error)
}

/// What is left: object_store's own classification.
fn from_variant(err: &object_store::Error, op: &Op<'_>, cx: &Context) -> Error {
    use object_store::Error as E;
    let target = cx.location.url_of(op.key);
    let verb = op.action.verb();
    let detail = err.to_string();
    let error = match err {
        E::NotFound { .. } => Error::NotFound(format!("{target} not found")),
        E::AlreadyExists { .. } => Error::AlreadyExists(format!("{target} already exists")),
        E::Precondition { .. } | E::NotModified { .. } if op.create_only => {
            Error::AlreadyExists(format!("{target} already exists"))
        }
        E::Precondition { .. } | E::NotModified { .. } => {
            Error::PreconditionFailed(format!("cannot {verb} {target}: {detail}"))
        }
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
pub fn find<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(found) = err.downcast_ref::<T>() {
            return Some(found);
        }
        next = err.source();
    }
    None
}

/// Messages are one line: S3's and object_store's texts may span several.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
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

/// The S3 error code in one of object_store's per-key DeleteObjects errors
/// ("DeleteObjects request failed for key K: MESSAGE (code: CODE)"); its
/// error type is private, so its text is all there is.
pub fn delete_failure_code(err: &object_store::Error) -> Option<String> {
    let text = err.to_string();
    let (_, tail) = text.rsplit_once("(code: ")?;
    let code = tail.strip_suffix(')')?;
    (!code.is_empty() && code.chars().all(|c| c.is_ascii_alphanumeric())).then(|| code.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx(signer: Signer) -> Context {
        Context {
            location: crate::prefix::parse("s3://archive/db1").unwrap(),
            region: "eu-west-1".into(),
            endpoint: "https://archive.s3.eu-west-1.amazonaws.com:443".into(),
            signer,
        }
    }

    fn static_key() -> Context {
        cx(Signer::AccessKey {
            id: "AKIAEXAMPLE".into(),
            with_session_token: false,
        })
    }

    fn reply(status: u16, code: &str) -> S3Reply {
        S3Reply {
            status,
            code: (!code.is_empty()).then(|| code.to_string()),
            message: None,
            retry_after_ms: None,
        }
    }

    fn map(status: u16, code: &str, op: Op<'_>) -> Error {
        from_reply(&reply(status, code), &op, &static_key())
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

    #[test]
    fn missing_things() {
        assert!(
            matches!(map(404, "NoSuchKey", READ), Error::NotFound(m) if m == "s3://archive/db1/wal/1 not found")
        );
        assert!(matches!(map(404, "", READ), Error::NotFound(_)));
        assert!(matches!(
            map(404, "NoSuchBucket", READ),
            Error::InvalidConfig(m) if m.contains("bucket archive does not exist at endpoint https://archive.s3")
        ));
        assert!(
            matches!(map(404, "NoSuchUpload", READ), Error::NotFound(m) if m.contains("multipart"))
        );
    }

    #[test]
    fn preconditions() {
        assert!(
            matches!(map(412, "PreconditionFailed", CREATE), Error::AlreadyExists(m) if m.contains("wal/1"))
        );
        assert!(matches!(map(412, "", READ), Error::PreconditionFailed(_)));
        assert!(matches!(
            map(409, "ConditionalRequestConflict", CREATE),
            Error::Transient(_)
        ));
    }

    #[test]
    fn credentials() {
        assert!(matches!(
            map(403, "SignatureDoesNotMatch", READ),
            Error::Unauthenticated(m)
                if m == "the secret key does not match access key id AKIAEXAMPLE (check AWS_SECRET_ACCESS_KEY)"
        ));
        assert!(matches!(
            map(403, "InvalidAccessKeyId", READ),
            Error::Unauthenticated(m) if m.starts_with("access key id AKIAEXAMPLE is not known to https://archive.s3")
        ));
        assert!(
            matches!(map(400, "ExpiredToken", READ), Error::Unauthenticated(m) if m.contains("AWS_SESSION_TOKEN"))
        );
        let web = cx(Signer::WebIdentity {
            role_arn: "arn:aws:iam::1:role/w".into(),
        });
        assert!(matches!(
            from_reply(&reply(400, "ExpiredToken"), &READ, &web),
            Error::Unauthenticated(m) if m.contains("web identity")
        ));
        assert!(matches!(
            map(403, "AccessDenied", READ),
            Error::PermissionDenied(m)
                if m.contains("valid but not allowed to read s3://archive/db1/wal/1") && m.contains("AKIAEXAMPLE")
        ));
        assert!(matches!(map(403, "", READ), Error::PermissionDenied(_)));
        // A read refused with 403 (a missing key, to a role without
        // s3:ListBucket) is never "not found", and says what to grant.
        assert!(matches!(
            map(403, "", READ),
            Error::PermissionDenied(m) if m.contains("s3:ListBucket") && m.contains("missing")
        ));
        assert!(matches!(
            map(403, "AccessDenied", CREATE),
            Error::PermissionDenied(m) if !m.contains("ListBucket")
        ));
        assert!(matches!(
            map(400, "AuthorizationHeaderMalformed", READ),
            Error::InvalidConfig(m) if m.contains("AWS_REGION")
        ));
    }

    #[test]
    fn throttling_and_server_trouble() {
        let mut slow = reply(503, "SlowDown");
        slow.retry_after_ms = Some(2000);
        match from_reply(&slow, &READ, &static_key()) {
            Error::Throttled(t) => assert_eq!(t.retry_after_ms, Some(2000)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(map(429, "", READ), Error::Throttled(_)));
        assert!(
            matches!(map(503, "", READ), Error::Throttled(_)),
            "HEAD's bodiless SlowDown"
        );
        assert!(matches!(
            map(500, "InternalError", READ),
            Error::Transient(_)
        ));
        assert!(matches!(map(502, "", READ), Error::Transient(_)));
        assert!(matches!(
            map(200, "InternalError", CREATE),
            Error::Transient(_)
        ));
        assert!(matches!(map(400, "BadDigest", CREATE), Error::Transient(_)));
        assert!(matches!(
            map(501, "NotImplemented", READ),
            Error::Unsupported(_)
        ));
        assert!(
            matches!(map(400, "InvalidArgument", READ), Error::Other(m) if m.contains("HTTP 400"))
        );
        assert!(matches!(
            map(0, "InvalidArgument", READ),
            Error::Other(m) if !m.contains("HTTP") && m.contains("InvalidArgument")
        ));
    }

    #[test]
    fn messages_are_one_line() {
        let mut r = reply(400, "InvalidArgument");
        r.message = Some("line one\nline two".into());
        match from_reply(&r, &READ, &static_key()) {
            Error::Other(m) => assert!(!m.contains('\n'), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn transport_failures() {
        let denied = HttpFailure::new(FailureKind::Denied, "evil.example:443", "denied");
        assert!(
            matches!(from_transport(&denied), Error::PermissionDenied(m) if m.contains("walship host denied"))
        );
        let refused = HttpFailure::new(FailureKind::Connect, "127.0.0.1:9", "connection refused");
        assert!(matches!(from_transport(&refused), Error::Transient(_)));
        let tls = HttpFailure::new(FailureKind::TlsCertificate, "minio:9000", "unknown issuer");
        assert!(
            matches!(from_transport(&tls), Error::InvalidConfig(m) if m.contains("WALSHIP_CA_FILE"))
        );
    }

    #[test]
    fn transport_failures_are_found_inside_object_store_errors() {
        let failure = HttpFailure::new(FailureKind::Timeout, "h:1", "timed out");
        let http = object_store::client::HttpError::new(
            object_store::client::HttpErrorKind::Timeout,
            failure,
        );
        let err = object_store::Error::Generic {
            store: "S3",
            source: Box::new(http),
        };
        let mapped = to_contract(&err, Some(&reply(500, "")), &READ, &static_key());
        assert!(matches!(mapped, Error::Transient(m) if m.contains("did not answer in time")));
    }

    #[test]
    fn object_store_variants_as_a_last_resort() {
        let err = object_store::Error::Precondition {
            path: "db1/wal/1".into(),
            source: "412".into(),
        };
        assert!(matches!(
            to_contract(&err, None, &CREATE, &static_key()),
            Error::AlreadyExists(_)
        ));
        assert!(matches!(
            to_contract(&err, None, &READ, &static_key()),
            Error::PreconditionFailed(_)
        ));
    }

    #[test]
    fn delete_failure_codes() {
        let err = object_store::Error::Generic {
            store: "S3",
            source:
                "DeleteObjects request failed for key db1/a: Access Denied (code: AccessDenied)"
                    .into(),
        };
        assert_eq!(delete_failure_code(&err).as_deref(), Some("AccessDenied"));
        let other = object_store::Error::Generic {
            store: "S3",
            source: "something else".into(),
        };
        assert_eq!(delete_failure_code(&other), None);
    }
}

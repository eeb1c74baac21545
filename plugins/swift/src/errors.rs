//! Swift's answers as the contract's errors, with messages an operator can
//! act on: one line, naming the object and the operation, never a token,
//! key or password (response bodies are not quoted, except SLO's own
//! one-line explanations of a refused manifest).

use std::fmt;

use walship_guest_http::{FailureKind, HttpFailure};

use crate::walship::storage::types::{Error, Throttled};

/// What the plugin was doing, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Head,
    Get,
    Put,
    CreateOnlyPut,
    List,
    Delete,
    UploadPart,
    CompleteUpload,
    AbortUpload,
    Info,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Head => "head",
            Action::Get => "get",
            Action::Put => "put",
            Action::CreateOnlyPut => "create",
            Action::List => "list",
            Action::Delete => "delete",
            Action::UploadPart => "upload a segment of",
            Action::CompleteUpload => "put the large-object manifest of",
            Action::AbortUpload => "delete the segments of",
            Action::Info => "read /info of",
        })
    }
}

/// One operation on one object (or listing prefix), named as the operator
/// knows it: `swift://container/path/key`.
#[derive(Clone, Debug)]
pub struct Op {
    pub action: Action,
    pub what: String,
}

impl Op {
    pub fn new(action: Action, what: impl Into<String>) -> Op {
        Op {
            action,
            what: what.into(),
        }
    }
}

/// The contract's error for an HTTP answer that was not a success. A `401`
/// reaches here only after `session.rs` authenticated again.
pub fn from_status(op: &Op, status: u16, headers: &http::HeaderMap, detail: &str) -> Error {
    let Op { action, what } = op;
    let at = |s: &str| one_line(&format!("cannot {action} {what}: {s}"));
    match status {
        401 => Error::Unauthenticated(at(
            "Swift refused the token (HTTP 401) even after authenticating again: check that \
             the storage URL (OS_STORAGE_URL) belongs to the user's account",
        )),
        403 => Error::PermissionDenied(at(
            "the credentials are valid but not allowed to do this (HTTP 403); check the \
             container's ACLs and the user's roles",
        )),
        404 => Error::NotFound(at("not found (HTTP 404)")),
        412 if *action == Action::CreateOnlyPut || *action == Action::CompleteUpload => {
            Error::AlreadyExists(at("the key is taken (HTTP 412 to If-None-Match: *)"))
        }
        412 => Error::PreconditionFailed(at("precondition failed (HTTP 412)")),
        422 => Error::Transient(at(
            "the body Swift received does not match its MD5 (HTTP 422: damaged in transit)",
        )),
        429 | 498 => Error::Throttled(Throttled {
            message: at(&format!("Swift asked to slow down (HTTP {status})")),
            retry_after_ms: retry_after_ms(headers),
        }),
        408 | 409 | 500..=599 => Error::Transient(at(&format!(
            "Swift answered HTTP {status}{}",
            suffix(detail)
        ))),
        _ => Error::Other(at(&format!(
            "Swift answered HTTP {status}{}",
            suffix(detail)
        ))),
    }
}

fn suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

/// A request that got no HTTP answer.
pub fn from_failure(op: &Op, failure: &HttpFailure) -> Error {
    let message = one_line(&format!("cannot {} {}: {failure}", op.action, op.what));
    match failure.kind() {
        kind if kind.is_retryable() => Error::Transient(message),
        FailureKind::Denied => Error::PermissionDenied(message),
        _ => Error::Other(message),
    }
}

/// `Retry-After` in seconds, as milliseconds.
fn retry_after_ms(headers: &http::HeaderMap) -> Option<u64> {
    let seconds: f64 = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (seconds.is_finite() && seconds >= 0.0).then_some((seconds * 1000.0) as u64)
}

/// Messages are one line, and not endless.
pub fn one_line(text: &str) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.len() > 600 {
        let mut end = 600;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push_str("...");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(action: Action) -> Op {
        Op::new(action, "swift://c/p/k")
    }

    #[test]
    fn statuses_map_to_variants_the_host_acts_on() {
        let h = http::HeaderMap::new();
        assert!(matches!(
            from_status(&op(Action::Get), 404, &h, ""),
            Error::NotFound(_)
        ));
        assert!(matches!(
            from_status(&op(Action::CreateOnlyPut), 412, &h, ""),
            Error::AlreadyExists(_)
        ));
        assert!(matches!(
            from_status(&op(Action::CompleteUpload), 412, &h, ""),
            Error::AlreadyExists(_)
        ));
        assert!(matches!(
            from_status(&op(Action::Put), 412, &h, ""),
            Error::PreconditionFailed(_)
        ));
        assert!(matches!(
            from_status(&op(Action::Put), 401, &h, ""),
            Error::Unauthenticated(_)
        ));
        assert!(matches!(
            from_status(&op(Action::Put), 403, &h, ""),
            Error::PermissionDenied(_)
        ));
        assert!(matches!(
            from_status(&op(Action::Put), 422, &h, ""),
            Error::Transient(_)
        ));
        assert!(matches!(
            from_status(&op(Action::Put), 503, &h, ""),
            Error::Transient(_)
        ));
        assert!(matches!(
            from_status(&op(Action::Put), 400, &h, ""),
            Error::Other(_)
        ));
    }

    #[test]
    fn throttling_carries_the_hint() {
        let mut h = http::HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        let Error::Throttled(t) = from_status(&op(Action::Put), 498, &h, "") else {
            panic!()
        };
        assert_eq!(t.retry_after_ms, Some(2000));
        assert!(t.message.contains("swift://c/p/k"), "{}", t.message);
    }

    #[test]
    fn denied_requests_are_permission_denied_and_named() {
        let failure = HttpFailure::new(FailureKind::Denied, "10.0.0.1:8080", "denied");
        let err = from_failure(&op(Action::Put), &failure);
        let Error::PermissionDenied(message) = err else {
            panic!("{err:?}")
        };
        assert!(message.contains("10.0.0.1:8080"), "{message}");
        let failure = HttpFailure::new(FailureKind::Connect, "h:1", "connection refused");
        assert!(matches!(
            from_failure(&op(Action::Put), &failure),
            Error::Transient(_)
        ));
    }

    #[test]
    fn one_line_means_one_line() {
        assert_eq!(one_line("a\nb\r\tc"), "a b  c");
        assert!(one_line(&"é".repeat(1000)).len() <= 603);
    }
}

//! Why a request got no HTTP answer, in words an operator can act on.
//!
//! wasi:http reports transport failures as an `error-code`; plugins need two
//! things from it: whether a retry can help (the kind) and a message naming
//! the endpoint and the fix (the `Display`).

use std::fmt;

/// What went wrong, coarsely enough to decide what to do about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The walship host refused to send the request: the endpoint was not
    /// granted to the plugin. Retrying cannot help; the operator's policy or
    /// the plugin's plan must change.
    Denied,
    /// No connection: refused, DNS failure, unreachable destination.
    Connect,
    /// Connecting, or waiting for the answer, took too long.
    Timeout,
    /// The connection broke during the exchange (reset, truncated response).
    Interrupted,
    /// The server's TLS certificate is not one the host trusts.
    TlsCertificate,
    /// Any other TLS failure (protocol error, alert from the server).
    Tls,
    /// The request itself cannot be sent as built (URL, method, header): a bug.
    InvalidRequest,
    /// There is no wasi:http: a native build (unit tests).
    Unavailable,
    /// Anything else the host reported.
    Other,
}

impl FailureKind {
    /// Whether the same request may succeed later.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            FailureKind::Connect
                | FailureKind::Timeout
                | FailureKind::Interrupted
                | FailureKind::Tls
        )
    }
}

/// A request that got no HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpFailure {
    kind: FailureKind,
    authority: String,
    detail: String,
}

impl HttpFailure {
    /// `authority` is the `host[:port]` the request was for; `detail` what the
    /// host said, in a few words.
    pub fn new(kind: FailureKind, authority: impl Into<String>, detail: impl Into<String>) -> Self {
        HttpFailure {
            kind,
            authority: authority.into(),
            detail: detail.into(),
        }
    }

    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The `host[:port]` the request was for.
    pub fn authority(&self) -> &str {
        &self.authority
    }
}

impl fmt::Display for HttpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let HttpFailure {
            kind,
            authority,
            detail,
        } = self;
        match kind {
            FailureKind::Denied => write!(
                f,
                "the walship host denied the request to {authority} because that endpoint was not \
                 granted to the plugin (the sandbox policy does not allow it, or the plugin's plan \
                 for this prefix did not list it)"
            ),
            FailureKind::Connect => write!(f, "cannot connect to {authority}: {detail}"),
            FailureKind::Timeout => write!(f, "{authority} did not answer in time: {detail}"),
            FailureKind::Interrupted => {
                write!(f, "the connection to {authority} broke: {detail}")
            }
            FailureKind::TlsCertificate => write!(
                f,
                "TLS certificate of {authority} not trusted ({detail}); if a private CA signed it, \
                 set WALG_S3_CA_CERT_FILE / WALSHIP_CA_FILE to that CA's certificate"
            ),
            FailureKind::Tls => write!(f, "TLS with {authority} failed: {detail}"),
            FailureKind::InvalidRequest => {
                write!(f, "cannot send the request to {authority}: {detail}")
            }
            FailureKind::Unavailable => write!(f, "{detail}"),
            FailureKind::Other => write!(f, "the request to {authority} failed: {detail}"),
        }
    }
}

impl std::error::Error for HttpFailure {}

/// The `host[:port]` of a request, for messages.
pub(crate) fn authority_of(uri: &http::Uri) -> String {
    uri.authority()
        .map_or_else(|| "(no host)".to_string(), |a| a.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denied_names_the_endpoint_and_the_cause() {
        let err = HttpFailure::new(FailureKind::Denied, "evil.example:443", "denied");
        let text = err.to_string();
        assert!(text.contains("walship host denied"), "{text}");
        assert!(text.contains("evil.example:443"), "{text}");
        assert!(text.contains("not granted"), "{text}");
        assert!(!err.kind().is_retryable());
    }

    #[test]
    fn tls_certificate_names_the_settings_that_fix_it() {
        let err = HttpFailure::new(FailureKind::TlsCertificate, "minio:9000", "unknown issuer");
        let text = err.to_string();
        assert!(text.contains("TLS certificate"), "{text}");
        assert!(text.contains("WALG_S3_CA_CERT_FILE"), "{text}");
        assert!(text.contains("WALSHIP_CA_FILE"), "{text}");
        assert!(!err.kind().is_retryable());
    }

    #[test]
    fn network_trouble_is_retryable() {
        for kind in [
            FailureKind::Connect,
            FailureKind::Timeout,
            FailureKind::Interrupted,
            FailureKind::Tls,
        ] {
            assert!(kind.is_retryable(), "{kind:?}");
        }
        for kind in [
            FailureKind::InvalidRequest,
            FailureKind::Unavailable,
            FailureKind::Other,
        ] {
            assert!(!kind.is_retryable(), "{kind:?}");
        }
    }

    #[test]
    fn messages_are_one_line() {
        let err = HttpFailure::new(FailureKind::Connect, "127.0.0.1:9", "connection refused");
        assert_eq!(
            err.to_string(),
            "cannot connect to 127.0.0.1:9: connection refused"
        );
    }
}

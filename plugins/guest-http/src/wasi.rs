//! One request over wasi:http, blocking until the whole response is read.

use bytes::Bytes;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
    Scheme,
};
use wasip2::io::streams::{InputStream, StreamError};

use crate::failure::{FailureKind, HttpFailure, authority_of};
use crate::headers;

/// Most bytes asked of the host per read of a response body.
const READ_CHUNK: u64 = 1 << 20;
/// A `Content-Length` up to this is trusted to size the response buffer in
/// one allocation (growing by doubling would briefly need twice the memory).
const MAX_PREALLOCATE: u64 = 1 << 30;

pub(crate) fn send(request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpFailure> {
    let (parts, body) = request.into_parts();
    let authority = authority_of(&parts.uri);
    let invalid =
        |detail: String| HttpFailure::new(FailureKind::InvalidRequest, &authority, detail);

    let fields = Fields::from_list(&headers::outgoing(
        &parts.method,
        &parts.headers,
        body.len(),
    ))
    .map_err(|e| invalid(format!("header rejected by wasi:http: {e:?}")))?;
    let outgoing = OutgoingRequest::new(fields);
    outgoing
        .set_method(&method(&parts.method))
        .map_err(|()| invalid(format!("method {} rejected", parts.method)))?;
    let scheme = match parts.uri.scheme_str() {
        Some("https") => Scheme::Https,
        Some("http") => Scheme::Http,
        other => {
            return Err(invalid(format!(
                "URL scheme {other:?} is not http or https"
            )));
        }
    };
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme rejected".to_string()))?;
    outgoing
        .set_authority(parts.uri.authority().map(|a| a.as_str()))
        .map_err(|()| invalid("authority rejected".to_string()))?;
    outgoing
        .set_path_with_query(Some(parts.uri.path_and_query().map_or("/", |p| p.as_str())))
        .map_err(|()| invalid("path rejected".to_string()))?;
    let outgoing_body = outgoing
        .body()
        .map_err(|()| invalid("request body already taken".to_string()))?;

    // Sending starts now; the body streams to the host while it connects.
    let future =
        outgoing_handler::handle(outgoing, None).map_err(|code| failure(code, &authority))?;
    write_body(&outgoing_body, &body);
    // Errors here say the same as a failed write (see `write_body`).
    let _ = OutgoingBody::finish(outgoing_body, None);

    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(failure(code, &authority)),
        Some(Err(())) | None => {
            return Err(HttpFailure::new(
                FailureKind::Other,
                &authority,
                "wasi:http gave no response for a finished request",
            ));
        }
    };
    read_response(response, &authority)
}

/// Writes `data` as the host accepts it. Write and flush errors are ignored
/// on purpose: the host closes the stream when the server answers early (an
/// error status before the whole body was sent) or when it denied the
/// request, and the response future then carries the real outcome.
fn write_body(body: &OutgoingBody, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let Ok(stream) = body.write() else { return };
    let ready = stream.subscribe();
    let mut rest = data;
    while !rest.is_empty() {
        match stream.check_write() {
            Ok(0) => ready.block(),
            Ok(permitted) => {
                let n = rest
                    .len()
                    .min(usize::try_from(permitted).unwrap_or(usize::MAX));
                if stream.write(&rest[..n]).is_err() {
                    return;
                }
                rest = &rest[n..];
            }
            Err(_) => return,
        }
    }
    let _ = stream.blocking_flush();
    // `ready` and `stream` drop here, before the body is finished, as
    // wasi:http requires of child resources.
}

fn read_response(
    response: IncomingResponse,
    authority: &str,
) -> Result<http::Response<Bytes>, HttpFailure> {
    let mut builder = http::Response::builder().status(response.status());
    let mut expected_len = None;
    for (name, value) in response.headers().entries() {
        if name.eq_ignore_ascii_case("content-length") {
            expected_len = std::str::from_utf8(&value)
                .ok()
                .and_then(|v| v.parse::<u64>().ok());
        }
        // A header http cannot represent is dropped rather than failing the
        // whole response; nothing walship reads is that malformed.
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(&value),
        ) {
            builder = builder.header(name, value);
        }
    }
    let body = response.consume().map_err(|()| {
        HttpFailure::new(FailureKind::Other, authority, "response body already taken")
    })?;
    let stream = body.stream().map_err(|()| {
        HttpFailure::new(
            FailureKind::Other,
            authority,
            "response body stream already taken",
        )
    })?;
    let capacity = expected_len.unwrap_or(0).min(MAX_PREALLOCATE) as usize;
    let data = read_all(&stream, capacity, authority);
    drop(stream);
    drop(IncomingBody::finish(body));
    let data = data?;
    builder.body(Bytes::from(data)).map_err(|e| {
        HttpFailure::new(
            FailureKind::Other,
            authority,
            format!("unusable response: {e}"),
        )
    })
}

fn read_all(
    stream: &InputStream,
    capacity: usize,
    authority: &str,
) -> Result<Vec<u8>, HttpFailure> {
    let mut data = Vec::with_capacity(capacity);
    loop {
        match stream.blocking_read(READ_CHUNK) {
            Ok(chunk) => data.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(data),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(match wasip2::http::types::http_error_code(&e) {
                    Some(code) => failure(code, authority),
                    None => HttpFailure::new(
                        FailureKind::Interrupted,
                        authority,
                        format!("reading the response body: {}", e.to_debug_string()),
                    ),
                });
            }
        }
    }
}

fn method(method: &http::Method) -> Method {
    match *method {
        http::Method::GET => Method::Get,
        http::Method::HEAD => Method::Head,
        http::Method::POST => Method::Post,
        http::Method::PUT => Method::Put,
        http::Method::DELETE => Method::Delete,
        http::Method::CONNECT => Method::Connect,
        http::Method::OPTIONS => Method::Options,
        http::Method::TRACE => Method::Trace,
        http::Method::PATCH => Method::Patch,
        ref other => Method::Other(other.as_str().to_string()),
    }
}

/// What a wasi:http `error-code` means for the plugin and its operator.
fn failure(code: ErrorCode, authority: &str) -> HttpFailure {
    use FailureKind as K;
    let (kind, detail) = match code {
        ErrorCode::HttpRequestDenied => (K::Denied, "denied".to_string()),
        ErrorCode::DnsTimeout => (K::Timeout, "DNS lookup timed out".to_string()),
        ErrorCode::DnsError(payload) => (
            K::Connect,
            match payload.rcode {
                Some(rcode) => format!("DNS lookup failed ({rcode})"),
                None => "DNS lookup failed".to_string(),
            },
        ),
        ErrorCode::DestinationNotFound => (K::Connect, "host not found".to_string()),
        ErrorCode::DestinationUnavailable => (K::Connect, "destination unavailable".to_string()),
        ErrorCode::DestinationIpProhibited => (K::Connect, "destination IP prohibited".to_string()),
        ErrorCode::DestinationIpUnroutable => (K::Connect, "destination IP unroutable".to_string()),
        ErrorCode::ConnectionRefused => (K::Connect, "connection refused".to_string()),
        ErrorCode::ConnectionLimitReached => (K::Connect, "connection limit reached".to_string()),
        ErrorCode::ConnectionTerminated => (K::Interrupted, "connection reset".to_string()),
        ErrorCode::HttpResponseIncomplete => (K::Interrupted, "response cut short".to_string()),
        ErrorCode::ConnectionTimeout => (K::Timeout, "connecting timed out".to_string()),
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            (K::Timeout, "timed out waiting for the response".to_string())
        }
        ErrorCode::ConnectionWriteTimeout => {
            (K::Timeout, "timed out sending the request".to_string())
        }
        ErrorCode::TlsCertificateError => (K::TlsCertificate, "certificate rejected".to_string()),
        ErrorCode::TlsProtocolError => (K::Tls, "TLS protocol error".to_string()),
        ErrorCode::TlsAlertReceived(payload) => (
            K::Tls,
            format!(
                "the server sent TLS alert {}{}",
                payload
                    .alert_id
                    .map_or_else(String::new, |id| id.to_string()),
                payload
                    .alert_message
                    .map_or_else(String::new, |m| format!(" ({m})"))
            ),
        ),
        ErrorCode::ConfigurationError => (
            K::Other,
            "the walship host's HTTP configuration is unusable (e.g. an unreadable CA file); \
             see its log"
                .to_string(),
        ),
        ErrorCode::InternalError(message) => (
            K::Other,
            message.unwrap_or_else(|| "internal error in the host".to_string()),
        ),
        code @ (ErrorCode::HttpRequestLengthRequired
        | ErrorCode::HttpRequestBodySize(_)
        | ErrorCode::HttpRequestMethodInvalid
        | ErrorCode::HttpRequestUriInvalid
        | ErrorCode::HttpRequestUriTooLong
        | ErrorCode::HttpRequestHeaderSectionSize(_)
        | ErrorCode::HttpRequestHeaderSize(_)
        | ErrorCode::HttpRequestTrailerSectionSize(_)
        | ErrorCode::HttpRequestTrailerSize(_)) => (K::InvalidRequest, format!("{code:?}")),
        other => (K::Other, format!("{other:?}")),
    };
    HttpFailure::new(kind, authority, detail)
}

//! Sends the HTTP requests plugins make, once the gate has let them through.
//!
//! The host does TLS for plugins, so trust is the operator's to configure:
//! the bundled Mozilla roots plus, if set, a CA file (`WALSHIP_CA_FILE`,
//! WAL-G's `WALG_S3_CA_CERT_FILE`) for private object stores and TLS fronts
//! with their own CA. wasmtime-wasi-http's default sender only knows the
//! bundled roots, hence this module.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

use super::address_class::{self, Reach};
use super::sandbox::HttpTimeouts;

/// What the response future resolves to: the response, and a future that
/// reports how sending the request body ended.
pub type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
);

/// The process's outbound HTTP client. Cheap to share; the TLS
/// configuration is built on the first https request only, so plain-http
/// and filesystem runs never pay for parsing root certificates.
#[derive(Debug)]
pub struct Outbound {
    ca_file: Option<PathBuf>,
    tls: OnceLock<Result<Arc<rustls::ClientConfig>, String>>,
    /// Open connections per endpoint, for the next request to the same
    /// place: a process pushing several files makes several requests to one
    /// store, and a TCP (and TLS) handshake per request costs more than the
    /// request itself on a near store.
    idle: Mutex<HashMap<PoolKey, Vec<Sender>>>,
}

type Sender = hyper::client::conn::http1::SendRequest<WasiBody>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    tls: bool,
    host: String,
    port: u16,
    /// What the connection was allowed to reach: a connection opened for a
    /// configured internal endpoint is never lent to a request without that
    /// right.
    reach: Reach,
}

impl Outbound {
    pub fn new(ca_file: Option<PathBuf>) -> Arc<Self> {
        Arc::new(Self {
            ca_file,
            tls: OnceLock::new(),
            idle: Mutex::new(HashMap::new()),
        })
    }

    /// A pooled connection to `key` that can take a request now. Closed ones
    /// are dropped; busy ones (a response body still being read) stay.
    fn take_idle(&self, key: &PoolKey) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let senders = idle.get_mut(key)?;
        senders.retain(|s| !s.is_closed());
        let ready = senders.iter().position(|s| s.is_ready())?;
        Some(senders.swap_remove(ready))
    }

    fn put_idle(&self, key: PoolKey, sender: Sender) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.entry(key).or_default().push(sender);
    }

    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        self.tls
            .get_or_init(|| tls_config(self.ca_file.as_deref()).map(Arc::new))
            .clone()
    }

    /// Sends `request` to the authority in its URI, within `timeouts`,
    /// connecting only to addresses `reach` allows (`plugin` names the
    /// plugin in the refusal).
    pub async fn send(
        self: Arc<Self>,
        mut request: http::Request<WasiBody>,
        timeouts: HttpTimeouts,
        reach: Reach,
        plugin: String,
    ) -> Result<Sent, HttpError> {
        let uri = request.uri().clone();
        let tls = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let host = uri.host().ok_or(HttpError::HttpRequestUriInvalid)?;
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        // An IPv6 literal arrives bracketed; connect wants it bare.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();

        // The request line carries only path and query (no proxy here).
        *request.uri_mut() = http::Uri::builder()
            .path_and_query(uri.path_and_query().map_or("/", |p| p.as_str()))
            .build()
            .map_err(|_| HttpError::HttpRequestUriInvalid)?;

        let key = PoolKey {
            tls,
            host,
            port,
            reach,
        };
        let replay = Replay::of(&request);
        let (response, sender) = match self.take_idle(&key) {
            None => {
                let mut sender = self.connect(&key, timeouts, &plugin).await?;
                (send_on(&mut sender, request, timeouts).await?, sender)
            }
            Some(mut pooled) => match (send_on(&mut pooled, request, timeouts).await, replay) {
                (Ok(response), _) => (response, pooled),
                // The server closed the kept-alive connection just as this
                // request went out on it (it had no way to tell us). A
                // request without a body that changes nothing is sent again
                // once, on a new connection; others go back to the plugin
                // and the host's retries as `connection-terminated`.
                (Err(HttpError::ConnectionTerminated), Some(replay)) => {
                    let mut sender = self.connect(&key, timeouts, &plugin).await?;
                    (
                        send_on(&mut sender, replay.request(), timeouts).await?,
                        sender,
                    )
                }
                (Err(e), _) => return Err(e),
            },
        };
        // Ready again once the guest has read this response's body.
        self.put_idle(key, sender);
        let response = response.map(|incoming| {
            BetweenBytes {
                inner: incoming,
                limit: timeouts.between_bytes,
                timer: Box::pin(tokio::time::sleep(timeouts.between_bytes)),
            }
            .boxed_unsync()
        });
        // How the body went out shows in the response (or its error); the
        // connection itself lives on for the next request.
        Ok((response, Box::new(async { Ok(()) })))
    }

    /// A new HTTP/1.1 connection (TCP, then TLS for https), driven by a task
    /// of its own until the server or this process closes it.
    async fn connect(
        &self,
        key: &PoolKey,
        timeouts: HttpTimeouts,
        plugin: &str,
    ) -> Result<Sender, HttpError> {
        let addresses = tokio::time::timeout(timeouts.connect, resolve(key, plugin))
            .await
            .map_err(|_| HttpError::ConnectionTimeout)??;
        let tcp =
            match tokio::time::timeout(timeouts.connect, TcpStream::connect(addresses.as_slice()))
                .await
            {
                Err(_) => return Err(HttpError::ConnectionTimeout),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Err(HttpError::ConnectionRefused);
                }
                Ok(Err(e)) => return Err(HttpError::Connect(e)),
                Ok(Ok(s)) => s,
            };
        let _ = tcp.set_nodelay(true);
        if key.tls {
            let config = self.tls_config().map_err(|why| {
                crate::logging::log_line(crate::logging::LogLevelFilter::Error, &why);
                HttpError::ConfigurationError
            })?;
            let name = server_name(&key.host)?;
            let stream = tokio::time::timeout(
                timeouts.connect,
                tokio_rustls::TlsConnector::from(config).connect(name, tcp),
            )
            .await
            .map_err(|_| HttpError::ConnectionTimeout)?
            .map_err(tls_error)?;
            handshake(stream, timeouts).await
        } else {
            handshake(tcp, timeouts).await
        }
    }
}

/// The addresses `key`'s host resolves to that its reach allows; none is a
/// refusal, logged with the plugin, the host and the addresses.
async fn resolve(key: &PoolKey, plugin: &str) -> Result<Vec<std::net::SocketAddr>, HttpError> {
    let refuse = |why: String| {
        let rule = if key.reach.beyond_loopback {
            "an internal address is reached only at an endpoint the configuration names with exactly that scheme, host and port, or one in WALSHIP_ALLOW_HOSTS"
        } else {
            "the plugin holds credentials, which would cross the network in clear text over http://; use https, or set WALSHIP_ALLOW_HTTP_CREDENTIALS=1 if that network is trusted"
        };
        crate::logging::log_line(
            crate::logging::LogLevelFilter::Error,
            &format!(
                "plugin {plugin} tried to reach {}:{}, {why}; denied ({rule})",
                key.host, key.port
            ),
        );
        HttpError::DestinationIpProhibited
    };
    if address_class::is_metadata_name(&key.host) && !key.reach.metadata {
        return Err(refuse("a cloud metadata service".into()));
    }
    let resolved: Vec<std::net::SocketAddr> =
        tokio::net::lookup_host((key.host.as_str(), key.port))
            .await
            // As a failed connect reported it before this check existed.
            .map_err(HttpError::Connect)?
            .collect();
    let allowed: Vec<_> = resolved
        .iter()
        .copied()
        .filter(|a| address_class::may_connect(a.ip(), key.reach))
        .collect();
    if allowed.is_empty() && !resolved.is_empty() {
        let shown: Vec<String> = resolved.iter().map(|a| a.ip().to_string()).collect();
        return Err(refuse(format!("which resolves to {}", shown.join(", "))));
    }
    Ok(allowed)
}

async fn send_on(
    sender: &mut Sender,
    request: http::Request<WasiBody>,
    timeouts: HttpTimeouts,
) -> Result<http::Response<hyper::body::Incoming>, HttpError> {
    tokio::time::timeout(timeouts.first_byte, sender.send_request(request))
        .await
        .map_err(|_| HttpError::ConnectionReadTimeout)?
        .map_err(connection_error)
}

/// What it takes to send a request again: only for GET, HEAD and DELETE
/// without a body, which are safe to repeat (RFC 9110 §9.2.2) and need
/// nothing back from the plugin.
struct Replay {
    method: http::Method,
    uri: http::Uri,
    headers: http::HeaderMap,
}

impl Replay {
    fn of(request: &http::Request<WasiBody>) -> Option<Self> {
        use http::Method;
        let idempotent = [Method::GET, Method::HEAD, Method::DELETE].contains(request.method());
        let bodyless = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0")
            && !request
                .headers()
                .contains_key(http::header::TRANSFER_ENCODING);
        (idempotent && bodyless).then(|| Replay {
            method: request.method().clone(),
            uri: request.uri().clone(),
            headers: request.headers().clone(),
        })
    }

    fn request(self) -> http::Request<WasiBody> {
        let body = http_body_util::Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        let mut request = http::Request::new(body);
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.headers_mut() = self.headers;
        request
    }
}

async fn handshake<S>(stream: S, timeouts: HttpTimeouts) -> Result<Sender, HttpError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = tokio::time::timeout(
        timeouts.connect,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)?
    .map_err(connection_error)?;
    tokio::spawn(connection);
    Ok(sender)
}

/// A response body that fails if the server goes quiet for too long.
struct BetweenBytes {
    inner: hyper::body::Incoming,
    limit: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for BetweenBytes {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, HttpError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + self.limit;
                self.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(connection_error(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The connection broke (reset, closed, cut short) is the common case, and a
/// retryable one; the guest sees it as `connection-terminated`, not as a
/// protocol error. A server that answers early (a 412 to a conditional PUT)
/// and closes while the body is still going out lands here too.
fn connection_error(e: hyper::Error) -> HttpError {
    if e.is_timeout() {
        HttpError::HttpResponseTimeout
    } else if e.is_incomplete_message()
        || e.is_closed()
        || e.is_canceled()
        || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>())
    {
        HttpError::ConnectionTerminated
    } else {
        HttpError::Hyper(e)
    }
}

fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, HttpError> {
    use rustls::pki_types::ServerName;
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(ServerName::from(ip));
    }
    ServerName::try_from(host.to_string()).map_err(|_| HttpError::HttpRequestUriInvalid)
}

/// A certificate the configured roots do not vouch for is the common case an
/// operator must act on; it becomes the guest's `TLS-certificate-error`.
fn tls_error(e: std::io::Error) -> HttpError {
    let certificate = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|r| {
            matches!(
                r,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
        });
    if certificate {
        HttpError::TlsCertificateError
    } else {
        HttpError::Tls(e)
    }
}

/// Checks that `ca_file` holds at least one certificate, so a bad setting is
/// reported once, up front, instead of as a failed TLS handshake.
pub fn check_ca_file(ca_file: &Path) -> Result<(), String> {
    // Only the file: the bundled roots are added when a request needs TLS.
    if read_ca_file(ca_file)?.is_empty() {
        return Err(format!(
            "CA file {} holds no certificate (WALSHIP_CA_FILE / WALG_S3_CA_CERT_FILE)",
            ca_file.display()
        ));
    }
    Ok(())
}

/// The bundled Mozilla roots, plus every certificate in `ca_file`.
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let certs = read_ca_file(path)?;
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!(
                "CA file {} holds no usable certificate (WALSHIP_CA_FILE / WALG_S3_CA_CERT_FILE)",
                path.display()
            ));
        }
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn read_ca_file(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let why = |e: &dyn std::fmt::Display| {
        format!(
            "cannot read CA file {} (WALSHIP_CA_FILE / WALG_S3_CA_CERT_FILE): {e}",
            path.display()
        )
    };
    let pem = std::fs::read(path).map_err(|e| why(&e))?;
    CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| why(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers one request per connection and then, keeping
    /// the connection open as if alive, closes it without an answer when the
    /// next request arrives: the race a kept-alive connection loses when the
    /// server times it out just as it is reused.
    async fn one_answer_per_connection() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = socket.read(&mut buf).await;
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await;
                    let _ = socket.read(&mut buf).await;
                    // Dropped: closed with the second request unanswered.
                });
            }
        });
        (port, accepted)
    }

    /// The test servers listen on loopback, as a configured emulator does.
    const LOCAL: Reach = Reach {
        internal: true,
        ..Reach::PUBLIC
    };

    #[tokio::test]
    async fn loopback_is_not_connected_to_without_the_right_to_reach_it() {
        let (port, accepted) = one_answer_per_connection().await;
        let outbound = Outbound::new(None);
        for host in ["127.0.0.1", "localhost"] {
            let mut get = request(http::Method::GET, port);
            *get.uri_mut() = format!("http://{host}:{port}/key").parse().unwrap();
            let err = outbound
                .clone()
                .send(get, HttpTimeouts::default(), Reach::PUBLIC, "test".into())
                .await
                .err()
                .expect("refused");
            assert!(matches!(err, HttpError::DestinationIpProhibited), "{err:?}");
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    fn request(method: http::Method, port: u16) -> http::Request<WasiBody> {
        let body = http_body_util::Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        let mut request = http::Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = format!("http://127.0.0.1:{port}/key").parse().unwrap();
        request
    }

    async fn body_of(sent: Result<Sent, HttpError>) -> Result<Bytes, HttpError> {
        let (response, _) = sent?;
        Ok(response.into_body().collect().await?.to_bytes())
    }

    #[tokio::test]
    async fn a_get_on_a_connection_the_server_just_closed_is_sent_again_on_a_new_one() {
        let (port, accepted) = one_answer_per_connection().await;
        let outbound = Outbound::new(None);
        let timeouts = HttpTimeouts::default();
        for _ in 0..3 {
            let sent = outbound
                .clone()
                .send(
                    request(http::Method::GET, port),
                    timeouts,
                    LOCAL,
                    "test".into(),
                )
                .await;
            assert_eq!(body_of(sent).await.unwrap(), "ok");
        }
        // Every reuse failed and was replaced by a fresh connection.
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_request_with_a_body_is_not_sent_twice() {
        let (port, _) = one_answer_per_connection().await;
        let outbound = Outbound::new(None);
        let timeouts = HttpTimeouts::default();
        let sent = outbound
            .clone()
            .send(
                request(http::Method::GET, port),
                timeouts,
                LOCAL,
                "test".into(),
            )
            .await;
        assert_eq!(body_of(sent).await.unwrap(), "ok");
        let mut put = request(http::Method::PUT, port);
        put.headers_mut().insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from_static("0"),
        );
        let err = outbound
            .clone()
            .send(put, timeouts, LOCAL, "test".into())
            .await
            .err()
            .expect("refused");
        assert!(matches!(err, HttpError::ConnectionTerminated), "{err:?}");
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_error() {
        let err = tls_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(
            err.contains("cannot read CA file /nonexistent/ca.pem"),
            "{err}"
        );
        let dir = std::env::temp_dir().join(format!("walship-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = tls_config(Some(&empty)).unwrap_err();
        assert!(err.contains("no usable certificate"), "{err}");
        let err = check_ca_file(&empty).unwrap_err();
        assert!(err.contains("holds no certificate"), "{err}");
        assert!(check_ca_file(Path::new("/nonexistent/ca.pem")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bundled_roots_alone_build() {
        assert!(tls_config(None).is_ok());
    }

    #[test]
    fn server_names_accept_ips_and_dns_names() {
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("::1").is_ok());
        assert!(server_name("s3.eu-west-1.amazonaws.com").is_ok());
        assert!(server_name("bad name").is_err());
    }
}

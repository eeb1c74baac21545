//! `open-socket` and `http-out`: reaching the network without a grant.

use std::net::{TcpStream, UdpSocket};

use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

use crate::probes::Probes;

/// Raw sockets through wasi:sockets (std::net), which no plugin is granted.
pub fn open_socket(port: u16) -> Probes {
    let mut probes = Probes::default();
    let target = format!("127.0.0.1:{port}");
    probes.check(
        &format!("TCP connect to {target}"),
        TcpStream::connect(&target),
        |stream| format!("connected from {:?}", stream.local_addr().ok()),
    );
    probes.check(
        "UDP bind 0.0.0.0:0",
        UdpSocket::bind("0.0.0.0:0"),
        |socket| format!("bound {:?}", socket.local_addr().ok()),
    );
    probes
}

/// An HTTP request through wasi:http to an endpoint the plan did not ask for.
pub fn http_out(port: u16) -> Probes {
    http_to(&format!("127.0.0.1:{port}"))
}

/// An HTTP request to `authority` (`host:port`), which the plan may well
/// have asked for (`HOSTILE_ASK_ENDPOINT`): whether it is let through is the
/// host's decision, after name resolution.
pub fn http_to(authority: &str) -> Probes {
    let mut probes = Probes::default();
    let attempt = format!("HTTP GET http://{authority}/");
    probes.check(&attempt, get(authority), |status| {
        format!("got a response, status {status}")
    });
    probes
}

/// Sends the request; `Ok` carries the response status.
fn get(authority: &str) -> Result<u16, String> {
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_method(&Method::Get)
        .map_err(|()| "cannot set method")?;
    request
        .set_scheme(Some(&Scheme::Http))
        .map_err(|()| "cannot set scheme")?;
    request
        .set_authority(Some(authority))
        .map_err(|()| "cannot set authority")?;
    request
        .set_path_with_query(Some("/"))
        .map_err(|()| "cannot set path")?;
    let body = request
        .body()
        .map_err(|()| "cannot take the request body")?;
    let response = outgoing_handler::handle(request, None).map_err(|code| format!("{code:?}"))?;
    // The error, if any, is the response's; the body's own says less.
    let _ = OutgoingBody::finish(body, None);
    response.subscribe().block();
    match response.get() {
        Some(Ok(Ok(response))) => Ok(response.status()),
        Some(Ok(Err(code))) => Err(format!("{code:?}")),
        Some(Err(())) => Err("response already taken".to_string()),
        None => Err("no response after the future was ready".to_string()),
    }
}

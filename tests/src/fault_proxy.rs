//! A TCP proxy on 127.0.0.1 that makes a storage service flaky, the way a
//! bad network or an overloaded service is: some connections get an HTTP
//! 503, some are dropped before any answer, some are cut after a random
//! number of response bytes (a body that ends early, a connection reset
//! half-way), some stall; the others are forwarded whole. Every request
//! goes out with `Connection: close`, so each connection carries exactly
//! one request and the fates are per request, as a flaky network's are
//! (a connection kept alive would otherwise carry every later request
//! unharmed). Tests put it between walship and a local
//! stand-in to prove that transient faults slow a restore down but never
//! end it.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

/// What the proxy did, for a test to check that faults really happened.
#[derive(Debug, Default)]
pub struct FaultCounts {
    pub connections: AtomicU64,
    pub answered_503: AtomicU64,
    pub dropped: AtomicU64,
    pub stalled: AtomicU64,
    pub cut: AtomicU64,
}

impl FaultCounts {
    /// Connections that met a fault (a stall is not one).
    pub fn faults(&self) -> u64 {
        self.answered_503.load(Ordering::Relaxed)
            + self.dropped.load(Ordering::Relaxed)
            + self.cut.load(Ordering::Relaxed)
    }
}

pub struct FaultProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    pub counts: Arc<FaultCounts>,
}

/// The fate of one connection, drawn when it is accepted.
enum Fate {
    Answer503,
    Drop,
    /// Forward, but close both ends after this many response bytes.
    Cut(u64),
    /// Wait this long, then forward.
    Stall(Duration),
    Forward,
}

impl FaultProxy {
    /// Forwards to `upstream`. `fault_percent` of the connections get a 503,
    /// are dropped, or are cut after 1 byte to `cut_max` response bytes (in
    /// equal shares); another 5% stall for up to 2 s first.
    pub fn start(upstream: SocketAddr, fault_percent: u64, cut_max: u64) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(FaultCounts::default());
        let (stop2, counts2) = (stop.clone(), counts.clone());
        thread::spawn(move || {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ u64::from(port));
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        counts2.connections.fetch_add(1, Ordering::Relaxed);
                        let roll = rng.below(100);
                        let fate = if roll < fault_percent / 3 {
                            Fate::Answer503
                        } else if roll < fault_percent * 2 / 3 {
                            Fate::Drop
                        } else if roll < fault_percent {
                            Fate::Cut(1 + rng.below(cut_max.max(2)))
                        } else if roll < fault_percent + 5 {
                            Fate::Stall(Duration::from_millis(500 + rng.below(1500)))
                        } else {
                            Fate::Forward
                        };
                        let counts = counts2.clone();
                        thread::spawn(move || {
                            let _ = serve(client, upstream, fate, &counts);
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultProxy { port, stop, counts }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    fate: Fate,
    counts: &FaultCounts,
) -> io::Result<()> {
    let mut cut_after = u64::MAX;
    match fate {
        Fate::Answer503 => {
            let _ = read_request_head(&mut client)?;
            counts.answered_503.fetch_add(1, Ordering::Relaxed);
            client.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
                  Content-Length: 19\r\nConnection: close\r\n\r\nservice unavailable",
            )?;
            return client.shutdown(Shutdown::Both);
        }
        Fate::Drop => {
            let _ = read_request_head(&mut client)?;
            counts.dropped.fetch_add(1, Ordering::Relaxed);
            return client.shutdown(Shutdown::Both);
        }
        Fate::Stall(d) => {
            counts.stalled.fetch_add(1, Ordering::Relaxed);
            thread::sleep(d);
        }
        Fate::Cut(after) => cut_after = after,
        Fate::Forward => {}
    }
    let server = TcpStream::connect(upstream)?;
    let (mut c_read, mut s_write) = (client.try_clone()?, server.try_clone()?);
    let first = read_request_head(&mut c_read)?;
    c_read.set_read_timeout(None)?;
    s_write.write_all(&one_request_only(&first))?;
    let requests = thread::spawn(move || {
        let _ = io::copy(&mut c_read, &mut s_write);
        let _ = s_write.shutdown(Shutdown::Write);
    });
    // Responses, up to `cut_after` bytes; then both ends are closed.
    let (mut s_read, mut c_write) = (server.try_clone()?, client.try_clone()?);
    let mut sent = 0u64;
    let mut buf = vec![0u8; 16 << 10];
    let mut was_cut = false;
    loop {
        let n = match s_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let room = (cut_after - sent).min(usize::MAX as u64) as usize;
        if n >= room {
            let _ = c_write.write_all(&buf[..room]);
            was_cut = true;
            break;
        }
        if c_write.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
    }
    if was_cut {
        counts.cut.fetch_add(1, Ordering::Relaxed);
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
    let _ = requests.join();
    Ok(())
}

/// Reads up to the end of the first request's head (or what arrives in a
/// second), so a fault answers a request rather than a connect. Returns
/// every byte read (the head, and any body bytes that came with it).
fn read_request_head(client: &mut TcpStream) -> io::Result<Vec<u8>> {
    client.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65_536 {
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    Ok(head)
}

/// The request with `Connection: close` in its head (any Connection header
/// of the client's dropped): the server answers it and closes.
fn one_request_only(bytes: &[u8]) -> Vec<u8> {
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return bytes.to_vec();
    };
    let head = String::from_utf8_lossy(&bytes[..end]);
    let mut out = String::new();
    for (i, line) in head.split("\r\n").enumerate() {
        if i > 0 && line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut v = out.into_bytes();
    v.extend_from_slice(&bytes[end + 4..]);
    v
}

/// xorshift64*: enough to spread fates.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

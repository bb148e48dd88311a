//! An HTTP proxy in front of a server on 127.0.0.1 that answers
//! `500 Internal Server Error` to every N-th request itself (the server
//! never sees it): the flaky object store of issue 11's fault tests, which
//! moto cannot be made to be.
//!
//! Each request is read whole (head, then a `Content-Length` body; the S3
//! client sends no chunked bodies), forwarded on a connection of its own
//! with `Connection: close`, and the answer relayed until the server closes
//! it; the client is told `Connection: close` too, so no connection carries
//! a second request through it.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A running proxy; it stops serving when dropped (its threads end with
/// the test process).
pub struct FailingProxy {
    port: u16,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    failed: AtomicU64,
}

impl FailingProxy {
    /// A proxy on a free port for the server on `target`, failing every
    /// `every`-th request (counting from the first).
    pub fn start(target: u16, every: u64) -> FailingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let port = listener.local_addr().unwrap().port();
        let counts: Arc<Counts> = Default::default();
        let shared = Arc::clone(&counts);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let counts = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = serve(client, target, every, &counts);
                });
            }
        });
        FailingProxy { port, counts }
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Requests seen, and those answered with 500.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counts.requests.load(Ordering::SeqCst),
            self.counts.failed.load(Ordering::SeqCst),
        )
    }
}

/// Serves the one request of a client connection (answers say
/// `Connection: close`, or come from a server told so).
fn serve(mut client: TcpStream, target: u16, every: u64, counts: &Counts) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let Some((head, body)) = read_request(&mut reader)? else {
        return Ok(());
    };
    let number = counts.requests.fetch_add(1, Ordering::SeqCst) + 1;
    if number % every == 0 {
        counts.failed.fetch_add(1, Ordering::SeqCst);
        let body = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>";
        write!(
            client,
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        return client.write_all(body);
    }
    let mut server = TcpStream::connect(("127.0.0.1", target))?;
    server.write_all(&with_connection_close(&head))?;
    server.write_all(&body)?;
    // The server closes after its answer (`Connection: close`).
    std::io::copy(&mut server, &mut client)?;
    Ok(())
}

/// One request: its head (up to the blank line) and its body, or `None` at
/// the end of the connection.
fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<(Vec<String>, Vec<u8>)>> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if line == "\r\n" {
            break;
        }
        head.push(line);
    }
    let length = head
        .iter()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some((head, body)))
}

/// The request head with any `Connection` header replaced by `close`.
fn with_connection_close(head: &[String]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for line in head {
        let is_connection = line
            .split_once(':')
            .is_some_and(|(name, _)| name.eq_ignore_ascii_case("connection"));
        if !is_connection {
            bytes.extend_from_slice(line.as_bytes());
        }
    }
    bytes.extend_from_slice(b"Connection: close\r\n\r\n");
    bytes
}

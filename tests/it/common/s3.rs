//! A real S3 server for the tests: moto's `moto_server`, installed by
//! `.ci/run` into a virtualenv at [`DEFAULT_MOTO_SERVER`] (or wherever
//! [`MOTO_SERVER_VARIABLE`] points).
//!
//! Each test starts its own server on 127.0.0.1 on a free port
//! ([`Moto::start`]), creates fresh buckets in it ([`Moto::bucket`]), and the
//! server is killed when the [`Moto`] is dropped (and, should the test
//! process die first, by the kernel: the server gets SIGKILL when the thread
//! that started it ends). Nothing else is ever contacted.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lsmvault::backend::s3::S3Location;
use lsmvault::backend::S3Backend;

use super::skip_unless_required;

/// Names the `moto_server` executable to use.
pub const MOTO_SERVER_VARIABLE: &str = "LSMVAULT_MOTO_SERVER";
/// Where `.ci/run` installs it.
pub const DEFAULT_MOTO_SERVER: &str = "/opt/lsmvault-moto/bin/moto_server";

/// The credentials every test passes (moto accepts any).
pub const CREDENTIALS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "lsmvault-test"),
    ("AWS_SECRET_ACCESS_KEY", "lsmvault-test-secret"),
    ("AWS_REGION", "us-east-1"),
];

/// A running moto server.
pub struct Moto {
    child: Option<Child>,
    port: u16,
    executable: PathBuf,
    buckets: AtomicU64,
}

/// The `moto_server` to run, or `None` (the test is skipped, or fails
/// under `LSMVAULT_REQUIRE_TOOLS=1`) when it is not installed.
pub fn moto_server() -> Option<PathBuf> {
    let path = std::env::var_os(MOTO_SERVER_VARIABLE)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MOTO_SERVER));
    if super::have(path.to_str().unwrap_or_default()) {
        Some(path)
    } else {
        skip_unless_required(&format!(
            "needs moto_server at {} (.ci/run installs it; or set {MOTO_SERVER_VARIABLE})",
            path.display()
        ));
        None
    }
}

impl Moto {
    /// Starts a server on a free port and waits until it answers; `None`
    /// when moto is not installed (see [`moto_server`]).
    pub fn start() -> Option<Moto> {
        let executable = moto_server()?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("finding a free port")
            .port();
        let mut moto = Moto {
            child: None,
            port,
            executable,
            buckets: AtomicU64::new(0),
        };
        moto.restart();
        Some(moto)
    }

    /// Starts the server again on the same port (after [`Moto::kill`]); a
    /// restarted moto has lost every bucket and object (it keeps them in
    /// memory).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "moto is already running");
        let mut command = Command::new(&self.executable);
        command
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl is async-signal-safe; nothing else runs in the child.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        self.child = Some(command.spawn().expect("starting moto_server"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while http(self.port, "GET", "/").is_none() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a new, empty bucket and returns its name.
    pub fn bucket(&self) -> String {
        let name = format!("lsmvault-{}", self.buckets.fetch_add(1, Ordering::Relaxed));
        let answer = http(self.port, "PUT", &format!("/{name}")).expect("moto answers");
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "creating bucket {name}: {answer}"
        );
        name
    }

    /// Puts an object with a plain, unsigned HTTP request (moto accepts it),
    /// bypassing lsmvault: for keys lsmvault would never write.
    pub fn put_raw(&self, bucket: &str, key: &str) {
        let answer = http(self.port, "PUT", &format!("/{bucket}/{key}")).expect("moto answers");
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "putting {key}: {answer}"
        );
    }

    /// The answer (status line, headers, body) to a plain, unsigned request
    /// without a body (moto accepts it): to look at objects and uploads as
    /// the server has them, bypassing lsmvault.
    pub fn request(&self, method: &str, path: &str) -> String {
        http(self.port, method, path).expect("moto answers")
    }

    /// The repository location `s3:http://127.0.0.1:PORT/BUCKET/PREFIX`.
    pub fn location(&self, bucket: &str, prefix: &str) -> String {
        location(&self.endpoint(), bucket, prefix)
    }

    /// A repository location in a fresh bucket.
    pub fn fresh_location(&self) -> String {
        self.location(&self.bucket(), "repo")
    }

    /// An in-process backend for `location`, with the test credentials.
    pub fn backend(location: &str) -> S3Backend {
        let settings: Vec<(String, &str)> = CREDENTIALS
            .iter()
            .map(|(key, value)| (key.to_ascii_lowercase(), *value))
            .collect();
        let settings: Vec<(&str, &str)> = settings
            .iter()
            .map(|(key, value)| (key.as_str(), *value))
            .collect();
        S3Backend::with_settings(
            S3Location::parse(location).expect("a valid location"),
            &settings,
        )
        .expect("configuring the S3 backend")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The repository location `s3:ENDPOINT/BUCKET/PREFIX`.
pub fn location(endpoint: &str, bucket: &str, prefix: &str) -> String {
    format!("s3:{endpoint}/{bucket}/{prefix}")
}

/// `lsmvault --repo LOCATION ARGS...` with the test credentials, few
/// retries (a test of a failing server should not wait a minute), `password`
/// (or none) and no other repository or password source.
pub fn lsmvault_s3_command(location: &str, password: Option<&str>, args: &[&str]) -> Command {
    let mut command = super::lsmvault_command(Path::new(location), password, args);
    command.envs(CREDENTIALS).env("LSMVAULT_S3_RETRIES", "2");
    command
}

/// Runs [`lsmvault_s3_command`] to its end.
pub fn lsmvault_s3(location: &str, password: Option<&str>, args: &[&str]) -> Output {
    lsmvault_s3_command(location, password, args)
        .output()
        .expect("running lsmvault")
}

/// Runs [`lsmvault_s3`] and returns its stdout, panicking with its output
/// unless it succeeds.
pub fn lsmvault_s3_ok(location: &str, password: Option<&str>, args: &[&str]) -> String {
    super::assert_success(
        &lsmvault_s3(location, password, args),
        &format!("lsmvault --repo {location} {args:?}"),
    )
}

/// One plain HTTP/1.1 request without a body to the server; its answer, or
/// `None` when nothing answers.
fn http(port: u16, method: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    (!answer.is_empty()).then_some(answer)
}

/// A TCP proxy in front of a server on 127.0.0.1, for faults the server
/// cannot make itself: [`Proxy::cut`] makes the server unreachable (open
/// connections reset, new ones refused) while it keeps its data, as a real
/// S3 server restarting would; [`Proxy::resume`] brings it back on the same
/// port. With `strip_conditions`, requests lose their `If-None-Match` header
/// (renamed, same length), which makes the server look like one that ignores
/// conditional writes.
pub struct Proxy {
    port: u16,
    target: u16,
    strip_conditions: bool,
    state: std::sync::Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    stopped: std::sync::atomic::AtomicBool,
    /// Bytes forwarded from clients to the server.
    uploaded: AtomicU64,
    connections: std::sync::Mutex<Vec<TcpStream>>,
}

impl Proxy {
    /// A proxy on a free port forwarding to `target` (a port of 127.0.0.1).
    pub fn start(target: u16, strip_conditions: bool) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let port = listener.local_addr().unwrap().port();
        let proxy = Proxy {
            port,
            target,
            strip_conditions,
            state: Default::default(),
        };
        proxy.serve(listener);
        proxy
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until clients have sent at least `bytes` through the proxy
    /// since it (re)started: a fault injected then hits a command midway,
    /// however fast the machine.
    pub fn wait_for_upload(&self, bytes: u64) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.state.uploaded.load(Ordering::SeqCst) < bytes {
            assert!(
                Instant::now() < deadline,
                "{bytes} bytes were not uploaded within 120 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Resets every open connection and refuses new ones.
    pub fn cut(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        // Wake the acceptor so it drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for connection in self.state.connections.lock().unwrap().drain(..) {
            let _ = connection.shutdown(std::net::Shutdown::Both);
        }
        // The listener is gone once a connection is refused.
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Listens again on the same port.
    pub fn resume(&mut self) {
        self.state = Default::default();
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("rebinding the proxy");
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let (state, target, strip) = (self.state.clone(), self.target, self.strip_conditions);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if state.stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let mut connections = state.connections.lock().unwrap();
                connections.push(client.try_clone().unwrap());
                connections.push(server.try_clone().unwrap());
                drop(connections);
                let (client_read, server_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let counter = state.clone();
                std::thread::spawn(move || {
                    pump(client_read, server_write, strip, Some(&counter.uploaded))
                });
                std::thread::spawn(move || pump(server, client, false, None));
            }
        });
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// Copies `from` to `to` until either ends; with `strip_conditions`,
/// renames `If-None-Match` headers on the way; counts what it forwarded.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    strip_conditions: bool,
    counter: Option<&AtomicU64>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let chunk = &mut buffer[..read];
        if strip_conditions {
            strip_if_none_match(chunk);
        }
        if to.write_all(chunk).is_err() {
            break;
        }
        if let Some(counter) = counter {
            counter.fetch_add(read as u64, Ordering::SeqCst);
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

fn strip_if_none_match(chunk: &mut [u8]) {
    let header = b"if-none-match:";
    let mut index = 0;
    while index + header.len() <= chunk.len() {
        if chunk[index..index + header.len()].eq_ignore_ascii_case(header) {
            chunk[index..index + header.len()].copy_from_slice(b"x-ignored-mat:");
            index += header.len();
        } else {
            index += 1;
        }
    }
}

//! A registry that misbehaves on purpose, for the tests of what stowage does with hostile
//! answers: plain HTTP on a free port of 127.0.0.1, a thread per connection, each request
//! answered as the test's script says — a drip, silence, a stall after one byte, a redirect
//! loop, an error status, a body that never ends or whose length lies — or, scripted to
//! behave, what a registry Debian does not package would answer (the referrers API's
//! `OCI-Subject`).
//!
//! Dropping it (also when a test panics) stops it: every waiting answer is woken, every
//! connection shut down and every thread joined, so nothing of it outlives the test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How the server answers one request.
pub enum Answer {
    /// The status, with an empty body.
    Status(u16),
    /// A `302` to the same path, again and again.
    RedirectLoop,
    /// A `401` asking for a bearer token from this server's `/token`.
    TokenChallenge,
    /// A `200` holding these bytes.
    Bytes(Vec<u8>),
    /// A `200` whose body (these bytes, over and over) never ends.
    Endless(&'static [u8]),
    /// A `200` whose `Content-Length` says `length` bytes, but whose body is `body` (more or
    /// fewer), after which the connection is closed.
    Claiming { length: u64, body: Vec<u8> },
    /// A `200` saying its body has `length` bytes, which come one every `interval`.
    Drip { length: u64, interval: Duration },
    /// A `200` saying its body has `length` bytes, of which one comes, then nothing.
    StallAfterOneByte { length: u64 },
    /// Nothing: the request is read and never answered.
    Silence,
    /// The status with this JSON body (a registry's `{"errors":[…]}`).
    Json(u16, &'static str),
    /// The status with these header lines (each ending in `\r\n`) and an empty body, as a
    /// well-behaved registry might answer.
    WithHeaders(u16, String),
}

/// What answers a request, from its method and path (with the query).
pub type Script = dyn Fn(&str, &str) -> Answer + Send + Sync;

/// The bytes written at a time of an [`Answer::Endless`] body.
const ENDLESS_CHUNK: usize = 64 << 10;

/// The server; stopped when dropped.
pub struct HostileRegistry {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// What the acceptor, the connections and the owner share.
struct Shared {
    script: Box<Script>,
    /// Set when the server stops; answers that wait are woken by `wake`.
    stopped: Mutex<bool>,
    wake: Condvar,
    /// Every connection accepted, to shut down on stop, with the thread serving it.
    connections: Mutex<Vec<(TcpStream, JoinHandle<()>)>>,
    /// `METHOD path` of every request read, in order.
    requests: Mutex<Vec<String>>,
}

impl HostileRegistry {
    pub fn start(script: impl Fn(&str, &str) -> Answer + Send + Sync + 'static) -> HostileRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            script: Box::new(script),
            stopped: Mutex::new(false),
            wake: Condvar::new(),
            connections: Mutex::default(),
            requests: Mutex::default(),
        });
        let accepting = shared.clone();
        let acceptor = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accepting.is_stopped() {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let Ok(kept) = stream.try_clone() else { continue };
                let serving = accepting.clone();
                let thread = std::thread::spawn(move || serve(stream, port, &serving));
                accepting.connections.lock().unwrap().push((kept, thread));
            }
        });
        HostileRegistry { port, shared, acceptor: Some(acceptor) }
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `METHOD path` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().unwrap().clone()
    }
}

impl Drop for HostileRegistry {
    fn drop(&mut self) {
        *self.shared.stopped.lock().unwrap() = true;
        self.shared.wake.notify_all();
        // The acceptor waits in accept(): a connection of our own wakes it to see the stop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let connections = std::mem::take(&mut *self.shared.connections.lock().unwrap());
        for (stream, _) in &connections {
            let _ = stream.shutdown(Shutdown::Both);
        }
        for (_, thread) in connections {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap()
    }

    /// Waits `time` (forever if `None`) or until the server stops; whether it stopped.
    fn pause(&self, time: Option<Duration>) -> bool {
        let stopped = self.stopped.lock().unwrap();
        match time {
            Some(time) => *self.wake.wait_timeout_while(stopped, time, |s| !*s).unwrap().0,
            None => *self.wake.wait_while(stopped, |s| !*s).unwrap(),
        }
    }
}

/// Answers the request of one connection, then closes it (every answer says `Connection:
/// close`, so a client comes back on a new connection).
fn serve(stream: TcpStream, port: u16, shared: &Shared) {
    // The client may be gone before the answer is: that is its business.
    let _ = serve_request(&stream, port, shared);
    // The server keeps a handle of its own on the connection (to shut it down when it stops):
    // closing this one would not end it.
    let _ = stream.shutdown(Shutdown::Both);
}

fn serve_request(stream: &TcpStream, port: u16, shared: &Shared) -> std::io::Result<()> {
    // A TLS handshake (Docker's rule, which stowage follows: try HTTPS first on this machine)
    // is not HTTP: closing fails it, as a plain HTTP registry does.
    let mut first = [0u8; 1];
    if stream.peek(&mut first)? == 0 || first[0] == 0x16 {
        return Ok(());
    }
    let mut reader = BufReader::new(stream);
    let Some((method, path, length)) = read_request(&mut reader) else { return Ok(()) };
    std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink())?;
    shared.requests.lock().unwrap().push(format!("{method} {path}"));
    answer(stream, (shared.script)(&method, &path), &path, port, shared)
}

/// The method, path and body length of the next request; `None` at the end.
fn read_request(reader: &mut impl BufRead) -> Option<(String, String, u64)> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).ok()? == 0 {
        return None;
    }
    let mut words = request_line.split_whitespace();
    let (method, path) = (words.next()?.to_owned(), words.next()?.to_owned());
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line.trim().is_empty() {
            return Some((method, path, length));
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
}

/// Writes `answer` to `out`.
fn answer(
    mut out: &TcpStream,
    answer: Answer,
    path: &str,
    port: u16,
    shared: &Shared,
) -> std::io::Result<()> {
    let head = |status: &str, extra: &str, length: Option<u64>| {
        let length = length.map(|n| format!("Content-Length: {n}\r\n")).unwrap_or_default();
        format!("HTTP/1.1 {status}\r\n{extra}{length}Connection: close\r\n\r\n")
    };
    match answer {
        Answer::Status(code) => out.write_all(head(&format!("{code} Hostile"), "", Some(0)).as_bytes()),
        Answer::RedirectLoop => {
            out.write_all(head("302 Found", &format!("Location: {path}\r\n"), Some(0)).as_bytes())
        }
        Answer::TokenChallenge => {
            let challenge = format!(
                "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"hostile\"\r\n"
            );
            out.write_all(head("401 Unauthorized", &challenge, Some(0)).as_bytes())
        }
        Answer::Bytes(bytes) => out
            .write_all(head("200 OK", "", Some(bytes.len() as u64)).as_bytes())
            .and_then(|()| out.write_all(&bytes)),
        Answer::Endless(pattern) => {
            let chunk: Vec<u8> = pattern.iter().copied().cycle().take(ENDLESS_CHUNK).collect();
            let mut written = out.write_all(head("200 OK", "", None).as_bytes());
            while written.is_ok() && !shared.is_stopped() {
                written = out.write_all(&chunk);
            }
            written
        }
        Answer::Claiming { length, body } => {
            out.write_all(head("200 OK", "", Some(length)).as_bytes()).and_then(|()| out.write_all(&body))
        }
        Answer::Drip { length, interval } => {
            let mut written = out.write_all(head("200 OK", "", Some(length)).as_bytes());
            for _ in 0..length {
                written = written.and_then(|()| out.write_all(b" "));
                if written.is_err() || shared.pause(Some(interval)) {
                    break;
                }
            }
            written
        }
        Answer::StallAfterOneByte { length } => {
            let written =
                out.write_all(head("200 OK", "", Some(length)).as_bytes()).and_then(|()| out.write_all(b" "));
            shared.pause(None);
            written
        }
        Answer::Silence => {
            shared.pause(None);
            Ok(())
        }
        Answer::Json(code, body) => out
            .write_all(
                head(
                    &format!("{code} Scripted"),
                    "Content-Type: application/json\r\n",
                    Some(body.len() as u64),
                )
                .as_bytes(),
            )
            .and_then(|()| out.write_all(body.as_bytes())),
        Answer::WithHeaders(code, headers) => {
            out.write_all(head(&format!("{code} Scripted"), &headers, Some(0)).as_bytes())
        }
    }
}

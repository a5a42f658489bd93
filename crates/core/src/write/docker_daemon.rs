//! Loading an image into a Docker Engine over its socket (`copyToDockerDaemon`): the
//! docker-archive is streamed into `POST /images/load` as it is written, with no file between.
//!
//! The engine is the one `DOCKER_HOST` names (`unix:///path/to/docker.sock`), else
//! `/var/run/docker.sock`. HTTP/1.1 is spoken by hand here: the exchange is one request with a
//! chunked body and one response, over a Unix socket the HTTP client does not offer.

use crate::image::plan::{Format, ImageSpec, Plan};
use crate::write::archive::write_archive;
use crate::{Error, Result};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

/// Docker's socket when `DOCKER_HOST` does not name one.
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// The socket of the engine `docker_host` (the value of `DOCKER_HOST`, if set) names.
pub fn socket_of(docker_host: Option<&str>) -> Result<PathBuf> {
    match docker_host {
        None | Some("") => Ok(DEFAULT_SOCKET.into()),
        Some(host) => host.strip_prefix("unix://").map(PathBuf::from).ok_or_else(|| Error::Environment {
            var: "DOCKER_HOST",
            problem: format!("is {host:?}; only unix:// sockets are supported"),
        }),
    }
}

/// Loads `image` into the engine at `socket`, writing on `threads` threads; returns what the
/// engine said (`Loaded image: …`).
pub fn load(image: &ImageSpec, socket: &std::path::Path, threads: usize) -> Result<String> {
    let engine_error = |e: io::Error| Error::io(socket, e);
    let stream = UnixStream::connect(socket).map_err(engine_error)?;
    let mut request =
        io::BufWriter::with_capacity(crate::format::chunks::CHUNK, stream.try_clone().map_err(engine_error)?);
    request
        .write_all(
            b"POST /images/load?quiet=1 HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\n\
              Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        )
        .map_err(engine_error)?;
    let plan = Plan { mtime: 1, format: Format::DockerArchive, index: None, images: vec![image.clone()] };
    let written =
        write_archive(&plan, Chunked(request), socket, threads, |_, _, _| {}).and_then(|mut body| {
            body.0.write_all(b"0\r\n\r\n").and_then(|()| body.0.flush()).map_err(engine_error)
        });
    // An engine that stopped reading says why in its answer; without one, the broken pipe is
    // the error. Either way a broken write is never a success.
    let broken = match written {
        Err(e) if e.is_broken_pipe() => Some(e),
        written => written.map(|()| None)?,
    };
    let mut response = BufReader::new(stream);
    let mut status = String::new();
    let mut rest = String::new();
    let read = response.read_line(&mut status).and_then(|_| response.read_to_string(&mut rest));
    let answered = status.split_whitespace().nth(1).map(str::to_owned);
    let text = rest.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_owned();
    match (answered.as_deref(), broken) {
        (Some("200"), None) => read.map_err(engine_error)?,
        (Some("200") | None, Some(broken)) => return Err(broken),
        (Some(_), _) => {
            return Err(Error::io(
                socket,
                io::Error::other(format!("the engine answered {}: {text}", status.trim())),
            ))
        }
        (None, None) => {
            return Err(engine_error(read.err().unwrap_or_else(|| io::Error::other("no answer"))))
        }
    };
    // The body is chunked JSON messages: the stream lines say what was loaded.
    /// A message of the engine's answer (others, and lines that are none, say nothing).
    #[derive(serde::Deserialize)]
    struct Message {
        error: Option<String>,
        stream: Option<String>,
    }
    let said: Vec<String> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Message>(line).ok())
        .filter_map(|message| match message {
            Message { error: Some(error), .. } => Some(Err(error)),
            Message { stream, .. } => stream.map(|s| Ok(s.trim().to_owned())),
        })
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::io(socket, io::Error::other(format!("the engine refused the image: {e}"))))?;
    Ok(said.join("; "))
}

/// HTTP/1.1 chunked transfer coding over a writer: every write is one chunk.
struct Chunked<W: Write>(W);

impl<W: Write> Write for Chunked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        write!(self.0, "{:x}\r\n", buf.len())?;
        self.0.write_all(buf)?;
        self.0.write_all(b"\r\n")?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets() {
        assert_eq!(socket_of(None).unwrap(), PathBuf::from("/var/run/docker.sock"));
        assert_eq!(socket_of(Some("unix:///tmp/d.sock")).unwrap(), PathBuf::from("/tmp/d.sock"));
        let err = socket_of(Some("tcp://1.2.3.4:2375")).unwrap_err().to_string();
        assert!(err.contains("only unix:// sockets are supported"), "{err}");
    }

    #[test]
    fn chunks() {
        let mut out = Chunked(Vec::new());
        out.write_all(b"hello").unwrap();
        out.write_all(b"").unwrap();
        out.write_all(&[b'x'; 17]).unwrap();
        assert_eq!(
            out.0,
            [b"5\r\nhello\r\n".to_vec(), b"11\r\n".to_vec(), vec![b'x'; 17], b"\r\n".to_vec()].concat()
        );
    }
}

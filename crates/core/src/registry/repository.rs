//! One repository of a registry: the `/v2/<name>/…` endpoints that `stowage push` and
//! `pullImage` use — whether a blob is there, uploading it, putting a manifest, fetching a
//! manifest or a blob. How the registry is reached (TLS, credentials, tokens, deadlines) is
//! [`crate::registry::client`]'s; what the documents mean is the caller's.

use crate::format::digest::{Digest, DigestWriter};
use crate::format::oci::MediaType;
use crate::registry::client::{read_document, Failure, Registry};
use crate::{Error, Result};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// What a registry holds under a blob's digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobState {
    /// Nothing.
    Missing,
    /// The blob.
    Present,
    /// A blob of another size than expected (the size it said).
    OtherSize(u64),
}

/// How a blob went up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploaded {
    /// Its bytes were sent.
    Sent,
    /// The registry mounted it from another repository.
    Mounted,
}

/// How many times an upload is resumed before it is given up.
pub const RETRIES: usize = 3;

/// Whether `error` is a registry's refusal of a manifest for a blob it does not know
/// (`BLOB_UNKNOWN`, `MANIFEST_BLOB_UNKNOWN`): the registry's error codes are in the problem as
/// it said them.
pub fn is_blob_unknown(error: &Error) -> bool {
    matches!(error, Error::Registry { problem, .. } if problem.contains("BLOB_UNKNOWN"))
}

/// A repository (`team/app`) of a registry.
pub struct Repository {
    registry: Registry,
    name: String,
    /// The bytes of the chunks blobs are uploaded in; none: in one `PUT`.
    chunk_size: Option<u64>,
}

/// An upload under way: where its next request goes, and the smallest chunk the registry takes.
struct Session {
    location: String,
    min_chunk: u64,
}

impl Session {
    /// The URL that ends the upload as the blob `digest`.
    fn with_digest(&self, digest: &Digest) -> String {
        let separator = if self.location.contains('?') { '&' } else { '?' };
        format!("{}{separator}digest={digest}", self.location)
    }
}

/// The `Content-Range` of the `length` (at least 1) bytes from `offset`: its last byte is
/// inclusive, as the distribution spec has it.
fn content_range(offset: u64, length: u64) -> String {
    format!("{offset}-{}", offset + length - 1)
}

/// How many bytes of an upload a registry holds, by its `Range` header (`0-LAST`, last byte
/// inclusive; some write `bytes=0-LAST`). `0-0` is taken for none: distribution says it for an
/// empty upload (and for one of one byte, which a chunk then finds out of place).
fn held_bytes(range: &str) -> Option<u64> {
    let range = range.trim();
    let (start, last) = range.strip_prefix("bytes=").unwrap_or(range).split_once('-')?;
    let last: u64 = last.trim().parse().ok()?;
    (start.trim() == "0").then_some(if last == 0 { 0 } else { last + 1 })
}

impl Repository {
    /// The repository `name` of `registry`.
    pub fn new(registry: Registry, name: impl Into<String>) -> Repository {
        Repository { registry, name: name.into(), chunk_size: None }
    }

    /// The same, uploading blobs in chunks of `chunk_size` bytes (none: in one `PUT`).
    pub fn chunked(self, chunk_size: Option<u64>) -> Repository {
        Repository { chunk_size, ..self }
    }

    /// The registry it is on, for its errors.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    fn url(&self, path: &str) -> String {
        self.registry.url(&format!("/v2/{}/{path}", self.name))
    }

    /// Whether the registry holds the blob `digest`, of `size` bytes (the size, where it says
    /// it, must be that).
    ///
    /// A `5xx` is asked again, [`RETRIES`] times at most, a moment later each time: Debian's
    /// distribution answers 500 for a blob that another push is committing at that moment.
    pub fn blob_state(&self, digest: &Digest, size: u64) -> Result<BlobState> {
        let mut retries = 0;
        loop {
            match self.registry.send("HEAD", &self.url(&format!("blobs/{digest}")), &[], &[]) {
                Ok(answer) => {
                    return match answer.header("Content-Length").and_then(|n| n.parse::<u64>().ok()) {
                        Some(found) if found != size => Ok(BlobState::OtherSize(found)),
                        _ => Ok(BlobState::Present),
                    }
                }
                Err(e) if e.status() == Some(404) => return Ok(BlobState::Missing),
                Err(e) if retries < RETRIES && e.status().is_some_and(|s| s >= 500) => {
                    retries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100 * retries as u64));
                }
                Err(e) => return Err(self.registry.failure(&format!("asking for blob {digest}"), e)),
            }
        }
    }

    /// Uploads the blob `digest` of `size` bytes, read from `body`, mounting it from the
    /// repository `from` of the same registry if given and the registry can: a `POST` that
    /// starts the upload (or mounts), then one `PUT` of the bytes — or, with a chunk size, `PATCH`
    /// requests of a chunk each and a `PUT` that ends the upload. The `POST` earned the
    /// authorization the others need, so they are not sent twice.
    ///
    /// A transfer that breaks off, or a chunk the registry fails (5xx) or finds out of place
    /// (416), is resumed where the registry says its bytes end (`GET` of the upload), from a
    /// new upload if it has lost this one, [`RETRIES`] times at most.
    pub fn upload(
        &self,
        digest: &Digest,
        size: u64,
        body: &mut (impl Read + Seek),
        from: Option<&str>,
    ) -> Result<Uploaded> {
        let what = format!("uploading blob {digest}");
        let mut session = match from {
            Some(from) => match self.mount(digest, from)? {
                Some(session) => session,
                None => return Ok(Uploaded::Mounted),
            },
            None => self.start_upload()?,
        };
        // What the registry holds of the blob, and whether it goes in chunks.
        let (mut offset, mut chunked) = (0, self.chunk_size.is_some());
        let mut retries = 0;
        loop {
            let failure = match self.send_from(&mut session, digest, size, body, offset, chunked) {
                Ok(()) => return Ok(Uploaded::Sent),
                Err(failure) => failure,
            };
            if retries == RETRIES || !self.resumable(&failure) {
                let what = match retries {
                    0 => what,
                    _ => format!("{what} (given up after {retries} resumptions)"),
                };
                return Err(self.registry.failure(&what, failure));
            }
            retries += 1;
            (session, offset) = match self.upload_status(&session) {
                Some(resumed) => resumed,
                // The upload is over: it ended as the blob, only its answer was lost…
                None if self.blob_state(digest, size)? == BlobState::Present => return Ok(Uploaded::Sent),
                // …or the registry lost it (or does not say where it stands): from the start.
                None => (self.start_upload()?, 0),
            };
            chunked = true;
        }
    }

    /// Sends `body` (`size` bytes) from `offset` on to the upload `session` and ends it: in one
    /// `PUT` unless `chunked`, else in `PATCH` chunks and a `PUT` without a body.
    fn send_from(
        &self,
        session: &mut Session,
        digest: &Digest,
        size: u64,
        body: &mut (impl Read + Seek),
        mut offset: u64,
        chunked: bool,
    ) -> std::result::Result<(), Failure> {
        body.seek(SeekFrom::Start(offset)).map_err(Failure::Transfer)?;
        let end = session.with_digest(digest);
        if !chunked {
            return self
                .registry
                .blob_request("PUT", &end)
                .set("Content-Type", "application/octet-stream")
                .set("Content-Length", &size.to_string())
                .send(self.registry.pace(body))
                .map(drop)
                .map_err(Failure::from);
        }
        // A registry may want chunks of at least so many bytes (the last one aside).
        let chunk = self.chunk_size.unwrap_or(size).max(session.min_chunk).max(1);
        while offset < size {
            let length = chunk.min(size - offset);
            let answer = self
                .registry
                .blob_request("PATCH", &session.location)
                .set("Content-Type", "application/octet-stream")
                .set("Content-Range", &content_range(offset, length))
                .set("Content-Length", &length.to_string())
                .send(self.registry.pace(&mut *body).take(length))?;
            if let Some(location) = answer.header("Location") {
                session.location = self.absolute(location);
            }
            offset += length;
        }
        let end = session.with_digest(digest);
        self.registry.blob_request("PUT", &end).set("Content-Length", "0").send_bytes(&[]).map(drop)?;
        Ok(())
    }

    /// Whether an upload that failed so may go on where the registry's bytes end: the
    /// transfer broke off (time running out aside: a registry too slow now is no faster
    /// resumed), the registry failed (5xx), or it found a chunk out of place (416).
    fn resumable(&self, failure: &Failure) -> bool {
        match failure {
            Failure::Http(e) => match &**e {
                ureq::Error::Status(code, _) => *code >= 500 || *code == 416,
                ureq::Error::Transport(t) => self.registry.timeouts().ran_out(t).is_none(),
            },
            Failure::Transfer(e) => self.registry.timeouts().ran_out(e).is_none(),
            Failure::Refused(_) => false,
        }
    }

    /// Where the upload `session` stands (`GET` of it: `204` with `Range: 0-LAST` and its
    /// `Location`): the session to go on with and how many bytes the registry holds; `None` if
    /// the registry does not say.
    fn upload_status(&self, session: &Session) -> Option<(Session, u64)> {
        let answer = self.registry.send("GET", &session.location, &[], &[]).ok()?;
        let held = held_bytes(answer.header("Range")?)?;
        let location =
            answer.header("Location").map_or_else(|| session.location.clone(), |l| self.absolute(l));
        Some((Session { location, min_chunk: session.min_chunk }, held))
    }

    /// Asks the registry to mount the blob `digest` from its repository `from`: `None` if it
    /// did (`201`), else the upload it started instead (`202`) or, if it refused, a new one.
    fn mount(&self, digest: &Digest, from: &str) -> Result<Option<Session>> {
        let url = self.url(&format!("blobs/uploads/?mount={digest}&from={from}"));
        match self.registry.send("POST", &url, &[("Content-Length", "0")], &[]) {
            Ok(answer) if answer.status() == 201 => Ok(None),
            Ok(answer) => self.session(&answer).map(Some),
            // A repository the credentials may not read, say: the blob is sent.
            Err(e) if e.status().is_some() => self.start_upload().map(Some),
            Err(e) => Err(self.registry.failure(&format!("mounting blob {digest} from {from}"), e)),
        }
    }

    /// Starts an upload.
    fn start_upload(&self) -> Result<Session> {
        let started = self
            .registry
            .send("POST", &self.url("blobs/uploads/"), &[("Content-Length", "0")], &[])
            .map_err(|e| self.registry.failure("starting an upload", e))?;
        self.session(&started)
    }

    /// The upload an answer to a `POST` started.
    fn session(&self, started: &ureq::Response) -> Result<Session> {
        let location = started.header("Location").ok_or_else(|| {
            self.registry.failure("starting an upload", Failure::Refused("no Location in the answer".into()))
        })?;
        let min_chunk =
            started.header("OCI-Chunk-Min-Length").and_then(|n| n.trim().parse().ok()).unwrap_or(0);
        Ok(Session { location: self.absolute(location), min_chunk })
    }

    /// A `Location` the registry gave, as an absolute URL.
    fn absolute(&self, location: &str) -> String {
        if location.starts_with('/') {
            self.registry.url(location)
        } else {
            location.to_owned()
        }
    }

    /// Uploads the small blob `bytes` unless the registry has it; whether it was sent.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<bool> {
        let digest = Digest::of(bytes);
        let size = bytes.len() as u64;
        if self.blob_state(&digest, size)? == BlobState::Present {
            return Ok(false);
        }
        self.upload(&digest, size, &mut std::io::Cursor::new(bytes), None)?;
        Ok(true)
    }

    /// Puts `manifest`, of `media_type`, under `reference` (a tag or a digest); the subject the
    /// registry says it indexed the manifest as a referrer of (`OCI-Subject`), if it says so.
    pub fn put_manifest(
        &self,
        reference: &str,
        manifest: &str,
        media_type: MediaType,
    ) -> Result<Option<String>> {
        self.registry
            .send(
                "PUT",
                &self.url(&format!("manifests/{reference}")),
                &[("Content-Type", media_type.as_str())],
                manifest.as_bytes(),
            )
            .map(|answer| answer.header("OCI-Subject").map(str::to_owned))
            .map_err(|e| self.registry.failure("putting the manifest", e))
    }

    /// The manifest (or index) `reference`, if the registry has one (at most `limit` bytes);
    /// `what` names the fetch in errors.
    pub fn find_manifest(&self, reference: &str, limit: u64, what: &str) -> Result<Option<Vec<u8>>> {
        let accept: Vec<&str> = MediaType::MANIFESTS.iter().map(|t| t.as_str()).collect();
        let response = match self.registry.send(
            "GET",
            &self.url(&format!("manifests/{reference}")),
            &[("Accept", &accept.join(", "))],
            &[],
        ) {
            Ok(response) => response,
            Err(e) if e.status() == Some(404) => return Ok(None),
            Err(e) => return Err(self.registry.failure(what, e)),
        };
        match read_document(response, limit) {
            Ok(Some(bytes)) => Ok(Some(bytes)),
            Ok(None) => {
                Err(self.registry.failure(what, Failure::Refused(format!("it has more than {limit} bytes"))))
            }
            Err(e) => Err(self.registry.failure(what, Failure::Transfer(e))),
        }
    }

    /// The manifest (or index) `reference`, of any type stowage reads, if it has at most
    /// `limit` bytes, with the `Content-Type` the registry gave it; `what` names the fetch in
    /// errors.
    pub fn manifest(&self, reference: &str, limit: u64, what: &str) -> Result<Option<(Vec<u8>, String)>> {
        let accept: Vec<&str> = MediaType::MANIFESTS.iter().map(|t| t.as_str()).collect();
        let response = self
            .registry
            .send("GET", &self.url(&format!("manifests/{reference}")), &[("Accept", &accept.join(", "))], &[])
            .map_err(|e| self.registry.failure(what, e))?;
        let content_type = response.content_type().to_owned();
        let bytes =
            read_document(response, limit).map_err(|e| self.registry.failure(what, Failure::Transfer(e)))?;
        Ok(bytes.map(|bytes| (bytes, content_type)))
    }

    /// Copies at most `size` bytes of the blob `digest` to `out`, which writes to the file
    /// `into` (named in its errors): the digest and size of what came, for the caller to hold
    /// against what it expected.
    pub fn copy_blob(
        &self,
        digest: &Digest,
        size: u64,
        (out, into): (&mut dyn Write, &Path),
        what: &str,
    ) -> Result<(Digest, u64)> {
        let response = self
            .registry
            .get_blob(&self.url(&format!("blobs/{digest}")))
            .map_err(|e| self.registry.failure(what, e))?;
        let mut reader = self.registry.pace(response.into_reader()).take(size);
        let mut hashed = DigestWriter::new(out);
        let mut buffer = vec![0; 1 << 16];
        loop {
            let n =
                reader.read(&mut buffer).map_err(|e| self.registry.failure(what, Failure::Transfer(e)))?;
            if n == 0 {
                break;
            }
            hashed.write_all(&buffer[..n]).map_err(|e| Error::io(into, e))?;
        }
        let (_, digest, size) = hashed.finish();
        Ok((digest, size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(content_range(0, 65536), "0-65535");
        assert_eq!(content_range(65536, 1), "65536-65536");
        assert_eq!(held_bytes("0-65535"), Some(65536));
        assert_eq!(held_bytes("bytes=0-99"), Some(100));
        assert_eq!(held_bytes("0-0"), Some(0));
        for bad in ["", "5-9", "0-", "0-x", "65535"] {
            assert_eq!(held_bytes(bad), None, "{bad}");
        }
    }
}

//! One repository of a registry: the `/v2/<name>/…` endpoints that `stowage push` and
//! `pullImage` use — whether a blob is there, uploading it, putting a manifest, fetching a
//! manifest or a blob. How the registry is reached (TLS, credentials, tokens, deadlines) is
//! [`crate::registry::client`]'s; what the documents mean is the caller's.

use crate::format::digest::{Digest, DigestWriter};
use crate::format::oci::MediaType;
use crate::registry::client::{read_document, Failure, Registry};
use crate::{Error, Result};
use std::io::{Read, Write};

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

/// A repository (`team/app`) of a registry.
pub struct Repository {
    registry: Registry,
    name: String,
}

impl Repository {
    /// The repository `name` of `registry`.
    pub fn new(registry: Registry, name: impl Into<String>) -> Repository {
        Repository { registry, name: name.into() }
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
    pub fn blob_state(&self, digest: &Digest, size: u64) -> Result<BlobState> {
        match self.registry.send("HEAD", &self.url(&format!("blobs/{digest}")), &[], &[]) {
            Ok(answer) => match answer.header("Content-Length").and_then(|n| n.parse::<u64>().ok()) {
                Some(found) if found != size => Ok(BlobState::OtherSize(found)),
                _ => Ok(BlobState::Present),
            },
            Err(e) if e.status() == Some(404) => Ok(BlobState::Missing),
            Err(e) => Err(self.registry.failure(&format!("asking for blob {digest}"), e)),
        }
    }

    /// Uploads the blob `digest` of `size` bytes, read from `body`: a `POST` that starts the
    /// upload, then one `PUT` of the bytes (the `POST` earned the authorization the `PUT` needs,
    /// so it is not sent twice).
    pub fn upload(&self, digest: &Digest, size: u64, body: impl Read) -> Result<()> {
        let url = self.start_upload(digest)?;
        self.registry
            .blob_request("PUT", &url)
            .set("Content-Type", "application/octet-stream")
            .set("Content-Length", &size.to_string())
            .send(self.registry.pace(body))
            .map(drop)
            .map_err(|e| self.registry.failure(&format!("uploading blob {digest}"), e))
    }

    /// Starts an upload of the blob `digest`: the URL its bytes go to.
    fn start_upload(&self, digest: &Digest) -> Result<String> {
        let started = self
            .registry
            .send("POST", &self.url("blobs/uploads/"), &[("Content-Length", "0")], &[])
            .map_err(|e| self.registry.failure("starting an upload", e))?;
        let location = started.header("Location").ok_or_else(|| {
            self.registry.failure("starting an upload", Failure::Refused("no Location in the answer".into()))
        })?;
        let location =
            if location.starts_with('/') { self.registry.url(location) } else { location.to_owned() };
        let separator = if location.contains('?') { '&' } else { '?' };
        Ok(format!("{location}{separator}digest={digest}"))
    }

    /// Uploads the small blob `bytes` unless the registry has it; whether it was sent.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<bool> {
        let digest = Digest::of(bytes);
        let size = bytes.len() as u64;
        if self.blob_state(&digest, size)? == BlobState::Present {
            return Ok(false);
        }
        self.upload(&digest, size, std::io::Cursor::new(bytes))?;
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

    /// Copies at most `size` bytes of the blob `digest` to `out`: the digest and size of what
    /// came, for the caller to hold against what it expected.
    pub fn copy_blob(
        &self,
        digest: &Digest,
        size: u64,
        out: &mut dyn Write,
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
            hashed.write_all(&buffer[..n]).map_err(|e| Error::io("(output)", e))?;
        }
        let (_, digest, size) = hashed.finish();
        Ok((digest, size))
    }
}

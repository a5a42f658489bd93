//! `stowage push`: an image straight from its plan to a registry, over the OCI distribution
//! API, without a daemon and without writing the image to disk.
//!
//! Every layer is compressed for the registry (gzip, or zstd) on every core; the compressors
//! give the same bytes on any machine, so a layer's compressed digest is a function of its
//! diff_id, kept in a small cache (`$XDG_CACHE_HOME/stowage/blobs`). A push asks the registry
//! for each blob first (`HEAD`) and sends only the missing ones, each compressed as it is sent:
//! an unchanged image is pushed again without compressing or sending a layer.
//!
//! This first cut speaks to registries without authentication; plain HTTP is used for
//! `localhost` and `127.0.0.1` only, HTTPS with the system's CA store otherwise.

use crate::archive::{pipe, produce_layer};
use crate::chunks::to_writer;
use crate::compress::Compressor;
use crate::digest::{Digest, DigestWriter};
use crate::image::{ImageSpec, PlannedLayer};
use crate::image_reader::ArchiveReader;
use crate::{Error, Result};
use serde_json::json;
use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;

/// Where an image goes: `docker://HOST[:PORT]/REPOSITORY[:TAG]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// `host[:port]`.
    pub registry: String,
    /// The repository, `team/app`.
    pub repository: String,
    /// The tag.
    pub tag: String,
}

impl Destination {
    /// Parses `docker://HOST[:PORT]/REPOSITORY[:TAG]` (the tag defaults to `latest`).
    pub fn parse(text: &str) -> Result<Destination> {
        let bad = |why: &str| {
            Error::argument(
                "DEST",
                format!("{text:?} {why}; the form is docker://HOST[:PORT]/REPOSITORY[:TAG]"),
            )
        };
        let rest = text.strip_prefix("docker://").ok_or_else(|| bad("is not a docker:// reference"))?;
        let (registry, path) = rest.split_once('/').ok_or_else(|| bad("names no repository"))?;
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, tag),
            _ => (path, "latest"),
        };
        if registry.is_empty() || repository.is_empty() || tag.is_empty() {
            return Err(bad("is incomplete"));
        }
        crate::reference::check_tag(tag)?;
        Ok(Destination { registry: registry.into(), repository: repository.into(), tag: tag.into() })
    }

    fn base(&self) -> String {
        let host = self.registry.rsplit_once(':').map_or(self.registry.as_str(), |(h, _)| h);
        let scheme = if matches!(host, "localhost" | "127.0.0.1" | "[::1]") { "http" } else { "https" };
        format!("{scheme}://{}/v2/{}", self.registry, self.repository)
    }
}

/// What a push did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// Blobs the registry had already.
    pub skipped: usize,
    /// Blobs sent.
    pub sent: usize,
    /// Bytes sent, in blobs.
    pub bytes: u64,
    /// The manifest's digest.
    pub manifest: String,
}

/// Pushes `image` to `dest`, its layers compressed by `compressor` (gzip or zstd) on `threads`
/// threads. `progress` hears a line about every blob.
pub fn push(
    image: &ImageSpec,
    dest: &Destination,
    compressor: Compressor,
    threads: usize,
    mut progress: impl FnMut(&str),
) -> Result<Pushed> {
    let (layer_type, manifest_type, config_type) = match compressor {
        Compressor::Gzip => (
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.container.image.v1+json",
        ),
        Compressor::Zstd => (
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.config.v1+json",
        ),
        Compressor::None => {
            return Err(Error::argument(
                "--compress",
                "must be gz or zstd: registries take compressed layers",
            ))
        }
    };
    let client = Client { agent: ureq::AgentBuilder::new().build(), base: dest.base(), dest: dest.clone() };
    let mut pushed = Pushed::default();
    let mut archives = ArchiveReader::default();
    let mut layers = Vec::new();
    for (index, layer) in image.layers.iter().enumerate() {
        let (digest, size) = match cached(layer, compressor) {
            Some(known) => known,
            None => {
                let mut counted = DigestWriter::new(io::sink());
                compress_layer(index, layer, compressor, threads, &mut archives, &mut counted)?;
                let (_, digest, size) = counted.finish();
                remember(layer, compressor, digest, size);
                (digest, size)
            }
        };
        let what = format!("layer {}/{} {digest} ({size} bytes)", index + 1, image.layers.len());
        if client.has_blob(&digest)? {
            pushed.skipped += 1;
            progress(&format!("{what}: the registry has it"));
        } else {
            client.upload(&digest, size, |out| {
                compress_layer(index, layer, compressor, threads, &mut archives, out)
            })?;
            pushed.sent += 1;
            pushed.bytes += size;
            progress(&format!("{what}: sent"));
        }
        layers.push(json!({ "mediaType": layer_type, "digest": digest.to_string(), "size": size }));
    }
    let config = image.config.as_bytes();
    let config_digest = Digest::of(config);
    if client.has_blob(&config_digest)? {
        pushed.skipped += 1;
    } else {
        client.upload(&config_digest, config.len() as u64, |out| {
            out.write_all(config).map_err(|e| Error::io("(config)", e))
        })?;
        pushed.sent += 1;
        pushed.bytes += config.len() as u64;
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": { "mediaType": config_type, "digest": config_digest.to_string(), "size": config.len() },
        "layers": layers,
    })
    .to_string();
    client.put_manifest(&manifest, manifest_type)?;
    pushed.manifest = Digest::of(manifest.as_bytes()).to_string();
    progress(&format!("manifest {} as {}:{}", pushed.manifest, dest.repository, dest.tag));
    Ok(pushed)
}

/// Writes the compressed bytes of `layer` to `out`, checking the layer against its plan.
fn compress_layer(
    index: usize,
    layer: &PlannedLayer,
    compressor: Compressor,
    threads: usize,
    archives: &mut ArchiveReader,
    out: &mut dyn Write,
) -> Result<()> {
    let io_err = |e| Error::io("(layer)", e);
    let compressed = compressor.writer(out, threads).map_err(io_err)?;
    let mut hashed = DigestWriter::new(compressed);
    let mut chunks = to_writer(&mut hashed);
    produce_layer(layer, &mut chunks, archives)?;
    drop(chunks.finish().map_err(io_err)?);
    let (compressed, digest, size) = hashed.finish();
    if digest != layer.digest || size != layer.size {
        return Err(Error::LayerMismatch {
            index,
            expected: layer.digest,
            found: Some(digest),
            expected_size: layer.size,
            found_size: size,
        });
    }
    compressed.finish().map_err(io_err)?;
    Ok(())
}

/// Where compressed digests are kept, by diff_id and compressor.
fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("stowage/blobs"))
}

fn cache_file(layer: &PlannedLayer, compressor: Compressor) -> Option<PathBuf> {
    let name = match compressor {
        Compressor::Gzip => "gz",
        Compressor::Zstd => "zstd",
        Compressor::None => return None,
    };
    Some(cache_dir()?.join(format!("{}.{name}", layer.digest.hex())))
}

fn cached(layer: &PlannedLayer, compressor: Compressor) -> Option<(Digest, u64)> {
    let text = fs::read_to_string(cache_file(layer, compressor)?).ok()?;
    let (digest, size) = text.trim().split_once(' ')?;
    Some((Digest::try_from(digest.to_owned()).ok()?, size.parse().ok()?))
}

/// Notes a compressed digest; a cache that cannot be written only costs a compression later.
fn remember(layer: &PlannedLayer, compressor: Compressor, digest: Digest, size: u64) {
    if let Some(file) = cache_file(layer, compressor) {
        let _ = file.parent().map(fs::create_dir_all);
        let _ = fs::write(file, format!("{digest} {size}\n"));
    }
}

struct Client {
    agent: ureq::Agent,
    base: String,
    dest: Destination,
}

impl Client {
    fn error(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::Registry { registry: self.dest.registry.clone(), problem: format!("{what}: {e}") }
    }

    fn has_blob(&self, digest: &Digest) -> Result<bool> {
        match self.agent.head(&format!("{}/blobs/{digest}", self.base)).call() {
            Ok(_) => Ok(true),
            Err(ureq::Error::Status(404, _)) => Ok(false),
            Err(e) => Err(self.error(&format!("asking for blob {digest}"), e)),
        }
    }

    /// Uploads the blob `digest` of `size` bytes, which `write` produces, in one request.
    fn upload(
        &self,
        digest: &Digest,
        size: u64,
        write: impl FnOnce(&mut dyn Write) -> Result<()>,
    ) -> Result<()> {
        let started = self
            .agent
            .post(&format!("{}/blobs/uploads/", self.base))
            .set("Content-Length", "0")
            .call()
            .map_err(|e| self.error("starting an upload", e))?;
        let location =
            started.header("Location").ok_or_else(|| self.error("starting an upload", "no Location"))?;
        let location = if location.starts_with('/') {
            let origin = self.base.split("/v2/").next().unwrap_or_default();
            format!("{origin}{location}")
        } else {
            location.to_owned()
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{separator}digest={digest}");
        // The body is produced on this thread and sent from another, through a pipe: the
        // layer is never whole in memory.
        let (reader, mut writer) = pipe().map_err(|e| self.error("uploading", e))?;
        std::thread::scope(|scope| {
            let sending = scope.spawn(|| {
                self.agent
                    .put(&url)
                    .set("Content-Type", "application/octet-stream")
                    .set("Content-Length", &size.to_string())
                    .send(reader)
                    .map(drop)
                    .map_err(|e| e.to_string())
            });
            let written = write(&mut writer);
            drop(writer);
            let sent = sending.join().map_err(|_| self.error("uploading", "the sending thread panicked"))?;
            written?;
            sent.map_err(|e| self.error(&format!("uploading blob {digest}"), e))?;
            Ok(())
        })
    }

    fn put_manifest(&self, manifest: &str, media_type: &str) -> Result<()> {
        self.agent
            .put(&format!("{}/manifests/{}", self.base, self.dest.tag))
            .set("Content-Type", media_type)
            .send_string(manifest)
            .map_err(|e| self.error("putting the manifest", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        let d = Destination::parse("docker://127.0.0.1:5000/team/app:v1").unwrap();
        assert_eq!(
            (d.registry.as_str(), d.repository.as_str(), d.tag.as_str()),
            ("127.0.0.1:5000", "team/app", "v1")
        );
        assert_eq!(d.base(), "http://127.0.0.1:5000/v2/team/app");
        let d = Destination::parse("docker://registry.example.com/app").unwrap();
        assert_eq!((d.tag.as_str(), d.base().as_str()), ("latest", "https://registry.example.com/v2/app"));
        for bad in ["registry.example.com/app", "docker://host", "docker://host/app:-x"] {
            assert!(Destination::parse(bad).is_err(), "{bad}");
        }
    }
}

//! `stowage push`: an image straight from its plan to a registry, over the OCI distribution
//! API, without a daemon and without writing the image to disk — or into an image file, an OCI
//! layout, a Docker Engine or podman ([`crate::write::deliver::Target`]).
//!
//! Every layer is compressed for the registry (gzip, or zstd) on every core; the compressors
//! give the same bytes on any machine, so a layer's compressed digest is a function of its
//! diff_id — and of its inputs digest, for a layer hashed only as it is written — kept in a small
//! cache (`$XDG_CACHE_HOME/stowage/blobs`) with the diff_id. A push asks the registry
//! for each blob first (`HEAD`) and sends only the missing ones, compressed once into a
//! temporary file and sent from it; an unchanged image is pushed again without compressing or
//! sending a layer.
//!
//! The cache only saves compressing a layer to learn its digest; it is checked wherever it is
//! used. An entry carries a check of the layer it was written for (an entry copied to another
//! layer's name, or damaged, is ignored); a registry that holds another size under the cached
//! digest drops the entry; a layer that is sent is compressed afresh, and its entry corrected
//! if it was wrong; two different layers never go into one manifest under one blob.
//!
//! A blob the repository lacks that stowage put in another repository of the registry before
//! ([`MountRecord`]) is mounted from there when the registry can, rather than sent.
//!
//! How the registry is reached (TLS, credentials, tokens) is [`crate::registry::client`]'s
//! business; how a blob is uploaded (in chunks, resumed), [`Repository::upload`]'s.

use crate::format::chunks::to_writer;
use crate::format::compress::Compression;
use crate::format::digest::{Digest, DigestWriter};
use crate::format::oci::{to_json, Descriptor, ImageConfig, Index, Manifest, MediaType};
use crate::image::plan::{check_platforms, platform_of};
use crate::image::plan::{ImageSpec, PlannedLayer};
use crate::read::archive::ArchiveReader;
use crate::registry::access::Access;
use crate::registry::client::{Failure, Registry};
use crate::registry::destination::Destination;
use crate::registry::repository::{is_blob_unknown, BlobState, Repository, Uploaded, RETRIES};
use crate::write::archive::produce_layer;
use crate::write::attach::{attach, Attached, Subject};
use crate::write::blob_cache::{Blob, BlobCache};
use crate::write::mount_record::MountRecord;
use crate::{Error, Result};
use std::cell::Cell;
use std::fs;
use std::io::{self, Read, Seek, Write};
use std::sync::mpsc;

/// What a push did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// Blobs the registry had already.
    pub skipped: usize,
    /// Blobs sent.
    pub sent: usize,
    /// Blobs the registry mounted from another of its repositories.
    pub mounted: usize,
    /// Bytes sent, in blobs.
    pub bytes: u64,
    /// The manifest's digest.
    pub manifest: String,
}

/// The media types of what a push sends, by how its layers are compressed: Docker's for
/// gzip (what every registry and client takes), OCI's for zstd (which Docker's have no name for).
struct MediaTypes {
    layer: MediaType,
    config: MediaType,
    manifest: MediaType,
    index: MediaType,
}

impl MediaTypes {
    fn of(compressor: Compression) -> Result<MediaTypes> {
        match compressor {
            Compression::Gzip => Ok(MediaTypes {
                layer: MediaType::DockerLayerGzip,
                config: MediaType::DockerConfig,
                manifest: MediaType::DockerManifest,
                index: MediaType::DockerManifestList,
            }),
            Compression::Zstd => Ok(MediaTypes {
                layer: MediaType::OciLayerZstd,
                config: MediaType::OciConfig,
                manifest: MediaType::OciManifest,
                index: MediaType::OciIndex,
            }),
            Compression::None => {
                Err(Error::argument("--compress", "must be gz or zstd: registries take compressed layers"))
            }
        }
    }
}

/// Pushes `images` to `dest`, their layers compressed by `compressor` (gzip or zstd) on
/// `threads` threads: one image under the destination's tag, or several — one image for
/// several platforms — each under its digest, with an index (a manifest list) under the tag;
/// and under each of `also` (other tags, each once) too; with `attached`'s documents and
/// signature, which are in place before the image is tagged. `progress` hears a line about
/// every blob.
#[allow(clippy::too_many_arguments)]
pub fn push(
    images: &[ImageSpec],
    dest: &Destination,
    also: &[String],
    attached: &Attached,
    access: &Access,
    compressor: Compression,
    threads: usize,
    mut progress: impl FnMut(&str),
) -> Result<Pushed> {
    let types = MediaTypes::of(compressor)?;
    let client = Repository::new(Registry::connect(&dest.registry, access)?, dest.repository.clone())
        .chunked(access.chunk_size);
    let mut pushed = Pushed::default();
    let sender = Sender {
        client: &client,
        dest,
        types: &types,
        compressor,
        threads,
        cache: BlobCache::of_user(),
        mounts: MountRecord::of_user(),
    };
    let (manifest, media_type) = match images {
        [image] => (sender.image_and_manifest(image, &mut pushed, &mut progress)?, types.manifest),
        _ => {
            check_platforms(images, |i| format!("image {} ({})", i + 1, platform_of(&images[i].config)))?;
            let mut manifests = Vec::new();
            for image in images {
                let manifest = sender.image_and_manifest(image, &mut pushed, &mut progress)?;
                let digest = Digest::of(manifest.as_bytes());
                progress(&format!("manifest {digest} for {}", platform_of(&image.config)));
                let mut descriptor = Descriptor::new(types.manifest, digest, manifest.len() as u64);
                descriptor.platform = ImageConfig::platform_of(&image.config);
                manifests.push(descriptor);
            }
            (to_json(&Index::new(types.index, manifests)), types.index)
        }
    };
    let digest = Digest::of(manifest.as_bytes());
    pushed.manifest = digest.to_string();
    if !attached.is_empty() {
        if images.len() > 1 {
            client.put_manifest(&pushed.manifest, &manifest, media_type)?;
        }
        let subject = Subject { digest, size: manifest.len() as u64, media_type };
        attach(
            &client,
            &format!("{}/{}", dest.registry, dest.repository),
            &subject,
            attached,
            &mut progress,
        )?;
    }
    let mut tagged: Vec<&str> = Vec::new();
    for tag in std::iter::once(&dest.tag).chain(also) {
        client.put_manifest(tag, &manifest, media_type).map_err(|e| match tagged.as_slice() {
            [] => e,
            done => Error::Delivery(format!("{e} (as {tag}; it is tagged {} already)", done.join(", "))),
        })?;
        tagged.push(tag);
        progress(&format!("manifest {} as {}:{tag}", pushed.manifest, dest.repository));
    }
    Ok(pushed)
}

/// What sends an image's blobs.
struct Sender<'a> {
    client: &'a Repository,
    dest: &'a Destination,
    types: &'a MediaTypes,
    compressor: Compression,
    threads: usize,
    cache: BlobCache,
    mounts: MountRecord,
}

impl Sender<'_> {
    /// Sends the blobs of `image` the registry lacks and puts its manifest by digest; returns
    /// the manifest. A manifest refused for a blob the registry does not know, after the blob
    /// was sent or found, is put again once the blobs are checked (and sent) again, [`RETRIES`]
    /// times at most: Debian's distribution can lose a blob's link in the repository when two
    /// pushes finish uploading it at the same moment.
    fn image_and_manifest(
        &self,
        image: &ImageSpec,
        pushed: &mut Pushed,
        progress: &mut impl FnMut(&str),
    ) -> Result<String> {
        let mut retries = 0;
        loop {
            // blobs found again on a retry were counted the first time
            let mut again = Pushed::default();
            let counted = if retries == 0 { &mut *pushed } else { &mut again };
            let manifest = self.image(image, counted, progress)?;
            pushed.sent += again.sent;
            pushed.bytes += again.bytes;
            pushed.mounted += again.mounted;
            let digest = Digest::of(manifest.as_bytes()).to_string();
            match self.client.put_manifest(&digest, &manifest, self.types.manifest) {
                Err(e) if retries < RETRIES && is_blob_unknown(&e) => {
                    retries += 1;
                    progress(&format!("manifest {digest}: {e}; checking its blobs again"));
                }
                put => return put.map(|_| manifest),
            }
        }
    }

    /// Sends the blobs of `image` the registry lacks; returns its manifest.
    fn image(
        &self,
        image: &ImageSpec,
        pushed: &mut Pushed,
        progress: &mut impl FnMut(&str),
    ) -> Result<String> {
        let count = image.layers.len();
        // Each layer's id, and the blob it went as.
        let mut sent: Vec<(Digest, Blob)> = Vec::new();
        std::thread::scope(|scope| -> Result<()> {
            // Layers are prepared (their digests learnt, compressing them if need be) ahead of
            // the upload, on a thread of their own: compressing the next layers overlaps
            // sending this one, while the cores would otherwise wait for the registry.
            let (ready, prepared) = mpsc::sync_channel(PREPARED_AHEAD);
            scope.spawn(move || {
                let mut archives = ArchiveReader::default();
                for (index, layer) in image.layers.iter().enumerate() {
                    let layer = self.prepare(index, layer, &mut archives);
                    let failed = layer.is_err();
                    if ready.send(layer).is_err() || failed {
                        break;
                    }
                }
            });
            let mut archives = ArchiveReader::default();
            for (index, layer) in image.layers.iter().enumerate() {
                let ready = prepared.recv().expect("a layer or its error")?;
                let what = format!("layer {}/{count}", index + 1);
                let blob = self.send(index, layer, ready, &what, &mut archives, pushed, progress)?;
                let same_blob =
                    sent.iter().position(|(id, other)| other.digest == blob.digest && *id != layer.id());
                // Two layers taken for one blob: the same bytes (an empty layer in the image and
                // in its base, say), or cache entries that said so wrongly, and the manifest would
                // list one layer twice, a wrong image. Compressed afresh, they tell.
                let wrong = match same_blob {
                    Some(other) => {
                        let fresh = self.compress(index, layer, &mut archives)?.blob;
                        let fresh_other = self.compress(other, &image.layers[other], &mut archives)?.blob;
                        (fresh != blob || fresh_other != sent[other].1).then_some(other)
                    }
                    None => None,
                };
                if let Some(other) = wrong {
                    self.cache.forget(&layer.id(), self.compressor);
                    self.cache.forget(&sent[other].0, self.compressor);
                    return Err(self.client.registry().failure(
                        &format!("pushing {what}"),
                        Failure::Refused(format!(
                            "it and layer {}/{count} were both taken for blob {}: the compressed-digest \
                             cache was wrong about them; their entries are removed, and nothing was tagged: push again",
                            other + 1,
                            blob.digest
                        )),
                    ));
                }
                sent.push((layer.id(), blob));
            }
            Ok(())
        })?;
        let layers =
            sent.iter().map(|(_, blob)| Descriptor::new(self.types.layer, blob.digest, blob.size)).collect();
        // the diff_ids of layers hashed only now
        let learnt = sent.iter().map(|(id, blob)| (*id, blob.diff_id)).collect();
        let config = image.config_with(&learnt);
        let config = config.as_bytes();
        let config_digest = Digest::of(config);
        let size = config.len() as u64;
        let described = format!("config {config_digest} ({size} bytes)");
        if self.client.blob_state(&config_digest, size)? == BlobState::Present {
            self.present(&config_digest, &described, pushed, progress);
        } else {
            self.upload(&config_digest, size, &mut io::Cursor::new(config), &described, pushed, progress)?;
        }
        let config = Descriptor::new(self.types.config, config_digest, config.len() as u64);
        Ok(to_json(&Manifest::new(self.types.manifest, config, layers).annotated(&image.annotations)))
    }

    /// The blob of `layer` (number `index`): from the cache, or learnt by compressing it once
    /// into an unlinked temporary file, so that the registry is asked for it before anything is
    /// sent, and the same bytes are sent if it lacks them.
    fn prepare(&self, index: usize, layer: &PlannedLayer, archives: &mut ArchiveReader) -> Result<Prepared> {
        match self.cache.get(&layer.id(), self.compressor) {
            Some(blob) if layer.digest().map_or(true, |digest| digest == blob.diff_id) => {
                Ok(Prepared { blob, spooled: None })
            }
            _ => self.compress(index, layer, archives),
        }
    }

    /// Compresses `layer` into a temporary file, and notes its blob in the cache.
    fn compress(&self, index: usize, layer: &PlannedLayer, archives: &mut ArchiveReader) -> Result<Prepared> {
        let spool = std::env::temp_dir().join("(temporary file of a compressed layer)");
        let io_err = |e| Error::io(&spool, e);
        let file = tempfile::tempfile().map_err(io_err)?;
        let failed = Cell::new(None);
        let watched = Watched { inner: file, failed: &failed };
        let mut hashed = DigestWriter::new(io::BufWriter::with_capacity(SPOOL_BUFFER, watched));
        // A full disk is the temporary file's failure, whatever was being read when it struck.
        let diff_id = compress_layer(index, layer, self.compressor, self.threads, archives, &mut hashed)
            .map_err(|e| failed.take().map_or(e, io_err))?;
        let (buffered, digest, size) = hashed.finish();
        let mut file = buffered.into_inner().map_err(|e| io_err(e.into_error()))?.inner;
        file.seek(io::SeekFrom::Start(0)).map_err(io_err)?;
        let blob = Blob { diff_id, digest, size };
        self.cache.put(&layer.id(), self.compressor, &blob);
        Ok(Prepared { blob, spooled: Some(file) })
    }

    /// Sends `layer` (number `index`, called `what`), `ready` as prepared, unless the registry
    /// has it; returns the blob it went as.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        index: usize,
        layer: &PlannedLayer,
        ready: Prepared,
        what: &str,
        archives: &mut ArchiveReader,
        pushed: &mut Pushed,
        progress: &mut impl FnMut(&str),
    ) -> Result<Blob> {
        let Prepared { blob, spooled } = ready;
        let Blob { digest, size, .. } = blob;
        let described = format!("{what} {digest} ({size} bytes)");
        match (self.client.blob_state(&digest, size)?, spooled) {
            (BlobState::Present, _) => {
                self.present(&digest, &described, pushed, progress);
                Ok(blob)
            }
            (BlobState::Missing, Some(file)) => {
                let mut body = io::BufReader::with_capacity(SPOOL_BUFFER, file);
                self.upload(&digest, size, &mut body, &described, pushed, progress)?;
                Ok(blob)
            }
            (BlobState::OtherSize(found), Some(_)) => Err(self.client.registry().failure(
                &format!("asking for blob {digest}"),
                Failure::Refused(format!("it holds {found} bytes under that digest, not {size}")),
            )),
            // A digest from the cache is sent only once the layer is compressed again: an entry
            // the registry lacks may be wrong too, and what is sent is then corrected. One the
            // registry holds another size under is wrong.
            (found, None) => {
                let fresh = self.compress(index, layer, archives)?;
                if fresh.blob != blob {
                    let said = if found == BlobState::Missing { "" } else { ", and the registry disagreed" };
                    progress(&format!(
                        "{described}: the compressed-digest cache was wrong about it{said}; corrected"
                    ));
                }
                self.send(index, layer, fresh, what, archives, pushed, progress)
            }
        }
    }
}

impl Sender<'_> {
    /// Counts the blob `digest` (called `described`) that the repository has, and notes it
    /// there for mounts.
    fn present(
        &self,
        digest: &Digest,
        described: &str,
        pushed: &mut Pushed,
        progress: &mut impl FnMut(&str),
    ) {
        self.mounts.note(&self.dest.registry, digest, &self.dest.repository);
        pushed.skipped += 1;
        progress(&format!("{described}: the registry has it"));
    }

    /// Puts the blob `digest` of `size` bytes (called `described`), read from `body`, in the
    /// repository: mounted from another repository stowage put it in, if the registry can, else
    /// sent. Counts it, and notes it there for mounts.
    fn upload(
        &self,
        digest: &Digest,
        size: u64,
        body: &mut (impl Read + Seek),
        described: &str,
        pushed: &mut Pushed,
        progress: &mut impl FnMut(&str),
    ) -> Result<()> {
        let Destination { registry, repository, .. } = self.dest;
        let from = self.mounts.repositories(registry, digest).into_iter().find(|r| r != repository);
        match self.client.upload(digest, size, body, from.as_deref())? {
            Uploaded::Mounted => {
                pushed.mounted += 1;
                progress(&format!("{described}: mounted from {}", from.unwrap_or_default()));
            }
            Uploaded::Sent => {
                pushed.sent += 1;
                pushed.bytes += size;
                progress(&format!("{described}: sent"));
            }
        }
        self.mounts.note(registry, digest, repository);
        Ok(())
    }
}

/// The gzip level of pushed layers. A registry's layers need not match an archive's bytes, and
/// libdeflate's level 1 is 2 to 6 times as fast as the archives' level 6 here, for layers 2–4 %
/// larger: a push is then bound by the network or the registry, not by compression (`make bench`
/// compares with skopeo's).
const REGISTRY_GZIP_LEVEL: i32 = 1;

/// Writes the compressed bytes of `layer` to `out`, checking the layer against its plan;
/// returns its diff_id.
fn compress_layer(
    index: usize,
    layer: &PlannedLayer,
    compressor: Compression,
    threads: usize,
    archives: &mut ArchiveReader,
    out: &mut dyn Write,
) -> Result<Digest> {
    let io_err = |e| Error::io("(layer)", e);
    let compressed = compressor.writer_at(out, threads, REGISTRY_GZIP_LEVEL).map_err(io_err)?;
    let mut hashed = DigestWriter::new(compressed);
    let mut chunks = to_writer(&mut hashed);
    produce_layer(layer, &mut chunks, archives)?;
    drop(chunks.finish().map_err(io_err)?);
    let (compressed, digest, size) = hashed.finish();
    if layer.digest().is_some_and(|planned| planned != digest) || size != layer.size {
        return Err(Error::LayerMismatch {
            index,
            expected: layer.digest(),
            found: Some(digest),
            expected_size: layer.size,
            found_size: size,
        });
    }
    compressed.finish().map_err(io_err)?;
    Ok(digest)
}

/// How many layers may be prepared ahead of the one being sent (each at most a temporary file
/// of its compressed bytes): enough that a large layer's upload overlaps the compression of the
/// small ones after it.
const PREPARED_AHEAD: usize = 3;

/// A layer ready to be asked about: its blob, and its compressed bytes when they had to be made
/// to learn the blob (none: the blob is the cache's word).
struct Prepared {
    blob: Blob,
    spooled: Option<fs::File>,
}

/// The buffer a temporary file of compressed bytes is written and read through.
const SPOOL_BUFFER: usize = 1 << 20;

/// A writer that keeps its first error, for the caller to tell it as the output's: deeper down,
/// the layer's writer reports a failure against the file it was reading.
struct Watched<'a, W> {
    inner: W,
    failed: &'a Cell<Option<io::Error>>,
}

impl<W: Write> Write for Watched<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).inspect_err(|e| self.keep(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|e| self.keep(e))
    }
}

impl<W> Watched<'_, W> {
    fn keep(&self, e: &io::Error) {
        let first = self.failed.take().unwrap_or_else(|| io::Error::new(e.kind(), e.to_string()));
        self.failed.set(Some(first));
    }
}

//! docker-archive writing: what `docker save` produces and `docker load`, `podman load` and
//! `skopeo copy docker-archive:…` read.
//!
//! Layers come first, each as `<diff_id hex>/layer.tar` and each once however many images use
//! it, then the configs (`<sha256>.json`, whose digest is the image ID) and `manifest.json`
//! last, one entry per image. Layer sizes and digests are known from the plan, so every outer
//! header is written before its layer is produced, each layer is produced and hashed in one
//! pass, and a layer whose bytes do not match the plan stops the archive before the configs and
//! manifest: a reader can never load a wrong image.

use crate::chunks::{ChunkWriter, CopyError, CHUNK};
use crate::digest::Digest;
use crate::image::{LayerSource, Plan, PlannedLayer};
use crate::image_reader::ArchiveReader;
use crate::layer::write_layer;
use crate::{Error, Result};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeSet, VecDeque};
use std::io::{self, Read, Write};
use std::sync::{mpsc, Arc};
use std::thread::{Scope, ScopedJoinHandle};

/// Tar's block size: headers and the padding after every entry's data.
const BLOCK: u64 = 512;

/// Writes the docker-archive of `plan` to `out`, using up to `threads` threads. `progress`
/// hears about every layer written (its position among the layers written, their number, its
/// digest).
///
/// Three kinds of thread share the work, so that neither a slow consumer (a pipe into
/// `podman load`) nor sha256 holds up the rest: this one reads the layers into chunks; a writer
/// thread writes them to `out`; and each layer's hasher thread hashes the same chunks (shared,
/// not copied). Reading runs up to [`CHUNKS_IN_FLIGHT`] chunks ahead of the slower of the two,
/// so that up to `threads` layers (at least two) are hashed at once: one sha256 is slower than
/// reading. Every digest is checked before the configs and manifest are written.
pub fn write_docker_archive<W: Write + Send>(
    plan: &Plan,
    out: W,
    threads: usize,
    mut progress: impl FnMut(usize, usize, &Digest),
) -> Result<W> {
    std::thread::scope(|scope| {
        let (to_writer, pieces) = mpsc::channel::<Piece>();
        let pool = Pool::new(CHUNKS_IN_FLIGHT);
        let writer = {
            let recycle = pool.recycle.clone();
            scope.spawn(move || -> io::Result<W> {
                let mut out = out;
                for piece in pieces {
                    out.write_all(&piece)?;
                    reuse(piece, &recycle);
                }
                out.flush()?;
                Ok(out)
            })
        };
        let pipeline = Pipeline { scope, to_writer, pool, hashers: threads.clamp(2, MAX_HASHERS) };
        let produced = pipeline.produce(plan, &mut progress);
        // Lets the writer see the end of its pieces.
        drop(pipeline);
        match (produced, writer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))) {
            (Ok(()), Ok(out)) => Ok(out),
            // A writer that failed is why the rest stopped.
            (_, Err(e)) => Err(stream_error(e)),
            (Err(e), Ok(_)) => Err(e),
        }
    })
}

/// Bytes on their way to the writer thread (and, for a layer's bytes, to its hasher).
type Piece = Arc<Vec<u8>>;

/// Hands a chunk's buffer back to the pool if this was its last holder. (Headers and padding
/// are not chunks: they come from no pool.)
fn reuse(piece: Piece, recycle: &mpsc::Sender<Vec<u8>>) {
    if let Some(buffer) = Arc::into_inner(piece).filter(|b| b.capacity() >= CHUNK) {
        // Only fails once the archive is done and nobody needs buffers any more.
        let _ = recycle.send(buffer);
    }
}

/// Chunks read but not yet both written and hashed, at most: the stream's memory, and how far
/// reading may run ahead so that several layers are hashed at once.
pub const CHUNKS_IN_FLIGHT: usize = 32;

/// The most layers hashed at once, however many cores there are.
const MAX_HASHERS: usize = 8;

/// The chunk buffers: at most `limit` exist, and taking one waits for one to come back.
struct Pool {
    recycle: mpsc::Sender<Vec<u8>>,
    recycled: mpsc::Receiver<Vec<u8>>,
    made: std::cell::Cell<usize>,
    limit: usize,
}

impl Pool {
    fn new(limit: usize) -> Pool {
        let (recycle, recycled) = mpsc::channel();
        Pool { recycle, recycled, made: 0.into(), limit }
    }

    fn take(&self) -> Vec<u8> {
        if let Ok(buffer) = self.recycled.try_recv() {
            return buffer;
        }
        if self.made.get() < self.limit {
            self.made.set(self.made.get() + 1);
            return Vec::with_capacity(CHUNK);
        }
        // The pool holds a sender itself, so this waits for a buffer rather than failing.
        self.recycled.recv().expect("the pool keeps its channel open")
    }
}

/// The reading side of [`write_docker_archive`].
struct Pipeline<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
    to_writer: mpsc::Sender<Piece>,
    pool: Pool,
    hashers: usize,
}

type Hashing<'scope, 'a> = (usize, &'a PlannedLayer, ScopedJoinHandle<'scope, Digest>);

impl<'scope, 'env> Pipeline<'scope, 'env> {
    fn produce(&self, plan: &'env Plan, progress: &mut impl FnMut(usize, usize, &Digest)) -> Result<()> {
        let mtime = plan.mtime;
        // A layer used more than once (by several images, or twice in one) is stored once.
        let mut seen = BTreeSet::new();
        let unique: Vec<&PlannedLayer> = plan
            .images
            .iter()
            .flat_map(|image| &image.layers)
            .filter(|layer| seen.insert(layer.digest))
            .collect();
        let mut progress = |index: usize, digest: &Digest| progress(index, unique.len(), digest);
        let mut archives = ArchiveReader::default();
        let mut hashing = VecDeque::new();
        for (index, &layer) in unique.iter().enumerate() {
            self.send(header(&layer_file(layer), layer.size, mtime)?)?;
            let (size, hasher) = self.layer(layer, &mut archives)?;
            if size != layer.size {
                return Err(mismatch(index, layer, None, size));
            }
            self.send(vec![0; padding(size)])?;
            hashing.push_back((index, layer, hasher));
            while hashing.len() >= self.hashers {
                check(hashing.pop_front().unwrap(), &mut progress)?;
            }
        }
        hashing.into_iter().try_for_each(|pending| check(pending, &mut progress))?;

        let mut configs_written = BTreeSet::new();
        let mut manifest = Vec::new();
        let mut tail = Vec::new();
        for image in &plan.images {
            let config_file = format!("{}.json", Digest::of(image.config.as_bytes()).hex());
            if configs_written.insert(config_file.clone()) {
                file(&mut tail, &config_file, image.config.as_bytes(), mtime)?;
            }
            let layers: Vec<String> = image.layers.iter().map(layer_file).collect();
            manifest.push(json!({ "Config": config_file, "RepoTags": image.repo_tags, "Layers": layers }));
        }
        let manifest = serde_json::Value::from(manifest).to_string();
        file(&mut tail, "manifest.json", manifest.as_bytes(), mtime)?;
        tail.extend_from_slice(&[0; 2 * BLOCK as usize]);
        self.send(tail)
    }

    /// Reads `layer` into chunks for the writer and for a hasher of its own; returns its size
    /// and the hasher, whose digest is the layer's.
    fn layer(
        &self,
        layer: &'env PlannedLayer,
        archives: &mut ArchiveReader,
    ) -> Result<(u64, ScopedJoinHandle<'scope, Digest>)> {
        let (to_hasher, chunks) = mpsc::channel::<Piece>();
        let recycle = self.pool.recycle.clone();
        let hasher = self.scope.spawn(move || {
            let mut hasher = Sha256::new();
            for chunk in chunks {
                hasher.update(chunk.as_slice());
                reuse(chunk, &recycle);
            }
            Digest(hasher.finalize().into())
        });
        let mut out = ChunkWriter::new(self.pool.take(), |chunk: Vec<u8>| {
            let chunk = Arc::new(chunk);
            // The hasher only stops early if it panicked; joining it reports that.
            let _ = to_hasher.send(Arc::clone(&chunk));
            self.to_writer.send(chunk).map_err(|_| writer_stopped())?;
            Ok(self.pool.take())
        });
        match &layer.source {
            LayerSource::Store(source) => write_layer(source, &mut out)?,
            LayerSource::Archive(source) => {
                // One byte more than planned is enough to tell that the layer changed.
                let mut bytes = archives.layer(source)?.take(layer.size + 1);
                out.copy_from(&mut bytes, u64::MAX).map_err(|e| match e {
                    CopyError::Read(e) => source.error(e),
                    CopyError::Write(e) => stream_error(e),
                })?;
            }
        }
        let (_, spare, size) = out.finish().map_err(stream_error)?;
        let _ = self.pool.recycle.send(spare);
        Ok((size, hasher))
    }

    fn send(&self, bytes: Vec<u8>) -> Result<()> {
        self.to_writer.send(Arc::new(bytes)).map_err(|_| stream_error(writer_stopped()))
    }
}

/// What the reading side sees when the writer thread has stopped (its own error says why).
fn writer_stopped() -> io::Error {
    io::Error::other("the archive writer stopped")
}

fn layer_file(layer: &PlannedLayer) -> String {
    format!("{}/layer.tar", layer.digest.hex())
}

/// Waits for a layer's digest and compares it with the plan.
fn check(pending: Hashing<'_, '_>, progress: &mut impl FnMut(usize, &Digest)) -> Result<()> {
    let (index, layer, hasher) = pending;
    let digest = hasher.join().expect("hashing does not panic");
    if digest != layer.digest {
        return Err(mismatch(index, layer, Some(digest), layer.size));
    }
    progress(index, &digest);
    Ok(())
}

fn mismatch(index: usize, layer: &PlannedLayer, found: Option<Digest>, found_size: u64) -> Error {
    Error::LayerMismatch { index, expected: layer.digest, found, expected_size: layer.size, found_size }
}

/// The ustar header of an archive entry of `size` bytes named `name`.
fn header(name: &str, size: u64, mtime: u64) -> Result<Vec<u8>> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name).map_err(|e| Error::io(name, e))?;
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o444);
    header.set_mtime(mtime);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    Ok(header.as_bytes().to_vec())
}

/// Appends the entry `name` holding `bytes` to `out`.
fn file(out: &mut Vec<u8>, name: &str, bytes: &[u8], mtime: u64) -> Result<()> {
    out.extend(header(name, bytes.len() as u64, mtime)?);
    out.extend_from_slice(bytes);
    out.resize(out.len() + padding(bytes.len() as u64), 0);
    Ok(())
}

/// The zeros that pad `size` bytes of data to a whole block.
fn padding(size: u64) -> usize {
    ((BLOCK - size % BLOCK) % BLOCK) as usize
}

fn stream_error(e: std::io::Error) -> Error {
    Error::io("(archive output)", e)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::image::ImageSpec;
    use crate::layer::{layer_digest, Ownership, StoreLayer};
    use std::fs;
    use std::path::Path;

    /// A plan of one image, `tag`, whose one layer holds `path`.
    pub(crate) fn plan(store: &Path, path: &str, tag: &str) -> Plan {
        let owner = Ownership { uid: 0, gid: 0, uname: "root".into(), gname: "root".into(), mtime: 1 };
        let source = StoreLayer {
            store_dir: store.to_string_lossy().into_owned(),
            owner,
            store_paths: vec![path.into()],
            synthetic: vec![],
        };
        let (digest, size) = layer_digest(&source).unwrap();
        let config = json!({ "architecture": "amd64", "os": "linux", "rootfs": { "type": "layers", "diff_ids": [digest.to_string()] } });
        let image = ImageSpec {
            repo_tags: vec![tag.into()],
            layers: vec![PlannedLayer { source: LayerSource::Store(source), digest, size }],
            config: config.to_string(),
        };
        Plan { mtime: 1, images: vec![image] }
    }

    fn names(archive: &[u8]) -> Vec<String> {
        let mut a = tar::Archive::new(archive);
        a.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn layers_then_config_then_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        fs::create_dir_all(store.join("x-a")).unwrap();
        fs::write(store.join("x-a/f"), "data").unwrap();
        let plan = plan(&store, &store.join("x-a").to_string_lossy(), "a:b");
        let out = write_docker_archive(&plan, Vec::new(), 2, |_, _, _| {}).unwrap();
        let names = names(&out);
        assert_eq!(names.len(), 3);
        assert_eq!(names[0], format!("{}/layer.tar", plan.images[0].layers[0].digest.hex()));
        assert!(names[1].ends_with(".json"));
        assert_eq!(names[2], "manifest.json");
    }

    #[test]
    fn a_changed_store_path_stops_the_archive_before_its_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        fs::create_dir_all(store.join("x-a")).unwrap();
        fs::write(store.join("x-a/f"), "data").unwrap();
        let plan = plan(&store, &store.join("x-a").to_string_lossy(), "a:b");
        fs::write(store.join("x-a/f"), "DATA").unwrap(); // same size, other bytes
        let mut out = Vec::new();
        let err = write_docker_archive(&plan, &mut out, 2, |_, _, _| {}).unwrap_err();
        assert!(err.to_string().starts_with("layer 0 does not match its plan"), "{err}");
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("manifest.json"));
    }
}

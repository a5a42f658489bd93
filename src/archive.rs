//! docker-archive writing: what `docker save` produces and `docker load`, `podman load` and
//! `skopeo copy docker-archive:…` read.
//!
//! Layers come first, each as `<diff_id hex>/layer.tar` and each once however many images use
//! it, then the configs (`<sha256>.json`, whose digest is the image ID) and `manifest.json`
//! last, one entry per image. Layer sizes and digests are known from the plan, so every outer
//! header is written before its layer is produced, each layer is produced and hashed in one
//! pass, and a layer whose bytes do not match the plan stops the archive before the configs and
//! manifest: a reader can never load a wrong image.

use crate::digest::Digest;
use crate::image::{LayerSource, Plan, PlannedLayer};
use crate::image_reader::{ArchiveLayer, ArchiveReader};
use crate::layer::write_layer;
use crate::{Error, Result};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeSet, VecDeque};
use std::io::{self, BufWriter, Read, Write};
use std::sync::mpsc;

/// Tar's block size: headers and the padding after every entry's data.
const BLOCK: u64 = 512;

/// Writes the docker-archive of `plan` to `out`. `progress` hears about every layer written
/// (its position among the layers written, their number, its digest).
///
/// Hashing bounds the speed of a single stream, so each layer is hashed on a thread of its own
/// while the next is read and written: up to [`HASHERS`] layers are in flight, and every digest
/// is checked before the configs and manifest are written.
pub fn write_docker_archive<W: Write>(
    plan: &Plan,
    mut out: W,
    mut progress: impl FnMut(usize, usize, &Digest),
) -> Result<W> {
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
    std::thread::scope(|scope| -> Result<()> {
        let mut hashing = VecDeque::new();
        for (index, &layer) in unique.iter().enumerate() {
            let file = layer_file(layer);
            write_header(&mut out, &file, layer.size, mtime)?;
            let (chunks, hashed) = mpsc::sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
            let hasher = scope.spawn(move || {
                let mut hasher = Sha256::new();
                hashed.into_iter().for_each(|chunk| hasher.update(&chunk));
                Digest(hasher.finalize().into())
            });
            let tee = BufWriter::with_capacity(CHUNK, Tee { out: &mut out, chunks, written: 0 });
            let tee = match &layer.source {
                LayerSource::Store(source) => write_layer(source, tee)?,
                LayerSource::Archive(source) => {
                    // One byte more than planned is enough to tell that the layer changed.
                    let bytes = archives.layer(source)?.take(layer.size + 1);
                    copy_archive_layer(source, bytes, tee)?
                }
            };
            let size = tee.into_inner().map_err(|e| stream_error(e.into_error()))?.written;
            if size != layer.size {
                return Err(mismatch(index, layer, None, size));
            }
            pad(&mut out, size)?;
            hashing.push_back((index, layer, hasher));
            while hashing.len() >= HASHERS {
                check(hashing.pop_front().unwrap(), &mut progress)?;
            }
        }
        hashing.into_iter().try_for_each(|pending| check(pending, &mut progress))
    })?;
    let mut configs_written = BTreeSet::new();
    let mut manifest = Vec::new();
    for image in &plan.images {
        let config_file = format!("{}.json", Digest::of(image.config.as_bytes()).hex());
        if configs_written.insert(config_file.clone()) {
            write_file(&mut out, &config_file, image.config.as_bytes(), mtime)?;
        }
        let layers: Vec<String> = image.layers.iter().map(layer_file).collect();
        manifest.push(json!({ "Config": config_file, "RepoTags": image.repo_tags, "Layers": layers }));
    }
    write_file(&mut out, "manifest.json", serde_json::Value::from(manifest).to_string().as_bytes(), mtime)?;
    out.write_all(&[0; 2 * BLOCK as usize]).map_err(stream_error)?;
    out.flush().map_err(stream_error)?;
    Ok(out)
}

/// Copies a layer out of an archive; errors say whether reading or writing failed.
fn copy_archive_layer<W: Write>(source: &ArchiveLayer, mut from: impl Read, mut to: W) -> Result<W> {
    let mut buffer = vec![0; CHUNK];
    loop {
        match from.read(&mut buffer) {
            Ok(0) => return Ok(to),
            Ok(n) => to.write_all(&buffer[..n]).map_err(stream_error)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(source.error(e)),
        }
    }
}

fn layer_file(layer: &PlannedLayer) -> String {
    format!("{}/layer.tar", layer.digest.hex())
}

/// Layers hashed at once: one per core of the machines this runs on, give or take.
const HASHERS: usize = 2;

/// How much of a layer is written and handed to its hasher at a time.
const CHUNK: usize = 1 << 20;

/// Chunks waiting for a layer's hasher before the writer waits for it.
const CHUNKS_IN_FLIGHT: usize = 8;

/// Passes a layer on to the archive and, chunk by chunk, to the layer's hasher.
struct Tee<'a, W> {
    out: &'a mut W,
    chunks: mpsc::SyncSender<Vec<u8>>,
    written: u64,
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write_all(buf)?;
        self.written += buf.len() as u64;
        // The hasher only stops early if it panicked; the join below reports that.
        let _ = self.chunks.send(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

type Hashing<'scope, 'a> = (usize, &'a PlannedLayer, std::thread::ScopedJoinHandle<'scope, Digest>);

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

fn write_header(out: &mut impl Write, name: &str, size: u64, mtime: u64) -> Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name).map_err(|e| Error::io(name, e))?;
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o444);
    header.set_mtime(mtime);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    out.write_all(header.as_bytes()).map_err(stream_error)
}

fn write_file(out: &mut impl Write, name: &str, bytes: &[u8], mtime: u64) -> Result<()> {
    write_header(out, name, bytes.len() as u64, mtime)?;
    out.write_all(bytes).map_err(stream_error)?;
    pad(out, bytes.len() as u64)
}

fn pad(out: &mut impl Write, size: u64) -> Result<()> {
    let rest = (BLOCK - size % BLOCK) % BLOCK;
    out.write_all(&[0; BLOCK as usize][..rest as usize]).map_err(stream_error)
}

fn stream_error(e: std::io::Error) -> Error {
    Error::io("(archive output)", e)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::image::ImageSpec;
    use crate::layer::{write_layer_hashed, Ownership, StoreLayer};
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
        let (_, digest, size) = write_layer_hashed(&source, std::io::sink()).unwrap();
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
        let out = write_docker_archive(&plan, Vec::new(), |_, _, _| {}).unwrap();
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
        let err = write_docker_archive(&plan, &mut out, |_, _, _| {}).unwrap_err();
        assert!(err.to_string().starts_with("layer 0 does not match its plan"), "{err}");
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("manifest.json"));
    }
}

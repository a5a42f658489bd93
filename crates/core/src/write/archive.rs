//! Image archive writing: the docker-archive that `docker save` produces and `docker load`,
//! `podman load` and `skopeo copy docker-archive:…` read, or an OCI image layout as a tarball
//! (`skopeo copy oci-archive:…`, `podman load`, and `umoci` once unpacked).
//!
//! Layers come first, each once however many images use it: `<n>/layer.tar`, or the blob
//! `blobs/sha256/<diff_id hex>` (uncompressed, so an OCI layer's digest is its diff_id). Then the
//! configs (`<sha256>.json`, or blobs; their digest is the image ID) and last `manifest.json`,
//! one entry per image, or each image's OCI manifest blob and `index.json`, a descriptor per
//! `name:tag`. Layer sizes are known from the plan, so every outer header is written before its
//! layer is produced, and each layer is produced and hashed in one pass. The image's own layers
//! have no digest in the plan (it reads no file contents): a docker-archive names every layer by
//! its position and learns their digests as it writes them, for the configs that follow; an OCI
//! layout, which names blobs by digest, hashes them in a pass before. A layer whose bytes do not match the plan stops the archive before the
//! configs and manifest: a reader can never load a wrong image.

use crate::format::chunks::{ChunkWriter, CopyError, CHUNK};
use crate::format::digest::Digest;
use crate::format::tar_blocks::{file_header, padding};
use crate::image::plan::{Format, LayerSource, Plan, PlannedLayer};
use crate::layer::tarball::write_layer;
use crate::read::archive::{archive_is_compressed, ArchiveReader};
use crate::write::layout;
use crate::{Error, Result};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::FromRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Condvar, Mutex};

/// Chunks read but not yet written, at most: the stream's memory, and how far readers may work
/// ahead of the writer. The reader of the layer being written may take `HEAD_ROOM` more, so
/// that it always can go on.
pub const CHUNKS_AHEAD: usize = 32;

/// The number of bytes an image file is written in (its `BufWriter`'s capacity).
pub const OUTPUT_BUFFER: usize = 1 << 20;

/// Chunks beyond [`CHUNKS_AHEAD`] for the reader of the layer being written: readers of later
/// layers hold at most [`CHUNKS_AHEAD`], so when it waits, some of its own are being written.
const HEAD_ROOM: usize = 4;

/// The most layers read at once, however many cores there are.
const MAX_READERS: usize = 8;

/// Writes the archive of `plan` (a docker-archive, or an OCI layout's tarball: `plan.format`;
/// an OCI folder is that tarball unpacked) to `out`, using up to `threads` threads. `progress`
/// hears about every layer written (its position among the layers written, their number, its
/// digest).
///
/// Reader threads, one per core, each take the next layer, read it into chunks and hash every
/// chunk as soon as it is full, while it is still in the core's cache; this thread writes the
/// chunks to `out` in order. So writing (into a pipe to `podman load`, say) and hashing go on
/// side by side, and so do the hashes of several layers, as long as the readers are less than
/// [`CHUNKS_AHEAD`] chunks ahead of the writer. A layer's digest is checked as soon as its last
/// chunk is written, and every one before the configs and manifest.
/// `output` names `out` in errors: the file, or what the pipe or socket leads to.
pub fn write_archive<W: Write>(
    plan: &Plan,
    out: W,
    output: &Path,
    threads: usize,
    progress: impl FnMut(usize, usize, &Digest),
) -> Result<W> {
    // An OCI layout names every blob by its digest, before its bytes: layers whose digest is
    // learnt only as they are written are hashed first, in a pass of their own.
    if plan.format != Format::DockerArchive && plan.has_pending_layers() {
        let mut plan = plan.clone();
        plan.resolve(threads)?;
        return write_with_budget(&plan, out, output, threads, CHUNKS_AHEAD, progress);
    }
    write_with_budget(plan, out, output, threads, CHUNKS_AHEAD, progress)
}

/// Writes the OCI layout of `plan` as the folder `dir`, which it makes: the layout's tarball
/// (see [`write_archive`]), unpacked as it is written.
pub fn write_oci_dir(plan: &Plan, dir: &Path, threads: usize) -> Result<()> {
    fs::create_dir(dir).map_err(|e| Error::io(dir, e))?;
    let (from, to) = pipe().map_err(|e| Error::io("(pipe)", e))?;
    let mut plan = plan.clone();
    plan.format = Format::OciArchive;
    let output = dir.join("(the archive being unpacked)");
    std::thread::scope(|scope| {
        let unpacking =
            scope.spawn(move || tar::Archive::new(io::BufReader::with_capacity(CHUNK, from)).unpack(dir));
        // Closing the pipe's end (when `to` drops) ends the unpacking, also after an error.
        let written =
            write_archive(&plan, io::BufWriter::with_capacity(CHUNK, to), &output, threads, |_, _, _| {})
                .and_then(|out| out.into_inner().map(drop).map_err(|e| Error::io(&output, e.into_error())));
        let unpacked =
            unpacking.join().unwrap_or_else(|_| Err(io::Error::other("the unpacking thread panicked")));
        first_failure(written, unpacked.map_err(|e| Error::io(dir, with_causes(e))))
    })
}

/// `e` with the errors it wraps: tar's say what was being unpacked, not why it failed.
fn with_causes(e: io::Error) -> io::Error {
    let mut text = e.to_string();
    let mut at = &e;
    while let Some(cause) = at.get_ref().and_then(|c| c.source()).and_then(|s| s.downcast_ref::<io::Error>())
    {
        text = format!("{text}: {cause}");
        at = cause;
    }
    io::Error::new(e.kind(), text)
}

/// The outcome of a producer that wrote into a pipe and the consumer that read it: the first
/// real error. A producer that failed with a broken pipe only saw the consumer stop, and the
/// consumer's error says why (a refused upload, a full disk); any other error of the producer
/// came first, and the consumer only saw the pipe end early. A broken pipe is never a success.
pub fn first_failure<T>(produced: Result<()>, consumed: Result<T>) -> Result<T> {
    match produced {
        Err(e) if e.is_broken_pipe() && consumed.is_err() => consumed,
        Err(e) => Err(e),
        Ok(()) => consumed,
    }
}

/// A pipe's reading and writing ends, closed on exec.
pub(crate) fn pipe() -> io::Result<(fs::File, fs::File)> {
    let mut fds = [0; 2];
    // SAFETY: a two-element array for the pipe's ends.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both just made, each owned once.
    Ok(unsafe { (fs::File::from_raw_fd(fds[0]), fs::File::from_raw_fd(fds[1])) })
}

/// [`write_archive`] with at most `chunks_ahead` chunks ahead of the writer.
fn write_with_budget<W: Write>(
    plan: &Plan,
    mut out: W,
    output: &Path,
    threads: usize,
    chunks_ahead: usize,
    mut progress: impl FnMut(usize, usize, &Digest),
) -> Result<W> {
    let unique = plan.unique_layers();
    let claims = claims(&unique)?;
    let (senders, receivers): (Vec<_>, Vec<_>) = unique.iter().map(|_| mpsc::channel()).unzip();
    let senders: Vec<Mutex<Option<mpsc::Sender<Message>>>> =
        senders.into_iter().map(|s| Mutex::new(Some(s))).collect();
    let budget = Budget::new(chunks_ahead);
    let next_claim = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, MAX_READERS).min(claims.len()) {
            scope.spawn(|| {
                let mut archives = ArchiveReader::default();
                while let Some(claim) = claims.get(next_claim.fetch_add(1, Ordering::Relaxed)) {
                    for index in claim.clone() {
                        let Some(to_writer) = senders[index].lock().ok().and_then(|mut s| s.take()) else {
                            return;
                        };
                        let read = read_layer(index, unique[index], &to_writer, &budget, &mut archives);
                        let message = match read {
                            Ok((digest, size)) => Message::Done { digest, size },
                            Err(e) => Message::Failed(e),
                        };
                        // The writer stopped: so do the readers.
                        if to_writer.send(message).is_err() {
                            return;
                        }
                    }
                }
            });
        }
        let written = write_in_order(plan, &unique, receivers, &budget, &mut out, output, &mut progress);
        budget.stop();
        written
    })?;
    out.flush().map_err(|e| Error::io(output, e))?;
    Ok(out)
}

/// What a reader sends the writer about a layer: its chunks, then how it ended.
enum Message {
    Chunk(Vec<u8>),
    Done { digest: Digest, size: u64 },
    Failed(Error),
}

/// The layers each reader takes at once, in order. A run of layers from one compressed archive
/// goes to one reader, which reads the archive once; any other layer is a claim of its own.
fn claims(layers: &[&PlannedLayer]) -> Result<Vec<std::ops::Range<usize>>> {
    let mut compressed = BTreeMap::new();
    let mut claims: Vec<std::ops::Range<usize>> = Vec::new();
    let mut previous: Option<&str> = None;
    for (index, layer) in layers.iter().enumerate() {
        let archive = match &layer.source {
            LayerSource::Archive(source) => {
                let is_compressed = match compressed.get(&source.archive) {
                    Some(&known) => known,
                    None => {
                        let found = archive_is_compressed(&source.archive)?;
                        compressed.insert(source.archive.clone(), found);
                        found
                    }
                };
                is_compressed.then_some(source.archive.as_str())
            }
            LayerSource::Store(_) => None,
        };
        match claims.last_mut() {
            Some(last) if archive.is_some() && archive == previous => last.end = index + 1,
            _ => claims.push(index..index + 1),
        }
        previous = archive;
    }
    Ok(claims)
}

/// Reads layer `index` into chunks, hashing each, and sends them to the writer; returns the
/// layer's digest and size.
fn read_layer(
    index: usize,
    layer: &PlannedLayer,
    to_writer: &mpsc::Sender<Message>,
    budget: &Budget,
    archives: &mut ArchiveReader,
) -> Result<(Digest, u64)> {
    let mut hasher = Sha256::new();
    let first = budget.take(index).ok_or_else(|| stream_error(writer_stopped()))?;
    let mut out = ChunkWriter::new(first, |chunk: Vec<u8>| {
        hasher.update(&chunk);
        to_writer.send(Message::Chunk(chunk)).map_err(|_| writer_stopped())?;
        budget.take(index).ok_or_else(writer_stopped)
    });
    produce_layer(layer, &mut out, archives)?;
    let (_, spare, size) = out.finish().map_err(stream_error)?;
    budget.give(spare);
    Ok((Digest(hasher.finalize().into()), size))
}

/// Produces the bytes of `layer` into `out`: generated from the store, or copied out of its
/// archive — one byte more than planned at most, enough to tell that the layer changed.
pub(crate) fn produce_layer(
    layer: &PlannedLayer,
    out: &mut ChunkWriter<impl crate::format::chunks::Emit>,
    archives: &mut ArchiveReader,
) -> Result<()> {
    match &layer.source {
        LayerSource::Store(source) => write_layer(source, out),
        LayerSource::Archive(source) => {
            let mut bytes = archives.layer(source)?.take(layer.size + 1);
            out.copy_from(&mut bytes, u64::MAX).map(drop).map_err(|e| match e {
                CopyError::Read(e) => source.error(e),
                CopyError::Write(e) => stream_error(e),
            })
        }
    }
}

/// What a reader sees once the writer has stopped (the writer's own error says why).
fn writer_stopped() -> io::Error {
    io::Error::other("the archive writer stopped")
}

/// Writes the layers' chunks in order as the readers send them, checks each layer's size and
/// digest, then writes the configs and the manifest.
fn write_in_order(
    plan: &Plan,
    layers: &[&PlannedLayer],
    receivers: Vec<mpsc::Receiver<Message>>,
    budget: &Budget,
    out: &mut impl Write,
    output: &Path,
    progress: &mut impl FnMut(usize, usize, &Digest),
) -> Result<()> {
    let output_error = |e| Error::io(output, e);
    let mtime = plan.mtime;
    let files = layout::layer_files(plan);
    let mut learnt = BTreeMap::new();
    out.write_all(&layout::head(plan)?).map_err(output_error)?;
    for (index, (layer, from_reader)) in layers.iter().zip(receivers).enumerate() {
        budget.advance(index);
        out.write_all(&file_header(&files[&layer.id()], layer.size, mtime)?).map_err(output_error)?;
        let mut written = 0;
        loop {
            match from_reader.recv() {
                Ok(Message::Chunk(chunk)) => {
                    written += chunk.len() as u64;
                    // Never more bytes than the header announced.
                    if written > layer.size {
                        return Err(mismatch(index, layer, None, written));
                    }
                    out.write_all(&chunk).map_err(output_error)?;
                    budget.give(chunk);
                }
                Ok(Message::Done { digest, size }) => {
                    if size != layer.size {
                        return Err(mismatch(index, layer, None, size));
                    }
                    match layer.digest() {
                        Some(planned) if planned != digest => {
                            return Err(mismatch(index, layer, Some(digest), size))
                        }
                        Some(_) => {}
                        None => drop(learnt.insert(layer.id(), digest)),
                    }
                    progress(index, layers.len(), &digest);
                    break;
                }
                Ok(Message::Failed(e)) => return Err(e),
                // Only a reader that panicked leaves without a word; the scope passes the panic on.
                Err(_) => return Err(output_error(io::Error::other("a layer reader stopped"))),
            }
        }
        out.write_all(padding(layer.size)).map_err(output_error)?;
    }

    out.write_all(&layout::tail(plan, &files, &learnt)?).map_err(output_error)
}

/// The chunk buffers: at most a budget of them are out, a few more for the reader of the layer
/// being written (so the writer can always go on), and taking one waits for one to come back.
struct Budget {
    state: Mutex<BudgetState>,
    changed: Condvar,
    limit: usize,
}

struct BudgetState {
    free: Vec<Vec<u8>>,
    out: usize,
    /// The layer being written.
    head: usize,
    stopped: bool,
}

impl Budget {
    fn new(limit: usize) -> Budget {
        let state = BudgetState { free: Vec::new(), out: 0, head: 0, stopped: false };
        Budget { state: Mutex::new(state), changed: Condvar::new(), limit }
    }

    /// A buffer for a chunk of layer `index`; `None` once the writer has stopped.
    fn take(&self, index: usize) -> Option<Vec<u8>> {
        let mut state = self.state.lock().ok()?;
        while !state.stopped && state.out >= self.limit + if index == state.head { HEAD_ROOM } else { 0 } {
            state = self.changed.wait(state).ok()?;
        }
        if state.stopped {
            return None;
        }
        state.out += 1;
        Some(state.free.pop().unwrap_or_else(|| Vec::with_capacity(CHUNK)))
    }

    fn give(&self, buffer: Vec<u8>) {
        if let Ok(mut state) = self.state.lock() {
            state.out -= 1;
            state.free.push(buffer);
        }
        self.changed.notify_all();
    }

    /// The writer has moved on to layer `index`.
    fn advance(&self, index: usize) {
        if let Ok(mut state) = self.state.lock() {
            state.head = index;
        }
        self.changed.notify_all();
    }

    fn stop(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.stopped = true;
        }
        self.changed.notify_all();
    }
}

fn mismatch(index: usize, layer: &PlannedLayer, found: Option<Digest>, found_size: u64) -> Error {
    Error::LayerMismatch { index, expected: layer.digest(), found, expected_size: layer.size, found_size }
}

/// An error of a layer's reader writing its chunks: it only stops when the writer has stopped,
/// whose own error says why.
fn stream_error(e: std::io::Error) -> Error {
    Error::io("(layer chunks)", e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::oci::Index;
    use crate::image::plan::tests::{pending_plan, plan};
    use crate::image::plan::ImageSpec;
    use serde_json::json;
    use std::fs;
    use std::path::Path;

    fn names(archive: &[u8]) -> Vec<String> {
        let mut a = tar::Archive::new(archive);
        a.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn a_layer_hashed_as_it_is_written_gives_the_same_image() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        fs::create_dir_all(store.join("x-a")).unwrap();
        fs::write(store.join("x-a/f"), "data").unwrap();
        let mut known = plan(&store, &store.join("x-a").to_string_lossy(), "a:b");
        let mut pending = pending_plan(&store, &store.join("x-a").to_string_lossy(), "a:b");
        let digest = known.images[0].layers[0].id();
        let inputs = pending.images[0].layers[0].id();
        assert!(pending.has_pending_layers() && !known.has_pending_layers());
        let write = |plan: &Plan| {
            let mut learnt = Vec::new();
            let out =
                write_archive(plan, Vec::new(), Path::new("(test)"), 2, |_, _, d| learnt.push(*d)).unwrap();
            assert_eq!(learnt, [digest]);
            out
        };
        // The same bytes: a docker-archive names layers by position, the config has the digest.
        let ours = write(&pending);
        assert_eq!(ours, write(&known));
        assert!(!String::from_utf8_lossy(&ours).contains(&inputs.hex()));
        known.format = Format::OciArchive;
        pending.format = Format::OciArchive;
        assert_eq!(write(&pending), write(&known));
        pending.resolve(2).unwrap();
        assert_eq!(pending, known);
    }

    #[test]
    fn layers_then_config_then_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        fs::create_dir_all(store.join("x-a")).unwrap();
        fs::write(store.join("x-a/f"), "data").unwrap();
        let plan = plan(&store, &store.join("x-a").to_string_lossy(), "a:b");
        let out = write_archive(&plan, Vec::new(), Path::new("(test)"), 2, |_, _, _| {}).unwrap();
        let names = names(&out);
        assert_eq!(names.len(), 3);
        assert_eq!(names[0], "0/layer.tar");
        assert!(names[1].ends_with(".json"));
        assert_eq!(names[2], "manifest.json");
    }

    #[test]
    fn an_oci_layout_names_every_tag_and_stores_every_blob_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        fs::create_dir_all(store.join("x-a")).unwrap();
        fs::write(store.join("x-a/f"), "data").unwrap();
        let mut plan = plan(&store, &store.join("x-a").to_string_lossy(), "a:1");
        plan.images[0].repo_tags.push("a:2".into());
        plan.images.push(plan.images[0].clone());
        plan.images[1].repo_tags = vec!["b:1".into()];
        plan.format = Format::OciArchive;
        let out = write_archive(&plan, Vec::new(), Path::new("(test)"), 2, |_, _, _| {}).unwrap();
        let files: BTreeMap<String, Vec<u8>> = tar::Archive::new(out.as_slice())
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut bytes = Vec::new();
                e.read_to_end(&mut bytes).unwrap();
                (e.path().unwrap().to_string_lossy().into_owned(), bytes)
            })
            .collect();
        // one layer, one config, one manifest (the two images are the same), and the layout's files
        let blobs: Vec<&String> =
            files.keys().filter(|k| k.starts_with("blobs/sha256/") && k.len() > 13).collect();
        assert_eq!(blobs.len(), 3, "{:?}", files.keys());
        for blob in blobs {
            assert_eq!(Digest::of(&files[blob]).hex(), blob.trim_start_matches("blobs/sha256/"));
        }
        assert_eq!(files["oci-layout"], br#"{"imageLayoutVersion":"1.0.0"}"#);
        let index: Index = serde_json::from_slice(&files["index.json"]).unwrap();
        let names: Vec<&str> =
            index.manifests.iter().map(|m| m.annotation(crate::format::oci::REF_NAME).unwrap()).collect();
        assert_eq!(names, ["a:1", "a:2", "b:1"]);
        let platform = serde_json::to_value(&index.manifests[0].platform).unwrap();
        assert_eq!(platform, json!({ "architecture": "amd64", "os": "linux" }));
        // and as a folder, the same files
        let folder = dir.path().join("layout");
        write_oci_dir(&plan, &folder, 2).unwrap();
        for (name, bytes) in &files {
            if !name.ends_with('/') {
                assert_eq!(&fs::read(folder.join(name)).unwrap(), bytes, "{name}");
            }
        }
    }

    /// A store of paths of the given sizes (bytes that differ from path to path), and a plan of
    /// one image with a layer per path.
    fn store_of(dir: &Path, sizes: &[usize]) -> Plan {
        let store = dir.join("store");
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for (i, &size) in sizes.iter().enumerate() {
            let path = store.join(format!("p{i}-x"));
            fs::create_dir_all(&path).unwrap();
            let bytes: Vec<u8> = (0..size).map(|b| (b * 7 + i * 13) as u8).collect();
            fs::write(path.join("f"), bytes).unwrap();
            let one = plan(&store, &path.to_string_lossy(), "x:y");
            diff_ids.push(one.images[0].layers[0].id().to_string());
            layers.extend(one.images[0].layers.clone());
        }
        let config = json!({ "architecture": "amd64", "os": "linux", "rootfs": { "type": "layers", "diff_ids": diff_ids } });
        let image = ImageSpec {
            repo_tags: vec!["many:layers".into()],
            layers,
            config: config.to_string(),
            annotations: Default::default(),
        };
        Plan { mtime: 1, format: Default::default(), index: None, images: vec![image] }
    }

    #[test]
    fn same_bytes_whatever_the_threads_and_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        // layers of many chunks and of none, beside each other
        let plan = store_of(dir.path(), &[3 * CHUNK + 17, 10, 0, 2 * CHUNK, 5000, CHUNK - 600, 4 * CHUNK]);
        let first =
            write_with_budget(&plan, Vec::new(), Path::new("(test)"), 1, CHUNKS_AHEAD, |_, _, _| {}).unwrap();
        let mut order = Vec::new();
        for (threads, budget) in [(2, CHUNKS_AHEAD), (4, 1), (3, 2), (8, 0)] {
            order.clear();
            let again =
                write_with_budget(&plan, Vec::new(), Path::new("(test)"), threads, budget, |i, n, _| {
                    order.push((i, n))
                })
                .unwrap();
            assert!(again == first, "{threads} threads, {budget} chunks ahead");
            assert_eq!(order, (0..7).map(|i| (i, 7)).collect::<Vec<_>>());
        }
        assert_eq!(names(&first).len(), 7 + 2);
    }

    #[test]
    fn a_consumer_that_stops_stops_the_archive() {
        /// Takes a few bytes, then fails as a closed pipe does.
        #[derive(Debug)]
        struct Closing(usize);
        impl Write for Closing {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                if self.0 < buf.len() {
                    return Err(io::ErrorKind::BrokenPipe.into());
                }
                self.0 -= buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let plan = store_of(dir.path(), &[5 * CHUNK, 5 * CHUNK, 5 * CHUNK]);
        let err =
            write_with_budget(&plan, Closing(CHUNK), Path::new("(test)"), 2, 2, |_, _, _| {}).unwrap_err();
        assert!(
            matches!(&err, Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe),
            "{err}"
        );
    }

    #[test]
    fn a_layer_that_grew_is_not_written_past_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let plan = store_of(dir.path(), &[CHUNK, 100]);
        let file = dir.path().join("store/p0-x/f");
        fs::write(&file, vec![1u8; 3 * CHUNK]).unwrap();
        let mut out = Vec::new();
        let err = write_archive(&plan, &mut out, Path::new("(test)"), 2, |_, _, _| {}).unwrap_err();
        assert!(err.to_string().starts_with("layer 0 does not match its plan"), "{err}");
        assert!(
            out.len() as u64 <= crate::format::tar_blocks::BLOCK as u64 + plan.images[0].layers[0].size,
            "{} bytes written",
            out.len()
        );
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
        let err = write_archive(&plan, &mut out, Path::new("(test)"), 2, |_, _, _| {}).unwrap_err();
        assert!(err.to_string().starts_with("layer 0 does not match its plan"), "{err}");
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("manifest.json"));
    }
}

//! An image archive as a tar file: its entries indexed in one pass — where each entry's data
//! starts, and the bytes of the small JSON documents, each capped at [`METADATA_LIMIT`] and all
//! together at [`METADATA_TOTAL`] — and its layers read back by position ([`ArchiveReader`]),
//! the archive plain or compressed as a whole. What the entries mean is [`crate::read`]'s.

use crate::format::compress::{Compression, Metered};
use crate::image::plan::ArchiveLayer;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// The largest metadata document (manifest, index, config) read into memory.
pub const METADATA_LIMIT: u64 = 16 << 20;
/// The most metadata read into memory from one archive.
pub const METADATA_TOTAL: u64 = 64 << 20;
/// Reads layers out of archives, keeping the last archive open: layers read in the order the
/// archive stores them cost one pass over a compressed archive, not one per layer.
#[derive(Default)]
pub struct ArchiveReader {
    open: Option<OpenArchive>,
}

struct OpenArchive {
    path: String,
    data: ArchiveData,
}

enum ArchiveData {
    Plain(File),
    /// Decompressed; its count is how far into the archive reading has come, however much of
    /// each layer was taken.
    Compressed(Metered<Box<dyn Read + Send>>),
}

impl ArchiveReader {
    /// The uncompressed tarball of `layer`.
    pub fn layer(&mut self, layer: &ArchiveLayer) -> Result<Box<dyn Read + Send + '_>> {
        let reusable = self.open.as_ref().is_some_and(|open| {
            open.path == layer.archive
                && match open.data {
                    ArchiveData::Plain(_) => true,
                    ArchiveData::Compressed(ref reader) => reader.count() <= layer.offset,
                }
        });
        if !reusable {
            let path = Path::new(&layer.archive);
            let (compression, file) = open_archive(path)?;
            let length = file.metadata().map_err(|e| Error::io(path, e))?.len();
            let data = match compression {
                Compression::None => ArchiveData::Plain(file),
                _ => ArchiveData::Compressed(Metered::unlimited(
                    compression.decoder(BufReader::new(file), length).map_err(|e| Error::io(path, e))?,
                )),
            };
            self.open = Some(OpenArchive { path: layer.archive.clone(), data });
        }
        let open = self.open.as_mut().expect("opened above");
        let stored: Box<dyn Read + Send + '_> = match &mut open.data {
            ArchiveData::Plain(file) => {
                file.seek(SeekFrom::Start(layer.offset)).map_err(|e| layer.error(e))?;
                Box::new(file.take(layer.stored_size))
            }
            ArchiveData::Compressed(reader) => {
                let skip = layer.offset - reader.count();
                let skipped =
                    io::copy(&mut reader.take(skip), &mut io::sink()).map_err(|e| layer.error(e))?;
                if skipped != skip {
                    return Err(layer.error("the archive ends before it"));
                }
                Box::new(reader.take(layer.stored_size))
            }
        };
        layer.compression.decoder(stored, layer.stored_size).map_err(|e| layer.error(e))
    }
}

/// Whether the archive at `path` is compressed as a whole, so that its layers are best read in
/// one pass rather than each by seeking.
pub fn archive_is_compressed(path: &str) -> Result<bool> {
    Ok(open_archive(Path::new(path))?.0 != Compression::None)
}

/// The file at `path`, with the compression its first bytes show.
pub(crate) fn open_archive(path: &Path) -> Result<(Compression, File)> {
    let io_err = |e| Error::io(path, e);
    let mut file = File::open(path).map_err(io_err)?;
    let mut head = [0u8; 4];
    let n = file.read(&mut head).map_err(io_err)?;
    file.rewind().map_err(io_err)?;
    Ok((Compression::detect(&head[..n]), file))
}

/// Where an entry's data is, and the bytes of JSON documents.
pub(crate) struct EntryInfo {
    pub(crate) offset: u64,
    pub(crate) size: u64,
    pub(crate) compression: Compression,
    pub(crate) metadata: Option<Vec<u8>>,
}

/// Every regular entry of the archive at `path`, by normalised name.
pub(crate) fn index(path: &Path) -> Result<BTreeMap<String, EntryInfo>> {
    let io_err = |e| Error::io(path, e);
    let (compression, file) = open_archive(path)?;
    let length = file.metadata().map_err(io_err)?.len();
    let file = BufReader::new(file);
    let entries = if compression == Compression::None {
        // Seeking over layer data instead of reading it makes indexing a plain archive cheap,
        // but then nothing notices a truncated file: the entries must fit in it.
        let entries = index_entries(path, tar::Archive::new(file).entries_with_seek())?;
        if let Some((name, _)) = entries.iter().find(|(_, e)| e.offset + e.size > length) {
            return Err(Error::BadImage {
                path: path.into(),
                problem: format!("truncated: the file ends inside {name}"),
            });
        }
        entries
    } else {
        let decoded = compression.decoder(file, length).map_err(|e| not_tar(path, e))?;
        index_entries(path, tar::Archive::new(decoded).entries())?
    };
    if entries.is_empty() {
        return Err(Error::BadImage { path: path.into(), problem: "an empty or non-tar file".into() });
    }
    Ok(entries)
}

fn not_tar(path: &Path, e: io::Error) -> Error {
    Error::BadImage { path: path.to_owned(), problem: format!("not a readable tar archive: {e}") }
}

fn index_entries<R: Read>(
    path: &Path,
    entries: io::Result<tar::Entries<'_, R>>,
) -> Result<BTreeMap<String, EntryInfo>> {
    let not_tar = |e| not_tar(path, e);
    let mut index = BTreeMap::new();
    let mut metadata_total = 0;
    for entry in entries.map_err(not_tar)? {
        let mut entry = entry.map_err(not_tar)?;
        if !matches!(entry.header().entry_type(), tar::EntryType::Regular | tar::EntryType::Continuous) {
            continue;
        }
        // Never named by a valid manifest: a name `normalise` refuses, or one that is not UTF-8
        // (manifests are JSON, whose strings are text; read as text, with U+FFFD for each bad
        // byte, it could pass for a name that is listed).
        let entry_path = entry.path().map_err(not_tar)?;
        let Some(Ok(name)) = entry_path.to_str().map(normalise) else { continue };
        let (offset, size) = (entry.raw_file_position(), entry.size());
        let mut head = Vec::with_capacity(4);
        (&mut entry).take(4).read_to_end(&mut head).map_err(not_tar)?;
        let json_named = name == "manifest.json" || name == "index.json" || name.ends_with(".json");
        let metadata = if (json_named || head.first() == Some(&b'{')) && size <= METADATA_LIMIT {
            metadata_total += size;
            if metadata_total > METADATA_TOTAL {
                return Err(Error::BadImage {
                    path: path.into(),
                    problem: format!("it holds more than {} MiB of JSON documents", METADATA_TOTAL >> 20),
                });
            }
            let mut bytes = head.clone();
            entry.read_to_end(&mut bytes).map_err(not_tar)?;
            Some(bytes)
        } else {
            None
        };
        index.insert(name, EntryInfo { offset, size, compression: Compression::detect(&head), metadata });
    }
    Ok(index)
}

/// `name` as an entry name inside the archive: relative, without `.` or `..` components.
pub(crate) fn normalise(name: &str) -> Result<String, String> {
    let parts: Vec<&str> = name.split('/').filter(|part| !matches!(*part, "" | ".")).collect();
    if name.starts_with('/') || parts.contains(&"..") {
        return Err(format!("{name:?} points outside the archive"));
    }
    if parts.is_empty() {
        return Err(format!("{name:?} is not a file name"));
    }
    Ok(parts.join("/"))
}

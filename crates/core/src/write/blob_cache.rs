//! The compressed-digest cache of `stowage push`: for a layer (by its diff_id, or by its inputs
//! digest when its plan has no diff_id: [`crate::image::plan::LayerId`]) and a compressor, the
//! layer's diff_id and the digest and size of the blob it compresses to, so that an unchanged
//! layer is asked for (`HEAD`) without reading or compressing it again. The compressors give the
//! same bytes on any machine, so an entry stays true as long as the compressor does.
//!
//! One small file per entry, `$XDG_CACHE_HOME/stowage/blobs/<id hex>.<compressor>`, holding
//! `<diff_id> <digest> <size> <check>`. The check is a digest of the entry together with its own name, so
//! an entry copied under another layer's name, damaged or half-written reads as absent rather
//! than as another layer's blob. A cache that cannot be read or written only costs a compression.

use crate::format::compress::Compression;
use crate::format::digest::Digest;
use std::fs;
use std::path::{Path, PathBuf};

/// What an entry's check covers besides the entry, so that a change of format invalidates it.
const FORMAT: &str = "stowage blob cache 2";

/// Where the cache is, in the user's cache folder.
const FOLDER: &str = "stowage/blobs";

/// What a layer went to a registry as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blob {
    /// The layer's own digest (its diff_id).
    pub diff_id: Digest,
    /// The compressed blob's digest.
    pub digest: Digest,
    /// The compressed blob's size.
    pub size: u64,
}

/// The cache, in its folder (none: nothing is remembered).
pub struct BlobCache {
    dir: Option<PathBuf>,
}

impl BlobCache {
    /// The user's cache: under `$XDG_CACHE_HOME`, else `~/.cache`.
    pub fn of_user() -> BlobCache {
        BlobCache { dir: user_cache_home().map(|b| b.join(FOLDER)) }
    }

    /// The cache of a cache folder (`$XDG_CACHE_HOME`).
    pub fn under(cache_home: &Path) -> BlobCache {
        BlobCache { dir: Some(cache_home.join(FOLDER)) }
    }

    /// The blob the layer `id` compresses to by `compressor`, if known.
    pub fn get(&self, id: &Digest, compressor: Compression) -> Option<Blob> {
        let text = fs::read_to_string(self.file(id, compressor)?).ok()?;
        let mut fields = text.trim_end_matches('\n').split(' ');
        let (diff_id, digest, size, checked) =
            (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
        let blob = Blob {
            diff_id: Digest::try_from(diff_id.to_owned()).ok()?,
            digest: Digest::try_from(digest.to_owned()).ok()?,
            size: size.parse().ok()?,
        };
        let intact = fields.next().is_none() && checked == check(id, compressor, &blob);
        intact.then_some(blob)
    }

    /// Notes that the layer `id` compresses to `blob`. The entry is written beside its place
    /// and renamed into it, so a reader never sees half of it.
    pub fn put(&self, id: &Digest, compressor: Compression, blob: &Blob) {
        let Some(path) = self.file(id, compressor) else { return };
        let text =
            format!("{} {} {} {}\n", blob.diff_id, blob.digest, blob.size, check(id, compressor, blob));
        // A cache that cannot be written only costs a compression later.
        drop(write_whole(&path, &text));
    }

    /// Drops the entry of the layer `id`: it was found wrong.
    pub fn forget(&self, id: &Digest, compressor: Compression) {
        if let Some(path) = self.file(id, compressor) {
            let _ = fs::remove_file(path);
        }
    }

    fn file(&self, id: &Digest, compressor: Compression) -> Option<PathBuf> {
        Some(self.dir.as_ref()?.join(format!("{}.{}", id.hex(), suffix(compressor)?)))
    }
}

/// The user's cache folder: `$XDG_CACHE_HOME`, else `~/.cache`.
pub(crate) fn user_cache_home() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
}

/// Writes `text` to `path`, its folder made if need be: beside it, then renamed into it, so
/// that a reader never sees half of it.
pub(crate) fn write_whole(path: &Path, text: &str) -> std::io::Result<()> {
    let folder = path.parent().ok_or(std::io::ErrorKind::InvalidInput)?;
    fs::create_dir_all(folder)?;
    let mut temporary = tempfile::NamedTempFile::new_in(folder)?;
    std::io::Write::write_all(&mut temporary, text.as_bytes())?;
    temporary.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The name of `compressor`'s entries: it changes whenever its bytes would (gzip's level).
fn suffix(compressor: Compression) -> Option<&'static str> {
    match compressor {
        Compression::Gzip => Some("gz1"),
        Compression::Zstd => Some("zstd"),
        Compression::None => None,
    }
}

/// The check of the entry `blob` for the layer `id` compressed by `compressor`.
fn check(id: &Digest, compressor: Compression, blob: &Blob) -> String {
    let suffix = suffix(compressor).unwrap_or_default();
    let Blob { diff_id, digest, size } = blob;
    Digest::of(format!("{FORMAT}\n{id}\n{suffix}\n{diff_id}\n{digest}\n{size}\n").as_bytes()).hex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_hold_only_for_their_own_layer() {
        let home = tempfile::tempdir().unwrap();
        let cache = BlobCache { dir: Some(home.path().join("blobs")) };
        let (a, b) = (Digest::of(b"layer a"), Digest::of(b"layer b"));
        let blob = Blob { diff_id: a, digest: Digest::of(b"gzip of layer a"), size: 42 };
        assert_eq!(cache.get(&a, Compression::Gzip), None);
        cache.put(&a, Compression::Gzip, &blob);
        assert_eq!(cache.get(&a, Compression::Gzip), Some(blob));
        assert_eq!(cache.get(&a, Compression::Zstd), None);
        // An entry copied under another layer's name is not that layer's.
        let (path_a, path_b) =
            (cache.file(&a, Compression::Gzip).unwrap(), cache.file(&b, Compression::Gzip).unwrap());
        fs::copy(&path_a, &path_b).unwrap();
        assert_eq!(cache.get(&b, Compression::Gzip), None);
        // Nor is an edited one, or one in the unchecked format of earlier releases.
        let text = fs::read_to_string(&path_a).unwrap();
        fs::write(&path_a, text.replace(" 42 ", " 43 ")).unwrap();
        assert_eq!(cache.get(&a, Compression::Gzip), None);
        fs::write(&path_a, format!("{} 42\n", blob.digest)).unwrap();
        assert_eq!(cache.get(&a, Compression::Gzip), None);
        cache.put(&a, Compression::Gzip, &blob);
        cache.forget(&a, Compression::Gzip);
        assert_eq!(cache.get(&a, Compression::Gzip), None);
        assert_eq!(fs::read_dir(path_a.parent().unwrap()).unwrap().count(), 1, "only b's copy is left");
    }
}

//! The compressed-digest cache of `stowage push`: for a layer (its diff_id) and a compressor,
//! the digest and size of the blob it compresses to, so that an unchanged layer is asked for
//! (`HEAD`) without compressing it again. The compressors give the same bytes on any machine,
//! so an entry stays true as long as the compressor does.
//!
//! One small file per entry, `$XDG_CACHE_HOME/stowage/blobs/<diff_id hex>.<compressor>`, holding
//! `<digest> <size> <check>`. The check is a digest of the entry together with its own name, so
//! an entry copied under another layer's name, damaged or half-written reads as absent rather
//! than as another layer's blob. A cache that cannot be read or written only costs a compression.

use crate::format::compress::Compression;
use crate::format::digest::Digest;
use std::fs;
use std::path::{Path, PathBuf};

/// What an entry's check covers besides the entry, so that a change of format invalidates it.
const FORMAT: &str = "stowage blob cache 1";

/// Where the cache is, in the user's cache folder.
const FOLDER: &str = "stowage/blobs";

/// The cache, in its folder (none: nothing is remembered).
pub struct BlobCache {
    dir: Option<PathBuf>,
}

impl BlobCache {
    /// The user's cache: under `$XDG_CACHE_HOME`, else `~/.cache`.
    pub fn of_user() -> BlobCache {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
        BlobCache { dir: base.map(|b| b.join(FOLDER)) }
    }

    /// The cache of a cache folder (`$XDG_CACHE_HOME`).
    pub fn under(cache_home: &Path) -> BlobCache {
        BlobCache { dir: Some(cache_home.join(FOLDER)) }
    }

    /// The blob (digest, size) the layer `diff_id` compresses to by `compressor`, if known.
    pub fn get(&self, diff_id: &Digest, compressor: Compression) -> Option<(Digest, u64)> {
        let text = fs::read_to_string(self.file(diff_id, compressor)?).ok()?;
        let mut fields = text.trim_end_matches('\n').split(' ');
        let (digest, size, checked) = (fields.next()?, fields.next()?, fields.next()?);
        let (digest, size) = (Digest::try_from(digest.to_owned()).ok()?, size.parse().ok()?);
        let intact = fields.next().is_none() && checked == check(diff_id, compressor, &digest, size);
        intact.then_some((digest, size))
    }

    /// Notes that the layer `diff_id` compresses to the blob `digest` of `size` bytes. The entry
    /// is written beside its place and renamed into it, so a reader never sees half of it.
    pub fn put(&self, diff_id: &Digest, compressor: Compression, digest: &Digest, size: u64) {
        let Some(path) = self.file(diff_id, compressor) else { return };
        let Some(folder) = path.parent() else { return };
        let text = format!("{digest} {size} {}\n", check(diff_id, compressor, digest, size));
        let written = fs::create_dir_all(folder)
            .and_then(|()| tempfile::NamedTempFile::new_in(folder))
            .and_then(|mut temporary| {
                std::io::Write::write_all(&mut temporary, text.as_bytes())?;
                temporary.persist(&path).map_err(|e| e.error)
            });
        // A cache that cannot be written only costs a compression later.
        drop(written);
    }

    /// Drops the entry of the layer `diff_id`: it was found wrong.
    pub fn forget(&self, diff_id: &Digest, compressor: Compression) {
        if let Some(path) = self.file(diff_id, compressor) {
            let _ = fs::remove_file(path);
        }
    }

    fn file(&self, diff_id: &Digest, compressor: Compression) -> Option<PathBuf> {
        Some(self.dir.as_ref()?.join(format!("{}.{}", diff_id.hex(), suffix(compressor)?)))
    }
}

/// The name of `compressor`'s entries: it changes whenever its bytes would (gzip's level).
fn suffix(compressor: Compression) -> Option<&'static str> {
    match compressor {
        Compression::Gzip => Some("gz1"),
        Compression::Zstd => Some("zstd"),
        Compression::None => None,
    }
}

/// The check of the entry `digest size` for the layer `diff_id` compressed by `compressor`.
fn check(diff_id: &Digest, compressor: Compression, digest: &Digest, size: u64) -> String {
    let suffix = suffix(compressor).unwrap_or_default();
    Digest::of(format!("{FORMAT}\n{diff_id}\n{suffix}\n{digest}\n{size}\n").as_bytes()).hex()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_hold_only_for_their_own_layer() {
        let home = tempfile::tempdir().unwrap();
        let cache = BlobCache { dir: Some(home.path().join("blobs")) };
        let (a, b) = (Digest::of(b"layer a"), Digest::of(b"layer b"));
        let blob = Digest::of(b"gzip of layer a");
        assert_eq!(cache.get(&a, Compression::Gzip), None);
        cache.put(&a, Compression::Gzip, &blob, 42);
        assert_eq!(cache.get(&a, Compression::Gzip), Some((blob, 42)));
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
        fs::write(&path_a, format!("{blob} 42\n")).unwrap();
        assert_eq!(cache.get(&a, Compression::Gzip), None);
        cache.put(&a, Compression::Gzip, &blob, 42);
        cache.forget(&a, Compression::Gzip);
        assert_eq!(cache.get(&a, Compression::Gzip), None);
        assert_eq!(fs::read_dir(path_a.parent().unwrap()).unwrap().count(), 1, "only b's copy is left");
    }
}

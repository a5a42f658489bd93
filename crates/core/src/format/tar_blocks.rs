//! Tar's blocks, as stowage writes them around the entries the `tar` crate cannot write as fast:
//! the block size, the padding after an entry's data, the end of an archive, and the ustar
//! headers of an image file's own entries (manifests, configs, layer files, the OCI layout's
//! folders). Layer entries, with owners and long names, are [`crate::layer::tarball`]'s.
//!
//! Image file entries are owned by root, read-only, dated by the plan's `mtime`: the same
//! image, the same bytes (POSIX.1-1988 ustar, as `docker save` writes them).

use crate::{Error, Result};

/// Tar's block size: headers, and the padding that ends every entry's data on a whole block.
pub const BLOCK: usize = 512;

/// The two zero blocks that end an archive.
pub const END_OF_ARCHIVE: [u8; 2 * BLOCK] = [0; 2 * BLOCK];

/// The zeros that pad `size` bytes of an entry's data to a whole block.
pub fn padding(size: u64) -> &'static [u8] {
    const ZEROS: [u8; BLOCK] = [0; BLOCK];
    &ZEROS[..(BLOCK - (size % BLOCK as u64) as usize) % BLOCK]
}

/// The header of an image file's entry of `size` bytes named `name`.
pub fn file_header(name: &str, size: u64, mtime: u64) -> Result<[u8; BLOCK]> {
    header(name, tar::EntryType::Regular, size, 0o444, mtime)
}

/// The header of an image file's folder `name`.
pub fn directory_header(name: &str, mtime: u64) -> Result<[u8; BLOCK]> {
    header(name, tar::EntryType::Directory, 0, 0o555, mtime)
}

/// The whole entry `name` holding `bytes`: header, data, padding.
pub fn entry(name: &str, bytes: &[u8], mtime: u64) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(BLOCK + bytes.len() + BLOCK);
    out.extend(file_header(name, bytes.len() as u64, mtime)?);
    out.extend_from_slice(bytes);
    out.extend_from_slice(padding(bytes.len() as u64));
    Ok(out)
}

fn header(name: &str, kind: tar::EntryType, size: u64, mode: u32, mtime: u64) -> Result<[u8; BLOCK]> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name).map_err(|e| Error::io(name, e))?;
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(mode);
    header.set_mtime(mtime);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    Ok(*header.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_end_on_whole_blocks() {
        assert_eq!(padding(0).len(), 0);
        assert_eq!(padding(1).len(), 511);
        assert_eq!(padding(512).len(), 0);
        let entry = entry("manifest.json", b"[]", 1).unwrap();
        assert_eq!(entry.len(), 2 * BLOCK);
        let mut archive = tar::Archive::new(&entry[..]);
        let read = archive.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(read.path().unwrap().to_str(), Some("manifest.json"));
        assert_eq!(read.header().mode().unwrap(), 0o444);
        assert_eq!(read.header().mtime().unwrap(), 1);
    }
}

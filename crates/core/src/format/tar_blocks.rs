//! Tar's blocks, as stowage writes them around the entries the `tar` crate cannot write as fast:
//! the block size, the padding after an entry's data, the end of an archive, and the ustar
//! headers of an image file's own entries (manifests, configs, layer files, the OCI layout's
//! folders). Layer entries, with owners and long names, are [`crate::layer::tarball`]'s.
//!
//! Image file entries are owned by root, read-only, dated by the plan's `mtime`: the same
//! image, the same bytes (POSIX.1-1988 ustar, as `docker save` writes them).

use crate::{Error, Result};
use std::io::{self, Read};

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

/// Reads the entries of the layer tarball `layer` in order, handing each to `each`; a tar error
/// becomes an error through `unreadable`.
///
/// A writer may leave off the padding after the last entry's data, or the end-of-archive
/// blocks (umoci 0.4 does both): Docker, podman, skopeo and umoci read such layers, so stowage
/// does too, with zeros standing in for what is missing. A layer that ends inside an entry's
/// data is still refused.
pub fn layer_entries<R: Read, E>(
    layer: R,
    unreadable: impl Fn(io::Error) -> E,
    mut each: impl FnMut(&mut tar::Entry<'_, Terminated<R>>) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let mut archive = tar::Archive::new(Terminated { inner: layer, read: 0, zeros: None });
    let mut data_end = 0;
    for entry in archive.entries().map_err(&unreadable)? {
        let mut entry = entry.map_err(&unreadable)?;
        data_end = entry.raw_file_position() + entry.size();
        each(&mut entry)?;
    }
    let read = archive.into_inner().read;
    if data_end > read {
        return Err(unreadable(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("it ends inside the data of its last entry ({read} of {data_end} bytes)"),
        )));
    }
    Ok(())
}

/// A layer tarball followed, once it ends, by the zeros of a complete ending: the padding of its
/// last block and the end-of-archive blocks (see [`layer_entries`]).
pub struct Terminated<R> {
    inner: R,
    /// The tarball's own bytes read so far.
    read: u64,
    /// The zeros left to give, once the tarball has ended.
    zeros: Option<usize>,
}

impl<R: Read> Read for Terminated<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.zeros.is_none() {
            let n = self.inner.read(buf)?;
            if n > 0 || buf.is_empty() {
                self.read += n as u64;
                return Ok(n);
            }
            self.zeros = Some(padding(self.read).len() + END_OF_ARCHIVE.len());
        }
        let left = self.zeros.as_mut().expect("set above");
        let n = (*left).min(buf.len());
        buf[..n].fill(0);
        *left -= n;
        Ok(n)
    }
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

    fn names(layer: &[u8]) -> std::result::Result<Vec<String>, String> {
        let mut names = Vec::new();
        layer_entries(
            layer,
            |e| e.to_string(),
            |entry| {
                names.push(entry.path().unwrap().display().to_string());
                Ok(())
            },
        )?;
        Ok(names)
    }

    #[test]
    fn a_layer_without_its_ending_is_read_but_a_cut_one_is_not() {
        let whole =
            [entry("a", b"1", 1).unwrap(), entry("b", b"22", 1).unwrap(), END_OF_ARCHIVE.to_vec()].concat();
        assert_eq!(names(&whole).unwrap(), ["a", "b"]);
        // without the end blocks, then without the last entry's padding too (as umoci 0.4 writes)
        let unended = &whole[..whole.len() - END_OF_ARCHIVE.len()];
        assert_eq!(names(unended).unwrap(), ["a", "b"]);
        let unpadded = &unended[..unended.len() - (BLOCK - 2)];
        assert_eq!(names(unpadded).unwrap(), ["a", "b"]);
        let err = names(&unpadded[..unpadded.len() - 1]).unwrap_err();
        assert!(err.contains("ends inside the data of its last entry"), "{err}");
    }
}

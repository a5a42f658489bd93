//! Bytes in large owned chunks: how a layer travels from the files it is made of to the
//! archive's writer and hashers — read once into memory, straight from the file into the chunk,
//! and never copied again on the way.

use std::io::{self, Read, Write};

/// How many bytes a chunk holds: large enough that every file read, hash update and pipe write
/// is big, small enough that the handful in flight stays a few megabytes.
pub const CHUNK: usize = 1 << 20;

/// Where a [`ChunkWriter`] hands its full chunks: takes one, gives back a buffer to fill next.
pub trait Emit: FnMut(Vec<u8>) -> io::Result<Vec<u8>> {}

impl<F: FnMut(Vec<u8>) -> io::Result<Vec<u8>>> Emit for F {}

/// Collects what is written into chunks of [`CHUNK`] bytes and hands every full one to `emit`,
/// which gives back a buffer to fill next (its contents do not matter). File contents go
/// through [`ChunkWriter::copy_from`], which reads them straight into the chunk being filled.
pub struct ChunkWriter<E> {
    /// Always [`CHUNK`] bytes long; the first `filled` are the data.
    chunk: Vec<u8>,
    filled: usize,
    emit: E,
    written: u64,
    /// Whether file contents are only counted, never read ([`ChunkWriter::sizing`]).
    sizing: bool,
}

/// Why [`ChunkWriter::copy_from`] stopped.
#[derive(Debug)]
pub enum CopyError {
    /// Reading the source failed.
    Read(io::Error),
    /// Handing on a chunk failed.
    Write(io::Error),
}

impl<E: Emit> ChunkWriter<E> {
    /// A writer that fills `first` (its contents do not matter), then what `emit` gives back.
    pub fn new(mut first: Vec<u8>, emit: E) -> Self {
        first.resize(CHUNK, 0);
        ChunkWriter { chunk: first, filled: 0, emit, written: 0, sizing: false }
    }

    /// A writer that counts what would be written without reading file contents: what
    /// [`ChunkWriter::copy_from`] is given counts as read in full. For the size of a tarball
    /// from its files' metadata; the chunks handed to `emit` hold the rest (headers, padding).
    pub fn sizing(emit: E) -> Self {
        ChunkWriter { sizing: true, ..ChunkWriter::new(Vec::new(), emit) }
    }

    /// Whether this writer only counts file contents ([`ChunkWriter::sizing`]).
    pub fn is_sizing(&self) -> bool {
        self.sizing
    }

    /// Reads up to `limit` bytes of `from` straight into chunks; returns how many it read,
    /// fewer only if `from` ended first.
    pub fn copy_from(&mut self, from: &mut impl Read, limit: u64) -> Result<u64, CopyError> {
        if self.sizing {
            self.written += limit;
            return Ok(limit);
        }
        let mut copied = 0;
        while copied < limit {
            if self.filled == CHUNK {
                self.emit_chunk().map_err(CopyError::Write)?;
            }
            let room = (CHUNK - self.filled).min(usize::try_from(limit - copied).unwrap_or(usize::MAX));
            match from.read(&mut self.chunk[self.filled..self.filled + room]) {
                Ok(0) => break,
                Ok(n) => {
                    self.filled += n;
                    self.written += n as u64;
                    copied += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CopyError::Read(e)),
            }
        }
        Ok(copied)
    }

    /// Hands on the last chunk, if anything is in it; returns `emit`, the buffer that would
    /// have been filled next, and the number of bytes written.
    pub fn finish(mut self) -> io::Result<(E, Vec<u8>, u64)> {
        if self.filled > 0 {
            self.emit_chunk()?;
        }
        Ok((self.emit, self.chunk, self.written))
    }

    fn emit_chunk(&mut self) -> io::Result<()> {
        let mut full = std::mem::take(&mut self.chunk);
        full.truncate(self.filled);
        let mut next = (self.emit)(full)?;
        // Only what the buffer lacks is zeroed: for a reused full chunk, nothing.
        next.resize(CHUNK, 0);
        self.chunk = next;
        self.filled = 0;
        Ok(())
    }
}

impl<E: Emit> Write for ChunkWriter<E> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.filled == CHUNK {
            self.emit_chunk()?;
        }
        let n = buf.len().min(CHUNK - self.filled);
        self.chunk[self.filled..self.filled + n].copy_from_slice(&buf[..n]);
        self.filled += n;
        self.written += n as u64;
        Ok(n)
    }

    /// Chunks are handed on when full (or at [`ChunkWriter::finish`]), never early: their
    /// boundaries do not depend on when anyone flushed.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A [`ChunkWriter`] that writes its chunks to `out`, reusing one buffer.
pub fn to_writer<W: Write>(mut out: W) -> ChunkWriter<impl Emit> {
    ChunkWriter::new(Vec::new(), move |chunk: Vec<u8>| out.write_all(&chunk).map(|()| chunk))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_full_but_the_last_whatever_the_writes() {
        let data: Vec<u8> = (0..(2 * CHUNK + 100)).map(|i| (i % 251) as u8).collect();
        let mut chunks = Vec::new();
        let mut w = ChunkWriter::new(Vec::new(), |c: Vec<u8>| {
            chunks.push(c);
            Ok(Vec::new())
        });
        w.write_all(&data[..10]).unwrap();
        assert_eq!(w.copy_from(&mut &data[10..CHUNK + 5], u64::MAX).unwrap(), CHUNK as u64 - 5);
        assert_eq!(w.copy_from(&mut &data[CHUNK + 5..], 7).unwrap(), 7);
        w.write_all(&data[CHUNK + 12..]).unwrap();
        let (_, _, written) = w.finish().unwrap();
        assert_eq!(written, data.len() as u64);
        assert_eq!(chunks.iter().map(Vec::len).collect::<Vec<_>>(), [CHUNK, CHUNK, 100]);
        assert!(chunks.concat() == data);
    }

    #[test]
    fn read_and_write_errors_are_told_apart() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk"))
            }
        }
        let mut w = to_writer(Vec::new());
        assert!(matches!(w.copy_from(&mut Failing, 10), Err(CopyError::Read(_))));
        let mut w = ChunkWriter::new(Vec::new(), |_| Err(io::Error::from(io::ErrorKind::BrokenPipe)));
        let big = vec![1u8; CHUNK + 1];
        assert!(matches!(w.copy_from(&mut big.as_slice(), u64::MAX), Err(CopyError::Write(_))));
    }
}

//! Compression, both ways: archives written with `gz` or `zstd` on every core, with bytes that
//! never depend on how many cores did the work; and archives or layers read, their compression
//! told by magic bytes and their decompression bounded (see [`MAX_EXPANSION`]).
//!
//! - **gzip**: the input is cut into [`GZIP_MEMBER`]-byte blocks by position alone, each block
//!   is compressed on a worker thread into a gzip member of its own (RFC 1952 §2.2: a gzip file
//!   is a series of members; `gzip -d`, Go's `compress/gzip` that Docker and podman use, zlib
//!   and flate2's `MultiGzDecoder` read them all), and the members are written in order.
//!   libdeflate does the compressing: at the same level as gzip's default it is two to three
//!   times faster than zlib and its output is a little smaller, which more than pays for
//!   members that cannot refer back to the block before. `gzp` offers the same scheme, but only
//!   with extra header fields (BGZF, mgzip) or zlib-ng; on std threads it is a page of code with
//!   the header bytes fixed here.
//! - **zstd**: libzstd's own workers. With at least one worker, libzstd cuts its jobs by
//!   position too, so the frame is the same for any number of workers (only its single-threaded
//!   mode, never used here, writes another).

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

/// How a file — an archive, or a layer inside one — is compressed: what an archive is written
/// with, and what one read turns out to hold. (Its serde names are those of a plan's archive
/// layers.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (`.tar.gz`).
    Gzip,
    /// zstd (`.tar.zst`).
    Zstd,
}

impl Compression {
    /// The compressor named as `buildLayeredImage`'s `compressor` names it.
    pub fn from_name(name: &str) -> Result<Compression> {
        match name {
            "none" => Ok(Compression::None),
            "gz" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            other => Err(Error::argument(
                "compressor",
                format!("is {other:?}; it must be \"none\", \"gz\" or \"zstd\""),
            )),
        }
    }

    /// A writer that compresses into `out` on `threads` threads (gzip at its default level).
    pub fn writer<W: Write>(self, out: W, threads: usize) -> io::Result<Compressed<W>> {
        self.writer_at(out, threads, GZIP_LEVEL)
    }

    /// [`Compression::writer`], gzip at `gzip_level` (1 to 12, libdeflate's levels).
    pub fn writer_at<W: Write>(self, out: W, threads: usize, gzip_level: i32) -> io::Result<Compressed<W>> {
        Ok(match self {
            Compression::None => Compressed::Plain(out),
            Compression::Gzip => Compressed::Gzip(ParallelGzip::new(out, threads, gzip_level)),
            Compression::Zstd => {
                let mut zstd = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
                zstd.multithread(threads.max(1) as u32)?;
                // As the zstd command writes it: a reader can tell a damaged archive.
                zstd.include_checksum(true)?;
                zstd.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB))?;
                Compressed::Zstd(zstd)
            }
        })
    }
}

/// zstd's level: its own default, which `zstd -3` and dockerTools use.
const ZSTD_LEVEL: i32 = 3;

/// The input of each of libzstd's jobs. Its default at level 3 is 8 MiB, and every worker
/// holds a job's input and output: 2 MiB halves the memory of two workers (to about 60 MiB)
/// and costs well under 0.1 % in size.
const ZSTD_JOB: u32 = 2 << 20;

/// gzip's level: its own default (`gzip -6`, `pigz`), which dockerTools uses.
const GZIP_LEVEL: i32 = 6;

/// How many input bytes each gzip member holds (the last may hold fewer). Large enough that
/// starting every member without history costs well under 1 % in size, small enough that a
/// few blocks per core keep every core busy.
pub const GZIP_MEMBER: usize = 1 << 20;

/// Blocks handed to the gzip workers at once, per thread.
const BLOCKS_PER_THREAD: usize = 2;

/// A writer that compresses what it is given, or passes it on.
pub enum Compressed<W: Write> {
    /// Passed on as it is.
    Plain(W),
    /// gzip members compressed in parallel.
    Gzip(ParallelGzip<W>),
    /// A zstd frame.
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Compressed<W> {
    /// Writes what is still buffered and the compression's trailer; returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Compressed::Plain(mut out) => out.flush().map(|()| out),
            Compressed::Gzip(gz) => gz.finish(),
            Compressed::Zstd(zstd) => zstd.finish(),
        }
    }
}

impl<W: Write> Write for Compressed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressed::Plain(out) => out.write(buf),
            Compressed::Gzip(gz) => gz.write(buf),
            Compressed::Zstd(zstd) => zstd.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressed::Plain(out) => out.flush(),
            Compressed::Gzip(gz) => gz.flush(),
            Compressed::Zstd(zstd) => zstd.flush(),
        }
    }
}

/// A block on its way through a gzip worker: the input, and the member made of it.
struct Block {
    input: Vec<u8>,
    member: Vec<u8>,
}

/// A block and where to send it back once compressed.
type Job = (Block, mpsc::SyncSender<Block>);

/// gzip on several threads: blocks of [`GZIP_MEMBER`] input bytes, each compressed into a
/// member of its own by a pool of workers, written in input order.
pub struct ParallelGzip<W: Write> {
    out: W,
    /// The block being filled.
    filling: Vec<u8>,
    /// Blocks being compressed, oldest first.
    in_flight: VecDeque<mpsc::Receiver<Block>>,
    /// Blocks whose member was written, for reuse.
    spare: Vec<Block>,
    workers: Workers,
    /// Whether any member was written: an empty input still makes one (a valid gzip file).
    wrote_member: bool,
}

/// The threads that compress blocks; they stop when this is dropped.
struct Workers {
    jobs: Option<mpsc::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    fn start(count: usize, level: i32) -> Workers {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let threads = (0..count)
            .map(|_| {
                let queue = Arc::clone(&queue);
                std::thread::spawn(move || {
                    let level = libdeflater::CompressionLvl::new(level).expect("a libdeflate level");
                    let mut deflate = libdeflater::Compressor::new(level);
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = queue.lock().map(|queue| queue.recv());
                        let Ok(Ok((mut block, done))) = job else { return };
                        block.member.resize(deflate.gzip_compress_bound(block.input.len()), 0);
                        let n = deflate
                            .gzip_compress(&block.input, &mut block.member)
                            .expect("a buffer of gzip_compress_bound bytes holds the member");
                        block.member.truncate(n);
                        if done.send(block).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        Workers { jobs: Some(jobs), threads }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.jobs = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl<W: Write> ParallelGzip<W> {
    /// Compresses into `out` at `level` with `threads` workers (at least one).
    pub fn new(out: W, threads: usize, level: i32) -> Self {
        ParallelGzip {
            out,
            filling: Vec::with_capacity(GZIP_MEMBER),
            in_flight: VecDeque::new(),
            spare: Vec::new(),
            workers: Workers::start(threads.max(1), level),
            wrote_member: false,
        }
    }

    /// Hands the block being filled to the workers, first writing the oldest members if too
    /// many are in flight.
    fn send_block(&mut self) -> io::Result<()> {
        while self.in_flight.len() >= BLOCKS_PER_THREAD * self.workers.threads.len() {
            self.write_oldest()?;
        }
        let (next, member) = match self.spare.pop() {
            Some(block) => (block.input, block.member),
            None => (Vec::with_capacity(GZIP_MEMBER), Vec::new()),
        };
        let input = std::mem::replace(&mut self.filling, next);
        let (done, compressed) = mpsc::sync_channel(1);
        let jobs = self.workers.jobs.as_ref().expect("workers run until dropped");
        jobs.send((Block { input, member }, done)).map_err(|_| worker_failed())?;
        self.in_flight.push_back(compressed);
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(compressed) = self.in_flight.pop_front() else { return Ok(()) };
        let mut block = compressed.recv().map_err(|_| worker_failed())?;
        self.out.write_all(&block.member)?;
        self.wrote_member = true;
        block.input.clear();
        self.spare.push(block);
        Ok(())
    }

    /// Compresses and writes what is left; returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.filling.is_empty() || !self.wrote_member && self.in_flight.is_empty() {
            self.send_block()?;
        }
        while !self.in_flight.is_empty() {
            self.write_oldest()?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let len = buf.len();
        while !buf.is_empty() {
            let room = GZIP_MEMBER - self.filling.len();
            let (now, later) = buf.split_at(room.min(buf.len()));
            self.filling.extend_from_slice(now);
            buf = later;
            if self.filling.len() == GZIP_MEMBER {
                self.send_block()?;
            }
        }
        Ok(len)
    }

    /// Flushes the inner writer only: where blocks end must not depend on when the writer was
    /// flushed, so the block being filled stays.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn worker_failed() -> io::Error {
    io::Error::other("a gzip compression thread stopped")
}

// Reading: what compression a file holds, and its bounded decompression.

/// How many times its compressed size a compressed archive or layer may expand to…
pub const MAX_EXPANSION: u64 = 200;
/// …or this many bytes, whichever is more. Real layers compress 2 to 10 times; a stream of
/// zeros compresses a thousand times with gzip and far more with zstd.
pub const EXPANSION_FLOOR: u64 = 256 << 20;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// The compression whose magic bytes start `head`.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// `reader`, decompressed; at most [`expansion_limit`] of `compressed_size` bytes come out.
    pub fn decoder<'a, R: Read + Send + 'a>(
        self,
        reader: R,
        compressed_size: u64,
    ) -> io::Result<Box<dyn Read + Send + 'a>> {
        let limit = expansion_limit(compressed_size);
        Ok(match self {
            Compression::None => Box::new(reader),
            Compression::Gzip => {
                Box::new(Metered { inner: flate2::read::MultiGzDecoder::new(reader), count: 0, limit })
            }
            Compression::Zstd => Box::new(Metered { inner: zstd::Decoder::new(reader)?, count: 0, limit }),
        })
    }
}

/// The most bytes something `compressed_size` bytes long may decompress to.
pub fn expansion_limit(compressed_size: u64) -> u64 {
    compressed_size.saturating_mul(MAX_EXPANSION).max(EXPANSION_FLOOR)
}

/// A reader that counts what comes out of it, and fails once that is more than its limit.
pub struct Metered<R> {
    inner: R,
    count: u64,
    limit: u64,
}

impl<R> Metered<R> {
    /// `inner`, counted, with no limit.
    pub fn unlimited(inner: R) -> Metered<R> {
        Metered { inner, count: 0, limit: u64::MAX }
    }

    /// How many bytes came out so far.
    pub fn count(&self) -> u64 {
        self.count
    }
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.limit {
            return Err(io::Error::other(format!(
                "it decompresses to more than {MAX_EXPANSION} times its size (at least {} MiB): \
                 refused as a likely decompression bomb",
                EXPANSION_FLOOR >> 20
            )));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Bytes that compress somewhat, like real files: text with some noise.
    fn sample(len: usize) -> Vec<u8> {
        let mut state = 0x1234_5678_u64;
        (0..len)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if state % 4 == 0 {
                    state as u8
                } else {
                    b"the quick brown fox jumps over the lazy dog "[i % 44]
                }
            })
            .collect()
    }

    /// `data` compressed by `compressor` on `threads` threads, written in pieces of `piece`.
    fn compress(compressor: Compression, data: &[u8], threads: usize, piece: usize) -> Vec<u8> {
        let mut w = compressor.writer(Vec::new(), threads).unwrap();
        for chunk in data.chunks(piece) {
            w.write_all(chunk).unwrap();
        }
        w.finish().unwrap()
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn gzip_bytes_do_not_depend_on_threads_or_write_sizes() {
        let data = sample(5 * GZIP_MEMBER + 12345);
        let one = compress(Compression::Gzip, &data, 1, 1 << 16);
        for (threads, piece) in [(2, 1 << 20), (3, 777), (8, 5 << 20)] {
            assert!(compress(Compression::Gzip, &data, threads, piece) == one, "{threads} threads");
        }
        assert!(gunzip(&one) == data);
        assert!(one.len() < data.len() / 2, "compressed to {} of {}", one.len(), data.len());
        // one member per block, each without a file name or mtime
        let mut members = 0;
        let mut rest = one.as_slice();
        while !rest.is_empty() {
            assert_eq!(&rest[..8], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
            let mut member = flate2::bufread::GzDecoder::new(rest);
            std::io::copy(&mut member, &mut std::io::sink()).unwrap();
            rest = member.into_inner();
            members += 1;
        }
        assert_eq!(members, 6);
    }

    #[test]
    fn gzip_of_nothing_is_a_valid_gzip_file() {
        let empty = compress(Compression::Gzip, &[], 2, 1);
        assert_eq!(&empty[..2], &[0x1f, 0x8b]);
        assert!(gunzip(&empty).is_empty());
    }

    #[test]
    fn zstd_bytes_do_not_depend_on_threads() {
        // several of libzstd's jobs
        let data = sample(5 * ZSTD_JOB as usize + 1000);
        let one = compress(Compression::Zstd, &data, 1, 1 << 16);
        for threads in [2, 4] {
            assert!(compress(Compression::Zstd, &data, threads, 100_000) == one, "{threads} threads");
        }
        assert!(zstd::decode_all(one.as_slice()).unwrap() == data);
    }

    #[test]
    fn compressor_names() {
        assert_eq!(Compression::from_name("gz").unwrap(), Compression::Gzip);
        let err = Compression::from_name("xz").unwrap_err().to_string();
        assert!(err.starts_with("argument 'compressor' is \"xz\""), "{err}");
    }
}

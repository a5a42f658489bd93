//! Byte formats, one owner each: content digests, Nix archives, compression, tar's blocks, and
//! the chunks in which bytes travel from files to writers and hashers. Nothing here knows what
//! an image is.

pub mod chunks;
pub mod compress;
pub mod digest;
pub mod nar;
pub mod tar_blocks;

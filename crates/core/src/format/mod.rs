//! Byte formats, one owner each: content digests, Nix archives, the closure Nix exports to a
//! build, compression, tar's blocks, the
//! chunks in which bytes travel from files to writers and hashers, and the OCI and Docker
//! documents (manifests, indexes, configs, platforms) with their media types. Nothing here
//! plans, reads or writes an image.

pub mod chunks;
pub mod closure;
pub mod compress;
pub mod digest;
pub mod nar;
pub mod oci;
pub mod tar_blocks;

//! Layer production: entries — store paths, a merged `contents` tree, a script's changes, the
//! Nix database — written as deterministic layer tarballs ([`tarball`]), with declared owners
//! and modes ([`perms`]).

pub mod contents;
pub mod nix_db;
pub mod owners;
pub mod perms;
pub mod tarball;
pub mod tree;

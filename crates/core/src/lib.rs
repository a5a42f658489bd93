//! stowage builds container images (Docker / OCI) from the Nix store.
//!
//! This crate is the one Rust core behind three entry points: the Nix plugin (`libstowage.so`,
//! crates/plugin, which offers `builtins.stowage`), the `stowage` command line (crates/cli: the
//! builder of image derivations, the streamer, `stowage push`), and the Nix library without the
//! plugin (`nix/`), whose derivations run that command. It knows nothing of Nix's C++.
//!
//! # Where things live
//! From the top down; a folder imports only folders below it (`script` and `write` side by
//! side, and `registry` and `read`).
//! - [`derivation`]: the builders of stowage's derivations, one per `stowage build-…`.
//! - [`functions`]: the library functions — each one's arguments (checked while evaluating and
//!   again by the builder) and what its derivation builds.
//! - [`script`]: running customisation scripts in an image root, unprivileged.
//! - [`mod@write`]: images written — docker-archive, OCI layout, a Docker Engine, a registry
//!   (`stowage push`), wherever `stowage push` is told.
//! - [`attest`]: what is said about an image besides its bytes — SBOMs, provenance, signatures.
//! - [`registry`]: the OCI distribution API — the connection and one repository's endpoints,
//!   shared by push and pull.
//! - [`read`]: existing images (base images, merge inputs), read and checked.
//! - [`image`]: what an image is — layering, plan, config, platform, reference.
//! - [`layer`]: layer tarballs, deterministic, from store paths and trees.
//! - [`mod@format`]: byte formats — digest, NAR, Nix's exported closure, compression, tar
//!   blocks, OCI documents, chunks.
//! - [`error`] is the one error type; [`cores`] is how many cores the work takes.
#![deny(missing_docs)]

pub mod attest;
pub mod cores;
pub mod derivation;
pub mod error;
pub mod format;
pub mod functions;
pub mod image;
pub mod layer;
pub mod read;
pub mod registry;
pub mod script;
pub mod write;

pub use error::{Error, Result};

/// The version of stowage, as `builtins.stowage.version` and `stowage --version` report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

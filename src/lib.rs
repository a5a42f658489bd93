//! stowage builds container images (Docker / OCI) from the Nix store.
//!
//! This crate is the one Rust core behind three entry points: the Nix plugin (`libstowage.so`,
//! which offers `builtins.stowage`), the `stowage` command line, and this library API.
//!
//! # Overview
//! - [`goarch`] maps Nix system names to the GOARCH names image configs use.
//! - [`nss`] renders and validates the `etc/passwd` / `etc/group` of `fakeNss`.
//! - [`nar`] serialises a small file tree as a Nix archive, so the plugin can add it to the store
//!   from the evaluator.
//! - [`args`] reads a builtin's arguments (handed over as JSON) with errors that name them.
//! - [`error`] is the one error type.
//!
//! The plugin's side of the bridge lives in `ffi` (only with the `plugin` feature).
#![deny(missing_docs)]

pub mod args;
pub mod error;
#[cfg(feature = "plugin")]
mod ffi;
pub mod goarch;
pub mod nar;
pub mod nss;

pub use error::{Error, Result};

/// The version of stowage, as `builtins.stowage.version` and `stowage --version` report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

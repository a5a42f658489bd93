//! stowage builds container images (Docker / OCI) from the Nix store.
//!
//! This crate is the one Rust core behind three entry points: the Nix plugin (`libstowage.so`,
//! which offers `builtins.stowage`), the `stowage` command line, and this library API.
//!
//! # Overview
//! - [`layered_image`]: `streamLayeredImage`'s arguments (checked at evaluation) and the image
//!   plan (made at build time) — the entry to everything below.
//! - [`plan`] decides which store paths share a layer; [`contents`] merges the image's contents
//!   into the customisation layer; [`layer`] writes a layer tarball deterministically.
//! - [`image_config`] builds the image config (`Env` without duplicates); [`reference`] checks
//!   image names and tags; [`goarch`] maps Nix systems to GOARCH names.
//! - [`image`] is a plan (planned images), [`archive`] writes it as a docker-archive, verifying
//!   every layer's [`digest`] on the way.
//! - [`image_reader`] reads existing images — stowage stream scripts and image archives — for
//!   `fromImage` and for [`merge`] (`mergeImages`); [`layer_entry`] is the one set of rules their
//!   layers' entries are held to.
//! - [`customise`] is the derivation that runs an image's scripts (`extraCommands`,
//!   `fakeRootCommands`, `runAsRoot`) in a root made by [`image_root`] (base layers unpacked,
//!   `copyToRoot` copied); [`script`] confines them (namespaces, chroot) and [`seccomp`] records
//!   the owners a fake root sets; [`tree`] turns the root into layer entries; [`perms`] sets
//!   declared owners and modes.
//! - [`deliver`] sends an image file where `stowage push` is told — a registry, a new image
//!   file, Docker ([`docker_daemon`]), podman — and keeps the copy scripts' format; [`push`]
//!   parses those destinations and pushes images to registries, asking its
//!   [`blob_cache`] for the compressed digests of layers; [`pull`] is
//!   `pullImage`'s builder; both reach registries through [`registry`] (TLS, credentials,
//!   authentication), which holds every request to [`timeouts`]. [`index`] is `buildImageIndex`: one image for several platforms.
//! - [`nix_db`] writes the Nix database an image carries with `includeNixDB`.
//! - [`nss`] renders and validates `fakeNss`; [`nar`] serialises small trees as Nix archives,
//!   so the plugin can add them to the store from the evaluator.
//! - [`progress`] is the progress line on stderr while an image is streamed or written.
//! - [`checks`] is every library function's argument checks by name, run by the plugin while
//!   evaluating and by the builder before it writes anything (the only place in library mode);
//!   [`args`] reads a builtin's arguments (handed over as JSON) with errors that name them;
//!   [`error`] is the one error type.
#![deny(missing_docs)]

pub mod archive;
pub mod args;
pub mod blob_cache;
pub mod checks;
pub mod chunks;
pub mod compress;
pub mod contents;
pub mod cores;
pub mod customise;
pub mod deliver;
pub mod digest;
pub mod docker_daemon;
pub mod error;
pub mod goarch;
pub mod image;
pub mod image_config;
pub mod image_reader;
pub mod image_root;
pub mod index;
pub mod layer;
pub mod layer_entry;
pub mod layered_image;
pub mod merge;
pub mod nar;
pub mod nix_db;
pub mod nss;
pub mod perms;
pub mod plan;
pub mod progress;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod script;
pub mod seccomp;
pub mod timeouts;
pub mod tree;

pub use error::{Error, Result};

/// The version of stowage, as `builtins.stowage.version` and `stowage --version` report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

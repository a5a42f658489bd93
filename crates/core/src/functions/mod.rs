//! The library functions (`builtins.stowage.*`, and the Nix library without the plugin): for
//! each, its arguments — checked while evaluating (the plugin) and again by the builder (the
//! only place they run in library mode) — and what its derivation builds. One module per
//! function or group ([`layered`], [`layer`], [`customise`], [`merge`], [`index`], [`pull`], [`fake_nss`]);
//! what the image functions share is [`image`]; a builtin's arguments and outputs are read
//! through [`args`]; [`call`] checks a call by the function's name.
//!
//! The Nix library hands each image derivation the arguments as given (`arguments`) and the name
//! of the public function (`function`), so the builder checks them exactly as the plugin did:
//! derivations are the same in both modes, and so are the images.

pub mod args;
pub mod call;
pub mod customise;
pub mod fake_nss;
pub mod image;
pub mod index;
pub mod layer;
pub mod layered;
pub mod merge;
pub mod pull;

//! The closure Nix exports to a build (`exportReferencesGraph`, with structured attributes):
//! each store path with its NAR size, NAR hash, content address and references
//! ([`ClosureEntry`]), and the part of it that layering and the image's Nix database take
//! ([`PathInfo`]).

use serde::Deserialize;
use serde_json::Value;

/// One store path of the closure, as Nix's `exportReferencesGraph` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    /// The store path.
    pub path: String,
    /// The size of its NAR serialisation: a good measure of its size in a layer.
    pub nar_size: u64,
    /// The store paths it refers to (possibly itself).
    pub references: Vec<String>,
}

/// One path of an exported closure.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClosureEntry {
    /// The store path.
    pub path: String,
    /// Its NAR size.
    pub nar_size: u64,
    /// Its NAR hash, as Nix writes it (`sha256:…`, or SRI `sha256-…`).
    #[serde(default)]
    pub nar_hash: Option<String>,
    /// Its content address, if it has one (a string, as Nix writes it).
    #[serde(default)]
    pub ca: Option<Value>,
    /// What it refers to.
    #[serde(default)]
    pub references: Vec<String>,
}

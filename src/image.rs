//! A fully planned image: everything the streamer needs to write it, with every layer's digest
//! and size already known. The builder writes it once; streaming replays it.

use crate::digest::Digest;
use crate::layer::{LayerSource, Ownership};
use serde::{Deserialize, Serialize};

/// A planned image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSpec {
    /// The store root the layers' paths live under.
    pub store_dir: String,
    /// `name:tag` references the image is loaded under.
    pub repo_tags: Vec<String>,
    /// Owner and mtime of every layer entry.
    pub owner: Ownership,
    /// The layers, bottom first.
    pub layers: Vec<PlannedLayer>,
    /// The image config, `rootfs.diff_ids` included.
    pub config: serde_json::Value,
}

/// One layer: what it holds and what its tarball must hash to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedLayer {
    /// What the layer holds.
    pub source: LayerSource,
    /// sha256 of the uncompressed layer tarball (its diff_id).
    pub digest: Digest,
    /// Size of the uncompressed layer tarball.
    pub size: u64,
}

//! A plan: one or more fully planned images, with everything the streamer needs to write them —
//! every layer's source and size, its digest or what stands in for it until it is written
//! ([`LayerId`]), every config's exact bytes. The builder writes it
//! once (as a stream script: a `#!` line running `stowage stream`, then the plan as JSON);
//! streaming replays it.

use crate::cores::map_parallel;
use crate::format::compress::Compression;
use crate::format::digest::Digest;
use crate::format::oci::ImageConfig;
use crate::layer::tarball::{layer_digest, StoreLayer};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The argument after the builder's path on a stream script's first line.
pub const STREAM_SUBCOMMAND: &str = "stream";

/// What a stream writes: one archive holding these images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Modification time of the archive's own entries (layer files, configs, manifest).
    pub mtime: u64,
    /// How the images are laid out.
    #[serde(default, skip_serializing_if = "Format::is_default")]
    pub format: Format,
    /// For a multi-platform image (`buildImageIndex`): its `name:tag`. The images are then one
    /// image for several platforms, written as an OCI image index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// The images, in manifest order.
    pub images: Vec<ImageSpec>,
}

/// How an image file lays out its images.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `docker save`'s tarball: `manifest.json`, configs, `<diff_id>/layer.tar`.
    #[default]
    DockerArchive,
    /// An OCI image layout as a tarball: `oci-layout`, `index.json`, `blobs/sha256/…`.
    OciArchive,
    /// An OCI image layout as a folder.
    OciDir,
}

impl Format {
    /// The names the `format` argument takes.
    pub const NAMES: &'static str = "\"docker-archive\", \"oci-archive\" or \"oci-dir\"";

    /// The format named `name` (as the `format` argument gives it).
    pub fn from_name(name: &str) -> Result<Format> {
        serde_json::from_value(serde_json::Value::String(name.into()))
            .map_err(|_| Error::argument("format", format!("is {name:?}; it must be {}", Format::NAMES)))
    }

    /// Whether this is the default format (docker-archive).
    pub fn is_default(&self) -> bool {
        *self == Format::DockerArchive
    }
}

/// One planned image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageSpec {
    /// `name:tag` references the image is loaded under.
    pub repo_tags: Vec<String>,
    /// The layers, bottom first.
    pub layers: Vec<PlannedLayer>,
    /// The image config, exactly as written: its sha256 is the image ID, so a config read from
    /// another archive is kept byte for byte.
    pub config: String,
    /// Annotations of its manifest (an OCI layout's, a registry's; a docker-archive has none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageSpec {
    /// The config with the digests `learnt` (by inputs digest) of its pending layers in place of
    /// their inputs digests: byte for byte the config the plan holds otherwise.
    pub fn config_with(&self, learnt: &BTreeMap<Digest, Digest>) -> String {
        let mut config = self.config.clone();
        for layer in &self.layers {
            if let (LayerId::Inputs(inputs), Some(digest)) = (layer.id, learnt.get(&layer.id())) {
                config = config.replace(&inputs.to_string(), &digest.to_string());
            }
        }
        config
    }
}

/// One layer: where its bytes come from, their size, and their digest once it is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedLayer {
    /// Where the layer's bytes come from.
    pub source: LayerSource,
    /// Its digest, or what stands in for it.
    #[serde(flatten)]
    pub id: LayerId,
    /// Size of the uncompressed layer tarball.
    pub size: u64,
}

/// What a planned layer is known by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerId {
    /// sha256 of the uncompressed layer tarball (its diff_id).
    Digest(Digest),
    /// A layer of the image's own, hashed as it is written rather than when it is planned (so
    /// that a plan reads no file contents, and a rebuild costs what changed): the digest of
    /// what its bytes are made of ([`StoreLayer::inputs_digest`]). Until the layer's digest is
    /// learnt, this stands in for it in the image config's `diff_ids`.
    Inputs(Digest),
}

impl PlannedLayer {
    /// The layer's diff_id, if known.
    pub fn digest(&self) -> Option<Digest> {
        match self.id {
            LayerId::Digest(digest) => Some(digest),
            LayerId::Inputs(_) => None,
        }
    }

    /// What the layer is known by: its diff_id, or its inputs digest. Equal ids, equal bytes.
    pub fn id(&self) -> Digest {
        match self.id {
            LayerId::Digest(digest) | LayerId::Inputs(digest) => digest,
        }
    }
}

/// Where a layer's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LayerSource {
    /// Generated from store paths and synthetic entries.
    Store(StoreLayer),
    /// Copied from an existing image archive (a base image, or an image being merged).
    Archive(ArchiveLayer),
}

/// A layer stored in an image archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveLayer {
    /// The archive file.
    pub archive: String,
    /// The entry holding the layer, for messages.
    pub entry: String,
    /// Where the entry's data starts in the (decompressed) archive.
    pub offset: u64,
    /// The entry's size.
    pub stored_size: u64,
    /// How the entry's data is compressed (diff_ids are of the uncompressed tarball).
    pub compression: Compression,
}

impl ArchiveLayer {
    /// An error about this layer.
    pub fn error(&self, problem: impl std::fmt::Display) -> Error {
        Error::BadImage {
            path: self.archive.clone().into(),
            problem: format!("layer {}: {problem}", self.entry),
        }
    }
}

impl Plan {
    /// The stream script for this plan, run by the builder at `builder`.
    pub fn to_script(&self, builder: &Path) -> String {
        let plan = serde_json::to_string(self).expect("a plan serialises");
        format!("#!{} {STREAM_SUBCOMMAND}\n{plan}\n", builder.display())
    }

    /// The plan in `text` (a stream script, or the plan's JSON alone), or `None` if `text` is
    /// not a stream script or plan.
    pub fn parse(text: &str) -> Option<std::result::Result<Plan, serde_json::Error>> {
        let json = match text.strip_prefix("#!") {
            Some(script) => {
                let (shebang, rest) = script.split_once('\n')?;
                shebang.ends_with(&format!(" {STREAM_SUBCOMMAND}")).then_some(rest)?
            }
            None => text,
        };
        json.trim_start().starts_with('{').then(|| serde_json::from_str(json))
    }

    /// The layers of all the images, each once: a layer used more than once (by several images,
    /// or twice in one) is stored once in an archive.
    pub fn unique_layers(&self) -> Vec<&PlannedLayer> {
        let mut seen = std::collections::BTreeSet::new();
        self.images.iter().flat_map(|image| &image.layers).filter(|layer| seen.insert(layer.id())).collect()
    }

    /// Whether some layer's digest is learnt only as it is written.
    pub fn has_pending_layers(&self) -> bool {
        self.images.iter().flat_map(|image| &image.layers).any(|layer| layer.digest().is_none())
    }

    /// Learns the digest of every layer that has none by hashing it (side by side, on up to
    /// `threads` threads), for what must name layers by digest before writing them: an OCI
    /// layout's blobs.
    pub fn resolve(&mut self, threads: usize) -> Result<()> {
        // (with their positions among the archive's layers, for errors)
        let pending: Vec<(usize, &PlannedLayer)> = self
            .unique_layers()
            .into_iter()
            .enumerate()
            .filter(|(_, layer)| layer.digest().is_none())
            .collect();
        let hashed = map_parallel(&pending, threads, |(_, layer)| match &layer.source {
            LayerSource::Store(source) => layer_digest(source),
            LayerSource::Archive(source) => Err(source.error("has no digest in the plan")),
        });
        let mut learnt = BTreeMap::new();
        for (&(index, layer), hashed) in pending.iter().zip(hashed) {
            let (digest, size) = hashed?;
            if size != layer.size {
                return Err(Error::LayerMismatch {
                    index,
                    expected: None,
                    found: Some(digest),
                    expected_size: layer.size,
                    found_size: size,
                });
            }
            learnt.insert(layer.id(), digest);
        }
        self.learn(&learnt);
        Ok(())
    }

    /// Puts the digests `learnt` (by inputs digest) into the layers and the image configs.
    pub fn learn(&mut self, learnt: &BTreeMap<Digest, Digest>) {
        for image in &mut self.images {
            image.config = image.config_with(learnt);
            for layer in &mut image.layers {
                if let Some(&digest) = learnt.get(&layer.id()) {
                    layer.id = LayerId::Digest(digest);
                }
            }
        }
    }

    /// The plan in the stream script (or plan) at `path`.
    pub fn read(path: &Path) -> Result<Plan> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let not_a_plan = |why: String| Error::BadImage { path: path.into(), problem: why };
        match Plan::parse(&text) {
            Some(plan) => plan.map_err(|e| not_a_plan(format!("not a stowage image plan: {e}"))),
            None => Err(not_a_plan("not a stowage stream script".into())),
        }
    }
}
/// The platform the image config `config` names (`linux/arm64/v8`), or `unknown`.
pub fn platform_of(config: &str) -> String {
    ImageConfig::platform_of(config).map_or_else(|| "unknown".into(), |platform| platform.to_string())
}

/// Checks that no two of `images` are for the same platform; `what` names image `i` in errors.
pub fn check_platforms(images: &[ImageSpec], what: impl Fn(usize) -> String) -> Result<()> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, image) in images.iter().enumerate() {
        let platform = platform_of(&image.config);
        if let Some(&other) = seen.get(&platform) {
            return Err(Error::argument(
                "images",
                format!(
                    "has two images for {platform}: {} and {}; an index has one per platform",
                    what(other),
                    what(i)
                ),
            ));
        }
        seen.insert(platform, i);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::layer::tarball::Ownership;
    use serde_json::json;

    /// A plan of one image, `tag`, whose one layer holds `path`.
    pub(crate) fn plan(store: &Path, path: &str, tag: &str) -> Plan {
        let owner = Ownership { uid: 0, gid: 0, uname: "root".into(), gname: "root".into(), mtime: 1 };
        let source = StoreLayer {
            store_dir: store.to_string_lossy().into_owned(),
            owner,
            store_paths: vec![path.into()],
            synthetic: vec![],
            tree: None,
            perms: vec![],
        };
        let (digest, size) = layer_digest(&source).unwrap();
        let config = json!({ "architecture": "amd64", "os": "linux", "rootfs": { "type": "layers", "diff_ids": [digest.to_string()] } });
        let image = ImageSpec {
            annotations: BTreeMap::new(),
            repo_tags: vec![tag.into()],
            layers: vec![PlannedLayer {
                source: LayerSource::Store(source),
                id: LayerId::Digest(digest),
                size,
            }],
            config: config.to_string(),
        };
        Plan { mtime: 1, format: Default::default(), index: None, images: vec![image] }
    }

    /// [`plan`], its layer known by a stand-in for its digest until it is written, as a plan of
    /// the image's own layers is.
    pub(crate) fn pending_plan(store: &Path, path: &str, tag: &str) -> Plan {
        let mut plan = plan(store, path, tag);
        let image = &mut plan.images[0];
        let digest = image.layers[0].id();
        let inputs = Digest::of(format!("the inputs of {path}").as_bytes());
        image.layers[0].id = LayerId::Inputs(inputs);
        image.config = image.config.replace(&digest.to_string(), &inputs.to_string());
        plan
    }
}

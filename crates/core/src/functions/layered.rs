//! `streamLayeredImage` / `buildLayeredImage`, and `buildImage` at build time: the image plan,
//! made from the arguments (checked again, see [`crate::functions::image`]) and the closure Nix
//! exports — the layers planned and sized, and an [`ImageSpec`] written that streaming replays.

use crate::cores::{cores, map_parallel};
use crate::format::closure::{ClosureEntry, PathInfo};
use crate::format::digest::Digest;
use crate::format::oci::to_json;
use crate::functions::args::Outputs;
use crate::functions::call::Call;
use crate::functions::image::{read_base, resolve_time, LAYER_FILE, MAX_LAYERS};
use crate::functions::layer::read_layers;
use crate::image::config::{image_config, inherit_runtime, normalise_runtime_config, ImageMeta};
use crate::image::layering::plan_layers;
use crate::image::plan::{ImageSpec, LayerId, LayerSource, Plan, PlannedLayer};
use crate::layer::contents::merge_contents;
use crate::layer::nix_db;
use crate::layer::tarball::{layer_digest, layer_size, Ownership, StoreLayer};
use crate::{Error, Result};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use time::OffsetDateTime;

/// What the build gets: Nix's structured attributes.
#[derive(Debug, Deserialize)]
pub struct BuildInput {
    /// The call that made the derivation (its arguments are checked before anything is planned).
    #[serde(flatten)]
    pub call: Call,
    /// The contents, as store paths.
    #[serde(default)]
    pub contents: Vec<String>,
    /// The runtime config, as given.
    #[serde(default = "empty_object")]
    pub config: Value,
    /// The base image file (`fromImage`), if any.
    #[serde(rename = "fromImage", default)]
    pub from_image: Option<String>,
    /// The customisation derivation's output, when scripts made the customisation layer.
    #[serde(default)]
    pub customisation: Option<String>,
    /// The output listing the store paths `config` mentions, when it mentions any.
    #[serde(rename = "configReferences", default)]
    pub config_references: Option<String>,
    /// The closure Nix exported (`exportReferencesGraph.closure`).
    #[serde(default)]
    pub closure: Vec<ClosureEntry>,
    /// The derivation's outputs.
    pub outputs: Outputs,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// Plans the image `input` describes: layers, their sizes, the config and the tags.
/// `warn` hears about clashes between contents.
pub fn plan_image(input: &BuildInput, now: OffsetDateTime, mut warn: impl FnMut(&str)) -> Result<Plan> {
    let image = &input.call.image()?;
    // Without a tag, the stream derivation's own hash is the tag: stable for the same inputs,
    // and known to the evaluator too (`imageTag`), with no cycle.
    let tag = match &image.tag {
        Some(tag) => tag.clone(),
        None => Path::new(&input.outputs.out)
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split('-').next())
            .ok_or_else(|| Error::argument("outputs.out", "is not a store path"))?
            .to_owned(),
    };
    let (created, _) = resolve_time("created", &image.created, now)?;
    let (_, mtime) = resolve_time("mtime", &image.mtime, now)?;
    let owner = Ownership {
        uid: image.uid,
        gid: image.gid,
        uname: image.uname.clone(),
        gname: image.gname.clone(),
        mtime,
    };
    let base = match &input.from_image {
        Some(path) => Some(read_base(Path::new(path), image)?),
        None => None,
    };
    let base_layers = base.as_ref().map_or(0, |(spec, _)| spec.layers.len() as u64);
    if image.single_layer && base_layers + 1 > MAX_LAYERS {
        return Err(Error::argument(
            "fromImage",
            format!("has {base_layers} layers: with this image's, that is more than the {MAX_LAYERS} an image may have"),
        ));
    }

    // Layers made by buildLayer come as they were planned, their paths in no other layer.
    let given = read_layers(&image.layers)?;
    // The customisation output, the config's references and the layer derivations are not
    // themselves in the image: what they refer to is.
    let in_image = |p: &&String| {
        Some(*p) != input.customisation.as_ref()
            && Some(*p) != input.config_references.as_ref()
            && !given.outputs.contains(*p)
    };
    let closure: Vec<PathInfo> = if image.include_store_paths {
        input
            .closure
            .iter()
            .filter(|e| in_image(&&e.path))
            .map(|e| PathInfo {
                path: e.path.clone(),
                nar_size: e.nar_size,
                references: e.references.iter().filter(in_image).cloned().collect(),
            })
            .collect()
    } else {
        Vec::new()
    };
    // in the image's own layer: the customisation layer, or buildImage's one layer
    let mut nix_db =
        if image.include_nix_db { nix_db::entries(&closure, &input.closure, mtime)? } else { Vec::new() };
    let store_layer = |store_paths, synthetic| {
        StoreLayer::new(&input.call.store_dir, &owner, &image.perms, store_paths, synthetic)
    };
    // what the image's own store layers hold: the closure but for the given layers' paths
    let own: Vec<PathInfo> = closure
        .iter()
        .filter(|p| !given.store_paths.contains(&p.path))
        .map(|p| PathInfo {
            references: p.references.iter().filter(|r| !given.store_paths.contains(*r)).cloned().collect(),
            ..p.clone()
        })
        .collect();
    let mut sources: Vec<(StoreLayer, String)> = if image.single_layer {
        // one layer: what the customisation made, and the closure of what it refers to
        let tree =
            input.customisation.as_ref().ok_or_else(|| Error::argument("customisation", "is required"))?;
        let mut paths: Vec<String> = closure.iter().map(|p| p.path.clone()).collect();
        paths.sort();
        let layer = StoreLayer {
            tree: Some(format!("{tree}/{LAYER_FILE}")),
            ..store_layer(paths, std::mem::take(&mut nix_db))
        };
        vec![(layer, "buildImage layer".into())]
    } else {
        let budget = store_budget(image.max_layers, base_layers, given.layers.len() as u64, !own.is_empty())?;
        let planned = if own.is_empty() { Vec::new() } else { plan_layers(&own, budget as usize) };
        planned
            .into_iter()
            .map(|paths| {
                let comment = format!("store paths: {}", paths.join(" "));
                (store_layer(paths, vec![]), comment)
            })
            .collect()
    };
    let customisation = match &input.customisation {
        _ if image.single_layer => None,
        // the scripts' output holds the merged contents too
        Some(out) => {
            Some(StoreLayer { tree: Some(format!("{out}/{LAYER_FILE}")), ..store_layer(vec![], nix_db) })
        }
        None => {
            let (mut synthetic, clashes) = merge_contents(&input.contents)?;
            for clash in &clashes {
                warn(&format!("contents clash at {clash}"));
            }
            nix_db::add_entries(&mut synthetic, nix_db)?;
            Some(store_layer(vec![], synthetic))
        }
    };
    sources.extend(customisation.map(|layer| (layer, "customisation layer".to_string())));

    let mut layers = base.as_ref().map(|(spec, _)| spec.layers.clone()).unwrap_or_default();
    let mut comments = Vec::new();
    for layer in given.layers {
        // (not the layer derivation's output: the image does not hold it)
        comments.push(match &layer.source {
            LayerSource::Store(source) if !source.store_paths.is_empty() => {
                format!("buildLayer, store paths: {}", source.store_paths.join(" "))
            }
            _ => "buildLayer".into(),
        });
        layers.push(layer);
    }
    // The image's own layers are sized from their files' metadata, not read: each is hashed
    // while it is written (streamed, archived or pushed), so a rebuild after one path changed
    // reads nothing of the rest. A layer is named by its inputs (its store paths' NAR hashes,
    // which Nix exported) until then; one whose inputs are not all known is hashed now.
    let nar_hashes: BTreeMap<&str, String> = input
        .closure
        .iter()
        .filter_map(|e| {
            Some((e.path.as_str(), Digest(nix_db::sha256_of(e.nar_hash.as_deref()?).ok()?).hex()))
        })
        .collect();
    let planned = map_parallel(&sources, cores()?, |(source, _)| {
        match source.inputs_digest(|path| nar_hashes.get(path).cloned()) {
            Some(inputs) => Ok((LayerId::Inputs(inputs), layer_size(source)?)),
            None => layer_digest(source).map(|(digest, size)| (LayerId::Digest(digest), size)),
        }
    });
    for ((source, comment), planned) in sources.into_iter().zip(planned) {
        let (id, size) = planned?;
        layers.push(PlannedLayer { source: LayerSource::Store(source), id, size });
        comments.push(comment);
    }
    let mut runtime = normalise_runtime_config(&input.config)?;
    if let Some((_, base_config)) = &base {
        runtime = inherit_runtime(base_config, runtime)?;
    }
    let meta =
        ImageMeta { architecture: image.architecture.clone(), variant: image.variant.clone(), created };
    let diff_ids: Vec<Digest> = layers.iter().map(PlannedLayer::id).collect();
    let mut config = image_config(&meta, &runtime, &diff_ids, &comments);
    if let Some(base_history) = base.as_ref().and_then(|(_, c)| c.history.as_ref()) {
        let ours = config.history.as_mut().expect("image_config writes a history");
        ours.splice(0..0, base_history.iter().cloned());
    }
    let spec = ImageSpec {
        repo_tags: vec![format!("{}:{tag}", image.name)],
        layers,
        config: to_json(&config),
        annotations: image.annotations.clone(),
    };
    Ok(Plan { mtime, format: image.format, index: None, images: vec![spec] })
}

/// How many store layers an image of at most `max_layers` layers has room for, next to
/// `base_layers`, `given` layers (buildLayer's) and the customisation layer: at least one when
/// `needed` (there are store paths left for them), or an error that says what to do.
fn store_budget(max_layers: u64, base_layers: u64, given: u64, needed: bool) -> Result<u64> {
    let least = u64::from(needed);
    if let Some(budget) = max_layers.checked_sub(1 + base_layers + given).filter(|&b| b >= least) {
        return Ok(budget);
    }
    let needed = base_layers + given + 1 + least;
    let fix = if needed <= MAX_LAYERS {
        format!("set maxLayers to at least {needed}")
    } else {
        format!("an image may have at most {MAX_LAYERS}, so this base cannot be built on")
    };
    let below = match (base_layers, given) {
        (base, 0) => format!("the base image (fromImage) has {base} layers"),
        (0, given) => format!("the layers given (`layers`) are {given}"),
        (base, given) => {
            format!("the base image (fromImage) has {base} layers and those given (`layers`) {given}")
        }
    };
    let left = if least == 1 { "that leaves no layer for store paths" } else { "that is too many" };
    Err(Error::argument(
        "maxLayers",
        format!("is {max_layers}, but {below}: with the customisation layer, {left}; {fix}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_takes_from_the_layer_budget() {
        assert_eq!(store_budget(100, 0, 0, true).unwrap(), 99);
        assert_eq!(store_budget(10, 8, 0, true).unwrap(), 1);
        assert_eq!(store_budget(10, 8, 1, false).unwrap(), 0);
        let err = store_budget(10, 9, 0, true).unwrap_err().to_string();
        assert!(err.ends_with("has 9 layers: with the customisation layer, that leaves no layer for store paths; set maxLayers to at least 11"), "{err}");
        let err = store_budget(125, 124, 0, true).unwrap_err().to_string();
        assert!(err.ends_with("an image may have at most 125, so this base cannot be built on"), "{err}");
        let err = store_budget(10, 2, 8, false).unwrap_err().to_string();
        assert_eq!(err, "argument 'maxLayers' is 10, but the base image (fromImage) has 2 layers and those given (`layers`) 8: with the customisation layer, that is too many; set maxLayers to at least 11");
    }
}

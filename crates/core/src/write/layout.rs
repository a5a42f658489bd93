//! Where an image file puts things, for the two layouts: a docker-archive (`docker save`'s:
//! `<n>/layer.tar`, the configs, `manifest.json`) and an OCI image layout (`oci-layout`,
//! `blobs/sha256/…`, `index.json`). [`crate::write::archive`] writes the layers between the
//! [`head`] and the [`tail`] built here.

use crate::format::digest::Digest;
use crate::format::oci::{
    blob_name, to_json, Descriptor, DockerManifestEntry, ImageConfig, Index, Manifest, MediaType, OCI_LAYOUT,
};
use crate::format::tar_blocks::{self, directory_header, END_OF_ARCHIVE};
use crate::image::plan::{Format, Plan, PlannedLayer};
use crate::Result;
use std::collections::{BTreeMap, BTreeSet};

/// What comes before the layers: an OCI layout's `oci-layout` and its blob folders; nothing in
/// a docker-archive.
pub fn head(plan: &Plan) -> Result<Vec<u8>> {
    let mut head = Vec::new();
    if plan.format != Format::DockerArchive {
        head.extend(tar_blocks::entry("oci-layout", OCI_LAYOUT.as_bytes(), plan.mtime)?);
        head.extend(directory_header("blobs/", plan.mtime)?);
        head.extend(directory_header("blobs/sha256/", plan.mtime)?);
    }
    Ok(head)
}

/// The entry that holds each layer (by [`PlannedLayer::id`]): in a docker-archive
/// `<n>/layer.tar`, its position among the archive's layers — the archive is written in one
/// pass, and a layer's digest may be learnt only as it is written, so every layer is named
/// alike, and the bytes do not depend on which digests the plan knew; in an OCI layout, its blob.
pub fn layer_files(plan: &Plan) -> BTreeMap<Digest, String> {
    let name = |position: usize, layer: &PlannedLayer| match plan.format {
        Format::DockerArchive => format!("{position}/layer.tar"),
        Format::OciArchive | Format::OciDir => blob_name(&layer.id()),
    };
    plan.unique_layers()
        .into_iter()
        .enumerate()
        .map(|(position, layer)| (layer.id(), name(position, layer)))
        .collect()
}

/// What comes after the layers, which are in `files` ([`layer_files`]) and whose digests not in
/// the plan are `learnt` (by inputs digest): the documents of the layout, and the end of the
/// archive. An OCI layout's layers all have their digests in the plan (its blob names).
pub fn tail(
    plan: &Plan,
    files: &BTreeMap<Digest, String>,
    learnt: &BTreeMap<Digest, Digest>,
) -> Result<Vec<u8>> {
    let mut tail = if plan.format == Format::DockerArchive {
        docker_tail(plan, files, learnt)?
    } else {
        oci_tail(plan)?
    };
    tail.extend_from_slice(&END_OF_ARCHIVE);
    Ok(tail)
}

/// The configs and `manifest.json` of a docker-archive.
fn docker_tail(
    plan: &Plan,
    files: &BTreeMap<Digest, String>,
    learnt: &BTreeMap<Digest, Digest>,
) -> Result<Vec<u8>> {
    let mut configs_written = BTreeSet::new();
    let mut manifest = Vec::new();
    let mut tail = Vec::new();
    for image in &plan.images {
        let config = image.config_with(learnt);
        let config_file = format!("{}.json", Digest::of(config.as_bytes()).hex());
        if configs_written.insert(config_file.clone()) {
            tail.extend(tar_blocks::entry(&config_file, config.as_bytes(), plan.mtime)?);
        }
        let layers = image.layers.iter().map(|l| files[&l.id()].clone()).collect();
        manifest.push(DockerManifestEntry {
            config: config_file,
            layers,
            repo_tags: Some(image.repo_tags.clone()),
        });
    }
    tail.extend(tar_blocks::entry("manifest.json", to_json(&manifest).as_bytes(), plan.mtime)?);
    Ok(tail)
}

/// The config and manifest blobs of an OCI layout, and `index.json`: a descriptor per
/// `name:tag`, with the platform its config names.
fn oci_tail(plan: &Plan) -> Result<Vec<u8>> {
    let mut blobs_written = BTreeSet::new();
    let mut tail = Vec::new();
    let mut blob = |tail: &mut Vec<u8>, bytes: &[u8], media_type: MediaType| -> Result<Descriptor> {
        let digest = Digest::of(bytes);
        if blobs_written.insert(digest) {
            tail.extend(tar_blocks::entry(&blob_name(&digest), bytes, plan.mtime)?);
        }
        Ok(Descriptor::new(media_type, digest, bytes.len() as u64))
    };
    let mut descriptors = Vec::new();
    for image in &plan.images {
        let config = blob(&mut tail, image.config.as_bytes(), MediaType::OciConfig)?;
        let layers =
            image.layers.iter().map(|l| Descriptor::new(MediaType::OciLayer, l.id(), l.size)).collect();
        let manifest = Manifest::new(MediaType::OciManifest, config, layers).annotated(&image.annotations);
        let mut descriptor = blob(&mut tail, to_json(&manifest).as_bytes(), MediaType::OciManifest)?;
        descriptor.platform = ImageConfig::platform_of(&image.config);
        if plan.index.is_some() {
            descriptors.push(descriptor);
            continue;
        }
        for name in &image.repo_tags {
            descriptors.push(descriptor.clone().named(name));
        }
    }
    // A multi-platform image: its index is a blob, which index.json names.
    if let Some(name) = &plan.index {
        let index = Index::new(MediaType::OciIndex, descriptors);
        let descriptor = blob(&mut tail, to_json(&index).as_bytes(), MediaType::OciIndex)?;
        descriptors = vec![descriptor.named(name)];
    }
    let index = Index::new(MediaType::OciIndex, descriptors);
    tail.extend(tar_blocks::entry("index.json", to_json(&index).as_bytes(), plan.mtime)?);
    Ok(tail)
}

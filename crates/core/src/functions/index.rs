//! `buildImageIndex`: one multi-platform image — an OCI image index of images built for
//! different platforms — written as an OCI image layout and pushed as a manifest list.
//!
//! The images are read as `mergeImages` reads its inputs (stowage images and other archives,
//! each holding one image); the platform of each is its config's `os`, `architecture` and
//! `variant`, and no two may share one.

use crate::functions::args::{check_in_store, Args};
use crate::image::plan::{check_platforms, Format, ImageSpec, Plan};
use crate::image::reference::{check_tag, ImageName};
use crate::read::archive::ArchiveReader;
use crate::read::{read_images, verify};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The checked arguments of `buildImageIndex`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexArgs {
    /// The image's name (lower-cased).
    pub name: String,
    /// Its tag.
    pub tag: String,
    /// The name's last component, for derivation names.
    pub base_name: String,
    /// `oci-archive` or `oci-dir`.
    pub format: Format,
}

impl IndexArgs {
    /// Checks the arguments (`name`, `tag`, `images`, `format`; `compressor` is the Nix glue's)
    /// for a store at `store_dir`.
    pub fn from_nix(args_json: &str, store_dir: &str) -> Result<IndexArgs> {
        let args = Args::parse(args_json, &["name", "tag", "images", "format"])?;
        let name =
            ImageName::parse(&args.string("name")?.ok_or_else(|| Error::argument("name", "is required"))?)?;
        let tag = args.string("tag")?.unwrap_or_else(|| "latest".into());
        check_tag(&tag)?;
        let images = args.string_list("images")?;
        if images.is_empty() {
            return Err(Error::argument("images", "is empty; give an image for each platform"));
        }
        for (i, image) in images.iter().enumerate() {
            check_in_store(format!("images[{i}]"), image, store_dir)?;
        }
        let format = match args.string("format")? {
            None => Format::OciArchive,
            Some(f) => match Format::from_name(&f)? {
                Format::DockerArchive => return Err(Error::argument(
                    "format",
                    "is \"docker-archive\", which holds no index: it must be \"oci-archive\" or \"oci-dir\"",
                )),
                other => other,
            },
        };
        Ok(IndexArgs { name: name.name, tag, base_name: name.base, format })
    }
}

/// The plan of the index `reference` (`name:tag`) over the images in the files `inputs` (the
/// `images` argument, each file holding one image).
pub fn plan_index(reference: &str, inputs: &[String], format: Format) -> Result<Plan> {
    let mut reader = ArchiveReader::default();
    let mut known = BTreeMap::new();
    let mut images = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let found = read_images(Path::new(input))?;
        let [one] = <[_; 1]>::try_from(found).map_err(|found: Vec<_>| {
            Error::argument(
                format!("images[{i}]"),
                format!("({input}) holds {} images; give one image per file", found.len()),
            )
        })?;
        let spec = verify(one, &mut reader, &mut known)?;
        images.push(ImageSpec { repo_tags: vec![reference.to_owned()], ..spec });
    }
    check_platforms(&images, |i| format!("images[{i}] ({})", inputs[i]))?;
    Ok(Plan { mtime: INDEX_MTIME, format, index: Some(reference.to_owned()), images })
}

/// The mtime of the layout's entries: dockerTools' default, one second after the epoch.
const INDEX_MTIME: u64 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let store = "/s/store";
        let ok =
            IndexArgs::from_nix(r#"{"name":"Team/App","images":["/s/store/a-x","/s/store/b-y"]}"#, store)
                .unwrap();
        assert_eq!(
            (ok.name.as_str(), ok.tag.as_str(), ok.base_name.as_str(), ok.format),
            ("team/app", "latest", "app", Format::OciArchive)
        );
        let err = |json: &str| IndexArgs::from_nix(json, store).unwrap_err().to_string();
        assert!(err(r#"{"name":"a","images":[]}"#).starts_with("argument 'images' is empty"));
        assert!(err(r#"{"name":"a","images":["/s/store/a"],"format":"docker-archive"}"#)
            .starts_with("argument 'format'"));
        assert!(err(r#"{"images":["/s/store/a"]}"#).starts_with("argument 'name' is required"));
        assert!(err(r#"{"name":"a","images":["/elsewhere/a"]}"#).starts_with("argument 'images[0]'"));
    }

    #[test]
    fn one_image_per_platform() {
        let image = |arch: &str, variant: Option<&str>| ImageSpec {
            repo_tags: vec![],
            layers: vec![],
            config: serde_json::json!({ "os": "linux", "architecture": arch, "variant": variant,
                "rootfs": { "type": "layers", "diff_ids": [] } })
            .to_string(),
            annotations: Default::default(),
        };
        let fine = [
            image("amd64", None),
            image("arm64", Some("v8")),
            image("arm", Some("v7")),
            image("arm", Some("v6")),
        ];
        check_platforms(&fine, |i| i.to_string()).unwrap();
        let twice = [image("amd64", None), image("arm64", None), image("amd64", None)];
        let err = check_platforms(&twice, |i| format!("images[{i}]")).unwrap_err().to_string();
        assert_eq!(err, "argument 'images' has two images for linux/amd64: images[0] and images[2]; an index has one per platform");
    }
}

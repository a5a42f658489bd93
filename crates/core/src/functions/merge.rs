//! `mergeImages`: several images — from stowage stream scripts and from image archives — as
//! one docker-archive that loads as all of them, with all their tags.
//!
//! A layer several images share is stored once (the archive writer stores each digest once),
//! and is read and verified once: the first copy verified stands in for every later one.

use crate::cores::cores;
use crate::format::digest::Digest;
use crate::functions::args::{check_in_store, Args};
use crate::image::plan::{Format, ImageSpec, Plan};
use crate::image::reference::parse_name_tag;
use crate::read::archive::ArchiveReader;
use crate::read::{read_images, verify};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The checked arguments of `mergeImages` / `streamMergedImages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeArgs {
    /// The name of the derivations.
    pub name: String,
    /// How the merged image file lays the images out.
    #[serde(default, skip_serializing_if = "Format::is_default")]
    pub format: Format,
}

impl MergeArgs {
    /// Checks the arguments (`args_json`: `images`, `name`; `compressor` is the Nix glue's)
    /// for a store at `store_dir`.
    pub fn from_nix(args_json: &str, store_dir: &str) -> Result<MergeArgs> {
        let args = Args::parse(args_json, &["images", "name", "format"])?;
        if !args.has("images") {
            return Err(Error::argument("images", "is required"));
        }
        let images = args.string_list("images")?;
        if images.is_empty() {
            return Err(Error::argument("images", "is empty; give at least one image"));
        }
        for (i, image) in images.iter().enumerate() {
            check_in_store(format!("images[{i}]"), image, store_dir)?;
        }
        let name = args.string("name")?.unwrap_or_else(|| DEFAULT_NAME.into());
        if name.is_empty() || name.contains('/') {
            return Err(Error::argument("name", format!("{name:?} is not a usable derivation name")));
        }
        let format = args.string("format")?.map(|f| Format::from_name(&f)).transpose()?.unwrap_or_default();
        Ok(MergeArgs { name, format })
    }
}

/// The default name of a merge's derivations.
const DEFAULT_NAME: &str = "merged-images";

/// The mtime of a merged archive's own entries: dockerTools' default, one second after the epoch.
const MERGED_MTIME: u64 = 1;

/// The plan of one image file in `format` holding every image in the files `inputs` (the
/// `images` argument, in order). An image found twice is kept once, with every tag it was given;
/// two different images with the same `name:tag` are an error naming both inputs.
pub fn merge_images(inputs: &[String], format: Format) -> Result<Plan> {
    let mut reader = ArchiveReader::default();
    let mut known = BTreeMap::new();
    let mut images: Vec<(ImageSpec, Digest)> = Vec::new();
    // name:tag → (image ID, which input it came from)
    let mut tagged: BTreeMap<String, (Digest, usize)> = BTreeMap::new();
    for (index, input) in inputs.iter().enumerate() {
        for found in read_images(Path::new(input))? {
            let spec = verify(found, &mut reader, &mut known)?;
            let id = Digest::of(spec.config.as_bytes());
            for tag in &spec.repo_tags {
                if format == Format::DockerArchive {
                    parse_name_tag("images", tag).map_err(|e| {
                        let problem = match e {
                            Error::Argument { problem, .. } => problem,
                            other => other.to_string(),
                        };
                        Error::argument(
                            "images",
                            format!(
                                "has an image tagged {tag:?} in images[{index}] ({input}), which a \
                                 docker-archive cannot carry: {problem}; give the image a name and a \
                                 tag, or merge into format = \"oci-archive\", whose index names images \
                                 freely"
                            ),
                        )
                    })?;
                }
                let differs = |other_id: Digest| -> Result<bool> {
                    if other_id == id {
                        return Ok(false);
                    }
                    // An image from a stream and the same image from an archive differ only in
                    // what stands for the stream's layer digests until they are hashed.
                    let Some((kept, _)) = images.iter().find(|(kept, _)| kept.repo_tags.contains(tag)) else {
                        return Ok(true);
                    };
                    Ok(image_id(kept)? != image_id(&spec)?)
                };
                match tagged.get(tag) {
                    Some(&(other_id, other)) if differs(other_id)? => {
                        return Err(Error::argument(
                            "images",
                            format!(
                                "has two different images tagged {tag}: in images[{other}] ({}) and in \
                                 images[{index}] ({input})",
                                inputs[other]
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => {
                        tagged.insert(tag.clone(), (id, index));
                    }
                }
            }
            let same =
                |(kept, kept_id): &&mut (ImageSpec, Digest)| *kept_id == id && kept.layers == spec.layers;
            match images.iter_mut().find(same) {
                Some((kept, _)) => {
                    let new: Vec<String> =
                        spec.repo_tags.into_iter().filter(|t| !kept.repo_tags.contains(t)).collect();
                    kept.repo_tags.extend(new);
                }
                None => images.push((spec, id)),
            }
        }
    }
    Ok(Plan {
        mtime: MERGED_MTIME,
        format,
        index: None,
        images: images.into_iter().map(|(spec, _)| spec).collect(),
    })
}

/// The image ID of `image` (its config's digest), its layers hashed if the plan has no digest
/// for them.
fn image_id(image: &ImageSpec) -> Result<Digest> {
    let mut plan =
        Plan { mtime: MERGED_MTIME, format: Format::DockerArchive, index: None, images: vec![image.clone()] };
    if plan.has_pending_layers() {
        plan.resolve(cores()?)?;
    }
    Ok(Digest::of(plan.images[0].config.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::archive::write_archive;

    /// A stream script of one image, `tag`, holding store path `name` (with `contents`).
    fn stream(dir: &Path, name: &str, contents: &str, tag: &str) -> String {
        let store = dir.join("store");
        std::fs::create_dir_all(store.join(name)).unwrap();
        std::fs::write(store.join(name).join("f"), contents).unwrap();
        let plan = crate::image::plan::tests::plan(&store, &store.join(name).to_string_lossy(), tag);
        let path = dir.join(format!("{name}.stream"));
        std::fs::write(&path, plan.to_script(Path::new("/bin/stowage"))).unwrap();
        path.to_string_lossy().into_owned()
    }

    /// [`stream`], the plan's layer without a digest (as an image's own layers are planned).
    fn pending_stream(dir: &Path, name: &str, contents: &str, tag: &str) -> String {
        let path = stream(dir, name, contents, tag);
        let store = dir.join("store");
        let plan = crate::image::plan::tests::pending_plan(&store, &store.join(name).to_string_lossy(), tag);
        std::fs::write(&path, plan.to_script(Path::new("/bin/stowage"))).unwrap();
        path
    }

    /// The archive a stream script would write.
    fn archive(dir: &Path, script: &str) -> String {
        let bytes = write_archive(
            &Plan::read(Path::new(script)).unwrap(),
            Vec::new(),
            Path::new("(test)"),
            2,
            |_, _, _| {},
        );
        let path = format!("{script}.tar");
        std::fs::write(&path, bytes.unwrap()).unwrap();
        assert!(Path::new(&path).starts_with(dir));
        path
    }

    #[test]
    fn shared_layers_once_every_tag_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = stream(dir.path(), "x-a", "same", "a:1");
        let a_archive = archive(dir.path(), &a);
        let b = stream(dir.path(), "x-b", "other", "b:1");
        // The same image as `a`, retagged: same layer, same config.
        let a2 = a.replace("x-a.stream", "x-a2.stream");
        std::fs::write(&a2, std::fs::read_to_string(&a).unwrap().replace("\"a:1\"", "\"a:2\"")).unwrap();
        let plan = merge_images(&[a_archive.clone(), b.clone(), a2], Format::DockerArchive).unwrap();
        let tags: Vec<&Vec<String>> = plan.images.iter().map(|i| &i.repo_tags).collect();
        assert_eq!(tags, [&vec!["a:1".to_string(), "a:2".into()], &vec!["b:1".to_string()]]);
        let bytes = write_archive(&plan, Vec::new(), Path::new("(test)"), 2, |_, _, _| {}).unwrap();
        let mut names: Vec<String> = tar::Archive::new(bytes.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 5, "{names:?}"); // 2 layers, 2 configs, the manifest
        assert_eq!(
            merge_images(&[a_archive.clone(), b.clone()], Format::DockerArchive).unwrap(),
            merge_images(&[a_archive, b], Format::DockerArchive).unwrap()
        );
    }

    #[test]
    fn an_image_and_its_archive_under_one_tag_are_one_image() {
        let dir = tempfile::tempdir().unwrap();
        let a = pending_stream(dir.path(), "x-a", "one", "app:1");
        let a_archive = archive(dir.path(), &a);
        let plan = merge_images(&[a.clone(), a_archive.clone()], Format::DockerArchive).unwrap();
        assert!(plan.images.iter().all(|i| i.repo_tags == ["app:1"]));
        // another image under that tag is still another image
        let b = pending_stream(dir.path(), "x-b", "two", "app:1");
        let err = merge_images(&[a_archive, b], Format::DockerArchive).unwrap_err().to_string();
        assert!(err.contains("has two different images tagged app:1"), "{err}");
    }

    #[test]
    fn arguments() {
        let args = |json: &str| MergeArgs::from_nix(json, "/store");
        assert_eq!(args(r#"{"images": ["/store/a", "/store/b/x.tar"]}"#).unwrap().name, "merged-images");
        for (json, needle) in [
            (r#"{}"#, "argument 'images' is required"),
            (r#"{"images": []}"#, "argument 'images' is empty"),
            (r#"{"images": ["/tmp/x"]}"#, "argument 'images[0]' \"/tmp/x\" is not a store path"),
            (r#"{"images": ["/store/a"], "name": "a/b"}"#, "argument 'name' \"a/b\" is not a usable"),
            (r#"{"images": "/store/a"}"#, "argument 'images' is a string while a list was expected"),
        ] {
            let err = args(json).unwrap_err().to_string();
            assert!(err.starts_with(needle), "{json}: {err}");
        }
    }

    #[test]
    fn one_tag_for_two_images_is_an_error_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let a = stream(dir.path(), "x-a", "one", "app:1");
        let b = stream(dir.path(), "x-b", "two", "app:1");
        let err = merge_images(&[a.clone(), b.clone()], Format::DockerArchive).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("argument 'images' has two different images tagged app:1: in images[0] ({a}) and in images[1] ({b})")
        );
    }
}

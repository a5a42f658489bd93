//! Reading existing images: the base of `fromImage` and the inputs of `mergeImages`.
//!
//! An image file is either a stowage stream script (its plan is read as is) or an image archive:
//! a tar, plain or compressed with gzip or zstd (told apart by their magic bytes, not by file
//! names), in one of two layouts:
//! - docker-archive (`docker save`): `manifest.json` lists each image's config file, RepoTags
//!   and layer files; Docker ≥ 25 writes OCI-style `blobs/sha256/…` names in it;
//! - OCI image layout: `index.json` lists manifests (named by the
//!   `org.opencontainers.image.ref.name` annotation), each naming a config and layer blobs.
//!
//! Reading an archive takes two passes. The first indexes it ([`archive`]): where every entry's
//! data starts, and the bytes of the small JSON documents (manifests, configs), capped so that a
//! hostile archive cannot exhaust memory. It checks that everything named is there, that names stay inside the archive and that
//! documents named by a digest have it. The second, [`verify`], reads the chosen image's layers
//! and checks each against its diff_id, and its entries against the rules of
//! [`crate::read::entry`]; streaming later copies them with [`ArchiveReader`] in one more pass.
//! Decompression, of the archive or of a layer, is bounded
//! ([`crate::format::compress::MAX_EXPANSION`]): a decompression bomb is an error, not a full
//! disk.

pub mod archive;
pub mod entry;

use crate::format::digest::{Digest, DigestReader};
use crate::format::oci::{self, blob_name, Descriptor, DockerManifestEntry, Document, ImageConfig};
use crate::image::plan::{ArchiveLayer, ImageSpec, LayerId, LayerSource, Plan, PlannedLayer};
use crate::read::archive::{index, normalise, open_archive, ArchiveReader, EntryInfo, METADATA_LIMIT};
use crate::read::entry::check_layer;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

/// The most image indexes an OCI layout may nest (a multi-platform image needs one).
const MAX_NESTED_INDEXES: usize = 16;

/// One image found in an image file, not yet verified.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundImage {
    /// `name:tag` references it carries (RepoTags, or the OCI ref name).
    pub repo_tags: Vec<String>,
    /// Its image config, byte for byte.
    pub config: String,
    /// Its layers, bottom first.
    pub layers: Vec<FoundLayer>,
    /// Its manifest's annotations, as a stowage plan gives them (those of an archive's
    /// manifests are not kept).
    pub annotations: BTreeMap<String, String>,
}

/// A layer of a [`FoundImage`].
#[derive(Debug, Clone, PartialEq)]
pub enum FoundLayer {
    /// A layer of a stowage plan: its digest was computed when the plan was built.
    Planned(PlannedLayer),
    /// A layer in an archive, and the diff_id its config claims for it.
    Unverified(ArchiveLayer, Digest),
}

impl FoundImage {
    /// The image config, parsed.
    pub fn config_document(&self) -> ImageConfig {
        serde_json::from_str(&self.config).expect("read_images checks every config")
    }
}

/// Reads every layer of `image` that is not known good, checks it against its diff_id and its
/// entries against the rules of [`crate::read::entry`], and returns the image ready to stream. A
/// layer whose digest is in `known` is not read again: the known one, with the same bytes, takes
/// its place; every layer verified here joins it.
pub fn verify(
    image: FoundImage,
    reader: &mut ArchiveReader,
    known: &mut BTreeMap<Digest, PlannedLayer>,
) -> Result<ImageSpec> {
    let layers = image
        .layers
        .into_iter()
        .map(|layer| match layer {
            FoundLayer::Planned(planned) => Ok(known.entry(planned.id()).or_insert(planned).clone()),
            FoundLayer::Unverified(_, diff_id) if known.contains_key(&diff_id) => Ok(known[&diff_id].clone()),
            FoundLayer::Unverified(layer, diff_id) => {
                // One pass: the entries are checked as the bytes go by to be hashed.
                let mut hashed = DigestReader::new(reader.layer(&layer)?);
                let checked = check_layer(&mut hashed);
                // what the check left: the blocks after the end of the tarball, or all that
                // follows an entry it refused
                io::copy(&mut hashed, &mut io::sink()).map_err(|e| layer.error(e))?;
                let (digest, size) = hashed.finish();
                if digest != diff_id {
                    return Err(layer.error(format!(
                        "its content has digest {digest}, but the image config's diff_id for it is {diff_id}"
                    )));
                }
                checked.map_err(|problem| layer.error(problem))?;
                let planned =
                    PlannedLayer { source: LayerSource::Archive(layer), id: LayerId::Digest(digest), size };
                known.insert(digest, planned.clone());
                Ok(planned)
            }
        })
        .collect::<Result<_>>()?;
    Ok(ImageSpec { repo_tags: image.repo_tags, layers, config: image.config, annotations: image.annotations })
}

/// Every image in the image file at `path`: a stowage stream script, or an image archive.
pub fn read_images(path: &Path) -> Result<Vec<FoundImage>> {
    let bad = |problem: String| Error::BadImage { path: path.to_owned(), problem };
    let metadata = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => {
            bad("does not exist in this build; a store path written as a plain string is no dependency \
             of the build: give the derivation or a path (./image.tar) instead"
                .into())
        }
        _ => Error::io(path, e),
    })?;
    if metadata.is_dir() {
        return Err(
            bad("is a directory; an image file (an archive or a stowage stream) was expected".into()),
        );
    }
    let (_, mut file) = open_archive(path)?;
    let mut head = [0u8; 2];
    if file.read(&mut head).map_err(|e| Error::io(path, e))? == 2 && &head == b"#!" {
        let plan = Plan::read(path)?;
        for image in &plan.images {
            let name = format!("the config of {}", image.repo_tags.join(", "));
            oci::parse::<ImageConfig>(&name, image.config.as_bytes(), "image config").map_err(bad)?;
        }
        return Ok(plan
            .images
            .into_iter()
            .map(|image| FoundImage {
                repo_tags: image.repo_tags,
                config: image.config,
                layers: image.layers.into_iter().map(FoundLayer::Planned).collect(),
                annotations: image.annotations,
            })
            .collect());
    }
    let entries = index(path)?;
    let metadata = |name: &str| -> Result<(String, &Vec<u8>)> {
        let name = normalise(name).map_err(bad)?;
        let bytes = match entries.get(&name) {
            Some(EntryInfo { metadata: Some(bytes), .. }) => bytes,
            Some(EntryInfo { size, .. }) if *size > METADATA_LIMIT => {
                return Err(bad(format!("{name} is larger than {METADATA_LIMIT} bytes")))
            }
            Some(_) => return Err(bad(format!("{name} is not a JSON document"))),
            None => return Err(bad(format!("{name} is listed but not in the archive"))),
        };
        // A document named after its digest must have it (the image ID is the config's).
        let hex = name.trim_start_matches("blobs/sha256/").trim_end_matches(".json");
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) && Digest::of(bytes).hex() != hex {
            return Err(bad(format!("{name} does not match its digest")));
        }
        Ok((name, bytes))
    };
    let image = |config_name: &str, files: Vec<String>, repo_tags: Vec<String>, listed_in: &str| {
        let (name, bytes) = metadata(config_name)?;
        let config = String::from_utf8(bytes.clone()).map_err(|_| bad(format!("{name} is not UTF-8")))?;
        let parsed: ImageConfig = oci::parse(&name, bytes, "image config").map_err(bad)?;
        let diff_ids = parsed.rootfs.diff_ids;
        if files.len() != diff_ids.len() {
            return Err(bad(format!(
                "{listed_in} lists {} layers but its config {name} has {} diff_ids",
                files.len(),
                diff_ids.len()
            )));
        }
        let layers = files
            .into_iter()
            .zip(diff_ids)
            .map(|(file, diff_id)| {
                let entry = normalise(&file).map_err(bad)?;
                let info = entries
                    .get(&entry)
                    .ok_or_else(|| bad(format!("layer {file} is listed but not in the archive")))?;
                let layer = ArchiveLayer {
                    archive: path.to_string_lossy().into_owned(),
                    entry,
                    offset: info.offset,
                    stored_size: info.size,
                    compression: info.compression,
                };
                Ok(FoundLayer::Unverified(layer, diff_id))
            })
            .collect::<Result<_>>()?;
        Ok(FoundImage { repo_tags, config, layers, annotations: BTreeMap::new() })
    };

    if entries.contains_key("manifest.json") {
        let (name, bytes) = metadata("manifest.json")?;
        let list: Vec<DockerManifestEntry> =
            oci::parse(&name, bytes, "docker-archive manifest").map_err(bad)?;
        return list
            .into_iter()
            .map(|entry| {
                image(&entry.config, entry.layers, entry.repo_tags.unwrap_or_default(), "manifest.json")
            })
            .collect();
    }
    if entries.contains_key("index.json") {
        let (name, bytes) = metadata("index.json")?;
        let index: oci::Index = oci::parse(&name, bytes, "image index").map_err(bad)?;
        // Descriptors still to read, in document order, with the reference each is known by: a
        // nested index (a multi-platform image) lends its reference to the manifests it lists.
        let mut pending: Vec<(Descriptor, Option<String>)> =
            index.manifests.into_iter().rev().map(|d| (d, None)).collect();
        let (mut images, mut nested) = (Vec::new(), 0);
        while let Some((descriptor, inherited)) = pending.pop() {
            // Build attestations ride along as manifests of platform unknown/unknown.
            if descriptor.annotation(oci::DOCKER_REFERENCE_TYPE) == Some("attestation-manifest") {
                continue;
            }
            let reference = descriptor.annotation(oci::REF_NAME).map(str::to_owned).or(inherited);
            let (blob, bytes) = metadata(&blob_name(&descriptor.digest))?;
            match Document::parse(&blob, bytes).map_err(bad)? {
                Document::Index(index) => {
                    nested += 1;
                    if nested > MAX_NESTED_INDEXES {
                        return Err(bad(format!("more than {MAX_NESTED_INDEXES} nested image indexes")));
                    }
                    pending.extend(index.manifests.into_iter().rev().map(|d| (d, reference.clone())));
                }
                Document::Manifest(manifest) => {
                    let files = manifest.layers.iter().map(|l| blob_name(&l.digest)).collect();
                    let config = blob_name(&manifest.config.digest);
                    images.push(image(&config, files, reference.into_iter().collect(), &blob)?);
                }
            }
        }
        return Ok(images);
    }
    Err(bad("neither manifest.json nor index.json: not an image archive".into()))
}
/// The image to use from `images`: the one named `name[:tag]`, or the only one there is.
pub fn select<'a>(
    path: &Path,
    images: &'a [FoundImage],
    name: Option<&str>,
    tag: Option<&str>,
) -> Result<&'a FoundImage> {
    let bad = |problem: String| Error::BadImage { path: path.to_owned(), problem };
    let all = || images.iter().flat_map(|i| i.repo_tags.iter().cloned()).collect::<Vec<_>>().join(", ");
    let Some(name) = name else {
        let candidates: Vec<&FoundImage> = match tag {
            Some(tag) => images
                .iter()
                .filter(|i| i.repo_tags.iter().any(|t| t.rsplit_once(':').is_some_and(|(_, t)| t == tag)))
                .collect(),
            None => images.iter().collect(),
        };
        return match (candidates.as_slice(), tag) {
            ([only], _) => Ok(only),
            ([], None) => Err(bad("it holds no image".into())),
            ([], Some(tag)) => Err(bad(format!("it has no image tagged {tag} (it has: {})", all()))),
            (several, _) => Err(bad(format!(
                "it holds {} images{} ({}); pick one with fromImageName/fromImageTag",
                several.len(),
                tag.map(|t| format!(" tagged {t}")).unwrap_or_default(),
                all()
            ))),
        };
    };
    let wanted = format!("{name}:{}", tag.unwrap_or("latest"));
    images
        .iter()
        .find(|i| {
            i.repo_tags.iter().any(|t| *t == wanted || t.strip_prefix("docker.io/library/") == Some(&wanted))
        })
        .ok_or_else(|| bad(format!("it has no image {wanted} (it has: {})", all())))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::read::entry::tests::raw_layer;
    use serde_json::json;
    use std::io::Write;
    use std::path::PathBuf;

    /// A tar of `files` (name, bytes).
    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o444);
            header.set_cksum();
            builder.append_data(&mut header, name, *bytes).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn entry_names(image: &FoundImage) -> Vec<(String, Digest)> {
        image
            .layers
            .iter()
            .map(|l| match l {
                FoundLayer::Unverified(layer, diff_id) => (layer.entry.clone(), *diff_id),
                FoundLayer::Planned(_) => panic!("an archive has no planned layers"),
            })
            .collect()
    }

    fn layer() -> Vec<u8> {
        tar_of(&[("hello", b"world")])
    }

    /// A docker-archive with one layer; returns (archive bytes, config bytes, layer digest).
    fn docker_archive(tags: &[&str], config_name: Option<&str>) -> (Vec<u8>, Vec<u8>, Digest) {
        let layer = layer();
        let diff_id = Digest::of(&layer);
        let config = serde_json::to_vec(&json!({ "architecture": "amd64", "os": "linux",
            "rootfs": { "type": "layers", "diff_ids": [diff_id.to_string()] } }))
        .unwrap();
        let config_file =
            config_name.map(str::to_owned).unwrap_or(format!("{}.json", Digest::of(&config).hex()));
        let layer_file = format!("{}/layer.tar", diff_id.hex());
        let manifest =
            json!([{ "Config": config_file, "RepoTags": tags, "Layers": [layer_file] }]).to_string();
        let archive =
            tar_of(&[(&layer_file, &layer), (&config_file, &config), ("manifest.json", manifest.as_bytes())]);
        (archive, config, diff_id)
    }

    #[test]
    fn reads_a_docker_archive_plain_gz_and_zstd() {
        let dir = tempfile::tempdir().unwrap();
        let (archive, _, diff_id) = docker_archive(&["app:1"], None);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&archive).unwrap();
        let zst = zstd::encode_all(archive.as_slice(), 3).unwrap();
        for (name, bytes) in
            [("plain.tar", archive.clone()), ("x.tar.gz", gz.finish().unwrap()), ("x.zst", zst)]
        {
            let path = write(dir.path(), name, &bytes);
            let images = read_images(&path).unwrap();
            assert_eq!(images.len(), 1, "{name}");
            assert_eq!(images[0].repo_tags, ["app:1"]);
            assert_eq!(entry_names(&images[0]), [(format!("{}/layer.tar", diff_id.hex()), diff_id)]);
            assert_eq!(images[0].config_document().architecture.as_deref(), Some("amd64"));
            assert!(std::ptr::eq(select(&path, &images, Some("app"), Some("1")).unwrap(), &images[0]));
            let spec =
                verify(images[0].clone(), &mut ArchiveReader::default(), &mut BTreeMap::new()).unwrap();
            assert_eq!((spec.layers[0].id(), spec.layers[0].size), (diff_id, layer().len() as u64));
        }
    }

    #[test]
    fn reads_an_oci_layout() {
        let dir = tempfile::tempdir().unwrap();
        let layer = tar_of(&[("f", b"x")]);
        let diff_id = Digest::of(&layer);
        let config =
            serde_json::to_vec(&json!({ "rootfs": { "type": "layers", "diff_ids": [diff_id.to_string()] } }))
                .unwrap();
        let manifest = serde_json::to_vec(&json!({ "schemaVersion": 2,
            "config": { "digest": Digest::of(&config).to_string() },
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": diff_id.to_string() }] }))
        .unwrap();
        let index = json!({ "schemaVersion": 2, "manifests": [{ "digest": Digest::of(&manifest).to_string(),
            "annotations": { "org.opencontainers.image.ref.name": "base:2" } }] })
        .to_string();
        let blob = |d: Digest| format!("blobs/sha256/{}", d.hex());
        let archive = tar_of(&[
            ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
            ("index.json", index.as_bytes()),
            (&blob(Digest::of(&manifest)), &manifest),
            (&blob(Digest::of(&config)), &config),
            (&blob(diff_id), &layer),
        ]);
        let path = write(dir.path(), "oci.tar", &archive);
        let images = read_images(&path).unwrap();
        assert_eq!(images[0].repo_tags, ["base:2"]);
        assert_eq!(entry_names(&images[0]), [(blob(diff_id), diff_id)]);
    }

    #[test]
    fn bad_archives_are_named_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let (good, config, diff_id) = docker_archive(&["app:1"], None);
        let layer_file = format!("{}/layer.tar", diff_id.hex());
        let config_file = format!("{}.json", Digest::of(&config).hex());
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("text", b"hello, not a tar".to_vec(), "not a readable tar archive"),
            ("empty", Vec::new(), "an empty or non-tar file"),
            ("truncated", good[..good.len() / 3].to_vec(), "truncated: the file ends inside"),
            ("no-manifest", tar_of(&[("x", b"y")]), "neither manifest.json nor index.json"),
            ("bad-json", tar_of(&[("manifest.json", b"{")]), "manifest.json is not valid JSON"),
            (
                "no-config-field",
                tar_of(&[("manifest.json", br#"[{"Layers": []}]"#)]),
                "manifest.json is not a valid docker-archive manifest: missing field `Config`",
            ),
            (
                "no-rootfs",
                tar_of(&[
                    ("c.json", br#"{"os": "linux"}"#),
                    ("manifest.json", br#"[{"Config": "c.json", "Layers": []}]"#),
                ]),
                "c.json is not a valid image config: missing field `rootfs`",
            ),
            (
                "missing-layer",
                tar_of(&[
                    (&config_file, &config),
                    (
                        "manifest.json",
                        json!([{ "Config": config_file, "Layers": [layer_file] }]).to_string().as_bytes(),
                    ),
                ]),
                "is listed but not in the archive",
            ),
            (
                "config-digest",
                tar_of(&[
                    (&config_file, b"{\"rootfs\":{\"diff_ids\":[]}}"),
                    (
                        "manifest.json",
                        json!([{ "Config": config_file, "Layers": [] }]).to_string().as_bytes(),
                    ),
                ]),
                "does not match its digest",
            ),
            (
                "escape",
                tar_of(&[(
                    "manifest.json",
                    json!([{ "Config": "../../etc/passwd", "Layers": [] }]).to_string().as_bytes(),
                )]),
                "points outside the archive",
            ),
            (
                "absolute",
                tar_of(&[
                    (&config_file, &config),
                    (
                        "manifest.json",
                        json!([{ "Config": config_file, "Layers": ["/etc/passwd"] }]).to_string().as_bytes(),
                    ),
                ]),
                "\"/etc/passwd\" points outside the archive",
            ),
        ];
        for (name, bytes, needle) in cases {
            let path = write(dir.path(), name, &bytes);
            let err = read_images(&path).unwrap_err().to_string();
            assert!(err.starts_with(&format!("image archive {}: ", path.display())), "{name}: {err}");
            assert!(err.contains(needle), "{name}: {err}");
        }
    }

    #[test]
    fn selecting_among_several_images() {
        let path = Path::new("/base.tar");
        let image = |tag: &str| FoundImage {
            repo_tags: vec![tag.into()],
            config: "{}".into(),
            layers: vec![],
            annotations: BTreeMap::new(),
        };
        let images = vec![image("a:1"), image("b:latest")];
        let err = select(path, &images, None, None).unwrap_err().to_string();
        assert!(
            err.contains("it holds 2 images (a:1, b:latest); pick one with fromImageName/fromImageTag"),
            "{err}"
        );
        assert_eq!(select(path, &images, Some("b"), None).unwrap().repo_tags, ["b:latest"]);
        let err = select(path, &images, Some("a"), Some("2")).unwrap_err().to_string();
        assert!(err.contains("it has no image a:2 (it has: a:1, b:latest)"), "{err}");
        assert_eq!(select(path, &images, None, Some("1")).unwrap().repo_tags, ["a:1"]);
        let err = select(path, &images, None, Some("2")).unwrap_err().to_string();
        assert!(err.contains("it has no image tagged 2 (it has: a:1, b:latest)"), "{err}");
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    /// A docker-archive whose layers are `layers` (stored as given) with these diff_ids.
    fn archive_of(layers: &[(Vec<u8>, Digest)]) -> Vec<u8> {
        let config = serde_json::to_vec(&json!({ "rootfs": { "type": "layers",
            "diff_ids": layers.iter().map(|(_, d)| d.to_string()).collect::<Vec<_>>() } }))
        .unwrap();
        let config_file = format!("{}.json", Digest::of(&config).hex());
        let names: Vec<String> = (0..layers.len()).map(|i| format!("l{i}/layer.tar")).collect();
        let manifest = json!([{ "Config": config_file, "RepoTags": ["x:1"], "Layers": names }]).to_string();
        let mut files: Vec<(&str, &[u8])> =
            names.iter().zip(layers).map(|(n, (bytes, _))| (n.as_str(), bytes.as_slice())).collect();
        files.push((&config_file, &config));
        files.push(("manifest.json", manifest.as_bytes()));
        tar_of(&files)
    }

    fn read_all(reader: &mut ArchiveReader, layer: &FoundLayer) -> Vec<u8> {
        let FoundLayer::Unverified(layer, _) = layer else { panic!("not an archive layer") };
        let mut bytes = Vec::new();
        reader.layer(layer).unwrap().read_to_end(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn compressed_layers_in_a_compressed_archive_read_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (tar_of(&[("a", b"1")]), tar_of(&[("b", &[7u8; 5000])]));
        let archive = archive_of(&[(gzip(&a), Digest::of(&a)), (b.clone(), Digest::of(&b))]);
        let path = write(dir.path(), "x.tar.gz", &gzip(&archive));
        let image = read_images(&path).unwrap().remove(0);
        let mut reader = ArchiveReader::default();
        let FoundLayer::Unverified(first, _) = &image.layers[0] else { panic!("not an archive layer") };
        reader.layer(first).unwrap().read_exact(&mut [0; 10]).unwrap(); // read only in part
        assert_eq!(read_all(&mut reader, &image.layers[1]), b);
        assert_eq!(read_all(&mut reader, &image.layers[0]), a); // earlier: the archive is reopened
        assert_eq!(read_all(&mut reader, &image.layers[1]), b); // later: read on from there
        let spec = verify(image, &mut reader, &mut BTreeMap::new()).unwrap();
        let sizes: Vec<u64> = spec.layers.iter().map(|l| l.size).collect();
        assert_eq!(sizes, [a.len() as u64, b.len() as u64]); // uncompressed sizes
    }

    #[test]
    fn a_layer_that_does_not_match_its_diff_id() {
        let dir = tempfile::tempdir().unwrap();
        let layer = layer();
        let wrong = Digest::of(b"something else");
        let path = write(dir.path(), "x.tar", &archive_of(&[(layer.clone(), wrong)]));
        let image = read_images(&path).unwrap().remove(0);
        let err = verify(image, &mut ArchiveReader::default(), &mut BTreeMap::new()).unwrap_err().to_string();
        let expected = format!(
            "image archive {}: layer l0/layer.tar: its content has digest {}, but the image config's diff_id for it is {wrong}",
            path.display(),
            Digest::of(&layer)
        );
        assert_eq!(err, expected);
    }

    #[test]
    fn decompression_bombs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        // Concatenated gzip members are one gzip stream: 300 MiB of zeros from a few hundred KiB.
        let zeros = gzip(&vec![0u8; 1 << 20]);
        let mut header = tar::Header::new_gnu();
        header.set_size(300 << 20);
        header.set_mode(0o444);
        header.set_cksum();
        let mut bomb = gzip(header.as_bytes());
        (0..300).for_each(|_| bomb.extend_from_slice(&zeros));
        let path = write(dir.path(), "bomb.tar.gz", &bomb);
        let err = read_images(&path).unwrap_err().to_string();
        assert!(err.contains("refused as a likely decompression bomb"), "{err}");

        // The same inside a layer of a small archive.
        let inner: Vec<u8> = (0..300).flat_map(|_| zeros.clone()).collect();
        let path = write(dir.path(), "layer-bomb.tar", &archive_of(&[(inner, Digest::of(b""))]));
        let image = read_images(&path).unwrap().remove(0);
        let err = verify(image, &mut ArchiveReader::default(), &mut BTreeMap::new()).unwrap_err().to_string();
        assert!(err.contains("layer l0/layer.tar: it decompresses to more than 200 times its size"), "{err}");
    }

    #[test]
    fn a_stream_script_is_read_as_its_plan() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        std::fs::create_dir_all(store.join("x-a")).unwrap();
        let plan = crate::image::plan::tests::plan(&store, &store.join("x-a").to_string_lossy(), "a:b");
        let path = write(dir.path(), "stream", plan.to_script(Path::new("/bin/stowage")).as_bytes());
        let images = read_images(&path).unwrap();
        assert_eq!(images[0].repo_tags, ["a:b"]);
        assert!(matches!(&images[0].layers[0], FoundLayer::Planned(p) if *p == plan.images[0].layers[0]));
        let script = write(dir.path(), "script", b"#!/bin/sh\necho hi\n");
        let err = read_images(&script).unwrap_err().to_string();
        assert!(err.ends_with("not a stowage stream script"), "{err}");
        let err = read_images(dir.path()).unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
    }

    /// An OCI layout tar holding one multi-platform image, `multi:1`, for amd64 and arm64/v8
    /// (each with one layer naming its platform), and a build attestation.
    pub(crate) fn multi_platform_oci(dir: &Path) -> PathBuf {
        let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
        let mut add = |bytes: Vec<u8>| {
            let digest = Digest::of(&bytes);
            blobs.push((format!("blobs/sha256/{}", digest.hex()), bytes));
            digest.to_string()
        };
        let mut manifests = Vec::new();
        for (arch, variant) in [("amd64", None), ("arm64", Some("v8"))] {
            let layer = tar_of(&[(arch, arch.as_bytes())]);
            let diff_id = Digest::of(&layer).to_string();
            let layer = add(gzip(&layer));
            let config =
                add(serde_json::to_vec(&json!({ "architecture": arch, "variant": variant, "os": "linux",
                "rootfs": { "type": "layers", "diff_ids": [diff_id] } }))
                .unwrap());
            let manifest =
                add(serde_json::to_vec(&json!({ "schemaVersion": 2, "config": { "digest": config },
                "layers": [{ "digest": layer }] }))
                .unwrap());
            manifests
                .push(json!({ "digest": manifest, "platform": { "architecture": arch, "os": "linux" } }));
        }
        let attestation = add(b"{\"not\": \"an image\"}".to_vec());
        manifests.push(json!({ "digest": attestation,
            "annotations": { "vnd.docker.reference.type": "attestation-manifest" } }));
        let nested = add(serde_json::to_vec(&json!({ "schemaVersion": 2, "manifests": manifests })).unwrap());
        let index = json!({ "schemaVersion": 2, "manifests": [{ "digest": nested,
            "annotations": { oci::REF_NAME: "multi:1" } }] })
        .to_string();
        let mut files: Vec<(&str, &[u8])> = vec![("index.json", index.as_bytes())];
        files.extend(blobs.iter().map(|(name, bytes)| (name.as_str(), bytes.as_slice())));
        write(dir, "multi.tar", &tar_of(&files))
    }

    #[test]
    fn a_multi_platform_oci_layout_holds_an_image_per_platform() {
        let dir = tempfile::tempdir().unwrap();
        let images = read_images(&multi_platform_oci(dir.path())).unwrap();
        let found: Vec<(Vec<String>, Option<String>)> =
            images.iter().map(|i| (i.repo_tags.clone(), i.config_document().architecture)).collect();
        assert_eq!(
            found,
            [
                (vec!["multi:1".to_string()], Some("amd64".into())),
                (vec!["multi:1".into()], Some("arm64".into()))
            ]
        );
    }

    /// Docker ≥ 25 saves an OCI layout with a `manifest.json` beside it, naming blobs.
    #[test]
    fn reads_a_docker_25_archive() {
        let dir = tempfile::tempdir().unwrap();
        let layer = layer();
        let diff_id = Digest::of(&layer);
        let config = serde_json::to_vec(&json!({ "architecture": "amd64", "os": "linux",
            "rootfs": { "type": "layers", "diff_ids": [diff_id.to_string()] } }))
        .unwrap();
        let blob = |d: Digest| format!("blobs/sha256/{}", d.hex());
        let (config_blob, layer_blob) = (blob(Digest::of(&config)), blob(diff_id));
        let manifest =
            json!([{ "Config": config_blob, "RepoTags": ["app:25"], "Layers": [layer_blob] }]).to_string();
        let archive = tar_of(&[
            (&layer_blob, &layer),
            (&config_blob, &config),
            ("index.json", br#"{"schemaVersion": 2, "manifests": []}"#),
            ("manifest.json", manifest.as_bytes()),
            ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        ]);
        let path = write(dir.path(), "docker25.tar", &archive);
        let images = read_images(&path).unwrap();
        assert_eq!(images[0].repo_tags, ["app:25"]);
        assert_eq!(entry_names(&images[0]), [(layer_blob, diff_id)]);
    }

    /// Regression: a base layer with an entry that could lead out of the image root, or a whiteout
    /// that names no entry of its directory, was copied into images as it is (only runAsRoot's
    /// unpacking refused the first).
    #[test]
    fn layers_with_entries_that_lead_out_of_the_root_are_refused() {
        use tar::EntryType::{Link, Regular, Symlink};
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&[u8], tar::EntryType, &[u8], &str); 6] = [
            (b"../x", Regular, b"", "entry \"../x\": its name has \"..\""),
            (b"a/../../x", Regular, b"", "entry \"a/../../x\": its name has \"..\""),
            (b"a/../b", Regular, b"", "entry \"a/../b\": its name has \"..\""),
            (b"h", Link, b"../etc/passwd", "entry \"h\": hard link to \"../etc/passwd\", a name with \"..\""),
            (b".wh...", Regular, b"", "entry \".wh...\": a whiteout of \"..\""),
            (b"x/.wh.", Regular, b"", "entry \"x/.wh.\": a whiteout of \"\""),
        ];
        for (name, kind, link, needle) in cases {
            let layer = raw_layer(&[(b"x/", tar::EntryType::Directory, b""), (name, kind, link)]);
            let path = write(dir.path(), "bad.tar", &archive_of(&[(layer.clone(), Digest::of(&layer))]));
            let image = read_images(&path).unwrap().remove(0);
            let err =
                verify(image, &mut ArchiveReader::default(), &mut BTreeMap::new()).unwrap_err().to_string();
            let expected = format!("image archive {}: layer l0/layer.tar: {needle}", path.display());
            assert!(err.starts_with(&expected), "{expected}\n{err}");
        }
        // What only looks like them is fine, and names that are not UTF-8 are names.
        let layer = raw_layer(&[
            (b"./x/", tar::EntryType::Directory, b""),
            (b"/x/..y", Regular, b""),
            (b"x/.wh...y", Regular, b""),
            (b"x/caf\xe9", Symlink, b"../../\xff"),
            (b"x/h", Link, b"x/caf\xe9"),
        ]);
        let path = write(dir.path(), "good.tar", &archive_of(&[(layer.clone(), Digest::of(&layer))]));
        let image = read_images(&path).unwrap().remove(0);
        verify(image, &mut ArchiveReader::default(), &mut BTreeMap::new()).unwrap();
    }

    /// Regression: an archive entry whose name is not UTF-8 was indexed with U+FFFD in place of each
    /// bad byte, so a manifest naming that text found it.
    #[test]
    fn an_entry_name_that_is_not_utf8_is_no_other_name() {
        let dir = tempfile::tempdir().unwrap();
        let layer = layer();
        let config = serde_json::to_vec(&json!({ "rootfs": { "type": "layers",
            "diff_ids": [Digest::of(&layer).to_string()] } }))
        .unwrap();
        let config_file = format!("{}.json", Digest::of(&config).hex());
        let manifest = json!([{ "Config": config_file, "Layers": ["l\u{FFFD}.tar"] }]).to_string();
        let mut archive = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..6].copy_from_slice(b"l\xff.tar");
        header.set_size(layer.len() as u64);
        header.set_mode(0o444);
        header.set_cksum();
        archive.append(&header, layer.as_slice()).unwrap();
        let mut archive = archive.into_inner().unwrap();
        archive.truncate(archive.len() - 1024); // the end-of-archive blocks: more entries follow
        archive.extend(tar_of(&[(&config_file, &config), ("manifest.json", manifest.as_bytes())]));
        let path = write(dir.path(), "x.tar", &archive);
        let err = read_images(&path).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("layer l\u{FFFD}.tar is listed but not in the archive"), "{err}");
    }
}

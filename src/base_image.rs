//! Reading existing images: the base of `fromImage` and the inputs of `mergeImages`.
//!
//! An image archive is a tar, plain or compressed with gzip or zstd (told apart by their magic
//! bytes, not by file names), in one of two layouts:
//! - docker-archive (`docker save`): `manifest.json` lists each image's config file, RepoTags
//!   and layer files; Docker ≥ 25 writes OCI-style `blobs/sha256/…` names in it;
//! - OCI image layout: `index.json` lists manifests (named by the
//!   `org.opencontainers.image.ref.name` annotation), each naming a config and layer blobs.
//!
//! Reading the index reads only metadata — small files, each capped at [`METADATA_LIMIT`] so a
//! hostile archive cannot exhaust memory — and checks that everything named is there, that entry
//! names stay inside the archive, and that a config's content matches its digest name. Layers are
//! not read here; whoever copies them verifies them against `rootfs.diff_ids`.

use crate::digest::Digest;
use crate::{Error, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

/// The largest metadata file (manifest, index, config) read into memory.
pub const METADATA_LIMIT: u64 = 16 << 20;

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// How a file (an archive, or a layer inside one) is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// The compression whose magic bytes start `head`.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// `reader`, decompressed.
    pub fn decoder<'a, R: Read + 'a>(self, reader: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(reader),
            Compression::Gzip => Box::new(flate2::read::GzDecoder::new(reader)),
            Compression::Zstd => Box::new(zstd::Decoder::new(reader)?),
        })
    }
}

/// One image found in an archive.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundImage {
    /// `name:tag` references it carries (RepoTags, or the OCI ref name).
    pub repo_tags: Vec<String>,
    /// Its image config.
    pub config: Value,
    /// Its layers, bottom first: the archive entry holding each, and its diff_id.
    pub layers: Vec<(String, Digest)>,
}

/// Every image in the archive at `path`.
pub fn read_images(path: &Path) -> Result<Vec<FoundImage>> {
    let bad = |problem: String| Error::BadImage { path: path.to_owned(), problem };
    let entries = read_entries(path)?;
    let metadata = |name: &str| -> Result<&Vec<u8>> {
        match entries.get(&normalise(name).map_err(bad)?) {
            Some(Entry::Small(bytes)) => Ok(bytes),
            Some(Entry::Large) => Err(bad(format!("{name} is larger than {METADATA_LIMIT} bytes"))),
            None => Err(bad(format!("{name} is listed but not in the archive"))),
        }
    };
    let json = |name: &str| -> Result<Value> {
        serde_json::from_slice(metadata(name)?).map_err(|e| bad(format!("{name} is not valid JSON: {e}")))
    };
    let config_of = |name: &str| -> Result<(Value, Vec<Digest>)> {
        let bytes = metadata(name)?;
        // A config named after its digest must have that digest (the image ID depends on it).
        let hex = name.trim_start_matches("blobs/sha256/").trim_end_matches(".json");
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) && Digest::of(bytes).hex() != hex {
            return Err(bad(format!("config {name} does not match its digest")));
        }
        let config: Value =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("{name} is not valid JSON: {e}")))?;
        let diff_ids = config["rootfs"]["diff_ids"]
            .as_array()
            .ok_or_else(|| bad(format!("config {name} has no rootfs.diff_ids")))?
            .iter()
            .map(|d| d.as_str().map(str::to_owned).and_then(|d| Digest::try_from(d).ok()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad(format!("config {name} has a malformed diff_id")))?;
        Ok((config, diff_ids))
    };
    let check_layers =
        |files: Vec<String>, diff_ids: Vec<Digest>, what: &str| -> Result<Vec<(String, Digest)>> {
            if files.len() != diff_ids.len() {
                return Err(bad(format!(
                    "{what} lists {} layers but its config {} diff_ids",
                    files.len(),
                    diff_ids.len()
                )));
            }
            for file in &files {
                if !entries.contains_key(&normalise(file).map_err(bad)?) {
                    return Err(bad(format!("layer {file} is listed but not in the archive")));
                }
            }
            Ok(files.into_iter().zip(diff_ids).collect())
        };

    if entries.contains_key("manifest.json") {
        let manifest = json("manifest.json")?;
        let list = manifest.as_array().ok_or_else(|| bad("manifest.json is not a list".into()))?;
        return list
            .iter()
            .map(|image| {
                let config_name =
                    image["Config"].as_str().ok_or_else(|| bad("a manifest entry has no Config".into()))?;
                let files = strings(&image["Layers"])
                    .ok_or_else(|| bad("a manifest entry has no Layers list".into()))?;
                let (config, diff_ids) = config_of(config_name)?;
                Ok(FoundImage {
                    repo_tags: strings(&image["RepoTags"]).unwrap_or_default(),
                    layers: check_layers(files, diff_ids, "manifest.json")?,
                    config,
                })
            })
            .collect();
    }
    if entries.contains_key("index.json") {
        let index = json("index.json")?;
        let manifests =
            index["manifests"].as_array().ok_or_else(|| bad("index.json has no manifests".into()))?;
        return manifests
            .iter()
            .map(|descriptor| {
                let blob = blob_name(&descriptor["digest"])
                    .ok_or_else(|| bad("a manifest descriptor has no digest".into()))?;
                let manifest = json(&blob)?;
                let config_blob = blob_name(&manifest["config"]["digest"])
                    .ok_or_else(|| bad(format!("{blob} has no config")))?;
                let files = manifest["layers"]
                    .as_array()
                    .ok_or_else(|| bad(format!("{blob} has no layers")))?
                    .iter()
                    .map(|l| blob_name(&l["digest"]))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad(format!("{blob} has a layer without a digest")))?;
                let (config, diff_ids) = config_of(&config_blob)?;
                let reference = descriptor["annotations"]["org.opencontainers.image.ref.name"].as_str();
                Ok(FoundImage {
                    repo_tags: reference.map(|r| vec![r.to_owned()]).unwrap_or_default(),
                    layers: check_layers(files, diff_ids, &blob)?,
                    config,
                })
            })
            .collect();
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
        return match images {
            [only] => Ok(only),
            [] => Err(bad("it holds no image".into())),
            _ => Err(bad(format!(
                "it holds {} images ({}); pick one with fromImageName/fromImageTag",
                images.len(),
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

enum Entry {
    Small(Vec<u8>),
    Large,
}

/// Every entry of the archive: metadata-sized ones with their bytes, larger ones by name.
fn read_entries(path: &Path) -> Result<BTreeMap<String, Entry>> {
    let io_err = |e| Error::io(path, e);
    let mut file = BufReader::new(File::open(path).map_err(io_err)?);
    let mut head = [0u8; 4];
    let n = file.read(&mut head).map_err(io_err)?;
    let compression = Compression::detect(&head[..n]);
    let chained = io::Cursor::new(head[..n].to_vec()).chain(file);
    let mut archive = tar::Archive::new(compression.decoder(chained).map_err(io_err)?);
    let mut entries = BTreeMap::new();
    let not_tar = |e: io::Error| Error::BadImage {
        path: path.to_owned(),
        problem: format!("not a readable tar archive: {e}"),
    };
    for entry in archive.entries().map_err(not_tar)? {
        let mut entry = entry.map_err(not_tar)?;
        if !matches!(entry.header().entry_type(), tar::EntryType::Regular | tar::EntryType::Continuous) {
            continue;
        }
        let raw = entry.path().map_err(not_tar)?.to_string_lossy().into_owned();
        let Ok(name) = normalise(&raw) else { continue }; // never named by a valid manifest
        let size = entry.size();
        let value = if size <= METADATA_LIMIT {
            let mut bytes = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut bytes).map_err(not_tar)?;
            Entry::Small(bytes)
        } else {
            Entry::Large
        };
        entries.insert(name, value);
    }
    if entries.is_empty() {
        return Err(Error::BadImage { path: path.into(), problem: "an empty or non-tar file".into() });
    }
    Ok(entries)
}

/// `name` as an entry name inside the archive: relative, without `.` or `..` components.
fn normalise(name: &str) -> Result<String, String> {
    let path = PathBuf::from(name);
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            std::path::Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            std::path::Component::CurDir => {}
            _ => return Err(format!("{name:?} points outside the archive")),
        }
    }
    if parts.is_empty() {
        return Err(format!("{name:?} is not a file name"));
    }
    Ok(parts.join("/"))
}

fn blob_name(digest: &Value) -> Option<String> {
    let digest = Digest::try_from(digest.as_str()?.to_owned()).ok()?;
    Some(format!("blobs/sha256/{}", digest.hex()))
}

fn strings(value: &Value) -> Option<Vec<String>> {
    value.as_array()?.iter().map(|v| v.as_str().map(str::to_owned)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write;

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

    /// A docker-archive with one layer; returns (archive bytes, config bytes, layer digest).
    fn docker_archive(tags: &[&str], config_name: Option<&str>) -> (Vec<u8>, Vec<u8>, Digest) {
        let layer = tar_of(&[("hello", b"world")]);
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
            assert_eq!(images[0].layers, vec![(format!("{}/layer.tar", diff_id.hex()), diff_id)]);
            assert_eq!(images[0].config["architecture"], "amd64");
            assert!(std::ptr::eq(select(&path, &images, Some("app"), Some("1")).unwrap(), &images[0]));
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
        assert_eq!(images[0].layers, vec![(blob(diff_id), diff_id)]);
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
            ("truncated", good[..good.len() / 3].to_vec(), "not a readable tar archive"),
            ("no-manifest", tar_of(&[("x", b"y")]), "neither manifest.json nor index.json"),
            ("bad-json", tar_of(&[("manifest.json", b"{")]), "manifest.json is not valid JSON"),
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
        let image = |tag: &str| FoundImage { repo_tags: vec![tag.into()], config: json!({}), layers: vec![] };
        let images = vec![image("a:1"), image("b:latest")];
        let err = select(path, &images, None, None).unwrap_err().to_string();
        assert!(
            err.contains("it holds 2 images (a:1, b:latest); pick one with fromImageName/fromImageTag"),
            "{err}"
        );
        assert_eq!(select(path, &images, Some("b"), None).unwrap().repo_tags, ["b:latest"]);
        let err = select(path, &images, Some("a"), Some("2")).unwrap_err().to_string();
        assert!(err.contains("it has no image a:2 (it has: a:1, b:latest)"), "{err}");
    }
}

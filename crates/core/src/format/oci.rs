//! The OCI and Docker image documents, as types (go-containerregistry's `pkg/v1` is the model):
//! [`Descriptor`], image [`Manifest`] and [`Index`], the image config ([`ImageConfig`], as far as
//! stowage reads or writes it), docker-archive's `manifest.json` entries
//! ([`DockerManifestEntry`]), the one platform type ([`Platform`], with the `Display` messages
//! use), the annotations stowage names, and the one table of media types ([`MediaType`]). Reading them ([`parse`]) says which document is wrong and how; writing them
//! ([`to_json`]) gives the bytes stowage has always written.

use crate::format::digest::Digest;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// `oci-layout`: which version of the OCI image layout this is.
pub const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
/// The annotation that names an image (`name:tag`) in an OCI layout's index.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's annotation for the same name, which it reads when importing a layout.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The annotation by which BuildKit marks the attestations it lists beside an index's images.
pub const DOCKER_REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// The media types stowage names: OCI's and Docker's (image manifest schema 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// An OCI image index.
    OciIndex,
    /// An OCI image manifest.
    OciManifest,
    /// An OCI image config.
    OciConfig,
    /// An uncompressed OCI layer.
    OciLayer,
    /// A gzip-compressed OCI layer.
    OciLayerGzip,
    /// A zstd-compressed OCI layer.
    OciLayerZstd,
    /// Docker's index: a manifest list.
    DockerManifestList,
    /// A Docker image manifest.
    DockerManifest,
    /// A Docker image config.
    DockerConfig,
    /// An uncompressed Docker layer.
    DockerLayer,
    /// A gzip-compressed Docker layer.
    DockerLayerGzip,
}

/// Every media type, with its name and its OCI equivalent (itself, for OCI's; Docker's as
/// `skopeo copy … oci:…` converts them).
const MEDIA_TYPES: &[(MediaType, &str, MediaType)] = {
    use MediaType::*;
    &[
        (OciIndex, "application/vnd.oci.image.index.v1+json", OciIndex),
        (OciManifest, "application/vnd.oci.image.manifest.v1+json", OciManifest),
        (OciConfig, "application/vnd.oci.image.config.v1+json", OciConfig),
        (OciLayer, "application/vnd.oci.image.layer.v1.tar", OciLayer),
        (OciLayerGzip, "application/vnd.oci.image.layer.v1.tar+gzip", OciLayerGzip),
        (OciLayerZstd, "application/vnd.oci.image.layer.v1.tar+zstd", OciLayerZstd),
        (DockerManifestList, "application/vnd.docker.distribution.manifest.list.v2+json", OciIndex),
        (DockerManifest, "application/vnd.docker.distribution.manifest.v2+json", OciManifest),
        (DockerConfig, "application/vnd.docker.container.image.v1+json", OciConfig),
        (DockerLayer, "application/vnd.docker.image.rootfs.diff.tar", OciLayer),
        (DockerLayerGzip, "application/vnd.docker.image.rootfs.diff.tar.gzip", OciLayerGzip),
    ]
};

impl MediaType {
    /// The types a manifest may be fetched as (a registry's `Accept` list), indexes first.
    pub const MANIFESTS: [MediaType; 4] = [
        MediaType::OciIndex,
        MediaType::DockerManifestList,
        MediaType::OciManifest,
        MediaType::DockerManifest,
    ];

    fn row(self) -> &'static (MediaType, &'static str, MediaType) {
        MEDIA_TYPES.iter().find(|(t, ..)| *t == self).expect("every media type is in the table")
    }

    /// Its name, as documents and `Content-Type` headers carry it.
    pub fn as_str(self) -> &'static str {
        self.row().1
    }

    /// The media type named `name`, if stowage knows it.
    pub fn parse(name: &str) -> Option<MediaType> {
        MEDIA_TYPES.iter().find(|(_, n, _)| *n == name).map(|(t, ..)| *t)
    }

    /// OCI's media type for the same thing.
    pub fn oci(self) -> MediaType {
        self.row().2
    }
}

/// A blob as a manifest or index names it. Read ones may lack what stowage does not need of
/// them (`mediaType`, `size`); their other keys are kept (`extra`), for a document written again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Descriptor {
    /// Annotations (a name, `name:tag`, under [`REF_NAME`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's media type.
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The platform of the image a manifest's descriptor in an index names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The blob's size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Keys stowage does not read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Descriptor {
    /// The descriptor of the blob `digest` of `size` bytes, a `media_type`.
    pub fn new(media_type: MediaType, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            annotations: None,
            digest,
            media_type: Some(media_type.as_str().to_owned()),
            platform: None,
            size: Some(size),
            extra: Map::new(),
        }
    }

    /// The descriptor, annotated with the reference `name` (as containerd and the OCI spec name it).
    pub fn named(mut self, name: &str) -> Descriptor {
        let annotations = self.annotations.get_or_insert_with(BTreeMap::new);
        for key in [REF_NAME, CONTAINERD_NAME] {
            annotations.insert(key.to_owned(), name.to_owned());
        }
        self
    }

    /// The annotation `key`, if it has it.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// An image manifest: an image's config and layers. Its other keys are kept (`extra`), for a
/// manifest written again in another form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The image config.
    pub config: Descriptor,
    /// The layers, bottom first.
    pub layers: Vec<Descriptor>,
    /// Its media type (documents written by hand may leave it out).
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// 2 (documents written by hand may leave it out).
    #[serde(rename = "schemaVersion", default)]
    pub schema_version: u32,
    /// Keys stowage does not read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Manifest {
    /// The manifest (a `media_type`) of an image with this config and these layers.
    pub fn new(media_type: MediaType, config: Descriptor, layers: Vec<Descriptor>) -> Manifest {
        Manifest {
            annotations: None,
            config,
            layers,
            media_type: Some(media_type.as_str().to_owned()),
            schema_version: 2,
            extra: Map::new(),
        }
    }

    /// The manifest with `annotations`, if there are any.
    pub fn annotated(mut self, annotations: &BTreeMap<String, String>) -> Manifest {
        if !annotations.is_empty() {
            self.annotations = Some(annotations.clone());
        }
        self
    }
}

/// An image index (or Docker manifest list): manifests, one per platform or name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The manifests (or indexes) it lists.
    pub manifests: Vec<Descriptor>,
    /// Its media type (documents written by hand may leave it out).
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// 2 (documents written by hand may leave it out).
    #[serde(rename = "schemaVersion", default)]
    pub schema_version: u32,
}

impl Index {
    /// The index (a `media_type`) listing `manifests`.
    pub fn new(media_type: MediaType, manifests: Vec<Descriptor>) -> Index {
        Index {
            annotations: None,
            manifests,
            media_type: Some(media_type.as_str().to_owned()),
            schema_version: 2,
        }
    }
}

/// A document that is an image manifest or an index.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// An image manifest (boxed: it is the larger).
    Manifest(Box<Manifest>),
    /// An index, or manifest list.
    Index(Index),
}

impl Document {
    /// The manifest or index `bytes`, the document `name` (for messages): an index is the one
    /// that lists manifests (a media type is not always there to tell them apart).
    pub fn parse(name: &str, bytes: &[u8]) -> Result<Document, String> {
        #[derive(Deserialize)]
        struct Lists {
            manifests: Option<IgnoredAny>,
        }
        let lists: Lists = parse(name, bytes, "image manifest or index")?;
        match lists.manifests {
            Some(_) => parse(name, bytes, "image index").map(Document::Index),
            None => parse(name, bytes, "image manifest").map(|m| Document::Manifest(Box::new(m))),
        }
    }

    /// The media type it says it is.
    pub fn media_type(&self) -> Option<&str> {
        match self {
            Document::Manifest(manifest) => manifest.media_type.as_deref(),
            Document::Index(index) => index.media_type.as_deref(),
        }
    }
}

/// The image config (OCI's `config.json`), as far as stowage reads or writes it. A config that
/// is read is kept as its bytes: this is for reading its fields, and for writing stowage's own
/// (which has every field but `variant`, where none applies).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// The GOARCH name of the image's CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// The runtime config (`Env`, `Cmd`, …): the user's, kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Map<String, Value>>,
    /// RFC 3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// One entry per layer (and per step that made none), bottom first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<History>>,
    /// The operating system: `linux`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// The layers' digests, uncompressed.
    pub rootfs: RootFs,
    /// The CPU variant, where one applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl ImageConfig {
    /// The platform it names; none without an architecture.
    pub fn platform(&self) -> Option<Platform> {
        Some(Platform {
            architecture: self.architecture.clone()?,
            os: self.os.clone(),
            variant: self.variant.clone(),
        })
    }

    /// The platform the config document `config` names, as a plan holds it (checked when the
    /// plan was made); none if it names none.
    pub fn platform_of(config: &str) -> Option<Platform> {
        serde_json::from_str::<ImageConfig>(config).ok()?.platform()
    }
}

/// An image config's `rootfs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// Each layer's digest, uncompressed, bottom first.
    pub diff_ids: Vec<Digest>,
    /// `layers` (documents written by hand may leave it out).
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// An entry of an image config's `history`; a base image's keep their other keys (`extra`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// What the step was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// RFC 3339 time of the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// What made the layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Keys stowage does not read (`author`, `empty_layer`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An entry of a docker-archive's `manifest.json`: one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DockerManifestEntry {
    /// The config's file.
    #[serde(rename = "Config")]
    pub config: String,
    /// The layers' files, bottom first.
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
    /// `name:tag` references (`null` for an image saved by its ID).
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
}

/// The document `T` (a `what`, for messages) in `bytes`, the document `name`; or what is wrong
/// with it, naming it: whether it is no JSON at all (checked first, since a document of the
/// wrong type stops being read where its type shows) or JSON of the wrong shape.
pub fn parse<T: DeserializeOwned>(name: &str, bytes: &[u8], what: &str) -> Result<T, String> {
    serde_json::from_slice::<IgnoredAny>(bytes).map_err(|e| format!("{name} is not valid JSON: {e}"))?;
    serde_json::from_slice(bytes).map_err(|e| format!("{name} is not a valid {what}: {e}"))
}

/// The bytes of `document`: its keys sorted, as stowage has always written documents (through
/// `serde_json::Value`, whose objects sort their keys), the keys a read document kept among them.
pub fn to_json(document: &impl Serialize) -> String {
    serde_json::to_value(document).expect("a document is JSON").to_string()
}

/// An image's platform, as an image config's `architecture`, `os` and `variant` fields and an
/// index's `platform` object hold it (fields in the order of their names: the order in which
/// stowage writes them). Shown as its parts joined by `/` — `[os/]architecture[/variant]`, like
/// `linux/arm64/v8` or, for a CPU alone, `arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// The `GOARCH` name, e.g. `amd64`, `arm64`, `arm`.
    pub architecture: String,
    /// The operating system (`linux`); none for a CPU alone (the platform of a Nix system: an
    /// image's os is linux whatever the system's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// The CPU variant where one applies (`v7` for ARMv7, `v8` for arm64), as in the OCI
    /// image index's `platform.variant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(os) = &self.os {
            write!(f, "{os}/")?;
        }
        f.write_str(&self.architecture)?;
        match &self.variant {
            Some(variant) => write!(f, "/{variant}"),
            None => Ok(()),
        }
    }
}

impl Platform {
    /// The platform of the CPU `architecture` (`variant`), without an os.
    pub fn cpu(architecture: &str, variant: Option<&str>) -> Platform {
        Platform { architecture: architecture.to_owned(), os: None, variant: variant.map(str::to_owned) }
    }

    /// The platform's CPU alone (without its os).
    pub fn without_os(&self) -> Platform {
        Platform { os: None, ..self.clone() }
    }
}

/// An OCI image layout's name for the blob `digest` (`blobs/sha256/<hex>`).
pub fn blob_name(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn media_types_by_name() {
        for (media_type, name, _) in MEDIA_TYPES {
            assert_eq!(MediaType::parse(name), Some(*media_type));
            assert_eq!(media_type.as_str(), *name);
        }
        assert_eq!(MediaType::DockerManifest.oci(), MediaType::OciManifest);
        assert_eq!(MediaType::parse("application/vnd.oci.image.layer.nondistributable.v1.tar"), None);
    }

    #[test]
    fn written_with_sorted_keys() {
        let digest = Digest::of(b"x");
        let mut descriptor = Descriptor::new(MediaType::OciManifest, digest, 3).named("a:1");
        descriptor.platform = Some(Platform::cpu("amd64", None));
        descriptor.extra.insert("artifactType".into(), json!("x"));
        let index = Index::new(MediaType::OciIndex, vec![descriptor]);
        let text = to_json(&index);
        assert_eq!(text, serde_json::from_str::<Value>(&text).unwrap().to_string());
        assert!(
            text.starts_with(r#"{"manifests":[{"annotations":{"io.containerd.image.name":"a:1","#),
            "{text}"
        );
        assert!(text.contains(r#""artifactType":"x","digest":"#), "{text}");
    }

    #[test]
    fn documents_that_are_wrong_are_named() {
        let err = parse::<Vec<DockerManifestEntry>>("manifest.json", b"{}", "docker-archive manifest");
        assert!(err
            .unwrap_err()
            .starts_with("manifest.json is not a valid docker-archive manifest: invalid type"));
        let err = Document::parse("index.json", br#"{"manifests": [{"digest": "sha256:x"}]}"#).unwrap_err();
        assert!(
            err.starts_with("index.json is not a valid image index: \"sha256:x\" is not a sha256 digest"),
            "{err}"
        );
        let err = Document::parse("m", b"{").unwrap_err();
        assert!(err.starts_with("m is not valid JSON"), "{err}");
    }
}

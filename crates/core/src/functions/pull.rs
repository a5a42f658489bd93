//! `pullImage`: an image fetched from a registry by digest, as a fixed-output derivation.
//!
//! The builder asks for the manifest by its digest (choosing the platform from an index),
//! checks it, then fetches the config and every layer, checking each against its digest as it
//! streams into the output. The output is an OCI image layout in a tarball holding the
//! registry's own manifest, config and (compressed) layers byte for byte — so the image keeps
//! the digest it has in the registry — and `index.json` naming it `finalImageName:finalImageTag`.
//! `fromImage`, `mergeImages`, `podman load` and `skopeo copy oci-archive:…` read it. A failure
//! leaves no output behind.

use crate::format::digest::Digest;
use crate::format::oci::{
    self, blob_name, to_json, Descriptor, Document, ImageConfig, Index, Manifest, MediaType, Platform,
    OCI_LAYOUT,
};
use crate::format::tar_blocks::{self, file_header, padding, END_OF_ARCHIVE};
use crate::functions::args::{Args, Evaluator};
use crate::image::reference::{check_tag, ImageName};
use crate::registry::access::Access;
use crate::registry::client::{Registry, DOCUMENT_LIMIT};
use crate::registry::repository::Repository;
use crate::registry::timeouts::Timeouts;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

/// The mtime of the layout's entries.
const PULLED_MTIME: u64 = 1;

/// Annotation in `index.json` holding the digest the image was pulled by (an index's, when the
/// platform was chosen from one).
pub const PULLED_DIGEST_ANNOTATION: &str = "io.stowage.image.digest";

/// The checked arguments of `pullImage`, as the derivation takes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullArgs {
    /// The derivation's name.
    pub name: String,
    /// The image's name in its registry (`nginx`, `quay.io/team/app`).
    pub image_name: String,
    /// The digest to pull it by: its manifest's, or an index's.
    pub image_digest: String,
    /// The name the image is known by in the output.
    pub final_image_name: String,
    /// The tag it is known by in the output.
    pub final_image_tag: String,
    /// The platform to choose from an index.
    pub os: String,
    /// The architecture to choose from an index (GOARCH).
    pub arch: String,
    /// The CPU variant to choose from an index; any, when not given.
    pub variant: Option<String>,
    /// Whether the registry's certificate is verified.
    pub tls_verify: bool,
    /// The output's sha256 (`sha256` or `hash`), as Nix's `outputHash` takes it.
    pub output_hash: String,
}

impl PullArgs {
    /// Checks `pullImage`'s arguments (dockerTools' names) as the plugin hands them over.
    pub fn from_nix(args_json: &str, evaluator: &Evaluator) -> Result<PullArgs> {
        let args = Args::parse(
            args_json,
            &[
                "imageName",
                "imageDigest",
                "sha256",
                "hash",
                "finalImageName",
                "finalImageTag",
                "os",
                "arch",
                "variant",
                "tlsVerify",
                "name",
            ],
        )?;
        let image_name =
            args.string("imageName")?.ok_or_else(|| Error::argument("imageName", "is required"))?;
        ImageName::parse_argument("imageName", &image_name)?;
        let image_digest =
            args.string("imageDigest")?.ok_or_else(|| Error::argument("imageDigest", "is required"))?;
        Digest::try_from(image_digest.clone()).map_err(|e| {
            Error::argument("imageDigest", format!("{e}: give the registry's sha256:… digest of the image"))
        })?;
        let output_hash =
            match (args.string("sha256")?, args.string("hash")?) {
                (Some(_), Some(_)) => {
                    return Err(Error::argument("hash", "and 'sha256' are both given; give one"))
                }
                (Some(hash), None) => hash,
                (None, Some(hash)) if hash.contains('-') && !hash.starts_with("sha256-") => {
                    return Err(Error::argument("hash", format!("{hash:?} is not a sha256 hash")))
                }
                (None, Some(hash)) => hash,
                (None, None) => return Err(Error::argument(
                    "sha256",
                    "(or 'hash') is required: the output's hash, which a build with any other hash reports",
                )),
            };
        let final_image_name = match args.string("finalImageName")? {
            Some(name) => ImageName::parse_argument("finalImageName", &name)?.name,
            None => image_name.to_lowercase(),
        };
        let final_image_tag = args.string("finalImageTag")?.unwrap_or_else(|| "latest".into());
        check_tag(&final_image_tag).map_err(|e| rename(e, "finalImageTag"))?;
        let os = args.string("os")?.unwrap_or_else(|| "linux".into());
        let arch = match args.string("arch")? {
            Some(arch) => arch,
            None => Platform::from_nix_system(&evaluator.system)?.architecture,
        };
        let base = final_image_name.rsplit('/').next().unwrap_or(&final_image_name).to_owned();
        let name = args.string("name")?.unwrap_or_else(|| format!("{base}-{final_image_tag}.oci.tar"));
        Ok(PullArgs {
            name,
            image_name,
            image_digest,
            final_image_name,
            final_image_tag,
            os,
            arch,
            variant: args.string("variant")?,
            tls_verify: args.bool("tlsVerify")?.unwrap_or(true),
            output_hash,
        })
    }
}

/// An argument error about `tag`, said of `arg`.
fn rename(e: Error, arg: &str) -> Error {
    match e {
        Error::Argument { problem, .. } => Error::argument(arg, problem),
        other => other,
    }
}

/// Pulls the image `args` names into the OCI layout tarball `out`; `progress` hears about every
/// blob. Nothing is left at `out` when it fails.
pub fn pull(args: &PullArgs, out: &Path, progress: impl FnMut(&str)) -> Result<()> {
    let pulled = pull_into(args, out, progress);
    if pulled.is_err() {
        let _ = fs::remove_file(out);
    }
    pulled
}

fn pull_into(args: &PullArgs, out: &Path, mut progress: impl FnMut(&str)) -> Result<()> {
    let (host, repository) = ImageName::parse_argument("imageName", &args.image_name)?.locate();
    let image = format!("{}@{}", args.image_name, args.image_digest);
    let access =
        Access { tls_verify: args.tls_verify, timeouts: Timeouts::new(None, None)?, ..Access::default() };
    let source =
        Source { repository: Repository::new(Registry::connect(&host, &access)?, repository), image };
    let wanted = Digest::try_from(args.image_digest.clone()).map_err(|e| source.error(e))?;
    let mut fetched = source.manifest(&wanted, None, DOCUMENT_LIMIT)?;
    if let Document::Index(index) = &fetched.document {
        let chosen = choose_platform(index, args).map_err(|e| source.error(e))?;
        let digest = chosen.digest;
        progress(&format!("{} is an index; chose {digest} for {}", source.image, to_json(&chosen.platform)));
        let size = chosen.size.unwrap_or(DOCUMENT_LIMIT).min(DOCUMENT_LIMIT);
        fetched = source.manifest(&digest, chosen.media_type.as_deref(), size)?;
    }
    let Document::Manifest(manifest) = &fetched.document else {
        return Err(source.error("an index lists another index for the platform; that is not supported"));
    };
    let config = Blob::of(&manifest.config).map_err(|e| source.error(format!("its config {e}")))?;
    let layers: Vec<Blob> = manifest
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| Blob::of(l).map_err(|e| source.error(format!("its layer {i} {e}"))))
        .collect::<Result<_>>()?;
    if let Some(foreign) =
        layers.iter().find(|l| l.media_type.contains("foreign") || l.media_type.contains("nondistributable"))
    {
        return Err(
            source.error(format!("layer {} is {} and cannot be pulled", foreign.digest, foreign.media_type))
        );
    }
    // The config is held in memory: one larger than a document may be is refused unfetched.
    if config.size > DOCUMENT_LIMIT {
        return Err(source.error(format!(
            "its config {} has {} bytes; a config may have at most {DOCUMENT_LIMIT}",
            config.digest, config.size
        )));
    }
    let mut config_bytes = Vec::new();
    source.blob(&config, (&mut config_bytes, Path::new("(memory)")))?;
    let config_document: ImageConfig =
        oci::parse(&format!("its config {}", config.digest), &config_bytes, "image config")
            .map_err(|e| source.error(e))?;

    let file = fs::File::create(out).map_err(|e| Error::io(out, e))?;
    let mut tar = BufWriter::with_capacity(1 << 20, file);
    let io_err = |e| Error::io(out, e);
    tar.write_all(&tar_blocks::entry("oci-layout", OCI_LAYOUT.as_bytes(), PULLED_MTIME)?).map_err(io_err)?;
    tar.write_all(&tar_blocks::entry(&blob_name(&config.digest), &config_bytes, PULLED_MTIME)?)
        .map_err(io_err)?;
    let mut written = std::collections::BTreeSet::from([config.digest]);
    let total: u64 = layers.iter().map(|l| l.size).sum();
    for (i, layer) in layers.iter().enumerate() {
        if !written.insert(layer.digest) {
            continue;
        }
        tar.write_all(&file_header(&blob_name(&layer.digest), layer.size, PULLED_MTIME)?).map_err(io_err)?;
        source.blob(layer, (&mut tar, out))?;
        tar.write_all(padding(layer.size)).map_err(io_err)?;
        progress(&format!(
            "layer {}/{} {} ({} bytes of {total})",
            i + 1,
            layers.len(),
            layer.digest,
            layer.size
        ));
    }
    // The registry's manifest, as it is; the layout names it directly if it is an OCI one, else
    // through its OCI form, which readers of OCI layouts (skopeo, podman) require.
    tar.write_all(&tar_blocks::entry(&blob_name(&fetched.digest), &fetched.bytes, PULLED_MTIME)?)
        .map_err(io_err)?;
    let (digest, size) = match oci_form(&fetched.media_type, manifest) {
        Some(oci) => {
            let digest = Digest::of(&oci);
            tar.write_all(&tar_blocks::entry(&blob_name(&digest), &oci, PULLED_MTIME)?).map_err(io_err)?;
            (digest, oci.len())
        }
        None => (fetched.digest, fetched.bytes.len()),
    };
    let reference = format!("{}:{}", args.final_image_name, args.final_image_tag);
    let mut descriptor = Descriptor::new(MediaType::OciManifest, digest, size as u64).named(&reference);
    descriptor.platform = config_document.platform();
    descriptor
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(PULLED_DIGEST_ANNOTATION.into(), args.image_digest.clone());
    let index = Index::new(MediaType::OciIndex, vec![descriptor]);
    tar.write_all(&tar_blocks::entry("index.json", to_json(&index).as_bytes(), PULLED_MTIME)?)
        .map_err(io_err)?;
    tar.write_all(&END_OF_ARCHIVE).map_err(io_err)?;
    let file = tar.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.sync_all().map_err(io_err)?;
    progress(&format!("pulled {} as {reference}", source.image));
    Ok(())
}

/// The manifest of the platform `args` asks for, among an index's.
fn choose_platform<'a>(index: &'a Index, args: &PullArgs) -> std::result::Result<&'a Descriptor, String> {
    let wanted = Platform {
        architecture: args.arch.clone(),
        os: Some(args.os.clone()),
        variant: args.variant.clone(),
    };
    let fits = |p: &Platform| {
        p.os == wanted.os
            && p.architecture == wanted.architecture
            && (wanted.variant.is_none() || p.variant == wanted.variant)
    };
    index.manifests.iter().find(|m| m.platform.as_ref().is_some_and(fits)).ok_or_else(|| {
        let platforms: Vec<String> = index
            .manifests
            .iter()
            .map(|m| m.platform.as_ref().map_or_else(|| "unknown".into(), Platform::to_string))
            .collect();
        format!(
            "its index has no image for {wanted} (it has: {}); set os, arch or variant",
            platforms.join(", ")
        )
    })
}

/// The OCI form of a Docker (schema 2) manifest, a `media_type`: the same config and layers
/// under OCI's media types, as `skopeo copy … oci:…` converts it; `None` for a manifest that
/// is OCI already.
fn oci_form(media_type: &str, manifest: &Manifest) -> Option<Vec<u8>> {
    if MediaType::parse(media_type) == Some(MediaType::OciManifest) {
        return None;
    }
    let mut oci = manifest.clone();
    oci.media_type = Some(MediaType::OciManifest.as_str().into());
    for descriptor in std::iter::once(&mut oci.config).chain(&mut oci.layers) {
        if let Some(known) = descriptor.media_type.as_deref().and_then(MediaType::parse) {
            descriptor.media_type = Some(known.oci().as_str().into());
        }
    }
    Some(to_json(&oci).into_bytes())
}

/// A manifest as fetched: its bytes, digest, media type, and the parsed document.
struct Fetched {
    bytes: Vec<u8>,
    digest: Digest,
    media_type: String,
    document: Document,
}

/// A blob a manifest names.
struct Blob {
    digest: Digest,
    size: u64,
    media_type: String,
}

impl Blob {
    fn of(descriptor: &Descriptor) -> std::result::Result<Blob, &'static str> {
        Ok(Blob {
            digest: descriptor.digest,
            size: descriptor.size.ok_or("has no size")?,
            media_type: descriptor.media_type.clone().unwrap_or_default(),
        })
    }
}

/// The repository an image is pulled from.
struct Source {
    repository: Repository,
    /// `name@digest`, for messages.
    image: String,
}

impl Source {
    fn error(&self, problem: impl std::fmt::Display) -> Error {
        Error::Pull { image: self.image.clone(), problem: problem.to_string() }
    }

    /// The manifest `digest`, checked against it, of at most `limit` bytes. `media_type` is
    /// what the index said it is.
    fn manifest(&self, digest: &Digest, media_type: Option<&str>, limit: u64) -> Result<Fetched> {
        let what = format!("fetching the manifest {digest} of {}", self.image);
        let (bytes, header_type) = self
            .repository
            .manifest(&digest.to_string(), limit, &what)?
            .ok_or_else(|| self.error(format!("the manifest {digest} is larger than {limit} bytes")))?;
        let found = Digest::of(&bytes);
        if found != *digest {
            return Err(self.error(format!("the registry sent a manifest with digest {found} for {digest}")));
        }
        let document =
            Document::parse(&format!("the manifest {digest}"), &bytes).map_err(|e| self.error(e))?;
        let media_type =
            document.media_type().or(media_type).filter(|t| !t.is_empty()).unwrap_or(&header_type).to_owned();
        Ok(Fetched { bytes, digest: found, media_type, document })
    }

    /// Copies the blob `blob` to `out` (writing to `into`), checking its size and digest.
    fn blob(&self, blob: &Blob, out: (&mut dyn Write, &Path)) -> Result<()> {
        let what = format!("fetching blob {} of {}", blob.digest, self.image);
        let (digest, size) = self.repository.copy_blob(&blob.digest, blob.size, out, &what)?;
        if size != blob.size {
            return Err(self.error(format!(
                "the registry sent {size} bytes of blob {}, which has {}",
                blob.digest, blob.size
            )));
        }
        if digest != blob.digest {
            return Err(self.error(format!(
                "the registry sent other bytes for blob {}: they have digest {digest}",
                blob.digest
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(json: &str) -> Result<PullArgs> {
        PullArgs::from_nix(json, &Evaluator { system: "x86_64-linux".into(), ..Evaluator::default() })
    }

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn arguments() {
        let a = args(&format!(r#"{{"imageName":"Nginx","imageDigest":"{DIGEST}","sha256":"abc"}}"#)).unwrap();
        assert_eq!((a.final_image_name.as_str(), a.final_image_tag.as_str()), ("nginx", "latest"));
        assert_eq!((a.os.as_str(), a.arch.as_str(), a.variant.as_deref()), ("linux", "amd64", None));
        assert_eq!(
            (a.name.as_str(), a.output_hash.as_str(), a.tls_verify),
            ("nginx-latest.oci.tar", "abc", true)
        );
        let err = |json: String| args(&json).unwrap_err().to_string();
        assert!(err(format!(r#"{{"imageName":"x","imageDigest":"{DIGEST}"}}"#))
            .starts_with("argument 'sha256' (or 'hash') is required"));
        assert!(err(format!(r#"{{"imageName":"x","imageDigest":"{DIGEST}","sha256":"a","hash":"b"}}"#))
            .contains("both"));
        assert!(err(r#"{"imageName":"x","imageDigest":"latest","hash":"b"}"#.into())
            .starts_with("argument 'imageDigest'"));
        assert!(err(format!(r#"{{"imageName":"a b","imageDigest":"{DIGEST}","hash":"b"}}"#))
            .starts_with("argument 'imageName'"));
        assert!(err(format!(
            r#"{{"imageName":"x","imageDigest":"{DIGEST}","hash":"b","finalImageTag":"-x"}}"#
        ))
        .starts_with("argument 'finalImageTag'"));
        assert!(err(format!(r#"{{"imageName":"x","imageDigest":"{DIGEST}","hash":"sha512-x"}}"#))
            .starts_with("argument 'hash'"));
        assert!(err(format!(r#"{{"imageName":"x","imageDigest":"{DIGEST}","hash":"b","tlsVerify":"no"}}"#))
            .starts_with("argument 'tlsVerify'"));
        assert!(err(format!(r#"{{"imageName":"x","imageDigest":"{DIGEST}","hash":"b","tag":"1"}}"#))
            .contains("unexpected argument 'tag'"));
    }

    #[test]
    fn platforms_from_an_index() {
        let digest = |n: u8| Digest([n; 32]);
        let index: Index = serde_json::from_value(serde_json::json!({ "manifests": [
            { "digest": digest(1), "platform": { "os": "linux", "architecture": "amd64" } },
            { "digest": digest(2), "platform": { "os": "linux", "architecture": "arm", "variant": "v6" } },
            { "digest": digest(3), "platform": { "os": "linux", "architecture": "arm", "variant": "v7" } },
        ]}))
        .unwrap();
        let mut a = args(&format!(r#"{{"imageName":"x","imageDigest":"{DIGEST}","hash":"b"}}"#)).unwrap();
        assert_eq!(choose_platform(&index, &a).unwrap().digest, digest(1));
        a.arch = "arm".into();
        assert_eq!(choose_platform(&index, &a).unwrap().digest, digest(2));
        a.variant = Some("v7".into());
        assert_eq!(choose_platform(&index, &a).unwrap().digest, digest(3));
        a.arch = "riscv64".into();
        let err = choose_platform(&index, &a).unwrap_err();
        assert!(
            err.contains("no image for linux/riscv64/v7 (it has: linux/amd64, linux/arm/v6, linux/arm/v7)"),
            "{err}"
        );
    }
}

//! What a push puts beside an image in a registry: documents about it (SBOMs, provenance), each
//! as an OCI 1.1 referrer — an artifact manifest whose `subject` is the image's manifest — and
//! its signature, where cosign keeps one (the tag `sha256-<digest>.sig`); and the check of such
//! signatures (`stowage verify`).
//!
//! A registry with the referrers API indexes a referrer itself, and says so (`OCI-Subject`);
//! for one without it (Debian's distribution), the referrers are listed in an index under the
//! tag `sha256-<digest>`, as the distribution spec's fallback says, which OCI 1.1 clients read.

use crate::attest::signature::{self, PublicKey, SigningKey, PAYLOAD_MEDIA_TYPE, SIGNATURE_ANNOTATION};
use crate::format::digest::Digest;
use crate::format::oci::MediaType;
use crate::registry::access::Access;
use crate::registry::client::Registry;
use crate::registry::destination::Destination;
use crate::registry::repository::Repository;
use crate::{Error, Result};
use serde_json::{json, Value};
use std::path::Path;

/// The media type of an in-toto statement (provenance), as referrers name it.
const IN_TOTO: &str = "application/vnd.in-toto+json";

/// The empty config of an artifact manifest (`{}`), as OCI 1.1 defines it.
const EMPTY_CONFIG: &[u8] = b"{}";
const EMPTY_CONFIG_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// The most bytes of a referrers index or signature manifest read back.
const DOCUMENT_LIMIT: u64 = 4 << 20;

/// A document to attach (`--attach FILE`).
pub struct Attachment {
    /// Its media type, the referrer's `artifactType`.
    media_type: &'static str,
    /// The file's bytes, attached as they are.
    bytes: Vec<u8>,
    /// An in-toto statement without a subject (a Nix-built provenance cannot know the pushed
    /// manifest), to attach with the image as its subject.
    unbound: Option<Value>,
    /// The file's name, the layer's title.
    title: String,
}

impl Attachment {
    /// Reads the document at `path`: an SPDX or CycloneDX JSON SBOM, or an in-toto statement.
    pub fn read(path: &Path) -> Result<Attachment> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = |what: &str| Error::argument("--attach", format!("{}: {what}", path.display()));
        let document: Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(&format!("is not JSON: {e}")))?;
        let media_type = if document["spdxVersion"].is_string() {
            "application/spdx+json"
        } else if document["bomFormat"] == "CycloneDX" {
            "application/vnd.cyclonedx+json"
        } else if document["_type"].as_str().is_some_and(|t| t.starts_with("https://in-toto.io/Statement/")) {
            IN_TOTO
        } else {
            return Err(bad("is neither an SPDX nor a CycloneDX JSON document nor an in-toto statement"));
        };
        let unbound = (media_type == IN_TOTO
            && !document["subject"].as_array().is_some_and(|s| !s.is_empty()))
        .then_some(document);
        let title = path.file_name().map_or("document".into(), |n| n.to_string_lossy().into_owned());
        Ok(Attachment { media_type, bytes, unbound, title })
    }

    /// Its bytes for the image `subject` in `repository`.
    fn bytes(&self, repository: &str, subject: &Subject) -> Vec<u8> {
        match &self.unbound {
            Some(statement) => {
                let mut statement = statement.clone();
                statement["subject"] =
                    json!([{ "name": repository, "digest": { "sha256": subject.digest.hex() } }]);
                serde_json::to_vec_pretty(&statement).expect("JSON values serialise")
            }
            None => self.bytes.clone(),
        }
    }
}

/// What is attached to a push, and the key that signs it.
#[derive(Default)]
pub struct Attached {
    /// The documents.
    pub attachments: Vec<Attachment>,
    /// The signing key.
    pub sign_key: Option<SigningKey>,
}

impl Attached {
    /// Whether there is nothing to attach or sign.
    pub fn is_empty(&self) -> bool {
        self.attachments.is_empty() && self.sign_key.is_none()
    }
}

/// The manifest things are attached to.
pub struct Subject {
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its media type.
    pub media_type: MediaType,
}

impl Subject {
    fn descriptor(&self) -> Value {
        json!({ "mediaType": self.media_type.as_str(), "digest": self.digest.to_string(), "size": self.size })
    }
}

/// Attaches `attached` to `subject` in `client` (`repository`: `host[:port]/name`, as a signature
/// names it).
pub fn attach(
    client: &Repository,
    repository: &str,
    subject: &Subject,
    attached: &Attached,
    progress: &mut impl FnMut(&str),
) -> Result<()> {
    let mut fallback = Vec::new();
    for attachment in &attached.attachments {
        let bytes = attachment.bytes(repository, subject);
        client.put_blob(&bytes)?;
        client.put_blob(EMPTY_CONFIG)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MediaType::OciManifest.as_str(),
            "artifactType": attachment.media_type,
            "config": { "mediaType": EMPTY_CONFIG_TYPE, "digest": Digest::of(EMPTY_CONFIG).to_string(), "size": 2 },
            "layers": [{
                "mediaType": attachment.media_type,
                "digest": Digest::of(&bytes).to_string(),
                "size": bytes.len(),
                "annotations": { "org.opencontainers.image.title": attachment.title },
            }],
            "subject": subject.descriptor(),
        })
        .to_string();
        let digest = Digest::of(manifest.as_bytes());
        let indexed = client.put_manifest(&digest.to_string(), &manifest, MediaType::OciManifest)?;
        progress(&format!("{} {} attached as {digest}", attachment.media_type, attachment.title));
        if indexed.as_deref() != Some(subject.digest.to_string().as_str()) {
            fallback.push(json!({
                "mediaType": MediaType::OciManifest.as_str(),
                "digest": digest.to_string(),
                "size": manifest.len(),
                "artifactType": attachment.media_type,
            }));
        }
    }
    if !fallback.is_empty() {
        list_referrers(client, subject, fallback, progress)?;
    }
    if let Some(key) = &attached.sign_key {
        sign(client, repository, subject, key, progress)?;
    }
    Ok(())
}

/// Adds `referrers` to the index under the referrers tag of `subject`, for a registry without
/// the referrers API.
fn list_referrers(
    client: &Repository,
    subject: &Subject,
    referrers: Vec<Value>,
    progress: &mut impl FnMut(&str),
) -> Result<()> {
    let tag = format!("sha256-{}", subject.digest.hex());
    let what = format!("reading the referrers index {tag}");
    let mut index = match client.find_manifest(&tag, DOCUMENT_LIMIT, &what)? {
        Some(bytes) => serde_json::from_slice::<Value>(&bytes)
            .ok()
            .filter(|i| i["manifests"].is_array())
            .ok_or_else(|| refused(client, &what, "it is not an image index"))?,
        None => json!({ "schemaVersion": 2, "mediaType": MediaType::OciIndex.as_str(), "manifests": [] }),
    };
    let listed = index["manifests"].as_array_mut().expect("an array");
    let before = listed.len();
    for referrer in referrers {
        if !listed.iter().any(|l| l["digest"] == referrer["digest"]) {
            listed.push(referrer);
        }
    }
    if listed.len() != before {
        client.put_manifest(&tag, &index.to_string(), MediaType::OciIndex)?;
        progress(&format!("referrers listed under the tag {tag} (the registry has no referrers API)"));
    }
    Ok(())
}

/// Signs `subject` with `key`, as cosign does: the payload as a layer of the manifest under the
/// tag `sha256-<digest>.sig`, with its signature as an annotation; signatures already there are
/// kept, and one of the same key for the same image is not made again.
fn sign(
    client: &Repository,
    repository: &str,
    subject: &Subject,
    key: &SigningKey,
    progress: &mut impl FnMut(&str),
) -> Result<()> {
    let tag = signature_tag(&subject.digest);
    let payload = signature::payload(repository, &subject.digest);
    let payload_digest = Digest::of(&payload);
    let what = format!("reading the signatures {tag}");
    let mut layers: Vec<Value> = match client.find_manifest(&tag, DOCUMENT_LIMIT, &what)? {
        Some(bytes) => serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|m| m["layers"].as_array().cloned())
            .ok_or_else(|| refused(client, &what, "it is not an image manifest"))?,
        None => Vec::new(),
    };
    let public = key.public_key();
    let signed_already = layers.iter().any(|layer| {
        layer["digest"] == payload_digest.to_string()
            && layer["annotations"][SIGNATURE_ANNOTATION]
                .as_str()
                .is_some_and(|s| public.verifies(&payload, s))
    });
    if signed_already {
        progress(&format!("signature {tag}: the registry has this key's signature of the image"));
        return Ok(());
    }
    client.put_blob(&payload)?;
    layers.push(json!({
        "mediaType": PAYLOAD_MEDIA_TYPE,
        "digest": payload_digest.to_string(),
        "size": payload.len(),
        "annotations": { SIGNATURE_ANNOTATION: key.sign(&payload)? },
    }));
    // cosign's config: an empty image whose layers are the payloads
    let diff_ids: Vec<&Value> = layers.iter().map(|l| &l["digest"]).collect();
    let zero = "0001-01-01T00:00:00Z";
    let config = json!({
        "architecture": "", "os": "", "created": zero, "config": {},
        "history": diff_ids.iter().map(|_| json!({ "created": zero })).collect::<Vec<_>>(),
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    })
    .to_string();
    client.put_blob(config.as_bytes())?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OciManifest.as_str(),
        "config": {
            "mediaType": MediaType::OciConfig.as_str(),
            "digest": Digest::of(config.as_bytes()).to_string(),
            "size": config.len(),
        },
        "layers": layers,
    })
    .to_string();
    client.put_manifest(&tag, &manifest, MediaType::OciManifest)?;
    progress(&format!("signed: {tag}"));
    Ok(())
}

/// The tag cosign keeps the signatures of the manifest `digest` under.
pub fn signature_tag(digest: &Digest) -> String {
    format!("sha256-{}.sig", digest.hex())
}

fn refused(client: &Repository, what: &str, why: &str) -> Error {
    client.registry().failure(what, crate::registry::client::Failure::Refused(why.into()))
}

/// The signed payloads of the image `dest` names (its tag's manifest) that `key` verifies — as
/// `cosign verify --key` checks them: each payload's signature, and that it names this
/// manifest. None is an error that says what was found.
pub fn verify(dest: &Destination, key: &PublicKey, access: &Access) -> Result<Vec<Value>> {
    let client = Repository::new(Registry::connect(&dest.registry, access)?, dest.repository.clone());
    let image = format!("{}/{}:{}", dest.registry, dest.repository, dest.tag);
    let what = format!("reading the manifest of {image}");
    let manifest = client
        .find_manifest(&dest.tag, DOCUMENT_LIMIT, &what)?
        .ok_or_else(|| refused(&client, &what, "there is no such tag"))?;
    let digest = Digest::of(&manifest);
    let tag = signature_tag(&digest);
    let what = format!("reading the signatures of {image} ({digest})");
    let signatures = client.find_manifest(&tag, DOCUMENT_LIMIT, &what)?.ok_or_else(|| {
        Error::Verification(format!("{image} ({digest}) is not signed: the registry has no {tag}"))
    })?;
    let layers = serde_json::from_slice::<Value>(&signatures)
        .ok()
        .and_then(|m| m["layers"].as_array().cloned())
        .ok_or_else(|| refused(&client, &what, "it is not an image manifest"))?;
    let mut verified = Vec::new();
    let mut rejected = Vec::new();
    for layer in layers.iter().filter(|l| l["mediaType"] == PAYLOAD_MEDIA_TYPE) {
        let Some(payload_digest) = layer["digest"].as_str().and_then(|d| Digest::try_from(d.to_owned()).ok())
        else {
            rejected.push("a signature layer without a digest".to_owned());
            continue;
        };
        let mut payload = Vec::new();
        let what = format!("fetching the signed payload {payload_digest}");
        let (found, _) = client.copy_blob(
            &payload_digest,
            DOCUMENT_LIMIT,
            (&mut payload, Path::new("(memory)")),
            &what,
        )?;
        let signed = signature::signed_digest(&payload);
        let verifies =
            layer["annotations"][SIGNATURE_ANNOTATION].as_str().is_some_and(|s| key.verifies(&payload, s));
        if found != payload_digest {
            rejected.push(format!("payload {payload_digest}: the registry sent other bytes ({found})"));
        } else if !verifies {
            rejected.push(format!("payload {payload_digest}: its signature is not this key's"));
        } else if signed.as_deref() != Some(digest.to_string().as_str()) {
            rejected.push(format!(
                "payload {payload_digest}: signed by this key, but for {}, not this manifest",
                signed.as_deref().unwrap_or("no image")
            ));
        } else {
            verified.push(serde_json::from_slice(&payload).expect("a payload that names a digest is JSON"));
        }
    }
    if verified.is_empty() {
        let found = if rejected.is_empty() { "no signature layer".to_owned() } else { rejected.join("; ") };
        return Err(Error::Verification(format!(
            "{image} ({digest}) has no valid signature by this key: {found}"
        )));
    }
    Ok(verified)
}

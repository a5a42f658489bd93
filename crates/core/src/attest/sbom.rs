//! Software bills of materials of an image: an SPDX 2.3 or a CycloneDX 1.5 JSON document
//! listing every store path the image holds as a package — name and version as Nix parses
//! them from the path, the NAR hash, the paths it refers to, and, for the paths the evaluated
//! `contents` name, their deriver and `meta` (license, homepage, description) — and every layer
//! whose content stowage does not know (a base image's), by digest.
//!
//! The documents are functions of the image: no clock, no random serial number. Where the
//! formats want a unique name (SPDX's namespace, CycloneDX's serial number), it is made from
//! the digest of what the document says.

use crate::format::closure::ClosureEntry;
use crate::format::digest::Digest;
use crate::image::plan::{LayerSource, Plan};
use crate::layer::nix_db::sha256_of;
use crate::{Error, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The SBOM formats stowage writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SbomFormat {
    /// SPDX 2.3, JSON.
    Spdx,
    /// CycloneDX 1.5, JSON.
    CycloneDx,
}

/// What Nix's evaluation knows of one of the image's `contents`: its store path, the
/// derivation that made it, and its `meta`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Described {
    /// The store path.
    pub path: String,
    /// The derivation (`drvPath`), if it is a derivation's output.
    #[serde(default)]
    pub deriver: Option<String>,
    /// `meta.license`: a nixpkgs license (`{ spdxId, fullName, shortName }`), a string, or a
    /// list of them.
    #[serde(default)]
    pub license: Value,
    /// `meta.homepage` (a string, or a list whose first is taken).
    #[serde(default)]
    pub homepage: Value,
    /// `meta.description`.
    #[serde(default)]
    pub description: Option<String>,
}

/// One store path of the image, as an SBOM lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Package {
    path: String,
    name: String,
    version: Option<String>,
    nar_hash: Option<Digest>,
    /// The image's store paths it refers to (not itself).
    references: Vec<String>,
    deriver: Option<String>,
    /// SPDX license identifiers, if every license has one.
    spdx_licenses: Option<Vec<String>>,
    /// The licenses' names, as given.
    license_names: Vec<String>,
    homepage: Option<String>,
    description: Option<String>,
    /// Whether it is copied into the image's root (buildImage's copyToRoot) rather than held
    /// in its store.
    in_root: bool,
}

/// What an image holds, as its SBOM says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// `name:tag`.
    reference: String,
    /// The image config's `created`, as SPDX writes times.
    created: String,
    packages: Vec<Package>,
    /// Layers of content unknown to stowage (a base image's), by diff_id, bottom first.
    opaque_layers: Vec<Digest>,
}

impl Inventory {
    /// The inventory of the one image `plan` holds, its store paths described by `closure`
    /// (what Nix exported to the build) and `described` (what evaluation knew of `contents`);
    /// `in_root` are store paths copied into its root (buildImage's copyToRoot).
    pub fn of(
        plan: &Plan,
        closure: &[ClosureEntry],
        described: &[Described],
        in_root: &[String],
    ) -> Result<Inventory> {
        let [image] = plan.images.as_slice() else {
            return Err(Error::argument(
                "stream",
                format!("holds {} images; an SBOM describes one image", plan.images.len()),
            ));
        };
        let mut held = BTreeSet::new();
        let mut opaque_layers = Vec::new();
        for layer in &image.layers {
            match &layer.source {
                LayerSource::Store(source) => held.extend(source.store_paths.iter().cloned()),
                LayerSource::Archive(_) => opaque_layers.push(layer.id()),
            }
        }
        held.extend(in_root.iter().cloned());
        let exported: BTreeMap<&str, &ClosureEntry> = closure.iter().map(|e| (e.path.as_str(), e)).collect();
        let described: BTreeMap<&str, &Described> = described.iter().map(|d| (d.path.as_str(), d)).collect();
        let packages = held
            .iter()
            .map(|path| {
                let entry = exported.get(path.as_str()).ok_or_else(|| {
                    Error::argument("closure", format!("lacks {path}, which the image holds"))
                })?;
                package(path, entry, described.get(path.as_str()).copied(), &held, in_root)
            })
            .collect::<Result<Vec<_>>>()?;
        let config: Value = serde_json::from_str(&image.config)
            .map_err(|e| Error::argument("stream", format!("has an image config that is not JSON: {e}")))?;
        Ok(Inventory {
            reference: image.repo_tags.first().cloned().unwrap_or_default(),
            created: spdx_time(config["created"].as_str().unwrap_or("1970-01-01T00:00:01Z"))?,
            packages,
            opaque_layers,
        })
    }

    /// The SBOM in `format`.
    pub fn document(&self, format: SbomFormat) -> Value {
        match format {
            SbomFormat::Spdx => self.spdx(),
            SbomFormat::CycloneDx => self.cyclonedx(),
        }
    }

    /// The store paths it lists, with their NAR hashes.
    pub fn packages(&self) -> impl Iterator<Item = (&str, Option<&Digest>)> {
        self.packages.iter().map(|p| (p.path.as_str(), p.nar_hash.as_ref()))
    }

    /// The image's `name:tag`.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    fn spdx(&self) -> Value {
        let image_id = "SPDXRef-Image";
        let mut packages = vec![json!({
            "SPDXID": image_id,
            "name": self.reference,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "CONTAINER",
            "comment": "A container image built by stowage from the Nix store.",
        })];
        let mut relationships = vec![relationship("SPDXRef-DOCUMENT", "DESCRIBES", image_id)];
        for p in &self.packages {
            let id = spdx_id(&p.path);
            let mut package = json!({
                "SPDXID": id,
                "name": p.name,
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": false,
                "copyrightText": "NOASSERTION",
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": p.spdx_licenses.as_ref().map_or("NOASSERTION".into(), |l| l.join(" AND ")),
                "comment": p.comment(),
            });
            let fields = package.as_object_mut().expect("an object");
            if let Some(version) = &p.version {
                fields.insert("versionInfo".into(), json!(version));
            }
            if let Some(hash) = &p.nar_hash {
                fields.insert(
                    "checksums".into(),
                    json!([{ "algorithm": "SHA256", "checksumValue": hash.hex() }]),
                );
            }
            if let Some(homepage) = &p.homepage {
                fields.insert("homepage".into(), json!(homepage));
            }
            if let Some(description) = &p.description {
                fields.insert("description".into(), json!(description));
            }
            if p.spdx_licenses.is_none() && !p.license_names.is_empty() {
                fields.insert(
                    "licenseComments".into(),
                    json!(format!("meta.license: {}", p.license_names.join("; "))),
                );
            }
            packages.push(package);
            relationships.push(relationship(image_id, "CONTAINS", &id));
            for reference in &p.references {
                relationships.push(relationship(&id, "DEPENDS_ON", &spdx_id(reference)));
            }
        }
        for (i, layer) in self.opaque_layers.iter().enumerate() {
            let id = format!("SPDXRef-Layer-{}", layer.hex());
            packages.push(json!({
                "SPDXID": id,
                "name": format!("layer {} ({layer})", i + 1),
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": false,
                "checksums": [{ "algorithm": "SHA256", "checksumValue": layer.hex() }],
                "comment": "A layer of the base image, its content unknown to stowage; the checksum is its diff_id.",
            }));
            relationships.push(relationship(image_id, "CONTAINS", &id));
        }
        let mut document = json!({
            "spdxVersion": "SPDX-2.3",
            "dataLicense": "CC0-1.0",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": self.reference,
            "creationInfo": {
                "created": self.created,
                "creators": [format!("Tool: stowage-{}", crate::VERSION)],
            },
            "packages": packages,
            "relationships": relationships,
        });
        // SPDX wants a unique namespace: the document's own digest is one.
        let digest = Digest::of(document.to_string().as_bytes());
        document["documentNamespace"] =
            json!(format!("https://spdx.org/spdxdocs/{}-{}", name_part(&self.reference), uuid(&digest)));
        document
    }

    fn cyclonedx(&self) -> Value {
        let image_ref = "image";
        let (name, version) = self.reference.rsplit_once(':').unwrap_or((&self.reference, ""));
        let mut components = Vec::new();
        let mut dependencies = vec![json!({
            "ref": image_ref,
            "dependsOn": self.packages.iter().map(|p| p.path.as_str()).collect::<Vec<_>>(),
        })];
        for p in &self.packages {
            let mut properties = vec![json!({ "name": "nix:store_path", "value": p.path })];
            if let Some(hash) = &p.nar_hash {
                properties.push(json!({ "name": "nix:nar_hash", "value": format!("sha256:{}", hash.hex()) }));
            }
            if let Some(deriver) = &p.deriver {
                properties.push(json!({ "name": "nix:deriver", "value": deriver }));
            }
            if p.in_root {
                properties.push(json!({ "name": "stowage:copied_to_root", "value": "true" }));
            }
            let mut component = json!({
                "type": "library",
                "bom-ref": p.path,
                "name": p.name,
                "properties": properties,
            });
            let fields = component.as_object_mut().expect("an object");
            if let Some(version) = &p.version {
                fields.insert("version".into(), json!(version));
            }
            if let Some(description) = &p.description {
                fields.insert("description".into(), json!(description));
            }
            if let Some(hash) = &p.nar_hash {
                fields.insert("hashes".into(), json!([{ "alg": "SHA-256", "content": hash.hex() }]));
            }
            match &p.spdx_licenses {
                Some(ids) if !ids.is_empty() => {
                    fields.insert("licenses".into(), json!([{ "expression": ids.join(" AND ") }]));
                }
                _ if !p.license_names.is_empty() => {
                    let names: Vec<Value> =
                        p.license_names.iter().map(|n| json!({ "license": { "name": n } })).collect();
                    fields.insert("licenses".into(), json!(names));
                }
                _ => {}
            }
            if let Some(homepage) = &p.homepage {
                fields.insert("externalReferences".into(), json!([{ "type": "website", "url": homepage }]));
            }
            components.push(component);
            dependencies.push(json!({ "ref": p.path, "dependsOn": p.references }));
        }
        for (i, layer) in self.opaque_layers.iter().enumerate() {
            components.push(json!({
                "type": "data",
                "bom-ref": format!("layer:{layer}"),
                "name": format!("layer {} ({layer})", i + 1),
                "description": "A layer of the base image, its content unknown to stowage; the hash is its diff_id.",
                "hashes": [{ "alg": "SHA-256", "content": layer.hex() }],
            }));
        }
        let mut document = json!({
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "version": 1,
            "metadata": {
                "timestamp": self.created,
                "tools": { "components": [{ "type": "application", "name": "stowage", "version": crate::VERSION }] },
                "component": { "type": "container", "bom-ref": image_ref, "name": name, "version": version },
            },
            "components": components,
            "dependencies": dependencies,
        });
        let digest = Digest::of(document.to_string().as_bytes());
        document["serialNumber"] = json!(format!("urn:uuid:{}", uuid(&digest)));
        document
    }
}

impl Package {
    fn comment(&self) -> String {
        let mut comment = format!("Nix store path {}", self.path);
        if self.in_root {
            comment.push_str(", copied into the image's root");
        }
        if self.nar_hash.is_some() {
            comment.push_str("; the checksum is its NAR's");
        }
        if let Some(deriver) = &self.deriver {
            comment.push_str(&format!("; built by {deriver}"));
        }
        comment + "."
    }
}

/// The package of the store path `path`.
fn package(
    path: &str,
    entry: &ClosureEntry,
    described: Option<&Described>,
    held: &BTreeSet<String>,
    in_root: &[String],
) -> Result<Package> {
    let (name, version) = parse_name(store_name(path));
    let nar_hash = match entry.nar_hash.as_deref() {
        Some(hash) => Some(Digest(
            sha256_of(hash)
                .map_err(|why| Error::argument("closure", format!("{path}: narHash {hash:?} {why}")))?,
        )),
        None => None,
    };
    let described = described.cloned().unwrap_or_default();
    let (spdx_licenses, license_names) = licenses(&described.license);
    let homepage = match &described.homepage {
        Value::String(url) => Some(url.clone()),
        Value::Array(urls) => urls.first().and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    Ok(Package {
        path: path.to_owned(),
        name: name.to_owned(),
        version: version.map(str::to_owned),
        nar_hash,
        references: entry.references.iter().filter(|r| *r != path && held.contains(*r)).cloned().collect(),
        deriver: described.deriver,
        spdx_licenses,
        license_names,
        homepage,
        description: described.description.filter(|d| !d.is_empty()),
        in_root: in_root.iter().any(|r| r == path),
    })
}

/// The SPDX identifiers of `license` (nixpkgs' `meta.license`), if every license has one, and
/// the names of them all.
fn licenses(license: &Value) -> (Option<Vec<String>>, Vec<String>) {
    let each: Vec<&Value> = match license {
        Value::Array(list) => list.iter().collect(),
        Value::Null => Vec::new(),
        one => vec![one],
    };
    let mut ids = Some(Vec::new());
    let mut names = Vec::new();
    for license in each {
        let id = license["spdxId"].as_str().filter(|id| is_spdx_id(id));
        let name = license
            .as_str()
            .or_else(|| license["fullName"].as_str())
            .or_else(|| license["shortName"].as_str())
            .or(id);
        match (id, &mut ids) {
            (Some(id), Some(ids)) => ids.push(id.to_owned()),
            _ => ids = None,
        }
        names.extend(name.map(str::to_owned));
    }
    (ids.filter(|ids| !ids.is_empty()), names)
}

/// Whether `id` can stand in an SPDX license expression as it is.
fn is_spdx_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'+')
}

/// The name of a store path after its hash.
fn store_name(path: &str) -> &str {
    let base = path.rsplit('/').next().unwrap_or(path);
    base.split_once('-').map_or(base, |(_, name)| name)
}

/// A store path's name split as Nix's `builtins.parseDrvName` splits it: the version starts
/// at the first dash that is followed by something other than a letter.
fn parse_name(name: &str) -> (&str, Option<&str>) {
    let bytes = name.as_bytes();
    (0..bytes.len())
        .find(|&i| bytes[i] == b'-' && bytes.get(i + 1).is_some_and(|b| !b.is_ascii_alphabetic()))
        .map_or((name, None), |i| (&name[..i], Some(&name[i + 1..])))
}

/// The SPDX identifier of a store path: its hash is unique, and letters and digits only.
fn spdx_id(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let (hash, name) = base.split_once('-').unwrap_or((base, ""));
    let name: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' }).collect();
    format!("SPDXRef-nix-{hash}-{name}")
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({ "spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to })
}

/// The part of `name:tag` fit for a URI path.
fn name_part(reference: &str) -> String {
    reference
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' })
        .collect()
}

/// A UUID made of `digest`, shaped as a name-based one (version 5, RFC 4122 variant), which is
/// what CycloneDX's serial numbers must look like.
fn uuid(digest: &Digest) -> String {
    let mut b: [u8; 16] = digest.0[..16].try_into().expect("16 bytes");
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// `time` (RFC 3339) as SPDX writes times: UTC, to the second, `Z`.
fn spdx_time(time: &str) -> Result<String> {
    let parsed = time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
        .map_err(|e| Error::argument("created", format!("is {time:?}, not an RFC 3339 time: {e}")))?;
    let utc = parsed.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).expect("0 ns is a time");
    Ok(utc.format(&time::format_description::well_known::Rfc3339).expect("a UTC time formats"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_split_as_nix_splits_them() {
        assert_eq!(parse_name("hello-2.12.1"), ("hello", Some("2.12.1")));
        assert_eq!(parse_name("glibc-2.37-8-bin"), ("glibc", Some("2.37-8-bin")));
        assert_eq!(parse_name("bash-interactive-5.2"), ("bash-interactive", Some("5.2")));
        assert_eq!(parse_name("fake-nss"), ("fake-nss", None));
        assert_eq!(store_name("/s/abc-hello-1"), "hello-1");
        assert_eq!(spdx_id("/s/abc-gtk+3-3.24_x"), "SPDXRef-nix-abc-gtk-3-3.24-x");
    }

    #[test]
    fn licenses_from_nixpkgs_meta() {
        let mit = json!({ "spdxId": "MIT", "fullName": "MIT License" });
        assert_eq!(licenses(&mit), (Some(vec!["MIT".into()]), vec!["MIT License".into()]));
        let two = json!([mit, { "spdxId": "Apache-2.0", "shortName": "asl20" }]);
        assert_eq!(licenses(&two).0, Some(vec!["MIT".into(), "Apache-2.0".into()]));
        // one without an SPDX identifier: no expression, every name kept
        let mixed = json!([{ "spdxId": "MIT" }, { "fullName": "Unfree" }]);
        assert_eq!(licenses(&mixed), (None, vec!["MIT".into(), "Unfree".into()]));
        assert_eq!(licenses(&json!("custom")), (None, vec!["custom".into()]));
        assert_eq!(licenses(&Value::Null), (None, vec![]));
    }

    #[test]
    fn times_and_serial_numbers() {
        assert_eq!(spdx_time("2024-05-06T07:08:09.123+02:00").unwrap(), "2024-05-06T05:08:09Z");
        assert!(spdx_time("yesterday").unwrap_err().to_string().contains("'created'"));
        let id = uuid(&Digest([0xff; 32]));
        assert_eq!(id, "ffffffff-ffff-5fff-bfff-ffffffffffff");
    }
}

//! The provenance of an image: an in-toto statement (v1) with a SLSA provenance v1 predicate,
//! naming the derivation that planned the image, the system and store it was built for, the
//! builder, and every store path the image holds, with its NAR hash, as the build's resolved
//! dependencies.
//!
//! The statement's `subject` is left empty: the digest a registry knows the image by is only
//! made when it is pushed (it depends on the compression), and the push fills it in
//! ([`crate::write::attach`]).

use crate::attest::sbom::Inventory;
use serde_json::{json, Value};

/// What the provenance says of the build besides the image's contents.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Build {
    /// The derivation of the image's plan (its stream).
    pub derivation: String,
    /// The public function that made it (`buildLayeredImage`).
    pub function: String,
    /// The Nix system it was built for.
    pub system: String,
    /// The store it was built in.
    pub store_dir: String,
    /// The stowage executable that built it.
    pub builder: String,
}

/// The build type of stowage's images: a plan derivation's output, streamed.
const BUILD_TYPE: &str = "urn:stowage:build-type:nix-image:v1";

/// The provenance statement of the image `inventory` describes, built as `build` says.
pub fn statement(inventory: &Inventory, build: &Build) -> Value {
    let dependencies: Vec<Value> = inventory
        .packages()
        .map(|(path, nar_hash)| {
            let mut dependency = json!({ "uri": format!("file://{path}") });
            if let Some(hash) = nar_hash {
                dependency["digest"] = json!({ "sha256": hash.hex() });
            }
            dependency
        })
        .collect();
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "derivation": build.derivation,
                    "function": build.function,
                    "image": inventory.reference(),
                },
                "internalParameters": { "system": build.system, "storeDir": build.store_dir },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {
                    "id": format!("file://{}", build.builder),
                        "version": { "stowage": crate::VERSION },
                },
            },
        },
    })
}

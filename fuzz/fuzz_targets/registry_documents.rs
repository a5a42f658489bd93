//! Feeds what a registry or an archive says about an image to the parsers of its documents: an
//! image manifest or index, an image config, docker-archive's `manifest.json`, a token service's
//! answer, a `WWW-Authenticate` challenge and a registry's error body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage_core::format::oci::{self, DockerManifestEntry, Document, ImageConfig, MediaType};
use stowage_core::registry::client::{challenge_params, registry_errors, token_in};

fuzz_target!(|data: &[u8]| {
    // What stowage writes from a document it read must read back: pulls and merges re-write
    // read documents.
    match Document::parse("document", data) {
        Ok(Document::Manifest(manifest)) => {
            oci::parse::<oci::Manifest>("again", oci::to_json(&manifest).as_bytes(), "image manifest")
                .unwrap();
            for layer in &manifest.layers {
                let _ = layer.media_type.as_deref().map(MediaType::parse);
            }
        }
        Ok(Document::Index(index)) => {
            oci::parse::<oci::Index>("again", oci::to_json(&index).as_bytes(), "image index").unwrap();
            for manifest in &index.manifests {
                let _ = manifest.annotation(oci::REF_NAME);
            }
        }
        Err(_) => {}
    }
    if let Ok(config) = oci::parse::<ImageConfig>("config", data, "image config") {
        let _ = config.platform().map(|platform| platform.to_string());
        oci::parse::<ImageConfig>("again", oci::to_json(&config).as_bytes(), "image config").unwrap();
    }
    let _ = oci::parse::<Vec<DockerManifestEntry>>("manifest.json", data, "docker-archive manifest");
    let _ = token_in(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ImageConfig::platform_of(text);
        let _ = challenge_params(text);
        let _ = registry_errors(text);
    }
});

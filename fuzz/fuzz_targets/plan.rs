//! Feeds what the builder reads back to its parsers: a stream script or plan JSON to
//! `Plan::parse`, which `Plan::read` runs on a file's text (a plan read is written again and
//! must read back the same); and the closure Nix exports to the build, whose NAR hashes
//! `nix_db::sha256_of` decodes in every encoding Nix writes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use stowage_core::format::closure::ClosureEntry;
use stowage_core::image::plan::Plan;
use stowage_core::layer::nix_db::sha256_of;

fuzz_target!(|text: &str| {
    let _ = sha256_of(text);
    if let Ok(closure) = serde_json::from_str::<Vec<ClosureEntry>>(text) {
        closure.iter().filter_map(|e| e.nar_hash.as_deref()).for_each(|hash| drop(sha256_of(hash)));
    }
    let Some(Ok(plan)) = Plan::parse(text) else { return };
    let _ = plan.unique_layers();
    let _ = plan.has_pending_layers();
    let again = Plan::parse(&plan.to_script(Path::new("/bin/stowage")));
    assert_eq!(again.expect("a stream script").expect("a plan"), plan);
});

//! Feeds a stream script or plan JSON (what the builder and the streamer read back) to
//! `Plan::parse`, which `Plan::read` runs on a file's text; a plan read is written again and
//! must read back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use stowage_core::image::plan::Plan;

fuzz_target!(|text: &str| {
    let Some(Ok(plan)) = Plan::parse(text) else { return };
    let _ = plan.unique_layers();
    let _ = plan.has_pending_layers();
    let again = Plan::parse(&plan.to_script(Path::new("/bin/stowage")));
    assert_eq!(again.expect("a stream script").expect("a plan"), plan);
});

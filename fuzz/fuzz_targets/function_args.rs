//! Feeds arbitrary JSON, as the plugin and the builder hand over a library function's arguments,
//! to every function's checks (`functions::call::check`: `ImageArgs::from_nix` and the others),
//! to fakeNss's (whose tree the plugin then writes as a NAR), and to the builder's reading of
//! the call a derivation carries. The first byte picks whether Nix's sandbox has a shell.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage_core::functions::args::Evaluator;
use stowage_core::functions::call::{check, Call};
use stowage_core::functions::fake_nss::FakeNss;

/// Every function `check` knows, and one it does not.
const FUNCTIONS: [&str; 9] = [
    "streamLayeredImage",
    "buildLayeredImage",
    "buildImage",
    "mergeImages",
    "streamMergedImages",
    "buildImageIndex",
    "pullImage",
    "buildLayer",
    "noSuchFunction",
];

fuzz_target!(|data: &[u8]| {
    let Some((&shell, json)) = data.split_first() else { return };
    let Ok(json) = std::str::from_utf8(json) else { return };
    let nix = Evaluator {
        system: "x86_64-linux".into(),
        store_dir: "/store".into(),
        sandbox_paths: if shell & 1 == 1 { vec!["/bin/sh".into()] } else { vec![] },
    };
    for function in FUNCTIONS {
        if let Ok(checked) = check(function, json, &nix) {
            // the builder gets the checked arguments as JSON
            let _ = serde_json::to_string(&checked).unwrap();
        }
    }
    if let Ok(fake_nss) = FakeNss::from_nix(json) {
        let _ = fake_nss.tree().to_nar();
    }
    if let Ok(call) = serde_json::from_str::<Call>(json) {
        let _ = call.check();
    }
});

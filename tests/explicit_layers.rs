//! Explicit layers, nix2container's way: `buildLayer { deps; copyToRoot; layers; … }` makes a
//! derivation of its own, planned and hashed once, and an image's `layers` takes it — with the
//! layers it is built on below it, and its store paths in no other layer of the image. Images
//! are checked by skopeo and podman (fresh stores) and run; a second image reuses a layer that
//! is built (Nix does not build it again); `nix-build --check` rebuilds each derivation to the
//! same bytes.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use support::images::{expr, layer_headers, skopeo_config, Podman};
use support::TestNix;

/// Layers of store paths: `low` holds lib1 and lib2; `high`, built on it, lib3 and lib4, and
/// busybox's files copied into the root (`/bin/busybox`, `/bin/sh`), as nix2container copies
/// them: busybox itself is not in the store, nothing refers to it.
const LAYERS: &str = r#"
  low = s.buildLayer { deps = [ lib2 ]; };
  high = s.buildLayer { deps = [ lib4 ]; copyToRoot = busybox; layers = [ low ]; };
"#;

/// An image of `app` on the layers above (`high` given; `low` comes with it).
fn image(version: &str, extra: &str) -> String {
    expr(&format!(
        r#"let {LAYERS} in s.buildLayeredImage {{
             name = "explicit"; tag = "{version}"; compressor = "none"; layers = [ high ];
             contents = [ (app "{version}") ]; {extra}
             config.Cmd = [ "/bin/sh" "-c" "cat /app; ls ${{builtins.storeDir}} | sed 's/^[^-]*-//' | sort | tr '\n' ' '" ];
           }}"#
    ))
}

/// The store paths (by name, without hash, sorted) each layer of the archive holds, bottom first.
fn paths_by_layer(nix: &TestNix, archive: &Path) -> Vec<Vec<String>> {
    let store = nix.store_dir();
    let store = store.strip_prefix("/").unwrap().to_string_lossy().into_owned();
    let count = layer_headers(archive, 0).1;
    (0..count)
        .map(|i| {
            let mut names: Vec<String> = layer_headers(archive, i as isize)
                .0
                .iter()
                .filter_map(|(name, _)| name.strip_prefix(&format!("{store}/")))
                .filter_map(|rest| rest.split('/').next().filter(|p| !p.is_empty()))
                .map(|path| path.split_once('-').unwrap().1.to_owned())
                .collect();
            names.sort();
            names.dedup();
            names
        })
        .collect()
}

fn diff_ids(config: &Value) -> Vec<String> {
    config["rootfs"]["diff_ids"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_owned()).collect()
}

#[test]
fn an_image_takes_its_layers_and_those_they_are_built_on_each_path_once() {
    let nix = TestNix::new();
    let archive = nix.build(&image("1", ""));

    let layers = paths_by_layer(&nix, &archive);
    assert_eq!(layers[0], ["lib1", "lib2"], "the layer `high` is built on, first: {layers:?}");
    assert_eq!(layers[1], ["lib3", "lib4"], "then `high`: {layers:?}");
    assert_eq!(layers[2..layers.len() - 1], [["app"]], "then the image's own store layers: {layers:?}");
    let mut every: Vec<&String> = layers.iter().flatten().collect();
    every.sort();
    let count = every.len();
    every.dedup();
    assert_eq!(every.len(), count, "each store path in one layer: {layers:?}");
    // copyToRoot's files are in `high`, copied, on top of its store paths
    let (high, _) = layer_headers(&archive, 1);
    let entry = |name: &str| high.iter().find(|(n, _)| n == name).map(|(_, h)| h.clone());
    let busybox = entry("bin/busybox").unwrap_or_else(|| panic!("{high:?}"));
    assert!(busybox.entry_type().is_file() && busybox.size().unwrap() > 0, "{busybox:?}");
    assert_eq!(busybox.mode().unwrap() & 0o111, 0o111, "the store's mode");
    assert_eq!(entry("bin/sh").unwrap().link_name().unwrap().unwrap().to_str(), Some("busybox"));

    let config = skopeo_config(&archive, 0);
    assert_eq!(diff_ids(&config).len(), layers.len());
    let history: Vec<&str> =
        config["history"].as_array().unwrap().iter().map(|h| h["comment"].as_str().unwrap()).collect();
    assert!(
        history[0].starts_with("buildLayer, store paths: ")
            && history[1].starts_with("buildLayer, store paths: "),
        "{history:?}"
    );

    let podman = Podman::new();
    assert_eq!(podman.load(&archive), ["explicit:1"]);
    assert_eq!(podman.run("explicit:1"), format!("1 {}\napp lib1 lib2 lib3 lib4 ", lib4(&nix)));
}

/// The store path of the test's lib4, as the app names it.
fn lib4(nix: &TestNix) -> String {
    nix.build(&expr("lib4")).to_string_lossy().into_owned()
}

#[test]
fn a_second_image_reuses_the_layers_the_first_built() {
    let nix = TestNix::new();
    let first = nix.build(&image("1", ""));
    let out = nix.build_output(&image("2", ""));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains("-layer.drv'"), "a layer was built again:\n{log}");
    assert!(log.contains("-stream-explicit.drv'"), "the new image is planned:\n{log}");
    let second = Path::new(String::from_utf8(out.stdout).unwrap().trim()).to_owned();
    let (a, b) = (diff_ids(&skopeo_config(&first, 0)), diff_ids(&skopeo_config(&second, 0)));
    assert_eq!(a[..2], b[..2], "the layers' digests are the ones planned once");
    assert_ne!(a[2], b[2], "the application changed");
}

#[test]
fn a_layer_that_is_not_reproducible_keeps_its_tarball_with_the_same_bytes() {
    let nix = TestNix::new();
    let kept = nix.build(&expr(r#"s.buildLayer { deps = [ lib4 ]; reproducible = false; maxLayers = 2; }"#));
    let made = nix.build(&expr(r#"s.buildLayer { deps = [ lib4 ]; maxLayers = 2; }"#));
    let digests = |out: &Path| -> Vec<String> {
        let file: Value = serde_json::from_slice(&std::fs::read(out.join("layers.json")).unwrap()).unwrap();
        file["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(digests(&kept).len(), 2, "maxLayers = 2 makes two layers");
    assert_eq!(digests(&kept), digests(&made));
    assert!(kept.join("layer-0.tar").is_file() && kept.join("layer-1.tar").is_file());
    assert!(!made.join("layer-0.tar").exists(), "a reproducible layer keeps no tarball");

    let archive = nix.build(&expr(
        r#"s.buildLayeredImage { name = "kept"; tag = "1"; compressor = "none";
             layers = [ (s.buildLayer { deps = [ lib4 ]; reproducible = false; maxLayers = 2; }) ]; }"#,
    ));
    let config = skopeo_config(&archive, 0);
    assert_eq!(diff_ids(&config)[..2], digests(&kept)[..]);
    assert_eq!(Podman::new().load(&archive), ["kept:1"]);
}

#[test]
fn perms_apply_to_the_layer() {
    let nix = TestNix::new();
    let archive = nix.build(&expr(
        r#"s.buildLayeredImage { name = "perms"; tag = "1"; compressor = "none";
             layers = [ (s.buildLayer { deps = [ lib1 ]; perms = [ { path = lib1; regex = ".*"; mode = "0600"; uid = 7; } ]; }) ]; }"#,
    ));
    let (entries, _) = layer_headers(&archive, 0);
    let data = entries.iter().find(|(name, _)| name.ends_with("-lib1/data")).unwrap();
    assert_eq!((data.1.mode().unwrap(), data.1.uid().unwrap()), (0o600, 7));
}

#[test]
fn every_derivation_rebuilds_to_the_same_bytes() {
    let nix = TestNix::new();
    let body = format!(
        r#"let {LAYERS} in rec {{
             image = s.buildLayeredImage {{ name = "checked"; tag = "1"; layers = [ high ]; contents = [ (app "1") ]; }};
             stream = image.stream; inherit low high; }}"#
    );
    let built: BTreeMap<&str, Vec<u8>> = ["low", "high", "stream", "image"]
        .into_iter()
        .map(|attr| {
            let out = nix.build(&format!("({}).{attr}", expr(&body)));
            let bytes =
                if out.is_dir() { std::fs::read(out.join("layers.json")) } else { std::fs::read(&out) };
            (attr, bytes.unwrap())
        })
        .collect();
    for attr in built.keys() {
        // --check builds again and fails if the output differs
        let out = nix.build_output_with(&format!("({}).{attr}", expr(&body)), &["--check"]);
        assert!(out.status.success(), "{attr}");
    }
    assert!(!built["image"].is_empty());
}

#[test]
fn wrong_layers_are_named() {
    let nix = TestNix::new();
    let err = nix.build_error(&expr(r#"s.buildLayeredImage { name = "wrong"; layers = [ lib1 ]; }"#));
    assert!(
        err.contains("argument 'layers[0]' is ")
            && err.contains("which is not a layer made by buildLayer (it has no layers.json)"),
        "{err}"
    );
    let err = nix.eval_error(&expr(r#"(s.buildLayer { deps = [ lib1 ]; maxLayers = 0; }).drvPath"#));
    assert!(
        err.contains(
            "stowage.buildLayer: argument 'maxLayers' is 0; a layer derivation makes from 1 to 125 layers"
        ),
        "{err}"
    );
    let err = nix.eval_error(&expr(r#"(s.buildLayer { deps = [ lib1 ]; contents = [ ]; }).drvPath"#));
    assert!(err.contains("stowage.buildLayer: unexpected argument 'contents'"), "{err}");
    // (how many layers a layer derivation makes is known once it is built)
    let err = nix.build_error(&expr(
        r#"s.buildLayeredImage { name = "many"; maxLayers = 2; contents = [ lib3 ];
             layers = [ (s.buildLayer { deps = [ lib2 ]; }) ]; }"#,
    ));
    assert!(err.contains("argument 'maxLayers' is 2, but the layers given (`layers`) are 1: with the customisation layer, that leaves no layer for store paths; set maxLayers to at least 3"), "{err}");
    // copyToRoot is copied into the root: a file is no tree to copy
    let err = nix.build_error(&expr(r#"s.buildLayer { copyToRoot = builtins.toFile "note" "x"; }"#));
    assert!(err.contains("argument 'copyToRoot'") && err.contains("-note: is not a directory"), "{err}");
}

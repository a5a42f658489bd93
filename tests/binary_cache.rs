//! Images from a binary cache: built on one machine, copied into a cache (`nix copy --to
//! file://…`), then substituted by a fresh store with the same store root, which builds nothing
//! (`--max-jobs 0`: a build it cannot avoid is an error) and gets the same bytes — the archive,
//! its customisation layer and plan, the layers of `buildLayer`, and a stream script; and a
//! pull, substituted after its registry is gone.

mod support;

use sha2::{Digest, Sha256};
use std::path::Path;
use support::images::expr;
use support::registry::Registry;
use support::{reported_hash, run_ok, TestNix};

const IMAGES: &[(&str, &str)] = &[
    (
        "layered, with scripts",
        r#"s.buildLayeredImage { name = "cached/layered"; tag = "1"; contents = [ lib2 (app "1") ];
             shell = busybox; extraCommands = "mkdir -p etc && echo made > etc/made";
             fakeRootCommands = "chown 7:8 etc/made"; config.Cmd = [ "/app" ]; }"#,
    ),
    (
        "buildImage with runAsRoot",
        r#"s.buildImage { name = "cached/single"; tag = "2"; copyToRoot = [ lib1 ]; shell = busybox;
             runAsRoot = "mkdir -p /srv && echo root > /srv/who"; }"#,
    ),
    (
        "an image on a buildLayer layer",
        r#"s.buildLayeredImage { name = "cached/explicit"; tag = "4"; contents = [ (app "4") ];
             layers = [ (s.buildLayer { deps = [ lib3 ]; }) ]; }"#,
    ),
    (
        "a stream script",
        r#"(s.streamLayeredImage { name = "cached/stream"; tag = "3"; contents = [ lib4 ]; })"#,
    ),
];

#[test]
fn a_fresh_store_substitutes_images_from_a_binary_cache_and_builds_nothing() {
    let root = tempfile::Builder::new().prefix("stowage-cache-root-").tempdir().unwrap();
    let cache = tempfile::Builder::new().prefix("stowage-cache-").tempdir().unwrap();
    let cache_url = format!("file://{}", cache.path().display());

    let built = TestNix::new_with_root(root.path());
    let mut first = Vec::new();
    for (what, body) in IMAGES {
        let out = built.build(&expr(body));
        run_ok(built.bare("nix").args(["copy", "--to", &cache_url]).arg(&out));
        first.push((what, out.clone(), std::fs::read(&out).unwrap()));
    }

    // Another machine: the same store root, an empty store, the cache as its only substituter.
    let fresh = TestNix::new_with_root(root.path());
    assert!(!first[0].1.exists(), "the fresh store starts empty");
    let options =
        ["--option", "substituters", &cache_url, "--option", "require-sigs", "false", "--max-jobs", "0"];
    for ((what, path, bytes), (_, body)) in first.iter().zip(IMAGES) {
        let out = fresh.build_output_with(&expr(body), &options);
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(!log.contains("building '"), "{what}: built instead of substituted:\n{log}");
        let substituted = Path::new(String::from_utf8(out.stdout).unwrap().trim()).to_owned();
        assert_eq!(&substituted, path, "{what}: the same store path");
        assert!(std::fs::read(&substituted).unwrap() == *bytes, "{what}: the same bytes");
    }
}

#[test]
fn a_pull_is_substituted_from_a_binary_cache_after_its_registry_is_gone() {
    let root = tempfile::Builder::new().prefix("stowage-cache-root-").tempdir().unwrap();
    let cache = tempfile::Builder::new().prefix("stowage-cache-").tempdir().unwrap();
    let cache_url = format!("file://{}", cache.path().display());
    let registry = Registry::start();
    let built = TestNix::new_with_root(root.path());
    let image = built
        .build(&expr(r#"s.streamLayeredImage { name = "team/app"; tag = "v1"; contents = [ (app "1") ]; }"#));
    let raw = registry.push(&image, "team/app:v1", &[]);
    let pull = |hash: &str| {
        expr(&format!(
            r#"s.pullImage {{ imageName = "{}/team/app"; imageDigest = "sha256:{:x}"; sha256 = "{hash}"; }}"#,
            registry.address(),
            Sha256::digest(&raw)
        ))
    };
    let hash =
        reported_hash(&built.build_error(&pull("0000000000000000000000000000000000000000000000000000")));
    let pulled = built.build(&pull(&hash));
    let bytes = std::fs::read(&pulled).unwrap();
    run_ok(built.bare("nix").args(["copy", "--to", &cache_url]).arg(&pulled));
    let expression = pull(&hash);
    drop(registry);
    drop(built);

    let fresh = TestNix::new_with_root(root.path());
    let options =
        ["--option", "substituters", &cache_url, "--option", "require-sigs", "false", "--max-jobs", "0"];
    let out = fresh.build_output_with(&expression, &options);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains("building '"), "built instead of substituted:\n{log}");
    let substituted = Path::new(String::from_utf8(out.stdout).unwrap().trim()).to_owned();
    assert_eq!(substituted, pulled);
    assert!(std::fs::read(&substituted).unwrap() == bytes, "the same bytes");
}

//! Two at once: two `nix-build`s of the same image in one store, two pushes of the same image
//! to one registry, and pushes of two images that share layers — the pushes sharing one cache
//! (`XDG_CACHE_HOME`), as two jobs of one user would. Each pair is run [`ROUNDS`] times; all
//! succeed, and skopeo reads a correct image (it checks every blob's digest).

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::images::expr;
use support::registry::{inspect_and_copy, push_command, Registry};
use support::TestNix;

/// How many times each pair runs.
const ROUNDS: usize = 5;

/// A layered image of busybox and the test application at `version`: images of two versions
/// share every layer but the application's.
fn app(version: &str) -> String {
    format!(
        r#"s.streamLayeredImage {{ name = "team/app"; tag = "v{version}"; contents = [ busybox (app "{version}") ];
        config.Cmd = [ "/bin/sh" "-c" "cat ${{app "{version}"}}/app" ]; }}"#
    )
}

/// Runs `commands` at the same time; each must succeed. What each printed, in order.
fn at_once(commands: Vec<Command>) -> Vec<Output> {
    let children: Vec<_> = commands
        .into_iter()
        .map(|mut cmd| {
            let child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
            (child.unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}")), cmd)
        })
        .collect();
    children
        .into_iter()
        .map(|(child, cmd)| {
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{cmd:?} failed ({}):\n{stderr}", out.status);
            out
        })
        .collect()
}

/// `nix-build` of `image` in the sandbox, as [`TestNix::build`] runs it.
fn nix_build(nix: &TestNix, image: &str) -> Command {
    let mut cmd = nix.cmd("nix-build");
    cmd.args(["--no-out-link", "--option", "sandbox", "true", "--option", "sandbox-paths", "/bin/busybox"])
        .args(["-E", image]);
    cmd
}

/// Both build it (one waits for the other's lock on the output), and both name the same
/// output, which skopeo reads whole.
#[test]
fn two_nix_builds_of_one_image_at_once() {
    let nix = TestNix::new();
    // The store is made first: Nix 2.8 making a fresh store's state from two processes at once
    // fails in one of them (`creating symlink … gcroots/profiles …: File exists`), Nix's race
    // and not the image's; in library mode nothing else has opened the store yet.
    support::run_ok(nix.cmd("nix-store").arg("--init"));
    for round in 0..ROUNDS {
        // A version of its own each round: nothing of the image is built yet.
        let image = expr(&format!(
            r#"s.buildLayeredImage {{ name = "team/app"; tag = "v{round}"; compressor = "none"; contents = [ busybox (app "c{round}") ]; }}"#
        ));
        let outputs = at_once(vec![nix_build(&nix, &image), nix_build(&nix, &image)]);
        let paths: BTreeSet<String> =
            outputs.iter().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).collect();
        assert_eq!(paths.len(), 1, "{paths:?}");
        let path = paths.into_iter().next().unwrap();
        let config = support::images::skopeo_config(Path::new(&path), 0);
        assert!(config["rootfs"]["diff_ids"].as_array().is_some_and(|ids| ids.len() > 1), "{config}");
    }
}

/// `images` pushed at once to `registry`, each to its destination (`team/app:v1`), sharing
/// the cache `home`; each then read by skopeo from the registry: the manifests.
fn pushed_at_once(registry: &Registry, images: &[(&Path, &str)], home: &Path) -> Vec<serde_json::Value> {
    let dest = |to: &str| format!("docker://{}/{to}", registry.address());
    at_once(images.iter().map(|(image, to)| push_command(image, &dest(to), home)).collect());
    images.iter().map(|(_, to)| inspect_and_copy(&dest(to))).collect()
}

/// The blobs of a manifest: its config's and its layers'.
fn blobs(manifest: &serde_json::Value) -> BTreeSet<String> {
    let layers = manifest["layers"].as_array().unwrap().iter();
    std::iter::once(&manifest["config"])
        .chain(layers)
        .map(|d| d["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// Both send the same blobs to the same repository at once and tag the same manifest.
#[test]
fn two_pushes_of_one_image_at_once() {
    let nix = TestNix::new();
    let image = nix.build(&expr(&app("1")));
    for _ in 0..ROUNDS {
        let registry = Registry::start();
        let home = tempfile::tempdir().unwrap();
        let manifests =
            pushed_at_once(&registry, &[(&image, "team/app:v1"), (&image, "team/app:v1")], home.path());
        assert_eq!(manifests[0], manifests[1]);
    }
}

/// Two images that share all layers but one, pushed at once to two repositories: both are
/// whole, and the layers they share are the same blobs.
#[test]
fn pushes_of_two_images_sharing_layers_at_once() {
    let nix = TestNix::new();
    let (a, b) = (nix.build(&expr(&app("1"))), nix.build(&expr(&app("2"))));
    for _ in 0..ROUNDS {
        let registry = Registry::start();
        let home = tempfile::tempdir().unwrap();
        let manifests = pushed_at_once(&registry, &[(&a, "team/a:v1"), (&b, "team/b:v1")], home.path());
        let (of_a, of_b) = (blobs(&manifests[0]), blobs(&manifests[1]));
        assert!(of_a.intersection(&of_b).count() >= 2, "they share layers: {of_a:?} {of_b:?}");
        assert_ne!(of_a, of_b);
    }
}

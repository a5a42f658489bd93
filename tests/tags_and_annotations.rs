//! An image's `tags` (the other tags its copy executables push it under) and `annotations` (its
//! manifest's, in an OCI layout and a registry), checked by skopeo against Debian's registry,
//! and their wrong values named while evaluating.

mod support;

use serde_json::Value;
use std::process::Command;
use support::images::expr;
use support::registry::Registry;
use support::{run_ok, TestNix};

fn raw(at: &str) -> Value {
    serde_json::from_slice(
        &run_ok(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", at])).stdout,
    )
    .unwrap()
}

#[test]
fn tags_and_annotations_go_with_the_image() {
    let nix = TestNix::new();
    let registry = Registry::start();
    let cache = tempfile::tempdir().unwrap();
    let name = format!("{}/team/tagged", registry.address());
    let args = format!(
        r#"name = "{name}"; tag = "1.4.2"; tags = [ "1.4" "latest" "1.4" ]; contents = [ (app "1") ];
           annotations."org.opencontainers.image.source" = "https://example.org/app";"#
    );
    let copy = nix.build(&expr(&format!("(s.streamLayeredImage {{ {args} }}).copyToRegistry")));
    run_ok(
        Command::new(copy.join("bin/copy-to-registry"))
            .args(["--tag", "extra"])
            .env("XDG_CACHE_HOME", cache.path()),
    );
    let manifest = raw(&format!("docker://{name}:1.4.2"));
    assert_eq!(manifest["annotations"]["org.opencontainers.image.source"], "https://example.org/app");
    for tag in ["1.4", "latest", "extra"] {
        assert_eq!(raw(&format!("docker://{name}:{tag}")), manifest, "{tag}");
    }
    // skopeo reads the image whole
    let copied = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("skopeo")
            .args(["copy", "-q", "--src-tls-verify=false", &format!("docker://{name}:latest")])
            .arg(format!("oci:{}:x", copied.path().display())),
    );

    // an OCI archive's manifest carries the annotations too; a docker-archive has no place for them
    let archive = nix.build(&expr(&format!(
        r#"s.buildLayeredImage {{ {args} format = "oci-archive"; compressor = "none"; }}"#
    )));
    let inspected = run_ok(
        Command::new("skopeo").arg("inspect").arg("--raw").arg(format!("oci-archive:{}", archive.display())),
    );
    let oci: Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(oci["annotations"]["org.opencontainers.image.source"], "https://example.org/app");
    // buildImage takes both too
    nix.build(&expr(r#"s.buildImage { name = "x"; tags = [ "a" ]; annotations.k = "v"; }"#));
}

#[test]
fn wrong_tags_and_annotations_are_named() {
    let nix = TestNix::new();
    let fails =
        |args: &str| nix.build_error(&expr(&format!("(s.streamLayeredImage {{ name = \"x\"; {args} }})")));
    let err = fails(r#"tags = [ "ok" "-bad" ];"#);
    assert!(err.contains("argument 'tags[1]' \"-bad\" is not a valid image tag"), "{err}");
    let err = fails(r#"annotations = { a = 1; };"#);
    assert!(err.contains("argument 'annotations.a' is 1; it must be a string"), "{err}");
    let err = fails(r#"annotations = [ "a" ];"#);
    assert!(err.contains("argument 'annotations' is [\"a\"]; it must be a set of strings"), "{err}");
}

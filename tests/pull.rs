//! `pullImage` against a real registry (Debian's docker-registry, started by the test): an
//! image pushed by stowage comes back bit for bit as a fixed-output derivation, which
//! `fromImage`, `mergeImages`, podman and skopeo take; a registry that is down, a blob with
//! other bytes, a missing blob and a 500 half way are each a clear error with no output, and
//! the next build after the fault succeeds.

mod support;

use sha2::{Digest as _, Sha256};
use std::path::Path;
use std::process::Command;
use support::images::{expr, skopeo_config, tar_files, Podman};
use support::registry::{FaultyProxy, Registry};
use support::{reported_hash, run_ok, TestNix};

/// Pushes an image (busybox and an application printing `1 …`) to `registry` as team/app:v1,
/// layers compressed by `compress`; returns the manifest's digest and bytes as the registry has
/// them.
fn push_app(nix: &TestNix, registry: &Registry, compress: &str) -> (String, Vec<u8>) {
    let image = nix.build(&expr(
        r#"s.streamLayeredImage { name = "team/app"; tag = "v1"; contents = [ busybox (app "1") ];
           config.Cmd = [ "/bin/sh" "-c" "cat ${app "1"}/app" ]; }"#,
    ));
    let raw = registry.push(&image, "team/app:v1", &["--compress", compress]);
    (format!("sha256:{:x}", Sha256::digest(&raw)), raw)
}

/// `(s.pullImage { … })` of team/app at `digest` from `host`, as the derivation `name`.
fn pull_call(host: &str, digest: &str, hash: &str, name: &str) -> String {
    format!(
        r#"(s.pullImage {{ imageName = "{host}/team/app"; imageDigest = "{digest}"; sha256 = "{hash}";
           finalImageName = "pulled/app"; finalImageTag = "v1"; name = "{name}"; }})"#
    )
}

/// [`pull_call`] as an expression of its own.
fn pull_expr(host: &str, digest: &str, hash: &str, name: &str) -> String {
    expr(&pull_call(host, digest, hash, name))
}

const FAKE_HASH: &str = "0000000000000000000000000000000000000000000000000000";

/// The descriptor `index.json` holds and the manifest it names, in the entries of a layout.
fn index_manifest(files: &[(String, Vec<u8>)]) -> (serde_json::Value, serde_json::Value) {
    let file = |name: &str| &files.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name}")).1;
    let index: serde_json::Value = serde_json::from_slice(file("index.json")).unwrap();
    let descriptor = index["manifests"][0].clone();
    let blob =
        format!("blobs/sha256/{}", descriptor["digest"].as_str().unwrap().trim_start_matches("sha256:"));
    (descriptor, serde_json::from_slice(file(&blob)).unwrap())
}

/// The path a failed build would have had: nothing may be there.
fn assert_no_output(nix: &TestNix, expr: &str) {
    let out = run_ok(nix.cmd("nix-instantiate").args(["--eval", "-E", &format!("({expr}).outPath")]));
    let path = String::from_utf8(out.stdout).unwrap().trim().trim_matches('"').to_owned();
    assert!(!Path::new(&path).exists(), "{path} was left behind");
}

#[test]
fn an_image_comes_back_bit_for_bit_and_builds_on() {
    let nix = TestNix::new();
    let registry = Registry::start();
    let (digest, raw) = push_app(&nix, &registry, "gz");
    let host = registry.address();

    // a wrong sha256 is Nix's hash mismatch, which says the right one
    let err = nix.build_error(&pull_expr(&host, &digest, FAKE_HASH, "app.oci.tar"));
    let hash = reported_hash(&err);
    let pulled = nix.build(&pull_expr(&host, &digest, &hash, "app.oci.tar"));
    // pulled again, the same bytes
    nix.build_output_with(&pull_expr(&host, &digest, &hash, "app.oci.tar"), &["--check"]);

    // the registry's manifest, config and layers, byte for byte, each named by its digest
    let files = tar_files(&std::fs::read(&pulled).unwrap());
    for (name, bytes) in &files {
        if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            assert_eq!(format!("{:x}", Sha256::digest(bytes)), hex, "{name}");
        }
    }
    let manifest_blob = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    assert_eq!(files.iter().find(|(n, _)| *n == manifest_blob).unwrap().1, raw);
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        let name =
            format!("blobs/sha256/{}", layer["digest"].as_str().unwrap().trim_start_matches("sha256:"));
        assert!(files.iter().any(|(n, _)| *n == name), "{name}");
    }
    // a Docker manifest (gz layers) is named in index.json through its OCI form: the same
    // config and layers, OCI's media types
    let (descriptor, oci) = index_manifest(&files);
    assert_eq!(descriptor["annotations"]["org.opencontainers.image.ref.name"], "pulled/app:v1");
    assert_eq!(descriptor["annotations"]["io.stowage.image.digest"], digest.as_str());
    assert_eq!(oci["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(oci["config"]["digest"], manifest["config"]["digest"]);
    let digests = |m: &serde_json::Value| -> Vec<serde_json::Value> {
        m["layers"].as_array().unwrap().iter().map(|l| l["digest"].clone()).collect()
    };
    assert_eq!(digests(&oci), digests(&manifest));
    assert_eq!(oci["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
    let passthru = nix.eval_json(&format!(
        "with ({}); [ imageName imageTag imageDigest ]",
        pull_expr(&host, &digest, &hash, "app.oci.tar")
    ));
    assert_eq!(passthru, serde_json::json!(["pulled/app", "v1", digest]));

    // skopeo and podman read it as it is
    let inspected = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci-archive:{}:pulled/app:v1", pulled.display())),
    );
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&inspected.stdout).unwrap(), oci);
    let podman = Podman::new();
    podman.load(&pulled);
    assert!(podman.run("pulled/app:v1").starts_with("1 "));

    // an image on it (its busybox gives the shell), and a merge with it
    let pulled_image = pull_call(&host, &digest, &hash, "app.oci.tar");
    let on = format!(
        r#"s.buildLayeredImage {{ name = "on-pulled"; tag = "1"; compressor = "none"; fromImage = {pulled_image};
           contents = [ (app "3") ]; config.Cmd = [ "/bin/sh" "-c" "cat ${{app "3"}}/app" ]; }}"#
    );
    let built = nix.build(&expr(&on));
    podman.load(&built);
    assert!(podman.run("on-pulled:1").starts_with("3 "));
    let merged = nix.build(&expr(&format!("s.mergeImages [ ({on}) {pulled_image} ]")));
    let pulled_config = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--config"])
            .arg(format!("oci-archive:{}:pulled/app:v1", pulled.display())),
    );
    let pulled_config: serde_json::Value = serde_json::from_slice(&pulled_config.stdout).unwrap();
    assert_eq!(skopeo_config(&merged, 1)["config"]["Cmd"], pulled_config["config"]["Cmd"]);
}

/// An OCI manifest (zstd layers) is kept as the registry has it and named as it is.
#[test]
fn an_oci_manifest_is_named_as_the_registry_has_it() {
    let nix = TestNix::new();
    let registry = Registry::start();
    let (digest, raw) = push_app(&nix, &registry, "zstd");
    let host = registry.address();
    let hash = reported_hash(&nix.build_error(&pull_expr(&host, &digest, FAKE_HASH, "app.oci.tar")));
    let pulled = nix.build(&pull_expr(&host, &digest, &hash, "app.oci.tar"));
    let files = tar_files(&std::fs::read(&pulled).unwrap());
    let (descriptor, _) = index_manifest(&files);
    assert_eq!(descriptor["digest"], digest.as_str());
    let inspected = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci-archive:{}:pulled/app:v1", pulled.display())),
    );
    assert_eq!(inspected.stdout, raw);
    let built = nix.build(&expr(&format!(
        r#"s.buildLayeredImage {{ name = "on-zstd"; tag = "1"; compressor = "none"; fromImage = {};
           config.Cmd = [ "/bin/sh" "-c" "echo on zstd" ]; }}"#,
        pull_call(&host, &digest, &hash, "app.oci.tar")
    )));
    let podman = Podman::new();
    podman.load(&built);
    assert_eq!(podman.run("on-zstd:1"), "on zstd\n");
}

#[test]
fn faults_are_clear_errors_with_no_output_and_a_retry_succeeds() {
    let nix = TestNix::new();
    let registry = Registry::start();
    let (digest, raw) = push_app(&nix, &registry, "gz");
    let host = registry.address();
    let hash = reported_hash(&nix.build_error(&pull_expr(&host, &digest, FAKE_HASH, "probe.oci.tar")));
    let image = format!("{host}/team/app@{digest}");

    // a registry that is not there
    let down = pull_expr("127.0.0.1:9", &digest, &hash, "down.oci.tar");
    let err = nix.build_error(&down);
    assert!(err.contains("stowage: registry 127.0.0.1:9: connecting: "), "{err}");
    assert_no_output(&nix, &down);

    // a layer blob whose bytes are not what its digest says
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    let file = registry.blob_file(&layer);
    let good = std::fs::read(&file).unwrap();
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0xff;
    std::fs::write(&file, &bad).unwrap();
    let corrupt = pull_expr(&host, &digest, &hash, "corrupt.oci.tar");
    let err = nix.build_error(&corrupt);
    assert!(
        err.contains(&format!("stowage: pulling {image}: the registry sent other bytes for blob {layer}")),
        "{err}"
    );
    assert_no_output(&nix, &corrupt);
    std::fs::write(&file, &good).unwrap();
    nix.build(&corrupt);

    // a blob the registry lost
    std::fs::rename(&file, file.with_extension("gone")).unwrap();
    let lost = pull_expr(&host, &digest, &hash, "lost.oci.tar");
    let err = nix.build_error(&lost);
    assert!(err.contains(&format!("fetching blob {layer} of {image}: ")), "{err}");
    assert_no_output(&nix, &lost);
    std::fs::rename(file.with_extension("gone"), &file).unwrap();
    nix.build(&lost);

    // a 500 half way, from the second blob on
    let proxy = FaultyProxy::start(registry.port);
    proxy.fail("GET", "/blobs/", 1);
    let failing = pull_expr(&proxy.address(), &digest, &hash, "failing.oci.tar");
    let err = nix.build_error(&failing);
    assert!(proxy.fired());
    assert!(err.contains("500 Internal Server Error: UNKNOWN injected by the test's proxy"), "{err}");
    assert_no_output(&nix, &failing);
    nix.build(&failing);

    // a digest the registry does not have
    let unknown = format!("sha256:{}", "0".repeat(64));
    let err = nix.build_error(&pull_expr(&host, &unknown, &hash, "unknown.oci.tar"));
    assert!(
        err.contains(&format!("fetching the manifest {unknown} of {host}/team/app@{unknown}: 404 Not Found")),
        "{err}"
    );

    // arguments are checked when the expression is evaluated (in library mode, when it is built)
    let err = nix.eval_error(&expr(
        r#"(s.pullImage { imageName = "x"; imageDigest = "latest"; sha256 = "0000000000000000000000000000000000000000000000000000"; }).drvPath"#,
    ));
    assert!(err.contains("stowage.pullImage: argument 'imageDigest'"), "{err}");
    let err = nix.eval_error(&expr(&format!(
        r#"(s.pullImage {{ imageName = "x"; imageDigest = "{digest}"; }}).drvPath"#
    )));
    assert!(err.contains("stowage.pullImage: argument 'sha256' (or 'hash') is required"), "{err}");
}

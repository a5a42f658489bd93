//! `stowage push` to a real registry (Debian's docker-registry, started by the test on a free
//! port): only missing blobs are sent, and skopeo and podman read what was pushed.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::images::{expr, Podman, Registry};
use support::{run_ok, TestNix};

/// The image builder under test (`stowage`), as `make` builds it.
fn stowage() -> PathBuf {
    let path = std::env::var_os("STOWAGE_BUILDER")
        .map(PathBuf::from)
        .expect("STOWAGE_BUILDER names the built stowage");
    assert!(path.exists(), "{} does not exist: run `make build` first", path.display());
    path
}

fn push(image: &Path, dest: &str, cache: &Path) -> Output {
    run_ok(Command::new(stowage()).arg("push").arg(image).arg(dest).env("XDG_CACHE_HOME", cache))
}

/// The manifest at `at` (docker://…), after skopeo has copied the image (reading and checking
/// every blob).
fn inspect_and_copy(at: &str) -> serde_json::Value {
    let raw = run_ok(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", at]));
    let copy = tempfile::tempdir().unwrap();
    let layout = format!("oci:{}:x", copy.path().join("l").display());
    run_ok(Command::new("skopeo").args(["copy", "-q", "--src-tls-verify=false", at, &layout]));
    serde_json::from_slice(&raw.stdout).unwrap()
}

fn app(version: &str) -> String {
    format!(
        r#"s.streamLayeredImage {{ name = "team/app"; tag = "v{version}"; contents = [ busybox (app "{version}") ];
        config.Cmd = [ "/bin/sh" "-c" "cat ${{app "{version}"}}/app" ]; }}"#
    )
}

#[test]
fn push_sends_only_what_the_registry_lacks() {
    let nix = TestNix::new();
    let registry = Registry::start();
    let cache = tempfile::tempdir().unwrap();
    let v1 = nix.build(&expr(&app("1")));
    let layers = support::images::layer_count_of_plan(&v1);
    let dest = format!("docker://{}/team/app:v1", registry.address());
    let first = push(&v1, &dest, cache.path());
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.contains(&format!("{} blob(s) sent", layers + 1)), "{stderr}");
    assert!(first.stdout.is_empty(), "stdout stays quiet");
    let uploads = registry.uploads();
    assert_eq!(uploads, layers + 1, "every layer and the config:\n{}", registry.log());

    // skopeo reads the manifest and copies every blob (checking digests)
    let at = format!("docker://{}/team/app:v1", registry.address());
    let manifest = inspect_and_copy(&at);
    assert_eq!(manifest["layers"].as_array().unwrap().len(), layers);

    // again: no layer blob is sent
    let again = push(&v1, &dest, cache.path());
    assert_eq!(registry.uploads(), uploads, "{}", String::from_utf8_lossy(&again.stderr));
    assert!(String::from_utf8_lossy(&again.stderr)
        .contains(&format!("0 blob(s) sent, 0 bytes; {} already there", layers + 1)));

    // a new application: its layer, the customisation layer (its links) and the config
    let v2 = nix.build(&expr(&app("2")));
    push(&v2, &format!("docker://{}/team/app:v2", registry.address()), cache.path());
    assert_eq!(registry.uploads(), uploads + 3, "{}", registry.log());

    // podman pulls it and runs it
    let podman = Podman::new();
    run_ok(podman.cmd().args([
        "pull",
        "-q",
        "--tls-verify=false",
        &format!("{}/team/app:v2", registry.address()),
    ]));
    assert!(podman.run(&format!("{}/team/app:v2", registry.address())).starts_with("2 "));
}

#[test]
fn push_takes_archives_and_zstd() {
    let nix = TestNix::new();
    let registry = Registry::start();
    let cache = tempfile::tempdir().unwrap();
    let archive =
        nix.build(&expr(r#"s.buildLayeredImage { name = "arch"; tag = "1"; contents = [ busybox ]; }"#));
    for (compress, dest) in [("gz", "arch:gz"), ("zstd", "arch:zstd")] {
        let dest = format!("docker://{}/{dest}", registry.address());
        run_ok(
            Command::new(stowage())
                .args(["push", "--compress", compress])
                .arg(&archive)
                .arg(&dest)
                .env("XDG_CACHE_HOME", cache.path()),
        );
        let manifest = inspect_and_copy(&dest);
        let media = manifest["layers"][0]["mediaType"].as_str().unwrap();
        assert!(media.ends_with(if compress == "gz" { "gzip" } else { "zstd" }), "{media}");
    }
    // a registry that is not there: a clear error, exit ≠ 0
    let out = Command::new(stowage())
        .arg("push")
        .arg(&archive)
        .arg("docker://127.0.0.1:9/x:1")
        .env("XDG_CACHE_HOME", cache.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stowage: registry 127.0.0.1:9: asking for blob sha256:"), "{err}");
}

/// copyToRegistry pushes an image to its own name (which carries the registry), copyTo where it
/// is told; both are executables in `bin/`, as `nix run` wants them.
#[test]
fn copy_to_registry_and_copy_to() {
    let nix = TestNix::new();
    let registry = Registry::start();
    let cache = tempfile::tempdir().unwrap();
    let image = format!(
        r#"s.buildLayeredImage {{ name = "{}/team/copied"; tag = "1"; contents = [ busybox ]; }}"#,
        registry.address()
    );
    let copy = nix.build(&expr(&format!("({image}).copyToRegistry")));
    let out = run_ok(Command::new(copy.join("bin/copy-to-registry")).env("XDG_CACHE_HOME", cache.path()));
    assert!(out.stdout.is_empty());
    let manifest = inspect_and_copy(&format!("docker://{}/team/copied:1", registry.address()));
    assert_eq!(manifest["schemaVersion"], 2);
    let program = nix.eval_json(&expr(&format!("({image}).copyToRegistry.meta.mainProgram")));
    assert_eq!(program, "copy-to-registry");

    let copy_to = nix
        .build(&expr(r#"(s.buildImage { name = "single"; tag = "2"; copyToRoot = [ busybox ]; }).copyTo"#));
    let dest = format!("docker://{}/elsewhere:2", registry.address());
    run_ok(Command::new(copy_to.join("bin/copy-to")).arg(&dest).env("XDG_CACHE_HOME", cache.path()));
    inspect_and_copy(&dest);
    // without a destination, it says what to give
    let out = Command::new(copy_to.join("bin/copy-to")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("give the destination: copyTo docker://"));
}

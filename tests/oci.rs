//! OCI image layouts (`format = "oci-archive"` and `"oci-dir"`) built by a real `nix-build` with
//! the plugin, read by skopeo, umoci and podman, with the layer and config digests of the
//! docker-archive of the same image.

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use support::images::{expr, manifest_and_config, Podman};
use support::{run_ok, TestNix};

const IMAGE: &str = r#"{ name = "registry.example.com/team/oci"; tag = "t"; contents = [ busybox (s.fakeNss { }) ];
    config.Cmd = [ "/bin/sh" "-c" "echo hello from an OCI layout" ]; }"#;

fn skopeo_json(args: &[&str]) -> Value {
    serde_json::from_slice(&run_ok(Command::new("skopeo").args(args)).stdout).unwrap()
}

/// The diff_ids and config digest of the docker-archive at `path`.
fn docker_digests(path: &Path) -> (Vec<String>, String) {
    let bytes = std::fs::read(path).unwrap();
    let (manifest, config) = manifest_and_config(&bytes);
    let ids = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect();
    let config_file = manifest["Config"].as_str().unwrap();
    (ids, format!("sha256:{}", config_file.trim_end_matches(".json")))
}

#[test]
fn oci_layouts_hold_the_docker_archive_s_layers_and_config() {
    let nix = TestNix::new();
    let docker = nix.build(&expr(&format!("s.buildLayeredImage ({IMAGE} // {{ compressor = \"none\"; }})")));
    let (diff_ids, config_digest) = docker_digests(&docker);
    let reference = "registry.example.com/team/oci:t";
    for (format, transport) in [("oci-archive", "oci-archive"), ("oci-dir", "oci")] {
        let built = nix.build(&expr(&format!(
            "s.buildLayeredImage ({IMAGE} // {{ format = \"{format}\"; compressor = \"none\"; }})"
        )));
        let at = format!("{transport}:{}:{reference}", built.display());
        let manifest = skopeo_json(&["inspect", "--raw", &at]);
        assert_eq!(manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(manifest["config"]["digest"], config_digest.as_str(), "{format}");
        let layers: Vec<&str> =
            manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap()).collect();
        assert_eq!(layers, diff_ids, "{format}: the layers are stored as they are");
        let config = skopeo_json(&["inspect", "--config", &at]);
        assert_eq!(config["config"]["Cmd"][2], "echo hello from an OCI layout");
        // skopeo copies it (reading every blob), into another layout
        let copy = tempfile::tempdir().unwrap();
        run_ok(Command::new("skopeo").args([
            "copy",
            "-q",
            &at,
            &format!("oci:{}:copy", copy.path().join("l").display()),
        ]));
    }
    // umoci unpacks the folder into a runtime bundle
    let dir = nix.build(&expr(&format!("s.buildLayeredImage ({IMAGE} // {{ format = \"oci-dir\"; }})")));
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    run_ok(Command::new("cp").arg("-r").arg(&dir).arg(&layout));
    run_ok(Command::new("chmod").arg("-R").arg("u+w").arg(&layout));
    let bundle = work.path().join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:{reference}", layout.display()))
            .arg(&bundle),
    );
    assert!(std::fs::symlink_metadata(bundle.join("rootfs/bin/sh")).is_ok());
    assert!(bundle.join("rootfs/etc/passwd").exists());
    // podman loads the archive as built by default (gz as a whole, which skopeo reads too) and
    // runs it
    let archive =
        nix.build(&expr(&format!("s.buildLayeredImage ({IMAGE} // {{ format = \"oci-archive\"; }})")));
    assert!(archive.to_string_lossy().ends_with(".oci.tar.gz"), "{}", archive.display());
    let manifest =
        skopeo_json(&["inspect", "--raw", &format!("oci-archive:{}:{reference}", archive.display())]);
    assert_eq!(manifest["config"]["digest"], config_digest.as_str());
    let podman = Podman::new();
    let tags = podman.load(&archive);
    assert_eq!(tags, [reference]);
    assert_eq!(podman.run(reference), "hello from an OCI layout\n");
}

#[test]
fn merged_and_single_layer_images_as_oci_layouts() {
    let nix = TestNix::new();
    let merged = nix.build(&expr(&format!(
        r#"s.mergeImages {{ format = "oci-archive"; images = [ (s.buildLayeredImage {IMAGE}) (s.buildImage {{ name = "single"; tag = "1"; copyToRoot = [ busybox ]; }}) ]; }}"#
    )));
    for reference in ["registry.example.com/team/oci:t", "single:1"] {
        let manifest =
            skopeo_json(&["inspect", "--raw", &format!("oci-archive:{}:{reference}", merged.display())]);
        assert_eq!(manifest["schemaVersion"], 2, "{reference}");
    }
    // the stream of an OCI image writes the layout's tarball
    let stream =
        nix.build(&expr(&format!("s.streamLayeredImage ({IMAGE} // {{ format = \"oci-archive\"; }})")));
    let out = run_ok(&mut Command::new(&stream));
    let listing: Vec<String> = tar::Archive::new(out.stdout.as_slice())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listing[0], "oci-layout");
    assert_eq!(listing.last().unwrap(), "index.json");
    // a folder keeps its blobs as they are
    let err = nix.eval_error(&expr(&format!(
        "(s.buildLayeredImage ({IMAGE} // {{ format = \"oci-dir\"; compressor = \"gz\"; }})).drvPath"
    )));
    assert!(err.contains("an OCI folder (format = \"oci-dir\") keeps its blobs as they are"), "{err}");
    let err = nix.eval_error(&expr(&format!(
        "(s.buildLayeredImage ({IMAGE} // {{ format = \"tarball\"; }})).drvPath"
    )));
    assert!(
        err.contains(
            "argument 'format' is \"tarball\"; it must be \"docker-archive\", \"oci-archive\" or \"oci-dir\""
        ),
        "{err}"
    );
}

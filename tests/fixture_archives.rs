//! Images that real tools wrote — `docker save` (Docker Engine 20.10), podman (docker-archive and
//! OCI archive), buildah, skopeo and umoci — as the base of stowage images (`fromImage`) and as
//! inputs of `mergeImages`, built by a real `nix-build`, checked by skopeo and podman (fresh
//! stores), and run. The archives are in tests/fixtures/, made by scripts/make-fixtures.sh; its
//! README says which tool and version made each.
//!
//! (crates/core/src/read/mod.rs keeps its own imitation of a Docker ≥ 25 archive, OCI-style
//! `blobs/sha256/…` names in `manifest.json`: the Docker Engine here, Debian 12's 20.10, writes
//! the older `<id>/layer.tar` layout, which `docker-save.tar` holds.)

mod support;

use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use support::images::{expr, manifest_and_config, skopeo_config, tar_files, Podman};
use support::{nix_str, run_ok, TestNix};

/// A fixture archive's path.
fn fixture(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(file)
}

/// A Nix expression for a fixture archive (a path, which Nix adds to the test's store).
fn fixture_expr(file: &str) -> String {
    format!("(/. + {})", nix_str(&fixture(file).to_string_lossy()))
}

/// The config of the (only) image in a fixture, read without stowage: a docker-archive
/// (`manifest.json`) or an OCI layout (`index.json` → manifest → config), its entries named
/// with or without `./`.
fn fixture_config(file: &str) -> Value {
    let files: BTreeMap<String, Vec<u8>> = tar_files(&std::fs::read(fixture(file)).unwrap())
        .into_iter()
        .map(|(name, data)| (name.trim_start_matches("./").to_owned(), data))
        .collect();
    let json = |name: &str| -> Value {
        serde_json::from_slice(files.get(name).unwrap_or_else(|| panic!("{file}: no {name}"))).unwrap()
    };
    let blob = |digest: &Value| json(&format!("blobs/sha256/{}", digest.as_str().unwrap()[7..].to_owned()));
    if files.contains_key("manifest.json") {
        json(json("manifest.json")[0]["Config"].as_str().unwrap())
    } else {
        let index = json("index.json");
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1, "{file}: one image");
        blob(&blob(&index["manifests"][0]["digest"])["config"]["digest"])
    }
}

fn diff_ids(config: &Value) -> Vec<Value> {
    config["rootfs"]["diff_ids"].as_array().unwrap().clone()
}

/// What the fixtures' files say, as the derived images' commands print them: the app layer's
/// /etc/fixture-release (it replaces the base layer's), the base layer's symlink to its
/// hello.txt, and the app layer's greeting.
const FILES: &str = "fixture app 1\nhello from the base layer\ngreetings from the app layer\n";

/// A layered image (`function`: buildLayeredImage or streamLayeredImage) on `from`, with busybox
/// and an app of its own, that prints files of both of the base's layers, its environment
/// (the base's FIXTURE, our X), its working folder (the base's) and our app.
fn layered(function: &str, from: &str) -> String {
    let compressor = if function == "buildLayeredImage" { r#"compressor = "none";"# } else { "" };
    format!(
        r#"s.{function} {{
          name = "derived"; tag = "1"; {compressor} fromImage = {from};
          contents = [ busybox (app "v1") ];
          config = {{
            Env = [ "X=mine" ];
            Cmd = [ "/bin/sh" "-c" "cat /etc/fixture-release /usr/share/fixture/link /srv/greeting.txt; echo $FIXTURE $X; pwd; cat /app" ];
          }};
        }}"#
    )
}

/// Builds a layered image on the fixture `file` (made by `tool`), as an archive and as a stream
/// (the same bytes), and checks it: the fixture's layers first, then ours; the fixture's config
/// inherited (Env, WorkingDir, Labels) and its history first; skopeo reads it; podman loads it
/// into a fresh store and runs it, and the fixture's files are there.
fn layered_on(file: &str, tool: &str) {
    let nix = TestNix::new();
    let base = fixture_config(file);
    let archive_path = nix.build(&expr(&layered("buildLayeredImage", &fixture_expr(file))));
    let archive = std::fs::read(&archive_path).unwrap();
    let stream = nix.build(&expr(&layered("streamLayeredImage", &fixture_expr(file))));
    let streamed = run_ok(&mut Command::new(&stream)).stdout;
    assert!(streamed == archive, "{file}: the stream differs from the archive");

    let (_, config) = manifest_and_config(&archive);
    let (base_ids, ids) = (diff_ids(&base), diff_ids(&config));
    assert_eq!(base_ids.len(), 2, "{file}: the fixture has two layers");
    assert_eq!(ids[..2], base_ids, "{file}: the base's layers come first");
    assert!(ids.len() > 3, "{file}: store layers and the customisation layer follow: {ids:?}");
    assert_eq!(config["config"]["Env"], json!(["PATH=/bin", format!("FIXTURE={tool}"), "X=mine"]), "{file}");
    assert_eq!(config["config"]["WorkingDir"], "/srv", "{file}");
    // podman and buildah add their own label (io.buildah.version)
    assert_eq!(config["config"]["Labels"], base["config"]["Labels"], "{file}");
    assert_eq!(config["config"]["Labels"]["made-by"], tool, "{file}");
    let history = config["history"].as_array().unwrap();
    let base_history = base["history"].as_array().unwrap();
    assert_eq!(history[..base_history.len()], base_history[..], "{file}: the base's history comes first");
    assert_eq!(history.len(), base_history.len() + ids.len() - 2, "{file}: one entry per layer of ours");
    assert_eq!(skopeo_config(&archive_path, 0)["rootfs"]["diff_ids"], json!(ids), "{file}");

    let podman = Podman::new();
    assert_eq!(podman.load(&archive_path), ["derived:1"], "{file}");
    let out = podman.run("derived:1");
    let expected = format!("{FILES}{tool} mine\n/srv\nv1 ");
    assert!(out.starts_with(&expected), "{file}: {expected:?}\n{out}");
}

#[test]
fn on_docker_save() {
    layered_on("docker-save.tar", "docker");
}

#[test]
fn on_podman_docker_archive() {
    layered_on("podman-docker-archive.tar", "podman");
}

#[test]
fn on_podman_oci_archive() {
    layered_on("podman-oci-archive.tar", "podman");
}

#[test]
fn on_buildah_oci_archive() {
    layered_on("buildah-oci-archive.tar", "buildah");
}

#[test]
fn on_skopeo_oci_archive() {
    // Docker's image, re-written by skopeo
    layered_on("skopeo-oci.tar", "docker");
}

/// umoci 0.4.7 (Debian 12's) writes a layer tar whose last file's data is not padded to a whole
/// block and that has no end-of-archive blocks (as in umoci issue #436): the fixture's second
/// layer is 4637 bytes. GNU tar calls it "Unexpected EOF in archive"; skopeo, podman and `umoci
/// unpack` read it, and so does stowage (it once refused it: `not a readable tar file:
/// unexpected EOF during skip`).
#[test]
fn on_umoci_oci_layout() {
    layered_on("umoci-oci-layout.tar", "umoci");
}

/// buildImage on fixtures: runAsRoot runs in the unpacked base (both of its layers applied, the
/// symlink and the replaced file as they are), and its one layer follows the fixture's.
#[test]
fn build_image_with_run_as_root_on_fixtures() {
    let nix = TestNix::new();
    for (file, tool) in [
        ("docker-save.tar", "docker"),
        ("podman-docker-archive.tar", "podman"),
        ("buildah-oci-archive.tar", "buildah"),
        ("umoci-oci-layout.tar", "umoci"),
    ] {
        let image = format!(
            r#"s.buildImage {{
              name = "single"; tag = "1"; compressor = "none"; fromImage = {};
              copyToRoot = [ busybox ]; shell = busybox;
              runAsRoot = "cat /etc/fixture-release /usr/share/fixture/link /srv/greeting.txt > /srv/seen";
              config.Cmd = [ "/bin/sh" "-c" "cat /srv/seen; echo $FIXTURE; pwd" ];
            }}"#,
            fixture_expr(file)
        );
        let archive_path = nix.build(&expr(&image));
        let (_, config) = manifest_and_config(&std::fs::read(&archive_path).unwrap());
        let ids = diff_ids(&config);
        assert_eq!(ids.len(), 3, "{file}: the fixture's two layers and ours");
        assert_eq!(ids[..2], diff_ids(&fixture_config(file)), "{file}");
        assert_eq!(skopeo_config(&archive_path, 0)["rootfs"]["diff_ids"], json!(ids), "{file}");
        let podman = Podman::new();
        assert_eq!(podman.load(&archive_path), ["single:1"], "{file}");
        assert_eq!(podman.run("single:1"), format!("{FILES}{tool}\n/srv\n"), "{file}");
    }
}

/// The fixtures merged into one archive with a stowage image built on one of them: every image
/// with its tag and its layers; a layer two images share (Docker's and skopeo's copy of it,
/// podman's and buildah's) stored once; podman loads them all and finds the fixtures' files.
#[test]
fn merging_fixtures() {
    let nix = TestNix::new();
    let inputs = [
        "docker-save.tar",
        "podman-docker-archive.tar",
        "buildah-oci-archive.tar",
        "skopeo-oci.tar",
        // not umoci's: see an_image_named_by_a_tag_alone_merges_into_an_oci_archive
    ];
    let images: Vec<String> = inputs.iter().map(|f| fixture_expr(f)).collect();
    let on_docker = layered("streamLayeredImage", &fixture_expr("docker-save.tar"));
    let merged_path = nix.build(&expr(&format!("s.mergeImages [ {} ({on_docker}) ]", images.join(" "))));
    let merged = std::fs::read(&merged_path).unwrap();

    let files = tar_files(&merged);
    let manifest: Vec<Value> =
        serde_json::from_slice(&files.iter().find(|(n, _)| n == "manifest.json").unwrap().1).unwrap();
    assert_eq!(manifest.len(), inputs.len() + 1);
    let configs: Vec<Value> = manifest
        .iter()
        .map(|m| {
            let name = m["Config"].as_str().unwrap();
            serde_json::from_slice(&files.iter().find(|(n, _)| n == name).unwrap().1).unwrap()
        })
        .collect();
    for (index, file) in inputs.iter().enumerate() {
        assert_eq!(diff_ids(&configs[index]), diff_ids(&fixture_config(file)), "{file}");
        assert_eq!(skopeo_config(&merged_path, index)["rootfs"], configs[index]["rootfs"], "{file}");
    }
    let distinct: BTreeSet<&str> =
        manifest.iter().flat_map(|m| m["Layers"].as_array().unwrap()).map(|l| l.as_str().unwrap()).collect();
    let stored = files.iter().filter(|(n, _)| distinct.contains(n.as_str())).count();
    assert_eq!(stored, distinct.len(), "each layer stored once");
    let all_ids: BTreeSet<&str> = configs
        .iter()
        .flat_map(|c| c["rootfs"]["diff_ids"].as_array().unwrap())
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(distinct.len(), all_ids.len(), "one layer file per diff_id");

    let podman = Podman::new();
    let tags = podman.load(&merged_path);
    // (podman's own name for its image is localhost/fixture/podman:1, shown without localhost/)
    assert_eq!(
        tags,
        ["derived:1", "fixture/buildah:1", "fixture/docker:1", "fixture/podman:1", "fixture/skopeo:1"]
    );
    assert!(podman.run("derived:1").starts_with(FILES));
    for tag in &tags {
        let root = podman.mount(tag);
        let hello = std::fs::read_to_string(root.join("usr/share/fixture/hello.txt"));
        podman.unmount(tag);
        assert_eq!(hello.unwrap(), "hello from the base layer\n", "{tag}");
    }
}

/// umoci names its image by a tag alone (`1`), as an OCI layout may: a docker-archive cannot
/// carry that, so merging it into one is an error naming the input; an OCI archive can, and
/// skopeo reads umoci's image out of the merge.
#[test]
fn an_image_named_by_a_tag_alone_merges_into_an_oci_archive() {
    let nix = TestNix::new();
    let inputs = format!("{} {}", fixture_expr("docker-save.tar"), fixture_expr("umoci-oci-layout.tar"));
    let err = nix.build_error(&expr(&format!("s.mergeImages [ {inputs} ]")));
    assert!(
        err.contains(r#"has an image tagged "1" in images[1] ("#)
            && err.contains("which a docker-archive cannot carry: \"1\" has no tag"),
        "{err}"
    );
    let merged =
        nix.build(&expr(&format!(r#"s.mergeImages {{ images = [ {inputs} ]; format = "oci-archive"; }}"#)));
    let inspect = |reference: &str| {
        let out = std::process::Command::new("skopeo")
            .args(["inspect", "--config", &format!("oci-archive:{}:{reference}", merged.display())])
            .output()
            .unwrap();
        assert!(out.status.success(), "{reference}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert_eq!(diff_ids(&inspect("1")), diff_ids(&fixture_config("umoci-oci-layout.tar")));
    assert_eq!(diff_ids(&inspect("fixture/docker:1")), diff_ids(&fixture_config("docker-save.tar")));
}

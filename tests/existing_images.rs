//! Images built on, or merged from, existing images — stowage's own (archives and streams) and
//! others' (re-written by skopeo, OCI layouts, compressed layers) — by a real `nix-build` with
//! the plugin, checked by skopeo and podman (fresh stores), and run.

mod support;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::process::Command;
use support::images::{
    docker_archive, expr, manifest_and_config, raw_layer, skopeo_config, tar_files, Podman,
};
use support::{nix_str, run_ok, TestNix};

/// A base image: busybox, fakeNss and a runtime config for derived images to inherit.
const BASE: &str = r#"{
    name = "base"; tag = "1";
    contents = [ busybox (s.fakeNss { }) ];
    config = {
      Env = [ "PATH=/bin" "BASE=1" "X=base" ];
      Cmd = [ "/bin/sh" "-c" "echo base" ];
      WorkingDir = "/etc";
      Labels = { from = "base"; };
    };
  }"#;

/// An image on `from` (a Nix expression) with an app of its own and a config that overrides.
fn derived(from: &str) -> String {
    format!(
        r#"s.buildLayeredImage {{
          name = "derived"; tag = "1"; compressor = "none"; fromImage = {from};
          contents = [ (app "v1") ];
          config = {{
            Env = [ "X=mine" "PATH=/bin:/usr/bin" ];
            Cmd = [ "/bin/sh" "-c" "echo $BASE $X $PATH; pwd; cat /app" ];
          }};
        }}"#
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

/// The diff_ids of the (first) image in a plain archive.
fn diff_ids(archive: &[u8]) -> Vec<String> {
    let (_, config) = manifest_and_config(archive);
    config["rootfs"]["diff_ids"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_owned()).collect()
}

/// Checks what every derived image must be: the base's layers first, then ours; the config
/// inherited and overridden; skopeo reads it; podman loads and runs it with base files and ours.
fn check_derived(archive: &[u8], archive_path: &Path, base: &[u8], run_as: &str) {
    let base_ids = diff_ids(base);
    let ids = diff_ids(archive);
    assert_eq!(&ids[..base_ids.len()], base_ids, "the base's layers come first");
    assert!(ids.len() > base_ids.len() + 1, "store layers and the customisation layer follow");
    let (_, config) = manifest_and_config(archive);
    let (_, base_config) = manifest_and_config(base);
    assert_eq!(config["config"]["Env"], json!(["PATH=/bin:/usr/bin", "BASE=1", "X=mine"]));
    assert_eq!(config["config"]["WorkingDir"], "/etc");
    assert_eq!(config["config"]["Labels"], json!({ "from": "base" }));
    let history = config["history"].as_array().unwrap();
    let base_history = base_config["history"].as_array().unwrap();
    assert_eq!(&history[..base_history.len()], base_history.as_slice(), "the base's history comes first");
    assert_eq!(history.len(), base_history.len() + ids.len() - base_ids.len());
    assert_eq!(skopeo_config(archive_path, 0)["rootfs"]["diff_ids"], json!(ids));

    let podman = Podman::new();
    assert_eq!(podman.load(archive_path), ["derived:1"]);
    let out = podman.run(run_as);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..2], ["1 mine /bin:/usr/bin", "/etc"], "{out}");
    assert!(lines[2].starts_with("v1 "), "{out}");
}

#[test]
fn a_stowage_base_archive_or_stream() {
    let nix = TestNix::new();
    let base = gunzip(&std::fs::read(nix.build(&expr(&format!("s.buildLayeredImage {BASE}")))).unwrap());
    let from_archive = nix.build(&expr(&derived(&format!("(s.buildLayeredImage {BASE})"))));
    let from_stream = nix.build(&expr(&derived(&format!("(s.streamLayeredImage {BASE})"))));
    let bytes = std::fs::read(&from_archive).unwrap();
    assert_eq!(
        bytes,
        std::fs::read(&from_stream).unwrap(),
        "a base archive and its stream give the same image"
    );
    check_derived(&bytes, &from_archive, &base, "derived:1");
    // Same inputs, same bytes.
    run_ok(nix.cmd("nix-build").args(["--no-out-link", "--check", "--option", "sandbox", "true"]).args([
        "--option",
        "sandbox-paths",
        "/bin/busybox",
        "-E",
        &expr(&derived(&format!("(s.buildLayeredImage {BASE})"))),
    ]));
}

/// A base archive built in another store (another root), then re-written by skopeo: as a
/// docker-archive, and as OCI layouts with gzip and zstd layers.
#[test]
fn foreign_bases_from_skopeo_and_oci_layouts() {
    let elsewhere = TestNix::new();
    let base_path =
        elsewhere.build(&expr(&format!("s.buildLayeredImage ({BASE} // {{ compressor = \"none\"; }})")));
    let base = std::fs::read(&base_path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = format!("docker-archive:{}", base_path.display());
    let rewritten = dir.path().join("rewritten.tar");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "-q", &source])
            .arg(format!("docker-archive:{}:base:1", rewritten.display())),
    );
    assert_ne!(std::fs::read(&rewritten).unwrap(), base, "skopeo writes its own archive");
    let oci = |format: &str| {
        let path = dir.path().join(format!("oci-{format}.tar"));
        run_ok(
            Command::new("skopeo")
                .args(["copy", "-q", "--dest-compress", "--dest-compress-format", format, &source])
                .arg(format!("oci-archive:{}:base:1", path.display())),
        );
        // The layers really are compressed: the first blob that is not JSON has the magic bytes.
        let magic: &[u8] = if format == "gzip" { &[0x1f, 0x8b] } else { &[0x28, 0xb5, 0x2f, 0xfd] };
        let files = tar_files(&std::fs::read(&path).unwrap());
        assert!(files.iter().any(|(name, data)| name.starts_with("blobs/") && data.starts_with(magic)));
        path
    };

    let nix = TestNix::new();
    for base_file in [rewritten, oci("gzip"), oci("zstd")] {
        let archive = nix.build(&expr(&derived(&format!("/. + {}", nix_str(&base_file.to_string_lossy())))));
        check_derived(&std::fs::read(&archive).unwrap(), &archive, &base, "derived:1");
    }
}

#[test]
fn the_base_counts_against_max_layers() {
    let nix = TestNix::new();
    let base = gunzip(&std::fs::read(nix.build(&expr(&format!("s.buildLayeredImage {BASE}")))).unwrap());
    let n = diff_ids(&base).len();
    assert!(n >= 3, "a base of several layers: {n}");
    let with_max = |max: usize| {
        expr(&format!(
            r#"s.buildLayeredImage {{
              name = "derived"; compressor = "none"; fromImage = s.buildLayeredImage {BASE};
              contents = [ (app "v1") ]; maxLayers = {max};
            }}"#
        ))
    };
    let err = nix.build_error(&with_max(n + 1));
    assert!(
        err.contains(&format!(
            "argument 'maxLayers' is {}, but the base image (fromImage) has {n} layers: with the customisation layer, that leaves no layer for store paths; set maxLayers to at least {}",
            n + 1,
            n + 2
        )),
        "{err}"
    );
    let archive = std::fs::read(nix.build(&with_max(n + 2))).unwrap();
    assert_eq!(diff_ids(&archive).len(), n + 2);
}

/// Writes `bytes` to a fresh file and returns a Nix expression for it.
fn file_expr(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    format!("(/. + {})", nix_str(&path.to_string_lossy()))
}

#[test]
fn bases_that_cannot_be_used_are_clear_errors() {
    let nix = TestNix::new();
    let dir = tempfile::tempdir().unwrap();
    let base_path =
        nix.build(&expr(&format!("s.buildLayeredImage ({BASE} // {{ compressor = \"none\"; }})")));
    let base = std::fs::read(&base_path).unwrap();
    let on = |from: &str, extra: &str| {
        expr(&format!(r#"s.streamLayeredImage {{ name = "derived"; fromImage = {from}; {extra} }}"#))
    };

    // One byte of the first layer's data changed: the tar is intact, its digest is not.
    let (manifest, _) = manifest_and_config(&base);
    let first_layer = manifest["Layers"][0].as_str().unwrap();
    let mut tampered = base.clone();
    let mut archive = tar::Archive::new(base.as_slice());
    let offset = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_string_lossy() == first_layer)
        .map(|e| e.raw_file_position() as usize)
        .unwrap();
    tampered[offset + 600] ^= 1; // inside the first file's data, past the layer's first header
    let tampered = file_expr(dir.path(), "tampered.tar", &tampered);
    let two_bases = format!(
        "s.mergeImages [ (s.buildLayeredImage {BASE}) (s.buildLayeredImage ({BASE} // {{ tag = \"2\"; contents = [ busybox ]; }})) ]"
    );
    let cases = [
        (on(&tampered, ""), format!("layer {first_layer}: its content has digest")),
        (on(&file_expr(dir.path(), "text.tar", b"not an archive"), ""), "not a readable tar archive".into()),
        (on(&file_expr(dir.path(), "cut.tar", &base[..base.len() / 2]), ""), "truncated".into()),
        (on("lib1", ""), "is a directory; an image file".into()),
        (
            on(&nix_str(&base_path.to_string_lossy()), ""),
            "does not exist in this build; a store path written as a plain string is no dependency".into(),
        ),
        (
            on(&format!("s.buildLayeredImage {BASE}"), "fromImageName = \"nope\";"),
            "it has no image nope:latest (it has: base:1)".into(),
        ),
        (
            on(&format!("s.buildLayeredImage ({BASE} // {{ architecture = \"arm64\"; }})"), ""),
            "the base image is for arm64/v8, but this image is for amd64; set architecture to match it"
                .into(),
        ),
        (
            on(&two_bases, ""),
            "it holds 2 images (base:1, base:2); pick one with fromImageName/fromImageTag".into(),
        ),
    ];
    for (expression, needle) in cases {
        let err = nix.build_error(&expression);
        assert!(err.contains(&needle), "{needle}\n{err}");
    }
    // With a name, a merged archive works as a base.
    nix.build(&on(&two_bases, "fromImageName = \"base\"; fromImageTag = \"2\";"));
}

/// Regression: a base layer with an entry named `../x` went into buildLayeredImage's and
/// buildImage's images as it was (only runAsRoot's unpacking refused it, as "climbs out"), and
/// the whiteout of `..` (`.wh...`) removed the build folder when runAsRoot unpacked it. Every
/// function refuses both, naming the archive, the layer and the entry.
#[test]
fn base_layers_whose_entries_lead_out_of_the_root_are_refused() {
    let nix = TestNix::new();
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 2] = [
        ("dotdot", b"../x", "entry \"../x\": its name has \"..\""),
        ("whiteout", b".wh...", "entry \".wh...\": a whiteout of \"..\""),
    ];
    for (file, entry, problem) in cases {
        let layer = raw_layer(&[(entry, tar::EntryType::Regular, b"")]);
        let base =
            file_expr(dir.path(), &format!("{file}.tar"), &docker_archive("base:1", json!({}), &[&layer]));
        let layer_file = format!("{}/layer.tar", sha256_hex(&layer));
        for image in [
            format!(r#"s.buildLayeredImage {{ name = "layered"; fromImage = {base}; }}"#),
            format!(r#"s.buildImage {{ name = "single"; fromImage = {base}; }}"#),
            format!(
                r#"s.buildImage {{ name = "scripted"; fromImage = {base}; shell = busybox; runAsRoot = "true"; }}"#
            ),
        ] {
            let err = nix.build_error(&expr(&image));
            let needle = format!("-{file}.tar: layer {layer_file}: {problem}");
            assert!(err.contains(&needle), "{image}: {needle}\n{err}");
        }
    }
}

/// Three images, two on a shared base (one an archive, one a stream) and one foreign,
/// zstd-compressed docker-archive: one archive with every tag, the base's layers once.
#[test]
fn merging_three_images_with_a_shared_base() {
    let nix = TestNix::new();
    let dir = tempfile::tempdir().unwrap();
    // The foreign image: built elsewhere, re-written by skopeo, compressed with zstd.
    let elsewhere = TestNix::new();
    let other = elsewhere.build(&expr(
        r#"s.buildLayeredImage { name = "other"; tag = "1"; compressor = "none"; contents = [ lib4 ]; }"#,
    ));
    let rewritten = dir.path().join("other.tar");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "-q"])
            .arg(format!("docker-archive:{}", other.display()))
            .arg(format!("docker-archive:{}:other:1", rewritten.display())),
    );
    let zst = zstd::encode_all(std::fs::read(&rewritten).unwrap().as_slice(), 3).unwrap();
    let foreign = file_expr(dir.path(), "other.tar.zst", &zst);

    let images = format!(
        r#"let
          base = s.buildLayeredImage {BASE};
          on = name: s.streamLayeredImage {{ inherit name; tag = "1"; fromImage = base; contents = [ (app name) ]; config.Cmd = [ "/bin/sh" "-c" "cat /app" ]; }};
        in [ (s.buildLayeredImage {{ name = "a"; tag = "1"; fromImage = base; contents = [ (app "a") ]; }}) (on "b") {foreign} ]"#
    );
    let merged_path = nix.build(&expr(&format!("s.mergeImages ({images})")));
    let merged = std::fs::read(&merged_path).unwrap();

    let files = tar_files(&merged);
    let manifest: Vec<Value> =
        serde_json::from_slice(&files.iter().find(|(n, _)| n == "manifest.json").unwrap().1).unwrap();
    let tags: Vec<&Value> = manifest.iter().map(|m| &m["RepoTags"]).collect();
    // skopeo names the image it re-wrote in full; the merge keeps tags as they are.
    assert_eq!(tags, [&json!(["a:1"]), &json!(["b:1"]), &json!(["docker.io/library/other:1"])]);
    let listed: usize = manifest.iter().map(|m| m["Layers"].as_array().unwrap().len()).sum();
    let distinct: BTreeSet<&str> =
        manifest.iter().flat_map(|m| m["Layers"].as_array().unwrap()).map(|l| l.as_str().unwrap()).collect();
    let stored: Vec<&String> = files.iter().map(|(n, _)| n).filter(|n| n.ends_with("/layer.tar")).collect();
    assert_eq!(stored.len(), distinct.len(), "each layer stored once");
    assert!(listed > distinct.len());
    let base = gunzip(&std::fs::read(nix.build(&expr(&format!("s.buildLayeredImage {BASE}")))).unwrap());
    for id in diff_ids(&base) {
        let holding: Vec<&String> = files
            .iter()
            .filter(|(n, bytes)| n.ends_with("/layer.tar") && format!("sha256:{}", sha256_hex(bytes)) == id)
            .map(|(n, _)| n)
            .collect();
        assert_eq!(holding.len(), 1, "base layer {id} stored once");
        assert!(manifest[..2].iter().all(|m| m["Layers"].as_array().unwrap().contains(&json!(holding[0]))));
    }

    for (index, entry) in manifest.iter().enumerate() {
        let config: Value = serde_json::from_slice(
            &files.iter().find(|(n, _)| n == entry["Config"].as_str().unwrap()).unwrap().1,
        )
        .unwrap();
        assert_eq!(skopeo_config(&merged_path, index)["rootfs"], config["rootfs"], "image @{index}");
    }
    let podman = Podman::new();
    assert_eq!(podman.load(&merged_path), ["a:1", "b:1", "docker.io/library/other:1"]);
    assert_eq!(podman.run("b:1").split(' ').next(), Some("b"));

    // The stream writes the same bytes; gz holds them; a rebuild gives them again.
    let stream = nix.build(&expr(&format!("s.streamMergedImages ({images})")));
    let out = run_ok(&mut Command::new(&stream));
    assert!(out.stdout == merged, "the merged stream differs from the merged archive");
    let gz = nix
        .build(&expr(&format!(r#"s.mergeImages {{ images = {images}; compressor = "gz"; name = "all"; }}"#)));
    assert!(gz.to_string_lossy().ends_with("-all.tar.gz"));
    assert!(gunzip(&std::fs::read(&gz).unwrap()) == merged, "the gz archive holds the plain one");
    run_ok(nix.cmd("nix-build").args(["--no-out-link", "--check", "--option", "sandbox", "true"]).args([
        "--option",
        "sandbox-paths",
        "/bin/busybox",
        "-E",
        &expr(&format!("s.mergeImages ({images})")),
    ]));
}

#[test]
fn merge_errors() {
    let nix = TestNix::new();
    let err = nix.build_error(&expr(
        r#"s.mergeImages [ (s.streamLayeredImage { name = "a"; tag = "1"; contents = [ lib1 ]; })
                           (s.streamLayeredImage { name = "a"; tag = "1"; contents = [ lib2 ]; }) ]"#,
    ));
    assert!(err.contains("argument 'images' has two different images tagged a:1: in images[0] ("), "{err}");
    assert!(err.contains("-stream-a) and in images[1] ("), "{err}");
    for (arg, needle) in [
        ("[ ]", "stowage.mergeImages: argument 'images' is empty"),
        (
            "[ \"/tmp/x.tar\" ]",
            "stowage.mergeImages: argument 'images[0]' \"/tmp/x.tar\" is not a store path",
        ),
        (
            "{ images = [ lib1 ]; compressor = \"xz\"; }",
            "stowage.mergeImages: argument 'compressor' is \"xz\"",
        ),
        ("{ images = [ lib1 ]; naem = \"x\"; }", "stowage.mergeImages: unexpected argument 'naem'"),
    ] {
        let err = nix.eval_error(&expr(&format!("(s.mergeImages {arg}).drvPath")));
        assert!(err.contains(needle), "{needle}\n{err}");
    }
    let err =
        nix.eval_error(&expr("(s.streamMergedImages { images = [ lib1 ]; compressor = \"gz\"; }).drvPath"));
    assert!(err.contains("stowage.streamMergedImages: unexpected argument 'compressor'"), "{err}");
}

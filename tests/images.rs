//! Layered images built by a real `nix-build` with the plugin (in the sandbox, in a throw-away
//! store whose root is not `/nix/store`), checked by skopeo and podman, and run.

mod support;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use support::images::{expr, manifest_and_config, skopeo_config, tar_files, umoci_unpack, Docker, Podman};
use support::{run_ok, TestNix};

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

const RUNNABLE: &str = r#"{
    name = "Registry.Example.com:5000/team/app";
    contents = [ busybox (s.fakeNss { }) ];
    config = {
      Cmd = [ "/bin/sh" "-c" "echo hello from stowage; echo A=$A; id -un" ];
      Env = [ "A=1" "PATH=/bin" "A=2" "PATH=/usr/bin:/bin" ];
    };
  }"#;

#[test]
fn runnable_image_loads_and_runs() {
    let nix = TestNix::new();
    let archive =
        nix.build(&expr(&format!("s.buildLayeredImage ({RUNNABLE} // {{ compressor = \"none\"; }})")));
    let tag = nix.eval_json(&expr(&format!("(s.buildLayeredImage {RUNNABLE}).imageTag")));
    let tag = tag.as_str().unwrap();
    assert_eq!(tag.len(), 32, "a derived tag is the derivation's hash: {tag}");
    let name = format!("registry.example.com:5000/team/app:{tag}");

    let bytes = std::fs::read(&archive).unwrap();
    let (manifest, config) = manifest_and_config(&bytes);
    assert_eq!(manifest["RepoTags"], json!([name]));
    assert_eq!(config["config"]["Env"], json!(["A=2", "PATH=/usr/bin:/bin"]));
    assert_eq!((config["architecture"].as_str(), config["os"].as_str()), (Some("amd64"), Some("linux")));
    let layers = manifest["Layers"].as_array().unwrap();
    assert!(layers.len() <= 100);
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), layers.len());
    assert_eq!(config["history"].as_array().unwrap().last().unwrap()["comment"], "customisation layer");

    // skopeo reads every layer and checks it against diff_ids
    let seen = skopeo_config(&archive, 0);
    assert_eq!(seen["config"]["Env"], json!(["A=2", "PATH=/usr/bin:/bin"]));
    // podman, from an empty store: the tag, the image ID (the config's digest), and a run
    let podman = Podman::new();
    assert_eq!(podman.load(&archive), vec![name.clone()]);
    let config_file = manifest["Config"].as_str().unwrap();
    let config_bytes = &tar_files(&bytes).into_iter().find(|(n, _)| n == config_file).unwrap().1;
    assert!(config_file.starts_with(&sha256_hex(config_bytes)));
    assert!(podman.image_exists(&sha256_hex(config_bytes)));
    assert_eq!(podman.run(&name), "hello from stowage\nA=2\nroot\n");
}

/// The default archive (gz: a gzip member per megabyte, compressed in parallel) in a real Docker
/// Engine: loaded as it is, with its image ID, and run.
#[test]
fn docker_loads_and_runs_the_default_gz_archive() {
    let nix = TestNix::new();
    let image = r#"s.buildLayeredImage {
        name = "gz"; tag = "t"; contents = [ busybox (lib "zeros" 3000000 "") ];
        config.Cmd = [ "/bin/sh" "-c" "echo hello from docker" ];
      }"#;
    let archive = nix.build(&expr(image));
    assert!(archive.to_string_lossy().ends_with("-gz.tar.gz"), "{}", archive.display());
    let plain = run_ok(std::process::Command::new("gzip").arg("-dc").arg(&archive)).stdout;
    let (manifest, _) = manifest_and_config(&plain);
    let config_file = manifest["Config"].as_str().unwrap();

    let docker = Docker::start();
    run_ok(docker.cmd().args(["load", "-i"]).arg(&archive));
    let id = run_ok(docker.cmd().args(["image", "inspect", "--format", "{{.Id}}", "gz:t"])).stdout;
    assert_eq!(
        String::from_utf8(id).unwrap().trim(),
        format!("sha256:{}", config_file.trim_end_matches(".json"))
    );
    let out = run_ok(docker.cmd().args(["run", "--rm", "--network", "none", "gz:t"])).stdout;
    assert_eq!(String::from_utf8(out).unwrap(), "hello from docker\n");

    // copyToDockerDaemon streams it into the engine's socket, no file between
    run_ok(docker.cmd().args(["rmi", "gz:t"]));
    let copy = nix.build(&expr(&format!("({image}).copyToDockerDaemon")));
    let loader = copy.join("bin/copy-to-docker-daemon");
    let out = run_ok(std::process::Command::new(loader).env("DOCKER_HOST", docker.host()));
    assert!(out.stdout.is_empty());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("Loaded image: gz:t"), "{said}");
    let out = run_ok(docker.cmd().args(["run", "--rm", "--network", "none", "gz:t"])).stdout;
    assert_eq!(String::from_utf8(out).unwrap(), "hello from docker\n");

    // the plain archive loads too; this Docker (Debian 12's 20.10) refuses a zstd one, as the
    // README says
    let other = |compressor: &str| {
        nix.build(&expr(&format!(
            r#"s.buildLayeredImage {{ name = "{compressor}"; tag = "t"; compressor = "{compressor}"; contents = [ busybox ];
               config.Cmd = [ "/bin/sh" "-c" "echo {compressor} archive" ]; }}"#
        )))
    };
    run_ok(docker.cmd().args(["load", "-i"]).arg(other("none")));
    let out = run_ok(docker.cmd().args(["run", "--rm", "--network", "none", "none:t"])).stdout;
    assert_eq!(String::from_utf8(out).unwrap(), "none archive\n");
    let zstd = docker.cmd().args(["load", "-i"]).arg(other("zstd")).output().unwrap();
    let version = run_ok(docker.cmd().args(["version", "--format", "{{.Server.Version}}"])).stdout;
    assert!(
        !zstd.status.success() && String::from_utf8_lossy(&version).starts_with("20.10."),
        "Docker {} loads zstd archives now: say so in the README",
        String::from_utf8_lossy(&version)
    );
}

#[test]
fn stream_writes_the_same_archive_to_stdout_and_logs_to_stderr() {
    let nix = TestNix::new();
    let image = r#"{ name = "app"; tag = "v1"; contents = [ busybox ]; config.Cmd = [ "/bin/sh" ]; }"#;
    let stream = nix.build(&expr(&format!("s.streamLayeredImage {image}")));
    let built =
        nix.build_output(&expr(&format!("s.buildLayeredImage ({image} // {{ compressor = \"none\"; }})")));
    let archive = std::path::PathBuf::from(String::from_utf8(built.stdout).unwrap().trim());
    // The archive's builder logs its progress into Nix's build log, lines and no `\r`.
    let log = String::from_utf8_lossy(&built.stderr);
    assert!(log.contains("-app.tar: layer 2/2, ") && !log.contains('\r'), "{log}");
    let out = run_ok(&mut std::process::Command::new(&stream));
    assert_eq!(out.stdout, std::fs::read(&archive).unwrap(), "stdout carries exactly the archive");
    assert_eq!(skopeo_config(&archive, 0)["config"]["Cmd"], json!(["/bin/sh"]));
    assert_eq!(Podman::new().load(&archive), vec!["app:v1".to_string()]);
    // Progress: none where stderr is not a terminal, unless asked; lines when asked; on a
    // terminal (a pty from `script`), one line redrawn in place.
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "quiet where stderr is a pipe");
    let asked = run_ok(std::process::Command::new(&stream).env("STOWAGE_PROGRESS", "always"));
    assert_eq!(asked.stdout, out.stdout);
    let stderr = String::from_utf8_lossy(&asked.stderr);
    assert!(stderr.lines().last().unwrap().starts_with("stowage: stream: layer 2/2, "), "{stderr}");
    assert!(!stderr.contains('\r'), "{stderr}");
    let on_terminal = format!("{} 2>&1 >/dev/null", stream.display());
    let live = run_ok(std::process::Command::new("script").arg("-qec").arg(on_terminal).arg("/dev/null"));
    let live = String::from_utf8_lossy(&live.stdout);
    assert!(live.contains("\rstowage: stream: layer 2/2, ") && live.contains("(100%)"), "{live:?}");
    // buildLayeredImage's `stream` carries the same attributes as streamLayeredImage's (and
    // streams the same archive, above; it is another derivation, which names its function).
    assert_eq!(
        nix.eval_json(&expr(&format!(
            "let a = s.buildLayeredImage {image}; b = s.streamLayeredImage {image}; in [ a.stream.imageName a.stream.imageTag b.imageName b.imageTag ]"
        ))),
        json!(["app", "v1", "app", "v1"])
    );
    // A consumer that stops reading early ends the stream quietly.
    let out = run_ok(
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{} | head -c 1000 | wc -c", stream.display())),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1000");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("error"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// gz and zstd archives hold exactly the plain archive, as `gzip -d` and `zstd -d` read them.
/// (Debian 12's skopeo and podman cannot read compressed docker-archives at all — not even
/// `gzip`'s own output — so they check the plain one; Docker loads all three.)
#[test]
fn compressed_archives_hold_the_plain_archive() {
    let nix = TestNix::new();
    let image = |compressor: &str| {
        nix.build(&expr(&format!(
            r#"s.buildLayeredImage {{ name = "app"; tag = "t"; contents = [ busybox ]; compressor = "{compressor}"; }}"#
        )))
    };
    let plain = image("none");
    assert!(plain.to_string_lossy().ends_with("-app.tar"), "{}", plain.display());
    let plain_bytes = std::fs::read(&plain).unwrap();
    assert_eq!(Podman::new().load(&plain), vec!["app:t".to_string()]);
    for (compressor, ext, tool) in [("gz", ".tar.gz", "gzip"), ("zstd", ".tar.zst", "zstd")] {
        let archive = image(compressor);
        assert!(archive.to_string_lossy().ends_with(&format!("-app{ext}")), "{}", archive.display());
        let unpacked = run_ok(std::process::Command::new(tool).arg("-dc").arg(&archive)).stdout;
        assert!(unpacked == plain_bytes, "{compressor} archive differs from the plain one");
    }
}

/// gz and zstd archives (of buildLayeredImage and mergeImages) are compressed on the cores Nix
/// gives the build (`cores`, which the builder sees as NIX_BUILD_CORES; 0 is all of them), and
/// their bytes do not depend on how many: `nix-build --check` with other `cores` rebuilds them
/// bit for bit.
#[test]
fn compressed_archives_do_not_depend_on_the_cores() {
    let nix = TestNix::new();
    let all = std::thread::available_parallelism().unwrap().get();
    let threads = |log: &[u8]| -> usize {
        let log = String::from_utf8_lossy(log);
        let line = log
            .lines()
            .find(|l| l.contains(" thread(s)"))
            .unwrap_or_else(|| panic!("no thread count in {log}"));
        line.rsplit(" on ").next().unwrap().trim_end_matches(" thread(s)").parse().unwrap()
    };
    // 20 MB of zeros: many gzip members and several zstd jobs
    let layered = |compressor: &str| {
        format!(
            r#"s.buildLayeredImage {{ name = "cores"; tag = "t"; contents = [ busybox (lib "big" 20000000 "") ]; compressor = "{compressor}"; }}"#
        )
    };
    let merged = r#"s.mergeImages { compressor = "gz"; images = [ (s.streamLayeredImage { name = "m"; tag = "t"; contents = [ busybox (lib "big" 20000000 "") ]; }) ]; }"#;
    for image in [layered("gz"), layered("zstd"), merged.to_string()] {
        let image = expr(&image);
        let first = nix.build_output_with(&image, &["--option", "cores", "1"]);
        assert_eq!(threads(&first.stderr), 1);
        let archive = String::from_utf8(first.stdout).unwrap();
        let bytes = std::fs::read(archive.trim()).unwrap();
        for (cores, expected) in [("3", 3), ("0", all)] {
            let again = nix.build_output_with(&image, &["--check", "--option", "cores", cores]);
            assert_eq!(threads(&again.stderr), expected, "cores = {cores}");
            assert!(std::fs::read(archive.trim()).unwrap() == bytes);
        }
    }
}

/// Same inputs, same bytes: in another store at the same root, and in `nix-build --check`.
#[test]
fn reproducible() {
    let image = r#"s.buildLayeredImage { name = "repro"; contents = [ busybox lib4 ]; compressor = "none"; config.Env = [ "A=1" ]; }"#;
    let root = tempfile::Builder::new().prefix("stowage-repro-").tempdir().unwrap();
    let store_root = root.path().to_owned();
    let first = {
        let nix = TestNix::new_with_root(&store_root);
        let path = nix.build(&expr(image));
        run_ok(nix.cmd("nix-build").args([
            "--check",
            "--no-out-link",
            "--option",
            "sandbox",
            "true",
            "-E",
            &expr(image),
        ]));
        std::fs::read(path).unwrap()
    };
    let second = {
        let nix = TestNix::new_with_root(&store_root);
        std::fs::read(nix.build(&expr(image))).unwrap()
    };
    assert!(first == second, "two fresh stores at one root gave different archives");
    let file = root.path().join("first.tar");
    std::fs::write(&file, &first).unwrap();
    skopeo_config(&file, 0);
    assert_eq!(Podman::new().load(&file).len(), 1);

    // Under another store root the paths differ, but the image's shape does not.
    let other = TestNix::new();
    let third = std::fs::read(other.build(&expr(image))).unwrap();
    let (m1, c1) = manifest_and_config(&first);
    let (m3, c3) = manifest_and_config(&third);
    assert_eq!(m1["Layers"].as_array().unwrap().len(), m3["Layers"].as_array().unwrap().len());
    assert_eq!(c1["config"], c3["config"]);
    assert_ne!(first, third);
}

#[test]
fn architectures() {
    let nix = TestNix::new();
    for (arch, expected, variant) in [
        ("x86_64-linux", "amd64", None),
        ("aarch64-linux", "arm64", Some("v8")),
        ("armv7l-linux", "arm", Some("v7")),
        ("arm64", "arm64", Some("v8")),
    ] {
        let archive = nix.build(&expr(&format!(
            r#"s.buildLayeredImage {{ name = "a"; tag = "t"; architecture = "{arch}"; compressor = "none"; }}"#
        )));
        let (_, config) = manifest_and_config(&std::fs::read(&archive).unwrap());
        assert_eq!(config["architecture"], expected, "{arch}");
        assert_eq!(config.get("variant").and_then(Value::as_str), variant, "{arch}");
        // the same through skopeo
        assert_eq!(skopeo_config(&archive, 0)["architecture"], expected);
    }
}

/// Builds `image`, checks it with skopeo and podman (fresh stores), and returns its diff_ids.
fn diff_ids(nix: &TestNix, image: &str) -> Vec<String> {
    let path = nix.build(&expr(image));
    let (manifest, config) = manifest_and_config(&std::fs::read(&path).unwrap());
    assert_eq!(skopeo_config(&path, 0)["rootfs"], config["rootfs"]);
    let tags: Vec<String> =
        manifest["RepoTags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().into()).collect();
    assert_eq!(Podman::new().load(&path), tags);
    config["rootfs"]["diff_ids"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_owned()).collect()
}

#[test]
fn layers_are_stable_when_the_app_changes() {
    let nix = TestNix::new();
    // 6 store paths (busybox, lib1–4, app) in 4 layers: some must share.
    let image = |v: &str| {
        format!(
            r#"s.buildLayeredImage {{ name = "app"; tag = "t"; contents = [ busybox (app "{v}") ]; maxLayers = 4; compressor = "none"; }}"#
        )
    };
    let before = diff_ids(&nix, &image("1"));
    let after = diff_ids(&nix, &image("2"));
    assert_eq!(before.len(), 4);
    assert_eq!(after.len(), 4);
    let changed: Vec<usize> = (0..4).filter(|&i| before[i] != after[i]).collect();
    // only the app's own layer and the customisation layer (its links point at the app)
    assert_eq!(changed.len(), 2, "{before:?}\n{after:?}");
    assert_eq!(*changed.last().unwrap(), 3);
}

#[test]
fn max_layers_is_respected() {
    let nix = TestNix::new();
    for max in [2, 3, 125] {
        let ids = diff_ids(
            &nix,
            &format!(
                r#"s.buildLayeredImage {{ name = "app"; tag = "t"; contents = [ busybox (app "1") ]; maxLayers = {max}; compressor = "none"; }}"#
            ),
        );
        assert!(ids.len() <= max, "maxLayers {max}: {} layers", ids.len());
    }
}

/// A Nix string may hold any bytes (`builtins.readFile` of a binary file); one that is not
/// UTF-8, in an argument or as an attribute name, is named by the plugin (Nix 2.8's said "data
/// for rust::Str is not utf-8", 2.26's only Nix's JSON error). In library mode Nix itself refuses
/// it, writing the derivation's attributes.
#[test]
fn strings_that_are_not_utf8_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("binary");
    std::fs::write(&binary, b"a\xffb").unwrap();
    let bytes = format!("(builtins.readFile {})", binary.display());
    let nix = TestNix::new();
    for (args, message) in [
        (format!(r#"{{ name = {bytes}; }}"#), "argument 'name' is a string that is not UTF-8"),
        (
            format!(r#"{{ name = "a"; config.Env = [ "A=1" "B=${{{bytes}}}" ]; }}"#),
            "argument 'config.Env[1]' is a string that is not UTF-8",
        ),
        (
            format!(
                r#"{{ name = "a"; config.Labels = builtins.listToAttrs [ {{ name = {bytes}; value = "v"; }} ]; }}"#
            ),
            "argument 'config.Labels' is a set with an attribute name that is not UTF-8",
        ),
    ] {
        let stderr = nix.eval_error(&expr(&format!("(s.buildLayeredImage {args}).drvPath")));
        let message = format!("stowage.buildLayeredImage: {message}");
        match support::library_mode() {
            true => assert!(stderr.contains("UTF-8 byte"), "{args}: expected Nix's error in\n{stderr}"),
            false => assert!(stderr.contains(&message), "{args}: expected {message:?} in\n{stderr}"),
        }
    }
}

#[test]
fn bad_arguments() {
    // The message of `function` about an argument; without the plugin, a function value is Nix's
    // own error, as it never reaches the builder.
    let expected = |function: &str, message: &str| {
        if support::library_mode() && message.contains("is a function") {
            "error: cannot convert a function to JSON".to_owned()
        } else {
            format!("stowage.{function}: {message}")
        }
    };
    let nix = TestNix::new();
    for (args, message) in [
        (r#"{ name = "a b"; }"#, "argument 'name' \"a b\" is not a valid image name"),
        (r#"{ name = "a"; tag = ":x"; }"#, "argument 'tag' \":x\" is not a valid image tag"),
        (r#"{ name = "a"; maxLayers = 1; }"#, "argument 'maxLayers' is 1; it must be from 2"),
        (r#"{ name = "a"; maxLayers = 126; }"#, "argument 'maxLayers' is 126"),
        (
            r#"{ name = "a"; fromImage = "/tmp/base.tar"; }"#,
            "argument 'fromImage' \"/tmp/base.tar\" is not a store path",
        ),
        (
            r#"{ name = "a"; fakeRootCommands = "x"; shell = "/bin"; }"#,
            "argument 'shell' \"/bin\" is not a store path",
        ),
        (r#"{ name = "a"; contents = [ "/etc" ]; }"#, "argument 'contents[0]' \"/etc\" is not a store path"),
        (
            r#"{ name = "a"; architecture = "z80"; }"#,
            "argument 'architecture' \"z80\" is neither a GOARCH name",
        ),
        (
            r#"{ name = "a"; created = "last tuesday"; }"#,
            "argument 'created' \"last tuesday\" is not an RFC 3339 time",
        ),
        (
            r#"{ name = "a"; config.Entrypiont = [ ]; }"#,
            "argument 'config.Entrypiont' is not a field of an image config",
        ),
        (
            r#"{ name = "a"; config.Env = [ "JUSTNAME" ]; }"#,
            "argument 'config.Env[0]' \"JUSTNAME\" is not of the form NAME=value",
        ),
        (r#"{ tag = "x"; }"#, "argument 'name' is required"),
        (
            r#"{ name = "a"; config.Cmd = [ "sh" (x: x) ]; }"#,
            "argument 'config.Cmd[1]' is a function, which an image cannot hold",
        ),
        // deeper than stowage reads, and deeper than serde_json reads (library mode's builder
        // reads it with the derivation's attributes)
        (
            r#"{ name = "a"; config.Labels = let f = n: if n == 0 then { } else { a = f (n - 1); }; in f 110; }"#,
            "argument 'config' nests sets and lists more than 100 deep",
        ),
        (
            r#"{ name = "a"; config.Labels = let f = n: if n == 0 then { } else { a = f (n - 1); }; in f 200; }"#,
            "argument 'config' nests sets and lists more than 100 deep",
        ),
        (r#""a""#, "the argument is a string while a set was expected"),
        ("[ ]", "the argument is a list while a set was expected"),
    ] {
        for function in ["streamLayeredImage", "buildLayeredImage"] {
            let stderr = nix.eval_error(&expr(&format!("(s.{function} {args}).drvPath")));
            let message = expected(function, message);
            assert!(stderr.contains(&message), "{function} {args}: expected {message:?} in\n{stderr}");
        }
    }
    for (function, args, message) in [
        ("buildImage", r#""a""#, "the argument is a string while a set was expected"),
        ("buildImageIndex", "1", "the argument is an integer while a set was expected"),
        ("mergeImages", r#""a""#, "the argument is a string while a set was expected"),
        ("pullImage", "null", "the argument is null while a set was expected"),
        (
            "buildImage",
            r#"{ name = "a"; config.Env = [ (x: x) ]; }"#,
            "argument 'config.Env[0]' is a function",
        ),
    ] {
        let stderr = nix.eval_error(&expr(&format!("(s.{function} {args}).drvPath")));
        let message = expected(function, message);
        assert!(stderr.contains(&message), "{function} {args}: expected {message:?} in\n{stderr}");
    }
    let stderr = nix.eval_error(&expr(r#"(s.buildLayeredImage { name = "a"; compressor = "xz"; }).drvPath"#));
    assert!(stderr.contains("stowage.buildLayeredImage: argument 'compressor' is \"xz\""), "{stderr}");
}

/// Store paths the config mentions join the image, as in dockerTools: here the shell comes
/// only from `Cmd`.
#[test]
fn config_store_paths_join_the_closure() {
    let nix = TestNix::new();
    let archive = nix.build(&expr(
        r#"s.buildLayeredImage { name = "cmd-only"; tag = "t"; compressor = "none";
             config.Cmd = [ "${busybox}/bin/sh" "-c" "echo reached through the config" ]; }"#,
    ));
    let podman = Podman::new();
    podman.load(&archive);
    assert_eq!(podman.run("cmd-only:t"), "reached through the config\n");
}

#[test]
fn contents_clash_first_wins_with_a_warning() {
    let nix = TestNix::new();
    let image = r#"s.buildLayeredImage { name = "clash"; tag = "t"; compressor = "none";
        contents = [ busybox (sh "other-sh" "/bin/busybox mkdir -p $out/bin && echo x > $out/bin/sh") ]; }"#;
    let out = nix.build_output(&expr(image));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("stowage: warning: contents clash at /bin/sh: keeping "), "{log}");
    let archive = std::fs::read(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    let (manifest, _) = manifest_and_config(&archive);
    let last = manifest["Layers"].as_array().unwrap().last().unwrap().as_str().unwrap().to_owned();
    let layer = tar_files(&archive).into_iter().find(|(n, _)| *n == last).unwrap().1;
    let mut entries = tar::Archive::new(layer.as_slice());
    let sh = entries
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_str() == Some("bin/sh"))
        .unwrap();
    let target = sh.link_name().unwrap().unwrap().to_string_lossy().into_owned();
    assert!(target.ends_with("-busybox/bin/sh"), "{target}");
}

#[test]
fn created_now_and_include_store_paths() {
    let nix = TestNix::new();
    let archive = std::fs::read(nix.build(&expr(
        r#"s.buildLayeredImage { name = "now"; tag = "t"; compressor = "none"; created = "now";
             contents = [ busybox ]; includeStorePaths = false; }"#,
    )))
    .unwrap();
    let (manifest, config) = manifest_and_config(&archive);
    let created = config["created"].as_str().unwrap();
    assert!(created > "2020", "created = now gives the build's time: {created}");
    // without the store paths, only the customisation layer (links into the store) remains
    assert_eq!(manifest["Layers"].as_array().unwrap().len(), 1);
}

#[test]
fn passthru_and_meta_reach_the_result() {
    let nix = TestNix::new();
    for function in ["streamLayeredImage", "buildLayeredImage"] {
        let got = nix.eval_json(&expr(&format!(
            r#"let i = s.{function} {{ name = "a"; passthru.extra = 42; meta.description = "an image"; }};
               in [ i.extra i.passthru.extra i.meta.description i.imageName ]"#
        )));
        assert_eq!(got, json!([42, 42, "an image", "a"]), "{function}");
    }
}

/// A stream whose store changed under it (here: a plan whose recorded digest is wrong) fails
/// loudly and never writes a manifest, so no consumer can load the image.
#[test]
fn a_stream_that_does_not_match_its_plan_stops_before_the_manifest() {
    let nix = TestNix::new();
    let stream =
        nix.build(&expr(r#"s.streamLayeredImage { name = "app"; tag = "t"; contents = [ busybox ]; }"#));
    let script = std::fs::read_to_string(&stream).unwrap();
    let (shebang, plan) = script.split_once('\n').unwrap();
    let mut plan: Value = serde_json::from_str(plan).unwrap();
    plan["images"][0]["layers"][0]["digest"] = json!(format!("sha256:{}", "0".repeat(64)));
    let tampered = nix.root().join("tampered");
    std::fs::write(&tampered, format!("{shebang}\n{plan}\n")).unwrap();
    let builder = shebang.trim_start_matches("#!").split(' ').next().unwrap();
    let out = std::process::Command::new(builder).arg("stream").arg(&tampered).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stowage: layer 0 does not match its plan: expected sha256:0000"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("manifest.json"));
}

/// The entries of the folder `dir`, byte for byte: (name, link target if a symlink), sorted.
fn raw_listing(dir: &Path) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut entries: Vec<(Vec<u8>, Option<Vec<u8>>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            let link = std::fs::read_link(&path).ok().map(|t| t.as_os_str().as_bytes().to_vec());
            (path.file_name().unwrap().as_bytes().to_vec(), link)
        })
        .collect();
    entries.sort();
    entries
}

/// Regression: file names and symlink targets that are not UTF-8 (store paths may hold any byte
/// but `/` and NUL) were written with U+FFFD in place of each bad byte: `a\xe9` and `a\xe8`
/// became two entries of one name, and a link to `\xff\xfe` pointed at U+FFFD U+FFFD. Now they
/// come back byte for byte — from a store layer, from the customisation layer's links, from a
/// base unpacked for runAsRoot and from what runAsRoot copied — as umoci and podman unpack them.
#[test]
fn names_that_are_not_utf8_survive_byte_for_byte() {
    let nix = TestNix::new();
    let names = r#"sh "names" "/bin/busybox mkdir -p $out/d && cd $out/d && echo 1 > $(/bin/busybox printf 'caf\\351') && echo 2 > $(/bin/busybox printf 'a\\351') && echo 3 > $(/bin/busybox printf 'a\\350') && /bin/busybox ln -s $(/bin/busybox printf '\\377\\376') link""#;
    let store_path = nix.build(&expr(names));
    let layered = format!(
        r#"s.buildLayeredImage {{ name = "names"; tag = "t"; compressor = "none"; contents = [ busybox ({names}) ]; }}"#
    );
    let copied = format!(
        r#"let names = {names}; in s.buildImage {{ name = "copied"; tag = "t"; compressor = "none"; fromImage = {layered};
             runAsRoot = "/bin/busybox cp -a /d /e && /bin/busybox cp -a ${{names}}/d /f"; }}"#
    );
    let files: Vec<(Vec<u8>, Option<Vec<u8>>)> = vec![
        (b"a\xe8".to_vec(), None),
        (b"a\xe9".to_vec(), None),
        (b"caf\xe9".to_vec(), None),
        (b"link".to_vec(), Some(b"\xff\xfe".to_vec())),
    ];
    // the customisation layer links each name to the store path's
    let links: Vec<(Vec<u8>, Option<Vec<u8>>)> = files
        .iter()
        .map(|(name, _)| {
            let target = store_path.join("d").join(OsStr::from_bytes(name));
            (name.clone(), Some(target.as_os_str().as_bytes().to_vec()))
        })
        .collect();
    let in_root = |root: &Path, path: &Path| root.join(path.strip_prefix("/").unwrap());
    let check = |root: &Path, image: &str| {
        assert_eq!(raw_listing(&in_root(root, &store_path.join("d"))), files, "{image}: the store path");
        let cafe = in_root(root, &store_path.join("d").join(OsStr::from_bytes(b"caf\xe9")));
        assert_eq!(std::fs::read(cafe).unwrap(), b"1\n", "{image}");
        assert_eq!(raw_listing(&root.join("d")), links, "{image}: the customisation layer");
        if image == "copied:t" {
            assert_eq!(raw_listing(&root.join("e")), links, "{image}: links runAsRoot copied");
            assert_eq!(raw_listing(&root.join("f")), files, "{image}: files runAsRoot copied");
        }
    };
    for (expression, image) in [(layered.as_str(), "names:t"), (copied.as_str(), "copied:t")] {
        let archive = nix.build(&expr(expression));
        let (_bundle, root) = umoci_unpack(&archive);
        check(&root, image);
        let podman = Podman::new();
        assert_eq!(podman.load(&archive), [image]);
        check(&podman.mount(image), image);
        podman.unmount(image);
    }
}

//! `buildImage`: dockerTools' single-layer builder — copyToRoot copied, runAsRoot run as root
//! chrooted in the unpacked image without a VM — built by a real `nix-build` with the plugin
//! (in the sandbox), checked by skopeo and podman, and run.

mod support;

use support::images::{docker_archive, expr, layer_headers, skopeo_config, Podman};
use support::{nix_str, TestNix};

/// The entries (name, type, uid) of the last layer of the archive's first image, and how many
/// layers it has.
fn last_layer(archive: &std::path::Path) -> (Vec<(String, tar::EntryType, u64)>, usize) {
    let (headers, layers) = layer_headers(archive, -1);
    (headers.into_iter().map(|(n, h)| (n, h.entry_type(), h.uid().unwrap())).collect(), layers)
}

fn kind_of(entries: &[(String, tar::EntryType, u64)], name: &str) -> tar::EntryType {
    entries.iter().find(|e| e.0 == name).unwrap_or_else(|| panic!("no {name} in {entries:?}")).1
}

#[test]
fn copy_to_root_copies_real_files() {
    let nix = TestNix::new();
    let image = r#"s.buildImage {
        name = "copied"; tag = "t"; compressor = "none";
        copyToRoot = [ busybox (s.fakeNss { }) ];
        config.Cmd = [ "/bin/sh" "-c" "[ -f /bin/busybox ] && [ ! -L /bin/busybox ] && id -un && echo real files" ];
      }"#;
    let archive = nix.build(&expr(image));
    let (entries, layers) = last_layer(&archive);
    assert_eq!(layers, 1);
    assert_eq!(kind_of(&entries, "bin/busybox"), tar::EntryType::Regular);
    assert_eq!(kind_of(&entries, "etc/passwd"), tar::EntryType::Regular);
    // busybox refers to no store path: none is in the image
    assert!(entries.iter().all(|e| !e.0.contains("store/")), "{entries:?}");
    skopeo_config(&archive, 0);
    let podman = Podman::new();
    podman.load(&archive);
    assert_eq!(podman.run("copied:t"), "root\nreal files\n");
    // imageName and imageTag, as dockerTools sets them
    let attrs = nix.eval_json(&expr(&format!("let i = {image}; in [ i.imageName i.imageTag ]")));
    assert_eq!(attrs, serde_json::json!(["copied", "t"]));
}

#[test]
fn stacked_run_as_root_scripts_see_what_lower_layers_wrote() {
    let nix = TestNix::new();
    let image = r#"let
        a = s.buildImage { name = "a"; tag = "t"; copyToRoot = [ busybox ];
          runAsRoot = "mkdir -p /data; echo one > /data/a; echo gone > /data/old"; };
        b = s.buildImage { name = "b"; tag = "t"; fromImage = a;
          runAsRoot = ''cat /data/a > /data/b; echo "two (it's \"quoted\")" >> /data/b; rm /data/old''; };
      in s.buildImage { name = "c"; tag = "t"; fromImage = b; compressor = "none";
        runAsRoot = ''
          cat /data/b > /data/c
          chown 1000:1000 /data/c
          [ "$(id -u)" = 0 ] && [ $$ = 1 ]
        '';
        config.Cmd = [ "/bin/sh" "-c" "cat /data/c; ls /data; stat -c %u:%g /data/c" ];
      }"#;
    let archive = nix.build(&expr(image));
    let (entries, layers) = last_layer(&archive);
    assert_eq!(layers, 3);
    // only what c's script changed is in its layer
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names, ["data/", "data/c"], "{entries:?}");
    assert_eq!(entries[1].2, 1000);
    skopeo_config(&archive, 0);
    let podman = Podman::new();
    podman.load(&archive);
    assert_eq!(podman.run("c:t"), "one\ntwo (it's \"quoted\")\na\nb\nc\n1000:1000\n");
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    h
}

/// A docker-archive whose manifest lists its one layer (busybox as bin/sh) twice.
fn repeated_layer_base() -> Vec<u8> {
    let mut layer = tar::Builder::new(Vec::new());
    let mut dir = header(tar::EntryType::Directory, 0o755, 0);
    layer.append_data(&mut dir, "bin/", std::io::empty()).unwrap();
    let busybox = std::fs::read("/bin/busybox").unwrap();
    let mut file = header(tar::EntryType::Regular, 0o755, busybox.len() as u64);
    layer.append_data(&mut file, "bin/busybox", busybox.as_slice()).unwrap();
    let mut link = header(tar::EntryType::Symlink, 0o777, 0);
    layer.append_link(&mut link, "bin/sh", "busybox").unwrap();
    let layer = layer.into_inner().unwrap();
    docker_archive("base:1", serde_json::json!({ "Env": [ "FROM_BASE=1" ] }), &[&layer, &layer])
}

#[test]
fn run_as_root_on_a_base_that_repeats_a_layer() {
    let nix = TestNix::new();
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.tar");
    std::fs::write(&base, repeated_layer_base()).unwrap();
    let image = format!(
        r#"s.buildImage {{ name = "on-repeat"; tag = "t"; compressor = "none"; fromImage = /. + {};
            runAsRoot = "echo \"made by the base's own shell\" > /made"; config.Cmd = [ "/bin/sh" "-c" "cat /made; echo $FROM_BASE" ]; }}"#,
        nix_str(&base.to_string_lossy())
    );
    let archive = nix.build(&expr(&image));
    let (entries, layers) = last_layer(&archive);
    assert_eq!(layers, 3);
    assert_eq!(entries.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["made"]);
    let podman = Podman::new();
    podman.load(&archive);
    assert_eq!(podman.run("on-repeat:t"), "made by the base's own shell\n1\n");
}

#[test]
fn script_errors_and_what_runs_them() {
    let nix = TestNix::new();
    let err = nix.build_error(&expr(
        r#"s.buildImage { name = "fails"; copyToRoot = [ busybox ]; runAsRoot = "echo '(broken)' >&2; exit 4"; }"#,
    ));
    assert!(err.contains("(broken)") && err.contains("stowage: runAsRoot failed (exit code 4)"), "{err}");
    // a shell only used to run the script is not in the image
    let archive = nix.build(&expr(
        r#"s.buildImage { name = "tmp"; tag = "t"; compressor = "none"; shell = busybox;
             extraCommands = "mkdir -p tmp; chmod 1777 tmp"; }"#,
    ));
    let (entries, _) = last_layer(&archive);
    assert_eq!(entries.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["tmp/"], "{entries:?}");
    // nothing could run it: no shell given, none in the image, none in Nix's sandbox
    let err = nix.eval_error_with(
        &["--option", "sandbox-paths", "/bin/busybox"],
        &expr(r#"(s.buildImage { name = "x"; runAsRoot = "true"; }).drvPath"#),
    );
    assert!(err.contains("stowage.buildImage: argument 'shell' is needed to run runAsRoot"), "{err}");
}

/// A stowage base whose /bin/sh is a link into its own store paths, which the build does not
/// have (a gz archive refers to nothing): runAsRoot runs with it, in the sandbox, as build users
/// and without the sandbox, the same bytes every time.
#[test]
fn run_as_root_on_a_layered_base_with_its_own_store() {
    let nix = TestNix::new();
    let image = r#"s.buildImage { name = "on-layered"; tag = "t"; compressor = "none";
        fromImage = s.buildLayeredImage { name = "base"; tag = "1"; contents = [ busybox ]; config.Env = [ "FROM=base" ]; };
        runAsRoot = "[ -L /bin/sh ] && mkdir -p /srv && echo from the base shell > /srv/hello && chown 33:33 /srv/hello";
        config.Cmd = [ "/bin/sh" "-c" "cat /srv/hello; stat -c %u /srv/hello; echo $FROM" ];
      }"#;
    let archive = nix.build(&expr(image));
    let (entries, layers) = last_layer(&archive);
    assert_eq!(layers, 3);
    assert_eq!(
        entries.iter().map(|e| (e.0.as_str(), e.2)).collect::<Vec<_>>(),
        [("srv/", 0), ("srv/hello", 33)]
    );
    let podman = Podman::new();
    podman.load(&archive);
    assert_eq!(podman.run("on-layered:t"), "from the base shell\n33\nbase\n");
    let layer = expr(&format!("({image}).stream.customisation"));
    nix.build_output_with(&layer, &["--check"]);
    for options in support::build_user_and_no_sandbox_options() {
        let other = TestNix::new();
        let out = other.build_output_with(&layer, options);
        let path = String::from_utf8(out.stdout).unwrap();
        let ours = nix.build(&layer);
        assert_eq!(
            std::fs::read(std::path::Path::new(path.trim()).join("layer.tar")).unwrap(),
            std::fs::read(ours.join("layer.tar")).unwrap(),
            "{options:?}"
        );
    }
}

//! Customisation scripts (`extraCommands`, `fakeRootCommands`, `enableFakechroot`) built by a
//! real `nix-build` with the plugin — in the sandbox, unprivileged — and the images they make
//! checked by skopeo and podman, and run.

mod support;

use support::images::{expr, layer_headers, manifest_and_config, skopeo_config, Podman};
use support::TestNix;

/// An entry of a layer: name, mode, uid, gid.
type Entry = (String, u32, u64, u64);

/// (name, mode, uid, gid) of every entry of layer `index` of the archive's first image
/// (negative: from the top), with every entry's mtime.
fn layer_entries(archive: &std::path::Path, index: isize) -> (Vec<Entry>, Vec<u64>) {
    let headers = layer_headers(archive, index).0;
    let mtimes = headers.iter().map(|(_, h)| h.mtime().unwrap()).collect();
    let entries = headers
        .into_iter()
        .map(|(n, h)| (n, h.mode().unwrap(), h.uid().unwrap(), h.gid().unwrap()))
        .collect();
    (entries, mtimes)
}

fn last_layer(archive: &std::path::Path) -> (Vec<Entry>, Vec<u64>) {
    layer_entries(archive, -1)
}

/// Every entry name in every layer of the archive's first image.
fn all_entries(archive: &std::path::Path) -> Vec<String> {
    let bytes = std::fs::read(archive).unwrap();
    let (manifest, _) = manifest_and_config(&bytes);
    (0..manifest["Layers"].as_array().unwrap().len())
        .flat_map(|i| layer_entries(archive, i as isize).0.into_iter().map(|e| e.0))
        .collect()
}

fn entry<'a>(entries: &'a [Entry], name: &str) -> &'a Entry {
    entries.iter().find(|e| e.0 == name).unwrap_or_else(|| panic!("no {name} in {entries:?}"))
}

const CUSTOMISED: &str = r#"{
    name = "custom"; tag = "t"; compressor = "none";
    contents = [ busybox ];
    shell = busybox;
    extraCommands = ''
      mkdir -p tmp; chmod 1777 tmp
      printf '%s\n' "it's" '$HOME' "(a) \"b\"" > quoted
    '';
    # busybox's chown is statically linked: no LD_PRELOAD could fake it
    fakeRootCommands = ''
      mkdir -p home/user; echo hi > home/user/f
      chown 1000:1000 home/user home/user/f
      chown 33 tmp; chown 0 tmp
    '';
    config.Cmd = [ "/bin/sh" "-c" "stat -c '%a %u' /tmp; stat -c '%u:%g %n' /home/user /home/user/f; cat /quoted" ];
  }"#;

#[test]
fn scripts_shape_the_customisation_layer() {
    let nix = TestNix::new();
    let archive = nix.build(&expr(&format!("s.buildLayeredImage {CUSTOMISED}")));
    let (entries, _) = last_layer(&archive);
    assert_eq!(entry(&entries, "tmp/").1, 0o1777);
    assert_eq!(entry(&entries, "tmp/").2, 0);
    assert_eq!(entry(&entries, "home/user/").2, 1000);
    assert_eq!(entry(&entries, "home/user/f").2, 1000);
    assert_eq!(entry(&entries, "home/user/f").3, 1000);
    // the merged contents are there as without scripts
    assert!(entries.iter().any(|e| e.0 == "bin/sh"), "{entries:?}");

    skopeo_config(&archive, 0);
    let podman = Podman::new();
    podman.load(&archive);
    assert_eq!(podman.run("custom:t"), EXPECTED_RUN);

    // the owners survive mergeImages
    let merged = nix.build(&expr(&format!("s.mergeImages [ (s.buildLayeredImage {CUSTOMISED}) ]")));
    let podman = Podman::new();
    podman.load(&merged);
    assert_eq!(podman.run("custom:t"), EXPECTED_RUN);
}

const EXPECTED_RUN: &str = "1777 0\n1000:1000 /home/user\n1000:1000 /home/user/f\nit's\n$HOME\n(a) \"b\"\n";

#[test]
fn fakechroot_writes_the_image_and_has_its_own_proc() {
    let nix = TestNix::new();
    let image = r#"s.buildLayeredImage {
        name = "chroot"; tag = "t"; compressor = "none";
        contents = [ busybox ];
        shell = busybox;
        enableFakechroot = true;
        fakeRootCommands = ''
          mkdir -p /etc
          echo hello > /etc/hello
          # its own /proc: the shell is process 1 of its namespace, its root is the chroot
          [ $$ = 1 ] && [ "$(readlink /proc/self/root)" = / ] && [ -e /proc/self/root/etc/hello ]
          [ -e /proc/1/root/etc/hello ] && [ -c /dev/null ]
          echo own proc > /etc/proc
          # the store at its place
          cat ${lib1}/dep > /etc/from-the-store
        '';
        config.Cmd = [ "/bin/sh" "-c" "cat /etc/hello /etc/proc; ls /" ];
      }"#;
    let archive = nix.build(&expr(image));
    let (entries, _) = last_layer(&archive);
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert!(names.contains(&"etc/hello"), "{names:?}");
    // the mount points it made are not in the image
    for absent in ["proc/", "dev/", "sys/"] {
        assert!(!names.contains(&absent), "{absent} in {names:?}");
    }
    let podman = Podman::new();
    podman.load(&archive);
    let out = podman.run("chroot:t");
    assert!(out.starts_with("hello\nown proc\n"), "{out}");
}

#[test]
fn the_closure_is_what_the_output_refers_to() {
    let nix = TestNix::new();
    // a tool only on PATH while the script runs, and a shell only used to run it
    let image = r#"let tools = sh "tools" "/bin/busybox mkdir -p $out/bin && printf '#!${busybox}/bin/sh\\necho made > \"$1\"\\n' > $out/bin/make-file && /bin/busybox chmod +x $out/bin/make-file"; in
      s.buildLayeredImage {
        name = "closure"; tag = "t"; compressor = "none";
        shell = busybox;
        nativeBuildInputs = [ tools ];
        extraCommands = ''
          make-file made-by-a-tool; ln -s ${lib2}/data lib2-data
          touch -d @2000000000 from-the-future
        '';
      }"#;
    let archive = nix.build(&expr(image));
    let names = all_entries(&archive);
    let has = |part: &str| names.iter().any(|n| n.contains(part));
    assert!(has("made-by-a-tool") && has("lib2-data"), "{names:?}");
    // lib2 (referred to by the output) and lib1 (by lib2) are in; the shell and the tool not
    assert!(has("-lib2/") && has("-lib1/"), "{names:?}");
    assert!(!has("-busybox") && !has("-tools"), "{names:?}");
    // every time clamped to the image's mtime (1970-01-01T00:00:01Z)
    let (_, mtimes) = last_layer(&archive);
    assert!(mtimes.iter().all(|&t| t == 1), "{mtimes:?}");
    // and the same bytes when the scripts run again
    let customisation = expr(&format!("({image}).stream.customisation"));
    nix.build_output_with(&customisation, &["--check"]);
}

#[test]
fn a_failing_script_fails_the_build_with_its_output() {
    let nix = TestNix::new();
    for (arg, status) in [("extraCommands", "exit code 3"), ("fakeRootCommands", "exit code 3")] {
        let err = nix.build_error(&expr(&format!(
            r#"s.buildLayeredImage {{ name = "fails"; shell = busybox; {arg} = "echo about to fail >&2; exit 3; touch never"; }}"#
        )));
        assert!(err.contains("about to fail"), "{err}");
        assert!(err.contains(&format!("stowage: {arg} failed ({status})")), "{err}");
    }
}

#[test]
fn the_shell_is_asked_for_at_evaluation_unless_nix_has_a_sandbox_shell() {
    let nix = TestNix::new();
    let image = r#"s.buildLayeredImage { name = "sh"; tag = "t"; compressor = "none"; contents = [ busybox ];
        extraCommands = "mkdir -p tmp; chmod 1777 tmp"; }"#;
    let err = nix.eval_error_with(
        &["--option", "sandbox-paths", "/bin/busybox"],
        &expr(&format!("({image}).drvPath")),
    );
    assert!(
        err.contains("stowage.buildLayeredImage: argument 'shell' is needed to run extraCommands"),
        "{err}"
    );
    // Nix's own sandbox shell, where it has one
    let with_shell = ["--option", "sandbox-paths", "/bin/sh=/bin/busybox /bin/busybox"];
    let archive = support::run_ok(
        nix.cmd("nix-build").arg("--no-out-link").args(with_shell).arg("-E").arg(expr(image)),
    );
    let archive = std::path::PathBuf::from(String::from_utf8(archive.stdout).unwrap().trim());
    assert_eq!(entry(&last_layer(&archive).0, "tmp/").1, 0o1777);
}

/// Unprivileged build users in the sandbox, and no sandbox at all.
#[test]
fn scripts_run_as_build_users_and_without_the_sandbox() {
    for options in support::build_user_and_no_sandbox_options() {
        let nix = TestNix::new();
        let out = nix.build_output_with(&expr(&format!("s.buildLayeredImage {CUSTOMISED}")), options);
        let archive = std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        let (entries, _) = last_layer(&archive);
        assert_eq!(
            (entry(&entries, "tmp/").1, entry(&entries, "home/user/f").2),
            (0o1777, 1000),
            "{options:?}"
        );
    }
}

#[test]
fn perms_set_owners_and_modes_without_a_script() {
    let nix = TestNix::new();
    // store layers and the contents' own layer, no script
    let layered = r#"s.buildLayeredImage {
        name = "perms"; tag = "t"; compressor = "none";
        contents = [ busybox ];
        perms = [
          { path = "${busybox}/bin/busybox"; mode = "4755"; }
          { path = "/bin"; mode = "0751"; uid = 5; gid = 6; gname = "six"; }
          { path = "${busybox}"; regex = "bin(/.*)?"; uid = 7; }
        ];
        config.Cmd = [ "/bin/sh" "-c" "stat -L -c '%a %u' /bin/busybox" ];
      }"#;
    let archive = nix.build(&expr(layered));
    let bin = entry(&last_layer(&archive).0, "bin/").clone();
    assert_eq!((bin.1, bin.2, bin.3), (0o751, 5, 6));
    let store_entries: Vec<_> = (0..2).flat_map(|i| layer_entries(&archive, i).0).collect();
    let busybox = store_entries.iter().find(|e| e.0.ends_with("-busybox/bin/busybox")).unwrap();
    assert_eq!((busybox.1, busybox.2), (0o4755, 7));
    let top = store_entries.iter().find(|e| e.0.ends_with("-busybox/")).unwrap();
    assert_eq!(top.2, 0, "the regex is for what is below the path");
    let podman = Podman::new();
    podman.load(&archive);
    assert_eq!(podman.run("perms:t"), "4755 7\n");

    // what a script made, and buildImage's copied files
    let scripted = r#"s.buildLayeredImage { name = "p2"; tag = "t"; compressor = "none"; shell = busybox;
        extraCommands = "mkdir -p tmp var/empty"; perms = [ { path = "/tmp"; mode = "1777"; } { path = "/var"; regex = ".*"; uid = 9; } ]; }"#;
    let (entries, _) = last_layer(&nix.build(&expr(scripted)));
    assert_eq!(entry(&entries, "tmp/").1, 0o1777);
    assert_eq!((entry(&entries, "var/").2, entry(&entries, "var/empty/").2), (0, 9));
    let single = r#"s.buildImage { name = "p3"; tag = "t"; compressor = "none"; copyToRoot = [ busybox ];
        perms = [ { path = "/bin/busybox"; mode = "4555"; uid = 3; } ]; }"#;
    let (entries, _) = last_layer(&nix.build(&expr(single)));
    assert_eq!((entry(&entries, "bin/busybox").1, entry(&entries, "bin/busybox").2), (0o4555, 3));

    // checked at evaluation, naming the rule and the field
    let err = nix.eval_error(&expr(
        r#"(s.buildLayeredImage { name = "x"; perms = [ { path = "/../x"; mode = "0755"; } ]; }).drvPath"#,
    ));
    assert!(
        err.contains(
            "stowage.buildLayeredImage: argument 'perms[0].path' \"/../x\" is outside the image root"
        ),
        "{err}"
    );
    let err = nix.eval_error(&expr(
        r#"(s.buildImage { name = "x"; perms = [ { path = "/x"; mode = "u+s"; } ]; }).drvPath"#,
    ));
    assert!(err.contains("argument 'perms[0].mode' \"u+s\" is not an octal mode"), "{err}");
}

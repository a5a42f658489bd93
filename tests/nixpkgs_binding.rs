//! stowage bound to a nixpkgs (`withPkgs pkgs`) and the flake's `dockerTools` overlay, against a
//! nixpkgs stand-in (no nixpkgs exists here): a set whose `bash` and `stdenv.initialPath` tools
//! are busybox, and a `dockerTools` of its own. Scripts written for dockerTools — `mkdir`, `ln`,
//! `chmod`, `sed` without a `shell` — run unchanged, by the stand-in's shell with its tools on
//! `PATH`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use support::images::{expr, umoci_unpack};
use support::TestNix;

/// The stand-in: `pkgs`, with tool packages of busybox links and a dockerTools whose functions
/// stowage does not replace say whose they are.
const STAND_IN: &str = r#"
  pkgs = rec {
    # a package whose bin/ has `names`, busybox applets
    tools = name: names: sh name
      "/bin/busybox mkdir -p $out/bin && for t in ${toString names}; do /bin/busybox ln -s ${busybox}/bin/busybox $out/bin/$t; done";
    bash = tools "bash" [ "bash" "sh" ];
    coreutils = tools "coreutils" [ "mkdir" "ln" "chmod" "cat" "echo" "touch" ];
    gnused = tools "gnused" [ "sed" ];
    stdenv.initialPath = [ coreutils gnused ];
    dockerTools = {
      buildLayeredImage = _: throw "the stand-in's buildLayeredImage";
      streamNixShellImage = "the stand-in's streamNixShellImage";
    };
  };
"#;

/// `body` after the test prelude and the stand-in.
fn bound(body: &str) -> String {
    expr(&format!("let {STAND_IN} in {body}"))
}

/// What the scripts of dockerTools' own tests do: make folders, links and modes, edit a file.
const SCRIPT: &str = r#"mkdir -p tmp etc && chmod 1777 tmp && echo 'name=old' > etc/conf && sed -i s/old/new/ etc/conf && ln -s conf etc/link && echo $PATH > etc/path"#;

/// The file `path` in the image root `root`.
fn read(root: &Path, path: &str) -> String {
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn scripts_run_with_the_tools_of_the_nixpkgs_given() {
    let nix = TestNix::new();
    let tools = nix.eval_json(&bound(r#"map (p: "${p}/bin") pkgs.stdenv.initialPath"#));
    let tools: Vec<&str> = tools.as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    let layered = nix.build(&bound(&format!(
        r#"(s.withPkgs pkgs).buildLayeredImage {{ name = "bound"; tag = "1"; compressor = "none";
             contents = [ busybox ]; extraCommands = "{SCRIPT}"; }}"#
    )));
    let single = nix.build(&bound(&format!(
        r#"(s.withPkgs pkgs).buildImage {{ name = "bound"; tag = "2"; compressor = "none";
             runAsRoot = "cd / && {SCRIPT}"; }}"#
    )));
    for (archive, function) in [(&layered, "buildLayeredImage"), (&single, "buildImage")] {
        let (_dir, root) = umoci_unpack(archive);
        assert_eq!(read(&root, "etc/conf"), "name=new\n");
        let path = read(&root, "etc/path");
        assert!(path.starts_with(&tools.join(":")), "stdenv's tools come first on PATH: {path}");
        assert_eq!(std::fs::read_link(root.join("etc/link")).unwrap(), Path::new("conf"));
        let mode = std::fs::metadata(root.join("tmp")).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o1777, "{function}: tmp is {mode:o}");
    }

    // Unbound, on a Nix whose sandbox has no shell (Debian's 2.8; 2.26 is told so here), the same
    // image needs one, and the error says how to bind nixpkgs.
    let unbound = bound(&format!(
        r#"(s.buildLayeredImage {{ name = "unbound"; extraCommands = "{SCRIPT}"; }}).drvPath"#
    ));
    let err = nix.eval_error_with(&["--option", "sandbox-paths", "/bin/busybox"], &unbound);
    assert!(err.contains("argument 'shell' is needed to run extraCommands"), "{err}");
    assert!(err.contains("(builtins.stowage.withPkgs pkgs).buildLayeredImage"), "{err}");

    // Anything but a nixpkgs is refused, saying what was expected.
    for not_pkgs in ["3", "{ bash = busybox; }"] {
        let err = nix.eval_error(&bound(&format!("(s.withPkgs {not_pkgs}).buildImage")));
        assert!(err.contains("stowage.withPkgs: the argument is not a nixpkgs"), "{err}");
    }

    // An image without scripts does not depend on the nixpkgs given: the same derivation.
    let plain = |f: &str| {
        nix.eval_json(&bound(&format!(
            r#"({f} {{ name = "plain"; tag = "1"; contents = [ busybox ]; }}).drvPath"#
        )))
    };
    assert_eq!(plain("(s.withPkgs pkgs).streamLayeredImage"), plain("s.streamLayeredImage"));
}

/// The flake's overlay puts stowage's functions into `pkgs.dockerTools` and keeps the stand-in's
/// for the rest: an expression written against dockerTools builds a stowage image. (In library
/// mode, the overlay of the flake's `lib` given the builder.)
#[test]
fn the_overlay_replaces_what_stowage_has_in_dockertools() {
    let nix = TestNix::new();
    let flake = Path::new(env!("CARGO_MANIFEST_DIR")).join("flake.nix");
    let overlay = if support::library_mode() {
        format!("(outputs.lib {{ builder = {}; }}).overlay", support::builder().display())
    } else {
        "outputs.overlays.default".into()
    };
    let overlaid = |body: &str| {
        bound(&format!(
            r#"let
                 outputs = (import {flake}).outputs {{ self = outputs; }};
                 final = pkgs // {overlay} final pkgs;
               in with final; {body}"#,
            flake = flake.display()
        ))
    };
    assert_eq!(
        nix.eval_json(&overlaid("dockerTools.streamNixShellImage")),
        "the stand-in's streamNixShellImage"
    );
    let archive = nix.build(&overlaid(&format!(
        r#"dockerTools.buildLayeredImage {{ name = "overlaid"; tag = "1"; compressor = "none";
             contents = [ busybox ]; extraCommands = "{SCRIPT}"; }}"#
    )));
    let (_dir, root) = umoci_unpack(&archive);
    assert_eq!(read(&root, "etc/conf"), "name=new\n");
}

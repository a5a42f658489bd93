//! Library mode — stowage's Nix library without the plugin, given the image builder — against
//! the plugin: the same expressions make the same derivations, and so the same images, bit for
//! bit (each mode builds in a store of its own, with the same root); a bad argument fails the
//! build with the plugin's message, having written nothing; fakeNss is a derivation holding the
//! same tree; goarch answers alike.
//!
//! (The other image tests run in both modes too: the Makefile runs them with
//! `STOWAGE_MODE=library`.)

mod support;

use std::path::{Path, PathBuf};
use support::images::{expr_with, Podman};
use support::{library_expr, run_ok, TestNix};

/// One of the two modes, as a Nix command and the expression for stowage's functions.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Plugin,
    Library,
}

impl Mode {
    fn stowage(self) -> String {
        match self {
            Mode::Plugin => "builtins.stowage".into(),
            Mode::Library => library_expr(),
        }
    }

    fn cmd(self, nix: &TestNix, program: &str) -> std::process::Command {
        match self {
            Mode::Plugin => nix.with_plugin(program),
            Mode::Library => nix.bare(program),
        }
    }

    /// `nix-build` of `body` (after the test prelude) in the sandbox, which sees busybox.
    fn nix_build(self, nix: &TestNix, body: &str) -> std::process::Command {
        let mut cmd = self.cmd(nix, "nix-build");
        cmd.args([
            "--no-out-link",
            "--option",
            "sandbox",
            "true",
            "--option",
            "sandbox-paths",
            "/bin/busybox",
        ])
        .args(["-E", &expr_with(&self.stowage(), body)]);
        cmd
    }

    /// Builds `body` (after the test prelude) in the sandbox; the output path.
    fn build(self, nix: &TestNix, body: &str) -> PathBuf {
        let out = run_ok(&mut self.nix_build(nix, body));
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    }
}

/// Images of every function and option group the issue names: layered with `fromImage` (a
/// stowage image and its scripts), `buildImage` with `runAsRoot`, `mergeImages`, an OCI
/// layout, an index; with a tag and without one (then the tag is the stream derivation's hash).
const IMAGES: &[(&str, &str)] = &[
    (
        "layered-from-image",
        r#"s.buildLayeredImage { name = "derived"; compressor = "none"; contents = [ lib3 ];
             fromImage = s.buildLayeredImage { name = "base"; tag = "1"; contents = [ busybox ]; };
             extraCommands = "mkdir -p etc && echo made > etc/made"; fakeRootCommands = "chown 7:8 etc/made";
             shell = busybox; config.Cmd = [ "${app "1"}/app" ]; }"#,
    ),
    (
        "build-image-run-as-root",
        r#"s.buildImage { name = "single"; tag = "2"; copyToRoot = [ busybox ];
             runAsRoot = "mkdir -p /data && echo root > /data/who && chown 5:6 /data/who";
             config.Env = [ "A=1" ]; }"#,
    ),
    (
        "merged",
        r#"s.mergeImages [ (s.buildLayeredImage { name = "one"; tag = "1"; contents = [ lib1 ]; })
                           (s.streamLayeredImage { name = "two"; contents = [ lib2 ]; }) ]"#,
    ),
    (
        "oci-archive",
        r#"s.buildLayeredImage { name = "oci"; format = "oci-archive"; contents = [ (app "2") ]; }"#,
    ),
    (
        "index",
        r#"s.buildImageIndex { name = "multi"; images = [
             (s.buildLayeredImage { name = "multi"; architecture = "amd64"; contents = [ lib1 ]; })
             (s.streamLayeredImage { name = "multi"; architecture = "arm64"; contents = [ lib2 ]; }) ]; }"#,
    ),
];

/// Builds every image of [`IMAGES`] in `mode`, in a fresh store under `root`: their output
/// paths and bytes.
fn build_all(mode: Mode, root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let nix = TestNix::new_with_root(root);
    IMAGES
        .iter()
        .map(|(_, body)| {
            let out = mode.build(&nix, body);
            let bytes = std::fs::read(&out).unwrap_or_else(|e| panic!("{mode:?} {}: {e}", out.display()));
            (out, bytes)
        })
        .collect()
}

#[test]
fn both_modes_build_the_same_images_bit_for_bit() {
    let root = tempfile::Builder::new().prefix("stowage-modes-").tempdir().unwrap();
    let plugin = build_all(Mode::Plugin, root.path());
    let library = build_all(Mode::Library, root.path());
    for (((name, _), (plugin_path, plugin_bytes)), (library_path, library_bytes)) in
        IMAGES.iter().zip(&plugin).zip(&library)
    {
        assert_eq!(plugin_path, library_path, "{name}: the same derivation in both modes");
        assert!(
            plugin_bytes == library_bytes,
            "{name}: the images differ ({} bytes, {} bytes)",
            plugin_bytes.len(),
            library_bytes.len()
        );
    }
    // And they are images: the layered one (no tag: the derivation's hash) loads into podman.
    let podman = Podman::new();
    let loaded = podman.load(&plugin[0].0);
    assert_eq!(loaded.len(), 1);
    assert!(loaded[0].starts_with("derived:"), "{loaded:?}");
    let tag = loaded[0].trim_start_matches("derived:");
    assert_eq!(tag.len(), 32, "{loaded:?}");
}

/// A bad argument fails the build with the plugin's message, naming the function and the
/// argument, before anything is written: no output of the image's derivations exists.
#[test]
fn library_mode_errors_come_from_the_builder_before_it_writes() {
    let nix = TestNix::new();
    for (body, message) in [
        (
            r#"s.buildLayeredImage { name = "bad"; maxLayers = 1; contents = [ lib1 ]; }"#,
            "stowage.buildLayeredImage: argument 'maxLayers' is 1; it must be from 2",
        ),
        (
            r#"s.buildImage { name = "Bad Name"; }"#,
            "stowage.buildImage: argument 'name' \"Bad Name\" is not a valid image name",
        ),
        (
            r#"s.streamLayeredImage { name = "bad"; extraCommands = "touch x"; shell = busybox; uid = -1; }"#,
            "stowage.streamLayeredImage: argument 'uid' is -1; ids are 0 to 4294967295",
        ),
        (
            r#"s.mergeImages { images = [ ]; }"#,
            "stowage.mergeImages: argument 'images' is empty; give at least one image",
        ),
        (
            r#"s.buildImageIndex { name = "x"; images = [ ]; }"#,
            "stowage.buildImageIndex: argument 'images' is empty",
        ),
        (
            r#"s.buildLayeredImage { name = "bad"; colour = "blue"; }"#,
            "stowage.buildLayeredImage: unexpected argument 'colour'",
        ),
        (
            r#"s.fakeNss { extraPasswdLines = [ "broken" ]; }"#,
            "stowage.fakeNss: argument 'extraPasswdLines[0]'",
        ),
    ] {
        let expression = expr_with(&library_expr(), body);
        let out = Mode::Library.nix_build(&nix, body).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(message),
            "{body}: expected {message:?} in\n{stderr}"
        );
        // the failing derivation is one of stowage's, and none of their outputs was written
        let outputs = run_ok(nix.bare("nix-instantiate").args(["-E", &expression])).stdout;
        let drv = String::from_utf8(outputs).unwrap();
        let out_paths = run_ok(nix.bare("nix-store").args(["-q", "--outputs", drv.trim()])).stdout;
        for path in String::from_utf8(out_paths).unwrap().lines() {
            assert!(!Path::new(path).exists(), "{body}: {path} was written");
        }
    }
}

/// fakeNss without the plugin is a derivation the builder writes: the same files as the
/// plugin's, byte for byte, with the same modes.
#[test]
fn library_fake_nss_is_the_plugins_tree() {
    let nix = TestNix::new();
    let args = r#"{ extraPasswdLines = [ "app:x:1000:1000:app:/home/app:/bin/sh" ]; extraGroupLines = [ "app:x:1000:" ]; }"#;
    // (the plugin's is a path, written while evaluating)
    let expression = expr_with(&Mode::Plugin.stowage(), &format!("s.fakeNss {args}"));
    let evaluated = run_ok(nix.with_plugin("nix").args(["eval", "--raw", "--expr", &expression]));
    let plugin = PathBuf::from(String::from_utf8(evaluated.stdout).unwrap());
    let library = Mode::Library.build(&nix, &format!("s.fakeNss {args}"));
    assert_ne!(plugin, library, "one is added while evaluating, the other built");
    let nar = |path: &Path| run_ok(nix.bare("nix-store").args(["--dump"]).arg(path)).stdout;
    assert_eq!(nar(&plugin), nar(&library), "the same tree");
    let passwd = std::fs::read_to_string(library.join("etc/passwd")).unwrap();
    assert!(passwd.contains("app:x:1000:1000:app:/home/app:/bin/sh\n"), "{passwd}");
}

/// goarch without the plugin reads the table the core reads: the same answers, and the same
/// errors, for every system the table knows and for unknown ones.
#[test]
fn library_goarch_answers_as_the_plugins() {
    let nix = TestNix::new();
    let systems = r#"[ "x86_64-linux" "i686-linux" "aarch64-darwin" "armv7l-linux" "armv6l-linux" "arm-linux"
                       "armv8a-linux" "riscv64-linux" "s390x-linux" "mips64el-linux" "loongarch64-linux" "wasm32-wasi"
                       "powerpc64le-linux" ]"#;
    let answers = |mode: Mode| {
        let expression = format!("map ({}).goarch {systems}", mode.stowage());
        run_ok(mode.cmd(&nix, "nix-instantiate").args(["--eval", "--strict", "--json", "-E", &expression]))
            .stdout
    };
    assert_eq!(
        String::from_utf8(answers(Mode::Plugin)).unwrap(),
        String::from_utf8(answers(Mode::Library)).unwrap()
    );
    for system in ["m68k-linux", "x86_64-linx", "x86_64"] {
        let errors: Vec<String> = [Mode::Plugin, Mode::Library]
            .into_iter()
            .map(|mode| {
                let expression = format!("({}).goarch \"{system}\"", mode.stowage());
                let out =
                    mode.cmd(&nix, "nix-instantiate").args(["--eval", "-E", &expression]).output().unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                // (the last line naming it: Nix 2.26 quotes the code that threw above the message)
                let line = stderr
                    .lines()
                    .rfind(|l| l.contains("stowage.goarch"))
                    .unwrap_or_else(|| panic!("{stderr}"));
                line[line.find("stowage.goarch").unwrap()..].to_owned()
            })
            .collect();
        assert_eq!(errors[0], errors[1], "{system}");
    }
}

/// Without the plugin and without a builder, every function says how to get either.
#[test]
fn without_plugin_or_builder_the_library_says_what_to_do() {
    let nix = TestNix::new();
    let library = Path::new(env!("CARGO_MANIFEST_DIR")).join("nix");
    for expression in [
        format!("(import {}).buildLayeredImage {{ name = \"x\"; }}", library.display()),
        format!("(import {} {{ }}).buildImage", library.display()),
    ] {
        let out = nix.bare("nix-instantiate").args(["--eval", "-E", &expression]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{expression}");
        assert!(stderr.contains("the plugin is not loaded, and no image builder was given"), "{stderr}");
        assert!(stderr.contains("import ./nix { builder = ./stowage; }"), "{stderr}");
    }
    // with the plugin loaded, `import ./nix` is builtins.stowage, given a builder or not
    let same = format!(
        "(import {0}).version == builtins.stowage.version && (import {0} {{ builder = ./nothing; }}).version == builtins.stowage.version",
        library.display()
    );
    let out = run_ok(nix.with_plugin("nix-instantiate").args(["--eval", "-E", &same])).stdout;
    assert_eq!(String::from_utf8(out).unwrap().trim(), "true");
}

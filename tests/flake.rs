//! Images defined in flakes, built the way flake users build them, in pure evaluation: `nix
//! build .#image` and `.#image.stream`, `nix run .#image.copyToDockerDaemon`, `nix flake check`
//! and `nix flake show`; the template `nix flake init -t` copies; errors that name the flake
//! attribute and the argument at fault. The flakes have no inputs but a local stand-in for
//! nixpkgs: nothing is fetched.

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::images::{skopeo_config, Docker, Podman};
use support::{run_ok, TestNix};

/// The Nix system of this machine (flakes cannot ask for `builtins.currentSystem`).
fn system() -> String {
    format!("{}-linux", std::env::consts::ARCH)
}

/// A derivation for `system` that runs `script` with Debian's static busybox, which the sandbox
/// is given (`sandbox-paths`).
const SH: &str = r#"sh = system: name: script: derivation {
        inherit name system;
        builder = "/bin/busybox";
        args = [ "sh" "-c" script ];
      };"#;

/// A flake in a fresh folder, and the Nix that evaluates it with the plugin.
struct Flake {
    nix: TestNix,
    dir: PathBuf,
}

impl Flake {
    /// The flake `flake.nix` (with `@SYSTEM@` for this machine's system and `@SH@` for [`SH`]),
    /// written into a folder of a fresh Nix's temporary tree.
    fn new(flake_nix: &str) -> Flake {
        let nix = TestNix::new();
        let dir = nix.root().join("flake");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("flake.nix"), flake_nix.replace("@SYSTEM@", &system()).replace("@SH@", SH))
            .unwrap();
        Flake { nix, dir }
    }

    /// `nix ARGS…` with flakes on, the plugin loaded, the sandbox on (seeing busybox).
    fn nix(&self, args: &[&str]) -> Command {
        let mut cmd = self.nix.cmd("nix");
        cmd.args(["--extra-experimental-features", "flakes"])
            .args(["--option", "sandbox", "true", "--option", "sandbox-paths", "/bin/busybox"])
            .args(args)
            .current_dir(&self.dir);
        cmd
    }

    /// `path:DIR#ATTR`: the flake by path (no git needed).
    fn installable(&self, attr: &str) -> String {
        format!("path:{}#{attr}", self.dir.display())
    }

    /// Builds `attr` with `nix build` and returns its output path.
    fn build(&self, attr: &str) -> PathBuf {
        let out = run_ok(&mut self.nix(&["build", "--no-link", "--json", &self.installable(attr)]));
        let built: Value = serde_json::from_slice(&out.stdout).unwrap();
        PathBuf::from(built[0]["outputs"]["out"].as_str().unwrap())
    }

    /// `nix build` of `attr`, which must fail: the error output.
    fn build_error(&self, attr: &str) -> String {
        let out = self.nix(&["build", "--no-link", &self.installable(attr)]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "building {attr} should fail:\n{stderr}");
        stderr
    }
}

/// An image flake: `fakeNss`, and a base image (`fromImage`) that is a file inside the flake.
const APP_FLAKE: &str = r#"{
  description = "an image flake";
  outputs = { self }:
    let
      s = builtins.stowage;
      system = "@SYSTEM@";
      @SH@
      busybox = sh system "busybox" "/bin/busybox mkdir -p $out/bin && /bin/busybox cp /bin/busybox $out/bin/ && /bin/busybox ln -s busybox $out/bin/sh";
    in
    {
      packages.${system} = rec {
        image = s.buildLayeredImage {
          name = "flake-app";
          tag = "v1";
          fromImage = ./base.tar;
          contents = [ (s.fakeNss { }) ];
          config.Cmd = [ "/bin/sh" "-c" "echo $(id -un) $(cat /etc/base-marker)" ];
        };
        base = s.buildLayeredImage {
          name = "flake-base";
          tag = "v1";
          compressor = "none";
          contents = [ busybox (sh system "marker" "/bin/busybox mkdir -p $out/etc && echo from-base > $out/etc/base-marker") ];
        };
        default = image;
      };
      checks.${system}.image = self.packages.${system}.image;
    };
}"#;

/// The image flake, with its base image built (by the flake itself) and copied into it.
fn app_flake() -> Flake {
    let flake = Flake::new(&APP_FLAKE.replace("fromImage = ./base.tar;", ""));
    let base = flake.build("base");
    std::fs::copy(&base, flake.dir.join("base.tar")).unwrap();
    std::fs::write(flake.dir.join("flake.nix"), APP_FLAKE.replace("@SYSTEM@", &system()).replace("@SH@", SH))
        .unwrap();
    flake
}

#[test]
fn a_flake_image_builds_streams_and_runs_in_pure_evaluation() {
    let flake = app_flake();
    let archive = flake.build("image");
    assert!(archive.to_string_lossy().ends_with("-flake-app.tar.gz"), "{}", archive.display());
    assert!(archive.starts_with(flake.nix.store_dir()), "{}", archive.display());
    // `.#image.stream`: the same image, streamed; podman loads and runs it (user `root` from
    // fakeNss, the marker from the base image inside the flake).
    let stream = flake.build("image.stream");
    let streamed = run_ok(&mut Command::new(&stream)).stdout;
    let gunzipped = run_ok(Command::new("gzip").arg("-dc").arg(&archive)).stdout;
    assert_eq!(streamed, gunzipped, "the stream is the archive, uncompressed");
    let plain = flake.nix.root().join("streamed.tar");
    std::fs::write(&plain, &streamed).unwrap();
    assert_eq!(skopeo_config(&plain, 0)["config"]["Cmd"][0], json!("/bin/sh"));
    let podman = Podman::new();
    assert_eq!(podman.load(&plain), vec!["flake-app:v1".to_string()]);
    assert_eq!(podman.run("flake-app:v1"), "root from-base\n");
    // `.#default` is the image, and evaluation is pure (flakes' default): impure builtins fail.
    assert_eq!(flake.build("default"), archive);
    let impure = flake.nix(&["eval", "--expr", "builtins.currentSystem"]).output().unwrap();
    assert!(!impure.status.success(), "pure evaluation by default");
}

#[test]
fn flake_check_builds_the_image_and_show_lists_it() {
    let flake = app_flake();
    let out = run_ok(&mut flake.nix(&["flake", "check", &format!("path:{}", flake.dir.display())]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("error"), "{stderr}");
    // The check built the image: it is in the store now, valid.
    let archive = flake.build("image");
    let valid = flake.nix.bare("nix-store").args(["--check-validity"]).arg(&archive).status().unwrap();
    assert!(valid.success());
    let shown =
        run_ok(&mut flake.nix(&["flake", "show", "--json", &format!("path:{}", flake.dir.display())]));
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    let packages = &shown["packages"][system()];
    for name in ["image", "base", "default"] {
        assert_eq!(packages[name]["type"], json!("derivation"), "{shown}");
    }
    assert_eq!(packages["image"]["name"], json!("flake-app.tar.gz"), "{shown}");
    assert_eq!(shown["checks"][system()]["image"]["type"], json!("derivation"), "{shown}");
}

#[test]
fn nix_run_copies_a_flake_image_into_docker() {
    let flake = app_flake();
    let docker = Docker::start();
    let mut run = flake.nix(&["run", &flake.installable("image.copyToDockerDaemon")]);
    let out = run_ok(run.env("DOCKER_HOST", docker.host()));
    assert!(out.stdout.is_empty(), "stdout stays quiet: {:?}", String::from_utf8_lossy(&out.stdout));
    let said = run_ok(docker.cmd().args(["run", "--rm", "--network", "none", "flake-app:v1"])).stdout;
    assert_eq!(String::from_utf8(said).unwrap(), "root from-base\n");
}

/// Nix passes the flake attribute being built to nothing below it, so an error names the
/// argument and points at the flake's own file, where the caller wrote it; `nix flake check`
/// names the attribute (Nix 2.8 in its trace).
#[test]
fn errors_in_flake_images_name_the_attribute_and_the_argument() {
    let flake = Flake::new(
        r#"{
  outputs = { self }: {
    packages.@SYSTEM@.broken = builtins.stowage.buildLayeredImage {
      name = "broken";
      config.Cmd = "/bin/sh";
    };
  };
}"#,
    );
    let error = flake.build_error("broken");
    assert!(
        error.contains("stowage.buildLayeredImage: argument 'config.Cmd' must be a list of strings"),
        "{error}"
    );
    assert!(error.contains("-source/flake.nix:5:7"), "the position in the flake's file: {error}");
    assert!(error.contains(r#"5|       config.Cmd = "/bin/sh";"#), "{error}");
    let check = flake
        .nix(&["flake", "check", "--show-trace", &format!("path:{}", flake.dir.display())])
        .output()
        .unwrap();
    let error = String::from_utf8_lossy(&check.stderr);
    assert!(!check.status.success());
    assert!(
        error.contains(&format!("while checking the derivation 'packages.{}.broken'", system())),
        "{error}"
    );
    assert!(error.contains("argument 'config.Cmd'"), "{error}");
    // A base image missing from the flake: the error names the file.
    std::fs::write(
        flake.dir.join("flake.nix"),
        format!(
            r#"{{
  outputs = {{ self }}: {{
    packages.{}.missing = builtins.stowage.buildLayeredImage {{ name = "missing"; fromImage = ./no-such-base.tar; }};
  }};
}}"#,
            system()
        ),
    )
    .unwrap();
    let error = flake.build_error("missing");
    assert!(error.contains("no-such-base.tar"), "{error}");
}

/// A stand-in for nixpkgs with `legacyPackages.SYSTEM.hello` (a script that greets), for the
/// template's `nixpkgs` input.
const NIXPKGS_STAND_IN: &str = r#"{
  outputs = { self }:
    let
      @SH@
      # a script run by its own busybox (the image has no /bin/sh)
      hello = system: sh system "hello" "/bin/busybox mkdir -p $out/bin && /bin/busybox cp /bin/busybox $out/bin/ && printf '#!%s/bin/busybox sh\\necho Hello, world!\\n' $out > $out/bin/hello && /bin/busybox chmod +x $out/bin/hello";
    in
    {
      legacyPackages = builtins.listToAttrs (map (system: { name = system; value.hello = hello system; })
        [ "x86_64-linux" "aarch64-linux" ]);
    };
}"#;

#[test]
fn the_template_makes_a_flake_whose_image_builds() {
    let stand_in = Flake::new(NIXPKGS_STAND_IN);
    // stowage's flake: its flake.nix and what it refers to (not the build folders, which a
    // `path:` flake would copy into the store whole)
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let stowage = stand_in.nix.root().join("stowage");
    std::fs::create_dir(&stowage).unwrap();
    let files = ["flake.nix", "nix", "templates"].map(|f| repo.join(f));
    run_ok(Command::new("cp").arg("-r").args(files).arg(&stowage));
    let stowage_ref = format!("path:{}", stowage.display());
    let shown = run_ok(&mut stand_in.nix(&["flake", "show", "--json", &stowage_ref])).stdout;
    let shown: Value = serde_json::from_slice(&shown).unwrap();
    assert_eq!(shown["templates"]["default"]["type"], json!("template"), "{shown}");
    // `lib` is builtins.stowage, with the plugin loaded
    let version = run_ok(&mut stand_in.nix(&["eval", "--raw", &format!("{stowage_ref}#lib.version")])).stdout;
    assert_eq!(String::from_utf8(version).unwrap(), env!("CARGO_PKG_VERSION"));

    let project = stand_in.nix.root().join("project");
    std::fs::create_dir(&project).unwrap();
    let mut init = stand_in.nix(&["flake", "init", "-t", &format!("{stowage_ref}#default")]);
    let said = run_ok(init.current_dir(&project));
    assert!(String::from_utf8_lossy(&said.stderr).contains("nix --option plugin-files"), "the welcome text");
    let text = std::fs::read_to_string(project.join("flake.nix")).unwrap();
    assert_eq!(text, std::fs::read_to_string(repo.join("templates/image/flake.nix")).unwrap());
    let override_input = ["--override-input", "nixpkgs", &format!("path:{}", stand_in.dir.display())];
    let mut build = stand_in.nix(&["build", "--no-link", "--json"]);
    build.args(override_input).arg(format!("path:{}#image", project.display()));
    let built: Value = serde_json::from_slice(&run_ok(&mut build).stdout).unwrap();
    let archive = PathBuf::from(built[0]["outputs"]["out"].as_str().unwrap());
    let plain = stand_in.nix.root().join("hello.tar");
    std::fs::write(&plain, run_ok(Command::new("gzip").arg("-dc").arg(&archive)).stdout).unwrap();
    let podman = Podman::new();
    assert_eq!(podman.load(&plain), vec!["hello:latest".to_string()]);
    assert_eq!(podman.run("hello:latest"), "Hello, world!\n");
}

/// Library mode in a flake, on a Nix without the plugin: stowage's flake as an input, its `lib`
/// given the image builder as a file inside the project (`./stowage`) and the system. The image
/// builds in pure evaluation, runs, and is the same derivation — the same bytes — as the one
/// the plugin makes of the same flake (which ignores the builder given).
#[test]
fn a_flake_builds_images_in_library_mode_without_the_plugin() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let project_flake = r#"{
  inputs.stowage.url = "@STOWAGE@";
  outputs = { self, stowage }:
    let
      system = "@SYSTEM@";
      s = stowage.lib { builder = ./stowage; inherit system; };
      @SH@
      busybox = sh system "busybox" "/bin/busybox mkdir -p $out/bin && /bin/busybox cp /bin/busybox $out/bin/ && /bin/busybox ln -s busybox $out/bin/sh";
    in
    {
      packages.${system}.image = s.buildLayeredImage {
        name = "library-app";
        contents = [ busybox ];
        config.Cmd = [ "/bin/sh" "-c" "echo built without the plugin" ];
      };
    };
}"#;
    let root = tempfile::Builder::new().prefix("stowage-flake-modes-").tempdir().unwrap();
    let build = |plugin: bool| {
        let nix = TestNix::new_with_root(root.path());
        // stowage's flake: what `lib` reads (not the build folders)
        let stowage = nix.root().join("stowage");
        std::fs::create_dir(&stowage).unwrap();
        let files = ["flake.nix", "nix", "Cargo.toml"].map(|f| repo.join(f));
        run_ok(Command::new("cp").arg("-r").args(files).arg(&stowage));
        let project = nix.root().join("project");
        std::fs::create_dir(&project).unwrap();
        let text = project_flake
            .replace("@STOWAGE@", &format!("path:{}", stowage.display()))
            .replace("@SYSTEM@", &system())
            .replace("@SH@", SH);
        std::fs::write(project.join("flake.nix"), text).unwrap();
        std::fs::copy(support::builder(), project.join("stowage")).unwrap();
        let mut cmd = if plugin { nix.with_plugin("nix") } else { nix.bare("nix") };
        cmd.args(["--extra-experimental-features", "flakes"])
            .args(["--option", "sandbox", "true", "--option", "sandbox-paths", "/bin/busybox"])
            .args(["build", "--no-link", "--json", &format!("path:{}#image", project.display())]);
        let built: Value = serde_json::from_slice(&run_ok(&mut cmd).stdout).unwrap();
        let archive = PathBuf::from(built[0]["outputs"]["out"].as_str().unwrap());
        let plain = run_ok(Command::new("gzip").arg("-dc").arg(&archive)).stdout;
        (archive, plain)
    };
    let (library_archive, library_plain) = build(false);
    let (plugin_archive, plugin_plain) = build(true);
    assert_eq!(library_archive, plugin_archive, "the same derivation in both modes");
    assert!(library_plain == plugin_plain, "the same bytes in both modes");
    let plain = root.path().join("library-app.tar");
    std::fs::write(&plain, library_plain).unwrap();
    let podman = Podman::new();
    let loaded = podman.load(&plain);
    assert_eq!(podman.run(&loaded[0]), "built without the plugin\n");
}

//! `includeNixDB`: images that carry a Nix database of their store paths, built by a real
//! `nix-build` with the plugin, unpacked by umoci, and checked by the Nix under test itself
//! pointed at the unpacked root: `nix-store --verify --check-contents` hashes every path against
//! the database, `nix-store -q` reads the references back.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use support::images::{expr, manifest_and_config, umoci_unpack};
use support::TestNix;

/// A layered image of the PRELUDE's libraries and app: `app` refers to lib4, lib4 to lib3, …
const LAYERED: &str = r#"s.buildLayeredImage {
    name = "with-db"; tag = "t"; compressor = "none";
    contents = [ (app "1") lib2 busybox ];
    includeNixDB = true;
  }"#;

/// The store inside the unpacked image `root`: its paths are named by the test store's root,
/// and live under `root` (Nix puts a root's store at `ROOT/nix/store` unless told, `real`). Its
/// state directory is left to Nix: `ROOT/nix/var/nix`, where the image's database must be.
struct ImageStore<'a> {
    nix: &'a TestNix,
    url: String,
}

impl<'a> ImageStore<'a> {
    fn new(nix: &'a TestNix, root: &Path) -> ImageStore<'a> {
        let store = nix.store_dir();
        let real = format!("{}{}", root.display(), store.display());
        let url = format!("local?root={}&store={}&real={real}", root.display(), store.display());
        ImageStore { nix, url }
    }

    fn nix_store(&self, args: &[&str]) -> Output {
        // `bare`: the test's configuration, none of the host's
        self.nix.bare("nix-store").args(["--store", &self.url]).args(args).output().unwrap()
    }

    /// `nix-store -q FLAG PATH`, one path a line, sorted.
    fn query(&self, flag: &str, path: &str) -> Vec<String> {
        let out = self.nix_store(&["-q", flag, path]);
        assert!(out.status.success(), "-q {flag} {path}: {}", String::from_utf8_lossy(&out.stderr));
        let mut lines: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(Into::into).collect();
        lines.sort();
        lines
    }

    /// Every path the database holds, sorted.
    fn all_paths(&self) -> Vec<String> {
        let out = support::run_ok(self.nix.bare("nix").args(["--store", &self.url, "path-info", "--all"]));
        let mut lines: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(Into::into).collect();
        lines.sort();
        lines
    }

    /// `--verify --check-contents`: whether it passed, and what it said. (Nix 2.8 exits 0 after
    /// dropping paths it cannot find from the database, so what it said matters too.)
    fn verify(&self) -> (bool, String) {
        let out = self.nix_store(&["--verify", "--check-contents"]);
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The test store's answer to `nix-store -q FLAG PATH`, sorted.
fn host_query(nix: &TestNix, flag: &str, path: &str) -> Vec<String> {
    let out = support::run_ok(nix.bare("nix-store").args(["-q", flag, path]));
    let mut lines: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(Into::into).collect();
    lines.sort();
    lines
}

/// The store path of PRELUDE derivation `name` (built with the image).
fn path_of(nix: &TestNix, name: &str) -> String {
    nix.build(&expr(name)).to_string_lossy().into_owned()
}

fn assert_verifies(store: &ImageStore) {
    let (ok, said) = store.verify();
    assert!(ok, "nix-store --verify --check-contents failed:\n{said}");
    for trouble in ["disappeared", "was modified", "not valid", "error"] {
        assert!(!said.contains(trouble), "nix-store --verify said {trouble:?}:\n{said}");
    }
}

/// The image's database holds the closure of `roots` in the test store, nothing else, each path
/// with the NAR hash, NAR size and references the test store has for it.
fn assert_same_registrations(nix: &TestNix, store: &ImageStore, roots: &[&str]) {
    let mut closure: Vec<String> = roots.iter().flat_map(|r| host_query(nix, "--requisites", r)).collect();
    closure.sort();
    closure.dedup();
    assert_eq!(store.all_paths(), closure);
    for path in &closure {
        assert_eq!(store.query("--hash", path), host_query(nix, "--hash", path), "{path}");
        assert_eq!(store.query("--size", path), host_query(nix, "--size", path), "{path}");
        assert_eq!(store.query("--references", path), host_query(nix, "--references", path), "{path}");
    }
}

#[test]
fn a_layered_image_registers_its_closure() {
    let nix = TestNix::new();
    let archive = nix.build(&expr(LAYERED));
    let (app, lib1, lib2, lib4) =
        (path_of(&nix, "app \"1\""), path_of(&nix, "lib1"), path_of(&nix, "lib2"), path_of(&nix, "lib4"));
    let busybox = path_of(&nix, "busybox");
    let (_dir, root) = umoci_unpack(&archive);
    let state = root.join("nix/var/nix");
    assert_eq!(std::fs::read_to_string(state.join("db/schema")).unwrap(), "10");
    // one root per path nothing else in the image refers to: what stops the collector
    let mut roots: Vec<(String, PathBuf)> = std::fs::read_dir(state.join("gcroots/docker"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read_link(e.path()).unwrap())
        })
        .collect();
    roots.sort();
    let mut expected: Vec<(String, PathBuf)> = [&app, &busybox]
        .iter()
        .map(|p| (Path::new(p).file_name().unwrap().to_string_lossy().into_owned(), PathBuf::from(p)))
        .collect();
    expected.sort();
    assert_eq!(roots, expected);

    let store = ImageStore::new(&nix, &root);
    assert_verifies(&store);
    assert_eq!(store.query("--references", &lib2), std::slice::from_ref(&lib1));
    assert_eq!(store.query("--references", &app), [lib4]);
    assert_same_registrations(&nix, &store, &[&app, &busybox]);
    // registered at the image's mtime (dockerTools' default created time, one second)
    let info = support::run_ok(nix.bare("nix").args(["--store", &store.url, "path-info", "--json", &lib1]));
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let info = info.as_array().map(|a| a[0].clone()).unwrap_or_else(|| info[&lib1].clone());
    assert_eq!(info["registrationTime"], 1, "{info}");

    // A file changed in the image is caught: the database holds the hashes, not a promise.
    let data = PathBuf::from(format!("{}{lib1}/data", root.display()));
    std::fs::write(&data, "not what was built").unwrap();
    let (ok, said) = store.verify();
    assert!(!ok, "a modified path passed --verify --check-contents:\n{said}");
    assert!(said.contains(&format!("path '{lib1}' was modified!")), "{said}");
}

#[test]
fn build_image_registers_its_layers_closure() {
    let nix = TestNix::new();
    // app is copied into the root; what it refers to (lib4's closure) is in the layer's store
    let image = r#"s.buildImage {
        name = "single-with-db"; tag = "t"; compressor = "none";
        copyToRoot = [ (app "2") ];
        includeNixDB = true;
      }"#;
    let archive = nix.build(&expr(image));
    let (lib3, lib4) = (path_of(&nix, "lib3"), path_of(&nix, "lib4"));
    let (manifest, _) = manifest_and_config(&std::fs::read(&archive).unwrap());
    assert_eq!(manifest["Layers"].as_array().unwrap().len(), 1);
    let (_dir, root) = umoci_unpack(&archive);
    assert!(root.join("app").is_file());
    let store = ImageStore::new(&nix, &root);
    assert_verifies(&store);
    assert_eq!(store.query("--references", &lib4), [lib3]);
    assert_same_registrations(&nix, &store, &[&lib4]);
    let root_link = root.join("nix/var/nix/gcroots/docker").join(Path::new(&lib4).file_name().unwrap());
    assert_eq!(std::fs::read_link(root_link).unwrap(), PathBuf::from(&lib4));
}

/// Same inputs, same bytes: the database too, in two fresh stores at one root; and the
/// database changes nothing but the image's own layer.
#[test]
fn reproducible_and_only_in_the_last_layer() {
    let root = tempfile::Builder::new().prefix("stowage-nixdb-").tempdir().unwrap();
    let build = |image: &str| {
        let nix = TestNix::new_with_root(root.path());
        std::fs::read(nix.build(&expr(image))).unwrap()
    };
    let first = build(LAYERED);
    let second = build(LAYERED);
    assert!(first == second, "two fresh stores at one root gave different archives");

    let without = build(&LAYERED.replace("includeNixDB = true;", ""));
    let layers = |archive: &[u8]| -> Vec<serde_json::Value> {
        manifest_and_config(archive).1["rootfs"]["diff_ids"].as_array().unwrap().clone()
    };
    let (with_db, plain) = (layers(&first), layers(&without));
    assert_eq!(with_db.len(), plain.len());
    assert_eq!(with_db[..with_db.len() - 1], plain[..plain.len() - 1]);
    assert_ne!(with_db.last(), plain.last());

    let file = root.path().join("plain.tar");
    std::fs::write(&file, &without).unwrap();
    let (_dir, unpacked) = umoci_unpack(&file);
    assert!(unpacked.join("bin/sh").exists());
    assert!(!unpacked.join("nix/var").exists(), "an image without includeNixDB has /nix/var");
}

#[test]
fn include_nix_db_is_a_boolean() {
    let nix = TestNix::new();
    let err = nix.eval_error(&expr(r#"(s.buildLayeredImage { name = "x"; includeNixDB = "yes"; }).drvPath"#));
    assert!(err.contains("argument 'includeNixDB' is a string while a Boolean was expected"), "{err}");
}

/// dockerTools' names: the functions with `includeNixDB = true`, the same derivations.
#[test]
fn with_nix_db_names_are_the_functions_with_include_nix_db() {
    let nix = TestNix::new();
    let same = nix.eval_json(&expr(
        r#"let args = { name = "x"; tag = "1"; contents = [ lib1 ]; }; in [
             ((s.buildLayeredImageWithNixDb args).drvPath == (s.buildLayeredImage (args // { includeNixDB = true; })).drvPath)
             ((s.buildImageWithNixDb args).drvPath == (s.buildImage (args // { includeNixDB = true; })).drvPath)
             ((s.buildImageWithNixDb args).drvPath != (s.buildImage args).drvPath) ]"#,
    ));
    assert_eq!(same, serde_json::json!([true, true, true]));
}

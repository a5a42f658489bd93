//! SBOMs (`image.sbom`: SPDX 2.3; `image.sbom.cyclonedx`: CycloneDX 1.5) built with a real Nix
//! and checked by independent validators from PyPI (spdx-tools' `pyspdxtools`,
//! cyclonedx-python-lib's strict JSON validation; `make setup` installs both): their packages
//! are the image's store paths — the closure Nix itself reports — with the NAR hashes Nix
//! reports, the dependency relationships of the closure, the deriver and `meta` of `contents`,
//! a base image's layers by digest; the same inputs give the same bytes (`nix-build --check`).

mod support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::images::{expr, layer_headers};
use support::{nix_str, run_ok, TestNix};

/// The validators' folder (`make setup` makes it; the Makefile names it).
fn validator(program: &str) -> PathBuf {
    let dir = std::env::var_os("STOWAGE_VALIDATORS")
        .expect("STOWAGE_VALIDATORS names the SBOM validators' bin folder (the Makefile sets it)");
    Path::new(&dir).join(program)
}

/// `pyspdxtools` reads and validates the SPDX document `file`.
fn validate_spdx(file: &Path) {
    let out = run_ok(Command::new(validator("pyspdxtools")).arg("-i").arg(file));
    let said = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(!said.to_lowercase().contains("invalid"), "{said}");
}

/// cyclonedx-python-lib's strict validator takes the CycloneDX 1.5 document `file`.
fn validate_cyclonedx(file: &Path) {
    let script = "import sys\n\
        from cyclonedx.validation.json import JsonStrictValidator\n\
        from cyclonedx.schema import SchemaVersion\n\
        errors = JsonStrictValidator(SchemaVersion.V1_5).validate_str(open(sys.argv[1]).read())\n\
        sys.exit(f'invalid: {errors}' if errors else 0)\n";
    run_ok(Command::new(validator("python3")).args(["-c", script]).arg(file));
}

/// An app whose derivation carries `meta`, with the busybox shell, on the Docker Engine's
/// image (two layers stowage knows only by digest).
fn image(function: &str, extra: &str) -> String {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/docker-save.tar");
    expr(&format!(
        r#"let app' = app "1" // {{ meta = {{
               license = [ {{ spdxId = "MIT"; fullName = "MIT License"; }} {{ spdxId = "Apache-2.0"; }} ];
               homepage = "https://example.org/app"; description = "The app."; }}; }};
           in s.{function} {{
             name = "registry.example/team/sbom"; tag = "1";
             fromImage = /. + {base}; contents = [ app' busybox ]; {extra}
           }}"#,
        base = nix_str(&base.to_string_lossy())
    ))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The store paths of the closure of `drvs` (expressions), as Nix reports them.
fn closure(nix: &TestNix, drvs: &str) -> BTreeSet<String> {
    let built = nix.build_output(&expr(&format!("[ {drvs} ]"))).stdout;
    let roots: Vec<String> = String::from_utf8(built).unwrap().lines().map(str::to_owned).collect();
    let out = run_ok(nix.cmd("nix-store").arg("-qR").args(&roots));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_owned).collect()
}

#[test]
fn an_image_sbom_lists_its_closure_and_validates() {
    let nix = TestNix::new();
    let spdx_file = nix.build(&format!("({}).sbom", image("streamLayeredImage", "")));
    let cdx_file = nix.build(&format!("({}).sbom.cyclonedx", image("streamLayeredImage", "")));
    validate_spdx(&spdx_file);
    validate_cyclonedx(&cdx_file);

    let expected = closure(&nix, r#"(app "1") busybox"#);
    assert_eq!(expected.len(), 6, "app, lib1–4, busybox: {expected:?}");
    let spdx = read_json(&spdx_file);
    let packages = spdx["packages"].as_array().unwrap();
    let store_dir = nix.store_dir().to_string_lossy().into_owned();
    let in_store =
        |p: &&Value| p["comment"].as_str().unwrap().starts_with(&format!("Nix store path {store_dir}/"));
    let listed: BTreeSet<String> = packages.iter().filter(in_store).map(path_of).collect();
    assert_eq!(listed, expected);

    // the app: name, version, NAR hash as Nix reports it, deriver, meta, dependency on lib4
    let app = packages.iter().find(|p| p["name"] == "app").expect("the app is listed");
    let app_path = expected.iter().find(|p| p.ends_with("-app")).unwrap();
    let hash = run_ok(nix.cmd("nix-store").args(["-q", "--hash", app_path])).stdout;
    let hash = String::from_utf8(hash).unwrap();
    let hex = run_ok(nix.cmd("nix-hash").args([
        "--type",
        "sha256",
        "--to-base16",
        hash.trim().trim_start_matches("sha256:"),
    ]));
    assert_eq!(
        app["checksums"][0]["checksumValue"].as_str().unwrap(),
        String::from_utf8(hex.stdout).unwrap().trim()
    );
    assert_eq!(app["licenseDeclared"], "MIT AND Apache-2.0");
    assert_eq!(app["homepage"], "https://example.org/app");
    assert_eq!(app["description"], "The app.");
    assert!(app["comment"].as_str().unwrap().contains(".drv"), "{app}");
    let lib = |name: &str| {
        packages.iter().find(|p| p["name"] == name).unwrap()["SPDXID"].as_str().unwrap().to_owned()
    };
    let depends: BTreeSet<(String, String)> = spdx["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["relationshipType"] == "DEPENDS_ON")
        .map(|r| {
            (
                r["spdxElementId"].as_str().unwrap().to_owned(),
                r["relatedSpdxElement"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let chain: BTreeSet<(String, String)> =
        [("app", "lib4"), ("lib4", "lib3"), ("lib3", "lib2"), ("lib2", "lib1")]
            .iter()
            .map(|(a, b)| (lib(a), lib(b)))
            .collect();
    assert_eq!(depends, chain);

    // the base image's two layers, by diff_id, content unknown
    let base_layers: Vec<&Value> =
        packages.iter().filter(|p| p["SPDXID"].as_str().unwrap().starts_with("SPDXRef-Layer-")).collect();
    assert_eq!(base_layers.len(), 2, "{spdx}");

    // CycloneDX lists the same paths, with the same hashes
    let cdx = read_json(&cdx_file);
    let components: BTreeSet<String> = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "library")
        .map(|c| c["bom-ref"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(components, expected);
    assert_eq!(cdx["metadata"]["component"]["name"], "registry.example/team/sbom");

    // the image holds exactly those paths in its own layers (the base's two are below them)
    let archive = nix.build(&image("buildLayeredImage", r#"compressor = "none";"#));
    let store = store_dir.trim_start_matches('/');
    let held: BTreeSet<String> = (2..layer_headers(&archive, 0).1)
        .flat_map(|i| layer_headers(&archive, i as isize).0)
        .filter_map(|(name, _)| {
            name.strip_prefix(&format!("{store}/")).and_then(|r| r.split('/').next()).map(str::to_owned)
        })
        .filter(|p| !p.is_empty())
        .map(|p| format!("{store_dir}/{p}"))
        .collect();
    assert_eq!(held, expected);

    // the same inputs give the same bytes
    for attr in ["sbom", "sbom.cyclonedx", "provenance"] {
        let document = format!("({}).{attr}", image("streamLayeredImage", ""));
        nix.build(&document);
        nix.build_output_with(&document, &["--check"]);
    }
}

/// buildImage: copyToRoot's paths are copied into the root, and listed as such.
#[test]
fn a_build_image_sbom_names_what_was_copied_into_the_root() {
    let nix = TestNix::new();
    let body = r#"s.buildImage { name = "root"; tag = "1"; copyToRoot = [ (app "1") ]; }"#;
    let spdx_file = nix.build(&expr(&format!("({body}).sbom")));
    let cdx_file = nix.build(&expr(&format!("({body}).sbom.cyclonedx")));
    validate_spdx(&spdx_file);
    validate_cyclonedx(&cdx_file);
    let spdx = read_json(&spdx_file);
    let packages = spdx["packages"].as_array().unwrap();
    let listed: BTreeSet<String> = packages.iter().skip(1).map(path_of).collect();
    assert_eq!(listed, closure(&nix, r#"(app "1")"#));
    let app = packages.iter().find(|p| p["name"] == "app").unwrap();
    assert!(app["comment"].as_str().unwrap().contains("copied into the image's root"), "{app}");
    let cdx = read_json(&cdx_file);
    let copied: Vec<&Value> = cdx["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["properties"].as_array().unwrap().iter().any(|p| p["name"] == "stowage:copied_to_root"))
        .collect();
    assert_eq!(copied.len(), 1);
    assert_eq!(copied[0]["name"], "app");
}

/// A package's store path, from its SPDX comment (`Nix store path P, …` or `…; …`).
fn path_of(package: &Value) -> String {
    let comment = package["comment"].as_str().unwrap();
    let rest = comment.strip_prefix("Nix store path ").unwrap_or_else(|| panic!("{comment}"));
    rest.split([',', ';']).next().unwrap().trim_end_matches('.').to_owned()
}

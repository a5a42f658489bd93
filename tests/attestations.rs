//! What a push puts beside an image in a registry (Debian's distribution, which has no
//! referrers API): the image's SBOM and provenance as OCI 1.1 referrers, listed under the
//! referrers tag `sha256-<digest>` as the distribution spec's fallback says, and a cosign
//! signature under `sha256-<digest>.sig`, which an independent implementation (`openssl dgst
//! -verify`) checks over the payload the registry holds, as `stowage verify` does; a manifest
//! that is not the one signed fails. Bad keys and documents are named, and nothing is sent.

mod support;

use base64::Engine as _;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::images::expr;
use support::registry::Registry;
use support::{fails, run_ok, TestNix};

/// A P-256 key pair made by openssl in `dir`: (private PKCS#8, public).
fn key_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub"));
    run_ok(
        Command::new("openssl")
            .args(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"])
            .arg(&key),
    );
    run_ok(Command::new("openssl").args(["pkey", "-pubout", "-in"]).arg(&key).arg("-out").arg(&public));
    (key, public)
}

/// `skopeo inspect --raw` of `at` (docker://…).
fn raw(at: &str) -> Value {
    serde_json::from_slice(
        &run_ok(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", at])).stdout,
    )
    .unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// `openssl dgst -sha256 -verify PUBLIC -signature SIG PAYLOAD` of the payload and signature of
/// the `.sig` manifest `signatures`, fetched from the registry's storage: whether openssl says
/// "Verified OK", and the image digest the payload names.
fn openssl_verifies(registry: &Registry, signatures: &Value, public: &Path) -> (bool, String) {
    let layer = &signatures["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.dev.cosign.simplesigning.v1+json");
    let payload = std::fs::read(registry.blob_file(layer["digest"].as_str().unwrap())).unwrap();
    let signature = base64::engine::general_purpose::STANDARD
        .decode(layer["annotations"]["dev.cosignproject.cosign/signature"].as_str().unwrap())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("payload"), &payload).unwrap();
    std::fs::write(dir.path().join("sig"), signature).unwrap();
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(public)
        .arg("-signature")
        .arg(dir.path().join("sig"))
        .arg(dir.path().join("payload"))
        .output()
        .unwrap();
    let payload: Value = serde_json::from_slice(&payload).unwrap();
    let named = payload["critical"]["image"]["docker-manifest-digest"].as_str().unwrap().to_owned();
    (out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK"), named)
}

/// Makes the registry's tag `tag` of `repository` point at the manifest `digest`, behind
/// stowage's back, as a registry that was tampered with would.
fn retag_in_storage(registry: &Registry, repository: &str, tag: &str, digest: &str) {
    let tags = registry.storage().join(format!("repositories/{repository}/_manifests/tags/{tag}"));
    let hex = digest.strip_prefix("sha256:").unwrap();
    for link in [tags.join("current/link"), tags.join(format!("index/sha256/{hex}/link"))] {
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::fs::write(link, digest).unwrap();
    }
}

#[test]
fn sbom_provenance_and_signature_beside_a_pushed_image() {
    let nix = TestNix::new();
    let registry = Registry::start();
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = key_pair(keys.path(), "signer");
    let cache = tempfile::tempdir().unwrap();
    let name = format!("{}/team/signed", registry.address());
    let image = |v: &str| {
        format!(r#"s.streamLayeredImage {{ name = "{name}"; tag = "{v}"; contents = [ (app "{v}") ]; }}"#)
    };
    let copy = nix.build(&expr(&format!("({}).copyToRegistry", image("1"))));
    let sbom = nix.build(&expr(&format!("({}).sbom", image("1"))));
    let push_signed = || {
        run_ok(
            Command::new(copy.join("bin/copy-to-registry"))
                .arg("--sign-key")
                .arg(&key)
                .env("XDG_CACHE_HOME", cache.path()),
        )
    };
    let out = push_signed();
    assert!(out.stdout.is_empty());

    // skopeo still reads the image
    let at = format!("docker://{name}:1");
    let manifest =
        run_ok(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &at])).stdout;
    let digest = format!("sha256:{}", sha256_hex(&manifest));
    let copied = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("skopeo")
            .args(["copy", "-q", "--src-tls-verify=false", &at])
            .arg(format!("oci:{}:x", copied.path().display())),
    );

    // the referrers, found by the tag schema: the SBOM as built, the provenance of this manifest
    let hex = digest.strip_prefix("sha256:").unwrap();
    let referrers = raw(&format!("docker://{name}:sha256-{hex}"));
    assert_eq!(referrers["mediaType"], "application/vnd.oci.image.index.v1+json");
    let listed = referrers["manifests"].as_array().unwrap();
    let types: Vec<&str> = listed.iter().map(|m| m["artifactType"].as_str().unwrap()).collect();
    assert_eq!(types, ["application/spdx+json", "application/vnd.in-toto+json"]);
    for (referrer, kind) in listed.iter().zip(&types) {
        let artifact = raw(&format!("docker://{name}@{}", referrer["digest"].as_str().unwrap()));
        assert_eq!(artifact["subject"]["digest"], digest.as_str());
        assert_eq!(artifact["artifactType"], *kind);
        let document =
            std::fs::read(registry.blob_file(artifact["layers"][0]["digest"].as_str().unwrap())).unwrap();
        if *kind == "application/spdx+json" {
            assert_eq!(document, std::fs::read(&sbom).unwrap(), "the SBOM goes as it was built");
        } else {
            let statement: Value = serde_json::from_slice(&document).unwrap();
            assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
            assert_eq!(statement["subject"][0]["digest"]["sha256"], hex);
            let derivation = statement["predicate"]["buildDefinition"]["externalParameters"]["derivation"]
                .as_str()
                .unwrap();
            assert!(derivation.ends_with("-stream-signed.drv"), "{derivation}");
        }
    }

    // the signature: openssl verifies the payload the registry holds, which names this manifest
    let signatures = raw(&format!("docker://{name}:sha256-{hex}.sig"));
    assert_eq!(openssl_verifies(&registry, &signatures, &public), (true, digest.clone()));
    let verified = run_ok(Command::new(support::builder()).args(["verify", "--key"]).arg(&public).arg(&at));
    let payloads: Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(payloads[0]["critical"]["image"]["docker-manifest-digest"], digest.as_str());
    assert_eq!(payloads[0]["critical"]["identity"]["docker-reference"], name.as_str());

    // again: nothing is signed or listed twice
    push_signed();
    assert_eq!(raw(&format!("docker://{name}:sha256-{hex}.sig"))["layers"].as_array().unwrap().len(), 1);
    assert_eq!(raw(&format!("docker://{name}:sha256-{hex}"))["manifests"].as_array().unwrap().len(), 2);

    // another key's signature is not this one's
    let (_, other_public) = key_pair(keys.path(), "other");
    let err = fails(Command::new(support::builder()).args(["verify", "--key"]).arg(&other_public).arg(&at));
    assert!(err.contains("has no valid signature by this key") && err.contains("is not this key's"), "{err}");

    // A tampered registry: tag 1 now names another image, and that image's signature tag holds
    // the first one's signatures. openssl still verifies the payload, which names the first
    // manifest, not this one; stowage verify refuses it.
    let copy2 = nix.build(&expr(&format!("({}).copyTo", image("2"))));
    run_ok(
        Command::new(copy2.join("bin/copy-to"))
            .arg(format!("docker://{name}:2"))
            .env("XDG_CACHE_HOME", cache.path()),
    );
    let other = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{name}:2"),
    ]))
    .stdout;
    let other_digest = format!("sha256:{}", sha256_hex(&other));
    let err = fails(
        Command::new(support::builder())
            .args(["verify", "--key"])
            .arg(&public)
            .arg(format!("docker://{name}:2")),
    );
    assert!(
        err.contains(&format!("is not signed: the registry has no sha256-{}.sig", &other_digest[7..])),
        "{err}"
    );
    let sig_manifest = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{name}:sha256-{hex}.sig"),
    ]))
    .stdout;
    retag_in_storage(
        &registry,
        "team/signed",
        &format!("sha256-{}.sig", &other_digest[7..]),
        &format!("sha256:{}", sha256_hex(&sig_manifest)),
    );
    retag_in_storage(&registry, "team/signed", "1", &other_digest);
    let (ok, named) = openssl_verifies(
        &registry,
        &raw(&format!("docker://{name}:sha256-{}.sig", &other_digest[7..])),
        &public,
    );
    assert!(ok, "the signature itself is sound");
    assert_ne!(named, other_digest, "but it names another manifest");
    let err = fails(Command::new(support::builder()).args(["verify", "--key"]).arg(&public).arg(&at));
    assert!(err.contains(&format!("signed by this key, but for {digest}, not this manifest")), "{err}");
}

#[test]
fn bad_keys_and_documents_are_named_and_nothing_is_sent() {
    let nix = TestNix::new();
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let stream = nix.build(&expr(
        r#"s.streamLayeredImage { name = "team/refused"; tag = "1"; contents = [ (app "1") ]; }"#,
    ));
    let dest = format!("docker://{}/team/refused:1", registry.address());
    let push = |args: &[&std::ffi::OsStr]| {
        let mut cmd = Command::new(support::builder());
        cmd.arg("push").args(args).arg(&stream).arg(&dest).env("XDG_CACHE_HOME", dir.path());
        fails(&mut cmd)
    };
    let missing = dir.path().join("missing.pem");
    let err = push(&["--sign-key".as_ref(), missing.as_os_str()]);
    assert!(err.contains(&format!("{}: No such file", missing.display())), "{err}");

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key\n").unwrap();
    let err = push(&["--sign-key".as_ref(), garbage.as_os_str()]);
    assert!(
        err.contains(&format!("argument '--sign-key' {}: is not a PEM private key", garbage.display())),
        "{err}"
    );

    let encrypted = dir.path().join("encrypted.pem");
    run_ok(
        Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-aes256",
                "-pass",
                "pass:secret",
                "-out",
            ])
            .arg(&encrypted),
    );
    let err = push(&["--sign-key".as_ref(), encrypted.as_os_str()]);
    assert!(err.contains("is an encrypted private key"), "{err}");

    let rsa = dir.path().join("rsa.pem");
    run_ok(
        Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
            .arg(&rsa),
    );
    let err = push(&["--sign-key".as_ref(), rsa.as_os_str()]);
    assert!(err.contains("is not an ECDSA P-256 private key"), "{err}");

    let not_sbom = dir.path().join("notes.json");
    std::fs::write(&not_sbom, r#"{"hello": 1}"#).unwrap();
    let err = push(&["--attach".as_ref(), not_sbom.as_os_str()]);
    assert!(
        err.contains(&format!("argument '--attach' {}: is neither an SPDX", not_sbom.display())),
        "{err}"
    );

    let (key, _) = key_pair(dir.path(), "k");
    let mut cmd = Command::new(support::builder());
    cmd.arg("push")
        .arg("--sign-key")
        .arg(&key)
        .arg(&stream)
        .arg(format!("oci:{}", dir.path().join("layout").display()));
    let err = fails(&mut cmd);
    assert!(err.contains("argument '--sign-key' puts documents beside an image in a registry"), "{err}");
    assert!(!dir.path().join("layout").exists());

    assert_eq!(registry.uploads(), 0, "nothing was sent:\n{}", registry.log());
}

/// A registry with the referrers API (scripted: Debian's has none) says it indexed each
/// referrer (`OCI-Subject`): no referrers tag is read or written.
#[test]
fn a_registry_with_the_referrers_api_gets_no_referrers_tag() {
    use std::sync::{Arc, Mutex};
    use support::hostile::{Answer, HostileRegistry};
    let nix = TestNix::new();
    let stream =
        nix.build(&expr(r#"s.streamLayeredImage { name = "x"; tag = "1"; contents = [ (app "1") ]; }"#));
    let sbom = nix
        .build(&expr(r#"(s.streamLayeredImage { name = "x"; tag = "1"; contents = [ (app "1") ]; }).sbom"#));
    // the image's manifest is the first put by digest; every later one is its referrer
    let subject: Arc<Mutex<Option<String>>> = Arc::default();
    let seen = subject.clone();
    let registry = HostileRegistry::start(move |method, path| match (method, path) {
        ("GET", "/v2/") => Answer::Status(200),
        ("HEAD", _) => Answer::Status(404),
        ("POST", _) => Answer::WithHeaders(202, "Location: /v2/team/api/blobs/uploads/1\r\n".into()),
        ("PUT", p) if p.starts_with("/v2/team/api/blobs/uploads/") => Answer::Status(201),
        ("PUT", p) if p.starts_with("/v2/team/api/manifests/sha256:") => {
            let digest = p.rsplit('/').next().unwrap().to_owned();
            let subject = seen.lock().unwrap().get_or_insert(digest).clone();
            Answer::WithHeaders(201, format!("OCI-Subject: {subject}\r\n"))
        }
        ("PUT", _) => Answer::Status(201),
        _ => Answer::Status(404),
    });
    run_ok(
        Command::new(support::builder())
            .arg("push")
            .arg("--attach")
            .arg(&sbom)
            .arg(&stream)
            .arg(format!("docker://{}/team/api:1", registry.address()))
            .env("XDG_CACHE_HOME", nix.root()),
    );
    let requests = registry.requests();
    let image = subject.lock().unwrap().clone().expect("the image's manifest was put by digest");
    let referrers_tag = format!("sha256-{}", &image[7..]);
    assert!(!requests.iter().any(|r| r.contains(&referrers_tag)), "{requests:#?}");
    let manifests = requests.iter().filter(|r| r.starts_with("PUT /v2/team/api/manifests/")).count();
    assert_eq!(manifests, 3, "the image by digest, the SBOM's referrer, the tag: {requests:#?}");
}

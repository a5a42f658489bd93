//! `stowage push` to a real registry (Debian's docker-registry, started by the test on a free
//! port): only missing blobs are sent, and skopeo and podman read what was pushed; TLS with a
//! CA of the test's, basic auth and bearer tokens; a registry failing half way; multi-platform
//! images.

mod support;

use sha2::Digest as _;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use stowage_core::write::blob_cache::Blob;
use support::images::{expr, Podman};
use support::registry::{
    inspect_and_copy, inspect_and_copy_with, push_command, FaultyProxy, Registry, PASSWORD, USER,
};
use support::{fails, run_ok, TestNix};

/// The image builder under test (`stowage`), as `make` builds it.
fn stowage() -> PathBuf {
    let path = std::env::var_os("STOWAGE_BUILDER")
        .map(PathBuf::from)
        .expect("STOWAGE_BUILDER names the built stowage");
    assert!(path.exists(), "{} does not exist: run `make build` first", path.display());
    path
}

fn push(image: &Path, dest: &str, cache: &Path) -> Output {
    run_ok(&mut push_command(image, dest, cache))
}

fn app(version: &str) -> String {
    format!(
        r#"s.streamLayeredImage {{ name = "team/app"; tag = "v{version}"; contents = [ busybox (app "{version}") ];
        config.Cmd = [ "/bin/sh" "-c" "cat ${{app "{version}"}}/app" ]; }}"#
    )
}

#[test]
fn push_sends_only_what_the_registry_lacks() {
    let nix = TestNix::new();
    let registry = Registry::start();
    let cache = tempfile::tempdir().unwrap();
    let v1 = nix.build(&expr(&app("1")));
    let layers = support::images::layer_count_of_plan(&v1);
    let dest = format!("docker://{}/team/app:v1", registry.address());
    let first = push(&v1, &dest, cache.path());
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(stderr.contains(&format!("{} blob(s) sent", layers + 1)), "{stderr}");
    assert!(first.stdout.is_empty(), "stdout stays quiet");
    let uploads = registry.uploads();
    assert_eq!(uploads, layers + 1, "every layer and the config:\n{}", registry.log());

    // skopeo reads the manifest and copies every blob (checking digests)
    let at = format!("docker://{}/team/app:v1", registry.address());
    let manifest = inspect_and_copy(&at);
    assert_eq!(manifest["layers"].as_array().unwrap().len(), layers);

    // again: no layer blob is sent
    let again = push(&v1, &dest, cache.path());
    assert_eq!(registry.uploads(), uploads, "{}", String::from_utf8_lossy(&again.stderr));
    assert!(String::from_utf8_lossy(&again.stderr)
        .contains(&format!("0 blob(s) sent, 0 bytes; {} already there", layers + 1)));

    // a new application: its layer, the customisation layer (its links) and the config
    let v2 = nix.build(&expr(&app("2")));
    let entries_before = cache_entries(cache.path());
    push(&v2, &format!("docker://{}/team/app:v2", registry.address()), cache.path());
    assert_eq!(registry.uploads(), uploads + 3, "{}", registry.log());
    // Rebuild ∝ change: the plans hold no digest of their own layers (the plan read no file
    // contents), and the push compressed the two changed layers only — every layer compressed
    // gets a new cache entry, and those of the first push are untouched.
    let stowage_core::image::plan::Plan { images, .. } = stowage_core::image::plan::Plan::read(&v2).unwrap();
    assert!(images[0].layers.iter().all(|l| l.digest().is_none()), "{:?}", images[0].layers);
    let (ids_1, ids_2): (BTreeSet<_>, BTreeSet<_>) =
        (layer_ids(&v1).into_iter().collect(), layer_ids(&v2).into_iter().collect());
    let changed: BTreeSet<String> = ids_2.difference(&ids_1).map(|id| format!("{}.gz1", id.hex())).collect();
    assert_eq!(changed.len(), 2, "the application's layer and the customisation layer");
    let entries_after = cache_entries(cache.path());
    let added: BTreeSet<String> =
        entries_after.keys().filter(|name| !entries_before.contains_key(*name)).cloned().collect();
    assert_eq!(added, changed);
    assert!(entries_before.iter().all(|(name, inode)| entries_after.get(name) == Some(inode)));

    // podman pulls it and runs it
    let podman = Podman::new();
    run_ok(podman.cmd().args([
        "pull",
        "-q",
        "--tls-verify=false",
        &format!("{}/team/app:v2", registry.address()),
    ]));
    assert!(podman.run(&format!("{}/team/app:v2", registry.address())).starts_with("2 "));
}

#[test]
fn push_takes_archives_and_zstd() {
    let nix = TestNix::new();
    let registry = Registry::start();
    let cache = tempfile::tempdir().unwrap();
    let archive =
        nix.build(&expr(r#"s.buildLayeredImage { name = "arch"; tag = "1"; contents = [ busybox ]; }"#));
    for (compress, dest) in [("gz", "arch:gz"), ("zstd", "arch:zstd")] {
        let dest = format!("docker://{}/{dest}", registry.address());
        run_ok(
            Command::new(stowage())
                .args(["push", "--compress", compress])
                .arg(&archive)
                .arg(&dest)
                .env("XDG_CACHE_HOME", cache.path()),
        );
        let manifest = inspect_and_copy(&dest);
        let media = manifest["layers"][0]["mediaType"].as_str().unwrap();
        assert!(media.ends_with(if compress == "gz" { "gzip" } else { "zstd" }), "{media}");
    }
    // a registry that is not there: a clear error, exit ≠ 0
    let out = Command::new(stowage())
        .arg("push")
        .arg(&archive)
        .arg("docker://127.0.0.1:9/x:1")
        .env("XDG_CACHE_HOME", cache.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stowage: registry 127.0.0.1:9: connecting: "), "{err}");
}

/// copyToRegistry pushes an image to its own name (which carries the registry), copyTo where it
/// is told; both are executables in `bin/`, as `nix run` wants them.
#[test]
fn copy_to_registry_and_copy_to() {
    let nix = TestNix::new();
    let registry = Registry::start();
    let cache = tempfile::tempdir().unwrap();
    let image = format!(
        r#"s.buildLayeredImage {{ name = "{}/team/copied"; tag = "1"; contents = [ busybox ]; }}"#,
        registry.address()
    );
    let copy = nix.build(&expr(&format!("({image}).copyToRegistry")));
    let out = run_ok(
        Command::new(copy.join("bin/copy-to-registry"))
            .args(["--tag", "stable"])
            .env("XDG_CACHE_HOME", cache.path()),
    );
    assert!(out.stdout.is_empty());
    let manifest = inspect_and_copy(&format!("docker://{}/team/copied:1", registry.address()));
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(inspect_and_copy(&format!("docker://{}/team/copied:stable", registry.address())), manifest);
    let program = nix.eval_json(&expr(&format!("({image}).copyToRegistry.meta.mainProgram")));
    assert_eq!(program, "copy-to-registry");

    let copy_to = nix
        .build(&expr(r#"(s.buildImage { name = "single"; tag = "2"; copyToRoot = [ busybox ]; }).copyTo"#));
    let dest = format!("docker://{}/elsewhere:2", registry.address());
    run_ok(Command::new(copy_to.join("bin/copy-to")).arg(&dest).env("XDG_CACHE_HOME", cache.path()));
    inspect_and_copy(&dest);
    // without a destination, it says what to give
    let out = Command::new(copy_to.join("bin/copy-to")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("give the destination: copyTo docker://"));
}

/// TLS with a CA of the test's and htpasswd basic auth: the CA must be given, credentials come
/// from `--creds`, an auth file or `~/.docker/config.json`, and a wrong password is said to be.
#[test]
fn push_over_tls_with_basic_auth() {
    let nix = TestNix::new();
    let registry = Registry::start_tls_basic();
    let home = tempfile::tempdir().unwrap();
    let image =
        nix.build(&expr(r#"s.streamLayeredImage { name = "secure"; tag = "1"; contents = [ busybox ]; }"#));
    let dest = format!("docker://{}/team/secure:1", registry.address());

    let ca_arg = format!("--cert-dir={}", registry.ca().display());
    let good = format!("{USER}:{PASSWORD}");

    // a CA nobody told stowage about: refused, and said so
    let err = fails(push_command(&image, &dest, home.path()).args(["--creds", &good]));
    assert!(err.contains(&format!("stowage: registry {}: connecting: ", registry.address())), "{err}");
    assert!(err.contains("UnknownIssuer"), "{err}");
    // no credentials anywhere
    let err = fails(push_command(&image, &dest, home.path()).arg(&ca_arg));
    assert!(err.contains("it needs credentials, and none were found for 127.0.0.1:"), "{err}");
    // a wrong password
    let err = fails(
        push_command(&image, &dest, home.path()).arg(&ca_arg).args(["--creds", &format!("{USER}:wrong")]),
    );
    assert!(err.contains("authentication failed: the credentials from --creds were refused"), "{err}");
    assert_eq!(registry.uploads(), 0, "nothing was sent");

    // an auth file named by REGISTRY_AUTH_FILE
    let auth = serde_json::json!({ "auths": { registry.address(): { "auth": base64(&good) } } });
    let auth_file = home.path().join("auth.json");
    std::fs::write(&auth_file, auth.to_string()).unwrap();
    let out =
        run_ok(push_command(&image, &dest, home.path()).arg(&ca_arg).env("REGISTRY_AUTH_FILE", &auth_file));
    assert!(String::from_utf8_lossy(&out.stderr).contains("blob(s) sent"));
    inspect_and_copy_with(&dest, &registry.skopeo_options());

    // ~/.docker/config.json, and a folder of CAs: nothing left to send
    std::fs::create_dir(home.path().join(".docker")).unwrap();
    std::fs::write(home.path().join(".docker/config.json"), auth.to_string()).unwrap();
    let out = run_ok(
        push_command(&image, &dest, home.path()).arg(format!("--cert-dir={}", registry.cert_dir().display())),
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("0 blob(s) sent"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // --tls-verify=false takes any certificate
    let other = format!("docker://{}/team/insecure:1", registry.address());
    run_ok(push_command(&image, &other, home.path()).arg("--tls-verify=false"));
    inspect_and_copy_with(&other, &registry.skopeo_options());
}

fn base64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Bearer tokens (`WWW-Authenticate: Bearer realm=…`): anonymous tokens may pull but not push;
/// with credentials the token service gives a token that may.
#[test]
fn push_with_bearer_tokens() {
    let nix = TestNix::new();
    let registry = Registry::start_tls_token();
    let home = tempfile::tempdir().unwrap();
    let image =
        nix.build(&expr(r#"s.streamLayeredImage { name = "tokens"; tag = "1"; contents = [ busybox ]; }"#));
    let dest = format!("docker://{}/team/tokens:1", registry.address());
    let ca_arg = format!("--cert-dir={}", registry.ca().display());
    let good = format!("{USER}:{PASSWORD}");

    let err = fails(push_command(&image, &dest, home.path()).arg(&ca_arg));
    assert!(err.contains("it needs credentials, and none were found"), "{err}");
    let err = fails(push_command(&image, &dest, home.path()).arg(&ca_arg).args(["--creds", "tester:wrong"]));
    assert!(err.contains("refused the credentials (from --creds) with 401"), "{err}");

    let out = run_ok(push_command(&image, &dest, home.path()).arg(&ca_arg).args(["--creds", &good]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("blob(s) sent"));
    let manifest = inspect_and_copy_with(&dest, &registry.skopeo_options());
    assert_eq!(manifest["schemaVersion"], 2);
    assert!(registry.log().contains("\"PUT /v2/team/tokens/manifests/1"), "{}", registry.log());
}

/// The application image of [`app`], a registry, a [`FaultyProxy`] in front of it, and a home
/// for the push.
struct Proxied {
    _nix: TestNix,
    image: PathBuf,
    registry: Registry,
    proxy: FaultyProxy,
    home: tempfile::TempDir,
}

impl Proxied {
    fn app() -> Proxied {
        let nix = TestNix::new();
        let image = nix.build(&expr(&app("1")));
        let registry = Registry::start();
        let proxy = FaultyProxy::start(registry.port);
        Proxied { _nix: nix, image, registry, proxy, home: tempfile::tempdir().unwrap() }
    }
}

/// A registry that answers 500 half way through a push, and again to each resumption: a clear
/// error, the tag not written, and the next push completes it.
#[test]
fn a_registry_failing_half_way_through_a_push() {
    let Proxied { _nix, registry, proxy, home, image } = Proxied::app();
    let dest = format!("docker://{}/team/app:v1", proxy.address());
    proxy.fail_always("PUT|PATCH", "/blobs/uploads/", 1, 500);
    let err = fails(&mut push_command(&image, &dest, home.path()));
    assert!(proxy.fired());
    assert!(err.contains("uploading blob sha256:"), "{err}");
    assert!(
        err.contains(
            "(given up after 3 resumptions): 500 Internal Server Error: UNKNOWN injected by the test's proxy"
        ),
        "{err}"
    );
    proxy.heal();
    let direct = format!("docker://{}/team/app:v1", registry.address());
    let inspect =
        Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &direct]).output().unwrap();
    assert!(!inspect.status.success(), "no manifest was put");

    let out = push(&image, &dest, home.path());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already there"),
        "the blob sent before is not sent again"
    );
    inspect_and_copy(&direct);
}

/// buildImageIndex: two images for two platforms as one OCI layout, pushed as a manifest list
/// that skopeo reads per platform; two images for one platform are refused.
#[test]
fn a_multi_platform_index() {
    let nix = TestNix::new();
    let registry = Registry::start();
    let home = tempfile::tempdir().unwrap();
    let index = r#"s.buildImageIndex { name = "team/multi"; tag = "1"; images = [
        (s.buildLayeredImage { name = "multi"; architecture = "amd64"; contents = [ busybox ]; config.Cmd = [ "/bin/sh" "-c" "echo amd64 here" ]; })
        (s.streamLayeredImage { name = "multi"; architecture = "arm64"; contents = [ (lib "arm-files" 100 "") ]; })
      ]; }"#;
    let layout = nix.build(&expr(index));
    assert!(layout.to_string_lossy().ends_with("multi.oci.tar"), "{}", layout.display());
    let raw = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci-archive:{}:team/multi:1", layout.display())),
    );
    let raw: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    let platforms: Vec<String> = raw["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"], "{raw}");

    let dest = format!("docker://{}/team/multi:1", registry.address());
    push(&layout, &dest, home.path());
    let list = inspect_and_copy(&dest);
    assert_eq!(list["mediaType"], "application/vnd.docker.distribution.manifest.list.v2+json", "{list}");
    assert_eq!(list["manifests"].as_array().unwrap().len(), 2);
    let copy = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("skopeo")
            .args(["copy", "-q", "--all", "--src-tls-verify=false", &dest])
            .arg(format!("oci:{}:all", copy.path().join("l").display())),
    );
    for arch in ["amd64", "arm64"] {
        let out = run_ok(Command::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            "--override-arch",
            arch,
            &dest,
        ]));
        let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(inspected["Architecture"], arch);
    }
    // the stream pushes the same, and podman runs this machine's image from the list
    let stream = nix.build(&expr(&format!("({index}).stream")));
    let again = push(&stream, &dest, home.path());
    assert!(String::from_utf8_lossy(&again.stderr).contains("0 blob(s) sent"));
    let podman = Podman::new();
    let name = format!("{}/team/multi:1", registry.address());
    run_ok(podman.cmd().args(["pull", "-q", "--tls-verify=false", &name]));
    assert_eq!(podman.run(&name), "amd64 here\n");

    let twice = r#"s.buildImageIndex { name = "twice"; images = [
        (s.streamLayeredImage { name = "a"; architecture = "amd64"; })
        (s.streamLayeredImage { name = "b"; architecture = "x86_64-linux"; })
      ]; }"#;
    let err = nix.build_error(&expr(twice));
    assert!(err.contains("has two images for linux/amd64: images[0]"), "{err}");
}

/// Image files and OCI layouts as destinations (a new name given or not), and copyToPodman;
/// an existing destination is refused and left alone.
#[test]
fn push_to_files_and_into_podman() {
    let nix = TestNix::new();
    let dir = tempfile::tempdir().unwrap();
    let image = nix.build(&expr(&app("1")));
    let archive = dir.path().join("renamed.tar");
    push(&image, &format!("docker-archive:{}:renamed/app:9", archive.display()), dir.path());
    let podman = Podman::new();
    assert_eq!(podman.load(&archive), ["renamed/app:9"]);
    assert!(podman.run("renamed/app:9").starts_with("1 "));

    let oci_archive = dir.path().join("app.oci.tar");
    push(&image, &format!("oci-archive:{}", oci_archive.display()), dir.path());
    run_ok(
        Command::new("skopeo")
            .args(["inspect"])
            .arg(format!("oci-archive:{}:team/app:v1", oci_archive.display())),
    );
    let layout = dir.path().join("layout");
    push(&image, &format!("oci:{}:v1", layout.display()), dir.path());
    let out = run_ok(
        Command::new("skopeo").args(["inspect", "--config"]).arg(format!("oci:{}:v1", layout.display())),
    );
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["config"]["Cmd"][0], "/bin/sh");
    let before = std::fs::read(&archive).unwrap();
    let err = fails(&mut push_command(&image, &format!("docker-archive:{}", archive.display()), dir.path()));
    assert!(err.contains("exists already"), "{err}");
    assert_eq!(std::fs::read(&archive).unwrap(), before);
    assert!(!dir.path().join(".renamed.tar.partial").exists());

    let copy = nix.build(&expr(&format!("({}).copyToPodman", app("1"))));
    let fresh = Podman::new();
    let mut cmd = Command::new(copy.join("bin/copy-to-podman"));
    fresh.configure(&mut cmd);
    let out = run_ok(&mut cmd);
    assert!(out.stdout.is_empty(), "podman's words go to stderr");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Loaded image"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fresh.images(), ["team/app:v1"]);
}

/// The entries of the push's compressed-digest cache under `home`: name and inode (an entry
/// written again is a new file, renamed into place).
fn cache_entries(home: &Path) -> BTreeMap<String, u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(home.join("stowage/blobs"))
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().ino()))
        .collect()
}

/// What the layers of the stream script `stream` are known by (their cache entries' names),
/// bottom first.
fn layer_ids(stream: &Path) -> Vec<stowage_core::format::digest::Digest> {
    let plan = stowage_core::image::plan::Plan::read(stream).unwrap();
    plan.images[0].layers.iter().map(|l| l.id()).collect()
}

/// The manifest's layer blobs.
fn layer_blobs(manifest: &serde_json::Value) -> Vec<String> {
    manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_owned()).collect()
}

/// An upload the registry breaks off is an error, also when the compressed digests are cached
/// (the layers were then compressed as they were sent, through a pipe whose broken end was
/// taken for a reader that stopped): it was a silent exit 0 with nothing tagged.
#[test]
fn a_failed_upload_is_never_a_silent_success() {
    let nix = TestNix::new();
    let (first, second) = (Registry::start(), Registry::start());
    let proxy = FaultyProxy::start(second.port);
    let home = tempfile::tempdir().unwrap();
    let image = nix.build(&expr(&app("1")));
    push(&image, &format!("docker://{}/team/app:v1", first.address()), home.path());
    // busybox's layer is larger than what the proxy reads before it answers, every time.
    proxy.fail_mid_body("PUT|PATCH", "/blobs/uploads/", 0);
    let err =
        fails(&mut push_command(&image, &format!("docker://{}/team/app:v1", proxy.address()), home.path()));
    assert!(proxy.fired());
    assert!(err.contains("uploading blob sha256:"), "{err}");
    let direct = format!("docker://{}/team/app:v1", second.address());
    let inspect =
        Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &direct]).output().unwrap();
    assert!(!inspect.status.success(), "no manifest was put");
}

/// The blobs `registry` holds.
fn stored_blobs(registry: &Registry) -> BTreeSet<String> {
    let dirs = |dir: PathBuf| std::fs::read_dir(dir).into_iter().flatten().map(|e| e.unwrap().path());
    dirs(registry.storage().join("blobs/sha256"))
        .flat_map(dirs)
        .filter(|blob| blob.join("data").exists())
        .map(|blob| format!("sha256:{}", blob.file_name().unwrap().to_string_lossy()))
        .collect()
}

/// A push killed (SIGKILL) while it sends a blob, after it sent another, then run again: it
/// completes, sending only the blobs the registry lacked.
#[test]
fn a_push_killed_half_way_sends_only_what_is_missing_when_run_again() {
    let nix = TestNix::new();
    let registry = Registry::start();
    let proxy = FaultyProxy::start(registry.port);
    let home = tempfile::tempdir().unwrap();
    let image = nix.build(&expr(&app("1")));
    let dest = format!("docker://{}/team/app:v1", proxy.address());
    proxy.hold("PUT", "/blobs/uploads/", 1);
    let mut push_cmd = push_command(&image, &dest, home.path());
    let mut killed = push_cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    while !proxy.fired() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    killed.kill().unwrap();
    killed.wait().unwrap();
    assert!(proxy.fired(), "the push never sent a second blob");
    let before = stored_blobs(&registry);
    assert!(!before.is_empty(), "the first blob is in the registry");
    let sent_before: BTreeSet<String> = proxy.uploads().into_keys().collect();

    proxy.heal();
    push(&image, &dest, home.path());
    let manifest = inspect_and_copy(&format!("docker://{}/team/app:v1", registry.address()));
    let sent_again: Vec<String> = proxy
        .uploads()
        .into_iter()
        .filter(|(path, _)| !sent_before.contains(path))
        .filter_map(|(_, seen)| seen.digest)
        .collect();
    // The image's blobs (its attestations' aside) the killed push had not sent.
    let image_blobs: BTreeSet<String> = layer_blobs(&manifest)
        .into_iter()
        .chain([manifest["config"]["digest"].as_str().unwrap().to_owned()])
        .collect();
    let missing: Vec<&String> = image_blobs.difference(&before).collect();
    assert!(!missing.is_empty(), "the killed push sent every blob");
    for blob in &missing {
        assert_eq!(sent_again.iter().filter(|s| s == blob).count(), 1, "{blob} is sent once");
    }
    for blob in &before {
        assert!(!sent_again.contains(blob), "{blob}, which the registry had, is sent again");
    }
}

/// A full disk under an image file, an OCI layout or the push's temporary files: an error
/// naming the file, exit 1, nothing left behind. (`oci:` exited 0 having written nothing; the
/// others named "(archive output)".)
#[test]
fn a_full_disk_is_an_error_naming_the_file() {
    let nix = TestNix::new();
    let image = nix.build(&expr(&app("1")));
    let disk = support::disk::SmallDisk::new(512 << 10);
    let home = tempfile::tempdir().unwrap();
    for (dest, named) in [
        (format!("oci:{}/layout:v1", disk.path().display()), "/.layout.partial: "),
        (format!("docker-archive:{}/app.tar", disk.path().display()), "/.app.tar.partial: "),
        (format!("oci-archive:{}/app.oci.tar", disk.path().display()), "/.app.oci.tar.partial: "),
    ] {
        let err = fails(&mut push_command(&image, &dest, home.path()));
        assert!(err.contains("No space left on device"), "{dest}: {err}");
        assert!(err.contains(&format!("{}{named}", disk.path().display())), "{dest}: {err}");
        assert_eq!(disk.listing(), Vec::<String>::new(), "{dest}: nothing is left");
    }
    // The compressed layers a push prepares in $TMPDIR.
    let registry = Registry::start();
    let err = fails(
        push_command(&image, &format!("docker://{}/team/app:v1", registry.address()), home.path())
            .env("TMPDIR", disk.path()),
    );
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        err.contains(&format!("{}/(temporary file of a compressed layer)", disk.path().display())),
        "{err}"
    );
}

/// The compressed-digest cache is checked wherever it is used: an entry copied from another
/// layer is ignored (it made a manifest list one blob twice), a wrong digest the registry lacks
/// is corrected as the layer is sent (it was a silent failure), and two layers said to be one
/// blob push nothing.
#[test]
fn the_compressed_digest_cache_is_checked() {
    let nix = TestNix::new();
    let registry = Registry::start();
    let home = tempfile::tempdir().unwrap();
    let image = nix.build(&expr(&app("1")));
    let ids = layer_ids(&image);
    assert!(ids.len() >= 3, "the test needs layers of different contents");
    push(&image, &format!("docker://{}/team/app:v1", registry.address()), home.path());
    let good = layer_blobs(&inspect_and_copy(&format!("docker://{}/team/app:v1", registry.address())));
    let entry = |layer: usize| home.path().join(format!("stowage/blobs/{}.gz1", ids[layer].hex()));

    // Layer 0's entry replaced by layer 1's: the push still lists every layer's own blob.
    std::fs::copy(entry(1), entry(0)).unwrap();
    push(&image, &format!("docker://{}/team/app:copied", registry.address()), home.path());
    let pushed = layer_blobs(&inspect_and_copy(&format!("docker://{}/team/app:copied", registry.address())));
    assert_eq!(pushed, good);

    // A well-formed entry for a blob the registry lacks: the layer is compressed again, the
    // right blob sent and the entry corrected.
    let fresh = Registry::start();
    let cache = stowage_core::write::blob_cache::BlobCache::under(home.path());
    let compressor = stowage_core::format::compress::Compression::Gzip;
    let right = cache.get(&ids[1], compressor).unwrap();
    let bogus = stowage_core::format::digest::Digest::of(b"no such blob");
    cache.put(&ids[1], compressor, &Blob { digest: bogus, size: 1234, ..right });
    let out = push(&image, &format!("docker://{}/team/app:v1", fresh.address()), home.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the compressed-digest cache was wrong about it; corrected"), "{stderr}");
    assert_eq!(layer_blobs(&inspect_and_copy(&format!("docker://{}/team/app:v1", fresh.address()))), good);
    assert_eq!(cache.get(&ids[1], compressor), Some(right));
    assert_eq!(right.digest.to_string(), good[1]);

    // A well-formed entry naming another layer's blob, which the registry has: nothing tagged.
    let blob_2 = cache.get(&ids[2], compressor).unwrap();
    cache.put(&ids[0], compressor, &blob_2);
    let dest = format!("docker://{}/team/app:twice", registry.address());
    let err = fails(&mut push_command(&image, &dest, home.path()));
    assert!(err.contains("were both taken for blob"), "{err}");
    let inspect =
        Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &dest]).output().unwrap();
    assert!(!inspect.status.success(), "no manifest was put");
    // The entries are gone, and the next push is right.
    assert_eq!(cache.get(&ids[0], compressor), None);
    push(&image, &dest, home.path());
    assert_eq!(layer_blobs(&inspect_and_copy(&dest)), good);
}

/// `--tag` (repeatable) puts the pushed image under more tags of the repository; a tag that is
/// no tag is refused before anything is sent, and so is `--tag` for a destination that is no
/// registry.
#[test]
fn several_tags_in_one_push() {
    let nix = TestNix::new();
    let registry = Registry::start();
    let home = tempfile::tempdir().unwrap();
    let image = nix.build(&expr(&app("1")));
    let at = |tag: &str| format!("docker://{}/team/app:{tag}", registry.address());

    let err = fails(push_command(&image, &at("v1"), home.path()).args(["--tag", "ok", "--tag=-bad"]));
    assert!(err.contains("argument '--tag' \"-bad\" is not a valid image tag"), "{err}");
    assert_eq!(registry.uploads(), 0, "nothing sent: {}", registry.log());
    let err = fails(push_command(&image, "oci-archive:/tmp/never.tar", home.path()).args(["--tag", "v2"]));
    assert!(err.contains("argument '--tag' tags an image in a registry"), "{err}");
    assert!(!Path::new("/tmp/never.tar").exists());

    let out = run_ok(
        push_command(&image, &at("v1"), home.path()).args(["--tag", "v2", "--tag", "stable", "--tag", "v1"]),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("team/app:v1,v2,stable ("), "{stderr}");
    let digests: Vec<String> = ["v1", "v2", "stable"]
        .iter()
        .map(|tag| {
            let raw =
                run_ok(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &at(tag)]))
                    .stdout;
            format!("sha256:{:x}", sha2::Sha256::digest(&raw))
        })
        .collect();
    assert!(digests.iter().all(|d| *d == digests[0]), "{digests:?}");
    assert_eq!(layer_blobs(&inspect_and_copy(&at("stable"))), layer_blobs(&inspect_and_copy(&at("v1"))));
}

/// The size of each blob (layers and config) of `manifest`, by digest.
fn blob_sizes(manifest: &serde_json::Value) -> BTreeMap<String, u64> {
    let layers = manifest["layers"].as_array().unwrap().iter();
    layers
        .chain([&manifest["config"]])
        .map(|b| (b["digest"].as_str().unwrap().to_owned(), b["size"].as_u64().unwrap()))
        .collect()
}

/// The chunk size of the chunked tests, and what the proxy reads of the chunk it cuts off.
const CHUNK: u64 = 64 << 10;

/// The `Content-Range`s of a blob of `size` bytes sent in chunks of [`CHUNK`].
fn chunk_ranges(size: u64) -> Vec<String> {
    (0..size.div_ceil(CHUNK))
        .map(|i| format!("{}-{}", i * CHUNK, (size - 1).min((i + 1) * CHUNK - 1)))
        .collect()
}

/// `--chunk-size 64K`: every blob goes in `PATCH` chunks of 64 KiB whose `Content-Range`s
/// follow each other from 0 to the blob's last byte, then a `PUT` without a body; skopeo reads
/// the image.
#[test]
fn a_chunked_push() {
    let Proxied { _nix, registry, proxy, home, image } = Proxied::app();
    let dest = format!("docker://{}/team/app:v1", proxy.address());
    run_ok(push_command(&image, &dest, home.path()).args(["--chunk-size", "64K"]));
    let manifest = inspect_and_copy(&format!("docker://{}/team/app:v1", registry.address()));
    let sizes = blob_sizes(&manifest);
    let uploads = proxy.uploads();
    assert_eq!(uploads.len(), sizes.len(), "{uploads:?}");
    for seen in uploads.values() {
        let size = sizes[seen.digest.as_ref().unwrap()];
        assert_eq!(seen.body_bytes, size, "{seen:?}");
        assert_eq!(seen.ranges, chunk_ranges(size), "{seen:?}");
    }
    assert!(uploads.values().any(|seen| seen.ranges.len() >= 3), "a layer takes several chunks: {uploads:?}");
    let patches =
        registry.log().lines().filter(|l| l.contains("\"PATCH /v2/team/app/blobs/uploads/")).count();
    assert!(patches >= sizes.len() + 2, "{}", registry.log());
}

/// A connection cut half way through a chunk (a proxy that takes whole bodies passed nothing of
/// it on), or through a blob sent in one `PUT`: the push asks the registry where the upload
/// stands and sends only the rest; skopeo reads the image.
#[test]
fn an_upload_cut_off_is_resumed() {
    for (method, chunked) in [("PATCH", true), ("PUT", false)] {
        let Proxied { _nix, registry, proxy, home, image } = Proxied::app();
        // The third chunk of a layer larger than two, or the first blob larger than one.
        proxy.cut(method, "/blobs/uploads/", if chunked { 2 } else { 0 }, CHUNK / 2);
        let mut push =
            push_command(&image, &format!("docker://{}/team/app:v1", proxy.address()), home.path());
        if chunked {
            push.args(["--chunk-size", "64K"]);
        }
        run_ok(&mut push);
        assert!(proxy.fired(), "{method}");
        let manifest = inspect_and_copy(&format!("docker://{}/team/app:v1", registry.address()));
        let cut = proxy.fired_on().unwrap();
        let size = blob_sizes(&manifest)[cut.digest.as_ref().unwrap()];
        // the blob once, and what the proxy read of the cut request
        assert_eq!(cut.body_bytes, size + CHUNK / 2, "{method}: {cut:?}");
        assert_eq!(proxy.uploads().len(), blob_sizes(&manifest).len(), "{method}: no upload started again");
        if chunked {
            let mut ranges = cut.ranges.clone();
            ranges.dedup();
            assert_eq!(ranges, chunk_ranges(size), "{cut:?}");
            assert_eq!(cut.ranges.len(), ranges.len() + 1, "only the cut chunk is sent again: {cut:?}");
        } else {
            assert_eq!(cut.ranges, [format!("0-{}", size - 1)], "the rest, after a PUT that was cut off");
        }
    }
}

/// A connection cut half way through a chunk that the registry got the start of: distribution
/// then drops the upload when asked where it stands (its upload state says the bytes end
/// before that chunk), and the push starts it again; skopeo reads the image.
#[test]
fn an_upload_the_registry_lost_is_started_again() {
    let Proxied { _nix, registry, proxy, home, image } = Proxied::app();
    proxy.cut_passing_on("PATCH", "/blobs/uploads/", 2, CHUNK / 2);
    let dest = format!("docker://{}/team/app:v1", proxy.address());
    run_ok(push_command(&image, &dest, home.path()).args(["--chunk-size", "64K"]));
    assert!(proxy.fired());
    let manifest = inspect_and_copy(&format!("docker://{}/team/app:v1", registry.address()));
    let uploads = proxy.uploads();
    assert_eq!(uploads.len(), blob_sizes(&manifest).len() + 1, "one upload started again: {uploads:?}");
}

/// A registry refusing every chunk (416, or 500) past the first: the upload is resumed three
/// times, then the push fails naming the blob and the registry, and nothing is tagged.
#[test]
fn a_registry_refusing_chunks() {
    let Proxied { _nix, registry, proxy, home, image } = Proxied::app();
    for (status, said) in [(416, "416 Requested Range Not Satisfiable"), (500, "500 Internal Server Error")] {
        proxy.fail_always("PATCH", "/blobs/uploads/", 1, status);
        let tag = format!("s{status}");
        let dest = format!("docker://{}/team/app:{tag}", proxy.address());
        let err = fails(push_command(&image, &dest, home.path()).args(["--chunk-size", "64K"]));
        assert!(
            err.contains(&format!("stowage: registry {}: uploading blob sha256:", proxy.address())),
            "{err}"
        );
        assert!(err.contains(&format!("(given up after 3 resumptions): {said}: UNKNOWN injected")), "{err}");
        let direct = format!("docker://{}/team/app:{tag}", registry.address());
        let inspect = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false", &direct])
            .output()
            .unwrap();
        assert!(!inspect.status.success(), "nothing is tagged");
    }
}

/// A blob pushed to one repository is mounted into another of the same registry rather than
/// sent again: the registry's log shows the mounts, and no upload of a blob to the second.
#[test]
fn blobs_are_mounted_from_another_repository() {
    let nix = TestNix::new();
    let registry = Registry::start();
    let home = tempfile::tempdir().unwrap();
    let image = nix.build(&expr(&app("1")));
    push(&image, &format!("docker://{}/team/a:v1", registry.address()), home.path());
    let blobs = blob_sizes(&inspect_and_copy(&format!("docker://{}/team/a:v1", registry.address())));
    let out = push(&image, &format!("docker://{}/team/b:v1", registry.address()), home.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(": mounted from team/a"), "{stderr}");
    assert!(
        stderr.contains(&format!("0 blob(s) sent, 0 bytes; {} mounted from other repositories", blobs.len())),
        "{stderr}"
    );
    let log = registry.log();
    let mounts = log.lines().filter(|l| l.contains("\"POST /v2/team/b/blobs/uploads/?mount=sha256:")).count();
    assert_eq!(mounts, blobs.len(), "{log}");
    assert!(!log.contains("\"PATCH /v2/team/b/") && !log.contains("\"PUT /v2/team/b/blobs/"), "{log}");
    let manifest = inspect_and_copy(&format!("docker://{}/team/b:v1", registry.address()));
    assert_eq!(blob_sizes(&manifest), blobs);
}

/// Credentials from a credential helper (`docker-credential-NAME get`) that Docker's
/// `config.json` names for the registry (`credHelpers`), or by default (`credsStore`); a
/// helper that fails, answers garbage or is missing is an error naming it, and nothing is sent.
#[test]
fn credential_helpers() {
    let nix = TestNix::new();
    let registry = Registry::start_tls_basic();
    let home = tempfile::tempdir().unwrap();
    let image =
        nix.build(&expr(r#"s.streamLayeredImage { name = "helped"; tag = "1"; contents = [ busybox ]; }"#));
    let dest = format!("docker://{}/team/helped:1", registry.address());
    let (bin, config) = (home.path().join("bin"), home.path().join("docker"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&config).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let helper = |name: &str, script: &str| {
        use std::os::unix::fs::PermissionsExt;
        let file = bin.join(format!("docker-credential-{name}"));
        std::fs::write(&file, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    // The registry on stdin, as Docker gives it; the answer only for it.
    helper(
        "stowagetest",
        &format!(
            r#"[ "$1" = get ] && [ "$(cat)" = "{}" ] || exit 3
printf '{{"ServerURL":"%s","Username":"{USER}","Secret":"{PASSWORD}"}}' "{}""#,
            registry.address(),
            registry.address()
        ),
    );
    helper("stowagefails", "echo 'cannot reach the keyring' >&2; exit 1");
    helper("stowagegarbage", "echo 'this is not JSON'");
    let push_with = |config_json: serde_json::Value| {
        std::fs::write(config.join("config.json"), config_json.to_string()).unwrap();
        let mut cmd = push_command(&image, &dest, home.path());
        cmd.arg(format!("--cert-dir={}", registry.cert_dir().display()))
            .env("DOCKER_CONFIG", &config)
            .env("PATH", &path);
        cmd
    };
    let helpers = |name: &str| serde_json::json!({ "credHelpers": { registry.address(): name } });

    for (name, said) in [
        ("stowagefails", "exit status: 1 for 127.0.0.1:"),
        ("stowagegarbage", "it answered no JSON: this is not JSON"),
        ("stowagemissing", "cannot be run (is it on PATH?)"),
    ] {
        let err = fails(&mut push_with(helpers(name)));
        let named = format!(
            "stowage: registry {}: credential helper docker-credential-{name} (credHelpers of {}/config.json): ",
            registry.address(),
            config.display()
        );
        assert!(err.contains(&named), "{err}");
        assert!(err.contains(said), "{err}");
    }
    let err = fails(&mut push_with(helpers("stowagefails")));
    assert!(err.contains("it said: cannot reach the keyring"), "{err}");
    assert_eq!(registry.uploads(), 0, "nothing was sent: {}", registry.log());

    // the host's helper, ahead of a wrong auths entry
    let wrong = serde_json::json!({ registry.address(): { "auth": base64("tester:wrong") } });
    let out = run_ok(&mut push_with(
        serde_json::json!({ "credHelpers": { registry.address(): "stowagetest" }, "auths": wrong }),
    ));
    assert!(String::from_utf8_lossy(&out.stderr).contains("blob(s) sent"));
    inspect_and_copy_with(&dest, &registry.skopeo_options());
    // the default helper, for a registry without an entry of its own
    let out = run_ok(&mut push_with(serde_json::json!({ "credsStore": "stowagetest", "auths": {} })));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 blob(s) sent"));
}

/// A missing image is named, in words for the command line rather than a Nix builder's.
#[test]
fn push_names_a_missing_image() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(&mut push_command(Path::new("/nonexistent"), "docker://127.0.0.1:9/a:b", dir.path()));
    assert!(err.contains("/nonexistent: No such file or directory"), "{err}");
    assert!(err.contains("give an image file"), "{err}");
    assert!(!err.contains("dependency of the build"), "words for a Nix builder: {err}");
}

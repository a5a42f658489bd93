//! What a hostile-input probe found, and what a malicious registry tries: registries that
//! drip, stall, fall silent, redirect in a loop (on `/v2/`, a token, a manifest, a blob),
//! answer `/v2/` with an error, send a token without end, a config that claims 3 GiB, a
//! manifest of 1 GiB, a `Content-Length` that lies, a blob without end or with other bytes
//! than its digest's, an index that lists an index (or itself).
//! `stowage push` and `pullImage`'s builder (run directly, and once through Nix) each fail
//! with an error that says what went wrong, within a bounded time (the tests set the registry
//! timeout to a few seconds), in bounded memory, and write nothing. So does a pull onto a full
//! disk; a pull killed half way (directly, or through Nix) completes when run again.

mod support;

use sha2::{Digest as _, Sha256};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::hostile::{Answer, HostileRegistry};
use support::TestNix;

/// The registry timeout the tests set, in seconds.
const TIMEOUT: &str = "3";

/// How long a command given [`TIMEOUT`] may take to fail, on a loaded machine.
const BOUND: Duration = Duration::from_secs(20);

/// The most address space a command may take: a pull that held a 3 GiB config would need more.
const MEMORY_LIMIT: libc::rlim_t = 1 << 30;

/// The largest document stowage reads from a registry (`registry::DOCUMENT_LIMIT`).
const DOCUMENT_LIMIT: u64 = 16 << 20;

fn stowage() -> PathBuf {
    PathBuf::from(std::env::var_os("STOWAGE_BUILDER").expect("STOWAGE_BUILDER names the built stowage"))
}

/// Limits the address space of `cmd` to [`MEMORY_LIMIT`].
fn limit_memory(cmd: &mut Command) -> &mut Command {
    // SAFETY: setrlimit is async-signal-safe, and the closure touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: MEMORY_LIMIT, rlim_max: MEMORY_LIMIT };
            match libc::setrlimit(libc::RLIMIT_AS, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        })
    }
}

/// Runs `cmd`, which must fail within [`BOUND`] (it is killed after that) without a word on
/// stdout; returns its stderr.
fn fails_in_bounded_time(cmd: &mut Command) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} still ran after {BOUND:?}; its stderr:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&err).unwrap();
    eprintln!("failed after {:.1} s: {stderr}", started.elapsed().as_secs_f64());
    assert!(!status.success(), "{cmd:?} should fail:\n{stderr}");
    assert!(std::fs::read(&out).unwrap().is_empty(), "stdout stays quiet");
    stderr
}

/// A docker-archive of one image with one small layer, made here (no Nix needed).
fn image_archive(dir: &Path) -> PathBuf {
    let tar = |entries: &[(&str, &[u8])]| {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, bytes) in entries {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, name, *bytes).unwrap();
        }
        builder.into_inner().unwrap()
    };
    let layer = tar(&[("hello", b"hostile\n")]);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{:x}", Sha256::digest(&layer))] },
    })
    .to_string();
    let manifest = r#"[{"Config":"config.json","RepoTags":["hostile/app:1"],"Layers":["layer.tar"]}]"#;
    let path = dir.join("image.tar");
    std::fs::write(
        &path,
        tar(&[
            ("layer.tar", &layer),
            ("config.json", config.as_bytes()),
            ("manifest.json", manifest.as_bytes()),
        ]),
    )
    .unwrap();
    path
}

/// `stowage push` of a small image to `registry`, the registry timeout [`TIMEOUT`] (from the
/// environment), its cache and home in `home`.
fn push_to(registry: &HostileRegistry, home: &Path) -> Command {
    let mut cmd = Command::new(stowage());
    limit_memory(&mut cmd)
        .arg("push")
        .arg(image_archive(home))
        .arg(format!("docker://{}/team/app:1", registry.address()))
        .env("XDG_CACHE_HOME", home)
        .env("HOME", home)
        .env("STOWAGE_REGISTRY_TIMEOUT", TIMEOUT)
        .env_remove("STOWAGE_REGISTRY_MIN_RATE");
    for var in ["REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "DOCKER_CONFIG"] {
        cmd.env_remove(var);
    }
    cmd
}

/// The requests that would have written into the registry.
fn writes(registry: &HostileRegistry) -> Vec<String> {
    registry.requests().into_iter().filter(|r| r.starts_with("POST") || r.starts_with("PUT")).collect()
}

/// A registry whose `/v2/` and blobs ask for a bearer token, which its `/token` answers with
/// `token`.
fn with_token_service(token: impl Fn() -> Answer + Send + Sync + 'static) -> HostileRegistry {
    HostileRegistry::start(
        move |_, path| if path.starts_with("/token") { token() } else { Answer::TokenChallenge },
    )
}

#[test]
fn a_token_service_that_drips_fails_the_push_in_bounded_time() {
    let registry = with_token_service(|| Answer::Drip { length: 1000, interval: Duration::from_secs(1) });
    let home = tempfile::tempdir().unwrap();
    let err = fails_in_bounded_time(&mut push_to(&registry, home.path()));
    let realm = format!("http://{}/token", registry.address());
    assert!(err.contains(&format!("asking {realm} for a token: timed out after {TIMEOUT} s")), "{err}");
    assert_eq!(writes(&registry), Vec::<String>::new());
}

/// (`--timeout` given, ahead of the environment's.)
#[test]
fn a_token_service_that_never_answers_fails_the_push_in_bounded_time() {
    let registry = with_token_service(|| Answer::Silence);
    let home = tempfile::tempdir().unwrap();
    let err = fails_in_bounded_time(
        push_to(&registry, home.path()).args(["--timeout", TIMEOUT]).env("STOWAGE_REGISTRY_TIMEOUT", "600"),
    );
    let realm = format!("http://{}/token", registry.address());
    assert!(err.contains(&format!("asking {realm} for a token: timed out after {TIMEOUT} s")), "{err}");
    assert_eq!(writes(&registry), Vec::<String>::new());
}

#[test]
fn a_token_answer_without_end_is_too_large() {
    let registry = with_token_service(|| Answer::Endless(b"token"));
    let home = tempfile::tempdir().unwrap();
    let err = fails_in_bounded_time(&mut push_to(&registry, home.path()));
    let realm = format!("http://{}/token", registry.address());
    assert!(
        err.contains(&format!("the token service {realm} answered more than {DOCUMENT_LIMIT} bytes")),
        "{err}"
    );
    assert_eq!(writes(&registry), Vec::<String>::new());
}

/// A loopback registry that does not speak TLS, and whose plain HTTP `/v2/` answers what no
/// registry does: the error says what it answered.
#[test]
fn a_plain_http_answer_that_is_no_registry_is_said() {
    plain_http_answer_is_said(|| Answer::Status(404), "answered 404 Hostile");
    plain_http_answer_is_said(|| Answer::Status(500), "answered 500 Hostile");
    plain_http_answer_is_said(|| Answer::RedirectLoop, "redirects in a loop");
}

/// A push to a registry that answers every request with `answer` fails saying that, over
/// plain HTTP, its `/v2/` `said` so.
fn plain_http_answer_is_said(answer: fn() -> Answer, said: &str) {
    let registry = HostileRegistry::start(move |_, _| answer());
    let home = tempfile::tempdir().unwrap();
    let err = fails_in_bounded_time(&mut push_to(&registry, home.path()));
    let expected = format!(
        "registry {0}: connecting: it does not speak HTTPS, and over plain HTTP GET http://{0}/v2/ {said}",
        registry.address()
    );
    assert!(err.contains(&expected), "{expected}:\n{err}");
    assert_eq!(writes(&registry), Vec::<String>::new());
}

/// The digest of `bytes`.
fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// An image whose registry serves `manifest` (a document) as `team/app@DIGEST` and answers
/// every blob with `blob` (given the blob's digest); the digest.
fn serving(
    manifest: serde_json::Value,
    blob: impl Fn(&str) -> Answer + Send + Sync + 'static,
) -> (HostileRegistry, String) {
    let bytes = manifest.to_string().into_bytes();
    let digest = digest_of(&bytes);
    let at = format!("/v2/team/app/manifests/{digest}");
    let registry = HostileRegistry::start(move |_, path| match path {
        "/v2/" => Answer::Status(200),
        _ if path == at => Answer::Bytes(bytes.clone()),
        _ => match path.strip_prefix("/v2/team/app/blobs/") {
            Some(blob_digest) => blob(blob_digest),
            None => Answer::Status(404),
        },
    });
    (registry, digest)
}

/// A manifest whose config has `size` bytes, and no layers.
fn manifest_with_config(size: u64) -> serde_json::Value {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{}", "c".repeat(64)),
            "size": size,
        },
        "layers": [],
    })
}

/// A pull of `team/app@digest` from `registry` by `pullImage`'s builder, run as Nix runs it
/// (structured attributes in `NIX_ATTRS_JSON_FILE`), the registry timeout [`TIMEOUT`]; the
/// command and the output path.
fn pull_from(registry: &HostileRegistry, digest: &str, dir: &Path) -> (Command, PathBuf) {
    let out = dir.join("out.oci.tar");
    let attrs = serde_json::json!({
        "function": "pullImage",
        "arguments": {
            "name": "app.oci.tar", "imageName": format!("{}/team/app", registry.address()),
            "imageDigest": digest, "finalImageName": "team/app", "finalImageTag": "1", "arch": "amd64",
            "sha256": "0",
        },
        "system": "x86_64-linux", "storeDir": "/store", "outputs": { "out": out },
    });
    let file = dir.join(".attrs.json");
    std::fs::write(&file, attrs.to_string()).unwrap();
    let mut cmd = Command::new(stowage());
    limit_memory(&mut cmd)
        .arg("build-pull")
        .current_dir(dir)
        .env("NIX_ATTRS_JSON_FILE", &file)
        .env("STOWAGE_REGISTRY_TIMEOUT", TIMEOUT)
        .env_remove("STOWAGE_REGISTRY_MIN_RATE");
    (cmd, out)
}

#[test]
fn a_config_claiming_3_gib_is_refused_before_it_is_fetched() {
    let size = 3 << 30;
    let (registry, digest) = serving(manifest_with_config(size), |_| Answer::Endless(&[0]));
    let dir = tempfile::tempdir().unwrap();
    let (mut cmd, out) = pull_from(&registry, &digest, dir.path());
    let err = fails_in_bounded_time(&mut cmd);
    assert!(
        err.contains(&format!(
            "its config sha256:{} has {size} bytes; a config may have at most {DOCUMENT_LIMIT}",
            "c".repeat(64)
        )),
        "{err}"
    );
    let blobs: Vec<String> = registry.requests().into_iter().filter(|r| r.contains("/blobs/")).collect();
    assert_eq!(blobs, Vec::<String>::new(), "the config is not asked for");
    assert!(!out.exists());
}

#[test]
fn a_blob_that_stalls_after_one_byte_fails_the_pull_in_bounded_time() {
    let (registry, digest) =
        serving(manifest_with_config(100), |_| Answer::StallAfterOneByte { length: 100 });
    let dir = tempfile::tempdir().unwrap();
    let (mut cmd, out) = pull_from(&registry, &digest, dir.path());
    let err = fails_in_bounded_time(&mut cmd);
    assert!(err.contains(&format!("fetching blob sha256:{}", "c".repeat(64))), "{err}");
    assert!(err.contains(&format!("nothing arrived for {TIMEOUT} s")), "{err}");
    assert!(!out.exists());
}

#[test]
fn a_blob_that_drips_fails_the_pull_in_bounded_time() {
    let (registry, digest) = serving(manifest_with_config(1000), |_| Answer::Drip {
        length: 1000,
        interval: Duration::from_millis(200),
    });
    let dir = tempfile::tempdir().unwrap();
    let (mut cmd, out) = pull_from(&registry, &digest, dir.path());
    let err = fails_in_bounded_time(&mut cmd);
    assert!(err.contains(&format!("fetching blob sha256:{}", "c".repeat(64))), "{err}");
    assert!(err.contains("under the minimum of 1024 bytes/s"), "{err}");
    assert!(!out.exists());
}

#[test]
fn a_manifest_that_drips_fails_the_pull_in_bounded_time() {
    let registry = HostileRegistry::start(|_, path| match path {
        "/v2/" => Answer::Status(200),
        _ => Answer::Drip { length: 1000, interval: Duration::from_millis(500) },
    });
    let digest = format!("sha256:{}", "d".repeat(64));
    let dir = tempfile::tempdir().unwrap();
    let (mut cmd, out) = pull_from(&registry, &digest, dir.path());
    let err = fails_in_bounded_time(&mut cmd);
    assert!(err.contains(&format!("fetching the manifest {digest}")), "{err}");
    assert!(err.contains(&format!("timed out after {TIMEOUT} s")), "{err}");
    assert!(!out.exists());
}

/// `pullImage` through Nix: the builder hears `STOWAGE_REGISTRY_TIMEOUT` from the caller's
/// environment, and no output is left.
#[test]
fn pull_image_takes_the_registry_timeout_from_the_environment() {
    let nix = TestNix::new();
    let (registry, digest) =
        serving(manifest_with_config(100), |_| Answer::StallAfterOneByte { length: 100 });
    let expr = format!(
        r#"builtins.stowage.pullImage {{ imageName = "{}/team/app"; imageDigest = "{digest}";
           sha256 = "0000000000000000000000000000000000000000000000000000"; }}"#,
        registry.address()
    );
    let sandbox = ["--option", "sandbox", "true"];
    let err = fails_in_bounded_time(
        nix.cmd("nix-build")
            .arg("--no-out-link")
            .args(sandbox)
            .args(["-E", &expr])
            .env("STOWAGE_REGISTRY_TIMEOUT", TIMEOUT),
    );
    assert!(err.contains(&format!("nothing arrived for {TIMEOUT} s")), "{err}");
    let out = nix.eval_raw(&format!("({expr}).outPath"));
    assert!(!Path::new(&out).exists(), "{out} was left behind");
}

/// The registry timeouts must be numbers (a timeout at least 1), and are named when they are
/// not.
#[test]
fn registry_timeouts_that_are_not_numbers_are_named() {
    let registry = HostileRegistry::start(|_, _| Answer::Status(200));
    let home = tempfile::tempdir().unwrap();
    for value in ["soon", "0"] {
        let err =
            fails_in_bounded_time(push_to(&registry, home.path()).env("STOWAGE_REGISTRY_TIMEOUT", value));
        assert!(
            err.contains(&format!(
                "environment variable STOWAGE_REGISTRY_TIMEOUT is {value:?}; it must be a whole number of seconds, at least 1"
            )),
            "{err}"
        );
    }
    let err = fails_in_bounded_time(push_to(&registry, home.path()).args(["--timeout", "0"]));
    assert!(err.contains("argument '--timeout' must be at least 1 (second)"), "{err}");
    let (mut cmd, _) = pull_from(&registry, &format!("sha256:{}", "d".repeat(64)), home.path());
    let err = fails_in_bounded_time(cmd.env("STOWAGE_REGISTRY_MIN_RATE", "fast"));
    assert!(err.contains(r#"environment variable STOWAGE_REGISTRY_MIN_RATE is "fast""#), "{err}");
    assert_eq!(registry.requests(), Vec::<String>::new(), "nothing is asked of the registry");
}

/// A registry that answers `/v2/` and sends everything else round in a loop of redirects.
fn redirecting_all_but_v2() -> HostileRegistry {
    HostileRegistry::start(|_, path| if path == "/v2/" { Answer::Status(200) } else { Answer::RedirectLoop })
}

#[test]
fn a_redirect_loop_on_the_manifest_fails_the_pull() {
    let registry = redirecting_all_but_v2();
    let digest = format!("sha256:{}", "d".repeat(64));
    let dir = tempfile::tempdir().unwrap();
    let (mut cmd, out) = pull_from(&registry, &digest, dir.path());
    let err = fails_in_bounded_time(&mut cmd);
    assert!(err.contains(&format!("fetching the manifest {digest}")), "{err}");
    assert!(err.contains("redirects in a loop (stowage gives up at 5 redirects)"), "{err}");
    assert!(!out.exists());
}

/// Past `/v2/`, the first request of a push asks whether the registry has a blob: a loop
/// there fails it before anything is written.
#[test]
fn a_redirect_loop_past_v2_fails_the_push() {
    let registry = redirecting_all_but_v2();
    let home = tempfile::tempdir().unwrap();
    let err = fails_in_bounded_time(&mut push_to(&registry, home.path()));
    assert!(err.contains(&format!("registry {}: asking for blob sha256:", registry.address())), "{err}");
    assert!(err.contains("redirects in a loop (stowage gives up at 5 redirects)"), "{err}");
    assert_eq!(writes(&registry), Vec::<String>::new());
}

#[test]
fn a_token_service_that_redirects_in_a_loop_fails_the_push() {
    let registry = with_token_service(|| Answer::RedirectLoop);
    let home = tempfile::tempdir().unwrap();
    let err = fails_in_bounded_time(&mut push_to(&registry, home.path()));
    let realm = format!("http://{}/token", registry.address());
    assert!(err.contains(&format!("asking {realm} for a token: ")), "{err}");
    assert!(err.contains("redirects in a loop (stowage gives up at 5 redirects)"), "{err}");
    assert_eq!(writes(&registry), Vec::<String>::new());
}

/// A manifest of 1 GiB, sent without end or only said to be so large: refused at
/// [`DOCUMENT_LIMIT`], of which no more is read.
#[test]
fn a_manifest_of_a_gigabyte_is_refused_at_the_document_limit() {
    let answers: [fn() -> Answer; 2] =
        [|| Answer::Endless(b" "), || Answer::Claiming { length: 1 << 30, body: b"{}".to_vec() }];
    for answer in answers {
        let registry = HostileRegistry::start(
            move |_, path| if path == "/v2/" { Answer::Status(200) } else { answer() },
        );
        let digest = format!("sha256:{}", "d".repeat(64));
        let dir = tempfile::tempdir().unwrap();
        let (mut cmd, out) = pull_from(&registry, &digest, dir.path());
        let err = fails_in_bounded_time(&mut cmd);
        assert!(
            err.contains(&format!("the manifest {digest} is larger than {DOCUMENT_LIMIT} bytes")),
            "{err}"
        );
        assert!(!out.exists());
    }
}

/// A manifest whose `Content-Length` says more than comes before the connection closes, or
/// less than the manifest has.
#[test]
fn a_manifest_whose_length_lies_fails_the_pull() {
    let manifest = manifest_with_config(100).to_string().into_bytes();
    let digest = digest_of(&manifest);
    let length = manifest.len() as u64;
    let cases = [
        (length + 1000, "the transfer broke off".to_owned()),
        (
            length - 10,
            format!(
                "the registry sent a manifest with digest {}",
                digest_of(&manifest[..length as usize - 10])
            ),
        ),
    ];
    for (claimed, said) in cases {
        let body = manifest.clone();
        let registry = HostileRegistry::start(move |_, path| match path {
            "/v2/" => Answer::Status(200),
            _ => Answer::Claiming { length: claimed, body: body.clone() },
        });
        let dir = tempfile::tempdir().unwrap();
        let (mut cmd, out) = pull_from(&registry, &digest, dir.path());
        let err = fails_in_bounded_time(&mut cmd);
        assert!(err.contains(&said), "{said}:\n{err}");
        assert!(!out.exists());
    }
}

/// The size of the layer of [`serving_layer`]'s image: several writes of an endless answer.
const LAYER_SIZE: usize = 256 << 10;

/// The layer of [`serving_layer`]'s image, of `size` bytes.
fn layer_bytes(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

/// An image of one layer ([`layer_bytes`] of `size`) whose registry serves its manifest and
/// config as they are and answers for the layer `layer` (given its bytes); the registry, the
/// image's digest and the layer's.
fn serving_layer(
    size: usize,
    layer: impl Fn(Vec<u8>) -> Answer + Send + Sync + 'static,
) -> (HostileRegistry, String, String) {
    let bytes = layer_bytes(size);
    let layer_digest = digest_of(&bytes);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
    })
    .to_string()
    .into_bytes();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest_of(&config),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": bytes.len(),
        }],
    });
    let answered = layer_digest.clone();
    let (registry, digest) = serving(manifest, move |blob| match blob == answered {
        true => layer(bytes.clone()),
        false => Answer::Bytes(config.clone()),
    });
    (registry, digest, layer_digest)
}

/// Pulls [`serving_layer`]'s image, its layer answered with `layer`: the pull fails within
/// bounds and leaves nothing; its error and the layer's digest.
fn layer_fails_the_pull(layer: impl Fn(Vec<u8>) -> Answer + Send + Sync + 'static) -> (String, String) {
    let (registry, digest, layer) = serving_layer(LAYER_SIZE, layer);
    let dir = tempfile::tempdir().unwrap();
    let (mut cmd, out) = pull_from(&registry, &digest, dir.path());
    let err = fails_in_bounded_time(&mut cmd);
    assert!(!out.exists(), "the partly written {out:?} is left");
    (err, layer)
}

#[test]
fn a_redirect_loop_on_a_blob_fails_the_pull() {
    let (err, layer) = layer_fails_the_pull(|_| Answer::RedirectLoop);
    assert!(err.contains(&format!("fetching blob {layer}")), "{err}");
    assert!(err.contains("redirects in a loop (stowage gives up at 5 redirects)"), "{err}");
}

/// Only as many bytes as the manifest says the blob has are read of one that never ends.
#[test]
fn a_blob_without_end_is_cut_at_its_size() {
    let (err, layer) = layer_fails_the_pull(|_| Answer::Endless(b"endless"));
    assert!(
        err.contains(&format!("the registry sent other bytes for blob {layer}: they have digest")),
        "{err}"
    );
}

#[test]
fn a_blob_whose_digest_does_not_match_fails_the_pull() {
    let (err, layer) = layer_fails_the_pull(|mut bytes| {
        bytes.reverse();
        Answer::Bytes(bytes)
    });
    assert!(
        err.contains(&format!("the registry sent other bytes for blob {layer}: they have digest")),
        "{err}"
    );
}

/// A blob whose `Content-Length` says more than comes before the connection closes, or less
/// than the blob has.
#[test]
fn a_blob_whose_length_lies_fails_the_pull() {
    let size = LAYER_SIZE;
    let (err, layer) = layer_fails_the_pull(move |bytes| Answer::Claiming {
        length: size as u64,
        body: bytes[..size / 2].to_vec(),
    });
    assert!(err.contains(&format!("fetching blob {layer}")), "{err}");
    assert!(err.contains("the transfer broke off"), "{err}");
    let (err, layer) =
        layer_fails_the_pull(move |bytes| Answer::Claiming { length: size as u64 / 2, body: bytes });
    assert!(
        err.contains(&format!("the registry sent {} bytes of blob {layer}, which has {size}", size / 2)),
        "{err}"
    );
}

/// An index whose entry for the platform is an index: refused after two fetches, whether it
/// is another index or, as the registry claims, the same one (an index cannot hold its own
/// digest, but a registry may answer with it for the digest it lists).
#[test]
fn an_index_pointing_at_an_index_or_itself_is_refused() {
    let index = |digest: &str| {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": digest, "size": 300,
                "platform": { "os": "linux", "architecture": "amd64" },
            }],
        })
        .to_string()
        .into_bytes()
    };
    let listed = format!("sha256:{}", "e".repeat(64));
    let inner = index(&listed);
    let outer = index(&digest_of(&inner));
    let itself = index(&listed);
    let cases = [
        (
            vec![outer, inner],
            "an index lists another index for the platform; that is not supported".to_owned(),
        ),
        (
            vec![itself.clone()],
            format!("the registry sent a manifest with digest {} for {listed}", digest_of(&itself)),
        ),
    ];
    for (documents, said) in cases {
        let first = digest_of(&documents[0]);
        let registry = HostileRegistry::start(move |_, path| match path {
            "/v2/" => Answer::Status(200),
            _ => {
                let asked = path.rsplit('/').next().unwrap_or_default();
                let found = documents.iter().find(|d| digest_of(d) == asked);
                Answer::Bytes(found.unwrap_or(&documents[0]).clone())
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let (mut cmd, out) = pull_from(&registry, &first, dir.path());
        let err = fails_in_bounded_time(&mut cmd);
        assert!(err.contains(&said), "{said}:\n{err}");
        assert_eq!(registry.requests().iter().filter(|r| r.contains("/manifests/")).count(), 2);
        assert!(!out.exists());
    }
}

/// A full disk under the pulled image, met while a layer is fetched (it is larger than the
/// builder's buffer) : an error naming the output, nothing left of it.
#[test]
fn a_full_disk_fails_the_pull_naming_the_output() {
    let (registry, digest, _) = serving_layer(4 << 20, Answer::Bytes);
    let disk = support::disk::SmallDisk::new(64 << 10);
    let (mut cmd, out) = pull_from(&registry, &digest, disk.path());
    let err = fails_in_bounded_time(&mut cmd);
    assert!(err.contains(&format!("{}: No space left on device", out.display())), "{err}");
    assert!(!out.exists());
}

/// A registry serving [`serving_layer`]'s image whose layer stalls after one byte while the
/// switch is on, and comes whole once it is off; the switch, the image's digest and the
/// layer's.
fn stalling_until_switched_off() -> (HostileRegistry, Arc<AtomicBool>, String, String) {
    let stalled = Arc::new(AtomicBool::new(true));
    let stalling = stalled.clone();
    let (registry, digest, layer) = serving_layer(LAYER_SIZE, move |bytes| match stalling.load(SeqCst) {
        true => Answer::StallAfterOneByte { length: bytes.len() as u64 },
        false => Answer::Bytes(bytes),
    });
    (registry, stalled, digest, layer)
}

/// Starts `cmd`, waits until `registry` is asked for `layer` (once more than it was), runs
/// `before_kill`, and kills it with SIGKILL.
fn kill_while_fetching(
    cmd: &mut Command,
    registry: &HostileRegistry,
    layer: &str,
    before_kill: impl FnOnce(),
) {
    let asked = || registry.requests().iter().filter(|r| r.ends_with(layer)).count();
    let before = asked();
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let started = Instant::now();
    while asked() == before && started.elapsed() < BOUND {
        std::thread::sleep(Duration::from_millis(20));
    }
    before_kill();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(started.elapsed() < BOUND, "{cmd:?} never asked for the layer");
}

/// `pullImage`'s builder killed half way through a layer, then run again: the output is the
/// whole image, the same bytes as a pull that was never cut.
#[test]
fn a_pull_killed_half_way_is_replaced_whole_when_run_again() {
    let (registry, stalled, digest, layer) = stalling_until_switched_off();
    let dir = tempfile::tempdir().unwrap();
    let (mut cmd, out) = pull_from(&registry, &digest, dir.path());
    kill_while_fetching(&mut cmd, &registry, &layer, || ());
    stalled.store(false, SeqCst);
    support::run_ok(&mut cmd);
    let whole = tempfile::tempdir().unwrap();
    let (mut clean, clean_out) = pull_from(&registry, &digest, whole.path());
    support::run_ok(&mut clean);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&clean_out).unwrap());
}

/// `nix-build` of a `pullImage` killed half way through a layer: its output is not in the
/// store; built again, it is the whole image. Without the sandbox, the builder killed with it
/// had written part of the image at the output's own path in the store.
fn a_nix_build_of_a_pull_killed_half_way_completes_when_run_again(sandbox: &str) {
    let (registry, stalled, digest, layer) = stalling_until_switched_off();
    // The output's hash, from a pull that was never cut.
    stalled.store(false, SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let (mut clean, clean_out) = pull_from(&registry, &digest, dir.path());
    support::run_ok(&mut clean);
    let whole = std::fs::read(&clean_out).unwrap();
    let nix = TestNix::new();
    let expr = format!(
        r#"builtins.stowage.pullImage {{ imageName = "{}/team/app"; imageDigest = "{digest}";
           finalImageName = "team/app"; finalImageTag = "1"; name = "app.oci.tar"; arch = "amd64";
           sha256 = "{:x}"; }}"#,
        registry.address(),
        Sha256::digest(&whole)
    );
    let build = || {
        let mut cmd = nix.cmd("nix-build");
        cmd.args(["--no-out-link", "--option", "sandbox", sandbox, "-E", &expr]);
        cmd
    };
    let out = nix.eval_raw(&format!("({expr}).outPath"));
    stalled.store(true, SeqCst);
    let building = || assert!(!builders_of(&out).is_empty(), "no process is seen building {out}");
    kill_while_fetching(&mut build(), &registry, &layer, building);
    let valid = nix.cmd("nix-store").args(["--check-validity", &out]).output().unwrap();
    assert!(!valid.status.success(), "{out} is in the store after the kill");
    stalled.store(false, SeqCst);
    let built = support::run_ok(&mut build());
    assert_eq!(String::from_utf8_lossy(&built.stdout).trim(), out);
    assert_eq!(std::fs::read(&out).unwrap(), whole);
    // A sandboxed first builder may still wait for its layer (Nix 2.8 does not kill it with
    // `nix-build`; 2.26 does, and one without the sandbox dies with it): the registry's end lets
    // it fail, and whatever it does on the way out must leave the second build's output as it
    // was.
    drop(registry);
    let ended = Instant::now();
    while !builders_of(&out).is_empty() {
        assert!(ended.elapsed() < BOUND, "the first builder outlived the registry by {BOUND:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(std::fs::read(&out).unwrap(), whole, "{out} after the first builder ended");
    let check = nix.cmd("nix-store").args(["--verify-path", &out]).output().unwrap();
    assert!(check.status.success(), "{out}: {}", String::from_utf8_lossy(&check.stderr));
}

/// The processes building `out`: those whose working folder, the build's, holds the structured
/// attributes naming it (read through `/proc`, inside the sandbox too).
fn builders_of(out: &str) -> Vec<u32> {
    let pids = std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok());
    pids.filter(|pid: &u32| {
        let attrs = std::fs::read(format!("/proc/{pid}/cwd/.attrs.json")).unwrap_or_default();
        attrs.windows(out.len()).any(|w| w == out.as_bytes())
    })
    .collect()
}

#[test]
fn a_sandboxed_nix_build_of_a_pull_killed_half_way_completes_when_run_again() {
    a_nix_build_of_a_pull_killed_half_way_completes_when_run_again("true");
}

#[test]
fn an_unsandboxed_nix_build_of_a_pull_killed_half_way_completes_when_run_again() {
    a_nix_build_of_a_pull_killed_half_way_completes_when_run_again("false");
}

/// What Debian's distribution answers when two pushes of one blob end at the same moment (seen
/// in tests/concurrency.rs): a `500` to a blob's `HEAD`, and a manifest refused once for a blob
/// it no longer knows. The push asks again and succeeds; a registry that goes on refusing is
/// an error that says so.
#[test]
fn a_registry_losing_a_blob_to_a_concurrent_push_is_asked_again() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let registry_with = |refusals: usize| {
        let (heads, puts) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        HostileRegistry::start(move |method, path| match (method, path) {
            ("GET", "/v2/") => Answer::Status(200),
            // the first two asks for each blob fail, as the registry does mid-commit
            ("HEAD", _) if heads.fetch_add(1, Ordering::SeqCst) % 3 < 2 => Answer::Status(500),
            ("HEAD", _) => Answer::Status(404),
            ("POST", _) => Answer::WithHeaders(202, "Location: /v2/team/app/blobs/uploads/1\r\n".into()),
            ("PUT", p)
                if p.contains("/manifests/sha256:") && puts.fetch_add(1, Ordering::SeqCst) < refusals =>
            {
                Answer::Json(
                    400,
                    r#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#,
                )
            }
            ("PUT", _) => Answer::Status(201),
            _ => Answer::Status(404),
        })
    };
    let home = tempfile::tempdir().unwrap();
    let registry = registry_with(1);
    let out = push_to(&registry, home.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("MANIFEST_BLOB_UNKNOWN blob unknown to registry; checking its blobs again"),
        "{stderr}"
    );
    let tagged = |r: &HostileRegistry| r.requests().iter().any(|r| r == "PUT /v2/team/app/manifests/1");
    assert!(tagged(&registry));

    let registry = registry_with(usize::MAX);
    let err = fails_in_bounded_time(&mut push_to(&registry, home.path()));
    assert!(err.contains("putting the manifest: 400") && err.contains("MANIFEST_BLOB_UNKNOWN"), "{err}");
    assert!(!tagged(&registry), "nothing is tagged");
}

//! Images built on a remote builder: an sshd of the test's own on 127.0.0.1 (Debian's), whose
//! `nix-daemon --stdio` serves another store with the same store root (`local?root=…`: its files
//! elsewhere), is the local Nix's only builder (`--builders ssh-ng://…`, `--max-jobs 0`: a local
//! build is an error). Every image derivation — a buildLayer layer, the customisation layer
//! (scripts), the plan, the archive — is built there, and the archive is byte for byte the one a
//! local build makes. A pull (a fixed-output derivation) is fetched there too. Scripts given no
//! `shell` are refused by a builder whose Nix puts no shell into its sandbox, naming `shell`.

mod support;

use sha2::{Digest, Sha256};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::images::{expr, skopeo_config, tar_files, Podman};
use support::registry::Registry;
use support::{nix_program, reported_hash, run_ok, TestNix};

/// An sshd on 127.0.0.1 taking the test's key for root, stopped when dropped.
struct Sshd {
    dir: tempfile::TempDir,
    daemon: Child,
    port: u16,
    /// Whether the test made sshd's privilege separation folder (and removes it).
    made_run_dir: bool,
}

const RUN_DIR: &str = "/run/sshd";

impl Sshd {
    fn start() -> Sshd {
        let dir = tempfile::Builder::new().prefix("stowage-sshd-").tempdir().unwrap();
        let key = |name: &str| {
            run_ok(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                    .arg(dir.path().join(name)),
            );
        };
        key("host_key");
        key("client_key");
        std::fs::copy(dir.path().join("client_key.pub"), dir.path().join("authorized_keys")).unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            ),
        )
        .unwrap();
        let made_run_dir = !Path::new(RUN_DIR).exists();
        if made_run_dir {
            std::fs::create_dir(RUN_DIR).unwrap();
        }
        let daemon = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.path().join("sshd_config"))
            .stderr(std::fs::File::create(dir.path().join("sshd.log")).unwrap())
            .spawn()
            .unwrap();
        let sshd = Sshd { dir, daemon, port, made_run_dir };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "sshd did not start: {}", sshd.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        sshd
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// `NIX_SSHOPTS` for this sshd: its port, and no host key checks (its key is new).
    fn ssh_options(&self) -> String {
        format!(
            "-p {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
            self.port
        )
    }
}

impl Drop for Sshd {
    /// Stops sshd, also when the test panicked: `make test` leaves no process behind.
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        if self.made_run_dir {
            let _ = std::fs::remove_dir(RUN_DIR);
        }
    }
}

/// A builder machine: a store with the local store's root, its files under its own folder,
/// served by `nix-daemon --stdio` (the program ssh-ng runs) with the test's sandbox settings.
struct Builder {
    dir: tempfile::TempDir,
}

impl Builder {
    fn new(store_dir: &Path) -> Builder {
        let dir = tempfile::Builder::new().prefix("stowage-remote-").tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("etc")).unwrap();
        std::fs::write(
            d.join("etc/nix.conf"),
            format!(
                "store = local?root={}/root\nsandbox = true\nsandbox-paths = /bin/busybox\n\
                 substituters =\nbuild-users-group =\n",
                d.display()
            ),
        )
        .unwrap();
        let program = d.join("nix-daemon");
        std::fs::write(
            &program,
            format!(
                "#!/bin/sh\nexport NIX_STORE_DIR={} NIX_CONF_DIR={d}/etc NIX_USER_CONF_FILES={d}/etc/none HOME={d}\n\
                 exec {} \"$@\"\n",
                store_dir.display(),
                nix_program("nix-daemon").display(),
                d = d.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        Builder { dir }
    }

    /// Whether the builder's store holds a file named as store path `path` (where a chroot
    /// store keeps its files differs between Nix releases).
    fn holds(&self, path: &Path) -> bool {
        let name = path.file_name().unwrap();
        let found = run_ok(Command::new("find").arg(self.dir.path().join("root")).arg("-name").arg(name));
        !found.stdout.is_empty()
    }

    /// The `builders` entry for it, through `sshd`.
    fn entry(&self, sshd: &Sshd) -> String {
        format!(
            "ssh-ng://root@127.0.0.1?remote-program={} {} {} 2",
            self.dir.path().join("nix-daemon").display(),
            std::env::consts::ARCH.to_owned() + "-linux",
            sshd.key().display()
        )
    }
}

/// `nix-build EXPR` by `nix` with `builder` (through `sshd`) its only builder, and `options`.
fn remote_build_with(nix: &TestNix, sshd: &Sshd, builder: &Builder, expr: &str, options: &[&str]) -> Output {
    nix.cmd("nix-build")
        .env("NIX_SSHOPTS", sshd.ssh_options())
        .args(["--no-out-link", "--max-jobs", "0", "--option", "builders", &builder.entry(sshd)])
        .args(["--option", "builders-use-substitutes", "false"])
        .args(["--option", "sandbox", "true", "--option", "sandbox-paths", "/bin/busybox"])
        .args(options)
        .args(["-E", expr])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// [`remote_build_with`] the test's sandbox options alone.
fn remote_build(nix: &TestNix, sshd: &Sshd, builder: &Builder, expr: &str) -> Output {
    remote_build_with(nix, sshd, builder, expr, &[])
}

/// Asserts that the build `log` built the derivation whose name ends in `derivation` remotely.
fn assert_built_remotely(log: &str, derivation: &str) {
    let built_there =
        log.lines().any(|l| l.contains(derivation) && l.contains("on 'ssh-ng://root@127.0.0.1"));
    assert!(built_there, "{derivation} was not built on the remote builder:\n{log}");
}

const IMAGE: &str = r#"s.buildLayeredImage {
    name = "remote"; tag = "1"; compressor = "none"; contents = [ busybox (app "1") ];
    layers = [ (s.buildLayer { deps = [ lib3 ]; }) ];
    shell = busybox; extraCommands = "mkdir -p etc && echo made remotely > etc/made";
    fakeRootCommands = "chown 7:8 etc/made";
    config.Cmd = [ "/bin/sh" "-c" "cat /etc/made; stat -c %u:%g /etc/made" ];
  }"#;

#[test]
fn image_derivations_build_on_a_remote_builder_to_the_same_bytes() {
    let sshd = Sshd::start();
    let root = tempfile::Builder::new().prefix("stowage-remote-root-").tempdir().unwrap();
    let nix = TestNix::new_with_root(root.path());
    let builder = Builder::new(&nix.store_dir());
    let out = remote_build(&nix, &sshd, &builder, &expr(IMAGE));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the remote build failed:\n{log}\nsshd:\n{}", sshd.log());
    let archive = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    for derivation in ["-layer.drv", "-customisation-remote.drv", "-stream-remote.drv", "-remote.tar.drv"] {
        assert_built_remotely(&log, derivation);
    }
    assert!(builder.holds(&archive), "the builder's store holds the archive");
    assert_eq!(skopeo_config(&archive, 0)["config"]["Cmd"][0], "/bin/sh");
    let podman = Podman::new();
    assert_eq!(podman.load(&archive), ["remote:1"]);
    assert_eq!(podman.run("remote:1"), "made remotely\n7:8\n");
    let remote_bytes = std::fs::read(&archive).unwrap();
    drop(nix);

    // the same image built here, by a store with the same root
    let local = TestNix::new_with_root(root.path());
    let built_here = local.build(&expr(IMAGE));
    assert_eq!(built_here, archive, "the same store path");
    assert!(
        std::fs::read(&built_here).unwrap() == remote_bytes,
        "the remote build made other bytes than a local one"
    );
}

#[test]
fn a_pull_is_fetched_by_the_remote_builder() {
    let registry = Registry::start();
    let sshd = Sshd::start();
    let nix = TestNix::new();
    let builder = Builder::new(&nix.store_dir());
    let image = nix
        .build(&expr(r#"s.streamLayeredImage { name = "team/app"; tag = "v1"; contents = [ (app "1") ]; }"#));
    let raw = registry.push(&image, "team/app:v1", &[]);
    let digest = format!("sha256:{:x}", Sha256::digest(&raw));
    let pull = |hash: &str| {
        expr(&format!(
            r#"s.pullImage {{ imageName = "{}/team/app"; imageDigest = "{digest}"; sha256 = "{hash}"; name = "pulled.oci.tar"; }}"#,
            registry.address()
        ))
    };
    // the first try has a wrong hash: the builder says which it got
    let out =
        remote_build(&nix, &sshd, &builder, &pull("0000000000000000000000000000000000000000000000000000"));
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert_built_remotely(&log, "-pulled.oci.tar.drv");
    let out = remote_build(&nix, &sshd, &builder, &pull(&reported_hash(&log)));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert_built_remotely(&log, "-pulled.oci.tar.drv");
    let pulled = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert!(builder.holds(&pulled), "the builder's store holds the pull");
    let files = tar_files(&std::fs::read(&pulled).unwrap());
    let index = &files.iter().find(|(name, _)| name == "index.json").unwrap().1;
    let index: serde_json::Value = serde_json::from_slice(index).unwrap();
    assert_eq!(index["manifests"][0]["annotations"]["io.stowage.image.digest"], digest.as_str());
    let manifest = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
    assert!(
        files.iter().any(|(name, bytes)| *name == manifest && *bytes == raw),
        "the registry's manifest, byte for byte"
    );
    run_ok(Command::new("skopeo").arg("inspect").arg(format!("oci-archive:{}", pulled.display())));
}

#[test]
fn scripts_without_a_shell_are_refused_by_a_builder_that_has_none() {
    let sshd = Sshd::start();
    let nix = TestNix::new();
    let builder = Builder::new(&nix.store_dir());
    // This machine's Nix has a sandbox shell; the builder's (sandbox-paths = /bin/busybox) has not.
    let here = ["--option", "sandbox-paths", "/bin/busybox /bin/sh=/bin/busybox"];
    let image = expr(
        r#"s.buildLayeredImage { name = "noshell"; contents = [ busybox ]; extraCommands = "mkdir etc"; }"#,
    );
    let out = remote_build_with(&nix, &sshd, &builder, &image, &here);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{log}");
    assert_built_remotely(&log, "-customisation-noshell.drv");
    assert!(
        log.contains(
            "argument 'shell' is needed to run extraCommands: this Nix puts no shell into its sandbox"
        ),
        "{log}"
    );
}

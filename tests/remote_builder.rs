//! Images built on a remote builder: an sshd of the test's own on 127.0.0.1 (Debian's), whose
//! `nix-daemon --stdio` serves another store with the same store root (`local?root=…`: its files
//! elsewhere), is the local Nix's only builder (`--builders ssh-ng://…`, `--max-jobs 0`: a local
//! build is an error). Every image derivation — a buildLayer layer, the customisation layer
//! (scripts), the plan, the archive — is built there, and the archive is byte for byte the one a
//! local build makes.

mod support;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::images::{expr, skopeo_config, Podman};
use support::{nix_program, run_ok, TestNix};

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
    let out = nix
        .cmd("nix-build")
        .env("NIX_SSHOPTS", sshd.ssh_options())
        .args(["--no-out-link", "--max-jobs", "0", "--option", "builders", &builder.entry(&sshd)])
        .args(["--option", "builders-use-substitutes", "false"])
        .args(["--option", "sandbox", "true", "--option", "sandbox-paths", "/bin/busybox"])
        .args(["-E", &expr(IMAGE)])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the remote build failed:\n{log}\nsshd:\n{}", sshd.log());
    let archive = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    for derivation in ["-layer.drv", "-customisation-remote.drv", "-stream-remote.drv", "-remote.tar.drv"] {
        let built_there =
            log.lines().any(|l| l.contains(derivation) && l.contains("on 'ssh-ng://root@127.0.0.1"));
        assert!(built_there, "{derivation} was not built on the remote builder:\n{log}");
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

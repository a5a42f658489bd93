//! Checking images with independent tools: skopeo (reads every layer, checks diff_ids) and
//! podman (loads into a fresh store, runs with runc), each in a fresh temporary store.

use super::run_ok;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Test derivations: Debian's static busybox as `bin/{busybox,sh}`, and small libraries and
/// applications that refer to each other.
/// `@STOWAGE@` is stowage's library, as the mode under test gives it ([`super::stowage`]).
const PRELUDE: &str = r#"
  let
    s = @STOWAGE@;
    sh = name: script: derivation {
      inherit name;
      system = builtins.currentSystem;
      builder = "/bin/busybox";
      args = [ "sh" "-c" script ];
    };
    busybox = sh "busybox" "/bin/busybox mkdir -p $out/bin && /bin/busybox cp /bin/busybox $out/bin/ && /bin/busybox ln -s busybox $out/bin/sh";
    # a library of `size` bytes that refers to `dep` (if any)
    lib = name: size: dep: sh name "/bin/busybox mkdir $out && /bin/busybox head -c ${toString size} /dev/zero > $out/data && echo '${dep}' > $out/dep";
    lib1 = lib "lib1" 40000 "";
    lib2 = lib "lib2" 30000 lib1;
    lib3 = lib "lib3" 20000 lib2;
    lib4 = lib "lib4" 10000 lib3;
    app = version: sh "app" "/bin/busybox mkdir $out && echo '${version} ${lib4}' > $out/app";
  in
"#;

/// `body` evaluated after [`PRELUDE`].
pub fn expr(body: &str) -> String {
    expr_with(&super::stowage(), body)
}

/// `body` evaluated after [`PRELUDE`], where `s` is `stowage` (an expression).
pub fn expr_with(stowage: &str, body: &str) -> String {
    format!("{} {body}", PRELUDE.replace("@STOWAGE@", stowage))
}

/// `skopeo copy docker-archive:ARCHIVE[:@index] oci:…` into a fresh layout, then the config
/// skopeo reads back from it.
pub fn skopeo_config(archive: &Path, index: usize) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let layout = format!("oci:{}:img", dir.path().join("oci").display());
    run_ok(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("docker-archive:{}:@{index}", archive.display()),
        &layout,
    ]));
    let out = run_ok(Command::new("skopeo").args(["inspect", "--config", &layout]));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `skopeo copy docker-archive:ARCHIVE oci:…` into a fresh layout, which umoci unpacks into a
/// runtime bundle: the folder holding both (removed when dropped), and the bundle's root.
pub fn umoci_unpack(archive: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("oci");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "-q", &format!("docker-archive:{}", archive.display())])
            .arg(format!("oci:{}:img", layout.display())),
    );
    let bundle = dir.path().join("bundle");
    run_ok(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:img", layout.display()))
            .arg(&bundle),
    );
    let root = bundle.join("rootfs");
    (dir, root)
}

/// A podman with its own fresh store, removed when dropped.
pub struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    pub fn new() -> Podman {
        Podman { dir: tempfile::Builder::new().prefix("stowage-podman-").tempdir().unwrap() }
    }

    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(self.dir.path().join("store"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]);
        cmd
    }

    /// Sets `cmd`'s environment so that a podman it runs uses this store and settings
    /// (`CONTAINERS_STORAGE_CONF`, `CONTAINERS_CONF`).
    pub fn configure(&self, cmd: &mut Command) {
        let storage = self.dir.path().join("storage.conf");
        std::fs::write(
            &storage,
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                self.dir.path().join("store").display(),
                self.dir.path().join("run").display()
            ),
        )
        .unwrap();
        let containers = self.dir.path().join("containers.conf");
        std::fs::write(&containers, "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n")
            .unwrap();
        cmd.env("CONTAINERS_STORAGE_CONF", storage).env("CONTAINERS_CONF", containers);
    }

    /// The `name:tag`s in the store.
    pub fn images(&self) -> Vec<String> {
        let out = run_ok(self.cmd().args(["images", "--format", "{{.Repository}}:{{.Tag}}"]));
        let mut tags: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.trim_start_matches("localhost/").to_owned())
            .collect();
        tags.sort();
        tags
    }

    /// Loads `archive`; returns the `name:tag`s now in the store.
    pub fn load(&self, archive: &Path) -> Vec<String> {
        run_ok(self.cmd().args(["load", "-q", "-i"]).arg(archive));
        self.images()
    }

    /// Where the store holds the files of `image` (as one tree, the layers applied): `podman
    /// image mount`. Unmount it with [`Podman::unmount`].
    pub fn mount(&self, image: &str) -> PathBuf {
        let out = run_ok(self.cmd().args(["image", "mount", image]));
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    }

    pub fn unmount(&self, image: &str) {
        run_ok(self.cmd().args(["image", "unmount", image]));
    }

    pub fn image_exists(&self, id: &str) -> bool {
        self.cmd().args(["image", "exists", id]).status().unwrap().success()
    }

    /// Runs `image` (runc, no network, explicit limits: this host's containers need them) and
    /// returns its stdout.
    pub fn run(&self, image: &str) -> String {
        let out = run_ok(self.cmd().args([
            "--runtime",
            "runc",
            "run",
            "--rm",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            image,
        ]));
        String::from_utf8(out.stdout).unwrap()
    }
}

/// A Docker Engine of its own (Debian's `dockerd`, vfs storage, no networking of its own) in a
/// temporary folder, stopped and removed when dropped.
pub struct Docker {
    dir: tempfile::TempDir,
    daemon: std::process::Child,
}

/// Debian's Docker client, which matches its engine (another may be earlier on `PATH`).
const DOCKER: &str = "/usr/bin/docker";

impl Docker {
    pub fn start() -> Docker {
        let dir = tempfile::Builder::new().prefix("stowage-docker-").tempdir().unwrap();
        let socket = dir.path().join("sock");
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let daemon = Command::new("dockerd")
            .args(["--storage-driver", "vfs", "--iptables=false", "--bridge=none"])
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd (Debian's docker.io, installed by make setup) starts");
        let docker = Docker { dir, daemon };
        for _ in 0..300 {
            if docker.cmd().arg("version").output().is_ok_and(|o| o.status.success()) {
                return docker;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(docker.dir.path().join("log")).unwrap_or_default();
        panic!("dockerd did not answer within 30 s; its log:\n{log}");
    }

    /// The engine's address, as `DOCKER_HOST` takes it.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("sock").display())
    }

    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(DOCKER);
        cmd.arg("-H").arg(format!("unix://{}", self.dir.path().join("sock").display()));
        cmd
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        // SIGTERM lets dockerd stop its containerd and unmount what it mounted.
        let _ = Command::new("kill").arg(self.daemon.id().to_string()).status();
        for _ in 0..100 {
            if self.daemon.try_wait().is_ok_and(|done| done.is_some()) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// The entries of a tar file: name → bytes.
pub fn tar_files(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            (name, data)
        })
        .collect()
}

/// A layer tarball of entries named byte for byte (name, kind, link target): the names go into
/// the header fields as they are, where tar itself would refuse some (`../x`).
pub fn raw_layer(entries: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut layer = tar::Builder::new(Vec::new());
    for &(name, kind, link) in entries {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        header.set_entry_type(kind);
        header.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        header.set_size(0);
        header.set_mtime(1);
        header.set_cksum();
        layer.append(&header, std::io::empty()).unwrap();
    }
    layer.into_inner().unwrap()
}

/// A docker-archive of one amd64 image tagged `tag`, with `runtime` as its config's `config`,
/// whose layers (bottom first) are `layers`: each stored once as `<diff_id>/layer.tar`, however
/// often it is listed.
pub fn docker_archive(tag: &str, runtime: Value, layers: &[&[u8]]) -> Vec<u8> {
    let hex = |bytes: &[u8]| format!("{:x}", Sha256::digest(bytes));
    let diff_ids: Vec<String> = layers.iter().map(|l| format!("sha256:{}", hex(l))).collect();
    let config = json!({ "architecture": "amd64", "os": "linux", "config": runtime,
        "rootfs": { "type": "layers", "diff_ids": diff_ids } })
    .to_string();
    let config_file = format!("{}.json", hex(config.as_bytes()));
    let files: Vec<String> = layers.iter().map(|l| format!("{}/layer.tar", hex(l))).collect();
    let manifest = json!([{ "Config": config_file, "RepoTags": [tag], "Layers": files }]).to_string();
    let mut stored = BTreeSet::new();
    let mut archive = tar::Builder::new(Vec::new());
    let layer_files = files.iter().zip(layers).filter(|(file, _)| stored.insert(*file));
    let entries = layer_files
        .map(|(file, bytes)| (file.as_str(), *bytes))
        .chain([(config_file.as_str(), config.as_bytes()), ("manifest.json", manifest.as_bytes())]);
    for (name, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(bytes.len() as u64);
        header.set_mtime(1);
        archive.append_data(&mut header, name, bytes).unwrap();
    }
    archive.into_inner().unwrap()
}

/// A docker-archive's manifest (first image) and config.
pub fn manifest_and_config(archive: &[u8]) -> (Value, Value) {
    let files = tar_files(archive);
    let get = |name: &str| &files.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no {name}")).1;
    let manifest: Value = serde_json::from_slice(get("manifest.json")).unwrap();
    let config: Value = serde_json::from_slice(get(manifest[0]["Config"].as_str().unwrap())).unwrap();
    (manifest[0].clone(), config)
}

/// The headers of the entries of layer `index` of the archive's first image (negative: from the
/// top), with their names, and how many layers the image has.
pub fn layer_headers(archive: &Path, index: isize) -> (Vec<(String, tar::Header)>, usize) {
    let bytes = std::fs::read(archive).unwrap();
    let (manifest, _) = manifest_and_config(&bytes);
    let layers = manifest["Layers"].as_array().unwrap();
    let at = if index < 0 { layers.len() as isize + index } else { index } as usize;
    let name = layers[at].as_str().unwrap().to_owned();
    let layer = tar_files(&bytes).into_iter().find(|(n, _)| *n == name).unwrap().1;
    let headers = tar::Archive::new(layer.as_slice())
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.path().unwrap().to_string_lossy().into_owned(), e.header().clone())
        })
        .collect();
    (headers, layers.len())
}

/// How many layers the (first) image of a stream script's plan has.
pub fn layer_count_of_plan(stream: &Path) -> usize {
    let text = std::fs::read_to_string(stream).unwrap();
    let plan: Value = serde_json::from_str(text.split_once('\n').unwrap().1).unwrap();
    plan["images"][0]["layers"].as_array().unwrap().len()
}

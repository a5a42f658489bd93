//! A file of more than 8 GiB, where tar's octal size field ends: its entry in the layer, and
//! the layer's entry in the image archive, need GNU's base-256 size, which Go's archive/tar
//! (Docker, podman, skopeo) reads. The file (sparse in the store, but every form written holds
//! all its bytes) comes through whole — its size and its last bytes — in the image archive, in an
//! OCI archive, and pushed to a registry and pulled back by pullImage; each is loaded into a
//! fresh podman store, which applies the layer itself.

mod support;

use std::path::Path;
use std::process::Command;
use support::images::{expr, Podman};
use support::registry::Registry;
use support::{run_ok, TestNix};

/// 8 GiB of zeros (a hole), then this.
const END: &str = "end\n";
const SIZE: u64 = (8 << 30) + END.len() as u64;

const BIG: &str =
    r#"(sh "big" "/bin/busybox mkdir $out && /bin/busybox truncate -s 8G $out/big && echo end >> $out/big")"#;

/// Loads `archive` into a fresh podman store and checks the big file in it.
fn check_loaded(archive: &Path, image: &str, file: &Path) {
    let podman = Podman::new();
    let tags = podman.load(archive);
    assert!(tags.iter().any(|t| t == image), "{}: {tags:?}", archive.display());
    let root = podman.mount(image);
    let inside = root.join(file.strip_prefix("/").unwrap());
    let size = std::fs::metadata(&inside).map(|m| m.len());
    let mut end = vec![0; END.len()];
    let tail = std::fs::File::open(&inside)
        .and_then(|f| std::os::unix::fs::FileExt::read_exact_at(&f, &mut end, SIZE - END.len() as u64));
    podman.unmount(image);
    assert_eq!(size.unwrap(), SIZE, "{}", archive.display());
    tail.unwrap();
    assert_eq!(end, END.as_bytes(), "{}", archive.display());
}

#[test]
fn a_file_over_8_gib_comes_through_every_form_whole() {
    let nix = TestNix::new();
    let big = nix.build(&expr(BIG)).join("big");
    assert_eq!(std::fs::metadata(&big).unwrap().len(), SIZE);

    let archive = nix.build(&expr(&format!(
        r#"s.buildLayeredImage {{ name = "big"; tag = "1"; compressor = "none"; contents = [ {BIG} ]; }}"#
    )));
    check_loaded(&archive, "big:1", &big);

    let oci = nix.build(&expr(&format!(
        r#"s.buildLayeredImage {{ name = "big"; tag = "2"; format = "oci-archive"; contents = [ {BIG} ]; }}"#
    )));
    check_loaded(&oci, "big:2", &big);

    // pushed from its stream, then pulled back as a fixed-output derivation
    let stream = nix.build(&expr(&format!(
        r#"s.streamLayeredImage {{ name = "big"; tag = "3"; contents = [ {BIG} ]; }}"#
    )));
    let registry = Registry::start();
    let dest = format!("docker://{}/big:3", registry.address());
    let cache = tempfile::tempdir().unwrap();
    let builder = std::env::var_os("STOWAGE_BUILDER").expect("STOWAGE_BUILDER names the built stowage");
    run_ok(Command::new(builder).arg("push").arg(&stream).arg(&dest).env("XDG_CACHE_HOME", cache.path()));
    let raw = run_ok(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &dest])).stdout;
    let digest = format!("sha256:{:x}", <sha2::Sha256 as sha2::Digest>::digest(&raw));
    let pull = |hash: &str| {
        expr(&format!(
            r#"s.pullImage {{ imageName = "{}/big"; imageDigest = "{digest}"; sha256 = "{hash}";
                 finalImageName = "big"; finalImageTag = "4"; }}"#,
            registry.address()
        ))
    };
    let err = nix.build_error(&pull("0000000000000000000000000000000000000000000000000000"));
    let hash = err
        .lines()
        .find(|l| l.trim_start().starts_with("got:"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("{err}"))
        .to_owned();
    let pulled = nix.build(&pull(&hash));
    check_loaded(&pulled, "big:4", &big);
}

//! Images whose bytes are pinned: the sha256 of each archive, built from fixed inputs into a
//! store at a fixed root, is written down here. A change to the code that changes image bytes —
//! a restructuring that should not, or a format change that must be announced in CHANGELOG.md —
//! fails this test first. The inputs avoid anything of the machine's (no copy of its busybox in
//! an image; a busybox only runs scripts), so the digests hold on any machine, for both Nix
//! releases and both modes.

mod support;

use sha2::{Digest, Sha256};
use std::path::Path;
use support::images::expr;
use support::TestNix;

/// The store root: fixed, since store paths are part of an image's bytes.
const ROOT: &str = "/tmp/stowage-pinned-images";

/// Removes [`ROOT`] when the test ends, also when it fails.
struct Root;

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chmod").args(["-R", "u+w", ROOT]).status();
        let _ = std::fs::remove_dir_all(ROOT);
    }
}

/// Each image: a name, the expression, and the sha256 of its archive.
const PINNED: &[(&str, &str, &str)] = &[
    (
        "layered on a stowage base, with scripts and config",
        r#"s.buildLayeredImage { name = "pinned/derived"; tag = "1"; compressor = "none";
             fromImage = s.buildLayeredImage { name = "pinned/base"; tag = "1"; contents = [ lib1 ]; };
             contents = [ lib3 (app "1") ]; maxLayers = 4; shell = busybox;
             extraCommands = "mkdir -p etc && echo made > etc/made"; fakeRootCommands = "chown 7:8 etc/made";
             config = { Cmd = [ "/app" ]; Env = [ "A=1" "B=2" "A=3" ]; WorkingDir = "/etc"; }; }"#,
        "bcce9aff58a6c7e57480b08811e76f9e4604ed8ce0737dfaef2807a15bdb5444",
    ),
    (
        "buildImage with runAsRoot",
        r#"s.buildImage { name = "pinned/single"; tag = "2"; compressor = "none"; copyToRoot = [ lib2 ];
             shell = busybox; runAsRoot = "mkdir -p /srv && echo root > /srv/who && chown 5:6 /srv/who";
             config.Env = [ "PATH=/bin" ]; }"#,
        "527e5fb9df22d896fe22775cf065be3823fd08a0cfcc9b377be6e1cfb16d3635",
    ),
    (
        "an OCI index of two platforms",
        r#"s.buildImageIndex { name = "pinned/multi"; tag = "3"; images = [
             (s.buildLayeredImage { name = "pinned/multi"; tag = "3"; architecture = "amd64"; contents = [ lib1 ]; })
             (s.streamLayeredImage { name = "pinned/multi"; tag = "3"; architecture = "arm64"; contents = [ lib4 ]; }) ]; }"#,
        "3f93f3e2ac6bed87762090d5a37f6fefb6c3f2862ee4f45044aeb1f6531617a7",
    ),
];

#[test]
fn image_bytes_are_pinned() {
    let _root = Root;
    let nix = TestNix::new_with_root(Path::new(ROOT));
    let mut wrong = Vec::new();
    for (what, body, pinned) in PINNED {
        let archive = nix.build(&expr(body));
        let digest = format!("{:x}", Sha256::digest(std::fs::read(&archive).unwrap()));
        if digest != *pinned {
            wrong.push(format!("{what}: sha256 {digest}, pinned {pinned} ({})", archive.display()));
        }
    }
    assert!(wrong.is_empty(), "image bytes changed:\n{}", wrong.join("\n"));
}

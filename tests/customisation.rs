//! Customisation scripts (`extraCommands`, `fakeRootCommands`, `enableFakechroot`) built by a
//! real `nix-build` with the plugin — in the sandbox, unprivileged — and the images they make
//! checked by skopeo and podman, and run.

mod support;

use support::images::{expr, manifest_and_config, skopeo_config, tar_files, Podman};
use support::{nix_str, TestNix};

/// (name, mode, uid, gid) of every entry of the image's last layer, with the layer's bytes.
fn last_layer(archive: &std::path::Path) -> (Vec<(String, u32, u64, u64)>, Vec<u8>) {
    let bytes = std::fs::read(archive).unwrap();
    let (manifest, _) = manifest_and_config(&bytes);
    let last = manifest["Layers"].as_array().unwrap().last().unwrap().as_str().unwrap().to_owned();
    let layer = tar_files(&bytes).into_iter().find(|(n, _)| *n == last).unwrap().1;
    let entries = tar::Archive::new(layer.as_slice())
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
            )
        })
        .collect();
    (entries, layer)
}

fn entry<'a>(entries: &'a [(String, u32, u64, u64)], name: &str) -> &'a (String, u32, u64, u64) {
    entries.iter().find(|e| e.0 == name).unwrap_or_else(|| panic!("no {name} in {entries:?}"))
}

const CUSTOMISED: &str = r#"{
    name = "custom"; tag = "t"; compressor = "none";
    contents = [ busybox ];
    shell = busybox;
    extraCommands = ''
      mkdir -p tmp; chmod 1777 tmp
      printf '%s\n' "it's" '$HOME' "(a) \"b\"" > quoted
    '';
    # busybox's chown is statically linked: no LD_PRELOAD could fake it
    fakeRootCommands = ''
      mkdir -p home/user; echo hi > home/user/f
      chown 1000:1000 home/user home/user/f
      chown 33 tmp; chown 0 tmp
    '';
    config.Cmd = [ "/bin/sh" "-c" "stat -c '%a %u' /tmp; stat -c '%u:%g %n' /home/user /home/user/f; cat /quoted" ];
  }"#;

#[test]
fn scripts_shape_the_customisation_layer() {
    let nix = TestNix::new();
    let archive = nix.build(&expr(&format!("s.buildLayeredImage {CUSTOMISED}")));
    let (entries, _) = last_layer(&archive);
    assert_eq!(entry(&entries, "tmp/").1, 0o1777);
    assert_eq!(entry(&entries, "tmp/").2, 0);
    assert_eq!(entry(&entries, "home/user/").2, 1000);
    assert_eq!(entry(&entries, "home/user/f").2, 1000);
    assert_eq!(entry(&entries, "home/user/f").3, 1000);
    // the merged contents are there as without scripts
    assert!(entries.iter().any(|e| e.0 == "bin/sh"), "{entries:?}");

    skopeo_config(&archive, 0);
    let podman = Podman::new();
    podman.load(&archive);
    assert_eq!(
        podman.run("custom:t"),
        "1777 0\n1000:1000 /home/user\n1000:1000 /home/user/f\nit's\n$HOME\n(a) \"b\"\n"
    );
}

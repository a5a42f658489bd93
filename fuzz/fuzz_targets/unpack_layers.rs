//! Feeds layer tarballs to `script::root::unpack_layers`, which applies them, whiteouts and all,
//! into an image root on disk for `buildImage`'s scripts; and checks that nothing was written
//! outside the root. The input is a lower and an upper layer: the first two bytes (little
//! endian) are the lower layer's length, the rest after it the upper layer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::fs;
use std::path::Path;
use stowage_core::format::compress::Compression;
use stowage_core::format::digest::Digest;
use stowage_core::image::plan::{ArchiveLayer, LayerId, LayerSource, PlannedLayer};
use stowage_core::layer::owners::Owners;
use stowage_core::layer::tree::Modes;
use stowage_core::script::root::unpack_layers;

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Checks that `dir` holds just `expected`, sorted, and its sentinel as it was.
fn untouched(dir: &Path, expected: &[&str]) {
    let mut expected = expected.to_vec();
    expected.sort();
    assert_eq!(names(dir), expected, "something was written outside the root, into {}", dir.display());
    assert_eq!(fs::read_to_string(dir.join("sentinel")).unwrap(), "kept", "written through a link");
}

fn layer(archive: &Path, offset: u64, size: u64) -> PlannedLayer {
    let layer = ArchiveLayer {
        archive: archive.to_string_lossy().into_owned(),
        entry: format!("layer at {offset}"),
        offset,
        stored_size: size,
        compression: Compression::None,
    };
    // the id is not checked when a root is unpacked (verify did that before)
    PlannedLayer { source: LayerSource::Archive(layer), id: LayerId::Digest(Digest([0; 32])), size }
}

fuzz_target!(|data: &[u8]| {
    let Some((head, layers)) = data.split_first_chunk::<2>() else { return };
    let lower = u64::from(u16::from_le_bytes(*head)).min(layers.len() as u64);
    // The root's parent and grandparent hold sentinels, so that an entry that escapes the root
    // by `..` or through a link is seen.
    let outer = tempfile::tempdir().unwrap();
    let run = outer.path().join("run");
    fs::create_dir(&run).unwrap();
    fs::write(outer.path().join("sentinel"), "kept").unwrap();
    let (archive, root, scratch) = (run.join("layers"), run.join("root"), run.join("scratch"));
    fs::write(&archive, layers).unwrap();
    fs::create_dir(&root).unwrap();
    fs::create_dir(&scratch).unwrap();
    fs::write(run.join("sentinel"), "kept").unwrap();
    let planned = [layer(&archive, 0, lower), layer(&archive, lower, layers.len() as u64 - lower)];
    let (mut owners, mut modes) = (Owners::default(), Modes::default());
    let _ = unpack_layers(&root, &archive, &planned, &scratch, &mut owners, &mut modes);
    untouched(&run, &["layers", "root", "scratch", "sentinel"]);
    untouched(outer.path(), &["run", "sentinel"]);
    assert!(names(&scratch).is_empty(), "something was written outside the root, into scratch");
    assert_eq!(fs::read(&archive).unwrap(), layers, "the base image was written to");
});

//! Feeds layer tarballs to `script::root::unpack_layers`, which applies them, whiteouts and all,
//! into an image root on disk for `buildImage`'s scripts; and checks that nothing was written
//! outside the root. The input is a lower and an upper layer: the first two bytes (little
//! endian) are the lower layer's length, the rest after it the upper layer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::fs;
use std::path::Path;
use std::sync::OnceLock;
use stowage_core::format::compress::Compression;
use stowage_core::format::digest::Digest;
use stowage_core::image::plan::{ArchiveLayer, LayerId, LayerSource, PlannedLayer};
use stowage_core::layer::owners::Owners;
use stowage_core::layer::tree::Modes;
use stowage_core::script::root::unpack_layers;

/// What each run's folder sits in, so that an entry escaping the run's folder by `..` is seen
/// there too; a file in it tells that it was not overwritten through a link.
fn parent() -> &'static Path {
    static PARENT: OnceLock<tempfile::TempDir> = OnceLock::new();
    PARENT
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join("sentinel"), "kept").unwrap();
            dir
        })
        .path()
}

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
    let run = tempfile::tempdir_in(parent()).unwrap();
    let (archive, root, scratch) =
        (run.path().join("layers"), run.path().join("root"), run.path().join("scratch"));
    fs::write(&archive, layers).unwrap();
    fs::create_dir(&root).unwrap();
    fs::create_dir(&scratch).unwrap();
    fs::write(run.path().join("sentinel"), "kept").unwrap();
    let planned = [layer(&archive, 0, lower), layer(&archive, lower, layers.len() as u64 - lower)];
    let (mut owners, mut modes) = (Owners::default(), Modes::default());
    let _ = unpack_layers(&root, &archive, &planned, &scratch, &mut owners, &mut modes);
    let run_name = run.path().file_name().unwrap().to_string_lossy().into_owned();
    untouched(run.path(), &["layers", "root", "scratch", "sentinel"]);
    untouched(parent(), &[&run_name, "sentinel"]);
    assert!(names(&scratch).is_empty(), "something was written outside the root, into scratch");
    assert_eq!(fs::read(&archive).unwrap(), layers, "the base image was written to");
});

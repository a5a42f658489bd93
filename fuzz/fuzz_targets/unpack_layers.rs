//! Feeds layer tarballs to `script::root::unpack_layers`, which applies them, whiteouts and all,
//! into an image root on disk for `buildImage`'s scripts; and checks that nothing was written
//! outside the root. The input is a lower and an upper layer: the first two bytes (little
//! endian) are the lower layer's length, the rest after it the upper layer; each plain, or
//! gzip or zstd as its first bytes say.
//!
//! Writes outside the root are caught two ways. Landlock forbids this process every write
//! outside the folder the runs are made in and libFuzzer's own (corpus, artifacts), so an entry
//! that escapes by any path (an absolute link to `/etc`, `..` ten times) fails with EACCES or
//! EXDEV instead of writing, and that error is a crash here: nothing inside the root gives it.
//! Sentinel files beside the root and above it catch writes into the runs' folder itself.
#![no_main]

use landlock::{AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, ABI};
use libfuzzer_sys::fuzz_target;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
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

/// The bytes before the first layer in the archive.
const HEADER: usize = 512;

/// The layer of `bytes` at `offset` in `archive`, compressed as its magic bytes say (as the
/// reader of a base image says, from the same bytes).
fn layer(archive: &Path, bytes: &[u8], offset: u64) -> PlannedLayer {
    let size = bytes.len() as u64;
    let layer = ArchiveLayer {
        archive: archive.to_string_lossy().into_owned(),
        entry: format!("layer at {offset}"),
        offset,
        stored_size: size,
        compression: Compression::detect(bytes),
    };
    // the id is not checked when a root is unpacked (verify did that before)
    PlannedLayer { source: LayerSource::Archive(layer), id: LayerId::Digest(Digest([0; 32])), size }
}

/// The folder each run's folders are made in: beside the fuzz binary, in the build's folder, so
/// that nothing is left in /tmp; the first call confines this process's writes to it.
fn runs_folder() -> &'static Path {
    static FOLDER: OnceLock<PathBuf> = OnceLock::new();
    FOLDER.get_or_init(|| {
        let folder = std::env::current_exe().unwrap().with_extension("runs");
        fs::create_dir_all(&folder).unwrap();
        confine_writes(&folder);
        folder
    })
}

/// Forbids every write outside `runs` and the folders libFuzzer writes to: the corpus folders
/// it was given and its artifacts' folder. Reads are not restricted.
fn confine_writes(runs: &Path) {
    let abi = ABI::V3;
    let mut writable = vec![runs.to_path_buf()];
    for arg in std::env::args().skip(1) {
        let artifacts =
            ["-artifact_prefix=", "-exact_artifact_path="].iter().find_map(|p| arg.strip_prefix(p));
        match artifacts {
            Some(path) => writable.extend(Path::new(path).parent().map(Path::to_path_buf)),
            None if Path::new(&arg).is_dir() => writable.push(arg.into()),
            None => {}
        }
    }
    let status = Ruleset::default()
        .handle_access(AccessFs::from_write(abi))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(landlock::path_beneath_rules(&writable, AccessFs::from_write(abi))))
        .and_then(|r| r.restrict_self())
        .expect("a Landlock ruleset");
    if status.ruleset != RulesetStatus::FullyEnforced {
        eprintln!("unpack_layers: Landlock is not fully enforced here; only the sentinels catch an escape");
    }
}

/// An error that only a write outside the confined folders gives.
fn refused_by_landlock(error: &str) -> bool {
    error.contains("(os error 13)") || error.contains("(os error 18)")
}

fuzz_target!(|data: &[u8]| {
    let Some((head, layers)) = data.split_first_chunk::<2>() else { return };
    let lower = u64::from(u16::from_le_bytes(*head)).min(layers.len() as u64);
    // The root's parent and grandparent hold sentinels, so that an entry that escapes the root
    // by `..` or through a link is seen.
    let outer = tempfile::tempdir_in(runs_folder()).unwrap();
    let run = outer.path().join("run");
    fs::create_dir(&run).unwrap();
    fs::write(outer.path().join("sentinel"), "kept").unwrap();
    let (archive, root, scratch) = (run.join("layers"), run.join("root"), run.join("scratch"));
    // The layers follow a tar header's worth of zeros, as in a base image's archive: an archive
    // that starts with gzip's magic bytes would be read as compressed whole.
    let stored = [&[0; HEADER][..], layers].concat();
    fs::write(&archive, &stored).unwrap();
    fs::create_dir(&root).unwrap();
    fs::create_dir(&scratch).unwrap();
    fs::write(run.join("sentinel"), "kept").unwrap();
    let (lower_bytes, upper_bytes) = layers.split_at(lower as usize);
    let planned =
        [layer(&archive, lower_bytes, HEADER as u64), layer(&archive, upper_bytes, HEADER as u64 + lower)];
    let (mut owners, mut modes) = (Owners::default(), Modes::default());
    if let Err(error) = unpack_layers(&root, &archive, &planned, &scratch, &mut owners, &mut modes) {
        let error = error.to_string();
        assert!(!refused_by_landlock(&error), "a write outside the root was tried: {error}");
    }
    untouched(&run, &["layers", "root", "scratch", "sentinel"]);
    untouched(outer.path(), &["run", "sentinel"]);
    assert!(names(&scratch).is_empty(), "something was written outside the root, into scratch");
    assert_eq!(fs::read(&archive).unwrap(), stored, "the base image was written to");
});

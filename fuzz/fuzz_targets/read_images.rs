//! Feeds an image file — docker-archive, OCI layout tar, either compressed with gzip or zstd, or
//! a stowage stream script — to `read::read_images`, then verifies every image found, as a base
//! image or a merge input is read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use stowage_core::read::archive::ArchiveReader;
use stowage_core::read::{read_images, select, verify};

fuzz_target!(|data: &[u8]| {
    // read_images takes a path: archives are read by seeking, never into memory whole.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("image");
    std::fs::write(&path, data).unwrap();
    let Ok(images) = read_images(&path) else { return };
    let _ = select(&path, &images, None, None);
    for image in images {
        // read_images promises that every config parses
        let _ = image.config_document();
        let _ = verify(image, &mut ArchiveReader::default(), &mut BTreeMap::new());
    }
});

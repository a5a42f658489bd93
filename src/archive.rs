//! docker-archive writing: what `docker save` produces and `docker load`, `podman load` and
//! `skopeo copy docker-archive:…` read.
//!
//! Layers come first, each as `<diff_id hex>/layer.tar`, then the config (`<its sha256>.json`,
//! whose digest is the image ID) and `manifest.json` last. Layer sizes and digests are known
//! from the plan, so every outer header is written before its layer is generated, each layer is
//! produced and hashed in one pass, and a layer whose bytes do not match the plan stops the
//! archive before its manifest: a reader can never load a wrong image.

use crate::digest::{Digest, DigestWriter};
use crate::image::ImageSpec;
use crate::layer::write_layer;
use crate::{Error, Result};
use serde_json::json;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

/// Tar's block size: headers and the padding after every entry's data.
const BLOCK: u64 = 512;

/// Writes the docker-archive of `spec` to `out`. `progress` hears about every layer written.
pub fn write_docker_archive<W: Write>(
    spec: &ImageSpec,
    mut out: W,
    mut progress: impl FnMut(usize, &Digest),
) -> Result<W> {
    let mtime = spec.owner.mtime;
    let mut written = BTreeSet::new();
    let mut layer_files = Vec::new();
    for (index, layer) in spec.layers.iter().enumerate() {
        let file = format!("{}/layer.tar", layer.digest.hex());
        layer_files.push(file.clone());
        // A layer identical to an earlier one is stored once; the manifest lists it twice.
        if !written.insert(layer.digest) {
            continue;
        }
        write_header(&mut out, &file, layer.size, mtime)?;
        let (back, digest, size) =
            write_layer(&layer.source, Path::new(&spec.store_dir), &spec.owner, DigestWriter::new(out))?
                .finish();
        out = back;
        if digest != layer.digest || size != layer.size {
            return Err(Error::LayerMismatch {
                index,
                expected: layer.digest,
                found: digest,
                expected_size: layer.size,
                found_size: size,
            });
        }
        pad(&mut out, size)?;
        progress(index, &digest);
    }
    let config = serde_json::to_vec(&spec.config).expect("a JSON value serialises");
    let config_file = format!("{}.json", Digest::of(&config).hex());
    write_file(&mut out, &config_file, &config, mtime)?;
    let manifest = json!([{ "Config": config_file, "RepoTags": spec.repo_tags, "Layers": layer_files }]);
    write_file(&mut out, "manifest.json", manifest.to_string().as_bytes(), mtime)?;
    out.write_all(&[0; 2 * BLOCK as usize]).map_err(stream_error)?;
    out.flush().map_err(stream_error)?;
    Ok(out)
}

fn write_header(out: &mut impl Write, name: &str, size: u64, mtime: u64) -> Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name).map_err(|e| Error::io(name, e))?;
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o444);
    header.set_mtime(mtime);
    header.set_uid(0);
    header.set_gid(0);
    header.set_cksum();
    out.write_all(header.as_bytes()).map_err(stream_error)
}

fn write_file(out: &mut impl Write, name: &str, bytes: &[u8], mtime: u64) -> Result<()> {
    write_header(out, name, bytes.len() as u64, mtime)?;
    out.write_all(bytes).map_err(stream_error)?;
    pad(out, bytes.len() as u64)
}

fn pad(out: &mut impl Write, size: u64) -> Result<()> {
    let rest = (BLOCK - size % BLOCK) % BLOCK;
    out.write_all(&[0; BLOCK as usize][..rest as usize]).map_err(stream_error)
}

fn stream_error(e: std::io::Error) -> Error {
    Error::io("(archive output)", e)
}

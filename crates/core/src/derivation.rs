//! The builders of stowage's derivations: what each `stowage build-…` subcommand makes of its
//! derivation's structured attributes (`__structuredAttrs`, the file `NIX_ATTRS_JSON_FILE`
//! names). The Nix library (`nix/`) makes the derivations; the command line only picks the
//! builder by name. Every builder checks the call's arguments before it writes anything.

use crate::attest::provenance::{statement, Build};
use crate::attest::sbom::{Described, Inventory, SbomFormat};
use crate::cores::cores;
use crate::format::closure::ClosureEntry;
use crate::format::compress::Compression;
use crate::functions::args::{self, Outputs};
use crate::functions::call::Call;
use crate::functions::customise::{customise, CustomisationInput};
use crate::functions::fake_nss::FakeNss;
use crate::functions::index::plan_index;
use crate::functions::layer::write_layers;
use crate::functions::layered::{plan_image, BuildInput};
use crate::functions::merge::merge_images;
use crate::functions::pull::pull;
use crate::image::config::referenced_store_paths;
use crate::image::plan::{Format, Plan};
use crate::write::archive::{write_archive, write_oci_dir, OUTPUT_BUFFER};
use crate::write::deliver::CopyScript;
use crate::write::progress::{Mode, Progress};
use crate::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::fs;
use std::io::BufWriter;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// `build-stream`: plans a layered image and writes its stream script to `$out`.
pub fn build_stream(say: impl Fn(&str)) -> Result<()> {
    let input: BuildInput = read_attrs()?;
    let plan = plan_image(&input, OffsetDateTime::now_utc(), |w| say(&format!("warning: {w}")))?;
    write_script(&plan, &input.outputs, say)
}

/// `build-layer`: plans and hashes a `buildLayer` layer into `$out`.
pub fn build_layer() -> Result<()> {
    #[derive(Deserialize)]
    struct Attrs {
        #[serde(flatten)]
        call: Call,
        /// The closure of deps, copyToRoot and layers (`exportReferencesGraph.closure`).
        #[serde(default)]
        closure: Vec<ClosureEntry>,
        outputs: Outputs,
    }
    let attrs: Attrs = read_attrs()?;
    let args = attrs.call.layer()?;
    let out = Path::new(&attrs.outputs.out);
    write_layers(&args, &attrs.call.store_dir, &attrs.closure, out)
}

/// `build-customisation`: runs an image's scripts in its root, and writes what they left as the
/// customisation layer's entries.
pub fn build_customisation() -> Result<()> {
    let input: CustomisationInput = read_attrs()?;
    let build_dir = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    customise(&input, &build_dir, OffsetDateTime::now_utc())
}

/// The attributes of a derivation that plans from other images (a merge, an index).
#[derive(Deserialize)]
struct ImagesAttrs {
    #[serde(flatten)]
    call: Call,
    images: Vec<String>,
    outputs: Outputs,
}

/// `build-merge-stream`: plans the merge of images and writes its stream script.
pub fn build_merge_stream(say: impl Fn(&str)) -> Result<()> {
    let attrs: ImagesAttrs = read_attrs()?;
    let merge = attrs.call.merge()?;
    write_script(&merge_images(&attrs.images, merge.format)?, &attrs.outputs, say)
}

/// `build-index-stream`: plans a multi-platform image (an OCI index) and writes its stream
/// script.
pub fn build_index_stream(say: impl Fn(&str)) -> Result<()> {
    let attrs: ImagesAttrs = read_attrs()?;
    let index = attrs.call.index()?;
    let reference = format!("{}:{}", index.name, index.tag);
    write_script(&plan_index(&reference, &attrs.images, index.format)?, &attrs.outputs, say)
}

/// `build-pull`: fetches an image from a registry into `$out` (a fixed-output derivation).
pub fn build_pull(say: impl Fn(&str)) -> Result<()> {
    #[derive(Deserialize)]
    struct Attrs {
        #[serde(flatten)]
        call: Call,
        outputs: Outputs,
    }
    let attrs: Attrs = read_attrs()?;
    pull(&attrs.call.pull()?, Path::new(&attrs.outputs.out), say)
}

/// `build-references`: the store paths an image's `config` mentions, one a line.
pub fn build_references() -> Result<()> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Attrs {
        config: serde_json::Value,
        store_dir: String,
        outputs: Outputs,
    }
    let attrs: Attrs = read_attrs()?;
    let list: String = referenced_store_paths(&attrs.config, &attrs.store_dir)
        .iter()
        .map(|path| format!("{path}\n"))
        .collect();
    let out = Path::new(&attrs.outputs.out);
    fs::write(out, list).map_err(|e| Error::io(out, e))
}

/// `build-fake-nss`: fakeNss's tree, in library mode (the plugin writes it while evaluating).
pub fn build_fake_nss() -> Result<()> {
    #[derive(Deserialize)]
    struct Attrs {
        arguments: serde_json::Value,
        outputs: Outputs,
    }
    let attrs: Attrs = read_attrs()?;
    let nss = FakeNss::from_nix(&attrs.arguments.to_string())
        .map_err(|e| Error::InCall { function: "fakeNss".into(), source: Box::new(e) })?;
    nss.tree().write_to(Path::new(&attrs.outputs.out))
}

/// `build-copy-script`: an image's `copyTo…` executable, a script this executable runs.
pub fn build_copy_script() -> Result<()> {
    #[derive(Deserialize)]
    struct Attrs {
        image: String,
        dest: Option<String>,
        program: String,
        #[serde(default)]
        attach: Vec<String>,
        #[serde(default)]
        tags: Vec<String>,
        outputs: Outputs,
    }
    let attrs: Attrs = read_attrs()?;
    let bin = Path::new(&attrs.outputs.out).join("bin");
    fs::create_dir_all(&bin).map_err(|e| Error::io(&bin, e))?;
    let copy = CopyScript { image: attrs.image, dest: attrs.dest, attach: attrs.attach, tags: attrs.tags };
    copy.write(&this_executable()?, &bin.join(&attrs.program))
}

/// `build-attestation`: a document about a stream's image — its SBOM (`format`: `spdx`,
/// `cyclonedx`) or its provenance (`provenance`: an in-toto statement) — into `$out`.
pub fn build_attestation() -> Result<()> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Attrs {
        stream: PathBuf,
        format: String,
        /// The stream's closure (`exportReferencesGraph.closure`): the image's store paths.
        closure: Vec<ClosureEntry>,
        /// What evaluation knew of the image's `contents`.
        #[serde(default)]
        described: Vec<Described>,
        /// The store paths copied into the image's root (buildImage's copyToRoot).
        #[serde(default)]
        in_root: Vec<String>,
        /// For a provenance: the build.
        #[serde(default)]
        build: Option<Build>,
        outputs: Outputs,
    }
    let attrs: Attrs = read_attrs()?;
    let plan = Plan::read(&attrs.stream)?;
    let inventory = Inventory::of(&plan, &attrs.closure, &attrs.described, &attrs.in_root)?;
    let document = match (attrs.format.as_str(), &attrs.build) {
        ("spdx", _) => inventory.document(SbomFormat::Spdx),
        ("cyclonedx", _) => inventory.document(SbomFormat::CycloneDx),
        ("provenance", Some(build)) => statement(&inventory, build),
        ("provenance", None) => return Err(Error::argument("build", "is required for a provenance")),
        (other, _) => {
            return Err(Error::argument(
                "format",
                format!("is {other:?}; it must be \"spdx\", \"cyclonedx\" or \"provenance\""),
            ))
        }
    };
    let out = Path::new(&attrs.outputs.out);
    let text = serde_json::to_string_pretty(&document).expect("JSON values serialise") + "\n";
    fs::write(out, text).map_err(|e| Error::io(out, e))
}

/// `build-archive`: an image file (`buildLayeredImage`'s `$out`): its stream's plan written
/// as an archive, compressed with `compressor`, or as an OCI layout folder.
pub fn build_archive(say: impl Fn(&str)) -> Result<()> {
    #[derive(Deserialize)]
    struct Attrs {
        stream: PathBuf,
        compressor: String,
        outputs: Outputs,
    }
    let attrs: Attrs = read_attrs()?;
    let compressor = Compression::from_name(&attrs.compressor)?;
    let plan = Plan::read(&attrs.stream)?;
    let path = Path::new(&attrs.outputs.out);
    let io_err = |e| Error::io(path, e);
    let threads = cores()?;
    say(&format!("writing {} on {threads} thread(s)", path.display()));
    if plan.format == Format::OciDir {
        if compressor != Compression::None {
            return Err(Error::argument("compressor", "must be \"none\" for format \"oci-dir\""));
        }
        return write_oci_dir(&plan, path, threads);
    }
    let file = fs::File::create(path).map_err(io_err)?;
    let file = compressor.writer(BufWriter::with_capacity(OUTPUT_BUFFER, file), threads).map_err(io_err)?;
    let progress = Progress::of(&plan, &path.display().to_string(), Mode::for_builder()?);
    let file = write_archive(&plan, progress.meter(file), path, threads, |_, _, _| progress.layer_done())?;
    let file = file.into_inner().finish().map_err(io_err)?;
    progress.finish();
    file.into_inner().map_err(|e| io_err(e.into_error()))?.sync_all().map_err(io_err)
}

/// Writes the stream script of `plan` to `$out`, run by this very executable.
fn write_script(plan: &Plan, outputs: &Outputs, say: impl Fn(&str)) -> Result<()> {
    let out = Path::new(&outputs.out);
    fs::write(out, plan.to_script(&this_executable()?)).map_err(|e| Error::io(out, e))?;
    fs::set_permissions(out, fs::Permissions::from_mode(0o555)).map_err(|e| Error::io(out, e))?;
    for image in &plan.images {
        say(&format!("planned {} layers for {}", image.layers.len(), image.repo_tags.join(", ")));
    }
    Ok(())
}

/// The executable running now: the one scripts it writes call back.
fn this_executable() -> Result<PathBuf> {
    std::env::current_exe().map_err(|e| Error::io("/proc/self/exe", e))
}

/// The derivation's structured attributes.
fn read_attrs<T: DeserializeOwned>() -> Result<T> {
    const VAR: &str = "NIX_ATTRS_JSON_FILE";
    let named = std::env::var_os(VAR).map(PathBuf::from).ok_or_else(|| Error::Environment {
        var: VAR,
        problem: "is not set: this subcommand is a derivation builder".into(),
    })?;
    // Nix 2.8 names the file by its path outside the sandbox; inside, it is in the build
    // directory, which is where a builder starts.
    let path = if named.exists() { named } else { PathBuf::from(".attrs.json") };
    let text = fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| {
        args::too_deep_in_attributes(&path, &text)
            .unwrap_or(Error::Attributes { path, problem: e.to_string() })
    })
}

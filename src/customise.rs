//! The customisation derivation: builds an image root, runs the image's scripts in it, and
//! writes what they left as the layer's entries (`$out/layer.tar`, see [`crate::tree`]).
//!
//! It is a derivation of its own so that Nix scans its output for store paths: what the
//! scripts' output refers to (a symlink into the store, a config file naming a store path)
//! joins the image's closure, as in dockerTools, and what only ran the scripts — the shell,
//! `nativeBuildInputs` — does not.

use crate::contents::merge_contents;
use crate::layer::{Ownership, Synthetic};
use crate::layered_image::{resolve_time, ImageArgs, Outputs};
use crate::script::{self, Confinement, Script};
use crate::seccomp::Owners;
use crate::tree::{write_tree, Modes, TreeOwners};
use crate::{Error, Result};
use serde::Deserialize;
use std::fs;
use std::io::{BufWriter, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// The name of the entries file in a customisation output.
pub const LAYER_FILE: &str = "layer.tar";

/// What the customisation derivation gets: Nix's structured attributes.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomisationInput {
    /// The checked image arguments (owner, mtime).
    pub image: ImageArgs,
    /// The contents, merged into the root as symlinks before the scripts run.
    #[serde(default)]
    pub contents: Vec<String>,
    /// Run in the root as the build user.
    #[serde(default)]
    pub extra_commands: Option<String>,
    /// Run in the root as fake root.
    #[serde(default)]
    pub fake_root_commands: Option<String>,
    /// Whether `fakeRootCommands` runs chrooted in the root.
    #[serde(default)]
    pub enable_fakechroot: Option<bool>,
    /// The POSIX shell that runs the scripts.
    pub shell: String,
    /// Store paths whose `bin` goes on the scripts' `PATH`.
    #[serde(default)]
    pub native_build_inputs: Vec<String>,
    /// The store root.
    pub store_dir: String,
    /// The derivation's outputs.
    pub outputs: Outputs,
}

/// Builds the customisation layer's entries of `input` into `$out`; `build_dir` is where the
/// root is made.
pub fn customise(input: &CustomisationInput, build_dir: &Path, now: OffsetDateTime) -> Result<()> {
    let image = &input.image;
    let (_, mtime) = resolve_time("mtime", &image.mtime, now)?;
    let root = build_dir.join("root");
    fs::create_dir(&root).map_err(|e| Error::io(&root, e))?;
    let (entries, clashes) = merge_contents(&input.contents)?;
    for clash in &clashes {
        eprintln!("stowage: warning: contents clash at {clash}");
    }
    materialise(&root, &entries)?;
    let tmp = build_dir.join("tmp");
    fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let shell = Path::new(&input.shell);
    let env = environment(&input.native_build_inputs, shell, mtime, Some(&tmp));
    let mut owners = Owners::default();
    if let Some(text) = input.extra_commands.as_deref().filter(|t| !t.trim().is_empty()) {
        let script = Script { name: "extraCommands", text, shell, env: &env };
        script::run(&script, &root, &Confinement::BuildUser)?;
    }
    if let Some(text) = input.fake_root_commands.as_deref().filter(|t| !t.trim().is_empty()) {
        let confinement = if input.enable_fakechroot.unwrap_or(false) {
            Confinement::Chroot { store_dir: input.store_dir.clone().into() }
        } else {
            Confinement::FakeRoot
        };
        // chrooted, the build's temporary folder is not there: /tmp of the image is
        let env = if confinement == Confinement::FakeRoot {
            env.clone()
        } else {
            environment(&input.native_build_inputs, shell, mtime, None)
        };
        let script = Script { name: "fakeRootCommands", text, shell, env: &env };
        owners = script::run(&script, &root, &confinement)?;
    }
    let default = Ownership {
        uid: image.uid,
        gid: image.gid,
        uname: image.uname.clone(),
        gname: image.gname.clone(),
        mtime,
    };
    write_output(
        &root,
        &input.outputs,
        TreeOwners { default: &default, owners: &owners, modes: &Modes::default() },
    )
}

/// Writes the entries of `root` to `$out/layer.tar`.
fn write_output(root: &Path, outputs: &Outputs, owners: TreeOwners) -> Result<()> {
    let out = Path::new(&outputs.out);
    fs::create_dir(out).map_err(|e| Error::io(out, e))?;
    let path = out.join(LAYER_FILE);
    let file = fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
    let mut writer = BufWriter::new(file);
    let mut chunks = crate::chunks::to_writer(&mut writer);
    let count = write_tree(root, None, owners, &mut chunks)?;
    drop(chunks.finish().map_err(|e| Error::io(&path, e))?);
    writer.flush().map_err(|e| Error::io(&path, e))?;
    eprintln!("stowage: the customisation layer has {count} entries, {} owner(s) set", owners.owners.len());
    Ok(())
}

/// Makes the merged contents (directories and symlinks) on disk under `root`.
fn materialise(root: &Path, entries: &[Synthetic]) -> Result<()> {
    for entry in entries {
        match entry {
            Synthetic::Directory { path } => {
                let dir = root.join(path);
                fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
                // as the layer without scripts has them, whatever the umask
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                    .map_err(|e| Error::io(&dir, e))?;
            }
            Synthetic::Symlink { path, target } => {
                let link = root.join(path);
                symlink(target, &link).map_err(|e| Error::io(&link, e))?;
            }
        }
    }
    Ok(())
}

/// The scripts' environment: tools on `PATH`, a `HOME` that does not exist (as in Nix's
/// builds), the image's mtime as `SOURCE_DATE_EPOCH`, and a temporary folder if given.
pub fn environment(
    inputs: &[String],
    shell: &Path,
    mtime: u64,
    tmp: Option<&PathBuf>,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH".to_string(), script::search_path(inputs, shell)),
        ("HOME".to_string(), "/homeless-shelter".to_string()),
        ("SOURCE_DATE_EPOCH".to_string(), mtime.to_string()),
    ];
    if let Ok(cores) = std::env::var("NIX_BUILD_CORES") {
        env.push(("NIX_BUILD_CORES".into(), cores));
    }
    if let Some(tmp) = tmp {
        for var in ["TMPDIR", "TMP", "TEMP", "TEMPDIR"] {
            env.push((var.into(), tmp.to_string_lossy().into_owned()));
        }
    }
    env
}

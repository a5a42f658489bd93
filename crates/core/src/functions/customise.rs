//! The customisation derivation: builds an image root, runs the image's scripts in it, and
//! writes what they left as the layer's entries (`$out/layer.tar`, see [`crate::layer::tree`]).
//!
//! It is a derivation of its own so that Nix scans its output for store paths: what the
//! scripts' output refers to (a symlink into the store, a config file naming a store path)
//! joins the image's closure, as in dockerTools, and what only ran the scripts — the shell,
//! `nativeBuildInputs` — does not.

use crate::functions::args::Outputs;
use crate::functions::call::Call;
use crate::functions::image::{is_script, read_base, resolve_time, LAYER_FILE};
use crate::layer::contents::merge_contents;
use crate::layer::owners::Owners;
use crate::layer::perms::Perms;
use crate::layer::tarball::{Ownership, Synthetic};
use crate::layer::tree::{write_tree_file, Changes, Modes, Snapshot, TreeOwners};
use crate::script::confine::{self, Confinement, Script, Shell, IMAGE_SHELL};
use crate::script::root::{copy_to_root, resolve_in_root, unpack_layers};
use crate::{Error, Result};
use serde::Deserialize;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// What the customisation derivation gets: Nix's structured attributes.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomisationInput {
    /// The call that made the derivation: the image's arguments, checked before anything runs.
    #[serde(flatten)]
    pub call: Call,
    /// The layered functions' contents, merged into the root as symlinks.
    #[serde(default)]
    pub contents: Vec<String>,
    /// `buildImage`'s copyToRoot, copied into the root.
    #[serde(default)]
    pub copy_to_root: Vec<String>,
    /// Whether copying keeps symlinks to directories in the root (`rsync -K`).
    #[serde(default)]
    pub keep_contents_dirlinks: Option<bool>,
    /// The base image, unpacked under the root for runAsRoot.
    #[serde(default)]
    pub from_image: Option<String>,
    /// Run in the root as the build user.
    #[serde(default)]
    pub extra_commands: Option<String>,
    /// Run in the root as fake root.
    #[serde(default)]
    pub fake_root_commands: Option<String>,
    /// Whether `fakeRootCommands` runs chrooted in the root.
    #[serde(default)]
    pub enable_fakechroot: Option<bool>,
    /// `buildImage`'s script, run as fake root chrooted in the unpacked image.
    #[serde(default)]
    pub run_as_root: Option<String>,
    /// `bin/sh` of the `shell` argument.
    #[serde(default)]
    pub shell: Option<String>,
    /// Store paths whose `bin` goes on the scripts' `PATH`.
    #[serde(default)]
    pub native_build_inputs: Vec<String>,
    /// The derivation's outputs.
    pub outputs: Outputs,
}

fn script_text(text: &Option<String>) -> Option<&str> {
    text.as_deref().filter(|t| is_script(t))
}

/// Builds the customisation layer's entries of `input` into `$out`; `build_dir` is where the
/// root is made.
pub fn customise(input: &CustomisationInput, build_dir: &Path, now: OffsetDateTime) -> Result<()> {
    let image = &input.call.image()?;
    let (_, mtime) = resolve_time("mtime", &image.mtime, now)?;
    let root = build_dir.join("root");
    fs::create_dir(&root).map_err(|e| Error::io(&root, e))?;
    let tmp = build_dir.join("tmp");
    fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let store_dir = PathBuf::from(&input.call.store_dir);
    let given_shell = input.shell.as_deref().map(Path::new);
    // what runs a script outside the image: the shell given, else Nix's sandbox shell
    let outer_shell = given_shell.or(image.sandbox_shell.as_deref().map(Path::new));
    let shell_for = |name: &'static str| {
        outer_shell
            .map(Shell::Path)
            .ok_or_else(|| Error::argument("shell", format!("is needed to run {name}")))
    };
    let env =
        |shell: &Path, tmp: Option<&PathBuf>| environment(&input.native_build_inputs, shell, mtime, tmp);

    let mut owners = Owners::default();
    let mut modes = Modes::default();
    let run_as_root = script_text(&input.run_as_root);
    // runAsRoot sees the whole image; only its changes (and copyToRoot) go into the layer
    let before = match (&input.from_image, run_as_root) {
        (Some(base), Some(_)) => {
            let (spec, _) = read_base(Path::new(base), image)?;
            eprintln!("stowage: unpacking the {} layer(s) of fromImage for runAsRoot", spec.layers.len());
            unpack_layers(&root, Path::new(base), &spec.layers, &tmp, &mut owners, &mut modes)?;
            Some(Snapshot::take(&root)?)
        }
        _ => None,
    };
    let (entries, clashes) = merge_contents(&input.contents)?;
    for clash in &clashes {
        eprintln!("stowage: warning: contents clash at {clash}");
    }
    materialise(&root, &entries)?;
    let default_ids = (image.uid as u32, image.gid as u32);
    for source in &input.copy_to_root {
        let keep = input.keep_contents_dirlinks.unwrap_or(false);
        copy_to_root(Path::new(source), &root, keep, default_ids, &mut owners, &mut modes)?;
    }

    // in dockerTools' order: runAsRoot, extraCommands, fakeRootCommands
    let mut chowned = Owners::default();
    if let Some(text) = run_as_root {
        // the image's own shell, unless one was given (or the image has none)
        let has_own = fs::symlink_metadata(resolve_in_root(&root, Path::new(IMAGE_SHELL))?).is_ok();
        let shell = match given_shell {
            Some(path) => Shell::Path(path),
            None if has_own => Shell::Image,
            None => shell_for("runAsRoot").map_err(|_| {
                Error::argument("shell", "is needed to run runAsRoot: the image has no /bin/sh (pass shell = a store path with bin/sh)")
            })?,
        };
        let script = Script { name: "runAsRoot", text, shell, env: &env(shell.path(), None) };
        chowned.extend(confine::run(&script, &root, &Confinement::Chroot { store_dir: store_dir.clone() })?);
    }
    if let Some(text) = script_text(&input.extra_commands) {
        let shell = shell_for("extraCommands")?;
        let script = Script { name: "extraCommands", text, shell, env: &env(shell.path(), Some(&tmp)) };
        confine::run(&script, &root, &Confinement::BuildUser)?;
    }
    if let Some(text) = script_text(&input.fake_root_commands) {
        let chroot = input.enable_fakechroot.unwrap_or(false);
        let shell = shell_for("fakeRootCommands")?;
        // chrooted, the build's temporary folder is not there: /tmp of the image is
        let env = env(shell.path(), (!chroot).then_some(&tmp));
        let confinement =
            if chroot { Confinement::Chroot { store_dir: store_dir.clone() } } else { Confinement::FakeRoot };
        let script = Script { name: "fakeRootCommands", text, shell, env: &env };
        chowned.extend(confine::run(&script, &root, &confinement)?);
    }
    let changes = before.as_ref().map(|before| Changes { before, chowned: &chowned });
    owners.extend(chowned.clone());
    let default = Ownership {
        uid: image.uid,
        gid: image.gid,
        uname: image.uname.clone(),
        gname: image.gname.clone(),
        mtime,
    };
    let perms = Perms::new(&image.perms)?;
    let owners = TreeOwners { default: &default, owners: &owners, modes: &modes, perms: &perms };
    write_output(&root, changes, &input.outputs, owners)
}

/// Writes the entries of `root` to `$out/layer.tar`.
fn write_output(root: &Path, changes: Option<Changes>, outputs: &Outputs, owners: TreeOwners) -> Result<()> {
    let out = Path::new(&outputs.out);
    fs::create_dir(out).map_err(|e| Error::io(out, e))?;
    let count = write_tree_file(root, changes, owners, &out.join(LAYER_FILE))?;
    eprintln!("stowage: the layer's root has {count} entries");
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
            Synthetic::File { path, contents } => {
                let file = root.join(path);
                fs::write(&file, contents).map_err(|e| Error::io(&file, e))?;
                fs::set_permissions(&file, fs::Permissions::from_mode(0o644))
                    .map_err(|e| Error::io(&file, e))?;
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
        ("PATH".to_string(), confine::search_path(inputs, shell)),
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

//! `buildLayer` (nix2container's): layers that are derivations of their own, and how an image
//! takes them (its `layers` argument).
//!
//! A layer derivation plans its store paths into at most `maxLayers` layers and hashes them
//! once; its output ([`LAYERS_FILE`]) holds those planned layers, digests included. Nix caches
//! and substitutes it like any package, so an image built on it — the first or the hundredth,
//! after any change elsewhere in its closure — neither reads nor hashes these paths again: the
//! image's plan copies the planned layers as they are. This is what makes a rebuild cost what
//! changed when the image's own closure is large (its dependencies in explicit layers, the
//! application in the image's layers).
//!
//! A layer leaves out the store paths of the layers it is built on (its `layers`), and an image
//! holds those too, below it: an image is never missing a path because it was left to a layer
//! the image was not given.

use crate::cores::{cores, map_parallel};
use crate::format::closure::{ClosureEntry, PathInfo};
use crate::functions::args::{check_in_store, Args, Evaluator};
use crate::functions::image::{resolve_time, DEFAULT_CREATED, MAX_LAYERS};
use crate::image::layering::plan_layers;
use crate::image::plan::{LayerId, LayerSource, PlannedLayer};
use crate::layer::owners::Owners;
use crate::layer::perms::{check_perms, Perm, Perms};
use crate::layer::tarball::{layer_digest, layer_digest_into, Ownership, StoreLayer};
use crate::layer::tree::{write_tree_file, Modes, TreeOwners};
use crate::script::root::copy_to_root;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// The file in a layer derivation's output that describes its layers.
pub const LAYERS_FILE: &str = "layers.json";

/// The arguments `buildLayer` takes: nix2container's.
const ARGUMENTS: &[&str] = &["deps", "copyToRoot", "ignore", "layers", "reproducible", "perms", "maxLayers"];

/// The checked arguments of `buildLayer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerArgs {
    /// Store paths whose closures go into the layer.
    pub deps: Vec<String>,
    /// Store paths whose contents are copied into the image root, as nix2container copies them;
    /// what they refer to goes into the layer too (themselves only if something else refers to
    /// them).
    pub copy_to_root: Vec<String>,
    /// A store path left out of the layer (only it, not its closure).
    pub ignore: Option<String>,
    /// The layers this one is built on (buildLayer outputs): their store paths are left out.
    pub layers: Vec<String>,
    /// Whether the layer's bytes are made again from the store when an image is written (true),
    /// or kept in the output as a tarball (false: for paths that do not build bit for bit).
    pub reproducible: bool,
    /// Owners and modes set on the layer's entries.
    pub perms: Vec<Perm>,
    /// How many layers the store paths are planned into.
    pub max_layers: u64,
}

impl LayerArgs {
    /// Checks `buildLayer`'s arguments.
    pub fn from_nix(args_json: &str, nix: &Evaluator) -> Result<LayerArgs> {
        let args = Args::parse(args_json, ARGUMENTS)?;
        let store_paths = |arg: &str| -> Result<Vec<String>> {
            let paths = args.string_list(arg)?;
            for (i, path) in paths.iter().enumerate() {
                check_in_store(format!("{arg}[{i}]"), path, &nix.store_dir)?;
            }
            Ok(paths)
        };
        let ignore = args.string("ignore")?;
        if let Some(path) = &ignore {
            check_in_store("ignore", path, &nix.store_dir)?;
        }
        let max_layers = args.int("maxLayers")?.unwrap_or(1);
        if !(1..=MAX_LAYERS as i64).contains(&max_layers) {
            return Err(Error::argument(
                "maxLayers",
                format!("is {max_layers}; a layer derivation makes from 1 to {MAX_LAYERS} layers"),
            ));
        }
        Ok(LayerArgs {
            deps: store_paths("deps")?,
            copy_to_root: store_paths("copyToRoot")?,
            ignore,
            layers: store_paths("layers")?,
            reproducible: args.bool("reproducible")?.unwrap_or(true),
            perms: check_perms(args.value("perms"))?,
            max_layers: max_layers as u64,
        })
    }
}

/// What a layer derivation's output says of it ([`LAYERS_FILE`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerFile {
    /// Its layers, bottom first, planned and hashed.
    pub layers: Vec<PlannedLayer>,
    /// The store paths they hold.
    pub store_paths: Vec<String>,
    /// The layer derivations it is built on (its `layers`), which an image holds below it.
    pub built_on: Vec<String>,
}

/// The layers an image (or a layer) is given, each with those it is built on before it, each
/// once.
#[derive(Debug, Default)]
pub struct GivenLayers {
    /// The planned layers, bottom first.
    pub layers: Vec<PlannedLayer>,
    /// The store paths they hold: no other layer of the image holds them again.
    pub store_paths: BTreeSet<String>,
    /// The layer derivations' outputs (which are not in the image themselves).
    pub outputs: BTreeSet<String>,
}

/// Reads the layers `given` (the `layers` argument: buildLayer outputs), with what they are
/// built on.
pub fn read_layers(given: &[String]) -> Result<GivenLayers> {
    let mut found = GivenLayers::default();
    for (i, output) in given.iter().enumerate() {
        add_layer(output, &|| format!("layers[{i}]"), &mut found)?;
    }
    Ok(found)
}

fn add_layer(output: &str, arg: &dyn Fn() -> String, found: &mut GivenLayers) -> Result<()> {
    if !found.outputs.insert(output.to_owned()) {
        return Ok(());
    }
    let path = Path::new(output).join(LAYERS_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::argument(
                arg(),
                format!("is {output}, which is not a layer made by buildLayer (it has no {LAYERS_FILE})"),
            ))
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    let file: LayerFile = serde_json::from_str(&text).map_err(|e| Error::Attributes {
        path: path.clone(),
        problem: format!("not a stowage layer description: {e}"),
    })?;
    for below in &file.built_on {
        add_layer(below, &|| format!("{} (built on {below})", arg()), found)?;
    }
    found.store_paths.extend(file.store_paths);
    found.layers.extend(file.layers);
    Ok(())
}

/// `buildLayer`'s build: plans and hashes the layers of `args` (for the store `store_dir`, whose
/// `closure` of deps, copyToRoot and layers Nix exported) into `out/layers.json` (and, for a
/// layer that is not reproducible, writes their tarballs beside it; the entries copyToRoot
/// makes, as a tar file, into `out/root.tar`).
pub fn write_layers(args: &LayerArgs, store_dir: &str, closure: &[ClosureEntry], out: &Path) -> Result<()> {
    let below = read_layers(&args.layers)?;
    // a copyToRoot path is in the root, not the store, unless something else refers to it
    let referred: BTreeSet<&String> =
        closure.iter().flat_map(|e| e.references.iter().filter(move |r| **r != e.path)).collect();
    let left_out = |path: &String| {
        below.store_paths.contains(path)
            || below.outputs.contains(path)
            || Some(path) == args.ignore.as_ref()
            || (args.copy_to_root.contains(path) && !referred.contains(path))
    };
    let closure: Vec<PathInfo> = closure
        .iter()
        .filter(|e| !left_out(&e.path))
        .map(|e| PathInfo {
            path: e.path.clone(),
            nar_size: e.nar_size,
            references: e.references.iter().filter(|r| !left_out(r)).cloned().collect(),
        })
        .collect();
    // dockerTools' default time, one second after the epoch
    let (_, mtime) = resolve_time("mtime", DEFAULT_CREATED, time::OffsetDateTime::UNIX_EPOCH)?;
    let owner = Ownership { uid: 0, gid: 0, uname: "root".into(), gname: "root".into(), mtime };
    fs::create_dir(out).map_err(|e| Error::io(out, e))?;
    let root = match args.copy_to_root.as_slice() {
        [] => None,
        sources => Some(copy_root(sources, &owner, &args.perms, &out.join(ROOT_FILE))?),
    };
    let store_layer =
        |store_paths, synthetic| StoreLayer::new(store_dir, &owner, &args.perms, store_paths, synthetic);
    let mut sources: Vec<StoreLayer> = if closure.is_empty() {
        Vec::new()
    } else {
        plan_layers(&closure, args.max_layers as usize)
            .into_iter()
            .map(|paths| store_layer(paths, vec![]))
            .collect()
    };
    // the root's entries go on top, with the paths that change most
    match sources.last_mut() {
        Some(top) => top.tree = root,
        None if root.is_some() => sources.push(StoreLayer { tree: root, ..store_layer(vec![], vec![]) }),
        None => {}
    }
    let store_paths: Vec<String> = sources.iter().flat_map(|s| s.store_paths.iter().cloned()).collect();
    let numbered: Vec<(usize, StoreLayer)> = sources.into_iter().enumerate().collect();
    let planned = map_parallel(&numbered, cores()?, |(i, source)| {
        if args.reproducible {
            let (digest, size) = layer_digest(source)?;
            Ok(PlannedLayer { source: LayerSource::Store(source.clone()), id: LayerId::Digest(digest), size })
        } else {
            keep_tarball(source, &out.join(format!("layer-{i}.tar")))
        }
    });
    let file = LayerFile {
        layers: planned.into_iter().collect::<Result<_>>()?,
        store_paths,
        built_on: {
            let mut seen = BTreeSet::new();
            args.layers.iter().filter(|o| seen.insert(*o)).cloned().collect()
        },
    };
    let path = out.join(LAYERS_FILE);
    let json = serde_json::to_string_pretty(&file).expect("a layer description serialises");
    fs::write(&path, json + "\n").map_err(|e| Error::io(&path, e))
}

/// The file in a layer's output that holds the entries copyToRoot makes.
pub const ROOT_FILE: &str = "root.tar";

/// Copies the contents of the store paths `sources` into a root (as `buildImage` copies its
/// copyToRoot: symlinks to directories followed, the store's modes kept) and writes its entries,
/// owned as `owner` and `perms` say, as a tar file at `path`; returns `path`.
fn copy_root(sources: &[String], owner: &Ownership, perms: &[Perm], path: &Path) -> Result<String> {
    let scratch = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let root = scratch.path().join("root");
    fs::create_dir(&root).map_err(|e| Error::io(&root, e))?;
    let (mut owners, mut modes) = (Owners::default(), Modes::default());
    for source in sources {
        copy_to_root(
            Path::new(source),
            &root,
            false,
            (owner.uid as u32, owner.gid as u32),
            &mut owners,
            &mut modes,
        )
        .map_err(|e| match e {
            Error::Argument { problem, .. } => Error::argument("copyToRoot", problem),
            other => other,
        })?;
    }
    let perms = Perms::new(perms)?;
    let owners = TreeOwners { default: owner, owners: &owners, modes: &modes, perms: &perms };
    write_tree_file(&root, None, owners, path)?;
    Ok(path.to_string_lossy().into_owned())
}

/// Writes the layer of `source` to `path` (hashing it on the way) and plans it from there: its
/// bytes are then the ones written now, whatever its store paths would give when read again.
fn keep_tarball(source: &StoreLayer, path: &Path) -> Result<PlannedLayer> {
    let io_err = |e| Error::io(path, e);
    let mut file = io::BufWriter::new(fs::File::create(path).map_err(io_err)?);
    let (digest, size) = layer_digest_into(source, |chunk| file.write_all(chunk))?;
    file.into_inner().map_err(|e| io_err(e.into_error()))?.sync_all().map_err(io_err)?;
    let kept = StoreLayer {
        store_paths: vec![],
        synthetic: vec![],
        tree: Some(path.to_string_lossy().into_owned()),
        perms: vec![],
        ..source.clone()
    };
    Ok(PlannedLayer { source: LayerSource::Store(kept), id: LayerId::Digest(digest), size })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evaluator() -> Evaluator {
        Evaluator { system: "x86_64-linux".into(), store_dir: "/s".into(), sandbox_paths: vec![] }
    }

    #[test]
    fn arguments_are_checked() {
        let args = LayerArgs::from_nix(r#"{"deps": ["/s/a-x"], "maxLayers": 3}"#, &evaluator()).unwrap();
        assert_eq!(args.deps, ["/s/a-x"]);
        assert_eq!(args.max_layers, 3);
        assert!(args.reproducible);
        let err = |json: &str| LayerArgs::from_nix(json, &evaluator()).unwrap_err().to_string();
        assert_eq!(
            err(r#"{"deps": ["/t/a"]}"#),
            "argument 'deps[0]' \"/t/a\" is not a store path (the store is /s)"
        );
        assert_eq!(
            err(r#"{"maxLayers": 0}"#),
            "argument 'maxLayers' is 0; a layer derivation makes from 1 to 125 layers"
        );
        assert_eq!(
            err(r#"{"ignore": "/t"}"#),
            "argument 'ignore' \"/t\" is not a store path (the store is /s)"
        );
        assert!(err(r#"{"contents": []}"#)
            .starts_with("unexpected argument 'contents'; the arguments are: deps,"));
    }

    #[test]
    fn a_path_that_is_no_layer_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let given = dir.path().to_string_lossy().into_owned();
        let err = read_layers(std::slice::from_ref(&given)).unwrap_err().to_string();
        assert_eq!(err, format!("argument 'layers[0]' is {given}, which is not a layer made by buildLayer (it has no layers.json)"));
    }

    #[test]
    fn a_layer_description_that_is_not_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LAYERS_FILE), "{}").unwrap();
        let err = read_layers(&[dir.path().to_string_lossy().into_owned()]).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "{}: not a stowage layer description: missing field",
                dir.path().join(LAYERS_FILE).display()
            )),
            "{err}"
        );
    }
}

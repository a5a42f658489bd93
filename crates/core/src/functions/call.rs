//! A library function's call — its name and arguments as the derivation carries them — and its
//! checks by name: the one entry that both the plugin (while evaluating) and the builder (before
//! it writes anything) go through.

use crate::functions::args::Evaluator;
use crate::functions::image::ImageArgs;
use crate::functions::index::IndexArgs;
use crate::functions::layer::LayerArgs;
use crate::functions::merge::MergeArgs;
use crate::functions::pull::PullArgs;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The checked arguments of one library function.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Checked {
    /// `streamLayeredImage`, `buildLayeredImage`, `buildImage`.
    Image(ImageArgs),
    /// `mergeImages`, `streamMergedImages`.
    Merge(MergeArgs),
    /// `buildImageIndex`.
    Index(IndexArgs),
    /// `pullImage`.
    Pull(PullArgs),
    /// `buildLayer`.
    Layer(LayerArgs),
}

/// Checks `args_json`, the arguments of the library function `function`, for `nix`.
pub fn check(function: &str, args_json: &str, nix: &Evaluator) -> Result<Checked> {
    Ok(match function {
        "streamLayeredImage" | "buildLayeredImage" => Checked::Image(ImageArgs::from_nix(args_json, nix)?),
        "buildImage" => Checked::Image(ImageArgs::single_layer_from_nix(args_json, nix)?),
        "mergeImages" | "streamMergedImages" => {
            Checked::Merge(MergeArgs::from_nix(args_json, &nix.store_dir)?)
        }
        "buildImageIndex" => Checked::Index(IndexArgs::from_nix(args_json, &nix.store_dir)?),
        "pullImage" => Checked::Pull(PullArgs::from_nix(args_json, nix)?),
        "buildLayer" => Checked::Layer(LayerArgs::from_nix(args_json, nix)?),
        other => return Err(Error::UnknownFunction(other.to_owned())),
    })
}

/// The call that made a derivation, from its structured attributes: the public function, its
/// arguments as given, and what the evaluator knew.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    /// The library function called (`buildLayeredImage`).
    pub function: String,
    /// Its arguments, unchecked.
    pub arguments: serde_json::Value,
    /// The derivation's system.
    pub system: String,
    /// The store root.
    pub store_dir: String,
}

impl Call {
    /// The call's arguments, checked in the build's environment: a shell at `/bin/sh` is the one
    /// Nix put into the sandbox. An error names the function, as the plugin's do.
    pub fn check(&self) -> Result<Checked> {
        let nix = Evaluator {
            system: self.system.clone(),
            store_dir: self.store_dir.clone(),
            sandbox_paths: Path::new("/bin/sh").exists().then(|| "/bin/sh".to_owned()).into_iter().collect(),
        };
        check(&self.function, &self.arguments.to_string(), &nix)
            .map_err(|e| Error::InCall { function: self.function.clone(), source: Box::new(e) })
    }

    /// The checked arguments of an image function.
    pub fn image(&self) -> Result<ImageArgs> {
        match self.check()? {
            Checked::Image(image) => Ok(image),
            _ => Err(self.not("an image function")),
        }
    }

    /// The checked arguments of a merge.
    pub fn merge(&self) -> Result<MergeArgs> {
        match self.check()? {
            Checked::Merge(merge) => Ok(merge),
            _ => Err(self.not("mergeImages")),
        }
    }

    /// The checked arguments of an index.
    pub fn index(&self) -> Result<IndexArgs> {
        match self.check()? {
            Checked::Index(index) => Ok(index),
            _ => Err(self.not("buildImageIndex")),
        }
    }

    /// The checked arguments of a pull.
    pub fn pull(&self) -> Result<PullArgs> {
        match self.check()? {
            Checked::Pull(pull) => Ok(pull),
            _ => Err(self.not("pullImage")),
        }
    }

    /// The checked arguments of a layer.
    pub fn layer(&self) -> Result<LayerArgs> {
        match self.check()? {
            Checked::Layer(layer) => Ok(layer),
            _ => Err(self.not("buildLayer")),
        }
    }

    fn not(&self, wanted: &str) -> Error {
        Error::argument("function", format!("is {:?}, but this builder takes {wanted}", self.function))
    }
}

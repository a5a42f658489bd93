//! What the three image functions — `streamLayeredImage` / `buildLayeredImage` and `buildImage`
//! (one layer on its base's) — share: their arguments, checked into [`ImageArgs`] when the
//! expression is evaluated and again by the builder; the rules for scripts and times; the base
//! image they are built on ([`read_base`]); and the file in which the customisation derivation
//! hands its layer to the image's ([`LAYER_FILE`]).
//!
//! The layered image's plan is [`crate::functions::layered`]; the customisation derivation that
//! runs the scripts is [`crate::functions::customise`].

use crate::format::oci::ImageConfig;
use crate::format::oci::Platform;
use crate::functions::args::{check_in_store, Args, Evaluator};
use crate::image::config::normalise_runtime_config;
use crate::image::plan::{Format, ImageSpec};
use crate::image::platform::cpus;
use crate::image::reference::{check_tag, ImageName};
use crate::layer::perms::{check_perms, Perm};
use crate::read::archive::ArchiveReader;
use crate::read::{read_images, select, verify, FoundImage};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The customisation layer in the customisation derivation's output, as the image's build reads
/// it.
pub const LAYER_FILE: &str = "layer.tar";

/// dockerTools' default creation time and mtime: one second after the epoch.
pub const DEFAULT_CREATED: &str = "1970-01-01T00:00:01Z";
/// dockerTools' default layer budget.
pub const DEFAULT_MAX_LAYERS: u64 = 100;
/// The most layers an image may have: overlayfs stacks about 128, Docker failed at 122 in one
/// report; 125 leaves room for nothing else.
pub const MAX_LAYERS: u64 = 125;

/// The arguments `streamLayeredImage` takes.
const ARGUMENTS: &[&str] = &[
    "name",
    "tag",
    "contents",
    "config",
    "architecture",
    "created",
    "mtime",
    "uid",
    "gid",
    "uname",
    "gname",
    "maxLayers",
    "includeStorePaths",
    "fromImage",
    "fromImageName",
    "fromImageTag",
    "extraCommands",
    "fakeRootCommands",
    "enableFakechroot",
    "shell",
    "nativeBuildInputs",
    "perms",
    "format",
    "includeNixDB",
    "layers",
    "tags",
    "annotations",
];

/// The arguments `buildImage` takes (`diskSize` and `buildVMMemorySize` size dockerTools' VM,
/// which stowage does not need: they are taken and have no effect).
const SINGLE_LAYER_ARGUMENTS: &[&str] = &[
    "name",
    "tag",
    "fromImage",
    "fromImageName",
    "fromImageTag",
    "copyToRoot",
    "keepContentsDirlinks",
    "runAsRoot",
    "extraCommands",
    "config",
    "architecture",
    "created",
    "uid",
    "gid",
    "includeStorePaths",
    "shell",
    "nativeBuildInputs",
    "diskSize",
    "buildVMMemorySize",
    "perms",
    "format",
    "includeNixDB",
    "tags",
    "annotations",
];

/// The checked, normalised arguments of one layered image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageArgs {
    /// Full image name, lower-cased.
    pub name: String,
    /// The name's last component, for derivation names.
    pub base_name: String,
    /// The tag, or `None` to derive it from the stream derivation's hash.
    pub tag: Option<String>,
    /// GOARCH of the image.
    pub architecture: String,
    /// CPU variant, if any.
    pub variant: Option<String>,
    /// RFC 3339 creation time, or `now`.
    pub created: String,
    /// RFC 3339 mtime of every entry, or `now`.
    pub mtime: String,
    /// Owner of every entry.
    pub uid: u64,
    /// Group of every entry.
    pub gid: u64,
    /// Owner name in the tar headers.
    pub uname: String,
    /// Group name in the tar headers.
    pub gname: String,
    /// Layer budget, customisation layer included.
    pub max_layers: u64,
    /// Whether the contents' closure goes into the image.
    pub include_store_paths: bool,
    /// The name of the base image to use when `fromImage` holds several.
    pub from_image_name: Option<String>,
    /// Its tag.
    pub from_image_tag: Option<String>,
    /// How the image file lays the image out.
    #[serde(default, skip_serializing_if = "Format::is_default")]
    pub format: Format,
    /// Owners and modes set on matching entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub perms: Vec<Perm>,
    /// Whether the image is one layer (`buildImage`) on its base's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub single_layer: bool,
    /// Whether a customisation script runs (`extraCommands`, `fakeRootCommands`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub customise: bool,
    /// The shell scripts run with when `shell` is not given: the one Nix puts in its sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_shell: Option<String>,
    /// Whether the image holds a Nix database of its store paths (`includeNixDB`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_nix_db: bool,
    /// Layers made by `buildLayer`, below the image's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<String>,
    /// Tags the copy executables put the image under too, in a registry (`tags`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Annotations of the image's manifest, in an OCI layout and a registry (`annotations`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageArgs {
    /// Checks the arguments (`args_json`: everything but `passthru` and `meta`, which the Nix
    /// glue handles) for an image evaluated by `nix`.
    pub fn from_nix(args_json: &str, nix: &Evaluator) -> Result<ImageArgs> {
        let args = Args::parse(args_json, ARGUMENTS)?;
        let scripts = check_scripts(&args, &["extraCommands", "fakeRootCommands"], nix)?;
        args.bool("enableFakechroot")?;
        Self::checked(&args, nix, scripts, false)
    }

    /// Checks `buildImage`'s arguments (as [`ImageArgs::from_nix`]).
    pub fn single_layer_from_nix(args_json: &str, nix: &Evaluator) -> Result<ImageArgs> {
        let args = Args::parse(args_json, SINGLE_LAYER_ARGUMENTS)?;
        let mut scripts = check_scripts(&args, &["extraCommands"], nix)?;
        args.bool("keepContentsDirlinks")?;
        args.int("diskSize")?;
        args.int("buildVMMemorySize")?;
        for (i, path) in args.string_list("copyToRoot")?.iter().enumerate() {
            check_in_store(format!("copyToRoot[{i}]"), path, &nix.store_dir)?;
        }
        if args.string("runAsRoot")?.is_some_and(|t| is_script(&t)) {
            // The image's own /bin/sh may run it, if the image can have one.
            let may_have_shell =
                args.value("fromImage").is_some() || !args.string_list("copyToRoot")?.is_empty();
            let shell = args.string("shell")?.is_some();
            if !shell && !may_have_shell && nix.sandbox_shell().is_none() {
                return Err(Error::argument(
                    "shell",
                    format!(
                        "is needed to run runAsRoot: the image has neither fromImage nor copyToRoot, \
                         so it has no /bin/sh of its own, and this Nix puts no shell into its sandbox. \
                         Pass a store path with bin/sh, such as `shell = pkgs.bash;`, {BIND_PKGS}"
                    ),
                ));
            }
            scripts = Some(scripts.flatten().or(if shell { None } else { nix.sandbox_shell() }));
        }
        Self::checked(&args, nix, scripts, true)
    }

    /// The image's CPU (its os is linux).
    pub fn cpu(&self) -> Platform {
        Platform::cpu(&self.architecture, self.variant.as_deref())
    }

    fn checked(
        args: &Args,
        nix: &Evaluator,
        scripts: Option<Option<&'static str>>,
        single_layer: bool,
    ) -> Result<ImageArgs> {
        let (system, store_dir) = (nix.system.as_str(), nix.store_dir.as_str());
        let name =
            ImageName::parse(&args.string("name")?.ok_or_else(|| Error::argument("name", "is required"))?)?;
        let tag = args.string("tag")?;
        if let Some(tag) = &tag {
            check_tag(tag)?;
        }
        let tags = args.string_list("tags")?;
        for (i, tag) in tags.iter().enumerate() {
            check_tag(tag).map_err(|e| match e {
                Error::Argument { problem, .. } => Error::argument(format!("tags[{i}]"), problem),
                other => other,
            })?;
        }
        let platform = match args.string("architecture")? {
            Some(arch) => platform_of(&arch)?,
            None => Platform::from_nix_system(system)?,
        };
        let created = args.string("created")?.unwrap_or_else(|| DEFAULT_CREATED.into());
        check_time("created", &created)?;
        let mtime = args.string("mtime")?.unwrap_or_else(|| created.clone());
        check_time("mtime", &mtime)?;
        let id = |arg: &str| -> Result<u64> {
            let v = args.int(arg)?.unwrap_or(0);
            u32::try_from(v)
                .map(u64::from)
                .map_err(|_| Error::argument(arg, format!("is {v}; ids are 0 to 4294967295")))
        };
        let names = |arg: &str| -> Result<String> {
            let v = args.string(arg)?.unwrap_or_else(|| "root".into());
            // ustar keeps 32 bytes for each name, NUL included.
            if v.len() > 31 || v.contains('\0') {
                return Err(Error::argument(
                    arg,
                    format!("{v:?} does not fit a tar header (at most 31 bytes)"),
                ));
            }
            Ok(v)
        };
        let max_layers = args.int("maxLayers")?.unwrap_or(DEFAULT_MAX_LAYERS as i64);
        if !(2..=MAX_LAYERS as i64).contains(&max_layers) {
            return Err(Error::argument(
                "maxLayers",
                format!("is {max_layers}; it must be from 2 (one store layer and the customisation layer) to {MAX_LAYERS}"),
            ));
        }
        for (i, path) in args.string_list("contents")?.iter().enumerate() {
            check_in_store(format!("contents[{i}]"), path, store_dir)?;
        }
        let layers = args.string_list("layers")?;
        for (i, path) in layers.iter().enumerate() {
            check_in_store(format!("layers[{i}]"), path, store_dir)?;
        }
        if let Some(base) = args.string("fromImage")? {
            check_in_store("fromImage", &base, store_dir)?;
        }
        if let Some(config) = args.value("config") {
            normalise_runtime_config(config)?;
        }
        Ok(ImageArgs {
            base_name: name.base,
            name: name.name,
            tag,
            architecture: platform.architecture,
            variant: platform.variant,
            created,
            mtime,
            uid: id("uid")?,
            gid: id("gid")?,
            uname: names("uname")?,
            gname: names("gname")?,
            max_layers: max_layers as u64,
            include_store_paths: args.bool("includeStorePaths")?.unwrap_or(true),
            from_image_name: args.string("fromImageName")?,
            from_image_tag: args.string("fromImageTag")?,
            perms: check_perms(args.value("perms"))?,
            format: args.string("format")?.map(|f| Format::from_name(&f)).transpose()?.unwrap_or_default(),
            single_layer,
            customise: scripts.is_some(),
            sandbox_shell: scripts.flatten().map(Into::into),
            include_nix_db: args.bool("includeNixDB")?.unwrap_or(false),
            layers,
            tags,
            annotations: annotations(args.value("annotations"))?,
        })
    }
}

/// The `annotations` argument: a set of strings, none named by an empty string.
fn annotations(given: Option<&serde_json::Value>) -> Result<BTreeMap<String, String>> {
    let Some(given) = given.filter(|v| !v.is_null()) else { return Ok(BTreeMap::new()) };
    let set = given.as_object().ok_or_else(|| {
        Error::argument("annotations", format!("is {given}; it must be a set of strings (`{{ \"org.opencontainers.image.source\" = \"…\"; }}`)"))
    })?;
    set.iter()
        .map(|(key, value)| match value.as_str() {
            _ if key.is_empty() => Err(Error::argument("annotations", "has an empty name")),
            Some(text) => Ok((key.clone(), text.to_owned())),
            None => {
                Err(Error::argument(format!("annotations.{key}"), format!("is {value}; it must be a string")))
            }
        })
        .collect()
}

/// How to have scripts run as dockerTools runs them, for the errors that ask for a shell.
const BIND_PKGS: &str = "or bind stowage to your nixpkgs to run scripts as dockerTools does, with its \
     bash and stdenv's tools: `(builtins.stowage.withPkgs pkgs).buildLayeredImage { … }`";

/// Whether `text` is a script rather than blanks: the Nix library decides by the same rule
/// (nix/names.nix) whether an image has a customisation derivation, before the core has seen the
/// arguments, so blanks are exactly Nix's string escapes' (space, tab, newline, return).
pub fn is_script(text: &str) -> bool {
    text.chars().any(|c| !matches!(c, ' ' | '\t' | '\n' | '\r'))
}

/// Checks the customisation scripts named in `scripts` and what runs them (`shell`,
/// `nativeBuildInputs`). `None` when no script is given; else the sandbox shell, if `shell` was
/// not given and one is what will run them.
pub fn check_scripts(args: &Args, scripts: &[&str], nix: &Evaluator) -> Result<Option<Option<&'static str>>> {
    let mut given = None;
    for name in scripts {
        if args.string(name)?.is_some_and(|text| is_script(&text)) {
            given.get_or_insert(*name);
        }
    }
    let shell = args.string("shell")?;
    if let Some(shell) = &shell {
        check_in_store("shell", shell, &nix.store_dir)?;
    }
    for (i, input) in args.string_list("nativeBuildInputs")?.iter().enumerate() {
        check_in_store(format!("nativeBuildInputs[{i}]"), input, &nix.store_dir)?;
    }
    let Some(script) = given else { return Ok(None) };
    if shell.is_some() {
        return Ok(Some(None));
    }
    match nix.sandbox_shell() {
        Some(sandbox_shell) => Ok(Some(Some(sandbox_shell))),
        None => Err(Error::argument(
            "shell",
            format!(
                "is needed to run {script}: this Nix puts no shell into its sandbox (its \
                 sandbox-paths has no /bin/sh). Pass a store path with bin/sh, such as \
                 `shell = pkgs.bash;` (its tools, such as pkgs.coreutils, go in nativeBuildInputs), \
                 {BIND_PKGS}"
            ),
        )),
    }
}

/// A GOARCH name (`arm64`) or a Nix system (`aarch64-linux`).
fn platform_of(arch: &str) -> Result<Platform> {
    if arch.contains('-') {
        return Platform::from_nix_system(arch).map_err(|e| Error::argument("architecture", e.to_string()));
    }
    match cpus().iter().find(|(_, goarch, _)| *goarch == arch) {
        // A bare GOARCH names no ARM version, except arm64, which is always v8.
        Some(&(_, architecture, _)) => {
            Ok(Platform::cpu(architecture, (architecture == "arm64").then_some("v8")))
        }
        None => Err(Error::argument(
            "architecture",
            format!("{arch:?} is neither a GOARCH name (amd64, arm64, …) nor a Nix system (x86_64-linux, …)"),
        )),
    }
}

/// `value` (RFC 3339, not before 1970, or `now`) of argument `arg`, as RFC 3339 and as seconds
/// since the epoch. Evaluation checks with it; the build resolves `now` with it.
pub(crate) fn resolve_time(arg: &str, value: &str, now: OffsetDateTime) -> Result<(String, u64)> {
    if value == "now" {
        return Ok((now.format(&Rfc3339).expect("formats"), now.unix_timestamp().max(0) as u64));
    }
    let time = OffsetDateTime::parse(value, &Rfc3339)
        .map_err(|e| Error::argument(arg, format!("{value:?} is not an RFC 3339 time or \"now\": {e}")))?;
    let seconds = u64::try_from(time.unix_timestamp())
        .map_err(|_| Error::argument(arg, format!("{value:?} is before 1970")))?;
    Ok((value.to_owned(), seconds))
}

fn check_time(arg: &str, value: &str) -> Result<()> {
    resolve_time(arg, value, OffsetDateTime::UNIX_EPOCH).map(drop)
}

/// The base image in the file at `path` (picked by `fromImageName`/`fromImageTag`), its layers
/// verified, with its config; it must be for the image's platform.
pub fn read_base(path: &Path, image: &ImageArgs) -> Result<(ImageSpec, ImageConfig)> {
    let images = read_images(path)?;
    let (name, tag) = (image.from_image_name.as_deref(), image.from_image_tag.as_deref());
    // A multi-platform base holds one image per platform (all with the same tag): the one for
    // this image's platform is the base. Otherwise the pick is by name alone, and a base for
    // another platform is an error that says so.
    let fitting: Vec<FoundImage> =
        images.iter().filter(|i| platform_mismatch(&i.config_document(), image).is_none()).cloned().collect();
    if fitting.is_empty() && images.len() > 1 {
        let platforms: Vec<String> = images.iter().map(|i| config_cpu(&i.config_document())).collect();
        return Err(Error::argument(
            "fromImage",
            format!(
                "{}: none of its {} images is for {} (they are for: {}); set architecture to match one",
                path.display(),
                images.len(),
                image.cpu(),
                platforms.join(", ")
            ),
        ));
    }
    let found = select(path, &fitting, name, tag).or_else(|_| select(path, &images, name, tag))?;
    let config = found.config_document();
    if let Some(problem) = platform_mismatch(&config, image) {
        return Err(Error::argument("fromImage", format!("{}: {problem}", path.display())));
    }
    Ok((verify(found.clone(), &mut ArchiveReader::default(), &mut Default::default())?, config))
}

/// Why an image whose config is `config` cannot be the base of `image`, if it cannot. (Its os
/// is told apart first: the platforms compared, and named, are CPUs.)
fn platform_mismatch(config: &ImageConfig, image: &ImageArgs) -> Option<String> {
    if let Some(os) = config.os.as_deref().filter(|os| *os != "linux") {
        return Some(format!("the base image is for {os}, not linux"));
    }
    let base = config.platform()?.without_os();
    let ours = image.cpu();
    let variants_differ = matches!((&base.variant, &ours.variant), (Some(a), Some(b)) if a != b);
    (base.architecture != ours.architecture || variants_differ).then(|| {
        format!("the base image is for {base}, but this image is for {ours}; set architecture to match it")
    })
}

/// The CPU an image config names (`arm64/v8`), or `unknown`.
fn config_cpu(config: &ImageConfig) -> String {
    config.platform().map_or_else(|| "unknown".into(), |platform| platform.without_os().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(json: &str) -> Result<ImageArgs> {
        ImageArgs::from_nix(json, &evaluator(&[]))
    }

    fn evaluator(sandbox_paths: &[&str]) -> Evaluator {
        Evaluator {
            system: "x86_64-linux".into(),
            store_dir: "/store".into(),
            sandbox_paths: sandbox_paths.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn build_image_arguments_are_checked() {
        let single = |json: &str| ImageArgs::single_layer_from_nix(json, &evaluator(&[]));
        let a = single(
            r#"{"name": "a", "copyToRoot": ["/store/x-busybox"], "runAsRoot": "true", "diskSize": 1024}"#,
        )
        .unwrap();
        assert!(a.single_layer && a.customise);
        for (json, needle) in [
            (
                r#"{"name": "a", "keepContentsDirlinks": "yes"}"#,
                "argument 'keepContentsDirlinks' is a string while a Boolean was expected",
            ),
            (
                r#"{"name": "a", "copyToRoot": ["/etc"]}"#,
                "argument 'copyToRoot[0]' \"/etc\" is not a store path",
            ),
            (r#"{"name": "a", "runAsRoot": "true"}"#, "argument 'shell' is needed to run runAsRoot"),
            (r#"{"name": "a", "format": "tar"}"#, "argument 'format' is \"tar\"; it must be"),
            (r#"{"name": "a", "maxLayers": 3}"#, "unexpected argument 'maxLayers'"),
            (r#"{"name": "a", "fakeRootCommands": "x"}"#, "unexpected argument 'fakeRootCommands'"),
        ] {
            let err = single(json).unwrap_err().to_string();
            assert!(err.starts_with(needle), "{json}: {err}");
        }
    }

    #[test]
    fn scripts_need_a_shell() {
        let json = r#"{"name": "a", "fakeRootCommands": "chown 1 x"}"#;
        let err = args(json).unwrap_err().to_string();
        assert!(
            err.starts_with("argument 'shell' is needed to run fakeRootCommands: this Nix puts no shell"),
            "{err}"
        );
        let a = ImageArgs::from_nix(json, &evaluator(&["/bin/sh=/store/x-busybox/bin/busybox"])).unwrap();
        assert_eq!((a.customise, a.sandbox_shell.as_deref()), (true, Some("/bin/sh")));
        let a = args(r#"{"name": "a", "extraCommands": "mkdir tmp", "shell": "/store/x-bash"}"#).unwrap();
        assert_eq!((a.customise, a.sandbox_shell), (true, None));
        // an empty script is no script (dockerTools' default is "")
        let a = args(r#"{"name": "a", "extraCommands": " ", "shell": null}"#).unwrap();
        assert!(!a.customise);
        let err = args(r#"{"name": "a", "extraCommands": "x", "shell": "/bin"}"#).unwrap_err().to_string();
        assert!(err.starts_with("argument 'shell' \"/bin\" is not a store path"), "{err}");
        let err = args(r#"{"name": "a", "nativeBuildInputs": ["/usr"]}"#).unwrap_err().to_string();
        assert!(err.starts_with("argument 'nativeBuildInputs[0]' \"/usr\" is not a store path"), "{err}");
    }

    #[test]
    fn defaults() {
        let a = args(r#"{"name": "Registry.io:5000/Team/App"}"#).unwrap();
        assert_eq!((a.name.as_str(), a.base_name.as_str()), ("registry.io:5000/team/app", "app"));
        assert_eq!((a.architecture.as_str(), a.variant.as_deref()), ("amd64", None));
        assert_eq!((a.created.as_str(), a.mtime.as_str()), (DEFAULT_CREATED, DEFAULT_CREATED));
        assert_eq!((a.max_layers, a.include_store_paths), (100, true));
        assert_eq!((a.uname.as_str(), a.uid), ("root", 0));
        // an argument left out is left out of the derivation too, which stays as it was
        assert!(!a.include_nix_db);
        assert!(!serde_json::to_string(&a).unwrap().contains("includeNixDb"));
        let a = args(r#"{"name": "a", "includeNixDB": true}"#).unwrap();
        assert!(serde_json::to_string(&a).unwrap().contains(r#""includeNixDb":true"#));
        let single =
            ImageArgs::single_layer_from_nix(r#"{"name": "a", "includeNixDB": true}"#, &evaluator(&[]));
        assert!(single.unwrap().include_nix_db);
    }

    #[test]
    fn architectures() {
        let arch = |a: &str| {
            let a = args(&format!(r#"{{"name": "x", "architecture": "{a}"}}"#)).unwrap();
            (a.architecture, a.variant)
        };
        assert_eq!(arch("aarch64-linux"), ("arm64".into(), Some("v8".into())));
        assert_eq!(arch("arm64"), ("arm64".into(), Some("v8".into())));
        assert_eq!(arch("armv7l-linux"), ("arm".into(), Some("v7".into())));
        assert_eq!(arch("amd64"), ("amd64".into(), None));
    }

    #[test]
    fn a_multi_platform_base_gives_the_image_for_the_platform() {
        let dir = tempfile::tempdir().unwrap();
        let base = crate::read::tests::multi_platform_oci(dir.path());
        for (architecture, name) in [("amd64", None), ("arm64", None), ("arm64", Some("multi"))] {
            let mut image = args(&format!(r#"{{"name": "x", "architecture": "{architecture}"}}"#)).unwrap();
            image.from_image_name = name.map(Into::into);
            image.from_image_tag = name.map(|_| "1".into());
            let (spec, config) = read_base(&base, &image).unwrap();
            assert_eq!(config.architecture.as_deref(), Some(architecture));
            assert_eq!(spec.layers.len(), 1);
        }
        let image = args(r#"{"name": "x", "architecture": "riscv64"}"#).unwrap();
        let err = read_base(&base, &image).unwrap_err().to_string();
        assert!(err.ends_with("none of its 2 images is for riscv64 (they are for: amd64, arm64/v8); set architecture to match one"), "{err}");
    }

    #[test]
    fn bad_arguments_are_named() {
        for (json, needle) in [
            (r#"{}"#, "argument 'name' is required"),
            (r#"{"name": "a b"}"#, "argument 'name' \"a b\" is not a valid image name"),
            (r#"{"name": "a", "tag": "-x"}"#, "argument 'tag' \"-x\" is not a valid image tag"),
            (r#"{"name": "a", "maxLayers": 1}"#, "argument 'maxLayers' is 1; it must be from 2"),
            (r#"{"name": "a", "maxLayers": 126}"#, "argument 'maxLayers' is 126"),
            (
                r#"{"name": "a", "created": "yesterday"}"#,
                "argument 'created' \"yesterday\" is not an RFC 3339 time",
            ),
            (
                r#"{"name": "a", "architecture": "sparkle"}"#,
                "argument 'architecture' \"sparkle\" is neither a GOARCH",
            ),
            (r#"{"name": "a", "uid": -1}"#, "argument 'uid' is -1"),
            (r#"{"name": "a", "contents": ["/etc"]}"#, "argument 'contents[0]' \"/etc\" is not a store path"),
            (
                r#"{"name": "a", "contents": ["/store/"]}"#,
                "argument 'contents[0]' \"/store/\" is not a store path",
            ),
            (r#"{"name": "a", "fromImage": "/x"}"#, "argument 'fromImage' \"/x\" is not a store path"),
            (
                r#"{"name": "a", "enableFakechroot": "yes"}"#,
                "argument 'enableFakechroot' is a string while a Boolean was expected",
            ),
            (
                r#"{"name": "a", "config": {"Env": ["X"]}}"#,
                "argument 'config.Env[0]' \"X\" is not of the form NAME=value",
            ),
            (
                r#"{"name": "a", "includeNixDB": 1}"#,
                "argument 'includeNixDB' is an integer while a Boolean was expected",
            ),
            (r#"{"name": "a", "naem": "b"}"#, "unexpected argument 'naem'"),
            (r#"{"name": 1}"#, "argument 'name' is an integer while a string was expected"),
        ] {
            let err = args(json).unwrap_err().to_string();
            assert!(err.starts_with(needle), "{json}: {err}");
        }
    }
}

//! Compiles the C++ shim (`cpp/`) and the cxx bridge against the Nix that pkg-config finds, and
//! links them into `libstowage.so`: that is what makes it a Nix plugin. It is this crate's
//! alone: the core and the `stowage` executable never see Nix, so a new Nix or a new builder
//! recompiles this crate and nothing else.
//!
//! Nix is found with `pkg-config nix-expr` (set `PKG_CONFIG_PATH` for a Nix of your own; Debian
//! puts its `.pc` files in `/usr/lib/nix/pkgconfig`). Where pkg-config's include folder holds no
//! headers (Debian ships none; `make setup` lays them out from Debian's source package),
//! `NIX_INCLUDE_DIR` names the folder that does. Without pkg-config, `NIX_LIB_DIR`,
//! `NIX_INCLUDE_DIR` and `NIX_VERSION` together describe a Nix.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const SHIM: &str = "stowage-shim";
/// The Nix library (the repository's `nix/`), which the plugin carries.
const LIBRARY: &str = "../../nix";

fn main() {
    println!("cargo:rerun-if-changed=cpp");
    println!("cargo:rerun-if-changed=src/ffi.rs");
    println!("cargo:rerun-if-changed={LIBRARY}");
    for var in ["PKG_CONFIG_PATH", "NIX_INCLUDE_DIR", "NIX_LIB_DIR", "NIX_VERSION", "STOWAGE_BUILDER"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let out_dir = env::var("OUT_DIR").unwrap();
    bundle_library(Path::new(&out_dir));
    embed_builder(Path::new(&out_dir));
    let nix = Nix::locate();
    let (major, minor, patch) = nix.version_triple();

    let mut shim = cxx_build::bridge("src/ffi.rs");
    shim.file("cpp/plugin.cc")
        .warnings(false) // Nix's own headers trip -Wextra all over
        .cargo_metadata(false) // linked into the cdylib below, not into every target
        .define("NIX_VERSION_MAJOR", major.to_string().as_str())
        .define("NIX_VERSION_MINOR", minor.to_string().as_str())
        .define("NIX_VERSION_PATCH", patch.to_string().as_str())
        .define("STOWAGE_NIX_VERSION", format!("{:?}", nix.version).as_str());
    for flag in &nix.cflags {
        shim.flag(flag);
    }
    // Nix's headers need its configuration header, which none of them includes.
    for header in nix.config_headers() {
        shim.flag("-include").flag(header.to_str().expect("UTF-8 include path"));
    }
    shim.compile(SHIM);
    let archive = format!("{out_dir}/lib{SHIM}.a");
    weaken_nix_references(&archive);

    // Whole-archive: nothing references the object that registers builtins.stowage (its static
    // constructor does the work), so a normal link would drop it and the builtin with it.
    link_cdylib("-Wl,--whole-archive");
    link_cdylib(&archive);
    link_cdylib("-Wl,--no-whole-archive");
    // Nix's libraries are already loaded in the process that loads the plugin; linking them
    // lets the linker check every other symbol (the weak references to Nix add no dependency).
    for flag in &nix.libs {
        link_cdylib(flag);
    }
    link_cdylib("-lstdc++");
    // Report a missing symbol now rather than when nix loads the plugin (references to Nix are
    // weak, see below, so this covers everything else).
    link_cdylib("-Wl,-z,defs");
}

/// Makes the shim's references to Nix (`nix::…`, mangled `…3nix…`) weak. Loaded into a Nix
/// release other than the one it was built for, the plugin then still loads — a missing symbol
/// binds to null instead of failing `dlopen` — and its version check (cpp/plugin.cc) can refuse
/// with a message naming both releases before anything calls across the mismatched API.
fn weaken_nix_references(archive: &str) {
    let status = Command::new("objcopy")
        .args(["--wildcard", "--weaken-symbol=*3nix*", archive])
        .status()
        .unwrap_or_else(|e| panic!("cannot run objcopy (binutils): {e}"));
    assert!(status.success(), "objcopy failed on {archive}");
}

/// Writes `nix/stowage.nix` with every `import ./<file>.nix` replaced by that file's text, as
/// `library.nix` in `out_dir`: the plugin evaluates it, wherever the plugin is installed.
fn bundle_library(out_dir: &Path) {
    let read = |name: &str| {
        fs::read_to_string(Path::new(LIBRARY).join(name)).unwrap_or_else(|e| panic!("{LIBRARY}/{name}: {e}"))
    };
    let mut text = read("stowage.nix");
    while let Some(start) = text.find("import ./") {
        let end = start
            + text[start..].find(".nix").unwrap_or_else(|| panic!("an import without .nix in nix/"))
            + 4;
        let file = &text[start + "import ./".len()..end];
        text = format!("{}({}){}", &text[..start], read(file), &text[end..]);
    }
    fs::write(out_dir.join("library.nix"), text).unwrap();
}

/// Points `STOWAGE_BUILDER_EXE` (which ffi.rs embeds) at the static image builder named by
/// `STOWAGE_BUILDER` (the Makefile builds it first), or at an empty file: then the plugin's
/// image functions report that the builder is missing.
fn embed_builder(out_dir: &Path) {
    let exe = match env::var("STOWAGE_BUILDER") {
        Ok(path) if !path.is_empty() => {
            println!("cargo:rerun-if-changed={path}");
            PathBuf::from(path)
        }
        _ => {
            let none = out_dir.join("no-builder");
            fs::write(&none, b"").unwrap();
            none
        }
    };
    println!("cargo:rustc-env=STOWAGE_BUILDER_EXE={}", exe.display());
}

fn link_cdylib(arg: &str) {
    println!("cargo:rustc-link-arg-cdylib={arg}");
}

/// A Nix installation to compile against.
struct Nix {
    version: String,
    include_dir: PathBuf,
    cflags: Vec<String>,
    libs: Vec<String>,
}

impl Nix {
    /// pkg-config's Nix, or the one `NIX_LIB_DIR` + `NIX_INCLUDE_DIR` + `NIX_VERSION` describe.
    fn locate() -> Nix {
        let include_override = env::var_os("NIX_INCLUDE_DIR").filter(|d| !d.is_empty()).map(PathBuf::from);
        let nix = match pkg_config(&["--modversion"], None) {
            Ok(version) => {
                // Rebuild when the Nix behind the same PKG_CONFIG_PATH changes.
                for dir in pkg_config(&["--variable=pcfiledir"], None).unwrap().lines() {
                    println!("cargo:rerun-if-changed={dir}/nix-expr.pc");
                }
                Nix::from_pkg_config(version, include_override.as_deref())
            }
            Err(why) => Nix::from_env(include_override).unwrap_or_else(|| {
                panic!(
                    "pkg-config cannot find Nix ({why}); run `make setup`, point PKG_CONFIG_PATH at \
                     the folder holding nix-expr.pc, or set NIX_LIB_DIR, NIX_INCLUDE_DIR and NIX_VERSION"
                )
            }),
        };
        assert!(
            nix.include_dir.join("eval.hh").exists(),
            "Nix's headers (eval.hh) are not in {}; run `make setup` or set NIX_INCLUDE_DIR",
            nix.include_dir.display()
        );
        nix
    }

    fn from_pkg_config(version: String, include_override: Option<&Path>) -> Nix {
        let words = |s: String| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        let mut cflags = words(pkg_config(&["--cflags"], None).unwrap());
        // Debian's .pc files name /usr/include, where it installs no headers: only then does
        // NIX_INCLUDE_DIR stand in for pkg-config's includedir.
        if header_dir(&cflags).is_none() {
            if let Some(dir) = include_override {
                cflags = words(pkg_config(&["--cflags"], Some(dir)).unwrap());
            }
        }
        let include_dir = header_dir(&cflags).unwrap_or_else(|| PathBuf::from(format!("{cflags:?}")));
        Nix {
            version: version.lines().next().unwrap_or_default().trim().to_owned(),
            include_dir,
            cflags,
            libs: words(pkg_config(&["--libs"], None).unwrap()),
        }
    }

    fn from_env(include_dir: Option<PathBuf>) -> Option<Nix> {
        let lib_dir = env::var("NIX_LIB_DIR").ok()?;
        let include_dir = include_dir?.join("nix");
        let version = env::var("NIX_VERSION").ok()?;
        // What Nix's own nix-expr.pc asks for: C++20 from 2.12 on.
        let std = if parse_version(&version) >= (2, 12, 0) { "-std=c++2a" } else { "-std=c++17" };
        let cflags = vec![format!("-I{}", include_dir.display()), std.into()];
        let libs = ["-lnixexpr", "-lnixstore", "-lnixutil", "-lnixmain", "-lgc"].map(String::from);
        Some(Nix {
            version,
            include_dir,
            cflags,
            libs: [vec![format!("-L{lib_dir}")], libs.to_vec()].concat(),
        })
    }

    fn version_triple(&self) -> (u32, u32, u32) {
        parse_version(&self.version)
    }

    /// Before the meson build (2.8 here) one `config.h`; after it one header per library.
    fn config_headers(&self) -> Vec<PathBuf> {
        let split: Vec<PathBuf> = ["config-util.hh", "config-store.hh", "config-expr.hh"]
            .iter()
            .map(|h| self.include_dir.join(h))
            .collect();
        if split.iter().all(|h| h.exists()) {
            return split;
        }
        let single = self.include_dir.join("config.h");
        assert!(single.exists(), "no config.h or config-*.hh in {}", self.include_dir.display());
        vec![single]
    }
}

/// `2.8.0` → (2, 8, 0); suffixes such as `pre` or `-rc1` are ignored.
fn parse_version(version: &str) -> (u32, u32, u32) {
    let mut parts = version.split(['.', 'p', 'r', '-']).map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor, parts.next().flatten().unwrap_or(0)),
        _ => panic!("cannot read Nix's version from {version:?}"),
    }
}

/// The folder among `cflags`' `-I`s that holds Nix's headers.
fn header_dir(cflags: &[String]) -> Option<PathBuf> {
    cflags.iter().filter_map(|f| f.strip_prefix("-I")).map(PathBuf::from).find(|d| d.join("eval.hh").exists())
}

/// `pkg-config QUERY nix-expr nix-store nix-main`, with `includedir` redefined if asked.
fn pkg_config(query: &[&str], includedir: Option<&Path>) -> Result<String, String> {
    let mut cmd = Command::new("pkg-config");
    if let Some(dir) = includedir {
        cmd.arg(format!("--define-variable=includedir={}", dir.display()));
    }
    cmd.args(query).args(["nix-expr", "nix-store", "nix-main"]);
    let out = cmd.output().map_err(|e| format!("cannot run pkg-config: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    String::from_utf8(out.stdout).map_err(|e| e.to_string())
}

//! Compiles the C++ shim (`cpp/`) and the cxx bridge against the Nix that pkg-config finds, and
//! links them into the cdylib only: that is what makes `libstowage.so` a Nix plugin, while the
//! `stowage` executable and the tests never link Nix.
//!
//! Nix is found with `pkg-config nix-expr` (set `PKG_CONFIG_PATH` for a Nix of your own; Debian
//! puts its `.pc` files in `/usr/lib/nix/pkgconfig`). `NIX_INCLUDE_DIR` replaces the include
//! folder pkg-config reports, for a Nix whose headers live elsewhere (Debian ships none; `make
//! setup` lays them out from Debian's source package).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const SHIM: &str = "stowage-shim";

fn main() {
    println!("cargo:rerun-if-changed=cpp");
    println!("cargo:rerun-if-changed=src/ffi.rs");
    for var in ["PKG_CONFIG_PATH", "NIX_INCLUDE_DIR"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if env::var_os("CARGO_FEATURE_PLUGIN").is_none() {
        return;
    }
    let nix = Nix::locate();
    let (major, minor, patch) = nix.version_triple();

    let mut shim = cxx_build::bridge("src/ffi.rs");
    shim.file("cpp/plugin.cc")
        .warnings(false) // Nix's own headers trip -Wextra all over
        .cargo_metadata(false) // linked into the cdylib below, not into every target
        .define("NIX_VERSION_MAJOR", major.to_string().as_str())
        .define("NIX_VERSION_MINOR", minor.to_string().as_str())
        .define("NIX_VERSION_PATCH", patch.to_string().as_str());
    for flag in &nix.cflags {
        shim.flag(flag);
    }
    // Nix's headers need its configuration header, which none of them includes.
    for header in nix.config_headers() {
        shim.flag("-include").flag(header.to_str().expect("UTF-8 include path"));
    }
    shim.compile(SHIM);

    // Whole-archive: nothing references the object that registers builtins.stowage (its static
    // constructor does the work), so a normal link would drop it and the builtin with it.
    let out_dir = env::var("OUT_DIR").unwrap();
    link_cdylib("-Wl,--whole-archive");
    link_cdylib(&format!("{out_dir}/lib{SHIM}.a"));
    link_cdylib("-Wl,--no-whole-archive");
    for flag in &nix.libs {
        link_cdylib(flag);
        if let Some(dir) = flag.strip_prefix("-L") {
            link_cdylib(&format!("-Wl,-rpath,{dir}"));
        }
    }
    link_cdylib("-lstdc++");
    // Report a missing symbol now rather than when nix loads the plugin.
    link_cdylib("-Wl,-z,defs");
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
    fn locate() -> Nix {
        let include_override = env::var("NIX_INCLUDE_DIR").ok();
        let pkg_config = |query: &str| -> String {
            let mut cmd = Command::new("pkg-config");
            if let Some(dir) = &include_override {
                cmd.arg(format!("--define-variable=includedir={dir}"));
            }
            cmd.args([query, "nix-expr", "nix-store", "nix-main"]);
            let out = cmd.output().unwrap_or_else(|e| panic!("cannot run pkg-config: {e}; run `make setup`"));
            if !out.status.success() {
                panic!(
                    "pkg-config cannot find Nix ({}); run `make setup`, or point PKG_CONFIG_PATH at \
                     the folder holding nix-expr.pc",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            String::from_utf8(out.stdout).unwrap()
        };
        let version = pkg_config("--modversion").lines().next().unwrap_or_default().trim().to_owned();
        let words = |s: String| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        let cflags = words(pkg_config("--cflags"));
        let include_dir = cflags
            .iter()
            .filter_map(|f| f.strip_prefix("-I"))
            .map(PathBuf::from)
            .find(|dir| dir.join("eval.hh").exists())
            .unwrap_or_else(|| panic!("Nix's headers (eval.hh) are not in any of {cflags:?}; run `make setup` or set NIX_INCLUDE_DIR"));
        Nix { version, include_dir, cflags, libs: words(pkg_config("--libs")) }
    }

    fn version_triple(&self) -> (u32, u32, u32) {
        let mut parts = self.version.split(['.', 'p', 'r', '-']).map(|p| p.parse::<u32>().ok());
        match (parts.next().flatten(), parts.next().flatten()) {
            (Some(major), Some(minor)) => (major, minor, parts.next().flatten().unwrap_or(0)),
            _ => panic!("cannot read Nix's version from {:?}", self.version),
        }
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
        assert!(exists(&single), "no config.h or config-*.hh in {}", self.include_dir.display());
        vec![single]
    }
}

fn exists(path: &Path) -> bool {
    path.exists()
}

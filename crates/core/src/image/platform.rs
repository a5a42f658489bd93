//! Nix system names → the GOARCH names (and variants) that image configs carry, as a
//! [`Platform`] (the OCI `platform` object, in [`crate::format::oci`]).
//!
//! Docker (through containerd) and the OCI image spec expect an image's `architecture` to be a
//! Go `GOARCH` value and 32-bit ARM's version in `variant`; Nix names CPUs differently
//! (`x86_64-linux`, `armv7l-linux`). `nix/platforms.json` is the one table that maps them; a CPU
//! Go has no name for is an error rather than a guess.

use crate::format::oci::Platform;
use crate::{Error, Result};
use std::sync::OnceLock;

/// One row of the table: a Nix CPU name (the part of a system before the first `-`), its GOARCH
/// and its variant.
pub type Cpu = (&'static str, &'static str, Option<&'static str>);

/// The table, `nix/platforms.json`, which the Nix library reads too (without the plugin, it
/// answers `goarch` itself): Nix CPU names with their GOARCH and variant, and the
/// operating-system parts of the Nix systems `nixpkgs` knows (`lib.systems.doubles`), so a
/// misspelt system (`x86_64-linx`) is caught instead of silently accepted.
///
/// Go's names are those of `go/build/syslist.go` (`knownArch`); variants follow the OCI image
/// index spec (`arm64` → `v8`, 32-bit `arm` → its architecture version; Nix's bare `arm` names
/// no version, so it has no variant; 32-bit ARMv8 is `arm` + `v8`).
struct Table {
    cpus: Vec<Cpu>,
    kernels: Vec<&'static str>,
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        #[derive(serde::Deserialize)]
        struct Json<'a> {
            #[serde(borrow)]
            cpus: Vec<(&'a str, &'a str, Option<&'a str>)>,
            #[serde(borrow)]
            kernels: Vec<&'a str>,
        }
        let json: Json = serde_json::from_str(include_str!("../../../../nix/platforms.json"))
            .expect("nix/platforms.json is valid");
        Table { cpus: json.cpus, kernels: json.kernels }
    })
}

/// Every CPU the table knows.
pub fn cpus() -> &'static [Cpu] {
    &table().cpus
}

impl Platform {
    /// The platform (a CPU) of a Nix system name such as `aarch64-linux`.
    pub fn from_nix_system(system: &str) -> Result<Platform> {
        let unknown = |problem: String| Error::UnknownSystem { system: system.to_owned(), problem };
        let Some((cpu, kernel)) = system.split_once('-') else {
            return Err(unknown("a Nix system is <cpu>-<os>, like x86_64-linux".into()));
        };
        let kernels = &table().kernels;
        if !kernels.contains(&kernel) {
            return Err(unknown(format!(
                "'{kernel}' is not an operating system Nix knows (one of: {})",
                kernels.join(", ")
            )));
        }
        cpus()
            .iter()
            .find(|(nix_cpu, ..)| *nix_cpu == cpu)
            .map(|&(_, architecture, variant)| Platform::cpu(architecture, variant))
            .ok_or_else(|| unknown(format!("Go has no GOARCH name for the CPU '{cpu}'")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch(system: &str) -> (String, Option<String>) {
        let p = Platform::from_nix_system(system).unwrap();
        (p.architecture, p.variant)
    }

    #[test]
    fn common_systems() {
        assert_eq!(arch("x86_64-linux"), ("amd64".into(), None));
        assert_eq!(arch("aarch64-linux"), ("arm64".into(), Some("v8".into())));
        assert_eq!(arch("armv7l-linux"), ("arm".into(), Some("v7".into())));
        assert_eq!(arch("armv6l-linux"), ("arm".into(), Some("v6".into())));
        assert_eq!(arch("armv5tel-linux"), ("arm".into(), Some("v5".into())));
        assert_eq!(arch("i686-linux"), ("386".into(), None));
        assert_eq!(arch("powerpc64le-linux"), ("ppc64le".into(), None));
        assert_eq!(arch("riscv64-linux"), ("riscv64".into(), None));
        assert_eq!(arch("s390x-linux"), ("s390x".into(), None));
        assert_eq!(arch("mips64el-linux"), ("mips64le".into(), None));
        assert_eq!(arch("mipsel-linux"), ("mipsle".into(), None));
        assert_eq!(arch("loongarch64-linux"), ("loong64".into(), None));
        assert_eq!(arch("aarch64-darwin"), ("arm64".into(), Some("v8".into())));
    }

    #[test]
    fn shown_as_its_parts() {
        let mut p = Platform::from_nix_system("aarch64-linux").unwrap();
        assert_eq!(p.to_string(), "arm64/v8");
        p.os = Some("linux".into());
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"architecture":"arm64","os":"linux","variant":"v8"}"#
        );
        assert_eq!(p.without_os().to_string(), "arm64/v8");
        assert_eq!(Platform::cpu("amd64", None).to_string(), "amd64");
    }

    #[test]
    fn every_cpu_once() {
        let mut names: Vec<_> = cpus().iter().map(|(cpu, ..)| *cpu).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), cpus().len(), "a CPU is listed twice");
    }

    #[test]
    fn unknown_systems_name_the_system() {
        for (system, needle) in [
            ("m68k-linux", "no GOARCH name for the CPU 'm68k'"),
            ("x86_64-linx", "'linx' is not an operating system"),
            ("x86_64", "<cpu>-<os>"),
            ("", "<cpu>-<os>"),
            ("-linux", "no GOARCH name for the CPU ''"),
        ] {
            let err = Platform::from_nix_system(system).unwrap_err().to_string();
            assert!(err.starts_with(&format!("unknown system '{system}'")), "{err}");
            assert!(err.contains(needle), "{err} should contain {needle}");
        }
    }
}

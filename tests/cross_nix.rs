//! A plugin built for another Nix release is refused, naming both versions, and never crashes
//! the evaluator. `STOWAGE_OTHER_PLUGIN` names a plugin built against a Nix other than the one
//! under test (`make test` sets it when it tests more than one Nix).

mod support;

use support::{run_ok, TestNix};

#[test]
fn a_plugin_for_another_nix_is_refused() {
    let other = std::env::var("STOWAGE_OTHER_PLUGIN")
        .expect("STOWAGE_OTHER_PLUGIN must name a plugin built for another Nix (make test sets it)");
    let nix = TestNix::new();
    let version = run_ok(nix.bare("nix-instantiate").arg("--version")).stdout;
    let running = String::from_utf8(version).unwrap().trim().rsplit(' ').next().unwrap().to_owned();

    let out = nix
        .bare("nix-instantiate")
        .args(["--option", "plugin-files", &other, "--eval", "-E", "builtins ? stowage"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "nix must go on without the plugin:\n{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "false");
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("stowage: this libstowage.so was built for Nix "))
        .unwrap_or_else(|| panic!("no refusal in:\n{stderr}"));
    let (built, rest) = line.split_once(' ').unwrap();
    assert!(built.split('.').all(|part| part.parse::<u32>().is_ok()), "built for {built:?}");
    assert_ne!(built, running);
    assert!(
        rest.starts_with(&format!("but was loaded into Nix {running}; builtins.stowage is not available.")),
        "{line}"
    );
}

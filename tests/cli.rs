//! The `stowage` executable's own surface.

use std::process::Command;

fn stowage(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stowage")).args(args).output().unwrap()
}

#[test]
fn version_and_help() {
    let out = stowage(&["--version"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("stowage {}\n", env!("CARGO_PKG_VERSION")));

    let out = stowage(&["--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout).unwrap().contains("Usage: stowage"));
}

#[test]
fn unknown_arguments_are_refused_on_stderr() {
    let out = stowage(&["--frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "stdout carries only data");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--frobnicate"));
}

#[test]
fn a_build_cores_value_that_is_not_a_number_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    std::fs::write(&plan, r#"{"mtime":1,"images":[]}"#).unwrap();
    for (cores, ok) in [("two", false), ("-1", false), ("0", true), ("2", true)] {
        let out = Command::new(env!("CARGO_BIN_EXE_stowage"))
            .arg("stream")
            .arg(&plan)
            .env("NIX_BUILD_CORES", cores)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), ok, "NIX_BUILD_CORES={cores}: {stderr}");
        if !ok {
            assert!(out.stdout.is_empty(), "nothing is written before the error");
            assert!(
                stderr.contains(&format!("environment variable NIX_BUILD_CORES is \"{cores}\"")),
                "{stderr}"
            );
        }
    }
}

/// The defaults `push --help` states are the registry timeouts' own.
#[test]
fn push_help_states_the_registry_timeout_defaults() {
    let help = String::from_utf8(stowage(&["push", "--help"]).stdout).unwrap();
    // clap wraps lines at its own width
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let timeouts = stowage_core::registry::timeouts::Timeouts::default();
    for said in [
        format!("$STOWAGE_REGISTRY_TIMEOUT, else {}", timeouts.timeout.as_secs()),
        format!("$STOWAGE_REGISTRY_MIN_RATE, else {}", timeouts.min_rate),
    ] {
        assert!(help.contains(&said), "{said}:\n{help}");
    }
}

/// docs/cli.md quotes the command's own help: each `$ stowage …` block there is what the
/// command prints today, so the page cannot drift from the command.
#[test]
fn the_cli_page_quotes_the_current_help() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cli.md")).unwrap();
    let mut quoted = 0;
    for block in page.split("```\n$ stowage ").skip(1) {
        let (command, rest) = block.split_once('\n').unwrap();
        let shown = &rest[..rest.find("```").expect("a closed code block")];
        let args: Vec<&str> = command.split_whitespace().collect();
        let out = stowage(&args);
        assert!(out.status.success(), "stowage {command}");
        assert_eq!(String::from_utf8(out.stdout).unwrap(), shown, "docs/cli.md: `stowage {command}`");
        quoted += 1;
    }
    assert!(quoted >= 4, "docs/cli.md quotes {quoted} help texts");
}

/// A builder subcommand outside a derivation (no structured attributes), or given attributes it
/// cannot read, fails with a message naming what is wrong, and writes nothing.
#[test]
fn builders_need_their_structured_attributes() {
    let out = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("build-archive")
        .env_remove("NIX_ATTRS_JSON_FILE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "environment variable NIX_ATTRS_JSON_FILE is not set: this subcommand is a derivation builder"
        ),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let attrs = dir.path().join("attrs.json");
    let out_path = dir.path().join("out");
    std::fs::write(&attrs, format!(r#"{{"outputs": {{"out": "{}"}}}}"#, out_path.display())).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stowage"))
        .arg("build-archive")
        .env("NIX_ATTRS_JSON_FILE", &attrs)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{}: missing field `stream`", attrs.display())), "{stderr}");
    assert!(!out_path.exists(), "nothing is written");
}

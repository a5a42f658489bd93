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

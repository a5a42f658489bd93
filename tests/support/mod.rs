//! A throw-away Nix for tests: its own store (whose root is not `/nix/store`), state, logs and
//! configuration, offline, with the plugin this crate built.
//!
//! `STOWAGE_PLUGIN` names the plugin and `STOWAGE_NIX_BIN` the folder of the Nix commands to
//! test it with (the Makefile sets both, once per supported Nix); by default, the release
//! build and the commands on `PATH`. With `STOWAGE_MODE=library`, the same tests run without
//! the plugin: stowage is the Nix library of this checkout given the image builder
//! (`STOWAGE_BUILDER`), and what the plugin reports while evaluating, the builder reports at
//! build time.

#![allow(dead_code)] // each test binary uses its own part of the harness

pub mod disk;
pub mod hostile;
pub mod images;
pub mod registry;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The plugin under test: `$STOWAGE_PLUGIN`, or the release build `make` produces.
pub fn plugin() -> PathBuf {
    made("STOWAGE_PLUGIN", "target/release/libstowage.so", "the plugin", "make build")
}

/// What `make` made: `$var`, or `default` in this checkout; absolute, for commands run in
/// other folders.
fn made(var: &str, default: &str, what: &str, make: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(default));
    assert!(path.exists(), "{what} {} does not exist: run `{make}` first", path.display());
    path.canonicalize().unwrap()
}

/// Whether the tests run in library mode (`STOWAGE_MODE=library`): without the plugin.
pub fn library_mode() -> bool {
    match std::env::var("STOWAGE_MODE").as_deref() {
        Ok("library") => true,
        Ok("plugin") | Err(_) => false,
        Ok(other) => panic!("STOWAGE_MODE is {other:?}: it must be \"plugin\" or \"library\""),
    }
}

/// The image builder library mode is given: `$STOWAGE_BUILDER`, or the one `make` builds.
pub fn builder() -> PathBuf {
    made("STOWAGE_BUILDER", "target/builder/stowage", "the image builder", "make builder")
}

/// A Nix expression for stowage's functions in the mode under test: builtins.stowage, or this
/// checkout's library given the builder.
pub fn stowage() -> String {
    if library_mode() {
        library_expr()
    } else {
        "builtins.stowage".into()
    }
}

/// This checkout's library in library mode, given the image builder.
pub fn library_expr() -> String {
    format!(
        "(import {}/nix {{ builder = {}; }})",
        Path::new(env!("CARGO_MANIFEST_DIR")).display(),
        builder().display()
    )
}

/// The Nix command `name`, from `$STOWAGE_NIX_BIN` if set.
pub fn nix_program(name: &str) -> PathBuf {
    match std::env::var_os("STOWAGE_NIX_BIN") {
        Some(dir) => Path::new(&dir).join(name),
        None => PathBuf::from(name),
    }
}

/// With `STOWAGE_EXPECT_NIX` set (`2.26`), checks that the Nix commands are that release, so a
/// run meant for one Nix cannot quietly test another.
fn check_nix_release() {
    static CHECKED: std::sync::Once = std::sync::Once::new();
    CHECKED.call_once(|| {
        let Ok(expected) = std::env::var("STOWAGE_EXPECT_NIX") else { return };
        let out = run_ok(Command::new(nix_program("nix-instantiate")).arg("--version"));
        let version = String::from_utf8(out.stdout).unwrap();
        let version = version.trim().rsplit(' ').next().unwrap();
        assert!(
            version.starts_with(&format!("{expected}.")),
            "testing Nix {version}, but {expected} was asked for"
        );
    });
}

/// One isolated Nix installation, removed when dropped.
pub struct TestNix {
    dir: tempfile::TempDir,
    store: PathBuf,
}

impl TestNix {
    pub fn new() -> TestNix {
        check_nix_release();
        let dir = tempfile::Builder::new().prefix("stowage-test-").tempdir().unwrap();
        Self::in_dir(dir)
    }

    /// A Nix whose store is `root/store` (its state and configuration go in a fresh temporary
    /// folder): two of these with one root are two machines with the same store root.
    pub fn new_with_root(root: &Path) -> TestNix {
        check_nix_release();
        let dir = tempfile::Builder::new().prefix("stowage-test-").tempdir().unwrap();
        let mut nix = Self::in_dir(dir);
        nix.store = root.join("store");
        // Nix refuses a store behind a symlink, so the store really lives at the root; a
        // leftover from an earlier instance is removed.
        let _ = std::fs::remove_dir_all(&nix.store);
        nix
    }

    /// A Nix whose store, state and configuration live in `dir` (so a test can choose the
    /// store root), removed when dropped.
    pub fn in_dir(dir: tempfile::TempDir) -> TestNix {
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/nix.conf"),
            "substituters =\nbuild-users-group =\nexperimental-features = nix-command\n",
        )
        .unwrap();
        let store = dir.path().join("store");
        TestNix { dir, store }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The store root, as this Nix is told to use it.
    pub fn store_dir(&self) -> PathBuf {
        self.store.clone()
    }

    /// `program` (a Nix command) set up for this installation, without the plugin.
    pub fn bare(&self, program: &str) -> Command {
        let mut cmd = Command::new(nix_program(program));
        let root = self.dir.path();
        cmd.env("NIX_STORE_DIR", &self.store)
            .env("NIX_STATE_DIR", root.join("state"))
            .env("NIX_LOG_DIR", root.join("log"))
            .env("NIX_CONF_DIR", root.join("etc"))
            .env("NIX_USER_CONF_FILES", root.join("etc/no-user.conf"))
            .env("HOME", root)
            .env_remove("NIX_CONFIG")
            .env_remove("NIX_PATH")
            .env_remove("STOWAGE_TEST_PANIC");
        cmd
    }

    /// `program` with the plugin loaded through `--option plugin-files` (which must come before
    /// a `nix` subcommand, so it goes first); in library mode, without it.
    pub fn cmd(&self, program: &str) -> Command {
        if library_mode() {
            return self.bare(program);
        }
        self.with_plugin(program)
    }

    /// `program` with the plugin loaded, whatever the mode.
    pub fn with_plugin(&self, program: &str) -> Command {
        let mut cmd = self.bare(program);
        cmd.arg("--option").arg("plugin-files").arg(plugin());
        cmd
    }

    /// Evaluates `expr` strictly with `nix-instantiate --eval --json` and parses the result.
    pub fn eval_json(&self, expr: &str) -> serde_json::Value {
        let out = run_ok(self.cmd("nix-instantiate").args(["--eval", "--strict", "--json", "-E", expr]));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Evaluates `expr` with `nix eval --raw`, which may write to the store.
    pub fn eval_raw(&self, expr: &str) -> String {
        let out = run_ok(self.cmd("nix").args(["eval", "--raw", "--expr", expr]));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Builds `expr` with `nix-build` in the sandbox (which sees `/bin/busybox` for test
    /// derivations) and returns the output path.
    pub fn build(&self, expr: &str) -> PathBuf {
        PathBuf::from(String::from_utf8(self.build_output(expr).stdout).unwrap().trim())
    }

    /// Like [`TestNix::build`], returning what nix-build printed (the build log on stderr).
    pub fn build_output(&self, expr: &str) -> Output {
        self.build_output_with(expr, &[])
    }

    /// Like [`TestNix::build_output`], with more arguments for nix-build (`--check`, options).
    pub fn build_output_with(&self, expr: &str, args: &[&str]) -> Output {
        let sandbox = ["--option", "sandbox", "true", "--option", "sandbox-paths", "/bin/busybox"];
        run_ok(self.cmd("nix-build").arg("--no-out-link").args(sandbox).args(args).args(["-E", expr]))
    }

    /// Builds `expr` like [`TestNix::build`]; the build must fail. Returns the error output.
    pub fn build_error(&self, expr: &str) -> String {
        let sandbox = ["--option", "sandbox", "true", "--option", "sandbox-paths", "/bin/busybox"];
        let out =
            self.cmd("nix-build").arg("--no-out-link").args(sandbox).args(["-E", expr]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "building {expr} should fail:\n{stderr}");
        stderr
    }

    /// Like [`TestNix::eval_error`], with more options for Nix (`--option sandbox-paths …`),
    /// which the build is given too in library mode.
    pub fn eval_error_with(&self, options: &[&str], expr: &str) -> String {
        let out = if library_mode() {
            let expr = expr.strip_suffix(".drvPath").unwrap_or(expr);
            self.cmd("nix-build")
                .args(["--no-out-link", "--option", "sandbox", "true"])
                .args(options)
                .args(["-E", expr])
                .output()
        } else {
            self.cmd("nix-instantiate").args(options).args(["--eval", "--strict", "-E", expr]).output()
        }
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{expr} should fail:\n{stderr}");
        stderr
    }

    /// Evaluates `expr`, which must fail, and returns the error output. In library mode,
    /// where argument errors surface when the image is built, builds `expr` (without a final
    /// `.drvPath`) instead.
    pub fn eval_error(&self, expr: &str) -> String {
        if library_mode() {
            return self.build_error(expr.strip_suffix(".drvPath").unwrap_or(expr));
        }
        let out = self.cmd("nix-instantiate").args(["--eval", "--strict", "-E", expr]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "evaluating {expr} should fail with an evaluation error:\n{stderr}"
        );
        stderr
    }
}

/// nix-build options that build as Nix's unprivileged build users (`make setup` makes the
/// `nixbld` users) in the sandbox, and options that build without the sandbox.
pub fn build_user_and_no_sandbox_options() -> [&'static [&'static str]; 2] {
    // The Nix 2.26 that `make setup` builds is built without seccomp sandboxing
    // (scripts/nix-2.26/build.sh), and refuses build users unless told to do without its own
    // filter; stowage's is the builder's, and needs no libseccomp.
    let build_users: &'static [&'static str] =
        if std::env::var("STOWAGE_EXPECT_NIX").is_ok_and(|v| v == "2.26") {
            &["--option", "build-users-group", "nixbld", "--option", "filter-syscalls", "false"]
        } else {
            &["--option", "build-users-group", "nixbld"]
        };
    [build_users, &["--option", "sandbox", "false"]]
}

/// Runs `cmd`, which must succeed.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd`, which must fail without a word on stdout; returns its stderr.
pub fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{cmd:?} should fail:\n{stderr}");
    assert!(out.stdout.is_empty(), "stdout stays quiet");
    stderr
}

/// A Nix string literal holding `s`.
pub fn nix_str(s: &str) -> String {
    serde_json::to_string(s).unwrap().replace("${", "\\${")
}

/// The hash Nix says a fixed-output derivation really has, from its "hash mismatch" error.
pub fn reported_hash(error: &str) -> String {
    assert!(error.contains("hash mismatch"), "{error}");
    let line =
        error.lines().find(|l| l.trim_start().starts_with("got:")).unwrap_or_else(|| panic!("{error}"));
    line.split_whitespace().last().unwrap().to_owned()
}

//! The plugin in a real Nix (Debian's `nix-instantiate`, `nix-build`, `nix eval`), each test in
//! a throw-away store whose root is not `/nix/store`, offline.

mod support;

use serde_json::json;
use std::path::Path;
use support::{nix_str, run_ok, TestNix};

#[test]
fn builtins_has_stowage_only_with_the_plugin() {
    let nix = TestNix::new();
    assert_eq!(nix.eval_json("builtins ? stowage"), json!(true));
    assert_eq!(
        nix.eval_json("builtins.attrNames builtins.stowage"),
        json!([
            "buildImage",
            "buildImageIndex",
            "buildImageWithNixDb",
            "buildLayer",
            "buildLayeredImage",
            "buildLayeredImageWithNixDb",
            "fakeNss",
            "goarch",
            "mergeImages",
            "overlay",
            "pullImage",
            "streamLayeredImage",
            "streamMergedImages",
            "version",
            "withPkgs"
        ])
    );
    assert_eq!(nix.eval_json("builtins.stowage.version"), json!(env!("CARGO_PKG_VERSION")));
    let out = run_ok(nix.bare("nix-instantiate").args(["--eval", "-E", "builtins ? stowage"]));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "false");
}

/// The command the plugin-foundation issue names as its acceptance check, verbatim.
#[test]
fn goarch_of_armv7l_on_the_command_line() {
    let nix = TestNix::new();
    let out = run_ok(
        nix.bare("nix-instantiate")
            .args(["--eval", "--strict", "--json", "--option", "plugin-files"])
            .arg(support::plugin())
            .args(["-E", r#"builtins.stowage.goarch "armv7l-linux""#]),
    );
    // Nix 2.26 ends the line; 2.8 does not.
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim_end(), r#"{"architecture":"arm","variant":"v7"}"#);
}

#[test]
fn goarch_every_row() {
    // Written out here rather than taken from the crate's table, so the table is checked.
    let expected = json!({
        "x86_64-linux": { "architecture": "amd64" },
        "i686-linux": { "architecture": "386" },
        "i586-linux": { "architecture": "386" },
        "i486-linux": { "architecture": "386" },
        "i386-linux": { "architecture": "386" },
        "aarch64-linux": { "architecture": "arm64", "variant": "v8" },
        "aarch64_be-linux": { "architecture": "arm64be", "variant": "v8" },
        "arm-none": { "architecture": "arm" },
        "armv5tel-linux": { "architecture": "arm", "variant": "v5" },
        "armv6l-linux": { "architecture": "arm", "variant": "v6" },
        "armv6m-none": { "architecture": "arm", "variant": "v6" },
        "armv7l-linux": { "architecture": "arm", "variant": "v7" },
        "armv7a-linux": { "architecture": "arm", "variant": "v7" },
        "armv7r-none": { "architecture": "arm", "variant": "v7" },
        "armv7m-none": { "architecture": "arm", "variant": "v7" },
        "armv8a-linux": { "architecture": "arm", "variant": "v8" },
        "powerpc-linux": { "architecture": "ppc" },
        "powerpc64-linux": { "architecture": "ppc64" },
        "powerpc64le-linux": { "architecture": "ppc64le" },
        "s390-linux": { "architecture": "s390" },
        "s390x-linux": { "architecture": "s390x" },
        "riscv32-linux": { "architecture": "riscv" },
        "riscv64-linux": { "architecture": "riscv64" },
        "mips-linux": { "architecture": "mips" },
        "mipsel-linux": { "architecture": "mipsle" },
        "mips64-linux": { "architecture": "mips64" },
        "mips64el-linux": { "architecture": "mips64le" },
        "loongarch64-linux": { "architecture": "loong64" },
        "sparc-linux": { "architecture": "sparc" },
        "sparc64-linux": { "architecture": "sparc64" },
        "wasm32-wasi": { "architecture": "wasm" },
        "x86_64-darwin": { "architecture": "amd64" },
        "aarch64-darwin": { "architecture": "arm64", "variant": "v8" },
    });
    let systems: Vec<&String> = expected.as_object().unwrap().keys().collect();
    let expr = format!(
        "builtins.listToAttrs (map (s: {{ name = s; value = builtins.stowage.goarch s; }}) {})",
        serde_json::to_string(&systems).unwrap().replace(',', " ")
    );
    let nix = TestNix::new();
    assert_eq!(nix.eval_json(&expr), expected);
}

#[test]
fn goarch_errors() {
    let nix = TestNix::new();
    for (expr, message) in [
        (
            r#"builtins.stowage.goarch "m68k-linux""#,
            "stowage.goarch: unknown system 'm68k-linux': Go has no GOARCH name for the CPU 'm68k'",
        ),
        (
            r#"builtins.stowage.goarch "x86_64-linx""#,
            "stowage.goarch: unknown system 'x86_64-linx': 'linx' is not an operating system Nix knows",
        ),
        (
            r#"builtins.stowage.goarch "amd64""#,
            "stowage.goarch: unknown system 'amd64': a Nix system is <cpu>-<os>",
        ),
        (
            "builtins.stowage.goarch 1",
            "stowage.goarch: the argument is an integer while a string was expected",
        ),
        ("builtins.stowage.goarch { }", "stowage.goarch: the argument is a set while a string was expected"),
    ] {
        let stderr = nix.eval_error(expr);
        assert!(stderr.contains(message), "{expr}: expected {message:?} in\n{stderr}");
    }
    // a string that is not UTF-8 (it was "data for rust::Str is not utf-8")
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("binary"), b"x86\xff-linux").unwrap();
    let stderr = nix
        .eval_error(&format!("builtins.stowage.goarch (builtins.readFile {}/binary)", dir.path().display()));
    assert!(stderr.contains("stowage.goarch: argument 'system' is a string that is not UTF-8"), "{stderr}");
    assert_eq!(
        nix.eval_json(r#"(builtins.tryEval (builtins.stowage.goarch "m68k-linux")).success"#),
        json!(false)
    );
}

/// `builtins.storeDir`, which must be the throw-away store's root.
fn store_dir(nix: &TestNix) -> String {
    let dir = nix.eval_json("builtins.storeDir").as_str().unwrap().to_owned();
    assert_eq!(Path::new(&dir), nix.store_dir());
    assert!(!dir.starts_with("/nix/store"));
    dir
}

#[test]
fn fake_nss_contents() {
    let nix = TestNix::new();
    let store = store_dir(&nix);
    let path = nix.eval_raw(
        r#"builtins.stowage.fakeNss {
             extraPasswdLines = [ "app:x:1000:1000:The App:/home/app:/bin/sh" ];
             extraGroupLines = [ "app:x:1000:app" "ops:x:1001:" ];
           }"#,
    );
    assert!(path.starts_with(&format!("{store}/")) && path.ends_with("-fake-nss"), "{path}");
    let read = |file: &str| std::fs::read_to_string(Path::new(&path).join(file)).unwrap();
    assert_eq!(
        read("etc/passwd"),
        "root:x:0:0:root user:/var/empty:/bin/sh\n\
         app:x:1000:1000:The App:/home/app:/bin/sh\n\
         nobody:x:65534:65534:nobody:/var/empty:/bin/sh\n"
    );
    assert_eq!(read("etc/group"), "root:x:0:\napp:x:1000:app\nops:x:1001:\nnobody:x:65534:\n");
    assert_eq!(read("etc/nsswitch.conf"), "hosts: files dns\n");
    let empty = Path::new(&path).join("var/empty");
    assert!(empty.is_dir() && std::fs::read_dir(&empty).unwrap().next().is_none());

    // A valid store path, with no references, whose recorded hash is that of its contents.
    let references = run_ok(nix.bare("nix-store").args(["--query", "--references", &path]));
    assert!(references.stdout.is_empty());
    let dump = run_ok(nix.bare("nix-store").args(["--dump", &path])).stdout;
    let hashed = run_ok(
        nix.bare("nix-hash").args(["--type", "sha256", "--flat", "--base32"]).arg(write_temp(&nix, &dump)),
    );
    assert_eq!(nar_hash(&nix, &path), format!("sha256:{}", String::from_utf8(hashed.stdout).unwrap().trim()));

    // Nix reads it back through the store, too.
    assert_eq!(
        nix.eval_raw(r#"builtins.readFile "${builtins.stowage.fakeNss { }}/etc/group""#),
        "root:x:0:\nnobody:x:65534:\n"
    );
}

fn write_temp(nix: &TestNix, bytes: &[u8]) -> std::path::PathBuf {
    let file = nix.root().join("dump.nar");
    std::fs::write(&file, bytes).unwrap();
    file
}

#[test]
fn fake_nss_is_deterministic() {
    let nix = TestNix::new();
    let args = r#"{ extraPasswdLines = [ "a:x:1:1::/:/bin/sh" ]; }"#;
    let expr = format!("builtins.stowage.fakeNss {args}");
    let first = nix.eval_raw(&expr);
    assert_eq!(nix.eval_raw(&expr), first, "same arguments, same path");
    // nix-instantiate --eval cannot write to the store; it still computes the same path.
    assert_eq!(nix.eval_json(&expr), json!(first));
    // Default arguments and explicit empty lists are the same fakeNss; other lines are not.
    assert_eq!(
        nix.eval_raw("builtins.stowage.fakeNss { }"),
        nix.eval_raw("builtins.stowage.fakeNss { extraPasswdLines = [ ]; extraGroupLines = [ ]; }")
    );
    assert_ne!(nix.eval_raw("builtins.stowage.fakeNss { }"), first);

    // Another store (another root) gives another path, but the same contents.
    let other = TestNix::new();
    let moved = other.eval_raw(&expr);
    assert_ne!(moved, first);
    assert_eq!(nar_hash(&other, &moved), nar_hash(&nix, &first));
}

fn nar_hash(nix: &TestNix, path: &str) -> String {
    let out = run_ok(nix.bare("nix-store").args(["--query", "--hash", path]));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn fake_nss_context_makes_it_a_build_input() {
    let nix = TestNix::new();
    let expr = r#"
      let nss = builtins.stowage.fakeNss { extraGroupLines = [ "app:x:1000:" ]; };
      in derivation {
        name = "reads-fake-nss";
        system = builtins.currentSystem;
        builder = "/bin/busybox";
        args = [ "sh" "-c" "/bin/busybox cat ${nss}/etc/group > $out" ];
      }"#;
    // In the sandbox only declared inputs are visible: the build succeeds only if the string's
    // context made the fakeNss path one.
    let out = nix.build_output(expr);
    let result = String::from_utf8(out.stdout).unwrap();
    assert_eq!(std::fs::read_to_string(result.trim()).unwrap(), "root:x:0:\napp:x:1000:\nnobody:x:65534:\n");

    let drv = run_ok(nix.cmd("nix-instantiate").args(["-E", expr]));
    let drv = String::from_utf8(drv.stdout).unwrap();
    let shown = run_ok(nix.cmd("nix").args(["show-derivation", drv.trim()]));
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    let inputs = &shown[drv.trim()]["inputSrcs"];
    let nss = nix.eval_raw(r#"builtins.stowage.fakeNss { extraGroupLines = [ "app:x:1000:" ]; }"#);
    assert_eq!(inputs, &json!([nss]));
}

#[test]
fn fake_nss_bad_arguments() {
    let nix = TestNix::new();
    for (args, message) in [
        ("[ ]", "stowage.fakeNss: the argument is a list while a set was expected"),
        (r#""x""#, "stowage.fakeNss: the argument is a string while a set was expected"),
        ("{ extraPaswdLines = [ ]; }", "stowage.fakeNss: unexpected argument 'extraPaswdLines'; the arguments are: extraPasswdLines, extraGroupLines"),
        (r#"{ extraPasswdLines = "app:x:1:1::/:/bin/sh"; }"#, "stowage.fakeNss: argument 'extraPasswdLines' is a string while a list was expected"),
        ("{ extraGroupLines = [ 1 ]; }", "stowage.fakeNss: argument 'extraGroupLines[0]' is an integer while a string was expected"),
        (r#"{ extraPasswdLines = [ "app:x:1000" ]; }"#, r#"stowage.fakeNss: argument 'extraPasswdLines[0]' "app:x:1000" has 3 fields; a line here has 7 (name:password:uid:gid:gecos:home:shell)"#),
        (r#"{ extraPasswdLines = [ "ok:x:1:1::/:/bin/sh" "app:x:1:1::/:/bin/sh\nroot2:x:0:0::/:/bin/sh" ]; }"#, "argument 'extraPasswdLines[1]' \"app:x:1:1::/:/bin/sh\\nroot2:x:0:0::/:/bin/sh\" contains a line break"),
        (r#"{ extraPasswdLines = [ "app:x:one:1::/:/bin/sh" ]; }"#, r#"has uid "one", which is not a number"#),
        (r#"{ extraGroupLines = [ "nobody:x:99:" ]; }"#, "argument 'extraGroupLines[0]' \"nobody:x:99:\" defines 'nobody', which fakeNss always has"),
        (r#"{ extraGroupLines = [ "g:x:5:" "g:x:6:" ]; }"#, "defines 'g' again (already in extraGroupLines[0])"),
        (r#"{ extraGroupLines = [ "g:x:5:a b" ]; }"#, r#"has a bad member "a b""#),
        (r#"{ extraPasswdLines = [ "app:x:1:1::/:${builtins.toFile "sh" ""}" ]; }"#, "stowage.fakeNss: extraPasswdLines and extraGroupLines must not refer to store paths"),
    ] {
        let expr = format!("builtins.stowage.fakeNss {args}");
        let stderr = nix.eval_error(&expr);
        assert!(stderr.contains(message), "{expr}: expected {message:?} in\n{stderr}");
        // Bad arguments are the caller's to handle, as with `throw`.
        assert_eq!(nix.eval_json(&format!("(builtins.tryEval ({expr})).success")), json!(false), "{expr}");
    }
    // Nothing was written for any of them.
    let written: Vec<_> = std::fs::read_dir(nix.store_dir())
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .filter(|n| n.to_string_lossy().contains("fake-nss"))
                .collect()
        })
        .unwrap_or_default();
    assert!(written.is_empty(), "{written:?}");
}

#[test]
fn a_panic_becomes_an_evaluation_error() {
    let nix = TestNix::new();
    for (builtin, expr) in
        [("fakeNss", "builtins.stowage.fakeNss { }"), ("goarch", r#"builtins.stowage.goarch "x86_64-linux""#)]
    {
        let out = nix
            .cmd("nix-instantiate")
            .env("STOWAGE_TEST_PANIC", builtin)
            .args(["--eval", "--strict", "-E", expr])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // An abort would be signal 6 (exit 134 from a shell); nix must report and exit 1.
        assert_eq!(out.status.code(), Some(1), "{builtin}: {stderr}");
        assert!(stderr.contains(&format!("stowage.{builtin}: internal error, please report it: panicked: STOWAGE_TEST_PANIC asked {builtin} to panic")), "{stderr}");
        // The evaluator goes on after a caught panic.
        let out = nix.cmd("nix-instantiate").env("STOWAGE_TEST_PANIC", builtin)
            .args(["--eval", "--strict", "-E", &format!("[ (builtins.tryEval ({expr})).success (builtins.stowage.goarch \"aarch64-linux\").architecture ]")])
            .output().unwrap();
        if builtin == "fakeNss" {
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                r#"[ false "arm64" ]"#,
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn import_nix_gives_the_same_functions() {
    let nix = TestNix::new();
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("nix");
    let lib = nix_str(lib.to_str().unwrap());
    assert_eq!(
        nix.eval_json(&format!(
            "let s = import {lib}; in [ (builtins.attrNames s == [ \"__functor\" ] ++ builtins.attrNames builtins.stowage)
               (s.fakeNss {{ }} == builtins.stowage.fakeNss {{ }}) (s.goarch \"aarch64-linux\") ]"
        )),
        // (fakeNss is the plugin's: a path written while evaluating, not library mode's derivation)
        json!([true, true, { "architecture": "arm64", "variant": "v8" }])
    );
    let out = nix
        .bare("nix-instantiate")
        .args(["--eval", "-E", &format!("(import {lib}).version")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("stowage: the plugin is not loaded") && stderr.contains("--option plugin-files"),
        "{stderr}"
    );
}

#[test]
fn plugin_files_in_nix_conf() {
    let nix = TestNix::new();
    let conf = nix.root().join("etc/nix.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&format!("plugin-files = {}\n", support::plugin().display()));
    std::fs::write(&conf, text).unwrap();
    let out = run_ok(nix.bare("nix").args([
        "eval",
        "--json",
        "--expr",
        r#"builtins.stowage.goarch "aarch64-linux""#,
    ]));
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), r#"{"architecture":"arm64","variant":"v8"}"#);
}

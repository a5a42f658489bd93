//! The Rust side of the plugin: the functions the C++ shim (`cpp/plugin.cc`) calls, one per
//! builtin, with arguments and results as plain data (no Nix `Value` ever reaches Rust).
//!
//! Every entry point goes through [`entry`], which catches panics — one unwinding into C++
//! would abort the user's `nix` — and puts the builtin's name in front of every error. The shim
//! turns an `Err` into a Nix evaluation error.

use std::panic::{self, AssertUnwindSafe};
use stowage_core::format::nar::Node;
use stowage_core::format::oci::Platform;
use stowage_core::functions::args::Evaluator;
use stowage_core::functions::fake_nss::FakeNss;

#[cxx::bridge(namespace = "stowage::ffi")]
mod bridge {
    /// A platform as `builtins.stowage.goarch` returns it; `variant` is empty where none applies.
    struct GoPlatform {
        architecture: String,
        variant: String,
    }

    /// The checked arguments of a library function as JSON; or, when they are wrong, the error
    /// (naming the builtin) and the argument at fault as the core names it (`config.Cmd`,
    /// `contents[2]`; empty when no one argument is), for the shim to point at where the caller
    /// wrote it.
    struct CheckedArgs {
        json: String,
        error: String,
        argument: String,
    }

    /// What the evaluating Nix tells about itself.
    struct NixContext {
        /// `settings.thisSystem`.
        system: String,
        /// The store root.
        store_dir: String,
        /// `sandbox-paths`, one entry each (`/bin/sh=/nix/store/…-busybox/bin/busybox`).
        sandbox_paths: Vec<String>,
    }

    extern "Rust" {
        /// The crate version.
        fn version() -> &'static str;
        /// Whether `bytes` are UTF-8: a Nix string may hold any bytes (`builtins.readFile` of a
        /// binary file), an image's documents only text.
        fn is_utf8(bytes: &[u8]) -> bool;
        /// `builtins.stowage.goarch system`; `system` as Nix holds it, any bytes.
        fn goarch(system: &[u8]) -> Result<GoPlatform>;
        /// The NAR of `builtins.stowage.fakeNss args`, for the shim to add to the store.
        fn fake_nss_nar(args_json: &str) -> Result<Vec<u8>>;
        /// The arguments of the library function `function`, checked.
        fn check_args(function: &str, args_json: &str, nix: &NixContext) -> CheckedArgs;
        /// The NAR of the image builder (the executable alone), for the shim to add to the store.
        fn builder_nar() -> Result<Vec<u8>>;
        /// The plugin's Nix library (nix/stowage.nix with its imports inlined).
        fn library_nix() -> &'static str;
    }
}

/// Set to a builtin's name (`fakeNss`), this makes that builtin panic, so tests can check that
/// a panic becomes an evaluation error. No argument of any builtin can reach it.
const TEST_PANIC_VAR: &str = "STOWAGE_TEST_PANIC";

/// A builtin's failure: the message (the builtin's name in front) and the argument at fault.
struct Fault {
    message: String,
    argument: Option<String>,
}

impl From<Fault> for String {
    fn from(fault: Fault) -> String {
        fault.message
    }
}

fn entry<T>(builtin: &str, work: impl FnOnce() -> stowage_core::Result<T>) -> Result<T, Fault> {
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        if std::env::var_os(TEST_PANIC_VAR).is_some_and(|v| v == builtin) {
            panic!("{TEST_PANIC_VAR} asked {builtin} to panic");
        }
        work()
    }));
    match outcome {
        Ok(result) => result.map_err(|err| Fault {
            message: format!("stowage.{builtin}: {err}"),
            argument: err.argument_at_fault().map(str::to_owned),
        }),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            Err(Fault {
                message: format!("stowage.{builtin}: internal error, please report it: panicked: {message}"),
                argument: None,
            })
        }
    }
}

fn version() -> &'static str {
    stowage_core::VERSION
}

fn is_utf8(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok()
}

fn goarch(system: &[u8]) -> Result<bridge::GoPlatform, String> {
    Ok(entry("goarch", || {
        let system = std::str::from_utf8(system)
            .map_err(|_| stowage_core::Error::argument("system", "is a string that is not UTF-8"))?;
        let Platform { architecture, variant, .. } = Platform::from_nix_system(system)?;
        Ok(bridge::GoPlatform { architecture, variant: variant.unwrap_or_default() })
    })?)
}

fn fake_nss_nar(args_json: &str) -> Result<Vec<u8>, String> {
    Ok(entry("fakeNss", || Ok(FakeNss::from_nix(args_json)?.tree().to_nar()))?)
}

fn check_args(function: &str, args_json: &str, nix: &bridge::NixContext) -> bridge::CheckedArgs {
    let checked = entry(function, || {
        let evaluator = Evaluator {
            system: nix.system.clone(),
            store_dir: nix.store_dir.clone(),
            sandbox_paths: nix.sandbox_paths.clone(),
        };
        let checked =
            serde_json::to_value(stowage_core::functions::call::check(function, args_json, &evaluator)?);
        Ok(checked.expect("arguments serialise").to_string())
    });
    match checked {
        Ok(json) => bridge::CheckedArgs { json, error: String::new(), argument: String::new() },
        Err(Fault { message, argument }) => bridge::CheckedArgs {
            json: String::new(),
            error: message,
            argument: argument.unwrap_or_default(),
        },
    }
}

/// The static `stowage` executable that image derivations run (build.rs embeds it; empty when
/// the plugin was built without it).
static BUILDER: &[u8] = include_bytes!(env!("STOWAGE_BUILDER_EXE"));

fn builder_nar() -> Result<Vec<u8>, String> {
    Ok(entry("builder", || {
        if BUILDER.is_empty() {
            return Err(stowage_core::Error::Unavailable(
                "this libstowage.so was built without its image builder (STOWAGE_BUILDER); build it with `make`",
            ));
        }
        // The file alone, as `builtins.path` adds the executable in library mode (nix/library.nix):
        // the same bytes get the same store path, so both modes make the same derivations.
        Ok(Node::File { contents: BUILDER.to_vec(), executable: true }.to_nar())
    })?)
}

fn library_nix() -> &'static str {
    include_str!(concat!(env!("OUT_DIR"), "/library.nix"))
}

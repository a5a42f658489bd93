//! The `stowage` command line: the builder of image derivations and the image streamer.
//!
//! Subcommands arrive with the features that need them; for now it reports its version.

use clap::Parser;
use std::process::ExitCode;

/// Container images from the Nix store.
///
/// stowage is mostly used as a Nix plugin (libstowage.so, which offers builtins.stowage);
/// this command is the builder its image derivations run.
#[derive(Parser)]
#[command(name = "stowage", version = stowage::VERSION, arg_required_else_help = true)]
struct Cli {}

fn main() -> ExitCode {
    let _cli = Cli::parse();
    ExitCode::SUCCESS
}

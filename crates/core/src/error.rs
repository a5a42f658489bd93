//! The error type shared by every part of stowage.
//!
//! Errors carry what they are about (the argument, the line, the system name) as data, so the
//! plugin can put the builtin's name in front and the user sees exactly what to fix.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong in stowage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A builtin's argument has the wrong type or an unusable value.
    #[error("argument '{arg}' {problem}")]
    Argument {
        /// The argument's name, with an index for list elements (`extraPasswdLines[2]`).
        arg: String,
        /// What is wrong with it, worded to follow the argument's name.
        problem: String,
    },
    /// A builtin that takes an attribute set was given something else.
    #[error("the argument is {found} while a set was expected")]
    NotASet {
        /// The type that was given, as Nix names it.
        found: &'static str,
    },
    /// A builtin was called with an attribute it does not take.
    #[error("unexpected argument '{arg}'; the arguments are: {}", .expected.join(", "))]
    UnexpectedArgument {
        /// The attribute that was not expected.
        arg: String,
        /// The attributes the builtin takes.
        expected: Vec<&'static str>,
    },
    /// A Nix system name that stowage cannot map to an image architecture.
    #[error("unknown system '{system}': {problem}")]
    UnknownSystem {
        /// The system as given.
        system: String,
        /// Why it is not known.
        problem: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A path that should be in the store is not directly under the store root.
    #[error("{} is not a path in the store {}", .path.display(), .store_dir.display())]
    NotInStore {
        /// The path.
        path: PathBuf,
        /// The store root.
        store_dir: PathBuf,
    },
    /// A layer's bytes differ from what the plan recorded (the store changed since the build).
    #[error("layer {index} does not match its plan: expected {}{expected_size} bytes, produced {} ({found_size} bytes); what it is made from changed since the image was built", .expected.map_or(String::new(), |d| format!("{d}, ")), .found.map_or("other bytes".to_string(), |d| d.to_string()))]
    LayerMismatch {
        /// Position of the layer, bottom first.
        index: usize,
        /// The planned digest, if the plan has one.
        expected: Option<crate::format::digest::Digest>,
        /// The digest of what was produced (unknown when the size already differed).
        found: Option<crate::format::digest::Digest>,
        /// The planned size.
        expected_size: u64,
        /// The size produced.
        found_size: u64,
    },
    /// An image archive that cannot be used, and why.
    #[error("image archive {}: {problem}", .path.display())]
    BadImage {
        /// The archive.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// An environment variable stowage reads has an unusable value.
    #[error("environment variable {var} {problem}")]
    Environment {
        /// The variable.
        var: &'static str,
        /// What is wrong with its value, worded to follow its name.
        problem: String,
    },
    /// A customisation script failed.
    #[error("{name} failed ({status}); its output is above")]
    ScriptFailed {
        /// The argument the script came from.
        name: &'static str,
        /// How it ended.
        status: String,
    },
    /// Setting up the confinement a script runs in failed.
    #[error("cannot run the script as root without privileges: {step} failed: {source}")]
    Confinement {
        /// What was being done.
        step: &'static str,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A registry refused or failed a request.
    #[error("registry {registry}: {problem}")]
    Registry {
        /// `host[:port]`.
        registry: String,
        /// What was being done, and what went wrong.
        problem: String,
    },
    /// An image could not be pulled as it is.
    #[error("pulling {image}: {problem}")]
    Pull {
        /// `name@digest`.
        image: String,
        /// What is wrong.
        problem: String,
    },
    /// A library function's arguments were wrong (checked at build time).
    #[error("stowage.{function}: {source}")]
    InCall {
        /// The public function called.
        function: String,
        /// What is wrong.
        source: Box<Error>,
    },
    /// A function name that the library does not have.
    #[error("no library function is called {0:?}")]
    UnknownFunction(String),
    /// The image's Nix database (`includeNixDB`) could not be written.
    #[error("the image's Nix database (includeNixDB): {0}")]
    NixDatabase(String),
    /// A derivation's structured attributes are not what its builder takes.
    #[error("{}: {problem}", .path.display())]
    Attributes {
        /// The attributes' file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// An image cannot go where it was sent (`stowage push`, the copy scripts).
    #[error("{0}")]
    Delivery(String),
    /// An image's signature does not hold (`stowage verify`).
    #[error("verification failed: {0}")]
    Verification(String),
    /// Something this build of stowage does not have.
    #[error("{0}")]
    Unavailable(&'static str),
    /// The arguments handed over by the plugin shim are not valid JSON (a bug in the shim).
    #[error("internal error: the plugin passed malformed arguments: {0}")]
    MalformedArguments(#[from] serde_json::Error),
}

impl Error {
    /// The argument at fault (`config.Cmd`, `contents[2]`), if one is.
    pub fn argument_at_fault(&self) -> Option<&str> {
        match self {
            Error::Argument { arg, .. } | Error::UnexpectedArgument { arg, .. } => Some(arg),
            _ => None,
        }
    }

    /// An [`Error::Argument`] for `arg`.
    pub fn argument(arg: impl fmt::Display, problem: impl Into<String>) -> Self {
        Error::Argument { arg: arg.to_string(), problem: problem.into() }
    }

    /// Whether this is a write into a pipe (or socket) whose reader has gone.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// An [`Error::Io`] about `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}

/// A `Result` with stowage's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

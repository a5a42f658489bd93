//! The `stowage` command line: the builder of image derivations and the image streamer.
//!
//! Subcommands only parse arguments; the work is the library's. Information goes to stderr,
//! stdout carries only archives.

use clap::{Parser, Subcommand};
use std::fs;
use std::io::{self, BufWriter};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use stowage_core::cores::cores;
use stowage_core::format::chunks::CHUNK;
use stowage_core::format::compress::Compression;
use stowage_core::functions::args::Outputs;
use stowage_core::functions::call::Call;
use stowage_core::functions::customise::{customise, CustomisationInput};
use stowage_core::functions::fake_nss::FakeNss;
use stowage_core::functions::index::plan_index;
use stowage_core::functions::layered::{plan_image, BuildInput};
use stowage_core::functions::merge::merge_images;
use stowage_core::functions::pull::pull;
use stowage_core::image::config::referenced_store_paths;
use stowage_core::image::plan::{Format, Plan};
use stowage_core::registry::client::Access;
use stowage_core::registry::timeouts::Timeouts;
use stowage_core::write::archive::{write_archive, write_oci_dir, OUTPUT_BUFFER};
use stowage_core::write::deliver::{deliver, CopyScript};
use stowage_core::write::progress::{Mode, Progress};

/// Container images from the Nix store.
///
/// stowage is mostly used as a Nix plugin (libstowage.so, which offers builtins.stowage);
/// this command is the builder its image derivations run, and the streamer of their images.
#[derive(Parser)]
#[command(name = "stowage", version = stowage_core::VERSION, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes the docker-archive of a planned image to stdout (what a stream script runs).
    Stream {
        /// The stream script (or plan) to replay.
        plan: PathBuf,
    },
    /// Derivation builder: plans a layered image from Nix's structured attributes and writes
    /// the stream script to $out.
    BuildStream,
    /// Derivation builder: runs an image's customisation scripts and writes the layer entries
    /// they leave to $out.
    BuildCustomisation,
    /// Derivation builder: plans the merge of the images in Nix's structured attributes and
    /// writes the stream script to $out.
    BuildMergeStream,
    /// Derivation builder: plans the multi-platform image (an OCI index) of the images in Nix's
    /// structured attributes and writes the stream script to $out.
    BuildIndexStream,
    /// Derivation builder: writes the (compressed) archive of a stream script to $out.
    BuildArchive,
    /// Pushes an image (a stream script, its plan, or an image archive) to a registry,
    /// sending only the blobs it does not have; or writes it to an image file, an OCI layout,
    /// a Docker Engine or podman.
    Push {
        /// The image: a stowage stream script or plan, or a docker-archive or OCI archive
        /// holding one image (or one image for several platforms: buildImageIndex's).
        image: PathBuf,
        /// Where it goes: docker://HOST[:PORT]/REPOSITORY[:TAG] (a registry),
        /// docker-archive:FILE[:NAME:TAG], oci-archive:FILE[:REF], oci:DIR[:REF] (a new image
        /// file or OCI layout), docker-daemon: (the Docker Engine DOCKER_HOST names) or podman:
        /// (podman load).
        dest: String,
        /// How layers are compressed for the registry: gz or zstd.
        #[arg(long, default_value = "gz")]
        compress: String,
        #[command(flatten)]
        access: AccessArgs,
    },
    /// Pushes the image of a copy script (an image's copyToRegistry or copyTo): to DEST, or to
    /// where the script says.
    Copy {
        /// The copy script.
        script: PathBuf,
        /// Where the image goes, as for push.
        dest: Option<String>,
        /// How layers are compressed for the registry: gz or zstd.
        #[arg(long, default_value = "gz")]
        compress: String,
        #[command(flatten)]
        access: AccessArgs,
    },
    /// Derivation builder: writes a copy script (copyToRegistry, copyTo) to $out/bin.
    BuildCopyScript,
    /// Derivation builder: lists the store paths an image's runtime config mentions, so that
    /// they are the output's references and join the image's closure.
    BuildReferences,
    /// Derivation builder: `fakeNss` without the plugin (the tree the plugin adds to the store
    /// from the evaluator).
    BuildFakeNss,
    /// Derivation builder (fixed-output): pulls an image by digest from its registry into an
    /// OCI layout tarball at $out.
    BuildPull,
}

/// How registries are reached (skopeo's option names).
#[derive(clap::Args)]
struct AccessArgs {
    /// Credentials for the registry, ahead of any auth file.
    #[arg(long, value_name = "USER:PASSWORD")]
    creds: Option<String>,
    /// An auth file (containers-auth.json / ~/.docker/config.json format) to take credentials
    /// from, ahead of $REGISTRY_AUTH_FILE, podman's and Docker's.
    #[arg(long, value_name = "FILE")]
    authfile: Option<PathBuf>,
    /// Whether to verify the registry's TLS certificate.
    #[arg(long, value_name = "BOOL", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    tls_verify: bool,
    /// CA certificates to trust: a folder of *.crt files, or one PEM file (default:
    /// /etc/containers/certs.d/HOST and /etc/docker/certs.d/HOST).
    #[arg(long, value_name = "PATH")]
    cert_dir: Option<PathBuf>,
    /// Speak plain HTTP to the registry (without asking, only to localhost and loopback
    /// addresses, and only if they do not speak HTTPS).
    #[arg(long)]
    plain_http: bool,
    /// The deadline of a registry request without a large body (a manifest, a token), and how
    /// long a blob may stall (default: $STOWAGE_REGISTRY_TIMEOUT, else 60).
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<u64>,
    /// The slowest a blob may move over a span of the timeout, 0 for no minimum (default:
    /// $STOWAGE_REGISTRY_MIN_RATE, else 1024).
    #[arg(long, value_name = "BYTES_PER_SECOND")]
    min_rate: Option<u64>,
}

impl AccessArgs {
    fn access(self) -> Result<Access, Failure> {
        Ok(Access {
            creds: self.creds,
            auth_file: self.authfile,
            tls_verify: self.tls_verify,
            cert_dir: self.cert_dir,
            plain_http: self.plain_http,
            timeouts: Timeouts::new(self.timeout, self.min_rate)?,
        })
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(line)) => {
            eprintln!("{line}");
            ExitCode::FAILURE
        }
    }
}

/// Why a subcommand failed: the line said to the user.
struct Failure(String);

impl From<stowage_core::Error> for Failure {
    fn from(e: stowage_core::Error) -> Self {
        match e {
            // An argument error names the function (`stowage.buildImage: …`), as the plugin's
            // does.
            stowage_core::Error::InCall { .. } => Failure(e.to_string()),
            other => fail(other.to_string()),
        }
    }
}

fn fail(message: impl Into<String>) -> Failure {
    Failure(format!("stowage: {}", message.into()))
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Stream { plan } => {
            let plan = Plan::read(&plan)?;
            let progress = progress_of(&plan, "stream", Mode::from_env()?);
            let output = Path::new("(standard output)");
            match write_archive(&plan, progress.meter(stdout()?), output, cores()?, |_, _, _| {
                progress.layer_done()
            }) {
                // A consumer that stopped reading (`| head`) ends the stream: its business, not
                // an error. Only here: anywhere else a broken pipe hides the consumer's failure.
                Err(e) if e.is_broken_pipe() => Ok(()),
                written => {
                    written?;
                    progress.finish();
                    Ok(())
                }
            }
        }
        Command::BuildStream => {
            let input: BuildInput = read_attrs()?;
            let plan =
                plan_image(&input, time::OffsetDateTime::now_utc(), |w| eprintln!("stowage: warning: {w}"))?;
            write_script(&plan, &input.outputs)
        }
        Command::Push { image, dest, compress, access } => {
            Ok(deliver(&image, &dest, &compress, &access.access()?, cores()?, say)?)
        }
        Command::Copy { script, dest, compress, access } => {
            let copy = CopyScript::read(&script)?;
            let dest = dest.or(copy.dest).ok_or_else(|| {
                fail("where to? give the destination: copyTo docker://HOST[:PORT]/REPOSITORY[:TAG]")
            })?;
            Ok(deliver(Path::new(&copy.image), &dest, &compress, &access.access()?, cores()?, say)?)
        }
        Command::BuildCopyScript => {
            #[derive(serde::Deserialize)]
            struct Attrs {
                image: String,
                dest: Option<String>,
                program: String,
                outputs: Outputs,
            }
            let attrs: Attrs = read_attrs()?;
            let me =
                std::env::current_exe().map_err(|e| fail(format!("cannot find my own executable: {e}")))?;
            let bin = Path::new(&attrs.outputs.out).join("bin");
            fs::create_dir_all(&bin).map_err(|e| stowage_core::Error::io(&bin, e))?;
            let copy = CopyScript { image: attrs.image, dest: attrs.dest };
            Ok(copy.write(&me, &bin.join(&attrs.program))?)
        }
        Command::BuildPull => {
            #[derive(serde::Deserialize)]
            struct Attrs {
                #[serde(flatten)]
                call: Call,
                outputs: Outputs,
            }
            let attrs: Attrs = read_attrs()?;
            pull(&attrs.call.pull()?, Path::new(&attrs.outputs.out), |line| eprintln!("stowage: {line}"))?;
            Ok(())
        }
        Command::BuildReferences => {
            #[derive(serde::Deserialize)]
            struct Attrs {
                config: serde_json::Value,
                #[serde(rename = "storeDir")]
                store_dir: String,
                outputs: Outputs,
            }
            let attrs: Attrs = read_attrs()?;
            let mut list = String::new();
            for path in referenced_store_paths(&attrs.config, &attrs.store_dir) {
                list.push_str(&path);
                list.push('\n');
            }
            let out = Path::new(&attrs.outputs.out);
            fs::write(out, list).map_err(|e| stowage_core::Error::io(out, e))?;
            Ok(())
        }
        Command::BuildFakeNss => {
            #[derive(serde::Deserialize)]
            struct Attrs {
                arguments: serde_json::Value,
                outputs: Outputs,
            }
            let attrs: Attrs = read_attrs()?;
            let nss = FakeNss::from_nix(&attrs.arguments.to_string()).map_err(|e| {
                stowage_core::Error::InCall { function: "fakeNss".into(), source: Box::new(e) }
            })?;
            nss.tree().write_to(Path::new(&attrs.outputs.out))?;
            Ok(())
        }
        Command::BuildCustomisation => {
            let input: CustomisationInput = read_attrs()?;
            let build_dir = std::env::current_dir().map_err(|e| stowage_core::Error::io(".", e))?;
            customise(&input, &build_dir, time::OffsetDateTime::now_utc())?;
            Ok(())
        }
        Command::BuildMergeStream => {
            #[derive(serde::Deserialize)]
            struct Attrs {
                #[serde(flatten)]
                call: Call,
                images: Vec<String>,
                outputs: Outputs,
            }
            let attrs: Attrs = read_attrs()?;
            let merge = attrs.call.merge()?;
            let plan = Plan { format: merge.format, ..merge_images(&attrs.images)? };
            write_script(&plan, &attrs.outputs)
        }
        Command::BuildIndexStream => {
            #[derive(serde::Deserialize)]
            struct Attrs {
                #[serde(flatten)]
                call: Call,
                images: Vec<String>,
                outputs: Outputs,
            }
            let attrs: Attrs = read_attrs()?;
            let index = attrs.call.index()?;
            let reference = format!("{}:{}", index.name, index.tag);
            write_script(&plan_index(&reference, &attrs.images, index.format)?, &attrs.outputs)
        }
        Command::BuildArchive => {
            #[derive(serde::Deserialize)]
            struct Attrs {
                stream: PathBuf,
                compressor: String,
                outputs: Outputs,
            }
            let attrs: Attrs = read_attrs()?;
            let compressor = Compression::from_name(&attrs.compressor)?;
            let plan = Plan::read(&attrs.stream)?;
            let path = Path::new(&attrs.outputs.out);
            let io_err = |e| stowage_core::Error::io(path, e);
            let threads = cores()?;
            eprintln!("stowage: writing {} on {threads} thread(s)", path.display());
            if plan.format == Format::OciDir {
                if compressor != Compression::None {
                    return Err(fail("argument 'compressor' must be \"none\" for format \"oci-dir\""));
                }
                return Ok(write_oci_dir(&plan, path, threads)?);
            }
            let file = fs::File::create(path).map_err(io_err)?;
            let file =
                compressor.writer(BufWriter::with_capacity(OUTPUT_BUFFER, file), threads).map_err(io_err)?;
            let progress = progress_of(&plan, &path.display().to_string(), Mode::for_builder()?);
            let file =
                write_archive(&plan, progress.meter(file), path, threads, |_, _, _| progress.layer_done())?;
            let file = file.into_inner().finish().map_err(io_err)?;
            progress.finish();
            file.into_inner().map_err(|e| io_err(e.into_error()))?.sync_all().map_err(io_err)?;
            Ok(())
        }
    }
}

/// The progress of writing `plan`, called `what`.
fn progress_of(plan: &Plan, what: &str, mode: Mode) -> Progress {
    let layers = plan.unique_layers();
    Progress::new(mode, what, layers.len(), layers.iter().map(|l| l.size).sum())
}

/// What the library says while it works, on stderr.
fn say(line: &str) {
    eprintln!("stowage: {line}");
}

/// Standard output for an archive: unbuffered (Rust's stdout flushes at every newline byte),
/// and, if it is a pipe, with room for a whole chunk, so that the consumer is woken once a
/// chunk rather than sixteen times (3–9 % faster into `| cat` here, in paired runs).
fn stdout() -> Result<fs::File, Failure> {
    let out = io::stdout().as_fd().try_clone_to_owned();
    let out = fs::File::from(out.map_err(|e| stowage_core::Error::io("(standard output)", e))?);
    if out.metadata().is_ok_and(|m| m.file_type().is_fifo()) {
        // SAFETY: F_SETPIPE_SZ takes an int and changes nothing but the pipe's capacity. It may
        // fail (a limit below a chunk for unprivileged users): the stream is then slower, not
        // wrong.
        unsafe { libc::fcntl(out.as_raw_fd(), libc::F_SETPIPE_SZ, CHUNK as libc::c_int) };
    }
    Ok(out)
}

/// Writes the stream script of `plan` to `$out`, run by this very executable.
fn write_script(plan: &Plan, outputs: &Outputs) -> Result<(), Failure> {
    let me = std::env::current_exe().map_err(|e| fail(format!("cannot find my own executable: {e}")))?;
    let out = Path::new(&outputs.out);
    fs::write(out, plan.to_script(&me)).map_err(|e| stowage_core::Error::io(out, e))?;
    fs::set_permissions(out, fs::Permissions::from_mode(0o555))
        .map_err(|e| stowage_core::Error::io(out, e))?;
    for image in &plan.images {
        eprintln!("stowage: planned {} layers for {}", image.layers.len(), image.repo_tags.join(", "));
    }
    Ok(())
}

/// Nix's structured attributes of the derivation being built.
fn read_attrs<T: serde::de::DeserializeOwned>() -> Result<T, Failure> {
    let named = std::env::var_os("NIX_ATTRS_JSON_FILE")
        .map(PathBuf::from)
        .ok_or_else(|| fail("NIX_ATTRS_JSON_FILE is not set: this subcommand is a derivation builder"))?;
    // Nix 2.8 names the file by its path outside the sandbox; inside, it is in the build
    // directory, which is where a builder starts.
    let path = if named.exists() { named } else { PathBuf::from(".attrs.json") };
    let text = fs::read_to_string(&path).map_err(|e| stowage_core::Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| fail(format!("{}: {e}", path.display())))
}

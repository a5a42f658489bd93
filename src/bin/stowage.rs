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
use stowage::archive::{write_archive, write_oci_dir};
use stowage::chunks::CHUNK;
use stowage::compress::Compressor;
use stowage::cores::cores;
use stowage::customise::{customise, CustomisationInput};
use stowage::digest::Digest;
use stowage::docker_daemon;
use stowage::image::{Format, Plan};
use stowage::image_reader::{read_images, verify, ArchiveReader};
use stowage::layered_image::{plan_image, BuildInput, Outputs};
use stowage::merge::merge_images;
use stowage::push::{push, Destination};

/// Container images from the Nix store.
///
/// stowage is mostly used as a Nix plugin (libstowage.so, which offers builtins.stowage);
/// this command is the builder its image derivations run, and the streamer of their images.
#[derive(Parser)]
#[command(name = "stowage", version = stowage::VERSION, arg_required_else_help = true)]
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
    /// Derivation builder: writes the (compressed) archive of a stream script to $out.
    BuildArchive,
    /// Pushes an image (a stream script, its plan, or an image archive) to a registry,
    /// sending only the blobs it does not have.
    Push {
        /// The image: a stowage stream script or plan, or a docker-archive or OCI archive
        /// holding one image.
        image: PathBuf,
        /// Where it goes: docker://HOST[:PORT]/REPOSITORY[:TAG].
        dest: String,
        /// How layers are compressed for the registry: gz or zstd.
        #[arg(long, default_value = "gz")]
        compress: String,
    },
    /// Pushes the image of a copy script (an image's copyToRegistry or copyTo): to DEST, or to
    /// where the script says.
    Copy {
        /// The copy script.
        script: PathBuf,
        /// Where the image goes: docker://HOST[:PORT]/REPOSITORY[:TAG], or docker-daemon: for
        /// the Docker Engine DOCKER_HOST names.
        dest: Option<String>,
        /// How layers are compressed for the registry: gz or zstd.
        #[arg(long, default_value = "gz")]
        compress: String,
    },
    /// Derivation builder: writes a copy script (copyToRegistry, copyTo) to $out/bin.
    BuildCopyScript,
}

/// The number of bytes an archive file is written in.
const OUTPUT_BUFFER: usize = 1 << 20;

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        // A consumer that stopped reading ends the stream; that is its business, not an error.
        Err(Failure::BrokenPipe) => ExitCode::SUCCESS,
        Err(Failure::Error(message)) => {
            eprintln!("stowage: {message}");
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    BrokenPipe,
    Error(String),
}

impl From<stowage::Error> for Failure {
    fn from(e: stowage::Error) -> Self {
        match &e {
            stowage::Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe => {
                Failure::BrokenPipe
            }
            _ => Failure::Error(e.to_string()),
        }
    }
}

fn fail(message: impl Into<String>) -> Failure {
    Failure::Error(message.into())
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Stream { plan } => {
            let plan = Plan::read(&plan)?;
            let progress = |i: usize, n: usize, d: &Digest| eprintln!("stowage: layer {}/{n} {d}", i + 1);
            write_archive(&plan, stdout()?, cores()?, progress)?;
            Ok(())
        }
        Command::BuildStream => {
            let input: BuildInput = read_attrs()?;
            let plan =
                plan_image(&input, time::OffsetDateTime::now_utc(), |w| eprintln!("stowage: warning: {w}"))?;
            write_script(&plan, &input.outputs)
        }
        Command::Push { image, dest, compress } => push_image(&image, &dest, &compress),
        Command::Copy { script, dest, compress } => {
            let text = fs::read_to_string(&script).map_err(|e| stowage::Error::io(&script, e))?;
            let copy: CopyScript = text
                .split_once('\n')
                .and_then(|(_, json)| serde_json::from_str(json).ok())
                .ok_or_else(|| fail(format!("{}: not a stowage copy script", script.display())))?;
            let dest = dest.or(copy.dest).ok_or_else(|| {
                fail("where to? give the destination: copyTo docker://HOST[:PORT]/REPOSITORY[:TAG]")
            })?;
            push_image(Path::new(&copy.image), &dest, &compress)
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
            fs::create_dir_all(&bin).map_err(|e| stowage::Error::io(&bin, e))?;
            let script = bin.join(&attrs.program);
            let copy = CopyScript { image: attrs.image, dest: attrs.dest };
            let text =
                format!("#!{} copy\n{}\n", me.display(), serde_json::to_string(&copy).expect("serialises"));
            fs::write(&script, text).map_err(|e| stowage::Error::io(&script, e))?;
            fs::set_permissions(&script, fs::Permissions::from_mode(0o555))
                .map_err(|e| stowage::Error::io(&script, e))?;
            Ok(())
        }
        Command::BuildCustomisation => {
            let input: CustomisationInput = read_attrs()?;
            let build_dir = std::env::current_dir().map_err(|e| stowage::Error::io(".", e))?;
            customise(&input, &build_dir, time::OffsetDateTime::now_utc())?;
            Ok(())
        }
        Command::BuildMergeStream => {
            #[derive(serde::Deserialize)]
            struct Attrs {
                images: Vec<String>,
                #[serde(default)]
                format: Format,
                outputs: Outputs,
            }
            let attrs: Attrs = read_attrs()?;
            let plan = Plan { format: attrs.format, ..merge_images(&attrs.images)? };
            write_script(&plan, &attrs.outputs)
        }
        Command::BuildArchive => {
            #[derive(serde::Deserialize)]
            struct Attrs {
                stream: PathBuf,
                compressor: String,
                outputs: Outputs,
            }
            let attrs: Attrs = read_attrs()?;
            let compressor = Compressor::from_name(&attrs.compressor)?;
            let plan = Plan::read(&attrs.stream)?;
            let path = Path::new(&attrs.outputs.out);
            let io_err = |e| stowage::Error::io(path, e);
            let threads = cores()?;
            eprintln!("stowage: writing {} on {threads} thread(s)", path.display());
            if plan.format == Format::OciDir {
                if compressor != Compressor::None {
                    return Err(fail("argument 'compressor' must be \"none\" for format \"oci-dir\""));
                }
                return Ok(write_oci_dir(&plan, path, threads)?);
            }
            let file = fs::File::create(path).map_err(io_err)?;
            let file =
                compressor.writer(BufWriter::with_capacity(OUTPUT_BUFFER, file), threads).map_err(io_err)?;
            let file = write_archive(&plan, file, threads, |_, _, _| {})?.finish().map_err(io_err)?;
            file.into_inner().map_err(|e| io_err(e.into_error()))?.sync_all().map_err(io_err)?;
            Ok(())
        }
    }
}

/// What a copy script holds: the image's stream, and where it goes unless told otherwise.
#[derive(serde::Serialize, serde::Deserialize)]
struct CopyScript {
    image: String,
    dest: Option<String>,
}

/// Where copyToDockerDaemon sends an image: the engine `DOCKER_HOST` names.
const DOCKER_DAEMON: &str = "docker-daemon:";

/// Pushes the one image in the file `image` to `dest` (a registry, layers compressed by
/// `compress`, or [`DOCKER_DAEMON`]).
fn push_image(image: &Path, dest: &str, compress: &str) -> Result<(), Failure> {
    let images = read_images(image)?;
    let [found] = images.as_slice() else {
        let tags: Vec<String> = images.iter().flat_map(|i| i.repo_tags.clone()).collect();
        return Err(fail(format!(
            "{} holds {} images ({}); push takes one",
            image.display(),
            images.len(),
            tags.join(", ")
        )));
    };
    let spec = verify(found.clone(), &mut ArchiveReader::default(), &mut Default::default())?;
    if dest == DOCKER_DAEMON {
        let socket = docker_daemon::socket_of(std::env::var("DOCKER_HOST").ok().as_deref())?;
        let said = docker_daemon::load(&spec, &socket, cores()?)?;
        eprintln!("stowage: {} ({})", said, socket.display());
        return Ok(());
    }
    let dest = Destination::parse(dest)?;
    let compressor = Compressor::from_name(compress)?;
    let pushed = push(&spec, &dest, compressor, cores()?, |line| eprintln!("stowage: {line}"))?;
    eprintln!(
        "stowage: pushed {}/{}:{} ({} blob(s) sent, {} bytes; {} already there)",
        dest.registry, dest.repository, dest.tag, pushed.sent, pushed.bytes, pushed.skipped
    );
    Ok(())
}

/// Standard output for an archive: unbuffered (Rust's stdout flushes at every newline byte),
/// and, if it is a pipe, with room for a whole chunk, so that the consumer is woken once a
/// chunk rather than sixteen times (3–9 % faster into `| cat` here, in paired runs).
fn stdout() -> Result<fs::File, Failure> {
    let out = io::stdout().as_fd().try_clone_to_owned();
    let out = fs::File::from(out.map_err(|e| stowage::Error::io("(standard output)", e))?);
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
    fs::write(out, plan.to_script(&me)).map_err(|e| stowage::Error::io(out, e))?;
    fs::set_permissions(out, fs::Permissions::from_mode(0o555)).map_err(|e| stowage::Error::io(out, e))?;
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
    let text = fs::read_to_string(&path).map_err(|e| stowage::Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| fail(format!("{}: {e}", path.display())))
}

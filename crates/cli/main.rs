//! The `stowage` command line: the builder of image derivations and the image streamer.
//!
//! Subcommands only parse arguments; the work is the library's. Information goes to stderr,
//! stdout carries only archives (and `stowage verify`'s payloads, JSON).

use clap::{Parser, Subcommand};
use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use stowage_core::attest::signature::{PublicKey, SigningKey};
use stowage_core::cores::cores;
use stowage_core::derivation;
use stowage_core::format::chunks::CHUNK;
use stowage_core::image::plan::Plan;
use stowage_core::registry::access::{chunk_size, Access};
use stowage_core::registry::destination::Destination;
use stowage_core::registry::timeouts::Timeouts;
use stowage_core::write::archive::write_archive;
use stowage_core::write::attach::{verify, Attached, Attachment};
use stowage_core::write::deliver::{deliver, CopyScript, Target};
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
    /// Derivation builder: plans and hashes a buildLayer layer into $out/layers.json.
    BuildLayer,
    /// Derivation builder: plans the merge of the images in Nix's structured attributes and
    /// writes the stream script to $out.
    BuildMergeStream,
    /// Derivation builder: plans the multi-platform image (an OCI index) of the images in Nix's
    /// structured attributes and writes the stream script to $out.
    BuildIndexStream,
    /// Derivation builder: writes the (compressed) archive of a stream script to $out.
    BuildArchive,
    /// Derivation builder: writes a document about a stream's image to $out: its SBOM (SPDX or
    /// CycloneDX JSON) or its provenance (an in-toto statement, SLSA provenance v1).
    BuildAttestation,
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
        #[command(flatten)]
        delivery: DeliveryArgs,
    },
    /// Pushes the image of a copy script (an image's copyToRegistry or copyTo): to DEST, or to
    /// where the script says.
    Copy {
        /// The copy script.
        script: PathBuf,
        /// Where the image goes, as for push.
        dest: Option<String>,
        #[command(flatten)]
        delivery: DeliveryArgs,
    },
    /// Checks an image's signatures in a registry, as cosign verify --key does: prints the
    /// signed payloads that KEY verifies and that name the image's manifest; fails if none.
    Verify {
        /// The public key (PEM: openssl pkey -pubout, or cosign.pub).
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// The image: docker://HOST[:PORT]/REPOSITORY[:TAG].
        image: String,
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

/// How `push` and `copy` deliver an image: compression, tags, attachments, access.
#[derive(clap::Args)]
struct DeliveryArgs {
    /// How layers are compressed for the registry: gz or zstd.
    #[arg(long, default_value = "gz")]
    compress: String,
    /// Also tags the pushed image TAG in the destination's repository (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    #[command(flatten)]
    attach: AttachArgs,
    #[command(flatten)]
    access: AccessArgs,
}

/// What a push puts beside the image in a registry.
#[derive(clap::Args)]
struct AttachArgs {
    /// Attaches FILE (an SPDX or CycloneDX JSON SBOM, or an in-toto statement) to the pushed
    /// image as an OCI referrer (repeatable).
    #[arg(long = "attach", value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Signs the pushed image with KEY (a PKCS#8 PEM ECDSA P-256 private key), as cosign
    /// signs: stowage verify and cosign verify --key check it.
    #[arg(long, value_name = "KEY")]
    sign_key: Option<PathBuf>,
}

impl AttachArgs {
    /// The documents and key, read now: a bad file is an error before anything is sent.
    fn attached(&self) -> Result<Attached, Failure> {
        Ok(Attached {
            attachments: self.files.iter().map(|f| Attachment::read(f)).collect::<Result<_, _>>()?,
            sign_key: self.sign_key.as_ref().map(|k| SigningKey::read(k, "--sign-key")).transpose()?,
        })
    }
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
    /// Uploads blobs in chunks of BYTES (a suffix K, M or G multiplies by 1024 once, twice,
    /// thrice: 16M), at least as large as the registry asks for; 0: each blob in one request
    /// [default: 0].
    #[arg(long, value_name = "BYTES")]
    chunk_size: Option<String>,
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
            chunk_size: self.chunk_size.as_deref().map(chunk_size).transpose()?.flatten(),
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
            let progress = Progress::of(&plan, "stream", Mode::from_env()?);
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
        Command::BuildStream => Ok(derivation::build_stream(say)?),
        Command::Push { image, dest, delivery: DeliveryArgs { compress, tags, attach, access } } => {
            let attached = attach.attached()?;
            Ok(deliver(&image, &dest, &tags, &attached, &compress, &access.access()?, cores()?, say)?)
        }
        Command::Verify { key, image, access } => {
            let key = PublicKey::read(&key, "--key")?;
            let payloads = verify(&Destination::parse(&image)?, &key, &access.access()?)?;
            say(&format!("{image}: {} signature(s) verified", payloads.len()));
            let json = serde_json::to_string(&payloads).expect("JSON values serialise");
            writeln!(io::stdout().lock(), "{json}")
                .map_err(|e| stowage_core::Error::io("(standard output)", e))?;
            Ok(())
        }
        Command::Copy { script, dest, delivery: DeliveryArgs { compress, tags, attach, access } } => {
            let copy = CopyScript::read(&script)?;
            let dest = dest.or(copy.dest).ok_or_else(|| {
                fail("where to? give the destination: copyTo docker://HOST[:PORT]/REPOSITORY[:TAG]")
            })?;
            let mut attached = attach.attached()?;
            let mut tags = tags;
            // the image's own documents (SBOM, provenance) and tags go where they can go
            if matches!(Target::parse(&dest)?, Target::Registry(_)) {
                for file in &copy.attach {
                    attached.attachments.push(Attachment::read(Path::new(file))?);
                }
                tags.splice(0..0, copy.tags);
            }
            Ok(deliver(
                Path::new(&copy.image),
                &dest,
                &tags,
                &attached,
                &compress,
                &access.access()?,
                cores()?,
                say,
            )?)
        }
        Command::BuildCopyScript => Ok(derivation::build_copy_script()?),
        Command::BuildPull => Ok(derivation::build_pull(say)?),
        Command::BuildReferences => Ok(derivation::build_references()?),
        Command::BuildFakeNss => Ok(derivation::build_fake_nss()?),
        Command::BuildCustomisation => Ok(derivation::build_customisation()?),
        Command::BuildLayer => Ok(derivation::build_layer()?),
        Command::BuildMergeStream => Ok(derivation::build_merge_stream(say)?),
        Command::BuildIndexStream => Ok(derivation::build_index_stream(say)?),
        Command::BuildArchive => Ok(derivation::build_archive(say)?),
        Command::BuildAttestation => Ok(derivation::build_attestation()?),
    }
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

//! Where an image file goes (`stowage push`, the copy scripts): a registry, a new image file or
//! OCI layout, a Docker Engine, podman — one image, or one image for several platforms (an
//! index) where the destination takes one. Also the copy scripts' format, which
//! `copyToRegistry` and its siblings write and `stowage copy` reads.

use crate::format::compress::Compression;
use crate::image::plan::{Format, ImageSpec, Plan};
use crate::image::reference::{check_tag, parse_name_tag};
use crate::read::archive::ArchiveReader;
use crate::read::{read_images, verify, FoundImage};
use crate::registry::access::Access;
use crate::registry::destination::Destination;
use crate::write::archive::{first_failure, write_archive, write_oci_dir, OUTPUT_BUFFER};
use crate::write::attach::Attached;
use crate::write::docker_daemon;
use crate::write::push::push;
use crate::{Error, Result};
use std::fs;
use std::io::{self, BufWriter};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What a copy script holds: the image's stream, and where it goes unless told otherwise.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct CopyScript {
    /// The image file (a stream script).
    pub image: String,
    /// Where it goes, as `stowage push` takes it; `None`: where `stowage copy` is told.
    pub dest: Option<String>,
    /// Documents attached to it when it goes to a registry (its SBOM, its provenance).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attach: Vec<String>,
    /// The other tags it goes under in a registry (the image's `tags`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl CopyScript {
    /// Writes the script at `path`: run, it is `stowage copy` (`stowage` being `me`) of itself.
    pub fn write(&self, me: &Path, path: &Path) -> Result<()> {
        let text = format!("#!{} copy\n{}\n", me.display(), serde_json::to_string(self).expect("serialises"));
        fs::write(path, text).map_err(|e| Error::io(path, e))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o555)).map_err(|e| Error::io(path, e))
    }

    /// Reads the copy script at `path`.
    pub fn read(path: &Path) -> Result<CopyScript> {
        let text = fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        text.split_once('\n')
            .and_then(|(_, json)| serde_json::from_str(json).ok())
            .ok_or_else(|| Error::Delivery(format!("{}: not a stowage copy script", path.display())))
    }
}

/// Sends the image in the file `image` — one image, or one for several platforms — to `dest`
/// (a [`Target`]; in a registry, under the tags `also` too), layers compressed by `compress` for
/// a registry, on `threads` threads, with `attached` (documents, a signature: a registry's only);
/// `say` hears what happens.
#[allow(clippy::too_many_arguments)]
pub fn deliver(
    image: &Path,
    dest: &str,
    also: &[String],
    attached: &Attached,
    compress: &str,
    access: &Access,
    threads: usize,
    mut say: impl FnMut(&str),
) -> Result<()> {
    let target = Target::parse(dest)?;
    // checked before anything is sent: a wrong tag never leaves an image tagged in part
    for tag in also {
        check_tag(tag).map_err(|e| match e {
            Error::Argument { problem, .. } => Error::argument("--tag", problem),
            other => other,
        })?;
    }
    if !also.is_empty() && !matches!(target, Target::Registry(_)) {
        return Err(Error::argument("--tag", format!("tags an image in a registry; {dest} is none")));
    }
    if !attached.is_empty() && !matches!(target, Target::Registry(_)) {
        let arg = if attached.attachments.is_empty() { "--sign-key" } else { "--attach" };
        return Err(Error::argument(
            arg,
            format!("puts documents beside an image in a registry; {dest} is none"),
        ));
    }
    if let Err(e) = fs::metadata(image) {
        return Err(Error::Delivery(format!(
            "{}: {e}; give an image file: a stowage stream script (an image's .stream), a docker-archive or an OCI archive",
            image.display()
        )));
    }
    let images = read_images(image)?;
    let tags = |images: &[FoundImage]| -> Vec<String> {
        let mut tags: Vec<String> = images.iter().flat_map(|i| i.repo_tags.clone()).collect();
        tags.dedup();
        tags
    };
    // Several images under one name are one image for several platforms (an index).
    if images.len() != 1 && (tags(&images).len() != 1 || images.iter().any(|i| i.repo_tags.len() != 1)) {
        return Err(Error::Delivery(format!(
            "{} holds {} images ({}); push takes one, or one image for several platforms",
            image.display(),
            images.len(),
            tags(&images).join(", ")
        )));
    }
    let (mut reader, mut known) = (ArchiveReader::default(), Default::default());
    let specs = images
        .into_iter()
        .map(|found| verify(found, &mut reader, &mut known))
        .collect::<Result<Vec<_>, _>>()?;
    let one = |to: &str| match specs.as_slice() {
        [spec] => Ok(spec),
        _ => Err(Error::Delivery(format!(
            "{to} takes no multi-platform image: push it to a registry or an OCI layout"
        ))),
    };
    match target {
        Target::Registry(dest) => {
            let compressor = Compression::from_name(compress)?;
            let mut every = vec![dest.tag.clone()];
            for tag in also {
                if !every.contains(tag) {
                    every.push(tag.clone());
                }
            }
            let pushed = push(&specs, &dest, &every[1..], attached, access, compressor, threads, &mut say)?;
            let mounted = match pushed.mounted {
                0 => String::new(),
                n => format!("; {n} mounted from other repositories"),
            };
            say(&format!(
                "pushed {}/{}:{} ({} blob(s) sent, {} bytes{mounted}; {} already there)",
                dest.registry,
                dest.repository,
                every.join(","),
                pushed.sent,
                pushed.bytes,
                pushed.skipped
            ));
        }
        Target::DockerDaemon => {
            let socket = docker_daemon::socket_of(std::env::var("DOCKER_HOST").ok().as_deref())?;
            let said = docker_daemon::load(one("a Docker Engine")?, &socket, threads)?;
            say(&format!("{} ({})", said, socket.display()));
        }
        Target::Podman => podman_load(one("podman")?, threads)?,
        Target::File { format, path, reference } => {
            if format == Format::DockerArchive {
                one("a docker-archive")?;
            }
            let index =
                (specs.len() > 1).then(|| reference.clone().unwrap_or_else(|| specs[0].repo_tags[0].clone()));
            let images = specs
                .into_iter()
                .map(|spec| match &reference {
                    Some(name) => ImageSpec { repo_tags: vec![name.clone()], ..spec },
                    None => spec,
                })
                .collect();
            let plan = Plan { mtime: FILE_MTIME, format, index, images };
            write_image_file(&plan, &path, threads)?;
            say(&format!("wrote {}", path.display()));
        }
    }
    Ok(())
}

/// The mtime of the entries of an image file `push` writes: dockerTools' default.
const FILE_MTIME: u64 = 1;

/// Writes the image file (or OCI folder) of `plan` at `path`, which must not exist: first
/// beside it, then renamed, so nothing half-written is ever at `path`.
fn write_image_file(plan: &Plan, path: &Path, threads: usize) -> Result<()> {
    if path.symlink_metadata().is_ok() {
        return Err(Error::Delivery(format!(
            "{} exists already; stowage writes a new file or folder",
            path.display()
        )));
    }
    let name =
        path.file_name().ok_or_else(|| Error::Delivery(format!("{}: not a file name", path.display())))?;
    let partial = path.with_file_name(format!(".{}.partial", name.to_string_lossy()));
    let written = if plan.format == Format::OciDir {
        let _ = fs::remove_dir_all(&partial);
        write_oci_dir(plan, &partial, threads)
    } else {
        let file = fs::File::create(&partial).map_err(|e| Error::io(&partial, e))?;
        write_archive(plan, BufWriter::with_capacity(OUTPUT_BUFFER, file), &partial, threads, |_, _, _| {})
            .and_then(|out| {
                let file = out.into_inner().map_err(|e| Error::io(&partial, e.into_error()))?;
                file.sync_all().map_err(|e| Error::io(&partial, e))
            })
    };
    let renamed = written.and_then(|()| fs::rename(&partial, path).map_err(|e| Error::io(path, e)));
    if renamed.is_err() {
        let _ = fs::remove_dir_all(&partial);
        let _ = fs::remove_file(&partial);
    }
    renamed
}

/// Streams the docker-archive of `image` into `podman load`, whose words go to stderr.
fn podman_load(image: &ImageSpec, threads: usize) -> Result<()> {
    let stderr = io::stderr().as_fd().try_clone_to_owned().map_err(|e| Error::io("(standard error)", e))?;
    let mut podman = std::process::Command::new("podman")
        .arg("load")
        .stdin(std::process::Stdio::piped())
        .stdout(stderr)
        .spawn()
        .map_err(|e| Error::Delivery(format!("cannot run podman (is it on PATH?): {e}")))?;
    let stdin = podman.stdin.take().expect("piped");
    let plan =
        Plan { mtime: FILE_MTIME, format: Format::DockerArchive, index: None, images: vec![image.clone()] };
    // Dropping our end of the pipe (in `map`) is podman's end of input.
    let written =
        write_archive(&plan, stdin, Path::new("(podman load's input)"), threads, |_, _, _| {}).map(drop);
    let status = podman.wait().map_err(|e| Error::io("podman load", e))?;
    let loaded = match status.success() {
        true => Ok(()),
        false => {
            Err(Error::io("podman load", io::Error::other(format!("failed ({status}); its words are above"))))
        }
    };
    first_failure(written, loaded)
}

/// Where `stowage push` and the copy scripts send an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `docker://HOST[:PORT]/REPOSITORY[:TAG]`: a registry.
    Registry(Destination),
    /// `docker-daemon:`: the Docker Engine `DOCKER_HOST` names.
    DockerDaemon,
    /// `podman:`: `podman load` (its store, as podman's configuration says).
    Podman,
    /// `docker-archive:FILE[:NAME:TAG]`, `oci-archive:FILE[:REF]`, `oci:DIR[:REF]`: an image file
    /// or OCI layout folder (which must not exist yet), the image named `REF` if given.
    File {
        /// How the file lays the image out.
        format: Format,
        /// The file or folder.
        path: PathBuf,
        /// The name the image gets, in place of its own.
        reference: Option<String>,
    },
}

impl Target {
    /// The forms [`Target::parse`] takes, for messages.
    pub const FORMS: &'static str =
        "docker://HOST[:PORT]/REPOSITORY[:TAG], docker-archive:FILE[:NAME:TAG], oci-archive:FILE[:REF], oci:DIR[:REF], docker-daemon: or podman:";

    /// Parses a destination.
    pub fn parse(text: &str) -> Result<Target> {
        if text.starts_with("docker://") {
            return Destination::parse(text).map(Target::Registry);
        }
        let (transport, rest) = text.split_once(':').ok_or_else(|| {
            Error::argument("DEST", format!("{text:?} names no transport; the forms are {}", Target::FORMS))
        })?;
        let format = match transport {
            "docker-daemon" | "podman" if !rest.is_empty() => {
                return Err(Error::argument(
                    "DEST",
                    format!("{text:?}: {transport}: takes nothing after the colon"),
                ))
            }
            "docker-daemon" => return Ok(Target::DockerDaemon),
            "podman" => return Ok(Target::Podman),
            "docker-archive" => Format::DockerArchive,
            "oci-archive" => Format::OciArchive,
            "oci" => Format::OciDir,
            _ => {
                return Err(Error::argument(
                    "DEST",
                    format!("{text:?}: unknown transport {transport:?}; the forms are {}", Target::FORMS),
                ))
            }
        };
        let (path, reference) = match rest.split_once(':') {
            Some((path, reference)) => (path, Some(reference.to_owned())),
            None => (rest, None),
        };
        if path.is_empty() || reference.as_ref().is_some_and(|r| r.is_empty()) {
            return Err(Error::argument(
                "DEST",
                format!("{text:?} is incomplete; the forms are {}", Target::FORMS),
            ));
        }
        if let (Format::DockerArchive, Some(reference)) = (format, &reference) {
            parse_name_tag("DEST", reference)?;
        }
        Ok(Target::File { format, path: path.into(), reference })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(Target::parse("docker-daemon:").unwrap(), Target::DockerDaemon);
        assert_eq!(Target::parse("podman:").unwrap(), Target::Podman);
        let file = |format, path: &str, reference: Option<&str>| Target::File {
            format,
            path: path.into(),
            reference: reference.map(str::to_owned),
        };
        assert_eq!(Target::parse("oci:/tmp/l:v1").unwrap(), file(Format::OciDir, "/tmp/l", Some("v1")));
        assert_eq!(Target::parse("oci-archive:x.tar").unwrap(), file(Format::OciArchive, "x.tar", None));
        assert_eq!(
            Target::parse("docker-archive:x.tar:team/app:2").unwrap(),
            file(Format::DockerArchive, "x.tar", Some("team/app:2"))
        );
        assert!(matches!(Target::parse("docker://h/app").unwrap(), Target::Registry(_)));
        for bad in ["x.tar", "ftp:x", "oci:", "oci:d:", "docker-archive:x.tar:noTag", "podman:x"] {
            let err = Target::parse(bad).unwrap_err().to_string();
            assert!(err.starts_with("argument 'DEST'") || err.starts_with("argument 'tag'"), "{bad}: {err}");
        }
    }
}

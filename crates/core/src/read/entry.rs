//! The entries of layers read from existing images — a base image's layers, checked when the
//! image is read ([`crate::read::verify`]) and again as `runAsRoot`'s root is unpacked
//! ([`crate::script::root`]) — and the one set of rules every reader holds them to.
//!
//! - An entry's name is a path relative to the image root: `./etc/` and `/etc` are `etc`. A name
//!   with a `..` component is refused, whether or not it climbs out of the root: readers resolve
//!   `a/../b` differently (as text, or through `a` when that is a symlink), so stowage neither
//!   unpacks such an entry nor puts it into an image. The target of a hard link is a name too.
//! - A whiteout (`.wh.NAME`, OCI image-spec `layer.md`, "Whiteouts") removes `NAME` from its
//!   directory, so `NAME` must be an entry of it: `.wh.`, `.wh..` and `.wh...` (nothing, the
//!   directory itself, its parent) are refused.
//! - Names are bytes: one that is not UTF-8 is a name like any other.

use crate::format::tar_blocks::layer_entries;
use crate::layer::tree::{OPAQUE, WHITEOUT};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// An entry of a layer that passed the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Its name, as its header gives it (for messages).
    pub name: PathBuf,
    /// Where it goes, relative to the image root; never the root itself.
    pub path: PathBuf,
    /// What it does there.
    pub action: Action,
}

/// What an entry does to the image root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Hides what lower layers hold in its directory (an opaque-directory marker).
    Opaque,
    /// Removes the entry of this name from its directory (a whiteout).
    Whiteout(OsString),
    /// Becomes a hard link to this path, relative to the image root.
    HardLink(PathBuf),
    /// Becomes itself: a file, directory, symlink or special file.
    Add,
}

/// A problem with one entry of a layer: its name as its header gives it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEntry {
    /// The entry's name.
    pub entry: PathBuf,
    /// What is wrong, worded to follow the name.
    pub problem: String,
}

impl fmt::Display for BadEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entry {:?}: {}", self.entry, self.problem)
    }
}

/// Checks `entry` against the rules; `None` for the image root itself (`./`), which layers may
/// list and which changes nothing.
pub fn check<R: Read>(entry: &tar::Entry<R>) -> Result<Option<Checked>, BadEntry> {
    let name = entry.path().map_err(|e| BadEntry { entry: PathBuf::new(), problem: e.to_string() })?;
    let bad = |problem: String| BadEntry { entry: name.to_path_buf(), problem };
    let path = relative(&name).ok_or_else(|| bad(format!("its name has \"..\", {LEADS_OUT}")))?;
    let Some(file_name) = path.file_name() else { return Ok(None) };
    let action = if file_name.as_bytes() == OPAQUE.as_bytes() {
        Action::Opaque
    } else if let Some(hidden) = file_name.as_bytes().strip_prefix(WHITEOUT.as_bytes()) {
        if matches!(hidden, b"" | b"." | b"..") {
            let hidden = OsStr::from_bytes(hidden);
            return Err(bad(format!("a whiteout of {hidden:?}, which names no entry of its directory")));
        }
        Action::Whiteout(OsStr::from_bytes(hidden).to_owned())
    } else if entry.header().entry_type() == tar::EntryType::Link {
        let target = entry.link_name().map_err(|e| bad(e.to_string()))?;
        let target = target.ok_or_else(|| bad("a hard link without a target".into()))?;
        match relative(&target) {
            None => return Err(bad(format!("hard link to {target:?}, a name with \"..\", {LEADS_OUT}"))),
            Some(to) if to.as_os_str().is_empty() => {
                return Err(bad(format!("hard link to {target:?}, the image root")))
            }
            Some(to) => Action::HardLink(to),
        }
    } else {
        Action::Add
    };
    Ok(Some(Checked { name: name.into_owned(), path, action }))
}

/// Why a name with `..` is refused, for messages.
const LEADS_OUT: &str = "which can lead out of the image root";

/// Checks every entry of the layer tarball `layer` with [`check`]; an error names the first entry
/// refused, or says what made the tarball unreadable. Reads up to the end-of-archive blocks.
pub fn check_layer(layer: impl Read) -> Result<(), String> {
    let unreadable = |e: io::Error| format!("not a readable tar file: {e}");
    layer_entries(layer, unreadable, |entry| check(entry).map(drop).map_err(|bad| bad.to_string()))
}

/// `name` relative to the image root (`./etc/`, `/etc` → `etc`; `./` → empty), or `None` if it
/// has a `..` component.
fn relative(name: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in name.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => return None,
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tar::EntryType::{Directory, Link, Regular};

    /// A layer tarball of entries named byte for byte (name, kind, link target), written into
    /// the header fields as they are: tar itself refuses some of these names.
    pub(crate) fn raw_layer(entries: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for &(name, kind, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
            h.set_entry_type(kind);
            h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
            h.set_size(0);
            h.set_mtime(1);
            h.set_cksum();
            b.append(&h, io::empty()).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// What [`check`] makes of each entry of `layer`.
    fn checked(layer: &[u8]) -> Vec<Result<Option<Checked>, String>> {
        let mut archive = tar::Archive::new(layer);
        let entries = archive.entries().unwrap().map(|e| e.unwrap());
        entries.map(|e| check(&e).map_err(|bad| bad.to_string())).collect()
    }

    #[test]
    fn names_whiteouts_and_hard_links() {
        let layer = raw_layer(&[
            (b"./", Directory, b""),
            (b"/etc/", Directory, b""),
            (b"./etc/caf\xe9", Regular, b""),
            (b"etc/.wh.old\xff", Regular, b""),
            (b"etc/.wh..wh..opq", Regular, b""),
            (b"etc/hard", Link, b"./etc/caf\xe9"),
            (b"etc/..x", Regular, b""),
        ]);
        let ok = |name: &[u8], path: &[u8], action| {
            let (name, path) = (OsStr::from_bytes(name).into(), OsStr::from_bytes(path).into());
            Ok(Some(Checked { name, path, action }))
        };
        assert_eq!(
            checked(&layer),
            [
                Ok(None),
                ok(b"/etc/", b"etc", Action::Add),
                ok(b"./etc/caf\xe9", b"etc/caf\xe9", Action::Add),
                ok(
                    b"etc/.wh.old\xff",
                    b"etc/.wh.old\xff",
                    Action::Whiteout(OsStr::from_bytes(b"old\xff").into())
                ),
                ok(b"etc/.wh..wh..opq", b"etc/.wh..wh..opq", Action::Opaque),
                ok(b"etc/hard", b"etc/hard", Action::HardLink(OsStr::from_bytes(b"etc/caf\xe9").into())),
                ok(b"etc/..x", b"etc/..x", Action::Add),
            ]
        );
    }

    #[test]
    fn what_can_lead_out_of_the_root_is_refused() {
        let layer = raw_layer(&[
            (b"a/../b", Regular, b""),
            (b"x/.wh...", Regular, b""),
            (b".wh..", Regular, b""),
            (b"h", Link, b"a/../../etc/shadow"),
            (b"root", Link, b"./"),
        ]);
        assert_eq!(
            checked(&layer),
            [
                Err("entry \"a/../b\": its name has \"..\", which can lead out of the image root".into()),
                Err("entry \"x/.wh...\": a whiteout of \"..\", which names no entry of its directory".into()),
                Err("entry \".wh..\": a whiteout of \".\", which names no entry of its directory".into()),
                Err("entry \"h\": hard link to \"a/../../etc/shadow\", a name with \"..\", which can lead out \
                     of the image root"
                    .into()),
                Err("entry \"root\": hard link to \"./\", the image root".into()),
            ]
        );
        assert_eq!(
            check_layer(layer.as_slice()),
            Err("entry \"a/../b\": its name has \"..\", which can lead out of the image root".into())
        );
        assert!(check_layer(&b"not a tar file"[..]).unwrap_err().starts_with("not a readable tar file: "));
    }
}

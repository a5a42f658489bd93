//! An image's root file system on disk, for `buildImage`: the base image's layers unpacked in
//! order (whiteouts honoured), and `copyToRoot` copied on top — real files, as dockerTools
//! copies them (`rsync -a`, its `keepContentsDirlinks` included).
//!
//! The build user cannot give files other owners or set-user-ID bits, and must be able to
//! write into every directory it fills, so owners go to an [`Owners`] record and modes the
//! disk does not hold to [`Modes`], both by inode: the layer is written from those
//! ([`crate::layer::tree`]). Every path of a layer is resolved inside the root: a symlink in a base
//! layer cannot make a later entry land outside it.

use crate::format::chunks::to_writer;
use crate::format::tar_blocks::layer_entries;
use crate::image::plan::{LayerSource, PlannedLayer};
use crate::layer::owners::{Inode, Owners};
use crate::layer::tarball::write_layer;
use crate::layer::tree::{sorted_names, Modes};
use crate::read::archive::ArchiveReader;
use crate::read::entry::{check, Action, BadEntry, Checked};
use crate::{Error, Result};
use std::collections::HashSet;
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The bits a directory always has on disk while a root is built, so the build user can fill it.
const DIR_ON_DISK: u32 = 0o700;
/// The bits the build user may not set (Nix's sandbox refuses them).
const PRIVILEGED_BITS: u32 = 0o6000;

/// Unpacks `layers` (those of the base image in the file `base`, bottom first) into `root`.
/// `scratch` is a folder for a stowage base's store layers, which are made to be read. Every
/// entry is held to the rules of [`crate::read::entry`].
pub fn unpack_layers(
    root: &Path,
    base: &Path,
    layers: &[PlannedLayer],
    scratch: &Path,
    owners: &mut Owners,
    modes: &mut Modes,
) -> Result<()> {
    let mut reader = ArchiveReader::default();
    for (index, layer) in layers.iter().enumerate() {
        let error = |problem: String| match &layer.source {
            LayerSource::Archive(archive) => archive.error(problem),
            LayerSource::Store(_) => Error::BadImage {
                path: base.into(),
                problem: format!("layer {} ({}): {problem}", index + 1, layer.id()),
            },
        };
        let bytes: Box<dyn Read + '_> = match &layer.source {
            LayerSource::Archive(archive) => reader.layer(archive)?,
            LayerSource::Store(store) => {
                let path = scratch.join(format!("layer-{index}.tar"));
                let mut file = BufWriter::new(fs::File::create(&path).map_err(|e| Error::io(&path, e))?);
                let mut out = to_writer(&mut file);
                write_layer(store, &mut out)?;
                drop(out.finish().map_err(|e| Error::io(&path, e))?);
                file.flush().map_err(|e| Error::io(&path, e))?;
                drop(file);
                Box::new(fs::File::open(&path).map_err(|e| Error::io(&path, e))?)
            }
        };
        let mut unpack = Unpack { root, owners, modes, this_layer: HashSet::new() };
        unpack.layer(bytes).map_err(error)?;
    }
    Ok(())
}

struct Unpack<'a> {
    root: &'a Path,
    owners: &'a mut Owners,
    modes: &'a mut Modes,
    /// What this layer made: an opaque marker hides only what lower layers made.
    this_layer: HashSet<PathBuf>,
}

/// What went wrong, without the path on disk it went wrong at: the entry's name says where.
fn problem(error: Error) -> String {
    match error {
        Error::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

impl Unpack<'_> {
    /// Unpacks the layer tarball `bytes`; an error says what is wrong, and with which entry.
    fn layer(&mut self, bytes: impl Read) -> Result<(), String> {
        layer_entries(
            bytes,
            |e| e.to_string(),
            |entry| {
                let Some(checked) = check(entry).map_err(|bad| bad.to_string())? else { return Ok(()) };
                self.entry(&checked, entry)
                    .map_err(|problem| BadEntry { entry: checked.name, problem }.to_string())
            },
        )
    }

    fn entry(&mut self, checked: &Checked, entry: &mut tar::Entry<impl Read>) -> Result<(), String> {
        let io_err = |e: io::Error| e.to_string();
        let rel = &checked.path;
        let parent = self.resolve_dir(rel.parent().unwrap_or(Path::new(""))).map_err(problem)?;
        match &checked.action {
            Action::Opaque => {
                for name in sorted_names(&parent).map_err(problem)? {
                    let child = parent.join(&name);
                    if !self.this_layer.contains(&child) {
                        remove(&child).map_err(problem)?;
                    }
                }
                return Ok(());
            }
            Action::Whiteout(hidden) => return remove(&parent.join(hidden)).map_err(problem),
            Action::HardLink(_) | Action::Add => {}
        }
        let path = parent.join(rel.file_name().expect("a checked path has a name"));
        let header = entry.header();
        let mode = header.mode().map_err(io_err)? & 0o7777;
        // an empty owner field (some writers leave it so) is root's
        let (uid, gid) = (header.uid().unwrap_or(0), header.gid().unwrap_or(0));
        let mtime = header.mtime().unwrap_or(0);
        let kind = header.entry_type();
        let existing = fs::symlink_metadata(&path).ok();
        if !(kind.is_dir() && existing.as_ref().is_some_and(|m| m.is_dir())) && existing.is_some() {
            remove(&path).map_err(problem)?;
        }
        if let Action::HardLink(target) = &checked.action {
            let source = self
                .resolve_dir(target.parent().unwrap_or(Path::new("")))
                .map_err(problem)?
                .join(target.file_name().expect("a checked path has a name"));
            if fs::symlink_metadata(&source).is_err() {
                return Err(format!(
                    "hard link to {target:?}, which is not in the image (missing, or later in the layer)"
                ));
            }
            fs::hard_link(&source, &path).map_err(io_err)?;
            self.this_layer.insert(path);
            return Ok(());
        }
        match kind {
            tar::EntryType::Directory => {
                if !path.is_dir() {
                    fs::create_dir(&path).map_err(io_err)?;
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let mut file = fs::File::create(&path).map_err(io_err)?;
                io::copy(entry, &mut file).map_err(io_err)?;
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name().map_err(io_err)?.ok_or("a symlink without a target")?;
                symlink(&*target, &path).map_err(io_err)?;
            }
            tar::EntryType::Fifo => {
                let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
                    .map_err(|e| io_err(e.into()))?;
                // SAFETY: a NUL-terminated path.
                if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
                    return Err(io_err(io::Error::last_os_error()));
                }
            }
            // Device nodes cannot be made without privilege; a runtime makes /dev anyway.
            tar::EntryType::Char | tar::EntryType::Block => {
                eprintln!(
                    "stowage: warning: {}: a device node, left out of the root the script sees",
                    rel.display()
                );
                return Ok(());
            }
            // PAX and GNU long-name records are read by tar itself
            _ => return Ok(()),
        }
        let on_disk = if kind.is_dir() { mode | DIR_ON_DISK } else { mode & !PRIVILEGED_BITS };
        if !kind.is_symlink() {
            fs::set_permissions(&path, fs::Permissions::from_mode(on_disk)).map_err(io_err)?;
        }
        if !kind.is_dir() {
            // as the base has it, for a script that compares times (a directory's moves as
            // it is filled)
            set_mtime(&path, mtime).map_err(io_err)?;
        }
        let meta = fs::symlink_metadata(&path).map_err(io_err)?;
        let inode = Inode::of(&meta);
        let id = |v: u64| u32::try_from(v).ok();
        self.owners.set(inode, id(uid), id(gid));
        if !kind.is_symlink() {
            self.modes.set(inode, mode, meta.permissions().mode() & 0o7777);
        }
        self.this_layer.insert(path);
        Ok(())
    }

    /// The directory `rel` names inside the root, symlinks followed within the root, made
    /// (mode 0755) where missing.
    fn resolve_dir(&self, rel: &Path) -> Result<PathBuf> {
        let resolved = resolve_in_root(self.root, rel)?;
        if !resolved.is_dir() {
            fs::create_dir_all(&resolved).map_err(|e| Error::io(&resolved, e))?;
        }
        Ok(resolved)
    }
}

/// Sets the mtime of `path` (not following a symlink) to `seconds`.
fn set_mtime(path: &Path, seconds: u64) -> io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(io::Error::from)?;
    let now = libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT };
    let mtime = libc::timespec { tv_sec: seconds.min(i64::MAX as u64) as libc::time_t, tv_nsec: 0 };
    let times = [now, mtime];
    // SAFETY: a NUL-terminated path and two timespecs.
    if unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Where `rel` is on disk when `root` is `/`: every symlink on the way is followed as a
/// process chrooted there would follow it.
pub fn resolve_in_root(root: &Path, rel: &Path) -> Result<PathBuf> {
    let mut at = PathBuf::new();
    let mut pending: Vec<PathBuf> = rel.components().rev().map(|c| PathBuf::from(c.as_os_str())).collect();
    let mut hops = 0;
    while let Some(component) = pending.pop() {
        match component.to_str() {
            Some("/" | ".") => continue,
            Some("..") => {
                at.pop();
                continue;
            }
            _ => {}
        }
        let next = at.join(&component);
        match fs::symlink_metadata(root.join(&next)) {
            Ok(meta) if meta.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return Err(Error::io(root.join(&next), io::Error::from_raw_os_error(libc::ELOOP)));
                }
                let target = fs::read_link(root.join(&next)).map_err(|e| Error::io(root.join(&next), e))?;
                if target.is_absolute() {
                    at = PathBuf::new();
                }
                pending.extend(target.components().rev().map(|c| PathBuf::from(c.as_os_str())));
            }
            _ => at = next,
        }
    }
    Ok(root.join(at))
}

fn remove(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(meta) if meta.is_dir() => {
            make_writable(path)?;
            fs::remove_dir_all(path)
        }
        Ok(_) => fs::remove_file(path),
    };
    result.map_err(|e| Error::io(path, e))
}

/// Gives every directory below `path` (and itself) its owner's rwx, so it can be emptied.
fn make_writable(path: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        if meta.mode() & 0o700 != 0o700 {
            fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() | 0o700))
                .map_err(|e| Error::io(path, e))?;
        }
        for name in sorted_names(path)? {
            make_writable(&path.join(name))?;
        }
    }
    Ok(())
}

/// Copies `source` (a store path) into `root`, as `rsync -a --chown=0:0 SOURCE/ ROOT/` does
/// with `-k` (a symlink to a directory becomes that directory) or, with `keep_dirlinks`, `-K`
/// (a symlink to a directory already in the root is filled as the directory). What it makes
/// belongs to `owner`; modes are the store's.
pub fn copy_to_root(
    source: &Path,
    root: &Path,
    keep_dirlinks: bool,
    owner: (u32, u32),
    owners: &mut Owners,
    modes: &mut Modes,
) -> Result<()> {
    let meta = fs::metadata(source).map_err(|e| Error::io(source, e))?;
    if !meta.is_dir() {
        // rsync copies a file given as SOURCE/ as nothing: it is not a directory
        return Err(Error::argument("copyToRoot", format!("{}: is not a directory", source.display())));
    }
    let mut copy = Copy { keep_dirlinks, owner, owners, modes };
    copy.dir(source, root)
}

struct Copy<'a> {
    keep_dirlinks: bool,
    owner: (u32, u32),
    owners: &'a mut Owners,
    modes: &'a mut Modes,
}

impl Copy<'_> {
    fn dir(&mut self, from: &Path, to: &Path) -> Result<()> {
        for name in sorted_names(from)? {
            let source = from.join(&name);
            let target = to.join(&name);
            let io_err = |e| Error::io(&source, e);
            let link = fs::symlink_metadata(&source).map_err(io_err)?;
            // -k: a symlink to a directory is copied as the directory
            let meta = if link.file_type().is_symlink() && !self.keep_dirlinks {
                match fs::metadata(&source) {
                    Ok(m) if m.is_dir() => m,
                    _ => link,
                }
            } else {
                link
            };
            let existing = fs::symlink_metadata(&target).ok();
            if meta.is_dir() {
                // -K: a symlink to a directory in the root is filled as the directory
                let into = match &existing {
                    Some(e) if e.is_dir() => target.clone(),
                    Some(e) if self.keep_dirlinks && e.file_type().is_symlink() && target.is_dir() => {
                        fs::canonicalize(&target).map_err(|e| Error::io(&target, e))?
                    }
                    Some(_) => {
                        remove(&target)?;
                        fs::create_dir(&target).map_err(|e| Error::io(&target, e))?;
                        target.clone()
                    }
                    None => {
                        fs::create_dir(&target).map_err(|e| Error::io(&target, e))?;
                        target.clone()
                    }
                };
                let mode = meta.mode() & 0o7777;
                self.dir(&source, &into)?;
                self.made(&into, mode, mode | DIR_ON_DISK)?;
                continue;
            }
            if existing.is_some() {
                remove(&target)?;
            }
            if meta.file_type().is_symlink() {
                let to = fs::read_link(&source).map_err(io_err)?;
                symlink(&to, &target).map_err(|e| Error::io(&target, e))?;
                let inode = Inode::of(&fs::symlink_metadata(&target).map_err(|e| Error::io(&target, e))?);
                self.owners.set(inode, Some(self.owner.0), Some(self.owner.1));
            } else {
                fs::copy(&source, &target).map_err(io_err)?;
                let mode = meta.mode() & 0o7777;
                self.made(&target, mode, mode & !PRIVILEGED_BITS)?;
            }
        }
        Ok(())
    }

    fn made(&mut self, path: &Path, mode: u32, on_disk: u32) -> Result<()> {
        fs::set_permissions(path, fs::Permissions::from_mode(on_disk)).map_err(|e| Error::io(path, e))?;
        let inode = Inode::of(&fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?);
        self.owners.set(inode, Some(self.owner.0), Some(self.owner.1));
        self.modes.set(inode, mode, on_disk);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::digest::Digest;
    use crate::image::plan::LayerId;
    use crate::layer::tarball::{Ownership, StoreLayer};
    use crate::read::entry::tests::raw_layer;

    /// A layer tarball of (name, kind, contents or link target, uid, mode).
    fn layer(entries: &[(&str, tar::EntryType, &str, u64, u32)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for &(name, kind, data, uid, mode) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_uid(uid);
            h.set_gid(0);
            h.set_mtime(1);
            match kind {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    h.set_size(0);
                    b.append_link(&mut h, name, data).unwrap();
                }
                _ => {
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, name, data.as_bytes()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    fn unpack(root: &Path, layers: &[Vec<u8>]) -> (Owners, Modes) {
        let (mut owners, mut modes) = (Owners::default(), Modes::default());
        for bytes in layers {
            let mut u = Unpack { root, owners: &mut owners, modes: &mut modes, this_layer: HashSet::new() };
            u.layer(bytes.as_slice()).unwrap();
        }
        (owners, modes)
    }

    use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as L};

    #[test]
    fn layers_apply_in_order_with_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let lower = layer(&[
            ("etc/", D, "", 0, 0o755),
            ("etc/passwd", F, "root", 0, 0o644),
            ("etc/group", F, "root", 0, 0o644),
            ("opt/app/", D, "", 0, 0o555),
            ("opt/app/old", F, "old", 0, 0o444),
            ("usr/bin/sudo", F, "sudo", 0, 0o4755),
            ("home/user/", D, "", 1000, 0o700),
        ]);
        let upper = layer(&[
            ("etc/.wh.group", F, "", 0, 0),
            ("opt/app/", D, "", 0, 0o555),
            ("opt/app/.wh..wh..opq", F, "", 0, 0),
            ("opt/app/new", F, "new", 0, 0o444),
            ("etc/passwd", F, "root\nuser", 0, 0o644),
            ("bin", L, "usr/bin", 0, 0o777),
            ("usr/bin/su", H, "usr/bin/sudo", 0, 0o4755),
        ]);
        let (owners, modes) = unpack(root, &[lower, upper]);
        assert!(!root.join("etc/group").exists());
        assert_eq!(fs::read_to_string(root.join("etc/passwd")).unwrap(), "root\nuser");
        assert!(!root.join("opt/app/old").exists() && root.join("opt/app/new").exists());
        assert_eq!(fs::read_to_string(root.join("bin/su")).unwrap(), "sudo");
        assert_eq!(fs::symlink_metadata(root.join("etc/passwd")).unwrap().mtime(), 1);
        assert_eq!(fs::symlink_metadata(root.join("bin")).unwrap().mtime(), 1);
        let home = fs::metadata(root.join("home/user")).unwrap();
        assert_eq!(owners.get(Inode::of(&home)), (Some(1000), Some(0)));
        // the disk holds what the build user may; the records hold the rest
        let sudo = fs::metadata(root.join("usr/bin/sudo")).unwrap();
        assert_eq!(sudo.mode() & 0o7777, 0o755);
        assert_eq!(modes.mode(Inode::of(&sudo), 0o755), 0o4755);
        let app = fs::metadata(root.join("opt/app")).unwrap();
        assert_eq!(app.mode() & 0o777, 0o755, "kept writable to be filled");
    }

    #[test]
    fn symlinks_in_a_layer_cannot_lead_outside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        let outside = dir.path().join("outside");
        let evil = layer(&[
            ("escape", L, &outside.to_string_lossy(), 0, 0o777),
            ("up", L, "../..", 0, 0o777),
            ("escape/file", F, "x", 0, 0o644),
            ("up/file2", F, "x", 0, 0o644),
        ]);
        unpack(&root, &[evil]);
        assert!(!outside.exists() && !dir.path().join("file2").exists());
        // an absolute link resolves inside the root, as a chroot would see it
        assert!(root.join(outside.strip_prefix("/").unwrap()).join("file").exists());
        assert!(root.join("file2").exists());
        let mut u = Unpack {
            root: &root,
            owners: &mut Owners::default(),
            modes: &mut Modes::default(),
            this_layer: HashSet::new(),
        };
        // tar itself will not write such a name: set it by hand
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..4].copy_from_slice(b"../x");
        h.set_mode(0o644);
        h.set_size(0);
        h.set_cksum();
        let mut climbing = tar::Builder::new(Vec::new());
        climbing.append(&h, io::empty()).unwrap();
        let err = u.layer(climbing.into_inner().unwrap().as_slice()).unwrap_err();
        assert!(err.starts_with("entry \"../x\": its name has \"..\""), "{err}");
    }

    #[test]
    fn copying_follows_rsync_dirlink_rules() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("pkg");
        fs::create_dir_all(source.join("lib")).unwrap();
        fs::write(source.join("lib/libc.so"), "c").unwrap();
        fs::set_permissions(source.join("lib/libc.so"), fs::Permissions::from_mode(0o555)).unwrap();
        symlink("lib", source.join("lib64")).unwrap();
        symlink("libc.so", source.join("lib/libc.so.6")).unwrap();
        let copy = |keep: bool, prepare: &dyn Fn(&Path)| {
            let root = tempfile::tempdir().unwrap();
            prepare(root.path());
            let (mut owners, mut modes) = (Owners::default(), Modes::default());
            copy_to_root(&source, root.path(), keep, (0, 0), &mut owners, &mut modes).unwrap();
            root
        };
        // -k: the symlink to a directory becomes the directory; other links stay links
        let root = copy(false, &|_| {});
        assert!(fs::symlink_metadata(root.path().join("lib64")).unwrap().is_dir());
        assert!(fs::symlink_metadata(root.path().join("lib/libc.so.6")).unwrap().file_type().is_symlink());
        let file = fs::symlink_metadata(root.path().join("lib/libc.so")).unwrap();
        assert!(file.is_file() && file.mode() & 0o777 == 0o555);
        // -K: a symlink to a directory in the root is filled through
        let root = copy(true, &|r| {
            fs::create_dir(r.join("usr-lib")).unwrap();
            symlink("usr-lib", r.join("lib")).unwrap();
        });
        assert!(fs::symlink_metadata(root.path().join("lib")).unwrap().file_type().is_symlink());
        assert!(root.path().join("usr-lib/libc.so").exists());
        assert!(fs::symlink_metadata(root.path().join("lib64")).unwrap().file_type().is_symlink());
    }

    #[test]
    fn a_stowage_base_layer_is_unpacked_too() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        fs::create_dir_all(store.join("abc-hello/bin")).unwrap();
        fs::write(store.join("abc-hello/bin/hello"), "hi").unwrap();
        let owner = Ownership { uid: 0, gid: 0, uname: "root".into(), gname: "root".into(), mtime: 1 };
        let source = StoreLayer {
            store_dir: store.to_string_lossy().into_owned(),
            owner,
            store_paths: vec![store.join("abc-hello").to_string_lossy().into_owned()],
            synthetic: vec![],
            tree: None,
            perms: vec![],
        };
        let layer = PlannedLayer {
            source: LayerSource::Store(source),
            id: LayerId::Digest(Digest([0; 32])),
            size: 0,
        };
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        let (mut owners, mut modes) = (Owners::default(), Modes::default());
        unpack_layers(&root, Path::new("base"), &[layer], dir.path(), &mut owners, &mut modes).unwrap();
        let inside = root.join(store.strip_prefix("/").unwrap()).join("abc-hello/bin/hello");
        assert_eq!(fs::read_to_string(inside).unwrap(), "hi");
    }

    fn try_unpack(root: &Path, bytes: &[u8]) -> std::result::Result<(), String> {
        let (mut owners, mut modes) = (Owners::default(), Modes::default());
        let mut u = Unpack { root, owners: &mut owners, modes: &mut modes, this_layer: HashSet::new() };
        u.layer(bytes)
    }

    /// Regression: names and link targets that are not UTF-8 were unpacked with U+FFFD in place of
    /// each bad byte, so a script saw other names than the image has.
    #[test]
    fn names_that_are_not_utf8_are_unpacked_as_they_are() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let lower = raw_layer(&[
            (b"d\xff/", D, b""),
            (b"d\xff/caf\xe9", F, b""),
            (b"d\xff/a\xe9", F, b""),
            (b"d\xff/a\xe8", F, b""),
            (b"d\xff/link", L, b"\xff\xfe"),
            (b"d\xff/hard", H, b"d\xff/caf\xe9"),
        ]);
        let upper = raw_layer(&[(b"d\xff/.wh.a\xe8", F, b"")]);
        unpack(root, &[lower, upper]);
        let d = root.join(OsStr::from_bytes(b"d\xff"));
        let names: Vec<Vec<u8>> = sorted_names(&d).unwrap().iter().map(|n| n.as_bytes().to_vec()).collect();
        assert_eq!(names, [&b"a\xe9"[..], b"caf\xe9", b"hard", b"link"]);
        assert_eq!(fs::read_link(d.join("link")).unwrap().as_os_str().as_bytes(), b"\xff\xfe");
    }

    /// Regression: the whiteout of `..` removed the root's parent (the build folder, with
    /// `.attrs.json`); those of `.` and of the empty name removed the root itself.
    #[test]
    fn whiteouts_that_name_no_entry_of_their_directory_are_refused() {
        for (whiteout, hidden) in
            [(&b".wh..."[..], "\"..\""), (b".wh..", "\".\""), (b".wh.", "\"\""), (b"x/.wh...", "\"..\"")]
        {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("root");
            fs::create_dir_all(root.join("x")).unwrap();
            fs::write(dir.path().join(".attrs.json"), "{}").unwrap();
            let err = try_unpack(&root, &raw_layer(&[(whiteout, F, b"")])).unwrap_err();
            let name = String::from_utf8_lossy(whiteout);
            assert!(err.contains(&format!("entry \"{name}\": a whiteout of {hidden}")), "{name}: {err}");
            assert!(root.join("x").is_dir() && dir.path().join(".attrs.json").exists(), "{name}");
        }
    }

    /// Regression: a hard link whose target is not there said only "x/y: No such file or
    /// directory".
    #[test]
    fn a_hard_link_to_what_is_not_there_names_the_entry_and_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let err = try_unpack(dir.path(), &raw_layer(&[(b"x/y", H, b"z")])).unwrap_err();
        assert_eq!(
            err,
            "entry \"x/y\": hard link to \"z\", which is not in the image (missing, or later in the layer)"
        );
    }

    /// An error in a layer of an archive names the archive, the layer and the entry.
    #[test]
    fn errors_name_the_archive_the_layer_and_the_entry() {
        use crate::format::compress::Compression;
        use crate::image::plan::ArchiveLayer;
        let dir = tempfile::tempdir().unwrap();
        let bytes = raw_layer(&[(b"x/", D, b""), (b"x/y", H, b"z")]);
        let archive = dir.path().join("base.tar");
        fs::write(&archive, &bytes).unwrap();
        let layer = ArchiveLayer {
            archive: archive.to_string_lossy().into_owned(),
            entry: "l0/layer.tar".into(),
            offset: 0,
            stored_size: bytes.len() as u64,
            compression: Compression::None,
        };
        let layer = PlannedLayer {
            source: LayerSource::Archive(layer),
            id: LayerId::Digest(Digest::of(&bytes)),
            size: 0,
        };
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        let (mut owners, mut modes) = (Owners::default(), Modes::default());
        let err = unpack_layers(&root, &archive, &[layer], dir.path(), &mut owners, &mut modes).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "image archive {}: layer l0/layer.tar: entry \"x/y\": hard link to \"z\", which is not in \
                 the image (missing, or later in the layer)",
                archive.display()
            )
        );
    }
}

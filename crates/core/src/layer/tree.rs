//! An image root on disk, after a customisation script ran in it, as layer entries: the whole
//! tree, or (given a [`Snapshot`] taken before the script) only what changed since, with
//! whiteouts for what went away.
//!
//! Same inputs, same bytes: entries are sorted by name, every mtime is clamped to the image's,
//! owners are numeric — what a fake root set (recorded by inode, [`Owners`]), else the image's
//! owner — and modes are the disk's, except where the disk could not hold them ([`Modes`]).
//! Hard links within the layer stay hard links. Names and link targets are bytes, written as they
//! are (see [`crate::layer::tarball`]).

use crate::format::chunks::{ChunkWriter, Emit};
use crate::layer::owners::{Inode, Owners};
use crate::layer::perms::Perms;
use crate::layer::tarball::{append_file, header, Ownership};
use crate::{Error, Result};
use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The prefix of a whiteout entry's name (OCI image layers; Docker's too).
pub const WHITEOUT: &str = ".wh.";
/// The name of an opaque-directory marker: the directory's lower contents are hidden.
pub const OPAQUE: &str = ".wh..wh..opq";

/// Modes the image's files have where the disk holds another (set-user-ID bits the sandbox
/// refuses, directories kept writable while a base is unpacked): the mode given, and the mode
/// on disk that stands for it. A file chmod-ed since has another mode on disk and keeps that.
#[derive(Debug, Default, Clone)]
pub struct Modes {
    modes: HashMap<Inode, (u32, u32)>,
}

impl Modes {
    /// Notes that `inode`, `on_disk` on disk, stands for `mode`.
    pub fn set(&mut self, inode: Inode, mode: u32, on_disk: u32) {
        if mode != on_disk {
            self.modes.insert(inode, (mode, on_disk));
        }
    }

    /// The mode of `inode`, `on_disk` on disk now.
    pub fn mode(&self, inode: Inode, on_disk: u32) -> u32 {
        match self.modes.get(&inode) {
            Some(&(mode, stood_for)) if stood_for == on_disk => mode,
            _ => on_disk,
        }
    }
}

/// What a tree held before a script ran: each entry's inode and change time, which any change
/// to it (contents, mode, owner, links, a child added or removed) moves.
#[derive(Debug, Default)]
pub struct Snapshot {
    entries: HashMap<PathBuf, Seen>,
    children: HashMap<PathBuf, BTreeSet<OsString>>,
    latest: (i64, i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    inode: Inode,
    ctime: (i64, i64),
    mode: u32,
    is_dir: bool,
}

impl Seen {
    fn of(meta: &fs::Metadata) -> Seen {
        Seen {
            inode: Inode::of(meta),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            mode: meta.mode(),
            is_dir: meta.is_dir(),
        }
    }
}

/// What changed since a snapshot: what the disk shows, and the owners a script set (a faked
/// chown leaves no trace on the disk).
#[derive(Debug, Clone, Copy)]
pub struct Changes<'a> {
    /// The tree before the script.
    pub before: &'a Snapshot,
    /// The owners the script set.
    pub chowned: &'a Owners,
}

impl Snapshot {
    /// Takes the snapshot of the tree at `root`, then waits until the clock that stamps
    /// change times has moved past every one of them, so a change made right after cannot
    /// carry the same time.
    pub fn take(root: &Path) -> Result<Snapshot> {
        let mut snapshot = Snapshot::default();
        snapshot.add(root, PathBuf::new())?;
        while now_coarse() <= snapshot.latest {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        Ok(snapshot)
    }

    fn add(&mut self, dir: &Path, rel: PathBuf) -> Result<()> {
        let mut names = BTreeSet::new();
        for name in sorted_names(dir)? {
            let path = dir.join(&name);
            let meta = fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
            let seen = Seen::of(&meta);
            self.latest = self.latest.max(seen.ctime);
            let child = rel.join(&name);
            if meta.is_dir() {
                self.add(&path, child.clone())?;
            }
            self.entries.insert(child, seen);
            names.insert(name);
        }
        self.children.insert(rel, names);
        Ok(())
    }
}

fn now_coarse() -> (i64, i64) {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: one timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    (ts.tv_sec, ts.tv_nsec)
}

/// How the entries of a tree are owned and stamped.
#[derive(Debug, Clone, Copy)]
pub struct TreeOwners<'a> {
    /// The owner of what no one chowned, and the latest mtime an entry may have.
    pub default: &'a Ownership,
    /// What a fake root set.
    pub owners: &'a Owners,
    /// Modes the disk does not hold.
    pub modes: &'a Modes,
    /// Owners and modes the image sets on matching entries, over all of the above.
    pub perms: &'a Perms,
}

/// Writes the tree at `root` (all of it, or what `changes` says changed) as a tar file to
/// `out`: entries sorted, then the end-of-archive blocks. Returns how many entries it wrote.
pub fn write_tree(
    root: &Path,
    before: Option<Changes>,
    owners: TreeOwners,
    out: &mut ChunkWriter<impl Emit>,
) -> Result<usize> {
    let mut entries = Vec::new();
    collect(root, Path::new(""), before, &mut entries)?;
    let mut builder = tar::Builder::new(out);
    let mut links: HashMap<Inode, PathBuf> = HashMap::new();
    for entry in &entries {
        write_entry(&mut builder, root, entry, owners, &mut links)?;
    }
    builder.into_inner().map_err(|e| Error::io(root, e))?;
    Ok(entries.len())
}

/// [`write_tree`] into a new file at `path`.
pub fn write_tree_file(
    root: &Path,
    before: Option<Changes>,
    owners: TreeOwners,
    path: &Path,
) -> Result<usize> {
    let io_err = |e| Error::io(path, e);
    let mut file = io::BufWriter::new(fs::File::create(path).map_err(io_err)?);
    let mut chunks = crate::format::chunks::to_writer(&mut file);
    let count = write_tree(root, before, owners, &mut chunks)?;
    drop(chunks.finish().map_err(io_err)?);
    io::Write::flush(&mut file).map_err(io_err)?;
    Ok(count)
}

enum Entry {
    Present { rel: PathBuf, meta: fs::Metadata },
    Whiteout { rel: PathBuf },
}

/// The entries below `rel` that go into the layer, in order. With `changes`, an entry goes in if
/// it is new or changed, and a directory also if anything below it does (its path must exist).
/// A directory's change time is not looked at: making and removing mount points in it moves
/// that, and what changes a directory otherwise — a child, its mode, its owner — is seen.
/// Returns whether it added any.
fn collect(root: &Path, rel: &Path, changes: Option<Changes>, out: &mut Vec<Entry>) -> Result<bool> {
    let before = changes.map(|c| c.before);
    let chowned = |inode| changes.is_some_and(|c| c.chowned.contains(inode));
    let dir = root.join(rel);
    let names = sorted_names(&dir)?;
    let mut added = false;
    // what was here and is not any more
    let gone: Vec<OsString> = match before.and_then(|b| b.children.get(rel)) {
        Some(old) => old.iter().filter(|n| !names.contains(*n)).cloned().collect(),
        None => Vec::new(),
    };
    let mut whiteouts: Vec<(OsString, PathBuf)> = gone
        .into_iter()
        .map(|n| {
            let mut name = OsString::from(WHITEOUT);
            name.push(&n);
            (name.clone(), rel.join(name))
        })
        .collect();
    let mut all: Vec<(OsString, Option<PathBuf>)> = names.iter().map(|n| (n.clone(), None)).collect();
    all.extend(whiteouts.drain(..).map(|(n, p)| (n, Some(p))));
    all.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    for (name, whiteout) in all {
        if let Some(rel) = whiteout {
            out.push(Entry::Whiteout { rel });
            added = true;
            continue;
        }
        let child = rel.join(&name);
        let path = root.join(&child);
        let meta = fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
        let seen = before.and_then(|b| b.entries.get(&child)).copied();
        let now = Seen::of(&meta);
        if meta.is_dir() {
            match seen {
                // the same directory as before: in if it changed or something below it did
                Some(old) if old.is_dir && old.inode == now.inode => {
                    let at = out.len();
                    out.push(Entry::Present { rel: child.clone(), meta });
                    let below = collect(root, &child, changes, out)?;
                    if below || old.mode != now.mode || chowned(now.inode) {
                        added = true;
                    } else {
                        out.remove(at);
                    }
                }
                // a new directory: all of it, hiding what a directory of that name held
                old => {
                    out.push(Entry::Present { rel: child.clone(), meta });
                    if old.is_some_and(|o| o.is_dir) {
                        out.push(Entry::Whiteout { rel: child.join(OPAQUE) });
                    }
                    collect(root, &child, None, out)?;
                    added = true;
                }
            }
        } else if seen != Some(now) || chowned(now.inode) {
            out.push(Entry::Present { rel: child, meta });
            added = true;
        }
    }
    Ok(added)
}

fn write_entry<E: Emit>(
    builder: &mut tar::Builder<&mut ChunkWriter<E>>,
    root: &Path,
    entry: &Entry,
    owners: TreeOwners,
    links: &mut HashMap<Inode, PathBuf>,
) -> Result<()> {
    let default = owners.default;
    let (rel, meta) = match entry {
        Entry::Whiteout { rel } => {
            let mut h = header(tar::EntryType::Regular, 0, 0, default).map_err(|e| Error::io(rel, e))?;
            return builder.append_data(&mut h, rel, io::empty()).map_err(|e| Error::io(rel, e));
        }
        Entry::Present { rel, meta } => (rel, meta),
    };
    let path = root.join(rel);
    let io_err = |e| Error::io(&path, e);
    let inode = Inode::of(meta);
    let (uid, gid) = owners.owners.get(inode);
    let name_of = |id: Option<u32>, default_id: u64, default_name: &str| match id {
        Some(id) if u64::from(id) != default_id => (u64::from(id), String::new()),
        _ => (default_id, default_name.to_owned()),
    };
    let (uid, uname) = name_of(uid, default.uid, &default.uname);
    let (gid, gname) = name_of(gid, default.gid, &default.gname);
    let mtime = u64::try_from(meta.mtime()).unwrap_or(0).min(default.mtime);
    let owner = Ownership { uid, gid, uname, gname, mtime };
    let mode = owners.modes.mode(inode, meta.permissions().mode() & 0o7777);
    let kind = meta.file_type();
    let mut name = rel.as_os_str().to_owned();
    if kind.is_dir() {
        name.push("/");
    }
    let name = PathBuf::from(name);
    let header = |kind, mode, size, owner: &Ownership| -> io::Result<tar::Header> {
        let mut h = header(kind, mode, size, owner)?;
        owners.perms.apply(name.as_os_str().as_bytes(), &mut h)?;
        Ok(h)
    };
    if kind.is_dir() {
        let mut h = header(tar::EntryType::Directory, mode, 0, &owner).map_err(io_err)?;
        return builder.append_data(&mut h, &name, io::empty()).map_err(io_err);
    }
    if kind.is_symlink() {
        let target = fs::read_link(&path).map_err(io_err)?;
        let mut h = header(tar::EntryType::Symlink, 0o777, 0, &owner).map_err(io_err)?;
        return builder.append_link(&mut h, &name, target).map_err(io_err);
    }
    if meta.nlink() > 1 && !kind.is_dir() {
        if let Some(first) = links.get(&inode) {
            let mut h = header(tar::EntryType::Link, mode, 0, &owner).map_err(io_err)?;
            return builder.append_link(&mut h, &name, first).map_err(io_err);
        }
        links.insert(inode, name.clone());
    }
    if kind.is_file() {
        let mut h = header(tar::EntryType::Regular, mode, meta.len(), &owner).map_err(io_err)?;
        return append_file(builder, &mut h, &name, open_readable(&path, mode)?, &path);
    }
    let (entry_type, device) = if kind.is_fifo() {
        (tar::EntryType::Fifo, None)
    } else if kind.is_char_device() {
        (tar::EntryType::Char, Some(meta.rdev()))
    } else if kind.is_block_device() {
        (tar::EntryType::Block, Some(meta.rdev()))
    } else {
        return Err(io_err(io::Error::other("is a socket, which a layer cannot hold")));
    };
    let mut h = header(entry_type, mode, 0, &owner).map_err(io_err)?;
    if let Some(rdev) = device {
        h.set_device_major(libc::major(rdev)).map_err(io_err)?;
        h.set_device_minor(libc::minor(rdev)).map_err(io_err)?;
    }
    builder.append_data(&mut h, &name, io::empty()).map_err(io_err)
}

/// Opens the file at `path` for reading, making it readable first if its mode (`mode`: a
/// script may chmod 000) shuts out its owner; the layer keeps `mode`.
fn open_readable(path: &Path, mode: u32) -> Result<fs::File> {
    match fs::File::open(path) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o400))
                .map_err(|e| Error::io(path, e))?;
            fs::File::open(path).map_err(|e| Error::io(path, e))
        }
        result => result.map_err(|e| Error::io(path, e)),
    }
}

/// The names in `dir`, sorted bytewise.
pub fn sorted_names(dir: &Path) -> Result<Vec<OsString>> {
    let mut names: Vec<OsString> = fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .map_err(|e| Error::io(dir, e))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn owner() -> Ownership {
        Ownership { uid: 0, gid: 0, uname: "root".into(), gname: "root".into(), mtime: 1 }
    }

    /// (name, type, mode, uid, link) of every entry `write_tree` writes.
    fn listing(
        root: &Path,
        before: Option<&Snapshot>,
        owners: &Owners,
        modes: &Modes,
    ) -> Vec<(String, char, u32, u64, String)> {
        let mut bytes = Vec::new();
        let mut out = crate::format::chunks::to_writer(&mut bytes);
        let default = owner();
        let none = Owners::default();
        let changes = before.map(|before| Changes { before, chowned: &none });
        let perms = Perms::default();
        write_tree(root, changes, TreeOwners { default: &default, owners, modes, perms: &perms }, &mut out)
            .unwrap();
        drop(out.finish().unwrap());
        tar::Archive::new(bytes.as_slice())
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                assert_eq!(h.mtime().unwrap(), 1);
                let kind = match h.entry_type() {
                    tar::EntryType::Directory => 'd',
                    tar::EntryType::Symlink => 'l',
                    tar::EntryType::Link => 'h',
                    tar::EntryType::Fifo => 'p',
                    _ => 'f',
                };
                let link =
                    e.link_name().unwrap().map(|l| l.to_string_lossy().into_owned()).unwrap_or_default();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    kind,
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    link,
                )
            })
            .collect()
    }

    #[test]
    fn whole_tree_sorted_with_owners_modes_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("tmp")).unwrap();
        fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        fs::write(root.join("b"), "b").unwrap();
        fs::hard_link(root.join("b"), root.join("a")).unwrap();
        symlink("/store/x/bin/sh", root.join("sh")).unwrap();
        let mut owners = Owners::default();
        owners.set(Inode::of(&fs::metadata(root.join("tmp")).unwrap()), Some(1000), None);
        let mut modes = Modes::default();
        let b = fs::metadata(root.join("b")).unwrap();
        modes.set(Inode::of(&b), 0o4755, b.permissions().mode() & 0o7777);
        let got = listing(root, None, &owners, &modes);
        assert_eq!(
            got,
            [
                ("a".into(), 'f', 0o4755, 0, String::new()),
                ("b".into(), 'h', 0o4755, 0, "a".into()),
                ("sh".into(), 'l', 0o777, 0, "/store/x/bin/sh".into()),
                ("tmp/".into(), 'd', 0o1777, 1000, String::new()),
            ]
        );
    }

    #[test]
    fn only_changes_since_the_snapshot_with_whiteouts() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["etc", "usr/lib", "var/cache/old"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("etc/passwd"), "root").unwrap();
        fs::write(root.join("etc/group"), "root").unwrap();
        fs::write(root.join("usr/lib/libc"), "c").unwrap();
        fs::write(root.join("var/cache/old/x"), "x").unwrap();
        let before = Snapshot::take(root).unwrap();
        fs::write(root.join("etc/passwd"), "root\nuser").unwrap();
        fs::remove_file(root.join("etc/group")).unwrap();
        fs::remove_dir_all(root.join("var/cache")).unwrap();
        fs::create_dir_all(root.join("var/cache/new")).unwrap();
        fs::create_dir(root.join("home")).unwrap();
        let got: Vec<String> = listing(root, Some(&before), &Owners::default(), &Modes::default())
            .into_iter()
            .map(|e| e.0)
            .collect();
        // The new var/cache hides the old one's contents: opaque, or, where the file system gave
        // it the old inode (so it is the same directory to us), by a whiteout of what is gone.
        let hidden = if got.contains(&"var/cache/.wh.old".to_string()) { ".wh.old" } else { ".wh..wh..opq" };
        assert_eq!(
            got,
            [
                "etc/".to_string(),
                "etc/.wh.group".into(),
                "etc/passwd".into(),
                "home/".into(),
                "var/".into(),
                "var/cache/".into(),
                format!("var/cache/{hidden}"),
                "var/cache/new/".into(),
            ]
        );
        // nothing changed: nothing written
        let again = Snapshot::take(root).unwrap();
        assert!(listing(root, Some(&again), &Owners::default(), &Modes::default()).is_empty());
    }

    /// The layer of what changed in `root` since `before`, owned by the test's owner.
    fn changes_since(root: &Path, before: &Snapshot) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut out = crate::format::chunks::to_writer(&mut bytes);
        let (default, owners, modes, perms) =
            (owner(), Owners::default(), Modes::default(), Perms::default());
        let changes = Changes { before, chowned: &owners };
        let tree_owners = TreeOwners { default: &default, owners: &owners, modes: &modes, perms: &perms };
        write_tree(root, Some(changes), tree_owners, &mut out).unwrap();
        drop(out.finish().unwrap());
        bytes
    }

    /// A tree of ASCII names keeps the bytes it had before names were written as bytes:
    /// short and long names, directories, links, hard links, whiteouts.
    #[test]
    fn a_tree_of_ascii_names_keeps_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let long = "l".repeat(150);
        fs::write(root.join("gone"), "").unwrap();
        let before = Snapshot::take(root).unwrap();
        fs::remove_file(root.join("gone")).unwrap();
        fs::create_dir_all(root.join("etc").join(&long)).unwrap();
        fs::write(root.join("etc").join(&long).join(&long), "long").unwrap();
        fs::write(root.join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
        fs::hard_link(root.join("etc/passwd"), root.join("etc/passwd-")).unwrap();
        symlink(format!("/store/{long}"), root.join("etc/link")).unwrap();
        for (path, mode) in [("etc", 0o755), (&format!("etc/{long}"), 0o755), ("etc/passwd", 0o644)] {
            fs::set_permissions(root.join(path), fs::Permissions::from_mode(mode)).unwrap();
        }
        fs::set_permissions(root.join("etc").join(&long).join(&long), fs::Permissions::from_mode(0o600))
            .unwrap();
        let bytes = changes_since(root, &before);
        assert_eq!(
            (crate::format::digest::Digest::of(&bytes).to_string().as_str(), bytes.len()),
            ("sha256:254cc51ce55469c3203b648cd7022063fd9bf4effff0ef85400e28ed924dcdb0", 8704)
        );
    }

    /// Regression: names and link targets that are not UTF-8 were written with U+FFFD in place of
    /// each bad byte, whiteouts too.
    #[test]
    fn names_that_are_not_utf8_are_written_as_they_are() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let name = |bytes: &[u8]| root.join(OsStr::from_bytes(bytes));
        fs::write(name(b"gone\xe9"), "").unwrap();
        let before = Snapshot::take(root).unwrap();
        fs::remove_file(name(b"gone\xe9")).unwrap();
        fs::create_dir(name(b"d\xff")).unwrap();
        fs::write(name(b"d\xff/a\xe9"), "").unwrap();
        fs::write(name(b"d\xff/a\xe8"), "").unwrap();
        fs::hard_link(name(b"d\xff/a\xe8"), name(b"d\xff/hard\xe8")).unwrap();
        symlink(OsStr::from_bytes(b"\xff\xfe"), name(b"link")).unwrap();
        let bytes = changes_since(root, &before);
        let mut archive = tar::Archive::new(bytes.as_slice());
        let got: Vec<(Vec<u8>, Vec<u8>)> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.path_bytes().into_owned(), e.link_name_bytes().unwrap_or_default().into_owned()))
            .collect();
        let entry = |name: &[u8], link: &[u8]| (name.to_vec(), link.to_vec());
        assert_eq!(
            got,
            [
                entry(b".wh.gone\xe9", b""),
                entry(b"d\xff/", b""),
                entry(b"d\xff/a\xe8", b""),
                entry(b"d\xff/a\xe9", b""),
                entry(b"d\xff/hard\xe8", b"d\xff/a\xe8"),
                entry(b"link", b"\xff\xfe"),
            ]
        );
    }
}

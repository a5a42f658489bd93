//! Layer tarballs: store paths, or a few synthetic entries, as a deterministic tar stream.
//!
//! Same inputs, same bytes: entries come in sorted order, every header carries the image's
//! fixed mtime and numeric owner (and the given user/group names, never the host's), and modes
//! follow the NAR's view of the store rather than whatever the disk says — files 0444, or 0555
//! when executable, directories 0555, symlinks 0777. Hard links between store files are an
//! artefact of store optimisation on one machine (a NAR cannot hold them), so store files are
//! always written whole: an optimised and an unoptimised store give the same layer.
//!
//! Names are bytes: a store path may hold any byte but `/` and NUL in a file name or a symlink's
//! target, and what is not UTF-8 is written as it is — in the GNU headers' name and link fields,
//! or the GNU long-name records before them, which hold any byte but NUL (as `tar
//! --format=gnu` writes them; skopeo, podman and umoci read them back byte for byte).

use crate::format::chunks::{ChunkWriter, CopyError, Emit};
use crate::format::digest::Digest;
use crate::format::tar_blocks::{padding, BLOCK, END_OF_ARCHIVE};
use crate::layer::perms::{Perm, Perms};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Who owns every entry and when it was last modified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    /// Numeric owner.
    pub uid: u64,
    /// Numeric group.
    pub gid: u64,
    /// Owner name in the headers (`root` unless asked otherwise).
    pub uname: String,
    /// Group name in the headers.
    pub gname: String,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
}

/// An entry that is not read from the store: the customisation layer's directories and links,
/// and the files of an image's Nix database ([`crate::layer::nix_db`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Synthetic {
    /// A directory (mode 0755), relative to the image root.
    Directory {
        /// Its path, without a leading `/`.
        #[serde(with = "path_json")]
        path: PathBuf,
    },
    /// A symbolic link.
    Symlink {
        /// Its path, without a leading `/`.
        #[serde(with = "path_json")]
        path: PathBuf,
        /// Where it points.
        #[serde(with = "path_json")]
        target: PathBuf,
    },
    /// A regular file (mode 0644).
    File {
        /// Its path, without a leading `/`.
        #[serde(with = "path_json")]
        path: PathBuf,
        /// What it holds (base64 in a plan's JSON).
        #[serde(with = "base64_json")]
        contents: Vec<u8>,
    },
}

impl Synthetic {
    /// Its path, relative to the image root.
    pub fn path(&self) -> &Path {
        match self {
            Synthetic::Directory { path }
            | Synthetic::Symlink { path, .. }
            | Synthetic::File { path, .. } => path,
        }
    }
}

/// Bytes in a plan's JSON: a base64 string, a third larger than the bytes (an array of numbers
/// would be three to four times larger).
mod base64_json {
    use base64::Engine as _;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD.decode(text).map_err(D::Error::custom)
    }
}

/// A path in a plan's JSON: a string if it is UTF-8 (as nearly all are), else the array of its
/// bytes — JSON strings hold text only.
mod path_json {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::ffi::OsString;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::path::{Path, PathBuf};

    pub fn serialize<S: Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
        match path.to_str() {
            Some(text) => serializer.serialize_str(text),
            None => serializer.serialize_bytes(path.as_os_str().as_bytes()),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        Bytes(Vec<u8>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PathBuf, D::Error> {
        Ok(match Repr::deserialize(deserializer)? {
            Repr::Text(text) => text.into(),
            Repr::Bytes(bytes) => OsString::from_vec(bytes).into(),
        })
    }
}

/// A layer generated from the store: what it holds, and how its entries are owned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreLayer {
    /// The store root the paths live under.
    pub store_dir: String,
    /// Owner and mtime of every entry.
    pub owner: Ownership,
    /// Store paths (absolute), each written whole under its place in the store.
    pub store_paths: Vec<String>,
    /// Synthetic entries, written after them.
    pub synthetic: Vec<Synthetic>,
    /// A tar file (what a customisation script left, see [`crate::layer::tree`]) whose entries are
    /// written last, byte for byte.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<String>,
    /// Owners and modes set on matching store and synthetic entries (`perms`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub perms: Vec<Perm>,
}

impl StoreLayer {
    /// A layer of `store_paths` and `synthetic` entries in the store `store_dir`, owned as `owner`
    /// and `perms` say.
    pub fn new(
        store_dir: &str,
        owner: &Ownership,
        perms: &[Perm],
        store_paths: Vec<String>,
        synthetic: Vec<Synthetic>,
    ) -> Self {
        StoreLayer {
            store_dir: store_dir.to_owned(),
            owner: owner.clone(),
            store_paths,
            synthetic,
            tree: None,
            perms: perms.to_vec(),
        }
    }
}

/// Writes the layer tarball of `source` to `out`; the store root's ancestors come first as
/// directories (mode 0755) when the layer holds store paths.
pub fn write_layer(source: &StoreLayer, out: &mut ChunkWriter<impl Emit>) -> Result<()> {
    let store_dir = Path::new(&source.store_dir);
    let perms = Perms::new(&source.perms)?;
    let mut tar = Tar { builder: tar::Builder::new(out), owner: &source.owner, perms: &perms };
    let mut ancestors: Vec<&Path> = Vec::new();
    if !source.store_paths.is_empty() {
        ancestors = store_dir.ancestors().filter(|a| a.parent().is_some()).map(relative).collect();
        ancestors.reverse();
        for &dir in &ancestors {
            tar.directory(dir, 0o755).map_err(|e| Error::io(Path::new("/").join(dir), e))?;
        }
        let mut paths: Vec<&String> = source.store_paths.iter().collect();
        paths.sort();
        for path in paths {
            let path = Path::new(path);
            if path.parent() != Some(store_dir) {
                return Err(Error::NotInStore { path: path.into(), store_dir: store_dir.into() });
            }
            tar.tree(path)?;
        }
    }
    let mut synthetic: Vec<&Synthetic> = source.synthetic.iter().collect();
    // by bytes (`Path`'s order is by components: `a/b` before `a-b`)
    synthetic.sort_by(|a, b| a.path().as_os_str().cmp(b.path().as_os_str()));
    for entry in synthetic {
        // (the Nix database's /nix, in buildImage's layer of a store under /nix)
        let written = matches!(entry, Synthetic::Directory { path } if ancestors.contains(&path.as_path()));
        if written {
            continue;
        }
        let result = match entry {
            Synthetic::Directory { path } => tar.directory(path, 0o755),
            Synthetic::Symlink { path, target } => tar.symlink(path, target),
            Synthetic::File { path, contents } => tar.file(path, contents),
        };
        result.map_err(|e| Error::io(entry.path(), e))?;
    }
    if let Some(tree) = &source.tree {
        splice_entries(tar.builder.get_mut(), Path::new(tree))?;
    }
    tar.builder.into_inner().map_err(|e| Error::io("(layer)", e))?;
    Ok(())
}

/// Copies the entries of the tar file at `path` — all of it but the two zero blocks that end
/// it — to `out`.
fn splice_entries(out: &mut ChunkWriter<impl Emit>, path: &Path) -> Result<()> {
    let io_err = |e| Error::io(path, e);
    let mut file = fs::File::open(path).map_err(io_err)?;
    let size = file.metadata().map_err(io_err)?.len();
    let entries = size.checked_sub(END_OF_ARCHIVE.len() as u64).filter(|n| n % BLOCK as u64 == 0);
    let entries = entries.ok_or_else(|| io_err(io::Error::other("is not a tar file of whole blocks")))?;
    let copied = out.copy_from(&mut file, entries).map_err(|e| match e {
        CopyError::Read(e) | CopyError::Write(e) => io_err(e),
    })?;
    if copied != entries {
        return Err(io_err(io::Error::other(format!("shrank from {size} bytes while it was read"))));
    }
    Ok(())
}

/// The size of the layer tarball of `source`, from its files' metadata: their contents are not
/// read (a file that has changed by the time the layer is written is found then).
pub fn layer_size(source: &StoreLayer) -> Result<u64> {
    let mut out = ChunkWriter::sizing(|chunk: Vec<u8>| Ok(chunk));
    write_layer(source, &mut out)?;
    let (_, _, size) = out.finish().map_err(|e| Error::io("(layer)", e))?;
    Ok(size)
}

/// Bumped whenever the same [`StoreLayer`] would be written as other bytes: inputs digests
/// ([`StoreLayer::inputs_digest`]) name a layer's bytes in caches that outlive a stowage version.
const LAYER_WRITER: &str = "stowage layer writer 1";

impl StoreLayer {
    /// A digest of exactly what the tarball of this layer is made of: this description, the NAR
    /// hash of every store path it reads (`nar_hash` gives them; `None` if one is unknown) and
    /// the version of the writer. Equal inputs digests mean equal tarballs, so it names a layer
    /// whose own digest is learnt only while it is written.
    pub fn inputs_digest(&self, nar_hash: impl Fn(&str) -> Option<String>) -> Option<Digest> {
        let store_dir = Path::new(&self.store_dir);
        let tree_path = self.tree.as_ref().map(|tree| {
            let inside = Path::new(tree).strip_prefix(store_dir).ok()?.components().next()?;
            Some(store_dir.join(inside).to_string_lossy().into_owned())
        });
        let mut read: Vec<String> = self.store_paths.clone();
        match tree_path {
            Some(Some(path)) => read.push(path),
            // a tree outside the store: nothing says what it holds
            Some(None) => return None,
            None => {}
        }
        read.sort();
        let mut text =
            format!("{LAYER_WRITER}\n{}\n{}\n", env!("CARGO_PKG_VERSION"), serde_json::to_string(self).ok()?);
        for path in &read {
            text.push_str(&format!("{path} {}\n", nar_hash(path)?));
        }
        Some(Digest::of(text.as_bytes()))
    }
}

/// The digest (the layer's diff_id) and size of the layer tarball of `source`.
pub fn layer_digest(source: &StoreLayer) -> Result<(Digest, u64)> {
    layer_digest_into(source, |_| Ok(()))
}

/// [`layer_digest`], each chunk of the tarball also handed to `sink` (which keeps it).
pub fn layer_digest_into(
    source: &StoreLayer,
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> Result<(Digest, u64)> {
    let mut hasher = Sha256::new();
    let mut out = ChunkWriter::new(Vec::new(), |chunk: Vec<u8>| {
        hasher.update(&chunk);
        sink(&chunk)?;
        Ok(chunk)
    });
    write_layer(source, &mut out)?;
    let (_, _, size) = out.finish().map_err(|e| Error::io("(layer)", e))?;
    Ok((Digest(hasher.finalize().into()), size))
}

/// A header for an entry of `kind` owned as `owner` says.
pub(crate) fn header(
    kind: tar::EntryType,
    mode: u32,
    size: u64,
    owner: &Ownership,
) -> io::Result<tar::Header> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(owner.uid);
    header.set_gid(owner.gid);
    header.set_mtime(owner.mtime);
    header.set_username(&owner.uname)?;
    header.set_groupname(&owner.gname)?;
    Ok(header)
}

/// Appends the regular file `file` (at `path`, for errors) as `name`, with `header` (whose size
/// is the file's).
pub(crate) fn append_file<E: Emit>(
    builder: &mut tar::Builder<&mut ChunkWriter<E>>,
    header: &mut tar::Header,
    name: &Path,
    mut file: fs::File,
    path: &Path,
) -> Result<()> {
    append_contents(builder, header, name, &mut file, path)
}

/// [`append_file`], the contents read from `file`.
fn append_contents<E: Emit>(
    builder: &mut tar::Builder<&mut ChunkWriter<E>>,
    header: &mut tar::Header,
    name: &Path,
    file: &mut impl io::Read,
    path: &Path,
) -> Result<()> {
    let io_err = |e| Error::io(path, e);
    let size = header.size().map_err(io_err)?;
    // The header (and a GNU long-name entry before it, if the name needs one) through tar, the
    // contents straight into the chunk being filled: tar's own copy goes through an 8 KiB
    // buffer, a read and a copy for every 8 KiB of the store.
    builder.append_data(header, name, io::empty()).map_err(io_err)?;
    let out = builder.get_mut();
    let copied = out.copy_from(file, size).map_err(|e| match e {
        CopyError::Read(e) | CopyError::Write(e) => io_err(e),
    })?;
    if copied != size {
        let problem = format!("shrank from {size} to {copied} bytes while it was read");
        return Err(io_err(io::Error::other(problem)));
    }
    out.write_all(padding(copied)).map_err(io_err)
}

/// `path` (absolute) without its leading `/`, as tar entries name it.
fn relative(path: &Path) -> &Path {
    path.strip_prefix("/").unwrap_or(path)
}

struct Tar<'a, 'w, E: Emit> {
    builder: tar::Builder<&'w mut ChunkWriter<E>>,
    owner: &'a Ownership,
    perms: &'a Perms,
}

impl<E: Emit> Tar<'_, '_, E> {
    /// The header of entry `name`, `perms` applied.
    fn header(&self, name: &Path, kind: tar::EntryType, mode: u32, size: u64) -> io::Result<tar::Header> {
        let mut header = header(kind, mode, size, self.owner)?;
        self.perms.apply(name.as_os_str().as_bytes(), &mut header)?;
        Ok(header)
    }

    fn directory(&mut self, path: &Path, mode: u32) -> io::Result<()> {
        let mut header = self.header(path, tar::EntryType::Directory, mode, 0)?;
        let mut name = OsString::from(path);
        name.push("/");
        self.builder.append_data(&mut header, name, io::empty())
    }

    fn symlink(&mut self, path: &Path, target: &Path) -> io::Result<()> {
        let mut header = self.header(path, tar::EntryType::Symlink, 0o777, 0)?;
        self.builder.append_link(&mut header, path, target)
    }

    fn file(&mut self, path: &Path, contents: &[u8]) -> io::Result<()> {
        let mut header = self.header(path, tar::EntryType::Regular, 0o644, contents.len() as u64)?;
        self.builder.append_data(&mut header, path, contents)
    }

    /// Writes the file tree at `path`, depth first, each directory's entries sorted by name.
    fn tree(&mut self, path: &Path) -> Result<()> {
        let io_err = |e| Error::io(path, e);
        let meta = fs::symlink_metadata(path).map_err(io_err)?;
        let name = relative(path);
        let kind = meta.file_type();
        if kind.is_symlink() {
            let target = fs::read_link(path).map_err(io_err)?;
            self.symlink(name, &target).map_err(io_err)
        } else if kind.is_dir() {
            self.directory(name, 0o555).map_err(io_err)?;
            let mut children: Vec<PathBuf> = fs::read_dir(path)
                .map_err(io_err)?
                .map(|e| e.map(|e| e.path()))
                .collect::<io::Result<_>>()
                .map_err(io_err)?;
            children.sort();
            children.iter().try_for_each(|child| self.tree(child))
        } else if kind.is_file() {
            let executable = meta.permissions().mode() & 0o100 != 0;
            let mut header = self
                .header(name, tar::EntryType::Regular, if executable { 0o555 } else { 0o444 }, meta.len())
                .map_err(io_err)?;
            if self.builder.get_ref().is_sizing() {
                // (sizing a layer opens no file: the metadata says it all)
                return append_contents(&mut self.builder, &mut header, name, &mut io::empty(), path);
            }
            let mut file = fs::File::open(path).map_err(io_err)?;
            append_contents(&mut self.builder, &mut header, name, &mut file, path)
        } else {
            Err(Error::io(path, io::Error::other("not a file, directory or symlink")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// The bytes of the layer of `source`.
    fn bytes(source: &StoreLayer) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        let mut out = crate::format::chunks::to_writer(&mut bytes);
        write_layer(source, &mut out)?;
        drop(out.finish().unwrap());
        Ok(bytes)
    }

    fn layer(store: &Path, store_paths: Vec<String>, synthetic: Vec<Synthetic>) -> StoreLayer {
        let owner = Ownership { uid: 0, gid: 0, uname: "root".into(), gname: "root".into(), mtime: 1 };
        StoreLayer {
            store_dir: store.to_string_lossy().into_owned(),
            owner,
            store_paths,
            synthetic,
            tree: None,
            perms: vec![],
        }
    }

    /// A store with one path holding a file, an executable, a link, an empty dir and a long name.
    fn store() -> (tempfile::TempDir, PathBuf, String) {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let path = store.join("abc-hello");
        fs::create_dir_all(path.join("bin")).unwrap();
        fs::create_dir_all(path.join("empty")).unwrap();
        fs::write(path.join("bin/hello"), "#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(path.join("bin/hello"), fs::Permissions::from_mode(0o755)).unwrap();
        let long = "d".repeat(120);
        fs::write(path.join(&long), "long").unwrap();
        symlink("bin/hello", path.join("link")).unwrap();
        symlink("x".repeat(150), path.join("longlink")).unwrap();
        let p = path.to_string_lossy().into_owned();
        (dir, store, p)
    }

    fn entries(bytes: &[u8]) -> Vec<(String, tar::EntryType, u32, u64, String)> {
        let mut archive = tar::Archive::new(bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                let link =
                    e.link_name().unwrap().map(|l| l.to_string_lossy().into_owned()).unwrap_or_default();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.entry_type(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    link,
                )
            })
            .collect()
    }

    #[test]
    fn store_layer_entries() {
        let (_dir, store, path) = store();
        let bytes = bytes(&layer(&store, vec![path.clone()], vec![])).unwrap();
        let got = entries(&bytes);
        let rel = relative(Path::new(&path)).display();
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        // ancestors of the store, then the path, depth first, sorted
        let store_rel = relative(&store).display();
        assert_eq!(names.last().unwrap(), &format!("{rel}/longlink"));
        assert!(names.contains(&format!("{store_rel}/").as_str()));
        assert!(names.iter().any(|n| n.ends_with(&"d".repeat(120))));
        let find = |suffix: &str| got.iter().find(|e| e.0.ends_with(suffix)).unwrap().clone();
        assert_eq!((find("bin/hello").2, find("bin/hello").1), (0o555, tar::EntryType::Regular));
        assert_eq!(find(&"d".repeat(120)).2, 0o444);
        assert_eq!(find("empty/").1, tar::EntryType::Directory);
        assert_eq!(find("/link").4, "bin/hello");
        assert_eq!(find("/longlink").4, "x".repeat(150));
        assert!(got.iter().all(|e| e.3 == 1));
    }

    #[test]
    fn same_inputs_same_bytes_regardless_of_disk_modes_and_hard_links() {
        let (_dir, store, path) = store();
        let source = layer(&store, vec![path.clone()], vec![]);
        let first = bytes(&source).unwrap();
        fs::set_permissions(Path::new(&path).join("d".repeat(120)), fs::Permissions::from_mode(0o600))
            .unwrap();
        fs::hard_link(Path::new(&path).join("bin/hello"), _dir.path().join("elsewhere")).unwrap();
        assert_eq!(bytes(&source).unwrap(), first);
    }

    #[test]
    fn synthetic_entries_sorted() {
        let source = layer(
            Path::new("/store"),
            vec![],
            vec![
                Synthetic::Symlink { path: "bin/sh".into(), target: "/store/x/bin/sh".into() },
                Synthetic::Directory { path: "bin".into() },
            ],
        );
        let bytes = bytes(&source).unwrap();
        let got = entries(&bytes);
        assert_eq!(got.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), ["bin/", "bin/sh"]);
        assert_eq!(got[0].2, 0o755);
    }

    /// A file's bytes, mode 0644; a directory the store's ancestors wrote is not written again.
    #[test]
    fn synthetic_files_and_the_store_ancestors() {
        let (_dir, store, path) = store();
        let store_rel = relative(&store).to_path_buf();
        let top = store_rel.iter().next().unwrap().to_owned();
        let source = layer(
            &store,
            vec![path],
            vec![
                Synthetic::Directory { path: top.clone().into() },
                Synthetic::Directory { path: PathBuf::from(&top).join("var") },
                Synthetic::File { path: PathBuf::from(&top).join("var/db"), contents: b"rows".to_vec() },
            ],
        );
        let bytes = bytes(&source).unwrap();
        let top = top.to_string_lossy().into_owned();
        let names: Vec<String> = entries(&bytes).into_iter().map(|e| e.0).collect();
        assert_eq!(names.iter().filter(|n| **n == format!("{top}/")).count(), 1, "{names:?}");
        assert_eq!(names[names.len() - 2..], [format!("{top}/var/"), format!("{top}/var/db")]);
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut files = archive.entries().unwrap().map(|e| e.unwrap());
        let mut db = files
            .find(|e| {
                e.header().entry_type() == tar::EntryType::Regular && e.path().unwrap().ends_with("var/db")
            })
            .unwrap();
        assert_eq!(db.header().mode().unwrap(), 0o644);
        let mut contents = String::new();
        io::Read::read_to_string(&mut db, &mut contents).unwrap();
        assert_eq!(contents, "rows");
        // in a plan, as base64
        let json = serde_json::to_string(&source.synthetic[2]).unwrap();
        assert!(json.ends_with(r#""contents":"cm93cw=="}"#), "{json}");
        assert_eq!(serde_json::from_str::<Synthetic>(&json).unwrap(), source.synthetic[2]);
    }

    #[test]
    fn a_layer_is_sized_without_reading_it_and_named_by_its_inputs() {
        let (_dir, store, path) = store();
        // long names, links, synthetic entries, a file larger than a chunk, and a tree
        fs::write(Path::new(&path).join("big"), vec![7u8; crate::format::chunks::CHUNK + 1000]).unwrap();
        let tree = store.join("xyz-custom");
        fs::create_dir_all(&tree).unwrap();
        fs::write(tree.join("layer.tar"), bytes(&layer(&store, vec![], vec![])).unwrap()).unwrap();
        let mut source = layer(
            &store,
            vec![path.clone()],
            vec![Synthetic::File { path: "etc/motd".into(), contents: b"hello".to_vec() }],
        );
        source.tree = Some(tree.join("layer.tar").to_string_lossy().into_owned());
        assert_eq!(layer_size(&source).unwrap(), layer_digest(&source).unwrap().1);

        let tree_path = tree.to_string_lossy().into_owned();
        let hashes = |changed: &str| {
            let (path, tree_path, changed) = (path.clone(), tree_path.clone(), changed.to_owned());
            move |p: &str| {
                (p == path || p == tree_path).then(|| if p == changed { "2" } else { "1" }.to_owned())
            }
        };
        let inputs = source.inputs_digest(hashes("")).unwrap();
        assert_eq!(source.inputs_digest(hashes("")), Some(inputs), "the same inputs, the same digest");
        assert_ne!(source.inputs_digest(hashes(&path)), Some(inputs), "a store path's NAR hash counts");
        assert_ne!(source.inputs_digest(hashes(&tree_path)), Some(inputs), "so does the tree's");
        let mut owned = source.clone();
        owned.owner.uid = 1;
        assert_ne!(owned.inputs_digest(hashes("")), Some(inputs), "so does the description");
        assert_eq!(source.inputs_digest(|_| None), None, "unknown NAR hashes: no inputs digest");
    }

    /// Layers of ASCII names keep the bytes they had before names were written as bytes:
    /// short and long names (GNU long-name records), directories and links.
    #[test]
    fn layers_of_ascii_names_keep_their_bytes() {
        let long = "l".repeat(150);
        let source = layer(
            Path::new("/store"),
            vec![],
            vec![
                Synthetic::Directory { path: "bin".into() },
                Synthetic::Symlink { path: "bin/sh".into(), target: "/store/x-busybox/bin/sh".into() },
                Synthetic::Directory { path: format!("bin/{long}").into() },
                Synthetic::Symlink { path: format!("bin/{long}/{long}").into(), target: long.clone().into() },
            ],
        );
        let (digest, size) = layer_digest(&source).unwrap();
        assert_eq!(
            (digest.to_string().as_str(), size),
            ("sha256:16c32e3312fd7877faae73dc49e814f32ac68dc2ec86bc3cff943162ffb9e2f3", 6144)
        );
    }

    /// In a plan's JSON, a path that is not UTF-8 is the array of its bytes; others stay strings.
    #[test]
    fn synthetic_paths_in_json() {
        use std::ffi::OsStr;
        let entries = vec![
            Synthetic::Symlink { path: "bin/sh".into(), target: "/store/x/bin/sh".into() },
            Synthetic::Directory { path: OsStr::from_bytes(b"caf\xe9").into() },
        ];
        let json = serde_json::to_string(&entries).unwrap();
        assert_eq!(
            json,
            r#"[{"type":"symlink","path":"bin/sh","target":"/store/x/bin/sh"},{"type":"directory","path":[99,97,102,233]}]"#
        );
        assert_eq!(serde_json::from_str::<Vec<Synthetic>>(&json).unwrap(), entries);
    }

    /// (name, link target) of every entry, byte for byte.
    fn raw_names(bytes: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut archive = tar::Archive::new(bytes);
        let entries = archive.entries().unwrap().map(|e| e.unwrap());
        entries
            .map(|e| (e.path_bytes().into_owned(), e.link_name_bytes().unwrap_or_default().into_owned()))
            .collect()
    }

    /// Regression: a name or link target that is not UTF-8 was written with U+FFFD in place of
    /// each bad byte, so `a\xe9` and `a\xe8` became two entries of one name.
    #[test]
    fn names_and_link_targets_that_are_not_utf8_are_written_as_they_are() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let path = store.join("abc-names");
        let name = |bytes: &[u8]| path.join(OsStr::from_bytes(bytes));
        fs::create_dir_all(&path).unwrap();
        for file in [&b"caf\xe9"[..], b"a\xe9", b"a\xe8", &[0xe9; 120]] {
            fs::write(name(file), file).unwrap();
        }
        symlink(OsStr::from_bytes(b"\xff\xfe"), name(b"link")).unwrap();
        symlink(OsStr::from_bytes(&[0xfe; 150]), name(b"longlink")).unwrap();
        let source = layer(&store, vec![path.to_string_lossy().into_owned()], vec![]);
        let got = raw_names(&bytes(&source).unwrap());
        let prefix = [&path.as_os_str().as_bytes()[1..], b"/"].concat();
        let ours: Vec<(Vec<u8>, Vec<u8>)> = got
            .into_iter()
            .filter_map(|(n, l)| n.strip_prefix(prefix.as_slice()).map(|n| (n.to_vec(), l)))
            .filter(|(n, _)| !n.is_empty())
            .collect();
        let long_name = vec![0xe9; 120];
        assert_eq!(
            ours,
            [
                (b"a\xe8".to_vec(), vec![]),
                (b"a\xe9".to_vec(), vec![]),
                (b"caf\xe9".to_vec(), vec![]),
                (b"link".to_vec(), b"\xff\xfe".to_vec()),
                (b"longlink".to_vec(), vec![0xfe; 150]),
                (long_name, vec![]),
            ]
        );
    }

    #[test]
    fn paths_outside_the_store_are_refused() {
        let source = layer(Path::new("/store"), vec!["/etc/passwd".into()], vec![]);
        let err = bytes(&source).unwrap_err();
        assert!(err.to_string().contains("/etc/passwd"), "{err}");
    }
}

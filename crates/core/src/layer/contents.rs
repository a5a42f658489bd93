//! The customisation layer's tree: the image's `contents` merged into the image root the way
//! nixpkgs' `symlinkJoin` (lndir) merges them — directories become real directories, and every
//! file or symlink becomes a symlink into the store (`/bin/sh` → `<store>/…-busybox/bin/sh`).
//!
//! When two contents provide the same path, the first in the list wins (lndir never replaces
//! what is there); each clash is reported so it is not silent. Names are bytes: one that is not
//! UTF-8 is merged as it is.

use crate::layer::tarball::Synthetic;
use crate::layer::tree::sorted_names;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, PartialEq, Eq)]
enum Node {
    Directory,
    Link(PathBuf),
}

/// The merged tree of `contents` (store paths, in order) and one message per clash.
pub fn merge_contents(contents: &[String]) -> Result<(Vec<Synthetic>, Vec<String>)> {
    // keyed by path relative to the image root; `OsString`s sort by bytes, as tar lists them
    let mut tree: BTreeMap<OsString, Node> = BTreeMap::new();
    let mut clashes = Vec::new();
    for root in contents {
        let root = Path::new(root);
        let meta = fs::metadata(root).map_err(|e| Error::io(root, e))?;
        // A content that is a single file has nothing to merge at the root, as with symlinkJoin.
        if meta.is_dir() {
            merge_dir(root, OsStr::new(""), &mut tree, &mut clashes)?;
        }
    }
    let entries = tree
        .into_iter()
        .map(|(path, node)| match node {
            Node::Directory => Synthetic::Directory { path: path.into() },
            Node::Link(target) => Synthetic::Symlink { path: path.into(), target },
        })
        .collect();
    Ok((entries, clashes))
}

fn merge_dir(
    dir: &Path,
    prefix: &OsStr,
    tree: &mut BTreeMap<OsString, Node>,
    clashes: &mut Vec<String>,
) -> Result<()> {
    for name in sorted_names(dir)? {
        let source = dir.join(&name);
        let mut path = prefix.to_owned();
        path.push(&name);
        // lndir follows symlinks to directories only at the top; below, a symlink is a file.
        let is_dir = fs::symlink_metadata(&source).map_err(|e| Error::io(&source, e))?.is_dir();
        let node = if is_dir { Node::Directory } else { Node::Link(source.clone()) };
        match tree.get(&path) {
            None => {
                tree.insert(path.clone(), node);
            }
            Some(Node::Directory) if is_dir => {}
            Some(existing) => {
                let kept = match existing {
                    Node::Directory => "a directory".to_string(),
                    Node::Link(target) => target.display().to_string(),
                };
                let path = Path::new(&path).display();
                clashes.push(format!("/{path}: keeping {kept}, ignoring {}", source.display()));
                continue;
            }
        }
        if is_dir {
            path.push("/");
            merge_dir(&source, &path, tree, clashes)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn merges_like_symlink_join() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs::create_dir_all(a.join("bin")).unwrap();
        fs::create_dir_all(b.join("bin")).unwrap();
        fs::create_dir_all(b.join("etc/ssl")).unwrap();
        fs::write(a.join("bin/sh"), "").unwrap();
        fs::write(b.join("bin/sh"), "").unwrap();
        fs::write(b.join("bin/ls"), "").unwrap();
        symlink("ls", b.join("bin/dir")).unwrap();
        fs::write(b.join("etc/ssl/cert.pem"), "").unwrap();
        let a_s = a.to_string_lossy().into_owned();
        let b_s = b.to_string_lossy().into_owned();
        let (entries, clashes) = merge_contents(&[a_s.clone(), b_s.clone()]).unwrap();
        let link = |p: &str, t: String| Synthetic::Symlink { path: p.into(), target: t.into() };
        let dir_ = |p: &str| Synthetic::Directory { path: p.into() };
        assert_eq!(
            entries,
            vec![
                dir_("bin"),
                link("bin/dir", format!("{b_s}/bin/dir")),
                link("bin/ls", format!("{b_s}/bin/ls")),
                link("bin/sh", format!("{a_s}/bin/sh")),
                dir_("etc"),
                dir_("etc/ssl"),
                link("etc/ssl/cert.pem", format!("{b_s}/etc/ssl/cert.pem")),
            ]
        );
        assert_eq!(clashes, vec![format!("/bin/sh: keeping {a_s}/bin/sh, ignoring {b_s}/bin/sh")]);
    }

    /// Regression: names that are not UTF-8 were merged with U+FFFD in place of each bad byte:
    /// `a\xe9` and `a\xe8` clashed and one was lost.
    #[test]
    fn names_that_are_not_utf8_are_merged_as_they_are() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let d = a.join(OsStr::from_bytes(b"d\xff"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(OsStr::from_bytes(b"a\xe9")), "").unwrap();
        fs::write(d.join(OsStr::from_bytes(b"a\xe8")), "").unwrap();
        let (entries, clashes) = merge_contents(&[a.to_string_lossy().into_owned()]).unwrap();
        assert_eq!(clashes, Vec::<String>::new());
        let got: Vec<(&[u8], &[u8])> = entries
            .iter()
            .map(|e| match e {
                Synthetic::Directory { path } => (path.as_os_str().as_bytes(), &b""[..]),
                Synthetic::Symlink { path, target } => {
                    (path.as_os_str().as_bytes(), target.as_os_str().as_bytes())
                }
                Synthetic::File { .. } => panic!("merged contents hold no files"),
            })
            .collect();
        let target = |name: &[u8]| [d.as_os_str().as_bytes(), b"/", name].concat();
        assert_eq!(
            got,
            [
                (&b"d\xff"[..], &b""[..]),
                (b"d\xff/a\xe8", &target(b"a\xe8")[..]),
                (b"d\xff/a\xe9", &target(b"a\xe9")[..]),
            ]
        );
    }
}

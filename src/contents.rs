//! The customisation layer's tree: the image's `contents` merged into the image root the way
//! nixpkgs' `symlinkJoin` (lndir) merges them — directories become real directories, and every
//! file or symlink becomes a symlink into the store (`/bin/sh` → `<store>/…-busybox/bin/sh`).
//!
//! When two contents provide the same path, the first in the list wins (lndir never replaces
//! what is there); each clash is reported so it is not silent.

use crate::layer::Synthetic;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

#[derive(Debug, PartialEq, Eq)]
enum Node {
    Directory,
    Link(String),
}

/// The merged tree of `contents` (store paths, in order) and one message per clash.
pub fn merge_contents(contents: &[String]) -> Result<(Vec<Synthetic>, Vec<String>)> {
    let mut tree: BTreeMap<String, Node> = BTreeMap::new();
    let mut clashes = Vec::new();
    for root in contents {
        let root = Path::new(root);
        let meta = fs::metadata(root).map_err(|e| Error::io(root, e))?;
        // A content that is a single file has nothing to merge at the root, as with symlinkJoin.
        if meta.is_dir() {
            merge_dir(root, "", &mut tree, &mut clashes)?;
        }
    }
    let entries = tree
        .into_iter()
        .map(|(path, node)| match node {
            Node::Directory => Synthetic::Directory { path },
            Node::Link(target) => Synthetic::Symlink { path, target },
        })
        .collect();
    Ok((entries, clashes))
}

fn merge_dir(
    dir: &Path,
    prefix: &str,
    tree: &mut BTreeMap<String, Node>,
    clashes: &mut Vec<String>,
) -> Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io(dir, e))?;
    names.sort();
    for name in names {
        let source = dir.join(&name);
        let path = format!("{prefix}{}", name.to_string_lossy());
        // lndir follows symlinks to directories only at the top; below, a symlink is a file.
        let is_dir = fs::symlink_metadata(&source).map_err(|e| Error::io(&source, e))?.is_dir();
        let node = if is_dir { Node::Directory } else { Node::Link(source.to_string_lossy().into_owned()) };
        match tree.get(&path) {
            None => {
                tree.insert(path.clone(), node);
            }
            Some(Node::Directory) if is_dir => {}
            Some(existing) => {
                let kept = match existing {
                    Node::Directory => "a directory".to_string(),
                    Node::Link(target) => target.clone(),
                };
                clashes.push(format!("/{path}: keeping {kept}, ignoring {}", source.display()));
                continue;
            }
        }
        if is_dir {
            merge_dir(&source, &format!("{path}/"), tree, clashes)?;
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
        let link = |p: &str, t: String| Synthetic::Symlink { path: p.into(), target: t };
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
}

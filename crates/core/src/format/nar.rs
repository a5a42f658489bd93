//! Nix archives (NAR): the serialisation of a file tree that Nix hashes and restores.
//!
//! The plugin writes small trees (fakeNss) straight into the store from the evaluator by handing
//! Nix a NAR; no derivation and no build are involved. The format, from Eelco Dolstra's thesis
//! (§5.2.1) and Nix's `archive.cc`: every token is a string written as a little-endian `u64`
//! length, the bytes, and zero padding to a multiple of 8; directory entries are sorted by name,
//! byte-wise; only the executable bit of a file's mode is kept.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The first token of every NAR.
pub const MAGIC: &str = "nix-archive-1";

/// Tokens are padded with zeros to a multiple of this many bytes.
const ALIGNMENT: usize = 8;

/// A file-system object, as a NAR can hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A regular file.
    File {
        /// The file's bytes.
        contents: Vec<u8>,
        /// Whether the file is executable (the only permission a NAR records).
        executable: bool,
    },
    /// A symbolic link.
    Symlink {
        /// Where the link points, as written.
        target: String,
    },
    /// A directory; a `BTreeMap` of `String` keys iterates in the byte order NAR requires.
    Directory(BTreeMap<String, Node>),
}

impl Node {
    /// A non-executable regular file.
    pub fn file(contents: impl Into<Vec<u8>>) -> Node {
        Node::File { contents: contents.into(), executable: false }
    }

    /// A directory holding `entries`.
    pub fn directory<'a>(entries: impl IntoIterator<Item = (&'a str, Node)>) -> Node {
        Node::Directory(entries.into_iter().map(|(name, node)| (name.to_owned(), node)).collect())
    }

    /// Writes this tree at `path` (which must not exist): what Nix restores from its NAR, for
    /// a builder that makes the tree as a derivation's output.
    pub fn write_to(&self, path: &Path) -> crate::Result<()> {
        let io = |e| crate::Error::io(path, e);
        match self {
            Node::File { contents, executable } => {
                fs::write(path, contents).map_err(io)?;
                let mode = if *executable { 0o555 } else { 0o444 };
                fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io)
            }
            Node::Symlink { target } => std::os::unix::fs::symlink(target, path).map_err(io),
            Node::Directory(entries) => {
                fs::create_dir(path).map_err(io)?;
                entries.iter().try_for_each(|(name, node)| node.write_to(&path.join(name)))
            }
        }
    }

    /// This tree as a NAR.
    pub fn to_nar(&self) -> Vec<u8> {
        let mut out = Vec::new();
        write_str(&mut out, MAGIC.as_bytes());
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut Vec<u8>) {
        write_str(out, b"(");
        write_str(out, b"type");
        match self {
            Node::File { contents, executable } => {
                write_str(out, b"regular");
                if *executable {
                    // The marker is followed by an empty string, as Nix writes it.
                    write_str(out, b"executable");
                    write_str(out, b"");
                }
                write_str(out, b"contents");
                write_str(out, contents);
            }
            Node::Symlink { target } => {
                write_str(out, b"symlink");
                write_str(out, b"target");
                write_str(out, target.as_bytes());
            }
            Node::Directory(entries) => {
                write_str(out, b"directory");
                for (name, node) in entries {
                    debug_assert!(valid_name(name), "invalid NAR entry name {name:?}");
                    write_str(out, b"entry");
                    write_str(out, b"(");
                    write_str(out, b"name");
                    write_str(out, name.as_bytes());
                    write_str(out, b"node");
                    node.write(out);
                    write_str(out, b")");
                }
            }
        }
        write_str(out, b")");
    }
}

/// Nix refuses entries named `""`, `.`, `..`, or containing `/` or NUL when it restores a NAR.
fn valid_name(name: &str) -> bool {
    !matches!(name, "" | "." | "..") && !name.contains(['/', '\0'])
}

fn write_str(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
    let padding = (ALIGNMENT - bytes.len() % ALIGNMENT) % ALIGNMENT;
    out.extend_from_slice(&[0; ALIGNMENT][..padding]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::path::Path;
    use std::process::Command;

    /// Writes `node` to `path` on disk, the way Nix would restore it.
    fn materialise(node: &Node, path: &Path) {
        match node {
            Node::File { contents, executable } => {
                std::fs::write(path, contents).unwrap();
                let mode = if *executable { 0o755 } else { 0o644 };
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
            }
            Node::Symlink { target } => symlink(target, path).unwrap(),
            Node::Directory(entries) => {
                std::fs::create_dir(path).unwrap();
                for (name, child) in entries {
                    materialise(child, &path.join(name));
                }
            }
        }
    }

    /// The NAR that the real `nix-store --dump` writes for `node`.
    fn nix_store_dump(node: &Node) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        materialise(node, &root);
        let out = Command::new("nix-store")
            .arg("--dump")
            .arg(&root)
            .output()
            .expect("nix-store must be installed (make setup)");
        assert!(out.status.success(), "nix-store --dump: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    #[test]
    fn matches_nix_store_dump() {
        let tree = Node::directory([
            ("a-file", Node::file("hello\n")),
            ("eight-bytes", Node::file("12345678")),
            ("empty-file", Node::file("")),
            ("Upper", Node::file("sorted before lower case")),
            ("run", Node::File { contents: b"#!/bin/sh\n".to_vec(), executable: true }),
            ("link", Node::Symlink { target: "../somewhere/else".into() }),
            (
                "etc",
                Node::directory([
                    ("passwd", Node::file("root:x:0:0::/:/bin/sh\n")),
                    ("deeper", Node::directory([("empty", Node::directory([]))])),
                ]),
            ),
            ("empty-dir", Node::directory([])),
        ]);
        assert_eq!(tree.to_nar(), nix_store_dump(&tree));
    }

    #[test]
    fn single_file_and_symlink_roots() {
        for root in [
            Node::file(vec![0u8; 1000]),
            Node::File { contents: b"x".to_vec(), executable: true },
            Node::Symlink { target: "target".into() },
        ] {
            assert_eq!(root.to_nar(), nix_store_dump(&root));
        }
    }

    #[test]
    fn padding_and_layout() {
        let nar = Node::file("abc").to_nar();
        // magic, then "(" "type" "regular" "contents" "abc" ")": every token a length and a
        // zero-padded body.
        assert_eq!(&nar[..8], &13u64.to_le_bytes());
        assert_eq!(&nar[8..21], MAGIC.as_bytes());
        assert_eq!(&nar[21..24], &[0, 0, 0]);
        assert_eq!(nar.len() % 8, 0);
        assert!(nar.windows(8).any(|w| w == b"abc\0\0\0\0\0"));
    }
}

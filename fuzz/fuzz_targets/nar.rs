//! Feeds arbitrary file trees to the NAR writer (`format::nar::Node::to_nar`), as the plugin
//! hands Nix its fakeNss tree: the NAR must be the same each time, and read back (by the reader
//! below, after Nix's `archive.cc`) as the same tree. That it is the NAR `nix-store --dump`
//! writes is the core's unit test.
#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use stowage_core::format::nar::{Node, MAGIC};

/// Directories nest at most this deep: a tree is data, not a test of the stack.
const MAX_DEPTH: u32 = 16;

fn node(u: &mut Unstructured, depth: u32) -> Result<Node> {
    Ok(match u.int_in_range(0..=if depth < MAX_DEPTH { 2 } else { 1 })? {
        0 => Node::File { contents: Vec::arbitrary(u)?, executable: bool::arbitrary(u)? },
        1 => Node::Symlink { target: String::arbitrary(u)? },
        _ => {
            let mut entries = BTreeMap::new();
            for _ in 0..u.int_in_range(0..=8)? {
                let name = String::arbitrary(u)?;
                // the names a NAR can hold (those Nix restores)
                if !matches!(name.as_str(), "" | "." | "..") && !name.contains(['/', '\0']) {
                    entries.insert(name, node(u, depth + 1)?);
                }
            }
            Node::Directory(entries)
        }
    })
}

/// Reads NAR tokens: each a little-endian `u64` length, the bytes, zeros to a multiple of 8.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn token(&mut self) -> &'a [u8] {
        let data: &'a [u8] = self.0;
        let (length, rest) = data.split_first_chunk::<8>().expect("a token's length");
        let length = usize::try_from(u64::from_le_bytes(*length)).unwrap();
        let padded = length.next_multiple_of(8);
        assert!(rest.len() >= padded, "a token runs past the end");
        let (token, rest) = rest.split_at(padded);
        assert!(token[length..].iter().all(|&b| b == 0), "padding that is not zeros");
        self.0 = rest;
        &token[..length]
    }

    fn expect(&mut self, token: &[u8]) {
        let found = self.token().to_vec();
        assert_eq!(found, token, "expected {:?}", String::from_utf8_lossy(token));
    }

    fn node(&mut self) -> Node {
        self.expect(b"(");
        self.expect(b"type");
        let node = match self.token() {
            b"regular" => {
                let executable = match self.token() {
                    b"executable" => {
                        self.expect(b"");
                        self.expect(b"contents");
                        true
                    }
                    b"contents" => false,
                    other => panic!("unexpected {other:?} in a file"),
                };
                Node::File { contents: self.token().to_vec(), executable }
            }
            b"symlink" => {
                self.expect(b"target");
                Node::Symlink { target: String::from_utf8(self.token().to_vec()).unwrap() }
            }
            b"directory" => {
                let mut entries = BTreeMap::<String, Node>::new();
                loop {
                    match self.token() {
                        b")" => return Node::Directory(entries),
                        b"entry" => {}
                        other => panic!("unexpected {other:?} in a directory"),
                    }
                    self.expect(b"(");
                    self.expect(b"name");
                    let name = String::from_utf8(self.token().to_vec()).unwrap();
                    // Nix refuses entries out of order or twice
                    assert!(
                        entries.last_key_value().is_none_or(|(last, _)| *last < name),
                        "{name:?} out of order"
                    );
                    self.expect(b"node");
                    entries.insert(name, self.node());
                    self.expect(b")");
                }
            }
            other => panic!("unknown type {other:?}"),
        };
        self.expect(b")");
        node
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(tree) = node(&mut Unstructured::new(data), 0) else { return };
    let nar = tree.to_nar();
    assert_eq!(nar, tree.to_nar(), "not deterministic");
    let mut reader = Reader(&nar);
    reader.expect(MAGIC.as_bytes());
    assert_eq!(reader.node(), tree);
    assert!(reader.0.is_empty(), "bytes after the root's closing token");
});

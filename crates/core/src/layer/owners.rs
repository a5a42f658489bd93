//! Owners set on files by a customisation script, by inode — what the fake root recorded
//! instead of applying ([`crate::script::seccomp`]), and what the layer's entries then carry.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;

/// A file, as the kernel tells files apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Inode {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

impl Inode {
    /// The inode of what `meta` describes.
    pub fn of(meta: &fs::Metadata) -> Inode {
        Inode { dev: meta.dev(), ino: meta.ino() }
    }
}

/// The owners set on files, by inode; `None` where only the other id was set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owners {
    set: HashMap<Inode, (Option<u32>, Option<u32>)>,
}

impl Owners {
    /// Notes that `inode` now belongs to `uid` and `gid` (`None`: unchanged, as chown's -1).
    pub fn set(&mut self, inode: Inode, uid: Option<u32>, gid: Option<u32>) {
        let entry = self.set.entry(inode).or_default();
        entry.0 = uid.or(entry.0);
        entry.1 = gid.or(entry.1);
    }

    /// The uid and gid set on `inode`, if any.
    pub fn get(&self, inode: Inode) -> (Option<u32>, Option<u32>) {
        self.set.get(&inode).copied().unwrap_or_default()
    }

    /// Whether `inode` had an owner set.
    pub fn contains(&self, inode: Inode) -> bool {
        self.set.contains_key(&inode)
    }

    /// Takes the owners `later` set, over these.
    pub fn extend(&mut self, later: Owners) {
        for (inode, (uid, gid)) in later.set {
            self.set(inode, uid, gid);
        }
    }

    /// How many files had an owner set.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether no owner was set.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

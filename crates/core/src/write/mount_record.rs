//! Where `stowage push` put blobs, so that a blob a repository lacks can be mounted from
//! another repository of the same registry (`POST …/blobs/uploads/?mount=DIGEST&from=REPO`)
//! rather than sent again. Beside the compressed-digest cache
//! ([`crate::write::blob_cache`]): one small file per registry and blob,
//! `$XDG_CACHE_HOME/stowage/mounts/<hex of a digest of both>`, holding a line naming both and
//! then the repositories, the latest first, [`KEPT`] at most.
//!
//! It is only a hint: the registry says whether the mount happened, and a record that cannot be
//! read, is damaged or names another blob is taken for none.

use crate::format::digest::Digest;
use crate::write::blob_cache::{user_cache_home, write_whole};
use std::path::{Path, PathBuf};

/// Where the record is, in the user's cache folder.
const FOLDER: &str = "stowage/mounts";

/// How many repositories are remembered for a blob.
pub const KEPT: usize = 4;

/// The record, in its folder (none: nothing is remembered).
pub struct MountRecord {
    dir: Option<PathBuf>,
}

impl MountRecord {
    /// The user's record: under `$XDG_CACHE_HOME`, else `~/.cache`.
    pub fn of_user() -> MountRecord {
        MountRecord { dir: user_cache_home().map(|b| b.join(FOLDER)) }
    }

    /// The record of a cache folder (`$XDG_CACHE_HOME`).
    pub fn under(cache_home: &Path) -> MountRecord {
        MountRecord { dir: Some(cache_home.join(FOLDER)) }
    }

    /// The repositories of the registry `host` the blob `digest` was put in, the latest first.
    pub fn repositories(&self, host: &str, digest: &Digest) -> Vec<String> {
        let text = self.file(host, digest).and_then(|file| std::fs::read_to_string(file).ok());
        let Some(text) = text else { return Vec::new() };
        let mut lines = text.lines();
        let intact = lines.next() == Some(&header(host, digest));
        let names: Vec<String> = lines.map(str::to_owned).collect();
        if intact && names.len() <= KEPT && names.iter().all(|name| is_repository(name)) {
            names
        } else {
            Vec::new()
        }
    }

    /// Notes that the registry `host` has the blob `digest` in `repository`.
    pub fn note(&self, host: &str, digest: &Digest, repository: &str) {
        let Some(file) = self.file(host, digest) else { return };
        let mut names = self.repositories(host, digest);
        if names.first().map(String::as_str) == Some(repository) {
            return;
        }
        names.retain(|name| name != repository);
        names.insert(0, repository.to_owned());
        names.truncate(KEPT);
        let text: String = std::iter::once(header(host, digest)).chain(names).map(|l| l + "\n").collect();
        // A record that cannot be written only costs sending a blob again.
        drop(write_whole(&file, &text));
    }

    fn file(&self, host: &str, digest: &Digest) -> Option<PathBuf> {
        Some(self.dir.as_ref()?.join(Digest::of(header(host, digest).as_bytes()).hex()))
    }
}

/// The first line of the record of the blob `digest` in the registry `host`.
fn header(host: &str, digest: &Digest) -> String {
    format!("stowage mounts 1 {host} {digest}")
}

/// Whether `name` may be a repository's (`team/app`): what goes into a mount's query unescaped.
fn is_repository(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_are_remembered_latest_first_and_bounded() {
        let home = tempfile::tempdir().unwrap();
        let record = MountRecord::under(home.path());
        let (blob, other) = (Digest::of(b"blob"), Digest::of(b"other"));
        assert!(record.repositories("r:5000", &blob).is_empty());
        record.note("r:5000", &blob, "team/a");
        record.note("r:5000", &blob, "team/b");
        record.note("r:5000", &blob, "team/a");
        assert_eq!(record.repositories("r:5000", &blob), ["team/a", "team/b"]);
        assert!(record.repositories("q:5000", &blob).is_empty(), "another registry's");
        assert!(record.repositories("r:5000", &other).is_empty(), "another blob's");
        for n in 0..10 {
            record.note("r:5000", &blob, &format!("many/{n}"));
        }
        assert_eq!(record.repositories("r:5000", &blob), ["many/9", "many/8", "many/7", "many/6"]);
        // A record copied under another blob's name, or damaged, is none; a new note mends it.
        let file = |d: &Digest| record.file("r:5000", d).unwrap();
        std::fs::copy(file(&blob), file(&other)).unwrap();
        assert!(record.repositories("r:5000", &other).is_empty());
        std::fs::write(file(&blob), format!("{}\nTeam/A?x=1\n", header("r:5000", &blob))).unwrap();
        assert!(record.repositories("r:5000", &blob).is_empty());
        record.note("r:5000", &blob, "team/c");
        assert_eq!(record.repositories("r:5000", &blob), ["team/c"]);
        assert_eq!(std::fs::read_dir(home.path().join(FOLDER)).unwrap().count(), 2, "no temporary file left");
    }
}

//! The Nix database of an image (`includeNixDB`, as in dockerTools): every store path in the
//! image registered as valid — NAR hash, NAR size, references — so that a Nix inside the
//! container knows what its store holds (`nix-store --verify --check-contents`, `nix-store -q
//! --references`), and garbage-collector roots that keep the image's paths alive.
//!
//! The files go where a Nix finds them by default, whatever the store's root: in its state
//! directory `/nix/var/nix` (the same under `local?root=…`), `db/db.sqlite` with `db/schema`
//! beside it, and one root per top-level path in `gcroots/docker/` (dockerTools' folder).
//!
//! The database has the schema of Nix's local store, version 10, which every Nix since 2.0
//! opens as it is (2.8 and 2.26 included): `ValidPaths`, `Refs`, `DerivationOutputs`. The
//! tables of content-addressed derivations (`Realisations`, with `db/ca-schema`) are left to a
//! Nix that has that experimental feature enabled: it adds them when it first opens the store.
//!
//! Same inputs, same bytes: the database is built in memory (no journal, no temporary file) with
//! its page size, encoding and vacuum mode set rather than taken from SQLite's compile-time
//! defaults, rows go in sorted by path (ids follow that order, references by id), every
//! registration time is the image's mtime, and nothing is ever deleted (no free pages). What is
//! left is SQLite's own version in the file header: the bundled SQLite of Cargo.lock.

use crate::format::closure::ClosureEntry;
use crate::format::closure::PathInfo;
use crate::layer::tarball::Synthetic;
use crate::{Error, Result};
use base64::Engine as _;
use rusqlite::Connection;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Nix's state directory (its default, `NIX_STATE_DIR`), relative to the image root.
pub const STATE_DIR: &str = "nix/var/nix";

/// The schema version Nix's local store writes to `db/schema` (`nixSchemaVersion`; no newline).
pub const SCHEMA_VERSION: &str = "10";

/// Where the garbage-collector roots go, under the state directory: the folder dockerTools
/// uses, so scripts written for its images find them.
const GC_ROOTS: &str = "gcroots/docker";

/// SQLite's page size in Nix's databases: set, so that another default compiled into SQLite
/// cannot change the file.
const PAGE_SIZE: u32 = 4096;

/// The tables, indexes and trigger of Nix's local store at schema version 10. Nix never reads
/// this text back: the names, columns and constraints are what it relies on.
const SCHEMA: &str = "
create table ValidPaths (
    id               integer primary key autoincrement not null,
    path             text unique not null,
    hash             text not null, -- sha256:<base16> of the NAR
    registrationTime integer not null,
    deriver          text,
    narSize          integer,
    ultimate         integer, -- null: false
    sigs             text, -- space-separated
    ca               text -- the content address, for content-addressed paths
);
create table Refs (
    referrer  integer not null,
    reference integer not null,
    primary key (referrer, reference),
    foreign key (referrer) references ValidPaths(id) on delete cascade,
    foreign key (reference) references ValidPaths(id) on delete restrict
);
create index IndexReferrer on Refs(referrer);
create index IndexReference on Refs(reference);
-- Nix deletes a path that refers to itself: its own reference must not block it.
create trigger DeleteSelfRefs before delete on ValidPaths
  begin
    delete from Refs where referrer = old.id and reference = old.id;
  end;
create table DerivationOutputs (
    drv  integer not null,
    id   text not null, -- output name
    path text not null,
    primary key (drv, id),
    foreign key (drv) references ValidPaths(id) on delete cascade
);
create index IndexDerivationOutputs on DerivationOutputs(path);
";

/// One store path as the database registers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The store path.
    pub path: String,
    /// The sha256 of its NAR.
    pub nar_hash: [u8; 32],
    /// The size of its NAR.
    pub nar_size: u64,
    /// The store paths it refers to (possibly itself); all of them registered too.
    pub references: Vec<String>,
    /// Its content address (`fixed:r:sha256:…`), if it is content-addressed.
    pub ca: Option<String>,
}

/// The entries that put the database of `closure` (the image's store paths, as the planner
/// keeps them) into an image, registered at `registration_time` (seconds since the epoch: the
/// image's mtime, the time its files say they were written). NAR hashes and content addresses
/// come from `exported`, the closure Nix exported to the build.
pub fn entries(
    closure: &[PathInfo],
    exported: &[ClosureEntry],
    registration_time: u64,
) -> Result<Vec<Synthetic>> {
    let exported: HashMap<&str, &ClosureEntry> = exported.iter().map(|e| (e.path.as_str(), e)).collect();
    let registrations = closure
        .iter()
        .map(|info| {
            let entry = exported.get(info.path.as_str()).copied();
            let nar_hash = entry.and_then(|e| e.nar_hash.as_deref()).ok_or_else(|| {
                Error::NixDatabase(format!("Nix exported no narHash for {} to the build", info.path))
            })?;
            Ok(Registration {
                path: info.path.clone(),
                nar_hash: sha256_of(nar_hash).map_err(|why| {
                    Error::NixDatabase(format!("{}: narHash {nar_hash:?} {why}", info.path))
                })?,
                nar_size: info.nar_size,
                references: info.references.clone(),
                // Only a string is a content address Nix wrote; anything else is left out, as
                // for a path that is not content-addressed (the address is an assertion Nix
                // does not need to verify a path).
                ca: entry.and_then(|e| e.ca.as_ref()).and_then(|ca| ca.as_str()).map(Into::into),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let database = database(&registrations, registration_time)?;

    let state = Path::new(STATE_DIR);
    let (db, roots) = (state.join("db"), state.join(GC_ROOTS));
    let mut entries = directories(&db);
    entries.push(Synthetic::File { path: db.join("db.sqlite"), contents: database });
    entries.push(Synthetic::File { path: db.join("schema"), contents: SCHEMA_VERSION.into() });
    entries.extend(directories(&roots).into_iter().filter(|d| !state.starts_with(d.path())));
    for root in roots_of(closure) {
        let name = Path::new(root).file_name().expect("a store path has a name");
        entries.push(Synthetic::Symlink { path: roots.join(name), target: root.into() });
    }
    Ok(entries)
}

/// Directory entries for `path` (relative) and each of its ancestors, outermost first.
fn directories(path: &Path) -> Vec<Synthetic> {
    let mut dirs: Vec<Synthetic> = path
        .ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .map(|a| Synthetic::Directory { path: a.into() })
        .collect();
    dirs.reverse();
    dirs
}

/// The paths of `closure` that no other path of it refers to, sorted: rooting them keeps the
/// whole closure alive.
fn roots_of(closure: &[PathInfo]) -> Vec<&str> {
    let referred: BTreeSet<&str> = closure
        .iter()
        .flat_map(|info| info.references.iter().filter(move |r| **r != info.path).map(String::as_str))
        .collect();
    let mut roots: Vec<&str> =
        closure.iter().map(|info| info.path.as_str()).filter(|p| !referred.contains(p)).collect();
    roots.sort_unstable();
    roots
}

/// Adds `more` (the database's entries) to `entries` (the merged contents): a directory both
/// have is written once; any other entry both have is an error, which names it.
pub fn add_entries(entries: &mut Vec<Synthetic>, more: Vec<Synthetic>) -> Result<()> {
    let mut existing: HashMap<PathBuf, bool> =
        entries.iter().map(|e| (e.path().to_owned(), matches!(e, Synthetic::Directory { .. }))).collect();
    for entry in more {
        let is_dir = matches!(entry, Synthetic::Directory { .. });
        match existing.get(entry.path()) {
            None => {
                existing.insert(entry.path().to_owned(), is_dir);
                entries.push(entry);
            }
            Some(true) if is_dir => {}
            Some(_) => {
                return Err(Error::NixDatabase(format!(
                    "the contents put an entry at /{}, where the database needs its own",
                    entry.path().display()
                )))
            }
        }
    }
    Ok(())
}

/// The bytes of the database registering `paths` at `registration_time`.
pub fn database(paths: &[Registration], registration_time: u64) -> Result<Vec<u8>> {
    let sql = |e: rusqlite::Error| Error::NixDatabase(format!("SQLite: {e}"));
    let mut sorted: Vec<&Registration> = paths.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    sorted.dedup_by(|a, b| a.path == b.path);
    let ids: BTreeMap<&str, i64> = sorted.iter().zip(1..).map(|(r, id)| (r.path.as_str(), id)).collect();
    let time = i64::try_from(registration_time)
        .map_err(|_| Error::NixDatabase(format!("registration time {registration_time} is too late")))?;

    let mut db = Connection::open_in_memory().map_err(sql)?;
    db.execute_batch(&format!(
        "pragma page_size = {PAGE_SIZE}; pragma encoding = 'UTF-8'; pragma auto_vacuum = none; \
         pragma foreign_keys = on;"
    ))
    .map_err(sql)?;
    let tx = db.transaction().map_err(sql)?;
    tx.execute_batch(SCHEMA).map_err(sql)?;
    {
        let mut add_path = tx
            .prepare(
                "insert into ValidPaths (id, path, hash, registrationTime, narSize, ca) \
                 values (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(sql)?;
        for (r, id) in sorted.iter().zip(1i64..) {
            let hash = format!("sha256:{}", hex(&r.nar_hash));
            let size = i64::try_from(r.nar_size).map_err(|_| {
                Error::NixDatabase(format!("{}: NAR size {} is too large", r.path, r.nar_size))
            })?;
            add_path.execute(rusqlite::params![id, r.path, hash, time, size, r.ca]).map_err(sql)?;
        }
        let mut add_ref =
            tx.prepare("insert into Refs (referrer, reference) values (?1, ?2)").map_err(sql)?;
        for r in &sorted {
            let mut references = BTreeSet::new();
            for reference in &r.references {
                let id = ids.get(reference.as_str()).ok_or_else(|| {
                    Error::NixDatabase(format!("{} refers to {reference}, which is not in the image", r.path))
                })?;
                references.insert(*id);
            }
            for reference in references {
                add_ref.execute([ids[r.path.as_str()], reference]).map_err(sql)?;
            }
        }
    }
    tx.commit().map_err(sql)?;
    let bytes = db.serialize("main").map_err(sql)?.to_vec();
    Ok(bytes)
}

/// The sha256 digest in `nar_hash` as Nix writes NAR hashes: `sha256:` then base16, Nix's
/// base32 (Nix 2.8's `exportReferencesGraph`) or base64, or SRI's `sha256-` then base64.
pub fn sha256_of(nar_hash: &str) -> std::result::Result<[u8; 32], String> {
    let (digits, sri) = match (nar_hash.strip_prefix("sha256:"), nar_hash.strip_prefix("sha256-")) {
        (Some(digits), _) => (digits, false),
        (_, Some(digits)) => (digits, true),
        _ => return Err("is not a sha256 hash".into()),
    };
    let bytes = match digits.len() {
        // Checked before the digits are cut into pairs: a character of several bytes would be cut
        // in two (a panic), and from_str_radix takes a sign ("+a").
        64 if !sri && !digits.bytes().all(|b| b.is_ascii_hexdigit()) => {
            return Err("has a digit that is not base16".into())
        }
        64 if !sri => {
            (0..32).map(|i| u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).expect("hex")).collect()
        }
        52 if !sri => nix_base32(digits)?,
        44 => base64::engine::general_purpose::STANDARD
            .decode(digits)
            .map_err(|e| format!("is not base64: {e}"))?,
        n => return Err(format!("has {n} digits, which is no encoding of 32 bytes")),
    };
    bytes.try_into().map_err(|_| "is not 32 bytes".into())
}

/// Nix's base32 alphabet (no e, o, u, t).
const NIX_BASE32: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Decodes Nix's base32 (`52` digits for 32 bytes), whose last digit holds the first five bits.
fn nix_base32(digits: &str) -> std::result::Result<Vec<u8>, String> {
    let len = digits.len() * 5 / 8;
    let mut bytes = vec![0u8; len];
    for (n, c) in digits.bytes().rev().enumerate() {
        let digit =
            NIX_BASE32.iter().position(|&d| d == c).ok_or("has a digit that is not Nix's base32")? as u16;
        let (i, j) = (n * 5 / 8, n * 5 % 8);
        let shifted = digit << j;
        bytes[i] |= shifted as u8;
        let carry = (shifted >> 8) as u8;
        match bytes.get_mut(i + 1) {
            Some(next) => *next |= carry,
            None if carry != 0 => return Err("has more bits than 32 bytes".into()),
            None => {}
        }
    }
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `hello\n`'s sha256 in the encodings Nix writes.
    const HEX: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
    const NIX32: &str = "00xyyr3fi8l6hb839bv3f7yb86yjv7xi1cgh1xnhipym4asvb4aq";
    const BASE64: &str = "WJG1tSLV3whtD/CxEPvZ0hu0/HFjrzTQgoai6Eb2vgM=";

    fn registration(path: &str, references: &[&str]) -> Registration {
        Registration {
            path: path.into(),
            nar_hash: [7; 32],
            nar_size: 120,
            references: references.iter().map(|r| r.to_string()).collect(),
            ca: None,
        }
    }

    #[test]
    fn nar_hashes_in_every_encoding_nix_writes() {
        for text in [format!("sha256:{HEX}"), format!("sha256:{NIX32}"), format!("sha256-{BASE64}")] {
            assert_eq!(hex(&sha256_of(&text).unwrap()), HEX, "{text}");
        }
        for (text, why) in [
            ("md5:abc", "is not a sha256 hash"),
            ("sha256:abc", "has 3 digits"),
            (&format!("sha256:{}", NIX32.replace('1', "e")), "not Nix's base32"),
            (&format!("sha256-{HEX}"), "has 64 digits"),
            // found by reading the code after the digest's panic: the same cut in two
            (&format!("sha256:{}ʔ{}", "0".repeat(43), "0".repeat(19)), "not base16"),
            (&format!("sha256:{}", "+0".repeat(32)), "not base16"),
        ] {
            let err = sha256_of(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
        // the first digit holds the top bits: a 53rd bit does not fit
        assert!(sha256_of(&format!("sha256:z{}", &NIX32[1..])).unwrap_err().contains("more bits"));
    }

    /// The rows, read back by SQLite from the bytes: ids in path order, Nix's hash format, the
    /// registration time given, references by id.
    #[test]
    fn rows_in_path_order() {
        let paths = [
            registration("/s/bbb-lib2", &["/s/aaa-lib1", "/s/bbb-lib2"]),
            registration("/s/aaa-lib1", &[]),
            registration("/s/ccc-app", &["/s/bbb-lib2"]),
        ];
        let bytes = database(&paths, 1).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db.sqlite");
        std::fs::write(&file, &bytes).unwrap();
        let db = Connection::open(&file).unwrap();
        let rows: Vec<(i64, String, String, i64, i64)> = db
            .prepare("select id, path, hash, registrationTime, narSize from ValidPaths order by id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let hash = format!("sha256:{}", "07".repeat(32));
        assert_eq!(
            rows,
            [
                (1, "/s/aaa-lib1".into(), hash.clone(), 1, 120),
                (2, "/s/bbb-lib2".into(), hash.clone(), 1, 120),
                (3, "/s/ccc-app".into(), hash, 1, 120)
            ]
        );
        let refs: Vec<(i64, i64)> = db
            .prepare("select referrer, reference from Refs order by rowid")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(refs, [(2, 1), (2, 2), (3, 2)]);
        let check: String = db.query_row("pragma integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(check, "ok");
        let page_size: i64 = db.query_row("pragma page_size", [], |r| r.get(0)).unwrap();
        assert_eq!(page_size, 4096);
    }

    #[test]
    fn same_paths_same_bytes_whatever_their_order() {
        let a = registration("/s/aaa-a", &[]);
        let b = registration("/s/bbb-b", &["/s/aaa-a"]);
        let first = database(&[a.clone(), b.clone()], 1).unwrap();
        assert_eq!(database(&[b, a], 1).unwrap(), first);
        assert_eq!(&first[..16], b"SQLite format 3\0");
    }

    #[test]
    fn a_reference_outside_the_image_is_an_error() {
        let err = database(&[registration("/s/bbb-b", &["/s/aaa-a"])], 1).unwrap_err().to_string();
        assert!(err.ends_with("/s/bbb-b refers to /s/aaa-a, which is not in the image"), "{err}");
    }

    fn info(path: &str, references: &[&str]) -> PathInfo {
        PathInfo {
            path: path.into(),
            nar_size: 1,
            references: references.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn entries_and_roots() {
        let closure = [
            info("/s/aaa-lib", &["/s/aaa-lib"]),
            info("/s/bbb-app", &["/s/aaa-lib"]),
            info("/s/ccc-etc", &[]),
        ];
        let exported: Vec<ClosureEntry> = closure
            .iter()
            .map(|p| ClosureEntry {
                path: p.path.clone(),
                nar_size: 1,
                nar_hash: Some(format!("sha256:{HEX}")),
                ca: None,
                references: p.references.clone(),
            })
            .collect();
        let entries = entries(&closure, &exported, 1).unwrap();
        let described: Vec<String> = entries
            .iter()
            .map(|e| match e {
                Synthetic::Directory { path } => format!("{}/", path.display()),
                Synthetic::File { path, contents } => {
                    format!("{} ({} bytes)", path.display(), contents.len())
                }
                Synthetic::Symlink { path, target } => format!("{} -> {}", path.display(), target.display()),
            })
            .filter(|d| !d.contains("db.sqlite"))
            .collect();
        assert_eq!(
            described,
            [
                "nix/",
                "nix/var/",
                "nix/var/nix/",
                "nix/var/nix/db/",
                "nix/var/nix/db/schema (2 bytes)",
                "nix/var/nix/gcroots/",
                "nix/var/nix/gcroots/docker/",
                "nix/var/nix/gcroots/docker/bbb-app -> /s/bbb-app",
                "nix/var/nix/gcroots/docker/ccc-etc -> /s/ccc-etc",
            ]
        );
        let without_hash: Vec<ClosureEntry> =
            exported.into_iter().map(|e| ClosureEntry { nar_hash: None, ..e }).collect();
        let err = super::entries(&closure, &without_hash, 1).unwrap_err().to_string();
        assert!(err.ends_with("Nix exported no narHash for /s/aaa-lib to the build"), "{err}");
    }

    #[test]
    fn contents_share_directories_with_the_database_but_no_other_entry() {
        let mut merged = vec![
            Synthetic::Directory { path: "nix".into() },
            Synthetic::Symlink { path: "bin".into(), target: "/s/x/bin".into() },
        ];
        let more = vec![
            Synthetic::Directory { path: "nix".into() },
            Synthetic::Directory { path: "nix/var".into() },
        ];
        add_entries(&mut merged, more).unwrap();
        assert_eq!(merged.len(), 3);
        let clash = vec![Synthetic::Directory { path: "bin".into() }];
        let err = add_entries(&mut merged, clash).unwrap_err().to_string();
        assert!(
            err.ends_with("the contents put an entry at /bin, where the database needs its own"),
            "{err}"
        );
    }
}

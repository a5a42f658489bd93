//! Declarative permissions (`perms`, beyond dockerTools): owners and modes set on the image's
//! entries — store layers and the customisation (or `buildImage`) layer alike — without running
//! a script, so they also hold what a script cannot set (set-user-ID bits in Nix's sandbox).
//!
//! A rule names a path in the image. Without `regex` it applies to that entry; with one, to
//! every entry below it whose path relative to it matches the whole regex (`.*` is all of
//! them). Rules apply in order, a later one over an earlier one. Everything is checked at
//! evaluation.

use crate::{Error, Result};
use regex_lite::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One rule, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Perm {
    /// An absolute path in the image, normalised (`/etc/shadow`, or a store path).
    pub path: String,
    /// Applies to the entries below `path` whose relative path matches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Mode bits (at most 0o7777).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Numeric owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Numeric group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Owner name in the tar headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uname: Option<String>,
    /// Group name in the tar headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gname: Option<String>,
}

const FIELDS: &[&str] = &["path", "regex", "mode", "uid", "gid", "uname", "gname"];

/// Checks the `perms` argument (`value`: a list of sets, as JSON).
pub fn check_perms(value: Option<&Value>) -> Result<Vec<Perm>> {
    let Some(value) = value else { return Ok(Vec::new()) };
    let Value::Array(rules) = value else {
        return Err(Error::argument("perms", "must be a list of sets ({ path; mode ? …; uid ? …; … })"));
    };
    rules.iter().enumerate().map(|(i, rule)| check_rule(&format!("perms[{i}]"), rule)).collect()
}

fn check_rule(arg: &str, rule: &Value) -> Result<Perm> {
    let Value::Object(fields) = rule else {
        return Err(Error::argument(arg, "must be a set ({ path; mode ? …; uid ? …; … })"));
    };
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(Error::argument(
            arg,
            format!("has an unknown field '{unknown}'; the fields are: {}", FIELDS.join(", ")),
        ));
    }
    let field = |name: &str| fields.get(name).filter(|v| !v.is_null());
    let string = |name: &str| -> Result<Option<String>> {
        match field(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Error::argument(format!("{arg}.{name}"), "must be a string")),
        }
    };
    let id = |name: &str| -> Result<Option<u32>> {
        match field(name) {
            None => Ok(None),
            Some(v) => v.as_u64().and_then(|n| u32::try_from(n).ok()).map(Some).ok_or_else(|| {
                Error::argument(format!("{arg}.{name}"), format!("is {v}; ids are 0 to 4294967295"))
            }),
        }
    };
    let name = |name: &str| -> Result<Option<String>> {
        let value = string(name)?;
        if value.as_ref().is_some_and(|v| v.len() > 31 || v.contains('\0')) {
            return Err(Error::argument(
                format!("{arg}.{name}"),
                "does not fit a tar header (at most 31 bytes)",
            ));
        }
        Ok(value)
    };
    let path = string("path")?.ok_or_else(|| Error::argument(format!("{arg}.path"), "is required"))?;
    let path = normalise(&path)
        .map_err(|problem| Error::argument(format!("{arg}.path"), format!("{path:?} {problem}")))?;
    let regex = string("regex")?;
    if let Some(regex) = &regex {
        anchored(regex)
            .map_err(|e| Error::argument(format!("{arg}.regex"), format!("{regex:?} is not a regex: {e}")))?;
    }
    let mode = match string("mode")? {
        None => None,
        Some(text) => Some(parse_mode(&text).ok_or_else(|| {
            Error::argument(
                format!("{arg}.mode"),
                format!("{text:?} is not an octal mode such as \"0755\" or \"4755\""),
            )
        })?),
    };
    let perm = Perm {
        path,
        regex,
        mode,
        uid: id("uid")?,
        gid: id("gid")?,
        uname: name("uname")?,
        gname: name("gname")?,
    };
    if perm.mode.is_none()
        && perm.uid.is_none()
        && perm.gid.is_none()
        && perm.uname.is_none()
        && perm.gname.is_none()
    {
        return Err(Error::argument(arg, "sets nothing: give mode, uid, gid, uname or gname"));
    }
    Ok(perm)
}

/// `path`, absolute and without `.`, `..` or repeated slashes; an error if it is relative or
/// climbs out of the image root.
fn normalise(path: &str) -> std::result::Result<String, &'static str> {
    if !path.starts_with('/') {
        return Err("is not an absolute path in the image");
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or("is outside the image root")?;
            }
            part => parts.push(part),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

fn parse_mode(text: &str) -> Option<u32> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(digits, 8).ok().filter(|&m| m <= 0o7777)
}

fn anchored(regex: &str) -> std::result::Result<Regex, regex_lite::Error> {
    Regex::new(&format!("^(?:{regex})$"))
}

/// The rules of an image, ready to apply.
#[derive(Debug, Default)]
pub struct Perms {
    rules: Vec<(Perm, Option<Regex>)>,
}

impl Perms {
    /// The rules `perms` (checked at evaluation, so their regexes compile).
    pub fn new(perms: &[Perm]) -> Result<Perms> {
        let rules = perms
            .iter()
            .map(|p| {
                let regex = p.regex.as_deref().map(anchored).transpose();
                regex.map(|r| (p.clone(), r)).map_err(|e| Error::argument("perms", e.to_string()))
            })
            .collect::<Result<_>>()?;
        Ok(Perms { rules })
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Sets what the rules say on `header`, the entry `name` (relative to the image root, as
    /// tar names it: `etc/passwd`, `nix/store/…/`; bytes, which need not be UTF-8).
    pub fn apply(&self, name: &[u8], header: &mut tar::Header) -> std::io::Result<()> {
        if self.rules.is_empty() {
            return Ok(());
        }
        let end = name.iter().rposition(|&b| b != b'/').map_or(0, |last| last + 1);
        let path = [b"/", &name[..end]].concat();
        for (perm, regex) in &self.rules {
            let applies = match regex {
                None => path == perm.path.as_bytes(),
                Some(regex) => {
                    let below = if perm.path == "/" {
                        path.strip_prefix(b"/")
                    } else {
                        path.strip_prefix(format!("{}/", perm.path).as_bytes())
                    };
                    // regex-lite matches text: to it, a byte that is not UTF-8 is U+FFFD
                    below.is_some_and(|rel| !rel.is_empty() && regex.is_match(&String::from_utf8_lossy(rel)))
                }
            };
            if !applies {
                continue;
            }
            if let Some(mode) = perm.mode {
                header.set_mode(mode);
            }
            if let Some(uid) = perm.uid {
                header.set_uid(uid.into());
            }
            if let Some(gid) = perm.gid {
                header.set_gid(gid.into());
            }
            if let Some(uname) = &perm.uname {
                header.set_username(uname)?;
            }
            if let Some(gname) = &perm.gname {
                header.set_groupname(gname)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_apply_in_order_to_the_path_or_below_it() {
        let perms = check_perms(Some(&json!([
            { "path": "/etc/shadow", "mode": "0640", "gid": 42, "gname": "shadow" },
            { "path": "/store/x-app/bin", "regex": ".*", "mode": "4755" },
            { "path": "/store/x-app/bin", "regex": "keep", "mode": "0555", "uid": 7 },
        ])))
        .unwrap();
        let perms = Perms::new(&perms).unwrap();
        let mode = |name: &str| {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o444);
            h.set_uid(0);
            h.set_gid(0);
            perms.apply(name.as_bytes(), &mut h).unwrap();
            (h.mode().unwrap(), h.uid().unwrap(), h.gid().unwrap())
        };
        assert_eq!(mode("etc/shadow"), (0o640, 0, 42));
        assert_eq!(mode("etc/passwd"), (0o444, 0, 0));
        assert_eq!(mode("store/x-app/bin/"), (0o444, 0, 0));
        assert_eq!(mode("store/x-app/bin/sudo"), (0o4755, 0, 0));
        assert_eq!(mode("store/x-app/bin/keep"), (0o555, 7, 0));
        assert_eq!(mode("store/x-app/binary"), (0o444, 0, 0));
        // names are bytes; a regex sees a byte that is not UTF-8 as U+FFFD
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o444);
        perms.apply(b"store/x-app/bin/caf\xe9", &mut h).unwrap();
        assert_eq!(h.mode().unwrap(), 0o4755);
    }

    #[test]
    fn bad_rules_are_named() {
        for (rules, needle) in [
            (json!({}), "argument 'perms' must be a list"),
            (json!(["x"]), "argument 'perms[0]' must be a set"),
            (
                json!([{ "path": "/a", "mode": "0755", "owner": 1 }]),
                "argument 'perms[0]' has an unknown field 'owner'",
            ),
            (json!([{ "mode": "0755" }]), "argument 'perms[0].path' is required"),
            (
                json!([{ "path": "etc", "mode": "0755" }]),
                "argument 'perms[0].path' \"etc\" is not an absolute path",
            ),
            (
                json!([{ "path": "/../etc", "mode": "0755" }]),
                "argument 'perms[0].path' \"/../etc\" is outside the image root",
            ),
            (
                json!([{ "path": "/a", "mode": "rwx" }]),
                "argument 'perms[0].mode' \"rwx\" is not an octal mode",
            ),
            (
                json!([{ "path": "/a", "mode": "0999" }]),
                "argument 'perms[0].mode' \"0999\" is not an octal mode",
            ),
            (
                json!([{ "path": "/a", "mode": "17777" }]),
                "argument 'perms[0].mode' \"17777\" is not an octal mode",
            ),
            (json!([{ "path": "/a", "uid": -1 }]), "argument 'perms[0].uid' is -1"),
            (
                json!([{ "path": "/a", "regex": "(", "uid": 1 }]),
                "argument 'perms[0].regex' \"(\" is not a regex",
            ),
            (json!([{ "path": "/a" }]), "argument 'perms[0]' sets nothing"),
        ] {
            let err = check_perms(Some(&rules)).unwrap_err().to_string();
            assert!(err.starts_with(needle), "{rules}: {err}");
        }
        assert_eq!(
            check_perms(Some(&json!([{ "path": "/a/./b/../c//", "mode": "755" }]))).unwrap()[0].path,
            "/a/c"
        );
    }
}

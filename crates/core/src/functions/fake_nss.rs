//! fakeNss: the smallest user and group database an image needs.
//!
//! Programs that look users up through NSS (nginx, ssh, anything calling `getpwnam`) fail in an
//! image without `/etc/passwd`. Like nixpkgs' `dockerTools.fakeNss`, this gives `root` (0) and
//! `nobody` (65534), both with home `/var/empty` and shell `/bin/sh`, `hosts: files dns` for
//! the resolver, and the empty `/var/empty`; extra lines go between root and nobody, in the
//! order given. Extra lines are checked, since a malformed line makes libc skip the entry
//! silently at run time.

use crate::format::nar::Node;
use crate::functions::args::Args;
use crate::{Error, Result};
use std::collections::BTreeMap;

/// The users every fakeNss has: `(name, uid)`, `root` first and `nobody` last.
const BUILTIN_USERS: [(&str, u32); 2] = [("root", 0), ("nobody", 65534)];

/// The home of the built-in users; it exists in the tree, empty.
const EMPTY_HOME: &str = "/var/empty";

/// The resolver configuration: files first, then DNS.
const NSSWITCH_CONF: &str = "hosts: files dns\n";

/// One kind of database line: its argument name and its `:`-separated fields.
struct LineFormat {
    arg: &'static str,
    fields: &'static [&'static str],
    /// Field indices that hold numeric ids.
    ids: &'static [usize],
    /// The index of the field that lists member names, separated by commas.
    members: Option<usize>,
}

const PASSWD: LineFormat = LineFormat {
    arg: "extraPasswdLines",
    fields: &["name", "password", "uid", "gid", "gecos", "home", "shell"],
    ids: &[2, 3],
    members: None,
};

const GROUP: LineFormat = LineFormat {
    arg: "extraGroupLines",
    fields: &["name", "password", "gid", "members"],
    ids: &[2],
    members: Some(3),
};

/// A validated fakeNss: the text of its passwd and group files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeNss {
    passwd: String,
    group: String,
}

impl FakeNss {
    /// The files `fakeNss` makes of its arguments (`extraPasswdLines`, `extraGroupLines`), as
    /// the plugin hands them over (JSON).
    pub fn from_nix(args_json: &str) -> Result<FakeNss> {
        let args = Args::parse(args_json, &["extraPasswdLines", "extraGroupLines"])?;
        FakeNss::new(&args.string_list("extraPasswdLines")?, &args.string_list("extraGroupLines")?)
    }

    /// A fakeNss with `extra_passwd_lines` and `extra_group_lines` (without trailing newlines)
    /// between the built-in root and nobody entries. A malformed line is an error naming it.
    pub fn new(extra_passwd_lines: &[String], extra_group_lines: &[String]) -> Result<FakeNss> {
        PASSWD.check(extra_passwd_lines)?;
        GROUP.check(extra_group_lines)?;
        let [(root, _), (nobody, nobody_id)] = BUILTIN_USERS;
        Ok(FakeNss {
            passwd: render(
                &format!("{root}:x:0:0:root user:{EMPTY_HOME}:/bin/sh"),
                extra_passwd_lines,
                &format!("{nobody}:x:{nobody_id}:{nobody_id}:{nobody}:{EMPTY_HOME}:/bin/sh"),
            ),
            group: render(&format!("{root}:x:0:"), extra_group_lines, &format!("{nobody}:x:{nobody_id}:")),
        })
    }

    /// The contents of `etc/passwd`.
    pub fn passwd(&self) -> &str {
        &self.passwd
    }

    /// The contents of `etc/group`.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The file tree: `etc/passwd`, `etc/group`, `etc/nsswitch.conf` and the empty `var/empty`.
    pub fn tree(&self) -> Node {
        Node::directory([
            (
                "etc",
                Node::directory([
                    ("group", Node::file(self.group.as_str())),
                    ("nsswitch.conf", Node::file(NSSWITCH_CONF)),
                    ("passwd", Node::file(self.passwd.as_str())),
                ]),
            ),
            ("var", Node::directory([("empty", Node::directory([]))])),
        ])
    }
}

fn render(first: &str, extra: &[String], last: &str) -> String {
    let mut text = String::new();
    for line in std::iter::once(first).chain(extra.iter().map(String::as_str)).chain([last]) {
        text.push_str(line);
        text.push('\n');
    }
    text
}

impl LineFormat {
    fn check(&self, lines: &[String]) -> Result<()> {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, line) in lines.iter().enumerate() {
            let bad = |problem: String| {
                Error::argument(format!("{}[{index}]", self.arg), format!("{line:?} {problem}"))
            };
            if line.contains(['\n', '\r']) {
                return Err(bad("contains a line break; give one line per list element".into()));
            }
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() != self.fields.len() {
                return Err(bad(format!(
                    "has {} fields; a line here has {} ({}), and no field may contain ':'",
                    fields.len(),
                    self.fields.len(),
                    self.fields.join(":"),
                )));
            }
            let name = fields[0];
            if let Some(problem) = name_problem(name) {
                return Err(bad(format!("has a bad name: {problem}")));
            }
            if BUILTIN_USERS.iter().any(|(builtin, _)| *builtin == name) {
                return Err(bad(format!("defines '{name}', which fakeNss always has")));
            }
            if let Some(first) = seen.insert(name, index) {
                return Err(bad(format!("defines '{name}' again (already in {}[{first}])", self.arg)));
            }
            for &i in self.ids {
                if !is_id(fields[i]) {
                    return Err(bad(format!(
                        "has {} {:?}, which is not a number from 0 to 4294967294",
                        self.fields[i], fields[i]
                    )));
                }
            }
            if let Some(members) = self.members.map(|i| fields[i]).filter(|m| !m.is_empty()) {
                for member in members.split(',') {
                    if let Some(problem) = name_problem(member) {
                        return Err(bad(format!("has a bad member {member:?}: {problem}")));
                    }
                }
            }
        }
        Ok(())
    }
}

fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.contains(|c: char| c.is_whitespace() || c == ',') {
        Some("it contains white space or ','")
    } else {
        None
    }
}

/// A decimal id; 4294967295 is `(uid_t) -1`, which means "no id" to the kernel.
fn is_id(field: &str) -> bool {
    !field.is_empty()
        && field.bytes().all(|b| b.is_ascii_digit())
        && field.parse::<u32>().is_ok_and(|id| id != u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_database() {
        let nss = FakeNss::new(&[], &[]).unwrap();
        assert_eq!(
            nss.passwd(),
            "root:x:0:0:root user:/var/empty:/bin/sh\nnobody:x:65534:65534:nobody:/var/empty:/bin/sh\n"
        );
        assert_eq!(nss.group(), "root:x:0:\nnobody:x:65534:\n");
    }

    #[test]
    fn extra_lines_go_between_root_and_nobody() {
        let nss = FakeNss::new(
            &lines(&["app:x:1000:1000:The App:/home/app:/bin/sh", "svc:!:1001:1000::/:/sbin/nologin"]),
            &lines(&["app:x:1000:app,svc", "empty:x:1002:"]),
        )
        .unwrap();
        assert_eq!(
            nss.passwd(),
            "root:x:0:0:root user:/var/empty:/bin/sh\n\
             app:x:1000:1000:The App:/home/app:/bin/sh\n\
             svc:!:1001:1000::/:/sbin/nologin\n\
             nobody:x:65534:65534:nobody:/var/empty:/bin/sh\n"
        );
        assert_eq!(nss.group(), "root:x:0:\napp:x:1000:app,svc\nempty:x:1002:\nnobody:x:65534:\n");
    }

    #[test]
    fn tree_layout() {
        let Node::Directory(root) = FakeNss::new(&[], &[]).unwrap().tree() else { panic!() };
        let names: Vec<_> = root.keys().map(String::as_str).collect();
        assert_eq!(names, ["etc", "var"]);
        let Node::Directory(etc) = &root["etc"] else { panic!() };
        assert_eq!(etc.keys().map(String::as_str).collect::<Vec<_>>(), ["group", "nsswitch.conf", "passwd"]);
        assert_eq!(etc["nsswitch.conf"], Node::file("hosts: files dns\n"));
        assert_eq!(root["var"], Node::directory([("empty", Node::directory([]))]));
    }

    fn passwd_error(line: &str) -> String {
        FakeNss::new(&lines(&["ok:x:5:5::/:/bin/sh", line]), &[]).unwrap_err().to_string()
    }

    fn group_error(line: &str) -> String {
        FakeNss::new(&[], &lines(&[line])).unwrap_err().to_string()
    }

    #[test]
    fn bad_passwd_lines_are_named() {
        for (line, needle) in [
            ("app:x:1000", "has 3 fields; a line here has 7 (name:password:uid:gid:gecos:home:shell)"),
            ("app:x:1000:1000:a:b:c:d", "has 8 fields"),
            ("app:x:10a:1000::/:/bin/sh", "has uid \"10a\", which is not a number"),
            ("app:x:1000:-1::/:/bin/sh", "has gid \"-1\""),
            ("app:x::1::/:/bin/sh", "has uid \"\""),
            ("app:x:4294967295:1::/:/bin/sh", "has uid \"4294967295\""),
            ("app:x:1:1::/:/bin/sh\nevil:x:0:0::/:/bin/sh", "contains a line break"),
            ("root:x:0:0::/root:/bin/bash", "defines 'root', which fakeNss always has"),
            ("nobody:x:1:1::/:/bin/sh", "defines 'nobody'"),
            ("ok:x:6:6::/:/bin/sh", "defines 'ok' again (already in extraPasswdLines[0])"),
            (":x:1:1::/:/bin/sh", "bad name: it is empty"),
            ("my app:x:1:1::/:/bin/sh", "bad name: it contains white space"),
        ] {
            let err = passwd_error(line);
            assert!(err.starts_with("argument 'extraPasswdLines[1]' "), "{err}");
            assert!(err.contains(needle), "{err:?} should contain {needle:?}");
        }
    }

    #[test]
    fn bad_group_lines_are_named() {
        for (line, needle) in [
            ("app:x:1000", "has 3 fields; a line here has 4 (name:password:gid:members)"),
            ("app:x:abc:", "has gid \"abc\""),
            ("app:x:1:a,,b", "has a bad member \"\""),
            ("app:x:1:a b", "has a bad member \"a b\""),
            ("root:x:0:", "defines 'root'"),
        ] {
            let err = group_error(line);
            assert!(err.starts_with("argument 'extraGroupLines[0]' "), "{err}");
            assert!(err.contains(needle), "{err:?} should contain {needle:?}");
        }
    }
}

//! Image references: the `name` and `tag` an image is loaded under.
//!
//! The grammar is Docker's (`distribution/reference`): a name is path components of lower-case
//! letters and digits joined by `.`, `_`, `__` or dashes, separated by `/`, optionally after a
//! registry host (`registry.example.com:5000/team/app`); a tag is 1–128 of `[A-Za-z0-9_.-]`,
//! not starting with `.` or `-`. Like dockerTools, names are lower-cased first.

use crate::{Error, Result};

/// Docker's limit on a whole name.
const NAME_MAX: usize = 255;
/// Docker's limit on a tag.
const TAG_MAX: usize = 128;

/// A valid image name and what derivations may be called after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    /// The full name, lower-cased, as RepoTags carry it.
    pub name: String,
    /// The last path component, for derivation names (Nix forbids `/` in them).
    pub base: String,
}

impl ImageName {
    /// Checks `name` (after lower-casing it) against Docker's grammar.
    pub fn parse(name: &str) -> Result<ImageName> {
        ImageName::parse_argument("name", name)
    }

    /// [`ImageName::parse`], for the argument `arg`.
    pub fn parse_argument(arg: &str, name: &str) -> Result<ImageName> {
        let bad =
            |problem: String| Error::argument(arg, format!("{name:?} is not a valid image name: {problem}"));
        let lowered = name.to_lowercase();
        if lowered.is_empty() {
            return Err(bad("it is empty".into()));
        }
        if lowered.len() > NAME_MAX {
            return Err(bad(format!("it is longer than {NAME_MAX} characters")));
        }
        let mut components: Vec<&str> = lowered.split('/').collect();
        // A first component with a '.' or ':' (or "localhost") names a registry, not a path.
        if components.len() > 1 && (components[0].contains(['.', ':']) || components[0] == "localhost") {
            let host = components.remove(0);
            check_host(host).map_err(|p| bad(format!("registry {host:?} {p}")))?;
        }
        for component in &components {
            check_path_component(component).map_err(|p| bad(format!("component {component:?} {p}")))?;
        }
        let base = components.last().expect("split yields one component").to_string();
        Ok(ImageName { name: lowered, base })
    }
}

impl ImageName {
    /// The registry host (`host[:port]`) to ask for this image, and its repository there, as
    /// Docker reads a name: without a registry it is Docker Hub's, where a one-component name
    /// is under `library/`.
    pub fn locate(&self) -> (String, String) {
        match self.name.split_once('/') {
            Some((host, path)) if host.contains(['.', ':']) || host == "localhost" => {
                let hub = matches!(host, "docker.io" | "index.docker.io");
                let path =
                    if hub && !path.contains('/') { format!("library/{path}") } else { path.to_owned() };
                (if hub { DOCKER_HUB.to_owned() } else { host.to_owned() }, path)
            }
            Some(_) => (DOCKER_HUB.to_owned(), self.name.clone()),
            None => (DOCKER_HUB.to_owned(), format!("library/{}", self.name)),
        }
    }
}

/// Docker Hub's registry API host.
const DOCKER_HUB: &str = "registry-1.docker.io";

/// A `NAME:TAG` reference as a docker-archive's `RepoTags` carry it — the tag after the last
/// `:` that no `/` follows (a registry's port is not a tag) — its name and tag checked; errors
/// name `arg`.
pub fn parse_name_tag<'a>(arg: &str, reference: &'a str) -> Result<(ImageName, &'a str)> {
    let (name, tag) = reference.rsplit_once(':').filter(|(_, t)| !t.contains('/')).ok_or_else(|| {
        Error::argument(arg, format!("{reference:?} has no tag: a docker-archive's image is named NAME:TAG"))
    })?;
    Ok((ImageName::parse_argument(arg, name)?, tag)).and_then(|named| check_tag(tag).map(|()| named))
}

/// Checks a tag against Docker's grammar.
pub fn check_tag(tag: &str) -> Result<()> {
    let bad = |problem: &str| Error::argument("tag", format!("{tag:?} is not a valid image tag: {problem}"));
    if tag.is_empty() || tag.len() > TAG_MAX {
        return Err(bad("a tag has 1 to 128 characters"));
    }
    if tag.starts_with(['.', '-']) {
        return Err(bad("it may not start with '.' or '-'"));
    }
    if !tag.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
        return Err(bad("only letters, digits, '_', '.' and '-' are allowed"));
    }
    Ok(())
}

fn check_path_component(component: &str) -> Result<(), String> {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() {
        return Err("is empty".into());
    }
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err("must start and end with a lower-case letter or digit".into());
    }
    // separators: one '.', one or two '_', or any number of '-'
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return Err(format!(
                "has {separator:?}; only '.', '_', '__' or dashes may separate letters and digits"
            ));
        }
    }
    Ok(())
}

fn check_host(host: &str) -> Result<(), String> {
    let (domain, port) = match host.rsplit_once(':') {
        Some((domain, port)) => (domain, Some(port)),
        None => (host, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("has port {port:?}, which is not a number"));
        }
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !domain.split('.').all(label_ok) {
        return Err("is not a host name".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_names_are_pulled_from() {
        let at = |name: &str| ImageName::parse(name).unwrap().locate();
        let pair = |h: &str, r: &str| (h.to_owned(), r.to_owned());
        assert_eq!(at("nginx"), pair("registry-1.docker.io", "library/nginx"));
        assert_eq!(at("docker.io/nginx"), pair("registry-1.docker.io", "library/nginx"));
        assert_eq!(at("team/app"), pair("registry-1.docker.io", "team/app"));
        assert_eq!(at("127.0.0.1:5000/app"), pair("127.0.0.1:5000", "app"));
        assert_eq!(at("quay.io/team/app"), pair("quay.io", "team/app"));
        assert_eq!(at("localhost/x/y"), pair("localhost", "x/y"));
    }

    #[test]
    fn names() {
        let n = ImageName::parse("Registry.Example.com:5000/Team/My-App").unwrap();
        assert_eq!(n.name, "registry.example.com:5000/team/my-app");
        assert_eq!(n.base, "my-app");
        assert_eq!(ImageName::parse("hello").unwrap().base, "hello");
        assert_eq!(ImageName::parse("localhost/a_b/c__d/e.f/g---h").unwrap().base, "g---h");
        assert_eq!(ImageName::parse("localhost:5000/app").unwrap().base, "app");
    }

    #[test]
    fn bad_names() {
        for (name, needle) in [
            ("", "it is empty"),
            ("a//b", "component \"\" is empty"),
            ("-app", "must start and end"),
            ("app-", "must start and end"),
            ("a..b", "has \"..\""),
            ("a___b", "has \"___\""),
            ("my app", "has \" \""),
            ("reg.io:x/app", "has port \"x\""),
            ("bad_host.io/app", "is not a host name"),
        ] {
            let err = ImageName::parse(name).unwrap_err().to_string();
            assert!(err.starts_with("argument 'name' "), "{err}");
            assert!(err.contains(needle), "{name:?}: {err}");
        }
        assert!(ImageName::parse(&"a".repeat(256)).is_err());
    }

    #[test]
    fn tags() {
        for tag in ["latest", "v1.2.3", "A_b-C.d", &"x".repeat(128)] {
            check_tag(tag).unwrap();
        }
        for tag in ["", ".hidden", "-x", "a:b", "a/b", &"x".repeat(129)] {
            assert!(check_tag(tag).unwrap_err().to_string().starts_with("argument 'tag' "), "{tag}");
        }
    }
}

//! Where a push goes: `docker://HOST[:PORT]/REPOSITORY[:TAG]`, read as Docker reads image
//! names (no host: Docker Hub).

use crate::image::reference::{check_tag, ImageName};
use crate::{Error, Result};

/// Where an image goes: `docker://HOST[:PORT]/REPOSITORY[:TAG]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// `host[:port]`.
    pub registry: String,
    /// The repository, `team/app`.
    pub repository: String,
    /// The tag.
    pub tag: String,
}

impl Destination {
    /// Parses `docker://NAME[:TAG]` (the tag defaults to `latest`), the name read as Docker
    /// reads it: `HOST[:PORT]/REPOSITORY`, or without a host (`team/app`, `app`) Docker Hub's.
    pub fn parse(text: &str) -> Result<Destination> {
        let rest = text.strip_prefix("docker://").ok_or_else(|| {
            Error::argument(
                "DEST",
                format!("{text:?} is not a docker:// reference; the form is docker://HOST[:PORT]/REPOSITORY[:TAG]"),
            )
        })?;
        if let Some((_, digest)) = rest.split_once('@') {
            return Err(Error::argument(
                "DEST",
                format!("{text:?} names a digest (@{digest}); a push needs a tag to put the image under: docker://HOST[:PORT]/REPOSITORY[:TAG]"),
            ));
        }
        let (name, tag) = match rest.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, tag),
            _ => (rest, "latest"),
        };
        check_tag(tag)?;
        let (registry, repository) = ImageName::parse_argument("DEST", name)?.locate();
        Ok(Destination { registry, repository, tag: tag.into() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        let d = Destination::parse("docker://127.0.0.1:5000/team/app:v1").unwrap();
        assert_eq!(
            (d.registry.as_str(), d.repository.as_str(), d.tag.as_str()),
            ("127.0.0.1:5000", "team/app", "v1")
        );
        let d = Destination::parse("docker://registry.example.com/app").unwrap();
        assert_eq!((d.registry.as_str(), d.tag.as_str()), ("registry.example.com", "latest"));
        // Names without a registry are Docker Hub's, as Docker and skopeo read them.
        for (name, repository) in
            [("team/app:1", "team/app"), ("app:1", "library/app"), ("docker.io/app:1", "library/app")]
        {
            let d = Destination::parse(&format!("docker://{name}")).unwrap();
            assert_eq!((d.registry.as_str(), d.repository.as_str()), ("registry-1.docker.io", repository));
        }
        for bad in ["registry.example.com/app", "docker://", "docker://host/app:-x", "docker://Host_/app"] {
            assert!(Destination::parse(bad).is_err(), "{bad}");
        }
        // A digest is no place to push to.
        let digest = format!("sha256:{}", "a".repeat(64));
        for by_digest in [format!("docker://host/a@{digest}"), format!("docker://host:5000/a:1@{digest}")] {
            let err = Destination::parse(&by_digest).unwrap_err().to_string();
            assert!(err.contains(&format!("names a digest (@{digest}); a push needs a tag")), "{err}");
        }
    }
}

//! Image references (`[registry/]repository[:tag][@digest]`) with Docker's normalisation.

use crate::Digest;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The registry that short names (`busybox`, `user/app`) refer to.
pub const DOCKER_HUB: &str = "docker.io";

/// A fully normalised image reference.
///
/// `busybox` becomes `docker.io/library/busybox:latest`, as docker does; the first path
/// component is a registry host only if it contains `.` or `:` or is `localhost`.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Reference {
    /// Registry host, with port if any (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// Repository path inside the registry (`library/busybox`).
    pub repository: String,
    /// Tag; `None` only when a digest is given without a tag.
    pub tag: Option<String>,
    /// Digest pin, if given.
    pub digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid image reference {value:?}: {reason}")]
pub struct InvalidReference {
    /// The rejected text.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Reference {
    /// `registry/repository`, without tag or digest (the "name" docker shows).
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository pinned to `digest` (tag kept for display).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference { digest: Some(digest), ..self.clone() }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference { tag: Some(tag.to_string()), digest: None, ..self.clone() }
    }

    /// What to ask the registry for: the digest if pinned, else the tag.
    pub fn object(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The shortest form docker would print (`busybox:latest` for Docker Hub library images).
    pub fn familiar(&self) -> String {
        let mut name = if self.registry == DOCKER_HUB {
            self.repository.strip_prefix("library/").unwrap_or(&self.repository).to_string()
        } else {
            self.name()
        };
        if let Some(t) = &self.tag {
            name.push(':');
            name.push_str(t);
        }
        if let Some(d) = &self.digest {
            name.push('@');
            name.push_str(d.as_str());
        }
        name
    }

    /// True for registries on the loopback interface, which are spoken to over plain HTTP.
    pub fn is_loopback_registry(&self) -> bool {
        host_is_loopback(&self.registry)
    }
}

/// True when `registry` (`host[:port]`) names the loopback interface.
pub(crate) fn host_is_loopback(registry: &str) -> bool {
    let host = host_without_port(registry);
    host == "localhost" || host == "::1" || host == "[::1]" || host.starts_with("127.")
}

fn host_without_port(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.rsplit_once(':').map_or(registry, |(h, _)| h)
}

fn invalid(value: &str, reason: &str) -> InvalidReference {
    InvalidReference { value: value.to_string(), reason: reason.to_string() }
}

fn valid_path_component(c: &str) -> bool {
    // distribution's grammar: [a-z0-9]+ separated by '.', '_', '__' or one or more '-'.
    if c.is_empty() || !c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return false;
    }
    let first = c.as_bytes()[0];
    let last = c.as_bytes()[c.len() - 1];
    first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() && !c.contains("...")
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.as_bytes()[0] != b'.'
        && t.as_bytes()[0] != b'-'
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

impl FromStr for Reference {
    type Err = InvalidReference;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(invalid(s, "empty reference"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.parse::<Digest>().map_err(|e| invalid(s, &e.to_string()))?)),
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(invalid(s, &format!("invalid tag {t:?}")));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path)) if first.contains('.') || first.contains(':') || first == "localhost" => {
                (first.to_string(), path.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry
        };
        if repository.is_empty() {
            return Err(invalid(s, "missing repository name"));
        }
        if repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid(s, "repository name must be lowercase"));
        }
        if !repository.split('/').all(valid_path_component) {
            return Err(invalid(s, "repository name may contain only [a-z0-9] separated by '.', '_' or '-'"));
        }
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(Reference { registry, repository, tag, digest })
    }
}

impl TryFrom<String> for Reference {
    type Error = InvalidReference;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Reference> for String {
    fn from(r: Reference) -> String {
        r.to_string()
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl PartialOrd for Reference {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Ordered by their full text, so sorted lists of references are stable and readable.
impl Ord for Reference {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.to_string().cmp(&other.to_string())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_table() {
        let d = format!("sha256:{}", "0".repeat(64));
        let cases: &[(&str, &str)] = &[
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("user/app", "docker.io/user/app:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            ("index.docker.io/library/busybox", "docker.io/library/busybox:latest"),
            ("127.0.0.1:5000/lab/busybox:latest", "127.0.0.1:5000/lab/busybox:latest"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/a/b/c:v1.2-x", "localhost:5000/a/b/c:v1.2-x"),
            ("quay.io/org/app", "quay.io/org/app:latest"),
        ];
        for (input, want) in cases {
            assert_eq!(input.parse::<Reference>().unwrap().to_string(), *want, "{input}");
        }
        let pinned: Reference = format!("busybox@{d}").parse().unwrap();
        assert_eq!(pinned.tag, None);
        assert_eq!(pinned.object(), d);
        let both: Reference = format!("127.0.0.1:5000/x:t@{d}").parse().unwrap();
        assert_eq!(both.tag.as_deref(), Some("t"));
    }

    #[test]
    fn rejects_bad_references() {
        for bad in ["", "Busybox", "a b", "x:", "x:-t", "/x", "x//y", "x@sha256:zz"] {
            assert!(bad.parse::<Reference>().is_err(), "{bad}");
        }
    }

    #[test]
    fn familiar_and_loopback() {
        let r: Reference = "busybox".parse().unwrap();
        assert_eq!(r.familiar(), "busybox:latest");
        assert!(!r.is_loopback_registry());
        let l: Reference = "127.0.0.1:5000/lab/busybox".parse().unwrap();
        assert!(l.is_loopback_registry());
        assert_eq!(l.familiar(), "127.0.0.1:5000/lab/busybox:latest");
    }
}

//! The errors of the distribution client.
//!
//! Every variant names the registry and, where there is one, the repository and the object
//! (tag or digest) involved. Credentials never appear here: the client never puts them in
//! URLs, and transport errors are stripped of their URL before they are wrapped.

use crate::{Digest, Platform};
use std::fmt;
use std::path::PathBuf;

/// Why the registry refused access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// The registry wants credentials and none are configured for it.
    NoCredentials,
    /// Credentials were sent and the registry (or its token service) rejected them.
    CredentialsRejected,
    /// The caller is known but not allowed to do this (HTTP 403, or a token without the
    /// requested scope).
    Denied,
}

/// An error from talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The manifest, tag, blob or repository does not exist.
    #[error("{object} not found in {registry}/{repository}")]
    NotFound {
        /// Registry host.
        registry: String,
        /// Repository path.
        repository: String,
        /// Tag or digest asked for.
        object: String,
    },

    /// Authentication or authorisation failed.
    #[error("{}", unauthorized_message(registry, repository, object, *status, *reason))]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// Repository path.
        repository: String,
        /// Tag or digest asked for.
        object: String,
        /// The HTTP status that ended the exchange (401 or 403).
        status: u16,
        /// Whether credentials were missing, rejected, or insufficient.
        reason: AuthFailure,
    },

    /// The registry could not be reached, or the connection broke; retrying later may help.
    #[error("cannot reach registry {host} after {attempts} attempt(s): {}", transport_cause(source))]
    Network {
        /// `host:port` that was contacted.
        host: String,
        /// How many attempts were made.
        attempts: u32,
        /// The transport error (without URL).
        source: reqwest::Error,
    },

    /// Content did not hash to the digest (or size) that names it.
    #[error(
        "{object} from {registry}/{repository} does not match its descriptor: expected {expected} \
         ({expected_size} bytes), got {} ({actual_size} bytes)",
        actual.as_ref().map_or_else(|| "more data than declared".to_string(), Digest::to_string)
    )]
    DigestMismatch {
        /// Registry host.
        registry: String,
        /// Repository path.
        repository: String,
        /// What was fetched (`blob`, `manifest`, `config`).
        object: String,
        /// The digest the content should have.
        expected: Digest,
        /// The digest it had; `None` when reading stopped because it was too long.
        actual: Option<Digest>,
        /// The size the content should have.
        expected_size: u64,
        /// The number of bytes received.
        actual_size: u64,
    },

    /// A manifest or index could not be understood.
    #[error("invalid manifest {object} in {registry}/{repository}: {reason}")]
    InvalidManifest {
        /// Registry host.
        registry: String,
        /// Repository path.
        repository: String,
        /// Tag or digest.
        object: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An index has no manifest for the requested platform.
    #[error("no image for platform {platform} in {reference} (available: {})", list_platforms(available))]
    PlatformNotFound {
        /// The image asked for.
        reference: String,
        /// The platform asked for.
        platform: Platform,
        /// The platforms the index offers.
        available: Vec<Platform>,
    },

    /// The registry answered with an unexpected status.
    #[error(
        "registry {registry} answered {status} to {method} {object} in {repository} after {attempts} \
         attempt(s){}",
        snippet_suffix(body)
    )]
    Http {
        /// Registry host.
        registry: String,
        /// Repository path.
        repository: String,
        /// Tag, digest or upload the request was about.
        object: String,
        /// HTTP method.
        method: String,
        /// HTTP status code.
        status: u16,
        /// How many attempts were made.
        attempts: u32,
        /// The start of the response body (registries put their error code there).
        body: String,
    },

    /// The registry broke the protocol (missing or malformed header, unexpected answer).
    #[error("protocol error from registry {registry} for {repository}: {reason}")]
    Protocol {
        /// Registry host.
        registry: String,
        /// Repository path.
        repository: String,
        /// What was wrong.
        reason: String,
    },

    /// Credentials could not be read (malformed config.json, failing credential helper).
    #[error("cannot read credentials for {registry}: {reason}")]
    Credentials {
        /// Registry host.
        registry: String,
        /// Why (never contains a secret).
        reason: String,
    },

    /// Reading a local blob file or writing to the caller's sink failed.
    #[error("{action}{}: {source}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file, when there is one.
        path: Option<PathBuf>,
        /// The I/O error.
        source: std::io::Error,
    },

    /// The client configuration is unusable (bad CA file, bad mirror address).
    #[error("invalid registry client configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
}

impl RegistryError {
    /// True when the same call may succeed if tried again later (network trouble, 429, 5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Network { .. } => true,
            RegistryError::Http { status, .. } => *status == 429 || (*status >= 500 && *status != 501),
            _ => false,
        }
    }

    /// True for [`RegistryError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, RegistryError::NotFound { .. })
    }
}

fn unauthorized_message(
    registry: &str,
    repository: &str,
    object: &str,
    status: u16,
    reason: AuthFailure,
) -> String {
    let what = if repository.is_empty() {
        format!("{object} (status {status})")
    } else {
        format!("{repository} ({object}, status {status})")
    };
    match reason {
        AuthFailure::NoCredentials => format!(
            "registry {registry} requires authentication for {what} and no credentials are configured for it"
        ),
        AuthFailure::CredentialsRejected => {
            format!("registry {registry} rejected the configured credentials for {what}")
        }
        AuthFailure::Denied => format!("registry {registry} denied access to {what}"),
    }
}

/// A transport error with its causes on one line ("error sending request" alone does not
/// say that the connection was refused or the certificate untrusted).
fn transport_cause(error: &reqwest::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        // `io::Error::source` skips the error it wraps; step into it instead.
        source = match e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner),
            None => e.source(),
        };
    }
    parts.join(": ")
}

fn list_platforms(platforms: &[Platform]) -> String {
    if platforms.is_empty() {
        return "none".to_string();
    }
    platforms.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn snippet_suffix(body: &str) -> String {
    if body.is_empty() { String::new() } else { format!(": {body}") }
}

/// The start of a response body, on one line, safe to show.
pub(crate) fn body_snippet(bytes: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX * 4)]);
    let one_line: String =
        text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_string();
    if one_line.chars().count() > MAX {
        format!("{}...", one_line.chars().take(MAX).collect::<String>())
    } else {
        one_line
    }
}

/// What a request was about, for error messages.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub registry: String,
    pub repository: String,
    pub object: String,
}

impl Target {
    pub fn not_found(&self) -> RegistryError {
        RegistryError::NotFound {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            object: self.object.clone(),
        }
    }

    pub fn unauthorized(&self, status: u16, reason: AuthFailure) -> RegistryError {
        RegistryError::Unauthorized {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            object: self.object.clone(),
            status,
            reason,
        }
    }

    pub fn protocol(&self, reason: impl fmt::Display) -> RegistryError {
        RegistryError::Protocol {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            reason: reason.to_string(),
        }
    }

    pub fn invalid_manifest(&self, reason: impl fmt::Display) -> RegistryError {
        RegistryError::InvalidManifest {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            object: self.object.clone(),
            reason: reason.to_string(),
        }
    }

    pub fn mismatch(
        &self,
        expected: &Digest,
        actual: Option<Digest>,
        expected_size: u64,
        actual_size: u64,
    ) -> RegistryError {
        RegistryError::DigestMismatch {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            object: self.object.clone(),
            expected: expected.clone(),
            actual,
            expected_size,
            actual_size,
        }
    }

    pub fn http(&self, method: &str, status: u16, attempts: u32, body: String) -> RegistryError {
        RegistryError::Http {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            object: self.object.clone(),
            method: method.to_string(),
            status,
            attempts,
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_is_one_bounded_line() {
        assert_eq!(body_snippet(b"{\"errors\":\n[1]}\n"), "{\"errors\": [1]}");
        let long = "x".repeat(1000);
        assert_eq!(body_snippet(long.as_bytes()).len(), 203);
    }

    #[test]
    fn unauthorized_messages_distinguish_missing_from_rejected() {
        let t = Target { registry: "r:5000".into(), repository: "a/b".into(), object: "latest".into() };
        let none = t.unauthorized(401, AuthFailure::NoCredentials).to_string();
        let bad = t.unauthorized(401, AuthFailure::CredentialsRejected).to_string();
        assert!(none.contains("no credentials are configured"), "{none}");
        assert!(bad.contains("rejected the configured credentials"), "{bad}");
        assert!(none.contains("r:5000") && none.contains("a/b") && none.contains("latest"));
    }
}

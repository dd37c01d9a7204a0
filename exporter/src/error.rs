//! The crate-level error.

use crate::archive::ArchiveError;
use crate::compress::CompressionError;
use cache::ContentError;
use registry::Digest;
use std::io;
use std::path::PathBuf;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The request itself is wrong (options that do not go together, a descriptor of the
    /// wrong kind, a destination an output cannot write to).
    #[error("invalid export request: {reason}")]
    InvalidInput {
        /// What is wrong.
        reason: String,
    },
    /// A compression level out of range.
    #[error(transparent)]
    Compression(#[from] CompressionError),
    /// A layer or root file system could not be archived.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The content store failed or lacks a blob ([`ContentError::NotFound`]).
    #[error(transparent)]
    Content(#[from] ContentError),
    /// Writing a compressed blob failed.
    #[error("writing blob: {0}")]
    Blob(#[source] io::Error),
    /// A file-system operation on an output failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The registry refused or failed a push (see [`registry::RegistryError`] for the kinds:
    /// not found, unauthorized, network, ...).
    #[error(transparent)]
    Registry(Box<registry::RegistryError>),
    /// A manifest, index or config in the store does not parse.
    #[error("blob {digest} is not a valid {what}: {source}")]
    BadBlob {
        /// The blob.
        digest: Digest,
        /// What it should have been.
        what: &'static str,
        /// The JSON error.
        source: serde_json::Error,
    },
}

impl ExportError {
    pub(crate) fn invalid(reason: impl Into<String>) -> ExportError {
        ExportError::InvalidInput { reason: reason.into() }
    }
}

//! Deterministic tar archives of directory trees: the walk (sorted, whiteouts, hard links,
//! xattrs), the header encoding and the writer that streams file contents.

mod entry;
mod header;
mod walk;
mod writer;
pub(crate) mod xattr;

pub(crate) use entry::{Entry, Kind};
pub use header::HeaderError;
pub(crate) use walk::{TreeKind, WalkOptions, walk};
pub(crate) use writer::{TarStream, write_prefixed_trees, write_tree};

use std::io;
use std::path::PathBuf;

/// Errors while turning a directory tree into a tar stream.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A file-system operation on the source tree failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done (`lstat`, `read`, ...).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The tree holds something a layer cannot represent faithfully.
    #[error("{}: {reason}", path.display())]
    Unsupported {
        /// The offending path.
        path: PathBuf,
        /// Why it cannot be archived.
        reason: &'static str,
    },
    /// A file's size changed while it was being read, so the archive would be inconsistent.
    #[error("{}: file changed while it was being archived", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// An entry's metadata does not fit a tar header.
    #[error("{}: {source}", path.display())]
    Header {
        /// The entry's source path.
        path: PathBuf,
        /// What does not fit.
        source: HeaderError,
    },
    /// Writing the archive stream failed (disk full, broken pipe, compressor error).
    #[error("writing archive: {0}")]
    Write(#[source] io::Error),
}

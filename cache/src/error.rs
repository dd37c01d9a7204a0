//! The store's error type: the few cases callers act on, each carrying its context.

use crate::content::ContentError;
use crate::import::ImportError;
use crate::layer::LayerId;
use crate::mount::MountError;
use std::io;
use std::path::{Path, PathBuf};

/// Errors of [`crate::Store`], [`crate::Meta`] and the layer operations.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file-system operation inside the store failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`create directory`, `remove layer`, ...).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The metadata database failed (I/O error, corruption, or held by another program).
    #[error("metadata database {path}: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// What redb reported.
        source: Box<redb::Error>,
    },
    /// A record in the metadata database does not decode (written by an incompatible version).
    #[error("metadata record {table}/{key} is unreadable: {source}")]
    CorruptRecord {
        /// The table holding the record.
        table: String,
        /// The record's key.
        key: String,
        /// The decoding error.
        source: serde_json::Error,
    },
    /// The content store failed, or a blob the operation needs is missing.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// A layer blob could not be imported (bad digest, bad tar, unsafe entry).
    #[error(transparent)]
    Import(#[from] ImportError),
    /// Mounting or unmounting a layer chain failed.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// A layer named in a chain or record is not in the store.
    #[error("layer {0} not found in the store")]
    LayerNotFound(LayerId),
    /// The mutable layer is still mounted writable, so it cannot be committed or mounted again.
    #[error("layer {id} is still mounted writable")]
    LayerBusy {
        /// The layer.
        id: LayerId,
    },
    /// This process already has the store at `root` open; a second handle would deadlock on
    /// the store lock.
    #[error("store {root} is already open in this process")]
    AlreadyOpen {
        /// The store root.
        root: PathBuf,
    },
    /// An argument is not acceptable (for example a record naming a blob that is not stored).
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was rejected.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

impl StoreError {
    /// True when the error means "the thing asked for does not exist".
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::LayerNotFound(_) | StoreError::Content(ContentError::NotFound(_)))
    }
}

/// Wraps an `io::Error` with the operation and path it concerns.
pub(crate) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io { op, path: path.to_path_buf(), source }
}

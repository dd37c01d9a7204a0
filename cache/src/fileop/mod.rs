//! File operations on plain directories: `COPY`/`ADD` (with wildcards, include/exclude
//! filters, `--parents`, `--chown`, `--chmod`, archive unpacking), `mkdir`, `mkfile` and `rm`,
//! with BuildKit's semantics (`solver/llbsolver/file` + `tonistiigi/fsutil/copy`).
//!
//! Nothing here mounts anything or knows about layers: the caller hands in the destination
//! directory (typically the upper directory of a fresh overlay) and the source directories
//! (read-only), and [`apply`] runs the actions in order. Every path is interpreted inside its
//! root: symlinks, absolute or with `..`, are resolved as if the root were `/`, so nothing a
//! source or the destination contains can make an action touch the host.
//!
//! Known differences from BuildKit, all deliberate:
//! - Extracting an archive through a symlink that climbs above the extraction root stays
//!   at the root (as the older chroot-based BuildKit did) instead of failing.
//! - A symbolic `--chmod` gives created parent directories the mode applied to 0755; an
//!   octal one gives them its permission bits (BuildKit applies the mode to them too).
//! - `timestamp` sets times exactly; clamping to `SOURCE_DATE_EPOCH` belongs to the exporter.
//! - Hard links are preserved within one source match, as in BuildKit, not across matches.

mod archive;
mod copy;
pub(crate) mod fsops;
mod mode;
mod ops;
mod owner;
pub(crate) mod resolve;
pub(crate) mod select;
pub(crate) mod wildcard;

use crate::patterns::PatternError;
use std::io;
use std::path::{Path, PathBuf};

pub use mode::{Mode, ModeError};

/// A directory files are read from: the build context or another stage's root file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRoot {
    /// The directory on the host.
    pub root: PathBuf,
    /// `.dockerignore`-style patterns (relative to `root`); whatever they match is treated as
    /// absent by every action and by checksums.
    pub excludes: Vec<String>,
    /// True for the local build context: its files are read as owned by 0:0 whatever their
    /// owner on the host is (BuildKit's context transfer does the same), so a copy without
    /// `--chown` gives root-owned files and a checksum does not depend on the host's users.
    pub reset_owner: bool,
}

impl SourceRoot {
    /// A root file system (another stage or an image): owners are kept, nothing is ignored.
    pub fn new(root: impl Into<PathBuf>) -> SourceRoot {
        SourceRoot { root: root.into(), excludes: Vec::new(), reset_owner: false }
    }

    /// The local build context: owners read as 0:0 and `excludes` (from `.dockerignore`)
    /// hide files.
    pub fn context(root: impl Into<PathBuf>, excludes: Vec<String>) -> SourceRoot {
        SourceRoot { root: root.into(), excludes, reset_owner: true }
    }
}

/// The owner given to created files (`--chown`, `mkdir`/`mkfile` owners).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Numeric ids, used as they are.
    Ids {
        /// User id.
        uid: u32,
        /// Group id.
        gid: u32,
    },
    /// A user and optional group, each a name or a number, resolved against the destination
    /// root's `/etc/passwd` and `/etc/group` when the action runs. Without a group, a named
    /// user's primary group is used and a numeric user's number doubles as the group id. A
    /// name that is not found resolves to 0, as in BuildKit.
    Names {
        /// User name or number.
        user: String,
        /// Group name or number.
        group: Option<String>,
    },
}

/// One file operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileAction {
    /// Create a directory.
    Mkdir {
        /// Absolute path inside the destination.
        path: String,
        /// Permission bits (the low 12 bits are used; the umask does not apply).
        mode: u32,
        /// Create missing parents too (each gets `mode`, `owner` and `timestamp`).
        make_parents: bool,
        /// Owner of the created directories; root when `None`.
        owner: Option<Owner>,
        /// Modification and access time in seconds since the epoch; now when `None`.
        timestamp: Option<i64>,
    },
    /// Create or replace a regular file. Its parent must exist.
    Mkfile {
        /// Absolute path inside the destination.
        path: String,
        /// Permission bits.
        mode: u32,
        /// Contents.
        data: Vec<u8>,
        /// Owner; root when `None`.
        owner: Option<Owner>,
        /// Modification and access time in seconds since the epoch; now when `None`.
        timestamp: Option<i64>,
    },
    /// Remove a path (recursively).
    Rm {
        /// Absolute path inside the destination; the last component is not followed.
        path: String,
        /// Succeed when the path does not exist.
        allow_not_found: bool,
        /// Treat `path` as a wildcard pattern and remove every match.
        allow_wildcard: bool,
    },
    /// Copy from a source (COPY and ADD).
    Copy(CopyAction),
}

/// A copy from one of the sources into the destination (BuildKit's `FileActionCopy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyAction {
    /// Index into the `sources` given to [`apply`].
    pub source: usize,
    /// Path inside the source (`.` or `/` is the whole root); may contain wildcards when
    /// `allow_wildcard` is set. With `parents`, the part after a `/./` pivot (or the whole
    /// path without one) is recreated under `dest`.
    pub src: String,
    /// Absolute path inside the destination (the caller resolves it against WORKDIR). A
    /// trailing `/` means "into this directory", creating it.
    pub dest: String,
    /// Owner of everything copied and of the directories the copy creates; without it,
    /// files keep their source owner (0:0 for the build context).
    pub owner: Option<Owner>,
    /// Permission override for everything copied and for created parent directories.
    pub mode: Option<Mode>,
    /// Follow a symlink named by `src` (or by each wildcard match); links inside copied
    /// trees are always copied as links.
    pub follow_symlinks: bool,
    /// When `src` is a directory, copy its contents rather than the directory itself
    /// (always set for Dockerfile COPY/ADD).
    pub dir_copy_contents: bool,
    /// ADD: when a source file is a tar archive (plain, gzip, bzip2, xz or zstd, detected by
    /// content), extract it into `dest` instead of copying it.
    pub attempt_unpack: bool,
    /// Create missing parents of `dest`; otherwise the parent must exist.
    pub create_dest_path: bool,
    /// Expand wildcards (`*`, `?`, `[...]`) in `src`.
    pub allow_wildcard: bool,
    /// A wildcard that matches nothing is not an error.
    pub allow_empty_wildcard: bool,
    /// Only copy entries (relative to the copied source) matching one of these patterns.
    pub include_patterns: Vec<String>,
    /// Do not copy entries (relative to the copied source) matching these patterns.
    pub exclude_patterns: Vec<String>,
    /// `COPY --parents`: keep the source path's directories under `dest`.
    pub parents: bool,
    /// Replace an existing destination entry of a different type (a directory replaces a
    /// file or symlink, and the other way round) instead of failing.
    pub always_replace_existing: bool,
    /// Set every copied or created entry's modification and access time to this many
    /// seconds since the epoch instead of keeping the source times.
    pub timestamp: Option<i64>,
}

impl CopyAction {
    /// A Dockerfile-style copy of `src` from source `source` to `dest`: follows the named
    /// symlink, copies directory contents, expands wildcards (an empty match is allowed, as
    /// in BuildKit's Dockerfile frontend) and creates the destination's parents.
    pub fn new(source: usize, src: impl Into<String>, dest: impl Into<String>) -> CopyAction {
        CopyAction {
            source,
            src: src.into(),
            dest: dest.into(),
            owner: None,
            mode: None,
            follow_symlinks: true,
            dir_copy_contents: true,
            attempt_unpack: false,
            create_dest_path: true,
            allow_wildcard: true,
            allow_empty_wildcard: true,
            include_patterns: Vec::new(),
            exclude_patterns: Vec::new(),
            parents: false,
            always_replace_existing: false,
            timestamp: None,
        }
    }

    /// The selection of source files this copy reads, for its content checksum (the cache
    /// key must cover exactly what the copy reads).
    pub fn selector(&self) -> crate::checksum::Selector {
        let plan = copy::SourcePlan::of(self);
        crate::checksum::Selector {
            path: plan.src,
            follow_symlinks: self.follow_symlinks,
            include_patterns: plan.include_patterns,
            exclude_patterns: self.exclude_patterns.clone(),
            allow_wildcard: self.allow_wildcard,
        }
    }
}

/// Why a file operation failed. Paths are shown as they are inside their root.
#[derive(Debug, thiserror::Error)]
pub enum FileOpError {
    /// A source path (or every match of a wildcard that must match) does not exist.
    #[error("{path:?}: not found")]
    NotFound {
        /// The path inside its root.
        path: String,
    },
    /// `source` in a copy is not an index into the sources.
    #[error("copy source {index} does not exist ({count} sources given)")]
    NoSuchSource {
        /// The index asked for.
        index: usize,
        /// How many sources there are.
        count: usize,
    },
    /// An existing destination entry has a type that the operation cannot replace.
    #[error("{path}: {reason}")]
    Conflict {
        /// The destination path inside its root.
        path: String,
        /// What is wrong, e.g. "cannot replace directory with file".
        reason: &'static str,
    },
    /// A path is not usable (empty, the root where a file is needed, outside the root).
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// Symlinks nest too deep (or loop).
    #[error("{path}: too many levels of symbolic links")]
    SymlinkLoop {
        /// The path being resolved.
        path: String,
    },
    /// A `--chmod` value is not usable.
    #[error(transparent)]
    Mode(#[from] ModeError),
    /// An include, exclude or ignore pattern is malformed.
    #[error("invalid pattern: {0}")]
    Pattern(#[from] PatternError),
    /// An archive could not be extracted.
    #[error("extracting {archive}: {reason}")]
    Archive {
        /// The archive's path inside its source.
        archive: String,
        /// What went wrong.
        reason: String,
    },
    /// A file-system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation, e.g. "copy" or "mkdir".
        op: &'static str,
        /// The path inside its root.
        path: String,
        /// The OS error.
        source: io::Error,
    },
}

/// Runs `actions` in order on `dest_root`, reading copies from `sources`.
///
/// Synchronous and not cancellable: it returns when every action ran or at the first
/// failure, which leaves the actions before it (and part of the failing one) applied, so a
/// caller discards `dest_root` on error. Concurrent calls on different destinations are
/// safe; sources are only read.
pub fn apply(dest_root: &Path, sources: &[SourceRoot], actions: &[FileAction]) -> Result<(), FileOpError> {
    let dest = resolve::Root::new(dest_root);
    for action in actions {
        match action {
            FileAction::Mkdir { path, mode, make_parents, owner, timestamp } => {
                let owner = owner::resolve_owner(&dest, owner.as_ref())?;
                ops::mkdir(&dest, path, *mode, *make_parents, owner, *timestamp)?;
            }
            FileAction::Mkfile { path, mode, data, owner, timestamp } => {
                let owner = owner::resolve_owner(&dest, owner.as_ref())?;
                ops::mkfile(&dest, path, *mode, data, owner, *timestamp)?;
            }
            FileAction::Rm { path, allow_not_found, allow_wildcard } => {
                ops::rm(&dest, path, *allow_not_found, *allow_wildcard)?;
            }
            FileAction::Copy(copy) => {
                let source = sources
                    .get(copy.source)
                    .ok_or(FileOpError::NoSuchSource { index: copy.source, count: sources.len() })?;
                let owner = owner::resolve_owner(&dest, copy.owner.as_ref())?;
                copy::copy(&dest, source, copy, owner)?;
            }
        }
    }
    Ok(())
}

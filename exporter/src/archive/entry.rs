//! One tar entry as rbuild writes it: a path relative to the archive root and the metadata
//! that goes into its header.

use std::path::PathBuf;

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file whose content is read from `source` (`None`: empty, e.g. whiteouts).
    File { size: u64, source: Option<PathBuf> },
    /// A directory.
    Dir,
    /// A symbolic link to the target bytes.
    Symlink(Vec<u8>),
    /// A hard link to an earlier entry's path.
    HardLink(Vec<u8>),
    /// A character device.
    Char { major: u64, minor: u64 },
    /// A block device.
    Block { major: u64, minor: u64 },
    /// A named pipe.
    Fifo,
}

/// A tar entry. Paths are raw bytes (Linux names need not be UTF-8), relative, without a
/// leading `./` or `/` and without the trailing `/` that directories get in the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub path: Vec<u8>,
    pub kind: Kind,
    /// Permission bits plus setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds of the mtime; not archived (tar keeps whole seconds) but used when
    /// copying a tree to a directory.
    pub mtime_nsec: u32,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    /// Content length written after the header.
    pub fn size(&self) -> u64 {
        match self.kind {
            Kind::File { size, .. } => size,
            _ => 0,
        }
    }

    /// The `linkname` field: symlink target or hard-link source.
    pub fn link_target(&self) -> Option<&[u8]> {
        match &self.kind {
            Kind::Symlink(t) | Kind::HardLink(t) => Some(t),
            _ => None,
        }
    }

    /// The USTAR type flag.
    pub fn typeflag(&self) -> u8 {
        match self.kind {
            Kind::File { .. } => b'0',
            Kind::HardLink(_) => b'1',
            Kind::Symlink(_) => b'2',
            Kind::Char { .. } => b'3',
            Kind::Block { .. } => b'4',
            Kind::Dir => b'5',
            Kind::Fifo => b'6',
        }
    }
}

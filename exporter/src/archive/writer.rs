//! Streaming a walked tree into a tar byte stream.

use super::ArchiveError;
use super::entry::{Entry, Kind};
use super::header::{self, BLOCK};
use super::walk::{WalkOptions, walk};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const COPY_BUF: usize = 256 * 1024;

/// Writes the tar archive of the tree at `root` into `out` and returns `out`.
/// Ends with the two zero blocks of a tar end marker (no further record padding, like Go's
/// archive/tar, so digests match what containerd-based builders produce for equal input).
pub(crate) fn write_tree<W: Write>(root: &Path, opts: &WalkOptions, mut out: W) -> Result<W, ArchiveError> {
    let mut buf = vec![0u8; COPY_BUF];
    walk(root, opts, &mut |entry| append(&mut out, entry, &mut buf))?;
    out.write_all(&[0u8; BLOCK * 2]).map_err(ArchiveError::Write)?;
    out.flush().map_err(ArchiveError::Write)?;
    Ok(out)
}

/// Writes one tar archive holding each `(prefix, root)` tree under its `prefix/` directory
/// (BuildKit's tar output of several platforms: `linux_amd64/...`, `linux_arm64/...`).
pub(crate) fn write_prefixed_trees<W: Write>(
    trees: &[(String, PathBuf)],
    opts: &WalkOptions,
    mut out: W,
) -> Result<W, ArchiveError> {
    let mut buf = vec![0u8; COPY_BUF];
    let with_prefix = |prefix: &str, path: &[u8]| -> Vec<u8> {
        if path.is_empty() { prefix.as_bytes().to_vec() } else { [prefix.as_bytes(), b"/", path].concat() }
    };
    for (prefix, root) in trees {
        let dir_meta = std::fs::metadata(root).map_err(|source| ArchiveError::Io {
            op: "stat",
            path: root.clone(),
            source,
        })?;
        let top = Entry {
            path: prefix.as_bytes().to_vec(),
            kind: Kind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: std::os::unix::fs::MetadataExt::mtime(&dir_meta),
            mtime_nsec: 0,
            xattrs: Vec::new(),
        };
        append(&mut out, &top, &mut buf)?;
        walk(root, opts, &mut |entry| {
            let mut entry = entry.clone();
            entry.path = with_prefix(prefix, &entry.path);
            if let Kind::HardLink(target) = &entry.kind {
                entry.kind = Kind::HardLink(with_prefix(prefix, target));
            }
            append(&mut out, &entry, &mut buf)
        })?;
    }
    out.write_all(&[0u8; BLOCK * 2]).map_err(ArchiveError::Write)?;
    out.flush().map_err(ArchiveError::Write)?;
    Ok(out)
}

fn append<W: Write>(out: &mut W, entry: &Entry, buf: &mut [u8]) -> Result<(), ArchiveError> {
    let source = match &entry.kind {
        Kind::File { source, .. } => source.as_deref(),
        _ => None,
    };
    let hdr = header::encode(entry).map_err(|source| ArchiveError::Header {
        path: PathBuf::from(OsStr::from_bytes(&entry.path)),
        source,
    })?;
    // Open before writing the header so that a vanished file fails cleanly.
    let file = match (source, entry.size()) {
        (Some(p), n) if n > 0 => Some(open_nofollow(p)?),
        _ => None,
    };
    out.write_all(&hdr).map_err(ArchiveError::Write)?;
    if let (Some(mut file), Some(path)) = (file, source) {
        copy_exact(&mut file, out, entry.size(), path, buf)?;
        let pad = header::padding(entry.size());
        out.write_all(&[0u8; BLOCK][..pad]).map_err(ArchiveError::Write)?;
    }
    Ok(())
}

fn open_nofollow(path: &Path) -> Result<File, ArchiveError> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| ArchiveError::Io { op: "open", path: path.to_path_buf(), source: e.into() })?;
    Ok(File::from(fd))
}

/// Copies exactly `size` bytes; a file that shrank or grew since it was stat'ed is an error
/// rather than a silently inconsistent header.
fn copy_exact<W: Write>(
    file: &mut File,
    out: &mut W,
    size: u64,
    path: &Path,
    buf: &mut [u8],
) -> Result<(), ArchiveError> {
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = read_retry(file, &mut buf[..want], path)?;
        if n == 0 {
            return Err(ArchiveError::Changed { path: path.to_path_buf() });
        }
        out.write_all(&buf[..n]).map_err(ArchiveError::Write)?;
        left -= n as u64;
    }
    if read_retry(file, &mut buf[..1], path)? != 0 {
        return Err(ArchiveError::Changed { path: path.to_path_buf() });
    }
    Ok(())
}

fn read_retry(file: &mut File, buf: &mut [u8], path: &Path) -> Result<usize, ArchiveError> {
    loop {
        match file.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(ArchiveError::Io { op: "read", path: path.to_path_buf(), source }),
        }
    }
}

/// A tar stream assembled entry by entry (for OCI layouts and docker archives), with the
/// same fixed metadata conventions as layers: numeric root ownership, mtime 0.
pub(crate) struct TarStream<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> TarStream<W> {
    /// Starts an archive written to `out`.
    pub fn new(out: W) -> TarStream<W> {
        TarStream { out, buf: vec![0u8; COPY_BUF] }
    }

    /// Adds a directory entry (mode 0755).
    pub fn dir(&mut self, path: &str) -> Result<(), ArchiveError> {
        let entry = fixed_entry(path, Kind::Dir, 0o755);
        append(&mut self.out, &entry, &mut self.buf)
    }

    /// Adds a regular file of `size` bytes read from `content`.
    pub fn file(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        content: &mut dyn Read,
    ) -> Result<(), ArchiveError> {
        let entry = fixed_entry(path, Kind::File { size, source: None }, mode);
        let hdr = header::encode(&entry)
            .map_err(|source| ArchiveError::Header { path: PathBuf::from(path), source })?;
        self.out.write_all(&hdr).map_err(ArchiveError::Write)?;
        let mut left = size;
        while left > 0 {
            let want = self.buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match content.read(&mut self.buf[..want]) {
                Ok(0) => return Err(ArchiveError::Changed { path: PathBuf::from(path) }),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ArchiveError::Io { op: "read", path: PathBuf::from(path), source });
                }
            };
            self.out.write_all(&self.buf[..n]).map_err(ArchiveError::Write)?;
            left -= n as u64;
        }
        let pad = header::padding(size);
        self.out.write_all(&[0u8; BLOCK][..pad]).map_err(ArchiveError::Write)
    }

    /// Writes the end-of-archive marker and returns the writer.
    pub fn finish(mut self) -> Result<W, ArchiveError> {
        self.out.write_all(&[0u8; BLOCK * 2]).map_err(ArchiveError::Write)?;
        self.out.flush().map_err(ArchiveError::Write)?;
        Ok(self.out)
    }
}

fn fixed_entry(path: &str, kind: Kind, mode: u32) -> Entry {
    Entry {
        path: path.trim_end_matches('/').as_bytes().to_vec(),
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime: 0,
        mtime_nsec: 0,
        xattrs: Vec::new(),
    }
}

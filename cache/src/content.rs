//! The content store: immutable blobs named by their sha256 digest, laid out like an OCI
//! image layout (`blobs/sha256/<hex>`).
//!
//! A blob is written to a temporary file beside its final place, fsynced, checked against
//! the expected digest and renamed into place; a reader never sees a partial or wrong blob.
//! Concurrent writers of the same blob are safe: the rename is atomic and both contents are
//! identical by construction.

use registry::{Digest, Hasher};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Errors of the content store.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// The bytes written do not hash to the digest they were announced with.
    #[error("blob digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the caller announced.
        expected: Digest,
        /// The digest of what was written.
        actual: Digest,
    },
    /// The blob is not in the store.
    #[error("blob {0} not found in the content store")]
    NotFound(Digest),
    /// A file-system operation failed.
    #[error("content store {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ContentError + '_ {
    move |source| ContentError::Io { path: path.to_path_buf(), source }
}

/// Blobs by digest under `<root>/blobs/sha256/`.
#[derive(Clone, Debug)]
pub struct ContentStore {
    dir: PathBuf,
    tmp: PathBuf,
}

impl ContentStore {
    /// Opens (creating if needed) the content store under `root`.
    pub fn open(root: &Path) -> Result<ContentStore, ContentError> {
        let dir = root.join("blobs").join("sha256");
        let tmp = root.join("blobs").join("tmp");
        for d in [&dir, &tmp] {
            fs::create_dir_all(d).map_err(io_err(d))?;
        }
        Ok(ContentStore { dir, tmp })
    }

    /// Where the blob `digest` lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    /// True when the blob is present.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Size in bytes of a stored blob.
    pub fn size(&self, digest: &Digest) -> Result<u64, ContentError> {
        let path = self.path(digest);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ContentError::NotFound(digest.clone())),
            Err(e) => Err(ContentError::Io { path, source: e }),
        }
    }

    /// Reads a whole blob into memory (for manifests and configs, not layers).
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, ContentError> {
        let path = self.path(digest);
        match fs::read(&path) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ContentError::NotFound(digest.clone())),
            Err(e) => Err(ContentError::Io { path, source: e }),
        }
    }

    /// Opens a stored blob for streaming reads.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, ContentError> {
        let path = self.path(digest);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ContentError::NotFound(digest.clone()),
            _ => ContentError::Io { path, source: e },
        })
    }

    /// Stores `bytes` and returns their digest.
    pub fn write_bytes(&self, bytes: &[u8]) -> Result<Digest, ContentError> {
        let digest = Digest::of_bytes(bytes);
        if self.contains(&digest) {
            return Ok(digest);
        }
        let mut w = self.writer()?;
        w.write_all(bytes).map_err(io_err(w.tmp_path()))?;
        w.commit(Some(&digest))
    }

    /// Starts writing a new blob. Nothing is visible until [`BlobWriter::commit`]; dropping
    /// the writer removes the temporary file.
    pub fn writer(&self) -> Result<BlobWriter, ContentError> {
        let file =
            tempfile::Builder::new().prefix("ingest-").tempfile_in(&self.tmp).map_err(io_err(&self.tmp))?;
        Ok(BlobWriter { file: Some(file), hasher: Hasher::new(), dir: self.dir.clone() })
    }

    /// Removes a blob (used by garbage collection). Missing blobs are not an error.
    pub fn remove(&self, digest: &Digest) -> Result<(), ContentError> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ContentError::Io { path, source: e }),
        }
    }

    /// Digests of all stored blobs.
    pub fn list(&self) -> Result<Vec<Digest>, ContentError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            if let Some(d) = entry.file_name().to_str().and_then(|n| format!("sha256:{n}").parse().ok()) {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }
}

/// A blob being written: hashes what passes through and lands atomically on commit.
///
/// Implements [`std::io::Write`] and [`tokio::io::AsyncWrite`] (the async form writes
/// synchronously: local file writes of network-sized chunks do not block for long).
pub struct BlobWriter {
    file: Option<tempfile::NamedTempFile>,
    hasher: Hasher,
    dir: PathBuf,
}

impl BlobWriter {
    fn tmp_path(&self) -> &Path {
        self.file.as_ref().map_or(Path::new(""), |f| f.path())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    /// True when nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    /// Digest of what was written so far, without finishing.
    pub fn current_digest(&self) -> Digest {
        self.hasher.clone().finish()
    }

    /// Finishes the blob: fsyncs, checks `expected` (when given) and renames it into place.
    /// On a mismatch the temporary file is removed and nothing is stored.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<Digest, ContentError> {
        let file = self.file.take().expect("BlobWriter committed twice");
        let written = self.hasher.len();
        let actual = std::mem::take(&mut self.hasher).finish();
        if let Some(expected) = expected
            && *expected != actual
        {
            return Err(ContentError::DigestMismatch { expected: expected.clone(), actual });
        }
        let dest = self.dir.join(actual.hex());
        if std::fs::metadata(&dest).is_ok_and(|m| m.len() == written) {
            // Already stored (identical layers, such as the empty one of every `RUN` that
            // changes nothing): the temporary file is dropped without a flush.
            return Ok(actual);
        }
        let tmp = file.path().to_path_buf();
        file.as_file().sync_all().map_err(io_err(&tmp))?;
        file.persist(&dest).map_err(|e| ContentError::Io { path: dest.clone(), source: e.error })?;
        Ok(actual)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.as_mut().expect("write after commit").write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("flush after commit").flush()
    }
}

impl tokio::io::AsyncWrite for BlobWriter {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(self.get_mut().write(buf))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.get_mut().flush())
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Copies a stored blob into any writer (used by exporters).
pub fn copy_blob(store: &ContentStore, digest: &Digest, out: &mut dyn Write) -> Result<u64, ContentError> {
    let mut f = store.open_blob(digest)?;
    let path = store.path(digest);
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io_err(&path))?;
        if n == 0 {
            return Ok(total);
        }
        out.write_all(&buf[..n]).map_err(io_err(&path))?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_commit_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(dir.path()).unwrap();
        let d = cs.write_bytes(b"hello").unwrap();
        assert_eq!(d, Digest::of_bytes(b"hello"));
        assert_eq!(cs.read(&d).unwrap(), b"hello");
        assert_eq!(cs.size(&d).unwrap(), 5);
        assert_eq!(cs.list().unwrap(), vec![d]);
    }

    #[test]
    fn mismatch_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(dir.path()).unwrap();
        let mut w = cs.writer().unwrap();
        w.write_all(b"actual").unwrap();
        let wrong = Digest::of_bytes(b"expected");
        assert!(matches!(w.commit(Some(&wrong)), Err(ContentError::DigestMismatch { .. })));
        assert!(cs.list().unwrap().is_empty());
        assert_eq!(fs::read_dir(dir.path().join("blobs/tmp")).unwrap().count(), 0);
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(dir.path()).unwrap();
        let mut w = cs.writer().unwrap();
        w.write_all(b"partial").unwrap();
        drop(w);
        assert_eq!(fs::read_dir(dir.path().join("blobs/tmp")).unwrap().count(), 0);
        assert!(matches!(cs.read(&Digest::of_bytes(b"partial")), Err(ContentError::NotFound(_))));
    }
}

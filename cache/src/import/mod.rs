//! Importing layer blobs (pulled image layers) as store layers.
//!
//! The blob is read from the content store once, as a stream: its compressed digest and
//! size, and the digest of the uncompressed tar (the diff id), are computed while the tar
//! is applied. Any mismatch discards the half-written layer; nothing is recorded.

mod lookup;
mod unpack;

use crate::error::StoreError;
use crate::layer::LayerId;
use crate::meta::LayerBlob;
use crate::store::Store;
use registry::{Compression, Descriptor, Digest, Hasher};
use std::io::{self, BufReader, Read};

/// Why a layer blob could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The descriptor's media type is not a layer type.
    #[error("blob {digest} has media type {media_type}, which is not a layer")]
    NotALayer {
        /// The blob.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// The stored bytes do not match the descriptor.
    #[error("layer blob {digest}: stored content is {actual} ({size} bytes), expected {expected_size} bytes")]
    BlobMismatch {
        /// The descriptor's digest.
        digest: Digest,
        /// The digest of the stored bytes.
        actual: Digest,
        /// The stored size.
        size: u64,
        /// The descriptor's size.
        expected_size: u64,
    },
    /// The uncompressed content does not hash to the expected diff id.
    #[error("layer blob {digest}: uncompressed content is {actual}, expected diff id {expected}")]
    DiffIdMismatch {
        /// The blob.
        digest: Digest,
        /// The diff id the caller expected (from the image config).
        expected: Digest,
        /// The digest of the uncompressed stream.
        actual: Digest,
    },
    /// Decompressing or reading the tar stream failed (a corrupt or truncated blob).
    #[error("layer blob {digest}: {source}")]
    Read {
        /// The blob.
        digest: Digest,
        /// The read error.
        source: io::Error,
    },
    /// A tar entry is not acceptable (unsafe or unsupported).
    #[error("layer blob {digest}: entry {entry:?}: {reason}")]
    InvalidEntry {
        /// The blob.
        digest: Digest,
        /// The entry name as in the tar.
        entry: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Writing an entry into the layer failed.
    #[error("layer blob {digest}: entry {entry:?}: {op} {path}: {source}")]
    Write {
        /// The blob.
        digest: Digest,
        /// The entry name as in the tar.
        entry: String,
        /// What was being done.
        op: &'static str,
        /// The file involved.
        path: std::path::PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl Store {
    /// Unpacks the layer blob `blob` (gzip, zstd or plain tar, per its media type; the blob
    /// must be in the content store) on top of the chain `parent` (base first) and commits
    /// it as a new layer.
    ///
    /// OCI whiteouts become overlay whiteouts (`.wh.x` → 0:0 character device,
    /// `.wh..wh..opq` → opaque xattr); hard links to files of lower layers copy those files
    /// up first. Entry names cannot leave the layer (`..` is clamped at the root, absolute
    /// names are taken relative to it, symlinks are resolved inside the layer). The
    /// uncompressed stream must hash to `diff_id`, and the stored bytes to the descriptor;
    /// on any error nothing is left behind. The blob and diff id are recorded on the layer.
    ///
    /// Importing the same diff id on the same parent chain again returns the first layer.
    pub fn import_layer(
        &self,
        parent: &[LayerId],
        blob: &Descriptor,
        diff_id: &Digest,
    ) -> Result<LayerId, StoreError> {
        let compression = blob.media_type.layer_compression().ok_or_else(|| ImportError::NotALayer {
            digest: blob.digest.clone(),
            media_type: blob.media_type.to_string(),
        })?;
        self.inner.check_chain(parent)?;
        let key = import_key(parent, diff_id);
        let layer_blob = LayerBlob { compression, descriptor: blob.clone(), diff_id: diff_id.clone() };
        if let Some(id) = self.meta().imported_layer(&key)? {
            let known = self
                .meta()
                .layer(&id)?
                .is_some_and(|r| r.blobs.iter().any(|b| b.descriptor.digest == blob.digest));
            if !known {
                // Another blob of content already imported: check it really holds that
                // content before recording it as an exportable form of the layer.
                let actual = self.read_layer_blob(blob, compression, |_| Ok(()))?;
                check_diff_id(blob, diff_id, actual)?;
                self.meta().set_layer_blob(&id, layer_blob)?;
            }
            self.inner.pins.note_used(std::slice::from_ref(&id), &[]);
            return Ok(id);
        }

        let layer = self.new_layer()?;
        let lowers = self.lower_dirs(parent);
        let actual = self.read_layer_blob(blob, compression, |tar| {
            unpack::apply_tar(tar, layer.diff_dir(), &lowers, &blob.digest)
        })?;
        check_diff_id(blob, diff_id, actual)?;
        layer.commit_record(
            |rec| {
                rec.diff_id = Some(diff_id.clone());
                rec.blobs.push(layer_blob);
            },
            Some(&key),
        )
    }

    /// Streams the stored blob through its decompressor into `consume`, checking the stored
    /// bytes against the descriptor, and returns the digest of the whole uncompressed
    /// stream (including what `consume` left unread, such as the tar's trailing padding).
    fn read_layer_blob(
        &self,
        blob: &Descriptor,
        compression: Compression,
        consume: impl FnOnce(&mut dyn Read) -> Result<(), StoreError>,
    ) -> Result<Digest, StoreError> {
        let read_err = |source| ImportError::Read { digest: blob.digest.clone(), source };
        let file = self.content().open_blob(&blob.digest)?;
        let mut packed = HashingReader::new(file);
        let diff_id = {
            let buffered = BufReader::with_capacity(256 * 1024, &mut packed);
            let decoder: Box<dyn Read> = match compression {
                Compression::Uncompressed => Box::new(buffered),
                Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
                Compression::Zstd => {
                    Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(read_err)?)
                }
            };
            let mut tar_stream = HashingReader::new(decoder);
            consume(&mut tar_stream)?;
            io::copy(&mut tar_stream, &mut io::sink()).map_err(read_err)?;
            tar_stream.hasher.finish()
        };
        io::copy(&mut packed, &mut io::sink()).map_err(read_err)?;
        let size = packed.hasher.len();
        let actual = packed.hasher.finish();
        if actual != blob.digest || size != blob.size {
            return Err(ImportError::BlobMismatch {
                digest: blob.digest.clone(),
                actual,
                size,
                expected_size: blob.size,
            }
            .into());
        }
        Ok(diff_id)
    }
}

fn check_diff_id(blob: &Descriptor, expected: &Digest, actual: Digest) -> Result<(), StoreError> {
    if actual == *expected {
        return Ok(());
    }
    Err(ImportError::DiffIdMismatch { digest: blob.digest.clone(), expected: expected.clone(), actual }
        .into())
}

/// The key under which an import of `diff_id` on `parent` is remembered.
fn import_key(parent: &[LayerId], diff_id: &Digest) -> String {
    let mut h = Hasher::new();
    for id in parent {
        h.update(id.as_str().as_bytes());
        h.update(b"/");
    }
    h.update(diff_id.as_str().as_bytes());
    h.finish().to_string()
}

/// Hashes everything read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Hasher::new() }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

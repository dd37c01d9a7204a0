//! Turning a layer directory (overlayfs upperdir) into a compressed layer blob in the
//! content store, and re-compressing existing layer blobs.

use crate::ExportError;
use crate::archive::{self, TreeKind, WalkOptions};
use crate::compress::{LayerSink, StreamSummary, effective_level};
use cache::{BlobWriter, ContentStore};
use registry::{Compression, Descriptor, Digest, MediaType};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::Path;

/// How to write a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerOptions {
    /// Blob compression.
    pub compression: Compression,
    /// Compression level; `None` for the algorithm's default (gzip 6, zstd 3).
    pub level: Option<u32>,
    /// OCI (`application/vnd.oci.image.layer.v1.tar+gzip`) or Docker layer media types.
    /// zstd has only an OCI media type and always gets it.
    pub oci_media_types: bool,
    /// Clamp file mtimes to this many seconds since the epoch (BuildKit's
    /// `rewrite-timestamp` with `SOURCE_DATE_EPOCH`).
    pub source_date_epoch: Option<i64>,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            compression: Compression::Gzip,
            level: None,
            oci_media_types: true,
            source_date_epoch: None,
        }
    }
}

/// A layer blob written to the content store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportedLayer {
    /// sha256 of the uncompressed tar (what the image config's `rootfs.diff_ids` lists).
    pub diff_id: Digest,
    /// The compressed blob, stored in the content store.
    pub blob: Descriptor,
}

/// Writes the layer tar of `diff_dir` (deterministic: the same tree gives the same bytes)
/// into the store, compressing with all cores for gzip.
///
/// `diff_dir` is an overlayfs upperdir: character devices 0:0 become `.wh.<name>` whiteouts
/// and directories marked `trusted.overlay.opaque=y` get a `.wh..wh..opq` entry.
pub fn export_layer(
    store: &ContentStore,
    diff_dir: &Path,
    opts: &LayerOptions,
) -> Result<ExportedLayer, ExportError> {
    export_layer_with_threads(store, diff_dir, opts, 0)
}

/// [`export_layer`] with an explicit number of compression threads (0: one per core).
/// The bytes written do not depend on `threads`.
pub fn export_layer_with_threads(
    store: &ContentStore,
    diff_dir: &Path,
    opts: &LayerOptions,
    threads: usize,
) -> Result<ExportedLayer, ExportError> {
    let walk = WalkOptions { kind: TreeKind::Layer, source_date_epoch: opts.source_date_epoch };
    write_blob(store, opts, threads, |sink| {
        archive::write_tree(diff_dir, &walk, sink).map(drop).map_err(ExportError::from)
    })
}

/// Re-compresses an existing layer blob with `opts` (for `force-compression`): the tar
/// inside is unchanged, so the diff ID stays the same. A blob that already has the wanted
/// compression is returned as is (with the media type family of `opts`).
pub fn recompress_layer(
    store: &ContentStore,
    blob: &Descriptor,
    opts: &LayerOptions,
) -> Result<ExportedLayer, ExportError> {
    let Some(current) = blob.media_type.layer_compression() else {
        return Err(ExportError::InvalidInput {
            reason: format!("{} is not a layer media type", blob.media_type),
        });
    };
    effective_level(opts.compression, opts.level)?;
    let file = store.open_blob(&blob.digest)?;
    let reader: Box<dyn Read> = match current {
        Compression::Uncompressed => Box::new(io::BufReader::new(file)),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(file))),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(file).map_err(|source| {
            ExportError::Io { op: "decompress", path: store.path(&blob.digest), source }
        })?),
    };
    let path = store.path(&blob.digest);
    if current == opts.compression {
        // Same bytes, maybe another media type family: only the diff ID is needed.
        let mut hasher = registry::Hasher::new();
        copy(reader, &mut hasher, &path)?;
        let mut desc = blob.clone();
        desc.media_type = MediaType::layer(opts.compression, opts.oci_media_types);
        return Ok(ExportedLayer { diff_id: hasher.finish(), blob: desc });
    }
    write_blob(store, opts, 0, |sink| copy(reader, sink, &path))
}

fn copy(mut reader: Box<dyn Read>, out: &mut dyn Write, path: &Path) -> Result<(), ExportError> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(ExportError::Io { op: "decompress", path: path.to_path_buf(), source });
            }
        };
        out.write_all(&buf[..n]).map_err(|source| ExportError::Io {
            op: "compress",
            path: path.to_path_buf(),
            source,
        })?;
    }
}

/// Streams what `produce` writes through the compressor into a new blob.
fn write_blob(
    store: &ContentStore,
    opts: &LayerOptions,
    threads: usize,
    produce: impl FnOnce(&mut LayerSink<BlobWriter>) -> Result<(), ExportError>,
) -> Result<ExportedLayer, ExportError> {
    let level = effective_level(opts.compression, opts.level)?;
    let writer = store.writer()?;
    let mut sink = LayerSink::new(writer, opts.compression, level, threads).map_err(ExportError::Blob)?;
    produce(&mut sink)?;
    let (writer, StreamSummary { uncompressed_digest, .. }) = sink.finish().map_err(ExportError::Blob)?;
    let size = writer.len();
    let digest = writer.commit(None)?;
    Ok(ExportedLayer {
        diff_id: uncompressed_digest,
        blob: Descriptor {
            media_type: MediaType::layer(opts.compression, opts.oci_media_types),
            digest,
            size,
            platform: None,
            annotations: BTreeMap::new(),
        },
    })
}

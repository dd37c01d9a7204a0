//! The exporter: turns build results into images and files.
//!
//! Owns: layer tars of snapshot directories (deterministic order and metadata, whiteouts,
//! hard links, xattrs, `SOURCE_DATE_EPOCH` clamping), their compression (parallel gzip,
//! zstd), image config/manifest/index assembly, and the outputs: OCI layout (dir or tar),
//! docker-archive tarball, local directory, root file-system tar, and push to a registry.
//! Must not: talk to the network except through the `registry` crate.
//!
//! Entry points: [`export_layer`] for each layer, [`write_image`] / [`write_index`] to
//! assemble, then one of [`write_oci_archive`], [`write_docker_archive`], [`write_local`],
//! [`write_rootfs_tar`] or [`push_image`] as the [`Output`] asks.

mod archive;
mod compress;
mod epoch;
mod error;
mod image;
mod layer;
mod layout;
mod local;
mod output;
mod push;
mod squash;

pub use archive::{ArchiveError, HeaderError};
pub use compress::{
    CompressionError, GZIP_BLOCK_SIZE, GZIP_DEFAULT_LEVEL, ParallelGzip, StreamSummary, ZSTD_DEFAULT_LEVEL,
    effective_level,
};
pub use epoch::apply_source_date_epoch;
pub use error::ExportError;
pub use image::{FILLER_HISTORY_COMMENT, WrittenImage, uses_oci_media_types, write_image, write_index};
pub use layer::{ExportedLayer, LayerOptions, export_layer, export_layer_with_threads, recompress_layer};
pub use layout::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, write_docker_archive, write_oci_archive};
pub use local::{write_local, write_rootfs_tar, write_rootfs_tars};
pub use output::{Destination, Output};
pub use push::{PushProgress, push_image};
pub use squash::export_squashed_layer;

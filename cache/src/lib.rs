//! The build cache and image store: a content store of blobs by digest, snapshots (one
//! directory per layer, overlay `upperdir` format), a crash-safe metadata database (cache
//! keys, snapshot parents, image references, last-used times) and garbage collection.
//!
//! Owns: everything under the store root (`/var/lib/rbuild` by default).
//! Must not: parse Dockerfiles or spawn processes.
//!
//! Entry point: [`Store::open`], which gives the content store ([`Store::content`]), the
//! metadata database ([`Store::meta`]), layers ([`Store::new_layer`],
//! [`Store::import_layer`]), mounts ([`Store::mount_readonly`], [`Store::mount_writable`]),
//! cache mount directories ([`Store::cache_mount`]) and garbage collection ([`Store::usage`],
//! [`Store::prune`]); the build-cache exchange format of `--cache-to`/`--cache-from` is
//! [`cache_config`].

pub mod cache_config;
mod cache_mount;
pub mod checksum;
mod content;
mod error;
pub mod fileop;
mod fsutil;
mod gc;
mod import;
mod layer;
mod lease;
mod lock;
mod meta;
mod mount;
pub mod patterns;
mod store;

pub use cache_mount::{CacheMount, CacheMountError, CacheMountRequest, CacheSharing, Seed};
pub use content::{BlobWriter, ContentError, ContentStore, copy_blob};
pub use error::StoreError;
pub use gc::{PrunePolicy, PruneReport, Usage, UsageRecord};
pub use import::ImportError;
pub use layer::{InvalidLayerId, LayerId, MutableLayer};
pub use lease::Lease;
pub use meta::{CacheRecord, ImageRecord, LayerBlob, LayerRecord, Meta};
pub use mount::{MountError, Mounted};
pub use store::{Recovery, Store};

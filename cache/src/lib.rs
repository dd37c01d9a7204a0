//! The build cache and image store: a content store of blobs by digest, snapshots (one
//! directory per layer, overlay `upperdir` format), a crash-safe metadata database (cache
//! keys, snapshot parents, image references, last-used times) and garbage collection.
//!
//! Owns: everything under the store root (`/var/lib/rbuild` by default).
//! Must not: parse Dockerfiles or spawn processes.
//!
//! Entry point: [`ContentStore`] for blobs.

pub mod checksum;
mod content;
pub mod fileop;
pub mod patterns;

pub use content::{BlobWriter, ContentError, ContentStore, copy_blob};

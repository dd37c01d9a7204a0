//! Images and registries: the OCI image model (digests, references, platforms, media
//! types, manifests, indexes, configs) and the distribution-protocol client that pulls and
//! pushes them.
//!
//! Owns: everything about talking to a registry (auth, retries, blob upload and download,
//! manifest resolution) and the data types other crates use to describe images.
//! Must not: know about the solver, the cache or how images are built.
//!
//! Entry points: [`Reference`] to name an image, [`Client`] to talk to registries
//! (configured by [`ClientConfig`]; failures are [`RegistryError`]), [`credentials`] to read
//! and save `~/.docker/config.json` logins.

// Errors carry the registry, repository, object and digests they are about; they are rare,
// and boxing them would make every caller's `match` clumsier.
#![allow(clippy::result_large_err)]

mod client;
pub mod credentials;
mod digest;
mod error;
mod media_type;
mod model;
mod platform;
mod reference;
pub mod time;

pub use client::{Client, ClientConfig, PushedBlob, RawManifest, ResolvedImage};
pub use credentials::Credential;
pub use digest::{Digest, Hasher, InvalidDigest};
pub use error::{AuthFailure, RegistryError};
pub use media_type::{Compression, MediaType};
pub use model::{
    AnyManifest, ContainerConfig, Descriptor, EmptyObject, HealthConfig, History, ImageConfig, ImageIndex,
    ImageManifest, ManifestError, RootFs,
};
pub use platform::{InvalidPlatform, Platform};
pub use reference::{DOCKER_HUB, InvalidReference, Reference};

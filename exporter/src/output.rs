//! What `--output` asks for, as a typed value (the CLI parses `type=...,k=v` into it once).

use crate::layer::LayerOptions;
use registry::{Compression, Reference};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One requested output of a build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Output {
    /// An image in the local store, optionally pushed (`type=image`, `type=registry`).
    Image {
        /// Names to tag (and push to).
        names: Vec<Reference>,
        /// Push to the registries of `names`.
        push: bool,
        /// Compression of new layers.
        compression: Compression,
        /// Compression level (`None`: the algorithm's default).
        level: Option<u32>,
        /// Re-compress existing (base image) layers that use another compression.
        force_compression: bool,
        /// OCI media types (the default) or Docker schema 2 ones.
        oci_media_types: bool,
        /// Merge the layers the build adds on top of its base image into one layer.
        squash: bool,
    },
    /// An OCI image layout, as a tar file or a directory (`type=oci`).
    Oci {
        /// Where to write it.
        dest: Destination,
        /// Names recorded in `index.json`.
        names: Vec<Reference>,
    },
    /// A `docker load`-able tarball (`type=docker`).
    Docker {
        /// Where to write it (a file or stdout).
        dest: Destination,
        /// Names recorded as `RepoTags`.
        names: Vec<Reference>,
    },
    /// The final file system copied into a directory (`type=local`).
    Local {
        /// The directory.
        dest: PathBuf,
    },
    /// The final file system as a tar file (`type=tar`).
    Tar {
        /// Where to write it.
        dest: Destination,
    },
}

/// Where an archive-style output goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    /// A tar file (written beside its final name and renamed into place when complete).
    File(PathBuf),
    /// An OCI image layout directory (`type=oci,tar=false`); only the OCI output accepts it.
    Dir(PathBuf),
    /// Standard output (`dest=-`).
    Stdout,
}

impl Output {
    /// The layer options this output wants for new layers. Outputs that are not images
    /// (`local`, `tar`) get the defaults; they never write layers.
    pub fn layer_options(&self, source_date_epoch: Option<i64>) -> LayerOptions {
        match self {
            Output::Image { compression, level, oci_media_types, .. } => LayerOptions {
                compression: *compression,
                level: *level,
                oci_media_types: *oci_media_types,
                source_date_epoch,
            },
            // BuildKit defaults both archive exporters to OCI media types (moby/buildkit #6844
            // did so for the docker tarball, which still carries manifest.json).
            _ => LayerOptions { source_date_epoch, ..LayerOptions::default() },
        }
    }

    /// True for outputs that need an image (manifest, config, layers) rather than a file
    /// system.
    pub fn needs_image(&self) -> bool {
        matches!(self, Output::Image { .. } | Output::Oci { .. } | Output::Docker { .. })
    }
}

//! Integration tests of the exporter against real tools: GNU tar, gzip/pigz/zstd, skopeo,
//! umoci, oci-image-tool and a real docker-registry. Tests that need root (mknod, chown,
//! trusted.* xattrs) skip with a printed reason otherwise.

mod util;

mod determinism;
mod image_outputs;
mod layer_content;
mod local_outputs;
mod push;
mod throughput;

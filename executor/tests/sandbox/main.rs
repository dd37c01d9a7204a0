//! Integration tests of the sandbox against the real kernel (root, namespaces, overlayfs,
//! cgroups). The module list is the table of contents.

mod harness;

mod basics;
mod cancel;
mod cgroup_v2;
mod isolation;
mod limits;
mod mounts;
mod oci;
mod overhead;

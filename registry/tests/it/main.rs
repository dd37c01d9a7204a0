//! Registry client tests against a real `docker-registry` on loopback. The module list is
//! the table of contents.

mod harness;
mod proxy;

mod auth;
mod blobs;
mod errors;
mod faults;
mod manifests;
mod memory;
mod tls;
mod token;

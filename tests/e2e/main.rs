//! End-to-end tests of rbuild: the real program against a real registry (Debian's
//! `docker-registry`), real namespaces, overlayfs and cgroups (run as root), and results
//! checked with independent tools. The `mod` list is the table of contents.

mod harness;
mod http_server;

mod add_git;
mod add_url;
mod build_basic;
mod build_checks;
mod build_contexts;
mod build_logs;
mod cache;
mod cache_io;
mod cache_matrix;
mod cli;
mod concurrency;
mod conformance_builds;
mod crash;
mod dedup;
mod errors;
mod explain;
mod gc;
mod image_commands;
mod login;
mod multi_platform;
mod outputs;
mod progress_golden;
mod reproducible;
mod sandbox;

//! Integration tests of the store (run as root: they mount overlays, create device nodes
//! and set trusted xattrs). The module list is the table of contents.

#[path = "store_suite/support.rs"]
mod support;

#[path = "store_suite/crash.rs"]
mod crash;
#[path = "store_suite/gc.rs"]
mod gc;
#[path = "store_suite/import.rs"]
mod import;
#[path = "store_suite/meta.rs"]
mod meta;
#[path = "store_suite/mount.rs"]
mod mount;
#[path = "store_suite/real_tar.rs"]
mod real_tar;

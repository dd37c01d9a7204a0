//! The sandbox executor: runs one process in an isolated, resource-limited sandbox.
//!
//! Owns: namespaces (mount, pid, uts, ipc, cgroup, and net for `Network::None`), the
//! overlay rootfs and extra mounts, `/dev` `/proc` `/sys` setup, the generated `/etc/hosts`,
//! `/etc/resolv.conf` and `/etc/hostname`, user switching, capabilities, seccomp,
//! `no_new_privs`, cgroup v1/v2 limits and accounting, stdio streaming, and killing the
//! whole tree on cancel or timeout.
//!
//! Must not: know about images, layers, the IR or the cache. It gets a rootfs description
//! and a [`Spec`].
//!
//! Entry points: [`Executor::run`] in the parent, and [`sandbox_init_main`] (or
//! [`maybe_sandbox_init`]) at the very top of the binary that serves as
//! [`ExecutorConfig::init_program`].
//!
//! Compared with Docker's default container (and BuildKit's runc executor):
//! - same: namespaces, capability set (`CapEff 00000000a80425fb`), seccomp allow-list,
//!   masked and read-only paths, read-only `/sys` and `/sys/fs/cgroup`, read-only
//!   `/etc/hosts` and `/etc/resolv.conf`, `no_new_privs` off unless asked for;
//! - different: device access is restricted by `nodev` mounts (only bind-mounted host
//!   `null zero full random urandom tty` and the pty devices work) instead of a devices
//!   cgroup; 32-bit x86 syscalls are killed by the seccomp filter instead of filtered;
//!   there is no AppArmor/SELinux profile and no user namespace (root only);
//!   `RUN --security=insecure` gets every capability rbuild holds but no extra devices.

mod caps;
mod cgroups;
mod error;
mod etc_files;
mod executor;
mod init;
mod oci;
mod protocol;
mod run_dir;
mod seccomp;
mod spec;
mod stale;
mod stubs;
mod user;
mod validate;

pub use cgroups::{CgroupDriver, CgroupError};
pub use error::ExecutorError;
pub use executor::{Executor, ExecutorConfig, Runtime};
pub use init::{INIT_ARG, sandbox_init_main};
pub use spec::{
    DEFAULT_CPU_PERIOD_US, DEFAULT_HOSTNAME, ExitStatus, Limits, Mount, MountKind, Network, Outcome,
    OutputChunk, OutputStream, ResourceStats, Rootfs, Spec,
};

/// The version of the private protocol between [`Executor`] and its init program: a
/// fingerprint of this crate's sources, so two programs agree only when built from the same
/// executor.
pub const SANDBOX_PROTOCOL: &str = env!("RBUILD_SANDBOX_PROTOCOL");

/// First argument that makes an init program print [`SANDBOX_PROTOCOL`] and exit.
pub const PROTOCOL_ARG: &str = "__rbuild-sandbox-protocol";

/// Becomes the sandbox init (and never returns) when the process was started with
/// [`INIT_ARG`] as its first argument, or prints [`SANDBOX_PROTOCOL`] and exits when it was
/// [`PROTOCOL_ARG`]; returns otherwise. Call it first thing in `main`, before any thread or
/// async runtime starts.
pub fn maybe_sandbox_init() {
    match std::env::args_os().nth(1) {
        Some(a) if a == INIT_ARG => sandbox_init_main(),
        Some(a) if a == PROTOCOL_ARG => {
            println!("{SANDBOX_PROTOCOL}");
            std::process::exit(0);
        }
        _ => {}
    }
}

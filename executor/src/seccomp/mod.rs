//! Docker's default seccomp profile, compiled to BPF with `seccompiler`, for the capability
//! set the sandbox grants (no CAP_SYS_ADMIN, so `mount`, `unshare`, `setns`, `keyctl`,
//! `bpf`, module loading, ... fail with EPERM).
//!
//! Two filters are installed because `seccompiler` has one match action per filter:
//! the allow-list (everything else gets EPERM) and one that answers `clone3` with ENOSYS,
//! so that glibc falls back to `clone`, whose namespace flags the first filter checks.
//! When several filters return ERRNO the most recently installed one's errno wins.
//!
//! Weaker than Docker: `seccompiler` kills processes of a foreign architecture (32-bit x86
//! binaries on x86_64) instead of applying the profile to them.

mod table;

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

/// Namespace flags of `clone(2)` that need CAP_SYS_ADMIN (Docker's mask 0x7E020000).
pub(crate) const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;
/// `AF_VSOCK`, refused by Docker's profile for `socket(2)`.
pub(crate) const AF_VSOCK: u64 = 40;
/// `personality(2)` values Docker allows: PER_LINUX, PER_LINUX32, UNAME26 variants, query.
pub(crate) const PERSONALITIES: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// Why the profile could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("cannot compile the seccomp profile: {reason}")]
pub(crate) struct SeccompError {
    reason: String,
}

fn err(e: impl std::fmt::Display) -> SeccompError {
    SeccompError { reason: e.to_string() }
}

fn cond(arg: u8, len: SeccompCmpArgLen, op: SeccompCmpOp, value: u64) -> Result<SeccompRule, SeccompError> {
    SeccompRule::new(vec![SeccompCondition::new(arg, len, op, value).map_err(err)?]).map_err(err)
}

/// Names of the syscalls allowed without conditions on this architecture.
pub(crate) fn allowed_names() -> impl Iterator<Item = &'static str> {
    table::ALLOW.iter().map(|(name, _)| *name)
}

/// The compiled filters, in installation order.
pub(crate) fn default_profile() -> Result<Vec<BpfProgram>, SeccompError> {
    let arch = std::env::consts::ARCH.try_into().map_err(err)?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (_, nr) in table::ALLOW {
        rules.insert(*nr, Vec::new());
    }
    let special = &table::SPECIAL;
    rules.insert(special.socket, vec![cond(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, AF_VSOCK)?]);
    rules.insert(
        special.personality,
        PERSONALITIES
            .iter()
            .map(|p| cond(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, *p))
            .collect::<Result<_, _>>()?,
    );
    rules.insert(
        special.clone,
        vec![cond(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(CLONE_NAMESPACE_FLAGS), 0)?],
    );
    // Allowed here so that the second filter decides its errno.
    rules.insert(special.clone3, Vec::new());
    let allow_list =
        SeccompFilter::new(rules, SeccompAction::Errno(libc::EPERM as u32), SeccompAction::Allow, arch)
            .map_err(err)?;

    let clone3 = SeccompFilter::new(
        [(special.clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(err)?;

    Ok(vec![allow_list.try_into().map_err(err)?, clone3.try_into().map_err(err)?])
}

/// Installs one filter on the calling thread.
///
/// Unlike `seccompiler::apply_filter` this does not set `no_new_privs`: BuildKit leaves it
/// off, so the filter is installed while the process still holds CAP_SYS_ADMIN (see
/// seccomp(2), "the caller must have CAP_SYS_ADMIN ... or no_new_privs").
pub(crate) fn install(program: &BpfProgram) -> std::io::Result<()> {
    let len = u16::try_from(program.len()).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let prog = libc::sock_fprog {
        len,
        // seccompiler's sock_filter is #[repr(C)] with the kernel's layout (u16, u8, u8, u32).
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` points into `program`, which outlives the call; the kernel copies the
    // filter before returning.
    let rc = unsafe {
        libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &prog as *const libc::sock_fprog)
    };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_compiles_and_blocks_the_usual_suspects() {
        let progs = default_profile().unwrap();
        assert_eq!(progs.len(), 2);
        assert!(progs[0].len() > 300, "allow-list has {} instructions", progs[0].len());
        let allowed: Vec<&str> = table::ALLOW.iter().map(|(n, _)| *n).collect();
        for blocked in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "keyctl",
            "init_module",
            "bpf",
            "reboot",
            "swapon",
            "io_uring_setup",
        ] {
            assert!(!allowed.contains(&blocked), "{blocked} must not be allowed");
        }
        for needed in ["execve", "read", "setuid", "capset", "prctl", "wait4", "chroot"] {
            assert!(allowed.contains(&needed), "{needed} must be allowed");
        }
    }
}

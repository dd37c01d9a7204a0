//! Docker's default capability set and dropping to it.

use caps::{CapSet, Capability, CapsHashSet};

/// The capabilities a (non-insecure) run keeps: Docker's defaults, `CapEff` 00000000a80425fb.
pub(crate) const DEFAULT_CAPS: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

/// The set a run keeps: Docker's defaults, or everything the kernel knows for insecure runs.
pub(crate) fn keep_set(insecure: bool) -> CapsHashSet {
    if insecure {
        caps::runtime::procfs_all_supported(None).unwrap_or_else(|_| caps::all())
    } else {
        DEFAULT_CAPS.into_iter().collect()
    }
}

/// After the user switch (with keep-caps on): permitted and effective become `keep`,
/// inheritable and ambient empty, so that after `execve` root has exactly `keep` and other
/// users have nothing, as in Docker.
pub(crate) fn set_process_caps(keep: &CapsHashSet) -> Result<(), caps::errors::CapsError> {
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new())?;
    caps::set(None, CapSet::Permitted, keep)?;
    caps::set(None, CapSet::Effective, keep)?;
    caps::clear(None, CapSet::Ambient)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_set_matches_docker_mask() {
        let mask = DEFAULT_CAPS.iter().fold(0u64, |m, c| m | c.bitmask());
        assert_eq!(mask, 0xa804_25fb);
    }
}

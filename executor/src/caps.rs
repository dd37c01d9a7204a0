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

/// The set a run keeps: Docker's defaults, or for insecure runs everything rbuild itself
/// holds (a capability outside our permitted set cannot be granted).
pub(crate) fn keep_set(insecure: bool) -> CapsHashSet {
    if insecure {
        caps::read(None, CapSet::Permitted).unwrap_or_else(|_| DEFAULT_CAPS.into_iter().collect())
    } else {
        DEFAULT_CAPS.into_iter().collect()
    }
}

/// After the user switch (with keep-caps on): permitted and effective become `keep`,
/// inheritable and ambient empty, so that after `execve` root has exactly `keep` and other
/// users have nothing, as in Docker.
pub(crate) fn set_process_caps(keep: &CapsHashSet) -> Result<(), String> {
    let step = |set: &'static str| move |e: caps::errors::CapsError| format!("{set} set: {e}");
    // Effective first: capset(2) refuses an effective set that is not within permitted.
    caps::set(None, CapSet::Effective, keep).map_err(step("effective"))?;
    caps::set(None, CapSet::Permitted, keep).map_err(step("permitted"))?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new()).map_err(step("inheritable"))?;
    caps::clear(None, CapSet::Ambient).map_err(step("ambient"))?;
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

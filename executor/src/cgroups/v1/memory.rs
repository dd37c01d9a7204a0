//! v1 memory controller: limit (without extra swap), peak usage, OOM kills.

use std::path::Path;

use super::super::{CgroupError, CgroupStats, fs};
use crate::spec::Limits;

pub(super) fn apply(dir: &Path, limits: &Limits) -> Result<(), CgroupError> {
    let Some(bytes) = limits.memory_bytes else { return Ok(()) };
    fs::write(&dir.join("memory.limit_in_bytes"), &bytes.to_string())?;
    // memsw is memory+swap; setting it to the same value forbids swapping past the limit.
    // It exists only with swap accounting enabled, and must be written after the memory
    // limit (the kernel requires memsw >= memory).
    let memsw = dir.join("memory.memsw.limit_in_bytes");
    if memsw.exists() {
        fs::write(&memsw, &bytes.to_string())?;
    }
    Ok(())
}

pub(super) fn stats(dir: &Path, stats: &mut CgroupStats) -> Result<(), CgroupError> {
    stats.peak_memory_bytes = fs::read_u64_optional(&dir.join("memory.max_usage_in_bytes"))?;
    // With swap accounting the memory+swap counter is charged first, so a hit limit may
    // show in memsw.failcnt only.
    let hits = fs::read_u64_optional(&dir.join("memory.failcnt"))?;
    let memsw_hits = fs::read_u64_optional(&dir.join("memory.memsw.failcnt"))?;
    stats.memory_limit_hits = match (hits, memsw_hits) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    };
    // "oom_kill N" appeared in memory.oom_control with Linux 4.13.
    if let Some(map) = fs::read_keyed_optional(&dir.join("memory.oom_control"))? {
        stats.oom_kills = map.get("oom_kill").copied();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_from_fake_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("memory.max_usage_in_bytes"), "1048576\n").unwrap();
        std::fs::write(d.join("memory.failcnt"), "7\n").unwrap();
        std::fs::write(d.join("memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
            .unwrap();
        let mut s = CgroupStats::default();
        stats(d, &mut s).unwrap();
        assert_eq!(s.peak_memory_bytes, Some(1 << 20));
        assert_eq!(s.memory_limit_hits, Some(7));
        assert_eq!(s.oom_kills, Some(2));
    }

    #[test]
    fn old_kernels_have_no_oom_kill_counter() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\n").unwrap();
        let mut s = CgroupStats::default();
        stats(dir.path(), &mut s).unwrap();
        assert_eq!(s.oom_kills, None);
        assert_eq!(s.peak_memory_bytes, None);
    }

    #[test]
    fn no_limit_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        apply(dir.path(), &Limits::default()).unwrap();
        assert!(!dir.path().join("memory.limit_in_bytes").exists());
    }
}

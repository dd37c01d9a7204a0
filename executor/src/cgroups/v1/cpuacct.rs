//! v1 cpuacct controller: CPU time of the tree.

use std::path::Path;
use std::time::Duration;

use super::super::{CgroupError, CgroupStats, fs};

pub(super) fn stats(dir: &Path, stats: &mut CgroupStats) -> Result<(), CgroupError> {
    // cpuacct.usage is user+system in nanoseconds, more precise than cpuacct.stat's ticks.
    if let Some(ns) = fs::read_u64_optional(&dir.join("cpuacct.usage"))? {
        stats.cpu_time = Some(Duration::from_nanos(ns));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_in_nanoseconds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cpuacct.usage"), "1500000000\n").unwrap();
        let mut s = CgroupStats::default();
        stats(dir.path(), &mut s).unwrap();
        assert_eq!(s.cpu_time, Some(Duration::from_millis(1500)));
    }
}

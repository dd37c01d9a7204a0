//! v1 cpu controller: CFS quota and period, throttling counter.

use std::path::Path;

use super::super::{CgroupError, CgroupStats, fs};
use crate::spec::{DEFAULT_CPU_PERIOD_US, Limits};

pub(super) fn apply(dir: &Path, limits: &Limits) -> Result<(), CgroupError> {
    // The period goes first: the kernel checks the quota against the current period.
    let period = limits.cpu_period_us.unwrap_or(DEFAULT_CPU_PERIOD_US);
    fs::write(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
    if let Some(quota) = limits.cpu_quota_us {
        fs::write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
    }
    Ok(())
}

pub(super) fn stats(dir: &Path, stats: &mut CgroupStats) -> Result<(), CgroupError> {
    if let Some(map) = fs::read_keyed_optional(&dir.join("cpu.stat"))? {
        stats.cpu_throttled_periods = map.get("nr_throttled").copied();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_defaults_and_throttling() {
        let dir = tempfile::tempdir().unwrap();
        apply(dir.path(), &Limits { cpu_quota_us: Some(20_000), ..Limits::default() }).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("cpu.cfs_period_us")).unwrap(), "100000");
        std::fs::write(dir.path().join("cpu.stat"), "nr_periods 10\nnr_throttled 4\nthrottled_time 99\n")
            .unwrap();
        let mut s = CgroupStats::default();
        stats(dir.path(), &mut s).unwrap();
        assert_eq!(s.cpu_throttled_periods, Some(4));
    }
}

//! v2 cpu: `cpu.max` quota; `cpu.stat` usage (present even without the cpu controller).

use std::path::Path;
use std::time::Duration;

use super::super::{CgroupError, CgroupStats, fs};
use crate::spec::{DEFAULT_CPU_PERIOD_US, Limits};

pub(super) fn apply(dir: &Path, limits: &Limits) -> Result<(), CgroupError> {
    let period = limits.cpu_period_us.unwrap_or(DEFAULT_CPU_PERIOD_US);
    let quota = limits.cpu_quota_us.map_or_else(|| "max".to_owned(), |q| q.to_string());
    fs::write(&dir.join("cpu.max"), &format!("{quota} {period}"))
}

pub(super) fn stats(dir: &Path, stats: &mut CgroupStats) -> Result<(), CgroupError> {
    if let Some(map) = fs::read_keyed_optional(&dir.join("cpu.stat"))? {
        stats.cpu_time = map.get("usage_usec").map(|us| Duration::from_micros(*us));
        stats.cpu_throttled_periods = map.get("nr_throttled").copied();
    }
    Ok(())
}

//! v2 memory controller: `memory.max` without swap, `memory.peak`, `memory.events`.

use std::path::Path;

use super::super::{CgroupError, CgroupStats, fs};
use crate::spec::Limits;

pub(super) fn apply(dir: &Path, limits: &Limits) -> Result<(), CgroupError> {
    let Some(bytes) = limits.memory_bytes else { return Ok(()) };
    fs::write(&dir.join("memory.max"), &bytes.to_string())?;
    // Without this the tree could keep running from swap far past its limit.
    let swap = dir.join("memory.swap.max");
    if swap.exists() {
        fs::write(&swap, "0")?;
    }
    Ok(())
}

pub(super) fn stats(dir: &Path, stats: &mut CgroupStats) -> Result<(), CgroupError> {
    // memory.peak exists since Linux 5.19 and only with the memory controller enabled.
    stats.peak_memory_bytes = fs::read_u64_optional(&dir.join("memory.peak"))?;
    if let Some(events) = fs::read_keyed_optional(&dir.join("memory.events"))? {
        stats.oom_kills = events.get("oom_kill").copied();
        stats.memory_limit_hits = events.get("max").copied();
    }
    Ok(())
}

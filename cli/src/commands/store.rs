//! `rbuild du` and `rbuild prune`: disk usage of the store and garbage collection.

use crate::UsageError;
use crate::progress::human_bytes;
use anyhow::{Result, bail};
use cache::{PrunePolicy, Store};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// Parses a size like `512MB`, `10GB`, `1.5GiB`, `1024` (bytes).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 =
        num.parse().map_err(|_| anyhow::anyhow!("invalid size {s:?}: expected e.g. 512MB or 10GB"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => bail!("invalid size {s:?}: unknown unit {other:?}"),
    };
    Ok((value * factor) as u64)
}

/// Parses a Go-style duration (`90m`, `24h`, `1h30m`, `10s`, `7d` is accepted too).
pub fn parse_duration(s: &str) -> Result<Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        bail!("invalid duration {s:?}");
    }
    while !rest.is_empty() {
        let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (num, tail) = rest.split_at(split);
        let unit_end = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let value: f64 =
            num.parse().map_err(|_| anyhow::anyhow!("invalid duration {s:?}: expected e.g. 24h or 90m"))?;
        let secs = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => bail!("invalid duration {s:?}: unknown unit {unit:?} (use s, m, h or d)"),
        };
        total += value * secs;
        rest = tail;
    }
    Ok(Duration::from_secs_f64(total))
}

/// `rbuild du`.
pub fn du(store: &Store, verbose: bool) -> Result<ExitCode> {
    let usage = store.usage()?;
    let mut out = std::io::stdout().lock();
    if verbose {
        writeln!(
            out,
            "{:<14} {:>10} {:>10} {:<6} {:<12} DESCRIPTION",
            "KEY", "SIZE", "EXCLUSIVE", "SHARED", "LAST USED"
        )?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        for r in &usage.records {
            let ago = humanize_ago(now - r.last_used_unix);
            writeln!(
                out,
                "{:<14} {:>10} {:>10} {:<6} {:<12} {}",
                r.key.short(),
                human_bytes(r.size),
                human_bytes(r.exclusive_size),
                if r.shared { "yes" } else { "no" },
                ago,
                r.description
            )?;
        }
        writeln!(out)?;
    }
    writeln!(out, "cache records:    {}", usage.records.len())?;
    writeln!(out, "layers:           {}", human_bytes(usage.layers_bytes))?;
    writeln!(out, "blobs:            {}", human_bytes(usage.blobs_bytes))?;
    writeln!(out, "tagged images:    {}", human_bytes(usage.images_bytes))?;
    writeln!(out, "cache mounts:     {}", human_bytes(usage.cache_mounts_bytes))?;
    writeln!(out, "reclaimable:      {}", human_bytes(usage.unreferenced_bytes))?;
    writeln!(out, "total:            {}", human_bytes(usage.total_bytes))?;
    Ok(ExitCode::SUCCESS)
}

fn humanize_ago(secs: i64) -> String {
    match secs {
        s if s < 60 => "just now".into(),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86400),
    }
}

/// The prune policy from `--all`, `--filter until=...` and `--keep-storage`; bad values are
/// usage errors.
pub fn prune_policy(all: bool, filters: &[String], keep_storage: Option<&str>) -> Result<PrunePolicy> {
    let usage = |e: anyhow::Error| anyhow::Error::new(UsageError(format!("{e:#}")));
    let mut policy = PrunePolicy { all, ..PrunePolicy::default() };
    for f in filters {
        match f.split_once('=') {
            Some(("until", v)) => policy.keep_duration = Some(parse_duration(v).map_err(usage)?),
            _ => {
                return Err(
                    UsageError(format!("unsupported --filter {f:?} (supported: until=DURATION)")).into()
                );
            }
        }
    }
    if let Some(k) = keep_storage {
        policy.keep_bytes = Some(parse_size(k).map_err(usage)?);
    }
    Ok(policy)
}

/// `rbuild prune`.
pub fn prune(store: &Store, policy: &PrunePolicy) -> Result<ExitCode> {
    let report = store.prune(policy)?;
    let mut out = std::io::stdout().lock();
    for r in &report.removed {
        writeln!(out, "deleted {} {}", r.key.short(), r.description)?;
    }
    writeln!(
        out,
        "total reclaimed: {} ({} records, {} layers, {} blobs)",
        human_bytes(report.reclaimed_bytes),
        report.removed.len(),
        report.removed_layers,
        report.removed_blobs
    )?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("512MB").unwrap(), 512_000_000);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("ten").is_err() && parse_size("5XB").is_err());
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172800));
        assert!(parse_duration("").is_err() && parse_duration("5y").is_err());
    }
}

//! Cleaning up after an executor whose process was killed (SIGKILL, power loss of the
//! process, OOM killer): its runs' cgroups and run directories stay behind, since nothing
//! ran their cleanup. A new executor removes those of dead processes when it starts.
//!
//! A run's id starts with the pid of the process that made it (`<pid>-<n>-<hex>`), so a
//! leftover is recognised without any shared state: its owner no longer exists. Runs of
//! live processes (another rbuild using the same cgroup parent) are never touched; a pid
//! reused since by an unrelated process only delays the cleanup to a later start.

use std::path::Path;

use crate::cgroups::{self, fs::read_pids_recursive, fs::remove_dir_retrying, kill_pids};
use crate::run_dir::RunDir;

/// What [`clean`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Cleaned {
    /// Cgroup directories of dead processes' runs (one per hierarchy).
    pub cgroups: usize,
    /// Run directories under the state directory.
    pub run_dirs: usize,
    /// OCI runtime state directories of containers of dead processes' runs.
    pub oci_states: usize,
}

/// The pid that made run `id`, if `id` has the shape of a run id.
fn owner(id: &str) -> Option<u32> {
    let mut parts = id.splitn(3, '-');
    let pid = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u64>().ok()?;
    let hex = parts.next()?;
    (!hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(pid)
}

fn is_stale(id: &str) -> bool {
    owner(id).is_some_and(|pid| pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists())
}

/// Removes the cgroups (below `cgroup_parent`, in every hierarchy), the run directories
/// (in `runs_dir`) and the OCI runtime's container state (in `oci_root`, named by run id)
/// left by runs of processes that no longer exist, killing whatever still runs in those
/// cgroups. Best effort: what cannot be removed now is logged and retried at the next start.
pub(crate) fn clean(cgroup_parent: &str, runs_dir: &Path, oci_root: &Path) -> Cleaned {
    let mut cleaned = Cleaned::default();
    for parent in cgroups::parent_dirs_in_every_hierarchy(cgroup_parent) {
        let Ok(entries) = std::fs::read_dir(&parent) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !entry.file_type().is_ok_and(|t| t.is_dir()) || !name.to_str().is_some_and(is_stale) {
                continue;
            }
            let dir = entry.path();
            // Sandboxes of an rbuild older than the parent watch, or of a runtime that does
            // not watch: they would otherwise run on unsupervised.
            if let Ok(pids) = read_pids_recursive(&dir) {
                kill_pids(&pids);
            }
            // A run killed while its cgroup was frozen (v1 kill) gets the signal on thaw.
            let freezer = dir.join("freezer.state");
            if freezer.exists() {
                let _ = std::fs::write(&freezer, "THAWED");
            }
            match remove_dir_retrying(&dir) {
                Ok(()) => cleaned.cgroups += 1,
                Err(e) => tracing::warn!(error = %e, "could not remove a stale run cgroup"),
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(runs_dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_str().is_some_and(is_stale) {
                // Only what a run creates, never recursively: see RunDir.
                RunDir::existing(entry.path()).remove();
                cleaned.run_dirs += usize::from(!entry.path().exists());
            }
        }
    }
    // The runtime's own record of a container (state.json), which `runc delete` would have
    // removed; the container's processes were killed with its cgroup above. The runtime
    // keeps no mounts here, so removing the directory is all a delete would do.
    if let Ok(entries) = std::fs::read_dir(oci_root) {
        for entry in entries.flatten() {
            if entry.file_name().to_str().is_some_and(is_stale)
                && std::fs::remove_dir_all(entry.path()).is_ok()
            {
                cleaned.oci_states += 1;
            }
        }
    }
    if cleaned != Cleaned::default() {
        tracing::info!(?cleaned, "removed what killed rbuild processes left of their sandboxes");
    }
    cleaned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_name_their_owner() {
        let cases: &[(&str, Option<u32>)] = &[
            ("1234-0-50b4ba0b", Some(1234)),
            ("7-12-a", Some(7)),
            ("1234-0-", None),
            ("1234-x-ab", None),
            ("1234-0-xyz", None),
            ("ctr", None),
            ("docker", None),
            ("", None),
        ];
        for (id, want) in cases {
            assert_eq!(owner(id), *want, "{id}");
        }
    }

    #[test]
    fn only_dead_owners_are_stale() {
        assert!(!is_stale(&format!("{}-0-ab", std::process::id())), "our own runs");
        assert!(!is_stale("1-0-ab"), "init is alive");
        // pid_max is at most 2^22: this pid cannot exist.
        assert!(is_stale("4294967-0-ab"));
    }

    #[test]
    fn stale_run_dirs_are_removed_and_live_ones_kept() {
        let state = tempfile::tempdir().unwrap();
        let dead = state.path().join("4294967-3-ff");
        let live = state.path().join(format!("{}-3-ff", std::process::id()));
        for dir in [&dead, &live] {
            std::fs::create_dir_all(dir.join("rootfs")).unwrap();
        }
        let oci = tempfile::tempdir().unwrap();
        let dead_ctr = oci.path().join("4294967-3-ff");
        let live_ctr = oci.path().join(format!("{}-3-ff", std::process::id()));
        for dir in [&dead_ctr, &live_ctr] {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join("state.json"), "{}").unwrap();
        }
        let cleaned = clean("rbuild-stale-test-none", state.path(), oci.path());
        assert_eq!((cleaned.run_dirs, cleaned.oci_states), (1, 1));
        assert!(!dead.exists() && live.exists());
        assert!(!dead_ctr.exists() && live_ctr.exists());
    }
}

//! One cgroup per run: limits, accounting, OOM detection and killing the whole tree.
//!
//! Knows nothing about sandboxes: a [`Hierarchy`] is detected once (cgroup v1 with one
//! mount per controller, or the v2 unified hierarchy), and hands out a [`Cgroup`] per run
//! that implements [`Manager`]. Each controller's files live in their own module under
//! `v1/` and `v2/`, tested against folders of fake cgroup files.
//!
//! A relative `cgroup_parent` ("rbuild") is placed below the cgroup rbuild itself runs in,
//! so that a build never escapes the limits of whatever started it; an absolute one
//! ("/rbuild") is taken from the root of each hierarchy.

pub(crate) mod fs;
mod mountinfo;
pub(crate) mod v1;
pub(crate) mod v2;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::spec::Limits;

pub(crate) use mountinfo::{parse_mountinfo, parse_proc_cgroup};

/// Which cgroup hierarchy runs use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CgroupDriver {
    /// Detect: the unified hierarchy when `/sys/fs/cgroup` is cgroup2, else the v1
    /// controllers (hybrid hosts count as v1, since their controllers live there).
    #[default]
    Auto,
    /// The cgroup2 hierarchy mounted at this path, e.g. `/sys/fs/cgroup/unified` on a
    /// hybrid host.
    V2 {
        /// Mount point of the cgroup2 file system.
        mount_point: PathBuf,
    },
    /// No cgroups: runs with limits are refused, and accounting comes from `getrusage`.
    Disabled,
}

/// Why a cgroup could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No usable hierarchy was found.
    #[error("no cgroup hierarchy is available: {reason}")]
    Unavailable {
        /// What was looked for.
        reason: String,
    },
    /// A limit was requested whose controller is not available.
    #[error("cgroup controller {controller} is not available, so the {limit} limit cannot be applied")]
    MissingController {
        /// The controller, e.g. "memory".
        controller: &'static str,
        /// The limit that needs it.
        limit: &'static str,
    },
    /// A cgroup file operation failed.
    #[error("cannot {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A cgroup file held something unexpected.
    #[error("unexpected value {value:?} in {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What it held.
        value: String,
    },
}

impl CgroupError {
    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> CgroupError {
        CgroupError::Io { action, path: path.to_path_buf(), source }
    }
}

/// What a cgroup measured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CgroupStats {
    pub peak_memory_bytes: Option<u64>,
    pub cpu_time: Option<Duration>,
    /// Processes the OOM killer killed; `None` when the kernel does not count them.
    pub oom_kills: Option<u64>,
    /// Times the memory limit was hit (v1 `failcnt`, v2 `max` events).
    pub memory_limit_hits: Option<u64>,
    pub cpu_throttled_periods: Option<u64>,
}

/// Operations on one run's cgroup, independent of the cgroup version.
pub(crate) trait Manager {
    /// Creates the cgroup and applies the limits.
    fn create(&self, limits: &Limits) -> Result<(), CgroupError>;
    /// Processes currently in the cgroup.
    fn procs(&self) -> Result<Vec<u32>, CgroupError>;
    /// Kills every process in the cgroup, including ones forked while killing.
    fn kill_all(&self) -> Result<(), CgroupError>;
    /// Reads accounting and OOM counters.
    fn stats(&self) -> Result<CgroupStats, CgroupError>;
    /// Removes the cgroup once it is empty.
    fn remove(&self) -> Result<(), CgroupError>;
}

/// Where runs' cgroups are created.
#[derive(Clone, Debug)]
pub(crate) enum Hierarchy {
    V1(v1::Hierarchy),
    V2(v2::Hierarchy),
}

impl Hierarchy {
    /// Detects the hierarchy from `/proc/self/mountinfo` and `/proc/self/cgroup`.
    /// `Ok(None)` means cgroups are disabled by the driver.
    pub(crate) fn detect(driver: &CgroupDriver, parent: &str) -> Result<Option<Hierarchy>, CgroupError> {
        if *driver == CgroupDriver::Disabled {
            return Ok(None);
        }
        let mountinfo = read_proc("/proc/self/mountinfo")?;
        let own = read_proc("/proc/self/cgroup")?;
        Hierarchy::from_proc(driver, parent, &mountinfo, &own).map(Some)
    }

    pub(crate) fn from_proc(
        driver: &CgroupDriver,
        parent: &str,
        mountinfo: &str,
        own: &str,
    ) -> Result<Hierarchy, CgroupError> {
        let mounts = parse_mountinfo(mountinfo);
        let own = parse_proc_cgroup(own);
        match driver {
            CgroupDriver::V2 { mount_point } => {
                v2::Hierarchy::new(&mounts, &own, Some(mount_point), parent).map(Hierarchy::V2)
            }
            CgroupDriver::Auto => {
                let unified_at_root =
                    mounts.iter().any(|m| m.is_v2() && m.mount_point == Path::new("/sys/fs/cgroup"));
                if unified_at_root {
                    return v2::Hierarchy::new(&mounts, &own, None, parent).map(Hierarchy::V2);
                }
                match v1::Hierarchy::new(&mounts, &own, parent) {
                    Ok(h) => Ok(Hierarchy::V1(h)),
                    // A host with only a cgroup2 mount somewhere else still has cgroups.
                    Err(v1_err) => match v2::Hierarchy::new(&mounts, &own, None, parent) {
                        Ok(h) => Ok(Hierarchy::V2(h)),
                        Err(_) => Err(v1_err),
                    },
                }
            }
            CgroupDriver::Disabled => Err(CgroupError::Unavailable { reason: "disabled".to_owned() }),
        }
    }

    /// The cgroup for one run (not created yet).
    pub(crate) fn cgroup(&self, name: &str) -> Cgroup {
        match self {
            Hierarchy::V1(h) => Cgroup::V1(h.cgroup(name)),
            Hierarchy::V2(h) => Cgroup::V2(h.cgroup(name)),
        }
    }

    /// Mount point of the v2 hierarchy, for mounting it inside the sandbox.
    pub(crate) fn is_v2(&self) -> bool {
        matches!(self, Hierarchy::V2(_))
    }
}

fn read_proc(path: &str) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::io("read", Path::new(path), source))
}

/// One run's cgroup.
#[derive(Debug)]
pub(crate) enum Cgroup {
    V1(v1::Cgroup),
    V2(v2::Cgroup),
}

impl Manager for Cgroup {
    fn create(&self, limits: &Limits) -> Result<(), CgroupError> {
        match self {
            Cgroup::V1(c) => c.create(limits),
            Cgroup::V2(c) => c.create(limits),
        }
    }
    fn procs(&self) -> Result<Vec<u32>, CgroupError> {
        match self {
            Cgroup::V1(c) => c.procs(),
            Cgroup::V2(c) => c.procs(),
        }
    }
    fn kill_all(&self) -> Result<(), CgroupError> {
        match self {
            Cgroup::V1(c) => c.kill_all(),
            Cgroup::V2(c) => c.kill_all(),
        }
    }
    fn stats(&self) -> Result<CgroupStats, CgroupError> {
        match self {
            Cgroup::V1(c) => c.stats(),
            Cgroup::V2(c) => c.stats(),
        }
    }
    fn remove(&self) -> Result<(), CgroupError> {
        match self {
            Cgroup::V1(c) => c.remove(),
            Cgroup::V2(c) => c.remove(),
        }
    }
}

/// `parent/name` in every mounted cgroup hierarchy, including those rbuild does not
/// manage (an OCI runtime creates its cgroup path in all of them).
pub(crate) fn dirs_in_every_hierarchy(parent: &str, name: &str) -> Vec<PathBuf> {
    parent_dirs_in_every_hierarchy(parent).into_iter().map(|dir| dir.join(name)).collect()
}

/// The `parent` directory of runs' cgroups in every mounted cgroup hierarchy.
pub(crate) fn parent_dirs_in_every_hierarchy(parent: &str) -> Vec<PathBuf> {
    let (Ok(mountinfo), Ok(own)) =
        (std::fs::read_to_string("/proc/self/mountinfo"), std::fs::read_to_string("/proc/self/cgroup"))
    else {
        return Vec::new();
    };
    let own = parse_proc_cgroup(&own);
    parse_mountinfo(&mountinfo)
        .iter()
        .filter_map(|m| {
            let base = mountinfo::parent_dir(m, mountinfo::own_path(m, &own)?, parent);
            join_cgroup_path(&base, parent).ok()
        })
        .collect()
}

/// Removes what an OCI runtime left of a run's cgroup path in hierarchies rbuild does not
/// manage (directories only; they are empty once the container is gone).
pub(crate) fn remove_everywhere(parent: &str, name: &str) -> Result<(), CgroupError> {
    for dir in dirs_in_every_hierarchy(parent, name) {
        if dir.is_dir() {
            fs::remove_dir_retrying(&dir)?;
        }
    }
    Ok(())
}

/// Sends SIGKILL to each pid, ignoring processes that are already gone.
pub(crate) fn kill_pids(pids: &[u32]) {
    for &pid in pids {
        let Ok(pid) = i32::try_from(pid) else { continue };
        // ESRCH (already exited) is the expected race here.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}

/// Joins a cgroup path below a directory, refusing `..` so that a configured parent
/// cannot point outside the hierarchy.
pub(crate) fn join_cgroup_path(base: &Path, rel: &str) -> Result<PathBuf, CgroupError> {
    let mut out = base.to_path_buf();
    for part in rel.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if part == ".." {
            return Err(CgroupError::Unavailable { reason: format!("cgroup path {rel:?} contains ..") });
        }
        out.push(part);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MOUNTINFO: &str = "\
30 1 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
33 30 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
34 30 0:31 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
35 30 0:32 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
36 30 0:33 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
37 30 0:34 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_OWN: &str = "\
9:name=systemd:/
8:pids:/
6:freezer:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn detect_table() {
        let unified = "40 1 0:40 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let cases: &[(&str, &str, &str, CgroupDriver, &str)] = &[
            ("hybrid is v1", HYBRID_MOUNTINFO, HYBRID_OWN, CgroupDriver::Auto, "v1"),
            (
                "explicit v2 on hybrid",
                HYBRID_MOUNTINFO,
                HYBRID_OWN,
                CgroupDriver::V2 { mount_point: "/sys/fs/cgroup/unified".into() },
                "v2",
            ),
            ("unified", unified, "0::/user.slice\n", CgroupDriver::Auto, "v2"),
        ];
        for (name, mi, own, driver, want) in cases {
            let h = Hierarchy::from_proc(driver, "rbuild", mi, own).unwrap();
            let got = if h.is_v2() { "v2" } else { "v1" };
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn nothing_mounted_is_unavailable() {
        let err = Hierarchy::from_proc(&CgroupDriver::Auto, "rbuild", "", "").unwrap_err();
        assert!(matches!(err, CgroupError::Unavailable { .. }), "{err}");
    }

    #[test]
    fn parent_paths() {
        let base = Path::new("/sys/fs/cgroup/memory");
        assert_eq!(join_cgroup_path(base, "a/b").unwrap(), base.join("a/b"));
        assert_eq!(join_cgroup_path(base, "/a//b/").unwrap(), base.join("a/b"));
        assert!(join_cgroup_path(base, "../x").is_err());
    }
}

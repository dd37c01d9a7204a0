//! cgroup v2: one unified hierarchy; controllers must be enabled in every ancestor's
//! `cgroup.subtree_control` between the cgroup rbuild runs in and the run's cgroup.

mod cpu;
mod memory;
mod pids;

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::mountinfo::{CgroupMount, OwnCgroup, parent_dir, same_path};
use super::{CgroupError, CgroupStats, Manager, fs, join_cgroup_path, kill_pids};
use crate::spec::Limits;

/// Where runs' cgroups go in the unified hierarchy.
#[derive(Clone, Debug)]
pub(crate) struct Hierarchy {
    /// The cgroup rbuild runs in (or the root for an absolute parent): controllers are
    /// enabled from here down, never above.
    base: PathBuf,
    /// `base` joined with the configured parent.
    parent: PathBuf,
}

impl Hierarchy {
    pub(crate) fn new(
        mounts: &[CgroupMount],
        own: &[OwnCgroup],
        explicit_mount: Option<&PathBuf>,
        parent: &str,
    ) -> Result<Hierarchy, CgroupError> {
        let mount = match explicit_mount {
            Some(at) => {
                mounts.iter().find(|m| m.is_v2() && same_path(&m.mount_point, at)).ok_or_else(|| {
                    CgroupError::Unavailable {
                        reason: format!("no cgroup2 file system is mounted at {}", at.display()),
                    }
                })?
            }
            None => mounts
                .iter()
                .filter(|m| m.is_v2())
                .min_by_key(|m| m.mount_point != Path::new("/sys/fs/cgroup"))
                .ok_or_else(|| CgroupError::Unavailable {
                    reason: "no cgroup2 file system is mounted".to_owned(),
                })?,
        };
        let own_path = own.iter().find(|o| o.controllers.is_empty()).map(|o| o.path.as_str()).unwrap_or("/");
        let base = parent_dir(mount, own_path, parent);
        let parent = join_cgroup_path(&base, parent)?;
        Ok(Hierarchy { base, parent })
    }

    /// A hierarchy over explicit directories (tests use folders of fake files).
    #[cfg(test)]
    pub(crate) fn from_dirs(base: PathBuf, parent: PathBuf) -> Hierarchy {
        Hierarchy { base, parent }
    }

    pub(crate) fn cgroup(&self, name: &str) -> Cgroup {
        Cgroup { base: self.base.clone(), parent: self.parent.clone(), dir: self.parent.join(name) }
    }
}

/// One run's cgroup directory.
#[derive(Debug)]
pub(crate) struct Cgroup {
    base: PathBuf,
    parent: PathBuf,
    dir: PathBuf,
}

impl Cgroup {
    /// The run's cgroup directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Directories whose `cgroup.subtree_control` must list a controller for the run's
    /// cgroup to get it: `base`, then each directory down to `parent`.
    fn delegation_chain(&self) -> Vec<PathBuf> {
        let mut chain = vec![self.base.clone()];
        if let Ok(rest) = self.parent.strip_prefix(&self.base) {
            let mut cur = self.base.clone();
            for part in rest.components() {
                cur.push(part);
                chain.push(cur.clone());
            }
        }
        chain
    }

    /// Enables a controller down the chain. An error when `needed_for` names a limit;
    /// best effort (for accounting only) otherwise.
    fn enable(&self, controller: &'static str, needed_for: Option<&'static str>) -> Result<(), CgroupError> {
        for dir in self.delegation_chain() {
            let available = fs::read_optional(&dir.join("cgroup.controllers"))?.unwrap_or_default();
            let missing = || CgroupError::MissingController { controller, limit: needed_for.unwrap_or("") };
            if !available.split_whitespace().any(|c| c == controller) {
                return match needed_for {
                    Some(_) => Err(missing()),
                    None => Ok(()),
                };
            }
            let enabled = fs::read_optional(&dir.join("cgroup.subtree_control"))?.unwrap_or_default();
            if enabled.split_whitespace().any(|c| c == controller) {
                continue;
            }
            // EBUSY here is the "no internal processes" rule: a non-root cgroup holding
            // processes (often rbuild's own) cannot delegate controllers; an absolute
            // cgroup parent avoids it.
            if let Err(e) = fs::write(&dir.join("cgroup.subtree_control"), &format!("+{controller}")) {
                let busy = matches!(&e, CgroupError::Io { source, .. } if source.raw_os_error() == Some(libc::EBUSY));
                return match needed_for {
                    Some(_) if busy => Err(CgroupError::Unavailable {
                        reason: format!(
                            "cannot delegate the {controller} controller below {}: it holds processes; \
                             use an absolute cgroup parent such as /rbuild",
                            dir.display()
                        ),
                    }),
                    Some(_) => Err(e),
                    None => Ok(()),
                };
            }
        }
        Ok(())
    }
}

impl Manager for Cgroup {
    fn create(&self, limits: &Limits) -> Result<(), CgroupError> {
        fs::create_dir_all(&self.parent)?;
        let cpu = limits.cpu_quota_us.is_some() || limits.cpu_period_us.is_some();
        self.enable("memory", limits.memory_bytes.map(|_| "memory"))?;
        self.enable("pids", limits.pids.map(|_| "pids"))?;
        if cpu {
            self.enable("cpu", Some("cpu"))?;
        }
        fs::create_dir_all(&self.dir)?;
        memory::apply(&self.dir, limits)?;
        if cpu {
            cpu::apply(&self.dir, limits)?;
        }
        pids::apply(&self.dir, limits)?;
        Ok(())
    }

    fn procs(&self) -> Result<Vec<u32>, CgroupError> {
        fs::read_pids_recursive(&self.dir)
    }

    fn kill_all(&self) -> Result<(), CgroupError> {
        let kill_file = self.dir.join("cgroup.kill");
        if kill_file.exists() {
            // Linux 5.14+: the kernel kills every task, including ones being forked.
            fs::write(&kill_file, "1")?;
        } else if self.dir.join("cgroup.freeze").exists() {
            fs::write(&self.dir.join("cgroup.freeze"), "1")?;
            kill_pids(&self.procs()?);
            fs::write(&self.dir.join("cgroup.freeze"), "0")?;
        }
        for _ in 0..50 {
            let pids = self.procs()?;
            if pids.is_empty() {
                break;
            }
            kill_pids(&pids);
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    fn stats(&self) -> Result<CgroupStats, CgroupError> {
        let mut stats = CgroupStats::default();
        memory::stats(&self.dir, &mut stats)?;
        cpu::stats(&self.dir, &mut stats)?;
        Ok(stats)
    }

    fn remove(&self) -> Result<(), CgroupError> {
        fs::remove_dir_retrying(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::super::mountinfo::{parse_mountinfo, parse_proc_cgroup};
    use super::*;

    #[test]
    fn paths_relative_and_absolute() {
        let mounts = parse_mountinfo("1 0 0:1 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
        let own = parse_proc_cgroup("0::/user.slice/session-1.scope\n");
        let rel = Hierarchy::new(&mounts, &own, None, "rbuild").unwrap();
        assert_eq!(rel.base, Path::new("/sys/fs/cgroup/user.slice/session-1.scope"));
        assert_eq!(rel.cgroup("r").dir, Path::new("/sys/fs/cgroup/user.slice/session-1.scope/rbuild/r"));
        let abs = Hierarchy::new(&mounts, &own, None, "/rbuild/builds").unwrap();
        assert_eq!(abs.base, Path::new("/sys/fs/cgroup"));
        let chain = abs.cgroup("r").delegation_chain();
        assert_eq!(
            chain,
            vec![
                PathBuf::from("/sys/fs/cgroup"),
                PathBuf::from("/sys/fs/cgroup/rbuild"),
                PathBuf::from("/sys/fs/cgroup/rbuild/builds")
            ]
        );
    }

    #[test]
    fn explicit_mount_must_be_cgroup2() {
        let mounts = parse_mountinfo("1 0 0:1 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
        let err =
            Hierarchy::new(&mounts, &[], Some(&PathBuf::from("/sys/fs/cgroup/memory")), "x").unwrap_err();
        assert!(matches!(err, CgroupError::Unavailable { .. }));
    }

    fn fake_tree(controllers: &str) -> (tempfile::TempDir, Cgroup) {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        let parent = base.join("rbuild");
        for dir in [&base, &parent] {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join("cgroup.controllers"), controllers).unwrap();
        }
        let cg = Hierarchy::from_dirs(base, parent).cgroup("run");
        (tmp, cg)
    }

    #[test]
    fn limits_need_available_controllers() {
        let (_tmp, cg) = fake_tree("cpu io");
        let err = cg.create(&Limits { memory_bytes: Some(1 << 20), ..Limits::default() }).unwrap_err();
        assert!(matches!(err, CgroupError::MissingController { controller: "memory", .. }), "{err}");
        // Without limits the missing controllers only cost accounting.
        cg.create(&Limits::default()).unwrap();
        assert!(cg.dir.is_dir());
    }

    #[test]
    fn create_enables_and_applies() {
        let (_tmp, cg) = fake_tree("cpu memory pids");
        std::fs::create_dir_all(&cg.dir).unwrap();
        std::fs::write(cg.dir.join("memory.swap.max"), "").unwrap();
        cg.create(&Limits { memory_bytes: Some(1 << 20), pids: Some(9), ..Limits::default().with_cpus(0.5) })
            .unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        // Fake files keep only the last write; a kernel would list all three.
        assert_eq!(read(cg.parent.join("cgroup.subtree_control")), "+cpu");
        assert_eq!(read(cg.dir.join("memory.max")), "1048576");
        assert_eq!(read(cg.dir.join("memory.swap.max")), "0");
        assert_eq!(read(cg.dir.join("cpu.max")), "50000 100000");
        assert_eq!(read(cg.dir.join("pids.max")), "9");
    }

    #[test]
    fn stats_from_fake_files() {
        let (_tmp, cg) = fake_tree("");
        std::fs::create_dir_all(&cg.dir).unwrap();
        std::fs::write(cg.dir.join("memory.peak"), "4096\n").unwrap();
        std::fs::write(cg.dir.join("memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n").unwrap();
        std::fs::write(
            cg.dir.join("cpu.stat"),
            "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_throttled 2\n",
        )
        .unwrap();
        let s = cg.stats().unwrap();
        assert_eq!(s.peak_memory_bytes, Some(4096));
        assert_eq!(s.oom_kills, Some(1));
        assert_eq!(s.memory_limit_hits, Some(3));
        assert_eq!(s.cpu_time, Some(Duration::from_micros(2500)));
        assert_eq!(s.cpu_throttled_periods, Some(2));
    }
}

//! cgroup v1: one hierarchy per controller (or a few co-mounted), one directory per run in
//! each of them.

mod cpu;
mod cpuacct;
mod freezer;
mod memory;
mod pids;

use std::path::{Path, PathBuf};

use super::mountinfo::{CgroupMount, OwnCgroup, parent_dir};
use super::{CgroupError, CgroupStats, Manager, fs, join_cgroup_path, kill_pids};
use crate::spec::Limits;

/// The v1 controllers a run uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Controller {
    Memory,
    Cpu,
    Cpuacct,
    Pids,
    Freezer,
}

impl Controller {
    const ALL: [Controller; 5] =
        [Controller::Memory, Controller::Cpu, Controller::Cpuacct, Controller::Pids, Controller::Freezer];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Pids => "pids",
            Controller::Freezer => "freezer",
        }
    }
}

/// Parent directories (one per mounted controller) under which runs' cgroups go.
#[derive(Clone, Debug)]
pub(crate) struct Hierarchy {
    parents: Vec<(Controller, PathBuf)>,
}

impl Hierarchy {
    pub(crate) fn new(
        mounts: &[CgroupMount],
        own: &[OwnCgroup],
        parent: &str,
    ) -> Result<Hierarchy, CgroupError> {
        let mut parents = Vec::new();
        for controller in Controller::ALL {
            let name = controller.name();
            let Some(mount) = mounts.iter().find(|m| !m.is_v2() && m.controllers.iter().any(|c| c == name))
            else {
                continue;
            };
            let own_path = own
                .iter()
                .find(|o| o.controllers.iter().any(|c| c == name))
                .map(|o| o.path.as_str())
                .unwrap_or("/");
            let base = parent_dir(mount, own_path, parent);
            parents.push((controller, join_cgroup_path(&base, parent)?));
        }
        if parents.is_empty() {
            return Err(CgroupError::Unavailable { reason: "no cgroup v1 controller is mounted".to_owned() });
        }
        Ok(Hierarchy { parents })
    }

    /// A hierarchy over explicit directories (tests use folders of fake files).
    #[cfg(test)]
    pub(crate) fn from_parents(parents: Vec<(Controller, PathBuf)>) -> Hierarchy {
        Hierarchy { parents }
    }

    pub(crate) fn cgroup(&self, name: &str) -> Cgroup {
        Cgroup { dirs: self.parents.iter().map(|(c, p)| (*c, p.join(name))).collect() }
    }
}

/// One run's directories, one per controller (co-mounted controllers share one).
#[derive(Debug)]
pub(crate) struct Cgroup {
    dirs: Vec<(Controller, PathBuf)>,
}

impl Cgroup {
    fn dir(&self, controller: Controller) -> Option<&Path> {
        self.dirs.iter().find(|(c, _)| *c == controller).map(|(_, d)| d.as_path())
    }

    fn unique_dirs(&self) -> Vec<&Path> {
        let mut out: Vec<&Path> = Vec::new();
        for (_, d) in &self.dirs {
            if !out.contains(&d.as_path()) {
                out.push(d);
            }
        }
        out
    }

    /// One entry per directory: the names of the controllers in it joined with ','
    /// (as the kernel names co-mounted hierarchies), and the directory.
    pub(crate) fn named_dirs(&self) -> Vec<(String, PathBuf)> {
        self.unique_dirs()
            .into_iter()
            .map(|dir| {
                let names: Vec<&str> =
                    self.dirs.iter().filter(|(_, d)| d.as_path() == dir).map(|(c, _)| c.name()).collect();
                (names.join(","), dir.to_path_buf())
            })
            .collect()
    }

    fn require(&self, controller: Controller, limit: &'static str) -> Result<&Path, CgroupError> {
        self.dir(controller).ok_or(CgroupError::MissingController { controller: controller.name(), limit })
    }
}

impl Manager for Cgroup {
    fn create(&self, limits: &Limits) -> Result<(), CgroupError> {
        for dir in self.unique_dirs() {
            fs::create_dir_all(dir)?;
        }
        if limits.memory_bytes.is_some() {
            memory::apply(self.require(Controller::Memory, "memory")?, limits)?;
        }
        if limits.cpu_quota_us.is_some() || limits.cpu_period_us.is_some() {
            cpu::apply(self.require(Controller::Cpu, "cpu")?, limits)?;
        }
        if limits.pids.is_some() {
            pids::apply(self.require(Controller::Pids, "pids")?, limits)?;
        }
        Ok(())
    }

    fn procs(&self) -> Result<Vec<u32>, CgroupError> {
        let mut all = Vec::new();
        for dir in self.unique_dirs() {
            // Recursive: an OCI runtime puts the container in a child cgroup.
            for pid in fs::read_pids_recursive(dir)? {
                if !all.contains(&pid) {
                    all.push(pid);
                }
            }
        }
        Ok(all)
    }

    fn kill_all(&self) -> Result<(), CgroupError> {
        // Freezing first means no process can fork between listing and killing; without
        // the freezer, repeated passes catch the children forked meanwhile.
        if let Some(dir) = self.dir(Controller::Freezer) {
            freezer::freeze(dir)?;
            let pids = fs::read_pids_recursive(dir)?;
            kill_pids(&pids);
            freezer::thaw(dir)?;
        }
        for _ in 0..50 {
            let pids = self.procs()?;
            if pids.is_empty() {
                break;
            }
            kill_pids(&pids);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        Ok(())
    }

    fn stats(&self) -> Result<CgroupStats, CgroupError> {
        let mut stats = CgroupStats::default();
        if let Some(dir) = self.dir(Controller::Memory) {
            memory::stats(dir, &mut stats)?;
        }
        if let Some(dir) = self.dir(Controller::Cpuacct) {
            cpuacct::stats(dir, &mut stats)?;
        }
        if let Some(dir) = self.dir(Controller::Cpu) {
            cpu::stats(dir, &mut stats)?;
        }
        Ok(stats)
    }

    fn remove(&self) -> Result<(), CgroupError> {
        let mut first_err = None;
        for dir in self.unique_dirs() {
            if let Err(e) = fs::remove_dir_retrying(dir) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::super::mountinfo::{parse_mountinfo, parse_proc_cgroup};
    use super::*;

    #[test]
    fn comounted_controllers_share_a_dir() {
        let mounts = parse_mountinfo(
            "1 0 0:1 / /cg/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
             2 0 0:2 / /cg/memory rw - cgroup cgroup rw,memory\n",
        );
        let own = parse_proc_cgroup("3:cpu,cpuacct:/\n2:memory:/session\n");
        let h = Hierarchy::new(&mounts, &own, "rbuild").unwrap();
        let cg = h.cgroup("run1");
        assert_eq!(cg.dir(Controller::Cpu), Some(Path::new("/cg/cpu,cpuacct/rbuild/run1")));
        assert_eq!(cg.dir(Controller::Memory), Some(Path::new("/cg/memory/session/rbuild/run1")));
        assert_eq!(cg.unique_dirs().len(), 2);
        assert!(cg.dir(Controller::Pids).is_none());
    }

    #[test]
    fn missing_controller_for_a_limit_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let h = Hierarchy::from_parents(vec![(Controller::Memory, tmp.path().join("memory"))]);
        let cg = h.cgroup("run");
        let err = cg.create(&Limits { pids: Some(10), ..Limits::default() }).unwrap_err();
        assert!(matches!(err, CgroupError::MissingController { controller: "pids", .. }), "{err}");
    }

    #[test]
    fn create_applies_limits_and_remove_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let parents: Vec<(Controller, PathBuf)> =
            Controller::ALL.iter().map(|c| (*c, tmp.path().join(c.name()))).collect();
        let h = Hierarchy::from_parents(parents);
        let cg = h.cgroup("run");
        // Fake kernel files: a real cgroup directory is pre-populated by the kernel.
        for (c, dir) in &cg.dirs {
            std::fs::create_dir_all(dir).unwrap();
            if *c == Controller::Memory {
                std::fs::write(dir.join("memory.memsw.limit_in_bytes"), "").unwrap();
            }
        }
        let limits = Limits {
            memory_bytes: Some(64 << 20),
            cpu_quota_us: Some(50_000),
            pids: Some(32),
            ..Limits::default()
        };
        cg.create(&limits).unwrap();
        let read = |c: Controller, f: &str| std::fs::read_to_string(cg.dir(c).unwrap().join(f)).unwrap();
        assert_eq!(read(Controller::Memory, "memory.limit_in_bytes"), "67108864");
        assert_eq!(read(Controller::Memory, "memory.memsw.limit_in_bytes"), "67108864");
        assert_eq!(read(Controller::Cpu, "cpu.cfs_period_us"), "100000");
        assert_eq!(read(Controller::Cpu, "cpu.cfs_quota_us"), "50000");
        assert_eq!(read(Controller::Pids, "pids.max"), "32");

        // Remove only works on empty directories; clear the fake files first.
        for (_, dir) in &cg.dirs {
            for entry in std::fs::read_dir(dir).unwrap() {
                std::fs::remove_file(entry.unwrap().path()).unwrap();
            }
        }
        cg.remove().unwrap();
        assert!(cg.dirs.iter().all(|(_, d)| !d.exists()));
    }
}

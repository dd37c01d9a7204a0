//! A run's scratch directory under `state_dir/runs/<id>`: the rootfs mount point and the
//! generated `/etc` files.

use std::io;
use std::path::{Path, PathBuf};

use crate::etc_files;
use crate::spec::Spec;

const HOSTS: &str = "hosts";
const RESOLV: &str = "resolv.conf";
const HOSTNAME: &str = "hostname";
const ROOTFS: &str = "rootfs";

/// The directory and its known contents. Removal deletes exactly those entries (never
/// recursively), so that a mount that somehow stayed on the rootfs mount point can never
/// make cleanup walk into a layer.
#[derive(Debug)]
pub(crate) struct RunDir {
    dir: PathBuf,
}

impl RunDir {
    /// Creates the directory and writes the `/etc` files for `spec`.
    pub(crate) fn create(runs: &Path, id: &str, spec: &Spec, host_resolv: &str) -> io::Result<RunDir> {
        let dir = runs.join(id);
        std::fs::create_dir(&dir)?;
        let run = RunDir { dir };
        std::fs::create_dir(run.rootfs())?;
        std::fs::write(run.hosts(), etc_files::hosts(&spec.hostname, &spec.extra_hosts))?;
        std::fs::write(run.resolv(), etc_files::resolv_conf(host_resolv, spec.network))?;
        std::fs::write(run.hostname(), etc_files::hostname_file(&spec.hostname))?;
        Ok(run)
    }

    pub(crate) fn rootfs(&self) -> PathBuf {
        self.dir.join(ROOTFS)
    }
    pub(crate) fn hosts(&self) -> PathBuf {
        self.dir.join(HOSTS)
    }
    pub(crate) fn resolv(&self) -> PathBuf {
        self.dir.join(RESOLV)
    }
    pub(crate) fn hostname(&self) -> PathBuf {
        self.dir.join(HOSTNAME)
    }

    /// Best-effort removal of what [`RunDir::create`] made.
    pub(crate) fn remove(&self) {
        for file in [HOSTS, RESOLV, HOSTNAME] {
            let _ = std::fs::remove_file(self.dir.join(file));
        }
        let _ = std::fs::remove_dir(self.rootfs());
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Rootfs;

    #[test]
    fn create_and_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = Rootfs::Overlay { lower: vec![], upper: "/u".into(), work: "/w".into() };
        let spec = Spec::new(vec!["true".into()], rootfs);
        let run = RunDir::create(tmp.path(), "r1", &spec, "nameserver 1.1.1.1\n").unwrap();
        assert!(run.rootfs().is_dir());
        assert_eq!(std::fs::read_to_string(run.hostname()).unwrap(), "buildkitsandbox\n");
        assert_eq!(std::fs::read_to_string(run.resolv()).unwrap(), "nameserver 1.1.1.1\n");
        run.remove();
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}

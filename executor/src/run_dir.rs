//! Host-side files of runs under `state_dir`:
//!
//! - `rootfs`: the empty mount point every native run mounts its rootfs on, inside its own
//!   mount namespace;
//! - `runs/<id>`: an OCI-runtime run's bundle (`config.json`, the runtime's log) and its
//!   rootfs mount point, removed afterwards;
//! - `etc/<name>-<hash>`: the generated `/etc/hosts`, `/etc/resolv.conf` and
//!   `/etc/hostname`, shared by every run with the same content. They are bind-mounted
//!   read-only, as BuildKit does, so sharing them is safe and saves a few file creations
//!   per run.

use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};

use crate::etc_files;
use crate::spec::Spec;

/// A run's directory; removal deletes exactly what [`RunDir::create`] made (never
/// recursively), so that a mount left on the mount point could never make cleanup walk
/// into a layer.
#[derive(Debug)]
pub(crate) struct RunDir {
    dir: PathBuf,
}

impl RunDir {
    pub(crate) fn create(runs: &Path, id: &str) -> io::Result<RunDir> {
        let dir = runs.join(id);
        std::fs::create_dir(&dir)?;
        let run = RunDir { dir };
        std::fs::create_dir(run.rootfs())?;
        Ok(run)
    }

    /// The run directory at `dir`, made by an earlier process (to remove what it left).
    pub(crate) fn existing(dir: PathBuf) -> RunDir {
        RunDir { dir }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// The OCI bundle's `config.json` (OCI runtime backend only).
    pub(crate) fn config_json(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// The OCI runtime's log (OCI runtime backend only).
    pub(crate) fn runtime_log(&self) -> PathBuf {
        self.dir.join("runtime.log")
    }

    /// Best-effort removal.
    pub(crate) fn remove(&self) {
        let _ = std::fs::remove_file(self.config_json());
        let _ = std::fs::remove_file(self.runtime_log());
        let _ = std::fs::remove_dir(self.rootfs());
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Paths of the three generated files for one run.
#[derive(Debug)]
pub(crate) struct EtcFiles {
    pub hosts: PathBuf,
    pub resolv: PathBuf,
    pub hostname: PathBuf,
}

impl EtcFiles {
    /// Finds or writes the files `spec` needs in `etc_dir`.
    pub(crate) fn ensure(etc_dir: &Path, spec: &Spec, host_resolv: &str) -> io::Result<EtcFiles> {
        Ok(EtcFiles {
            hosts: shared_file(etc_dir, "hosts", &etc_files::hosts(&spec.hostname, &spec.extra_hosts))?,
            resolv: shared_file(etc_dir, "resolv.conf", &etc_files::resolv_conf(host_resolv, spec.network))?,
            hostname: shared_file(etc_dir, "hostname", &etc_files::hostname_file(&spec.hostname))?,
        })
    }
}

/// `etc_dir/<name>-<hash of content>`, written (atomically, by rename) when missing.
fn shared_file(etc_dir: &Path, name: &str, content: &str) -> io::Result<PathBuf> {
    // SipHash with fixed keys: stable across processes sharing the state directory.
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    content.hash(&mut hasher);
    let path = etc_dir.join(format!("{name}-{:016x}", hasher.finish()));
    if std::fs::read_to_string(&path).is_ok_and(|existing| existing == content) {
        return Ok(path);
    }
    let tmp = etc_dir.join(format!(".{name}-{}-{:x}", std::process::id(), rand_suffix()));
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, &path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(path)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Rootfs;

    #[test]
    fn run_dir_create_and_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir::create(tmp.path(), "r1").unwrap();
        assert!(run.rootfs().is_dir());
        run.remove();
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn etc_files_are_shared_by_content() {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = Rootfs::Overlay { lower: vec![], upper: "/u".into(), work: "/w".into() };
        let mut spec = Spec::new(vec!["true".into()], rootfs);
        let a = EtcFiles::ensure(tmp.path(), &spec, "nameserver 1.1.1.1\n").unwrap();
        let b = EtcFiles::ensure(tmp.path(), &spec, "nameserver 1.1.1.1\n").unwrap();
        assert_eq!(a.hosts, b.hosts);
        assert_eq!(std::fs::read_to_string(&a.hostname).unwrap(), "buildkitsandbox\n");
        assert_eq!(std::fs::read_to_string(&a.resolv).unwrap(), "nameserver 1.1.1.1\n");
        spec.hostname = "other".into();
        let c = EtcFiles::ensure(tmp.path(), &spec, "nameserver 1.1.1.1\n").unwrap();
        assert_ne!(a.hostname, c.hostname);
        assert_eq!(a.resolv, c.resolv);
        // Three files for the first spec, two more for the second; no temporaries left.
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 5);
    }
}

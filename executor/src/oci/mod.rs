//! Optional backend that hands the sandbox to an OCI runtime (runc, crun) as a bundle, for
//! sites that must use their own runtime.
//!
//! The rootfs overlay is mounted on the host (as containerd and BuildKit do) at the
//! bundle's `rootfs`, the same mounts, capabilities, masked paths and seccomp profile as
//! the native backend are written to `config.json`, and the container goes into a child
//! cgroup (`ctr`) of the run's cgroup, so that limits, accounting and OOM detection stay
//! with rbuild. Weaker than the native backend: the command is the container's pid 1
//! (nothing reaps orphaned zombies, and the command cannot signal itself); an exit code
//! above 128 is reported as a signal (the runtime cannot tell them apart); on cgroup v1 an
//! OOM kill is inferred from a SIGKILL at the memory limit (the kernel counts it in the
//! runtime's child cgroup, which is gone when the run ends); mount stubs are found by
//! looking before the run rather than reported by the sandbox.

mod config;

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::fs::{Mode, OFlags};

use crate::error::ExecutorError;
use crate::init::apply::mount_rootfs;
use crate::init::in_root;
use crate::protocol::OverlayFeatures;
use crate::run_dir::{EtcFiles, RunDir};
use crate::spec::{ExitStatus, Rootfs, Spec};
use crate::user;

/// A container known to the runtime, deleted (forcibly) during cleanup.
#[derive(Debug)]
pub(crate) struct OciContainer {
    pub binary: PathBuf,
    pub root: PathBuf,
    pub id: String,
}

impl OciContainer {
    /// Best effort: after a normal `run` the runtime already deleted it.
    pub(crate) fn delete(&self) {
        let _ = Command::new(&self.binary)
            .arg("--root")
            .arg(&self.root)
            .args(["delete", "--force", &self.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Mounts the run's rootfs on the host at the bundle's `rootfs` directory.
pub(crate) fn mount_host_rootfs(
    run_dir: &RunDir,
    spec: &Spec,
    overlay: OverlayFeatures,
) -> Result<PathBuf, ExecutorError> {
    let Rootfs::Overlay { lower, upper, work } = &spec.rootfs;
    let target = run_dir.rootfs();
    mount_rootfs(&target, lower, upper, work, overlay).map_err(|e| ExecutorError::Setup {
        stage: "mounting the rootfs for the OCI runtime".to_owned(),
        reason: e.to_string(),
    })?;
    Ok(target)
}

/// Inputs of [`prepare`] besides the spec.
pub(crate) struct Bundle<'a> {
    pub binary: &'a Path,
    pub state_root: &'a Path,
    pub run_dir: &'a RunDir,
    pub id: &'a str,
    pub etc: &'a EtcFiles,
    pub cgroups_path: Option<String>,
}

/// Creates the working directory, resolves the user, finds the mount points the runtime
/// will have to create, writes `config.json`, and returns the runtime command plus those
/// mount stubs.
pub(crate) fn prepare(spec: &Spec, bundle: &Bundle<'_>) -> Result<(Command, Vec<String>), ExecutorError> {
    let setup = |stage: &str| {
        let stage = stage.to_owned();
        move |e: std::io::Error| ExecutorError::Setup { stage: stage.clone(), reason: e.to_string() }
    };
    let rootfs = bundle.run_dir.rootfs();
    let root = rustix::fs::open(&rootfs, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| setup("opening the rootfs")(e.into()))?;
    in_root::ensure(root.as_fd(), &spec.cwd, in_root::Kind::Dir, &mut |_, _| {})
        .map_err(setup("creating the working directory"))?;
    let mut stubs = Vec::new();
    let fixed = ["/proc", "/dev", "/sys", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname"];
    for dest in fixed.iter().copied().chain(spec.mounts.iter().map(|m| m.dest.as_str())) {
        for path in in_root::missing_prefixes(root.as_fd(), dest) {
            if !stubs.contains(&path) {
                stubs.push(path);
            }
        }
    }
    let passwd =
        in_root::read_file(root.as_fd(), "/etc/passwd", 16 << 20).map_err(setup("reading /etc/passwd"))?;
    let group =
        in_root::read_file(root.as_fd(), "/etc/group", 16 << 20).map_err(setup("reading /etc/group"))?;
    let user = user::resolve(&spec.user, passwd.as_deref(), group.as_deref())
        .map_err(|reason| ExecutorError::User { user: spec.user.clone(), reason })?;
    let cfg = config::config(&config::ConfigInputs {
        spec,
        user: &user,
        rootfs: &rootfs,
        etc: bundle.etc,
        cgroups_path: bundle.cgroups_path.clone(),
    });
    let body = serde_json::to_vec_pretty(&cfg).map_err(|e| setup("encoding config.json")(e.into()))?;
    std::fs::write(bundle.run_dir.config_json(), body).map_err(setup("writing config.json"))?;
    let mut cmd = Command::new(bundle.binary);
    cmd.arg("--root")
        .arg(bundle.state_root)
        .arg("--log")
        .arg(bundle.run_dir.runtime_log())
        .args(["--log-format", "json", "run", "--bundle"])
        .arg(bundle.run_dir.dir())
        .arg(bundle.id)
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Ok((cmd, stubs))
}

/// Error messages the runtime logged (JSON lines with `"level":"error"`).
fn logged_errors(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["level"] == "error")
        .filter_map(|v| v["msg"].as_str().map(str::to_owned))
        .collect()
}

/// Turns the runtime's exit and log into the command's exit status or an error.
pub(crate) fn interpret(
    run_dir: &RunDir,
    status: Option<std::process::ExitStatus>,
    spec: &Spec,
) -> Result<ExitStatus, ExecutorError> {
    use std::os::unix::process::ExitStatusExt;
    let log = std::fs::read_to_string(run_dir.runtime_log()).unwrap_or_default();
    if let Some(msg) = logged_errors(&log).into_iter().next() {
        if msg.contains("exec:") || msg.contains("executable file not found") {
            return Err(ExecutorError::Exec { command: spec.args[0].clone(), reason: msg });
        }
        return Err(ExecutorError::Setup { stage: "running the OCI runtime".to_owned(), reason: msg });
    }
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) if code > 128 && code <= 128 + 64 => Ok(ExitStatus::Signal(code - 128)),
            (Some(code), _) => Ok(ExitStatus::Code(code)),
            (None, Some(sig)) => Ok(ExitStatus::Signal(sig)),
            (None, None) => Ok(ExitStatus::Signal(libc::SIGKILL)),
        },
        None => Err(ExecutorError::Setup {
            stage: "running the OCI runtime".to_owned(),
            reason: "the runtime's exit status is unknown".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_log_errors() {
        let log = r#"{"level":"info","msg":"hello"}
{"level":"error","msg":"runc run failed: unable to start container process: exec: \"nope\": executable file not found in $PATH"}
not json"#;
        let errs = logged_errors(log);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("executable file not found"));
    }
}

//! What one sandboxed run is: the process, its rootfs, extra mounts, network, limits, and
//! what comes back (output chunks and the [`Outcome`]).
//!
//! These types are plain data with `serde` derives: the parent serialises the [`Spec`] to
//! the sandbox init over a pipe.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Hostname used when the caller does not choose one (BuildKit uses the same name).
pub const DEFAULT_HOSTNAME: &str = "buildkitsandbox";

/// One process to run in a sandbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// argv; `args[0]` is looked up in the `PATH` of [`Spec::env`] inside the rootfs when it
    /// contains no `/`.
    pub args: Vec<String>,
    /// Environment as `KEY=VALUE`. `HOME` is added from the user's passwd entry when absent
    /// (as runc does); a default `PATH` is the caller's job.
    pub env: Vec<String>,
    /// Absolute working directory inside the rootfs. Created (mode 0755, owned by root) when
    /// missing and kept in the layer, as BuildKit does for `WORKDIR`.
    pub cwd: String,
    /// `""`, `name`, `uid`, `name:group` or `uid:gid`, resolved against the rootfs'
    /// `/etc/passwd` and `/etc/group`.
    pub user: String,
    /// Hostname inside the sandbox (UTS namespace, `/etc/hostname`, `/etc/hosts`).
    pub hostname: String,
    /// The root filesystem.
    pub rootfs: Rootfs,
    /// Extra mounts, applied in order after `/proc`, `/dev`, `/sys` and the `/etc` files.
    pub mounts: Vec<Mount>,
    /// Network mode.
    pub network: Network,
    /// Resource limits for the whole process tree.
    pub limits: Limits,
    /// Sets `no_new_privs` for the command. Off by default, as in BuildKit, so that `su` and
    /// `sudo` work.
    pub no_new_privileges: bool,
    /// `RUN --security=insecure`: every capability, no seccomp filter, no masked paths and a
    /// writable `/sys`. The caller checks that the user allowed it.
    pub insecure: bool,
    /// Extra `/etc/hosts` entries as `(hostname, ip)`.
    pub extra_hosts: Vec<(String, String)>,
}

impl Spec {
    /// A spec that runs `args` as root in `/` with host networking and no limits.
    pub fn new(args: Vec<String>, rootfs: Rootfs) -> Spec {
        Spec {
            args,
            env: Vec::new(),
            cwd: "/".to_owned(),
            user: String::new(),
            hostname: DEFAULT_HOSTNAME.to_owned(),
            rootfs,
            mounts: Vec::new(),
            network: Network::Host,
            limits: Limits::default(),
            no_new_privileges: false,
            insecure: false,
            extra_hosts: Vec::new(),
        }
    }
}

/// The sandbox's root filesystem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rootfs {
    /// An overlay of read-only `lower` layers under a writable `upper` directory. With no
    /// lower layers, `upper` itself is bind-mounted as the root.
    Overlay {
        /// Lower layers, top-most first; may be empty.
        lower: Vec<PathBuf>,
        /// Directory receiving every write of the run.
        upper: PathBuf,
        /// Overlay work directory on the same file system as `upper`, empty.
        work: PathBuf,
    },
}

/// One extra mount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute path inside the rootfs; created (and removed again after the run if still
    /// empty) when missing.
    pub dest: String,
    /// What is mounted there.
    pub kind: MountKind,
}

/// What an extra mount is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountKind {
    /// A host file or directory (cache, secret and context mounts are prepared by the caller
    /// as binds). Not recursive: mounts below `source` are not carried along.
    Bind {
        /// Host path.
        source: PathBuf,
        /// Mount read-only.
        readonly: bool,
    },
    /// A fresh tmpfs (mode 1777).
    Tmpfs {
        /// Size limit in bytes; the kernel default (half of RAM) when absent.
        size: Option<u64>,
    },
    /// An overlay of directories, e.g. an image or stage mounted with `RUN --mount=from=`.
    Overlay {
        /// Lower layers, top-most first; at least one.
        lower: Vec<PathBuf>,
        /// `(upper, work)` for a writable mount (the caller discards `upper` afterwards);
        /// read-only when absent.
        upper_work: Option<(PathBuf, PathBuf)>,
    },
}

/// Network mode of the sandbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Network {
    /// The host's network namespace (the default, as with `docker build`).
    #[default]
    Host,
    /// A new network namespace with only the loopback interface, up.
    None,
}

/// Resource limits; `None` means unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Memory limit in bytes (swap is not allowed on top of it).
    pub memory_bytes: Option<u64>,
    /// CFS quota in microseconds per period.
    pub cpu_quota_us: Option<u64>,
    /// CFS period in microseconds (100000 when only a quota is given).
    pub cpu_period_us: Option<u64>,
    /// Maximum number of tasks (processes and threads) in the tree.
    pub pids: Option<u64>,
    /// Wall-clock limit: the whole tree is killed when it expires and
    /// [`Outcome::timed_out`] is set.
    pub timeout: Option<Duration>,
}

/// Default CFS period, as used by Docker for `--cpus`.
pub const DEFAULT_CPU_PERIOD_US: u64 = 100_000;

impl Limits {
    /// Sets the CPU quota from a number of CPUs (`--cpus 1.5`), as Docker does.
    pub fn with_cpus(mut self, cpus: f64) -> Limits {
        let quota = (cpus * DEFAULT_CPU_PERIOD_US as f64).round();
        self.cpu_quota_us = Some(if quota < 1000.0 { 1000 } else { quota as u64 });
        self.cpu_period_us = Some(DEFAULT_CPU_PERIOD_US);
        self
    }

    /// Whether any limit needs a cgroup (the timeout does not).
    pub fn needs_cgroup(&self) -> bool {
        self.memory_bytes.is_some()
            || self.cpu_quota_us.is_some()
            || self.cpu_period_us.is_some()
            || self.pids.is_some()
    }
}

/// Which stream a chunk of output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputStream {
    /// The command's standard output.
    Stdout,
    /// The command's standard error.
    Stderr,
}

/// Bytes the command wrote, delivered while it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputChunk {
    /// Where the bytes were written.
    pub stream: OutputStream,
    /// The bytes, as read from the pipe (not split into lines).
    pub data: Vec<u8>,
}

/// How the command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatus {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl ExitStatus {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        matches!(self, ExitStatus::Code(0))
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(code) => write!(f, "exit code {code}"),
            ExitStatus::Signal(sig) => write!(f, "killed by signal {sig}"),
        }
    }
}

/// Resources the whole process tree used.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceStats {
    /// Peak memory of the tree (cgroup peak), or the largest single process' peak RSS
    /// when no cgroup accounting was available.
    pub peak_memory_bytes: Option<u64>,
    /// User plus system CPU time of the tree.
    pub cpu_time: Duration,
    /// Wall-clock time from spawning the sandbox to its end.
    pub wall_time: Duration,
    /// CFS periods in which the tree was throttled by the CPU quota, when known.
    pub cpu_throttled_periods: Option<u64>,
}

impl Outcome {
    /// Why the run did not succeed, in words for the user ("killed: out of memory
    /// (limit 512 MiB)"); `None` for exit code 0.
    pub fn failure_reason(&self, limits: &Limits) -> Option<String> {
        if self.oom_killed {
            return Some(match limits.memory_bytes {
                Some(bytes) => format!("killed: out of memory (limit {})", human_bytes(bytes)),
                None => "killed: out of memory".to_owned(),
            });
        }
        if self.timed_out {
            return Some(match limits.timeout {
                Some(t) => format!("killed: timed out after {t:?}"),
                None => "killed: timed out".to_owned(),
            });
        }
        (!self.exit.success()).then(|| self.exit.to_string())
    }
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The result of a run that reached the command (or was stopped by its limits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The command's exit status. The caller decides what a non-zero exit means.
    pub exit: ExitStatus,
    /// The kernel's OOM killer killed a process of the tree.
    pub oom_killed: bool,
    /// [`Limits::timeout`] expired and the tree was killed.
    pub timed_out: bool,
    /// Resource usage.
    pub stats: ResourceStats,
    /// Things the user should know, e.g. that no cgroup could be created.
    pub warnings: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(exit: ExitStatus, oom: bool, timed_out: bool) -> Outcome {
        Outcome { exit, oom_killed: oom, timed_out, stats: ResourceStats::default(), warnings: Vec::new() }
    }

    #[test]
    fn failure_reasons() {
        let limits = Limits {
            memory_bytes: Some(512 << 20),
            timeout: Some(Duration::from_secs(30)),
            ..Limits::default()
        };
        let cases = [
            (outcome(ExitStatus::Code(0), false, false), None),
            (outcome(ExitStatus::Code(3), false, false), Some("exit code 3")),
            (outcome(ExitStatus::Signal(9), true, false), Some("killed: out of memory (limit 512 MiB)")),
            (outcome(ExitStatus::Signal(9), false, true), Some("killed: timed out after 30s")),
            (outcome(ExitStatus::Signal(15), false, false), Some("killed by signal 15")),
        ];
        for (o, want) in cases {
            assert_eq!(o.failure_reason(&limits).as_deref(), want);
        }
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn cpus_to_quota() {
        let l = Limits::default().with_cpus(1.5);
        assert_eq!((l.cpu_quota_us, l.cpu_period_us), (Some(150_000), Some(100_000)));
        assert!(l.needs_cgroup());
        assert!(!Limits { timeout: Some(Duration::from_secs(1)), ..Limits::default() }.needs_cgroup());
    }
}

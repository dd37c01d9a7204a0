//! The sandbox side: code that runs in the re-executed init process.
//!
//! Process tree of one run:
//!
//! ```text
//! rbuild (tokio)                    parent: cgroup, pipes, output streaming
//!  └─ init_program INIT_ARG         outer init: unshare(mnt, uts, ipc, pid, cgroup[, net]);
//!      │                            kills pid 1 if rbuild exits (see `orphan`)
//!      └─ pid 1 of the new pid ns   mounts the rootfs, pivot_root, resolves the user,
//!          │                        reaps zombies, reports the exit status
//!          └─ the command           drops privileges, seccomp, execve
//! ```
//!
//! The init is a fresh `execve` of a single-threaded program, so `fork`, `unshare` and
//! mount calls are safe without the caveats of a multi-threaded parent.

pub(crate) mod apply;
mod command;
pub(crate) mod in_root;
mod net;
pub(crate) mod orphan;
mod pid1;
pub(crate) mod plan;

use std::fmt::Display;
use std::io::Read;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use nix::sched::CloneFlags;
use nix::unistd::ForkResult;

use crate::protocol::{CgroupFs, FailStage, InitMessage, InitRequest, send_quietly};
use crate::spec::Network;

/// First argument that makes a program act as the sandbox init.
pub const INIT_ARG: &str = "__rbuild-sandbox-init";

/// A setup failure inside the sandbox, reported to the parent.
#[derive(Debug)]
pub(crate) struct Failure {
    pub stage: FailStage,
    pub message: String,
}

impl Failure {
    pub(crate) fn new(stage: FailStage, message: impl Into<String>) -> Failure {
        Failure { stage, message: message.into() }
    }

    fn report(&self, status: impl AsFd) {
        send_quietly(status, &InitMessage::failed(self.stage.clone(), self.message.clone()));
    }
}

/// Attaches the setup stage to an error.
pub(crate) trait Stage<T> {
    fn stage(self, stage: impl Into<String>) -> Result<T, Failure>;
}

impl<T, E: Display> Stage<T> for Result<T, E> {
    fn stage(self, stage: impl Into<String>) -> Result<T, Failure> {
        self.map_err(|e| Failure::new(FailStage::Setup(stage.into()), e.to_string()))
    }
}

/// Entry point of the sandbox init. rbuild's `main` calls this first thing (before any
/// thread or async runtime starts) when its first argument is [`INIT_ARG`]; see
/// [`crate::maybe_sandbox_init`]. Never returns.
pub fn sandbox_init_main() -> ! {
    // SAFETY: the executor spawns the init with one end of its control socket as stdin;
    // nothing else in this fresh process owns fd 0.
    let channel = unsafe { OwnedFd::from_raw_fd(0) };
    let mut channel = std::fs::File::from(channel);
    let request = read_request(&mut channel);
    let channel = OwnedFd::from(channel);
    let status = match take_over_stdin(channel) {
        Ok(status) => status,
        Err((f, channel)) => {
            f.report(&channel);
            std::process::exit(1);
        }
    };
    let req = match request {
        Ok(req) => req,
        Err(f) => {
            f.report(&status);
            std::process::exit(1);
        }
    };
    let parent = match orphan::watch_parent() {
        Ok(parent) => parent,
        Err(message) => {
            Failure::new(FailStage::Setup("watching rbuild".into()), message).report(&status);
            std::process::exit(1);
        }
    };
    match outer(req, status, parent) {
        Ok(code) => std::process::exit(code),
        Err((f, status)) => {
            f.report(&status);
            std::process::exit(1);
        }
    }
}

/// Moves the control socket off fd 0 (to a close-on-exec fd the command will not inherit)
/// and puts `/dev/null` there for the command's stdin.
fn take_over_stdin(channel: OwnedFd) -> Result<OwnedFd, (Failure, OwnedFd)> {
    let moved = match rustix::io::fcntl_dupfd_cloexec(&channel, 3) {
        Ok(fd) => fd,
        Err(e) => {
            return Err((
                Failure::new(FailStage::Setup("moving the control socket".into()), e.to_string()),
                channel,
            ));
        }
    };
    drop(channel);
    let null = rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    );
    // dup2 onto 0 clears close-on-exec, which is what the command's stdin needs.
    match null
        .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error()))
        .and_then(|null| nix::unistd::dup2_stdin(&null))
    {
        Ok(()) => Ok(moved),
        Err(e) => {
            Err((Failure::new(FailStage::Setup("opening /dev/null as stdin".into()), e.to_string()), moved))
        }
    }
}

fn read_request(channel: &mut std::fs::File) -> Result<InitRequest, Failure> {
    let mut buf = Vec::new();
    channel.read_to_end(&mut buf).stage("reading the sandbox request")?;
    serde_json::from_slice(&buf).stage("decoding the sandbox request")
}

/// The outer init: moves into the run's cgroup, creates the namespaces, then forks pid 1
/// and waits for it (killing it if rbuild, watched through `parent`, exits first).
///
/// The init moves itself, rather than the parent writing its pid to `cgroup.procs`: moving a
/// whole process takes the kernel's global threadgroup lock, which waits for an RCU grace
/// period (measured here: 14.6 ms per move, against 0.4 ms for a thread moving itself), and
/// that wait was the largest part of a trivial RUN. On v1 this single-threaded process
/// writes 0 to each hierarchy's `tasks` file; on v2 pid 1 is born in the cgroup
/// (`CLONE_INTO_CGROUP`) and creates the cgroup namespace itself.
fn outer(req: InitRequest, status: OwnedFd, parent: Option<OwnedFd>) -> Result<i32, (Failure, OwnedFd)> {
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWPID;
    if req.spec.network == Network::None {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    let mut v2_cgroup = None;
    match &req.cgroup_fs {
        CgroupFs::None => flags |= CloneFlags::CLONE_NEWCGROUP,
        CgroupFs::V1(dirs) => {
            for (_, dir) in dirs {
                if let Err(e) = std::fs::write(dir.join("tasks"), "0")
                    .stage(format!("joining the cgroup {}", dir.display()))
                {
                    return Err((e, status));
                }
            }
            // Rooted at the run's cgroup, which this process is in now.
            flags |= CloneFlags::CLONE_NEWCGROUP;
        }
        // Pid 1 is forked into it and creates the cgroup namespace itself.
        CgroupFs::V2(dir) => v2_cgroup = Some(dir.as_path()),
    }
    if let Err(e) = nix::sched::unshare(flags).stage("creating namespaces") {
        return Err((e, status));
    }
    let forked = match v2_cgroup {
        Some(dir) => fork_into_cgroup(dir),
        None => fork_pid1(),
    };
    match forked {
        Ok(ForkResult::Child) => {
            drop(parent);
            pid1::run(req, status)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(status);
            Ok(orphan::wait_for_pid1(child, parent.as_ref()))
        }
        Err(f) => Err((f, status)),
    }
}

/// Forks pid 1.
fn fork_pid1() -> Result<ForkResult, Failure> {
    // SAFETY: this process is single-threaded (a fresh exec that started no threads).
    unsafe { nix::unistd::fork() }
        .map_err(|e| Failure::new(FailStage::Setup("forking pid 1".into()), e.to_string()))
}

/// Forks pid 1 straight into the cgroup v2 directory `dir` (`clone3` with
/// `CLONE_INTO_CGROUP`, Linux 5.7). Where the kernel lacks it, a plain fork whose child
/// moves itself through `cgroup.procs`.
fn fork_into_cgroup(dir: &std::path::Path) -> Result<ForkResult, Failure> {
    /// `struct clone_args` up to and including `cgroup` (CLONE_ARGS_SIZE_VER2).
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    use std::os::fd::AsRawFd;
    let cgroup = rustix::fs::open(
        dir,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .stage(format!("opening the cgroup {}", dir.display()))?;
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: like fork(2) (no CLONE_VM, no new stack): the child gets a copy of this
    // single-threaded process and returns here with 0.
    let rc = unsafe {
        libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>())
    };
    match rc {
        0 => Ok(ForkResult::Child),
        pid if pid > 0 => Ok(ForkResult::Parent { child: nix::unistd::Pid::from_raw(pid as i32) }),
        _ => {
            let err = std::io::Error::last_os_error();
            if !matches!(err.raw_os_error(), Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL)) {
                return Err(Failure::new(FailStage::Setup("forking pid 1".into()), err.to_string()));
            }
            let forked = fork_pid1()?;
            if let ForkResult::Child = forked {
                std::fs::write(dir.join("cgroup.procs"), "0")
                    .stage(format!("joining the cgroup {}", dir.display()))?;
            }
            Ok(forked)
        }
    }
}

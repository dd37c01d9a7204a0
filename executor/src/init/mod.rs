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

/// Moves this (single-threaded) process into the run's cgroup v1 directories by writing 0
/// to their `tasks` files. Done here rather than by the parent writing our pid to
/// `cgroup.procs`: a whole-process move takes the kernel's global threadgroup lock, which
/// waits for an RCU grace period (measured here: 14.6 ms per move against 0.4 ms for a
/// thread moving itself), and that wait was the largest part of a trivial RUN.
fn join_v1_cgroup(cgroup_fs: &CgroupFs) -> Result<(), Failure> {
    let CgroupFs::V1(dirs) = cgroup_fs else { return Ok(()) };
    for (_, dir) in dirs {
        let tasks = dir.join("tasks");
        std::fs::write(&tasks, "0").stage(format!("joining the cgroup {}", dir.display()))?;
    }
    Ok(())
}

/// The outer init: new namespaces, then fork pid 1 and wait for it (killing it if rbuild,
/// watched through `parent`, exits first).
fn outer(req: InitRequest, status: OwnedFd, parent: Option<OwnedFd>) -> Result<i32, (Failure, OwnedFd)> {
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWCGROUP;
    if req.spec.network == Network::None {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    if let Err(e) = join_v1_cgroup(&req.cgroup_fs) {
        return Err((e, status));
    }
    // In the run's cgroup by now (moved there by the parent on cgroup v2, by
    // `join_v1_cgroup` on v1), so the new cgroup namespace is rooted there.
    if let Err(e) = nix::sched::unshare(flags).stage("creating namespaces") {
        return Err((e, status));
    }
    // SAFETY: this process is single-threaded (a fresh exec that started no threads).
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            drop(parent);
            pid1::run(req, status)
        }
        Ok(ForkResult::Parent { child }) => {
            drop(status);
            Ok(orphan::wait_for_pid1(child, parent.as_ref()))
        }
        Err(e) => Err((Failure::new(FailStage::Setup("forking pid 1".into()), e.to_string()), status)),
    }
}

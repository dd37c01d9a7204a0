//! Pid 1 of the sandbox: builds the root filesystem, pivots into it, starts the command and
//! reaps every process of the namespace until the command ends.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};
use rustix::fs::{self as rfs, FileType, Mode, OFlags};

use super::apply::{Applier, mount_rootfs};
use super::command::{self, ExecPlan};
use super::{Failure, Stage, plan};
use crate::protocol::{CgroupFs, FailStage, InitMessage, InitRequest, send_quietly};
use crate::spec::{ExitStatus, Network, Rootfs};
use crate::user;

pub(super) fn run(req: InitRequest, status: OwnedFd) -> ! {
    let code = match prepare(&req, status.as_fd()) {
        Ok(exec) => supervise(&exec, status),
        Err(f) => {
            f.report(&status);
            1
        }
    };
    std::process::exit(code)
}

fn prepare(req: &InitRequest, status: BorrowedFd<'_>) -> Result<ExecPlan, Failure> {
    let spec = &req.spec;
    // If the outer init is killed (cancellation), the kernel kills pid 1 and with it the
    // whole namespace.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).stage("setting the parent-death signal")?;
    if let CgroupFs::V2(_) = &req.cgroup_fs {
        // Born in the run's cgroup (see `super::outer`): the namespace is rooted there.
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .stage("creating the cgroup namespace")?;
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    // Nothing mounted from here on may propagate back to the host.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .stage("making mounts private")?;
    nix::unistd::sethostname(&spec.hostname).stage("setting the hostname")?;
    if spec.network == Network::None {
        super::net::loopback_up().stage("bringing up the loopback interface")?;
    }

    let Rootfs::Overlay { lower, upper, work } = &spec.rootfs;
    mount_rootfs(&req.rootfs_dir, lower, upper, work, req.overlay).stage("mounting the rootfs")?;
    let root = rfs::open(&req.rootfs_dir, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .stage("opening the rootfs")?;
    let mut applier = Applier::new(root.as_fd(), req.overlay).stage("inspecting the rootfs")?;
    // Created before any mount so that it lands in the rootfs, like BuildKit's runc
    // executor does; it is kept because WORKDIR relies on it.
    applier.ensure_kept(&spec.cwd).stage(format!("creating the working directory {}", spec.cwd))?;
    for step in plan::plan(req) {
        applier.apply(&step).stage(format!("mounting {}", step.dest()))?;
    }
    send_quietly(status, &InitMessage::Stubs { paths: std::mem::take(&mut applier.stubs) });
    drop(applier);
    drop(root);

    pivot_into(&req.rootfs_dir).stage("pivoting into the rootfs")?;

    let passwd = read_small_file(Path::new("/etc/passwd")).stage("reading /etc/passwd")?;
    let group = read_small_file(Path::new("/etc/group")).stage("reading /etc/group")?;
    let user = user::resolve(&spec.user, passwd.as_deref(), group.as_deref())
        .map_err(|reason| Failure::new(FailStage::User, reason))?;
    // The working directory may be below a mount that hid the one created above.
    let new_root = rfs::open("/", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .stage("opening the new root")?;
    super::in_root::ensure(new_root.as_fd(), &spec.cwd, super::in_root::Kind::Dir, &mut |_, _| {})
        .stage(format!("creating the working directory {}", spec.cwd))?;
    ExecPlan::new(spec, &user)
}

/// `pivot_root(".", ".")` then detaching the old root, as runc does: no directory for the
/// old root is needed inside the new one.
fn pivot_into(rootfs: &Path) -> nix::Result<()> {
    nix::unistd::chdir(rootfs)?;
    nix::unistd::pivot_root(".", ".")?;
    umount2(".", MntFlags::MNT_DETACH)?;
    nix::unistd::chdir("/")
}

/// Reads a passwd-style file without blocking on a FIFO or reading a huge file that a
/// hostile image placed there. `None` when missing.
fn read_small_file(path: &Path) -> std::io::Result<Option<String>> {
    let fd = match rfs::open(path, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(rfs::fstat(&fd)?.st_mode) != FileType::RegularFile {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut text = String::new();
    std::fs::File::from(fd).take(16 << 20).read_to_string(&mut text)?;
    Ok(Some(text))
}

/// Starts the command and reaps until it ends; returns pid 1's exit code.
fn supervise(exec: &ExecPlan, status: OwnedFd) -> i32 {
    // SAFETY: pid 1 is single-threaded; the child only runs async-signal-safe-enough code
    // of this single-threaded program before execve.
    let child = match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => command::exec(exec, status.as_fd()),
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => {
            Failure::new(FailStage::Setup("forking the command".into()), e.to_string()).report(&status);
            return 1;
        }
    };
    let exit = loop {
        // Every orphan of the namespace is reparented to us; reap them all, and stop when
        // the command itself ends (the kernel then kills the rest of the namespace).
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => break ExitStatus::Code(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => break ExitStatus::Signal(sig as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                Failure::new(FailStage::Setup("waiting for the command".into()), e.to_string())
                    .report(&status);
                return 1;
            }
        }
    };
    send_quietly(&status, &InitMessage::Exited { status: exit });
    send_quietly(&status, &children_usage());
    0
}

fn children_usage() -> InitMessage {
    // SAFETY: rusage is plain old data and getrusage only writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage for the duration of the call.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let us = |tv: libc::timeval| (tv.tv_sec.max(0) as u64) * 1_000_000 + tv.tv_usec.max(0) as u64;
    InitMessage::Usage {
        cpu_us: us(usage.ru_utime) + us(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss.max(0) as u64,
    }
}

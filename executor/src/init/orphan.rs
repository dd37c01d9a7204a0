//! The sandbox dies with the rbuild process that started it.
//!
//! Pid 1 already dies with the outer init (`PR_SET_PDEATHSIG`), and the kernel kills a pid
//! namespace when its pid 1 dies. What remains is the outer init dying with rbuild. A
//! parent-death signal would fire when the *thread* that spawned the init ends, not the
//! process, and rbuild spawns from whatever runtime thread runs the step; so the outer init
//! watches a pidfd of the rbuild process instead, and kills pid 1 when it becomes readable
//! (the process exited, however: SIGKILL included).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use rustix::process::{PidfdFlags, getppid, pidfd_open};

/// Environment variable through which the executor tells the init its pid.
pub(crate) const PARENT_ENV: &str = "RBUILD_SANDBOX_PARENT";

/// The rbuild process this init belongs to, as a pidfd; `Ok(None)` when the executor did not
/// say (the init then behaves as before, dying only with its command). `Err` when rbuild is
/// already gone: the init must not start anything then.
pub(super) fn watch_parent() -> Result<Option<OwnedFd>, String> {
    let Some(raw) = std::env::var(PARENT_ENV).ok() else { return Ok(None) };
    let pid = raw
        .parse::<i32>()
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| format!("{PARENT_ENV}={raw:?} is not a pid"))?;
    let fd = pidfd_open(pid, PidfdFlags::empty()).map_err(|e| format!("watching rbuild (pid {pid}): {e}"))?;
    // Checked after the open: while the process is still our parent its pid cannot have been
    // reused, so the pidfd names rbuild itself.
    if getppid() != Some(pid) {
        return Err(format!("rbuild (pid {pid}) exited before its sandbox started"));
    }
    Ok(Some(fd))
}

/// Waits for pid 1 and returns the outer init's exit code; kills pid 1 (and with it the
/// whole namespace) if rbuild exits first.
pub(super) fn wait_for_pid1(child: Pid, parent: Option<&OwnedFd>) -> i32 {
    if let Some(parent) = parent {
        wait_for_child_or_parent(child, parent);
    }
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 1,
        }
    }
}

/// Returns once pid 1 has exited (not reaped yet) or after killing it because rbuild exited.
fn wait_for_child_or_parent(child: Pid, parent: &OwnedFd) {
    let Some(child_pid) = rustix::process::Pid::from_raw(child.as_raw()) else { return };
    // Without a pidfd for pid 1 (cannot happen on kernels that gave one for the parent),
    // fall back to a plain wait.
    let Ok(child_fd) = pidfd_open(child_pid, PidfdFlags::empty()) else { return };
    loop {
        let mut fds = [
            libc::pollfd { fd: child_fd.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: parent.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: `fds` is a valid array of two pollfd for the duration of the call, and both
        // descriptors stay open (owned above) until it returns.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        if fds[1].revents != 0 {
            // rbuild is gone: nobody will read the output or clean up after a command that
            // keeps running, so end it now.
            let _ = kill(child, Signal::SIGKILL);
            return;
        }
        if fds[0].revents != 0 {
            return;
        }
    }
}

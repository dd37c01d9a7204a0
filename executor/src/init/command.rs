//! The command's process: everything between pid 1's fork and `execve`.
//!
//! Order matters: the seccomp filter is installed while CAP_SYS_ADMIN is still held (so
//! `no_new_privs` can stay off), then the bounding set shrinks, the user changes with
//! keep-caps on, and the final capability sets are set. Every value is prepared by pid 1
//! in [`ExecPlan::new`] so that the child does as little as possible.

use std::ffi::CString;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use caps::{Capability, CapsHashSet};
use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
use nix::unistd::{Gid, Uid};

use super::Failure;
use crate::caps::{keep_set, set_process_caps};
use crate::protocol::{FailStage, InitMessage, send_quietly};
use crate::seccomp;
use crate::spec::Spec;
use crate::user::ResolvedUser;

/// PATH used for the lookup when the environment has none (runc and Docker use the same).
const FALLBACK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything the command's process needs, computed before the fork.
pub(super) struct ExecPlan {
    command: String,
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    keep: CapsHashSet,
    drop_bounding: Vec<Capability>,
    seccomp: Vec<seccomp::Program>,
    no_new_privs: bool,
}

fn cstring(what: &str, s: &str) -> Result<CString, Failure> {
    CString::new(s)
        .map_err(|_| Failure::new(FailStage::Setup(format!("preparing the {what}")), "contains a NUL byte"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

/// Finds `name` like execvp(3) does, with the PATH of the command's environment.
pub(super) fn lookup(name: &str, env: &[String], cwd: &str) -> Result<PathBuf, String> {
    if name.is_empty() {
        return Err("empty command".to_owned());
    }
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    // The first PATH wins, as with getenv(3).
    let path = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(FALLBACK_PATH);
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let mut candidate = PathBuf::from(dir).join(name);
        if candidate.is_relative() {
            candidate = Path::new(cwd).join(candidate);
        }
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(format!("exec: {name:?}: executable file not found in $PATH"))
}

impl ExecPlan {
    pub(super) fn new(spec: &Spec, user: &ResolvedUser) -> Result<ExecPlan, Failure> {
        let command = spec.args.first().cloned().unwrap_or_default();
        let path = lookup(&command, &spec.env, &spec.cwd).map_err(|m| Failure::new(FailStage::Exec, m))?;
        let mut env: Vec<String> = spec.env.clone();
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", user.home));
        }
        let keep = keep_set(spec.insecure);
        let supported = caps::runtime::procfs_all_supported(None).unwrap_or_else(|_| caps::all());
        let seccomp = if spec.insecure {
            Vec::new()
        } else {
            seccomp::default_profile().map_err(|e| {
                Failure::new(FailStage::Setup("compiling the seccomp profile".into()), e.to_string())
            })?
        };
        Ok(ExecPlan {
            path: cstring("command path", &path.to_string_lossy())?,
            argv: spec.args.iter().map(|a| cstring("arguments", a)).collect::<Result<_, _>>()?,
            envp: env.iter().map(|e| cstring("environment", e)).collect::<Result<_, _>>()?,
            cwd: cstring("working directory", &spec.cwd)?,
            uid: user.uid,
            gid: user.gid,
            groups: user.groups.clone(),
            drop_bounding: supported.into_iter().filter(|c| !keep.contains(c)).collect(),
            keep,
            seccomp,
            no_new_privs: spec.no_new_privileges,
            command,
        })
    }
}

/// Runs in the forked child: never returns. Failures are reported on the status pipe and
/// end the process with 127 (pid 1 sees that exit, the parent prefers the report).
pub(super) fn exec(plan: &ExecPlan, status: BorrowedFd<'_>) -> ! {
    let failure = match try_exec(plan) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    send_quietly(status, &InitMessage::failed(failure.stage, failure.message));
    // SAFETY: _exit skips atexit handlers and buffered-output flushing, which belong to
    // pid 1 and must not run twice in a forked child.
    unsafe { libc::_exit(127) }
}

fn setup<E: std::fmt::Display>(stage: &str) -> impl FnOnce(E) -> Failure + '_ {
    move |e| Failure::new(FailStage::Setup(stage.to_owned()), e.to_string())
}

fn try_exec(plan: &ExecPlan) -> Result<std::convert::Infallible, Failure> {
    // Signal dispositions survive execve when ignored; the init's Rust runtime ignores
    // SIGPIPE, which `yes | head` and friends rely on being fatal.
    // The raw syscall also reaches the signals glibc reserves for itself (32, 33), which
    // an ignoring ancestor may have passed down. An all-zero kernel sigaction is SIG_DFL
    // with no flags and an empty mask on every architecture.
    let default_action = [0u64; 4];
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: rt_sigaction reads `default_action` (large enough for the kernel's
            // struct sigaction) and writes nothing back (old action is NULL).
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    default_action.as_ptr(),
                    std::ptr::null::<u64>(),
                    8usize,
                )
            };
        }
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(setup("unblocking signals"))?;
    nix::unistd::setsid().map_err(setup("creating a session"))?;
    // Any fd a library opened without O_CLOEXEC must not reach the command.
    // SAFETY: close_range only changes fd flags of this process.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    nix::unistd::chdir(plan.cwd.as_c_str()).map_err(setup("entering the working directory"))?;
    if plan.no_new_privs {
        nix::sys::prctl::set_no_new_privs().map_err(setup("setting no_new_privs"))?;
    }
    for program in &plan.seccomp {
        seccomp::install(program).map_err(setup("installing the seccomp filter"))?;
    }
    for cap in &plan.drop_bounding {
        caps::drop(None, caps::CapSet::Bounding, *cap).map_err(setup("dropping bounding capabilities"))?;
    }
    nix::sys::prctl::set_keepcaps(true).map_err(setup("keeping capabilities"))?;
    let groups: Vec<Gid> = plan.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&groups).map_err(setup("setting supplementary groups"))?;
    let gid = Gid::from_raw(plan.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(setup("setting the group id"))?;
    let uid = Uid::from_raw(plan.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(setup("setting the user id"))?;
    set_process_caps(&plan.keep).map_err(setup("setting capabilities"))?;
    nix::sys::prctl::set_keepcaps(false).map_err(setup("resetting keep-caps"))?;
    let err = nix::unistd::execve(&plan.path, &plan.argv, &plan.envp).unwrap_err();
    Err(Failure::new(FailStage::Exec, format!("exec {:?}: {}", plan.command, err.desc())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_table() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::write(bin.join("tool"), "").unwrap();
        std::fs::write(bin.join("data"), "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let env = vec![format!("PATH=/nonexistent:{}", bin.display())];
        assert_eq!(lookup("tool", &env, "/").unwrap(), bin.join("tool"));
        assert!(lookup("data", &env, "/").unwrap_err().contains("not found in $PATH"));
        assert_eq!(lookup("./x", &env, "/").unwrap(), PathBuf::from("./x"));
        assert!(lookup("", &env, "/").is_err());
    }
}

//! The parent side of a run: prepares the state directory and cgroup, spawns the sandbox
//! init, streams output, and turns what the init reports into an [`Outcome`].

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::UnixStream;
use tokio::net::unix::pipe;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::cgroups::{Cgroup, CgroupDriver, CgroupError, CgroupStats, Hierarchy, Manager};
use crate::error::ExecutorError;
use crate::init::INIT_ARG;
use crate::oci;
use crate::protocol::{CgroupFs, FailStage, InitMessage, InitRequest, OverlayFeatures};
use crate::run_dir::{EtcFiles, RunDir};
use crate::spec::{ExitStatus, Outcome, OutputChunk, OutputStream, ResourceStats, Rootfs, Spec};
use crate::stubs::remove_empty_stubs;
use crate::validate::validate;

/// How an [`Executor`] runs sandboxes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecutorConfig {
    /// A program whose `main` calls [`crate::maybe_sandbox_init`] first thing (rbuild
    /// re-executes itself).
    pub init_program: PathBuf,
    /// A small program that only serves as the init (rbuild's `rbuild-sandbox-init`),
    /// preferred to `init_program` because it starts in a fraction of the time. It is used
    /// only when it reports this executor's [`crate::SANDBOX_PROTOCOL`], asked once before
    /// the first run; otherwise (an older or newer copy) runs use `init_program`.
    pub standalone_init: Option<PathBuf>,
    /// Scratch space for this executor: per-run mount points and generated `/etc` files.
    pub state_dir: PathBuf,
    /// Cgroup under which each run gets its own child cgroup, e.g. `rbuild`. Relative names
    /// are placed below the cgroup this process runs in; `/rbuild` starts at the root of
    /// the hierarchy.
    pub cgroup_parent: String,
}

/// Which program isolates runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Runtime {
    /// rbuild's own sandbox: the init program re-executed (the default).
    #[default]
    Native,
    /// An OCI runtime such as runc or crun, given a bundle per run (`--runtime runc`).
    Oci {
        /// The runtime binary.
        binary: PathBuf,
    },
}

/// Runs processes in sandboxes. Cheap to share: `run` takes `&self` and concurrent runs are
/// independent (each has its own state directory and cgroup).
#[derive(Debug)]
pub struct Executor {
    config: ExecutorConfig,
    runs_dir: PathBuf,
    etc_dir: PathBuf,
    /// The empty directory every native run mounts its rootfs on, each in its own mount
    /// namespace (so the host never sees these mounts).
    mount_point: PathBuf,
    hierarchy: Option<Hierarchy>,
    /// Why there is no hierarchy although one was wanted.
    cgroup_unavailable: Option<String>,
    overlay: OverlayFeatures,
    runtime: Runtime,
    next_run: AtomicU64,
    /// The program runs start, chosen before the first run (see
    /// [`ExecutorConfig::standalone_init`]).
    chosen_init: std::sync::OnceLock<PathBuf>,
}

/// Output read buffer size; chunks are at most this long.
const CHUNK: usize = 32 * 1024;

impl Executor {
    /// An executor with the cgroup hierarchy detected from the host (v2 when
    /// `/sys/fs/cgroup` is cgroup2, else v1). When no hierarchy can be used, runs without
    /// limits still work (with a warning in their [`Outcome`]) and runs with limits fail.
    pub fn new(config: ExecutorConfig) -> Result<Executor, ExecutorError> {
        Executor::with_cgroup_driver(config, CgroupDriver::Auto)
    }

    /// Like [`Executor::new`] with an explicit cgroup driver, e.g. the v2 hierarchy of a
    /// hybrid host.
    pub fn with_cgroup_driver(
        config: ExecutorConfig,
        driver: CgroupDriver,
    ) -> Result<Executor, ExecutorError> {
        if !config.init_program.is_file() {
            return Err(ExecutorError::invalid(format!(
                "init program {} is not a file",
                config.init_program.display()
            )));
        }
        let mut config = config;
        let canonical = |p: &Path| {
            std::fs::canonicalize(p).map_err(|e| ExecutorError::io(format!("resolving {}", p.display()), e))
        };
        // Absolute paths: the init is spawned without PATH and mounts on paths built from
        // the state directory, whatever the working directory is.
        config.init_program = canonical(&config.init_program)?;
        std::fs::create_dir_all(&config.state_dir)
            .map_err(|e| ExecutorError::io(format!("creating {}", config.state_dir.display()), e))?;
        config.state_dir = canonical(&config.state_dir)?;
        let runs_dir = config.state_dir.join("runs");
        let etc_dir = config.state_dir.join("etc");
        let mount_point = config.state_dir.join("rootfs");
        for dir in [&runs_dir, &etc_dir, &mount_point] {
            std::fs::create_dir_all(dir)
                .map_err(|e| ExecutorError::io(format!("creating {}", dir.display()), e))?;
        }
        // Before any run of ours exists: what a killed rbuild left must not pile up.
        crate::stale::clean(&config.cgroup_parent, &runs_dir, &config.state_dir.join("oci"));
        let (hierarchy, cgroup_unavailable) = match Hierarchy::detect(&driver, &config.cgroup_parent) {
            Ok(h) => (h, None),
            Err(CgroupError::Unavailable { reason }) if driver == CgroupDriver::Auto => (None, Some(reason)),
            Err(e) => return Err(e.into()),
        };
        Ok(Executor {
            config,
            runs_dir,
            etc_dir,
            mount_point,
            hierarchy,
            cgroup_unavailable,
            overlay: OverlayFeatures::detect(),
            runtime: Runtime::Native,
            next_run: AtomicU64::new(0),
            chosen_init: std::sync::OnceLock::new(),
        })
    }

    /// Uses another runtime for every run. An OCI runtime keeps its state under
    /// `state_dir/oci` and needs the host's default cgroup hierarchy ([`CgroupDriver::Auto`]),
    /// since it places containers relative to its own cgroup.
    pub fn with_runtime(mut self, runtime: Runtime) -> Result<Executor, ExecutorError> {
        if let Runtime::Oci { binary } = &runtime {
            if !binary.is_file() {
                return Err(ExecutorError::invalid(format!(
                    "OCI runtime {} is not a file",
                    binary.display()
                )));
            }
            let root = self.oci_root();
            std::fs::create_dir_all(&root)
                .map_err(|e| ExecutorError::io(format!("creating {}", root.display()), e))?;
        }
        self.runtime = runtime;
        Ok(self)
    }

    fn oci_root(&self) -> PathBuf {
        self.config.state_dir.join("oci")
    }

    /// The cgroup version runs use: `Some(1)`, `Some(2)`, or `None` without cgroups.
    pub fn cgroup_version(&self) -> Option<u8> {
        self.hierarchy.as_ref().map(|h| if h.is_v2() { 2 } else { 1 })
    }

    /// The configuration this executor was built with (paths made absolute).
    pub fn config(&self) -> &ExecutorConfig {
        &self.config
    }

    fn run_id(&self) -> String {
        let n = self.next_run.fetch_add(1, Ordering::Relaxed);
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        format!("{}-{n}-{:x}", std::process::id(), nanos & 0xffff_ffff)
    }

    /// Runs one process to completion.
    ///
    /// Output is sent to `output` as it arrives (a dropped receiver only discards it).
    /// Firing `cancel` kills the whole process tree (through the pid namespace and the
    /// cgroup), waits for it, removes the cgroup and the mount stubs, and returns
    /// [`ExecutorError::Cancelled`]. Dropping the future does the same in a background
    /// thread. Mounts live only in the sandbox's mount namespace and disappear with it.
    /// Nothing of the run is left in `state_dir` afterwards. If this process is killed
    /// outright, the sandbox dies with it, and the next executor created removes its cgroup
    /// and run directory.
    pub async fn run(
        &self,
        spec: Spec,
        output: UnboundedSender<OutputChunk>,
        cancel: CancellationToken,
    ) -> Result<Outcome, ExecutorError> {
        validate(&spec)?;
        let started = Instant::now();
        let id = self.run_id();
        let mut warnings = Vec::new();
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let etc = EtcFiles::ensure(&self.etc_dir, &spec, &host_resolv)
            .map_err(|e| ExecutorError::io(format!("writing /etc files in {}", self.etc_dir.display()), e))?;
        // Only an OCI runtime needs a directory of its own (the bundle, a host mount); the
        // native sandbox mounts its rootfs inside its own mount namespace, on a mount point
        // all runs share.
        let run_dir = match self.runtime {
            Runtime::Native => None,
            Runtime::Oci { .. } => Some(
                RunDir::create(&self.runs_dir, &id)
                    .map_err(|e| ExecutorError::io(format!("preparing the run directory for {id}"), e))?,
            ),
        };
        let Rootfs::Overlay { upper, .. } = &spec.rootfs;
        let mut guard = RunGuard {
            child: None,
            cgroup: None,
            run_dir,
            upper: upper.clone(),
            host_mount: None,
            oci: None,
            cgroup_parent: self.config.cgroup_parent.clone(),
            finished: false,
        };
        guard.cgroup = self.create_cgroup(&id, &spec, &mut warnings)?.map(Arc::new);
        let mut session = Session::default();

        let (stdout, stderr, channel) = match &self.runtime {
            Runtime::Native => {
                let request = InitRequest {
                    rootfs_dir: self.mount_point.clone(),
                    hosts_file: etc.hosts,
                    resolv_file: etc.resolv,
                    hostname_file: etc.hostname,
                    cgroup_fs: match guard.cgroup.as_deref() {
                        None => CgroupFs::None,
                        Some(Cgroup::V2(cg)) => CgroupFs::V2(cg.dir().to_path_buf()),
                        Some(Cgroup::V1(cg)) => CgroupFs::V1(cg.named_dirs()),
                    },
                    overlay: self.overlay,
                    spec: spec.clone(),
                };
                let (channel, child_end) = std::os::unix::net::UnixStream::pair()
                    .map_err(|e| ExecutorError::io("creating the control socket", e))?;
                let mut child = self.spawn_init(child_end)?;
                let stdout = child.stdout.take().map(OwnedFd::from);
                let stderr = child.stderr.take().map(OwnedFd::from);
                // The init moves itself into the run's cgroup (see `init::outer`).
                guard.child = Some(child);
                (stdout, stderr, Some(send_request(channel, &request).await?))
            }
            Runtime::Oci { binary } => {
                let run_dir = guard.run_dir.as_ref().expect("set above");
                guard.host_mount = Some(oci::mount_host_rootfs(run_dir, &spec, self.overlay)?);
                let root = self.oci_root();
                let bundle = oci::Bundle {
                    binary,
                    state_root: &root,
                    run_dir,
                    id: &id,
                    etc: &etc,
                    // Relative to the runtime's own cgroup, which is ours: the container
                    // lands in a child of the run's cgroup, under its limits.
                    cgroups_path: guard
                        .cgroup
                        .as_ref()
                        .map(|_| format!("{}/{id}/ctr", self.config.cgroup_parent.trim_end_matches('/'))),
                };
                let (mut cmd, stubs) = oci::prepare(&spec, &bundle)?;
                session.stubs = stubs;
                guard.oci = Some(oci::OciContainer { binary: binary.clone(), root, id: id.clone() });
                let mut child = cmd
                    .spawn()
                    .map_err(|e| ExecutorError::io(format!("spawning {}", binary.display()), e))?;
                let stdout = child.stdout.take().map(OwnedFd::from);
                let stderr = child.stderr.take().map(OwnedFd::from);
                guard.child = Some(child);
                (stdout, stderr, None)
            }
        };

        session.drive(&mut guard, stdout, stderr, channel, &output, &cancel, spec.limits.timeout).await?;
        let oci_used = matches!(self.runtime, Runtime::Oci { .. });
        let oci_exit = match &self.runtime {
            Runtime::Native => None,
            Runtime::Oci { .. } => {
                let run_dir = guard.run_dir.as_ref().expect("set above");
                let status = guard.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                Some(oci::interpret(run_dir, status, &spec))
            }
        };

        let stats = match &guard.cgroup {
            Some(cg) => cg.stats().unwrap_or_else(|e| {
                warnings.push(format!("could not read cgroup statistics: {e}"));
                CgroupStats::default()
            }),
            None => CgroupStats::default(),
        };
        let exit_code = guard.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
        guard.finish(&session.stubs, &mut warnings).await;

        if session.cancelled {
            return Err(ExecutorError::Cancelled);
        }
        match oci_exit {
            Some(Ok(exit)) => session.exit = Some(exit),
            // A runtime killed by the timeout cannot report anything sensible.
            Some(Err(_)) if session.timed_out => {}
            Some(Err(e)) => return Err(e),
            None => {}
        }
        if let Some((stage, message)) = session.failure {
            return Err(match stage {
                FailStage::User => ExecutorError::User { user: spec.user.clone(), reason: message },
                FailStage::Exec => ExecutorError::Exec { command: spec.args[0].clone(), reason: message },
                FailStage::Setup(stage) => ExecutorError::Setup { stage, reason: message },
            });
        }
        // A SIGKILL after hitting the limit: how OOM kills are recognised where they are not
        // counted (kernels before 4.13; with an OCI runtime on v1, where the kill is counted
        // in the runtime's child cgroup, already gone).
        let reached_limit = stats.memory_limit_hits.unwrap_or(0) > 0
            || spec.limits.memory_bytes.is_some_and(|limit| stats.peak_memory_bytes.unwrap_or(0) >= limit);
        let killed_at_limit = session.exit == Some(ExitStatus::Signal(libc::SIGKILL)) && reached_limit;
        let oom_killed = match stats.oom_kills {
            Some(n) => n > 0 || (oci_used && killed_at_limit),
            None => killed_at_limit,
        };
        let exit = match session.exit {
            Some(exit) => exit,
            // Pid 1 itself died (OOM killer, timeout): the command went with it.
            None if oom_killed || session.timed_out => ExitStatus::Signal(libc::SIGKILL),
            None => {
                return Err(ExecutorError::Setup {
                    stage: "running the command".to_owned(),
                    reason: format!(
                        "the sandbox init ended without reporting an exit status ({exit_code:?})"
                    ),
                });
            }
        };
        let (rusage_cpu_us, rusage_rss_kib) = session.usage.unwrap_or((0, 0));
        Ok(Outcome {
            exit,
            oom_killed,
            timed_out: session.timed_out,
            stats: ResourceStats {
                peak_memory_bytes: stats
                    .peak_memory_bytes
                    .or((rusage_rss_kib > 0).then_some(rusage_rss_kib.saturating_mul(1024))),
                cpu_time: stats.cpu_time.unwrap_or(Duration::from_micros(rusage_cpu_us)),
                wall_time: started.elapsed(),
                cpu_throttled_periods: stats.cpu_throttled_periods,
            },
            warnings,
        })
    }

    fn create_cgroup(
        &self,
        id: &str,
        spec: &Spec,
        warnings: &mut Vec<String>,
    ) -> Result<Option<Cgroup>, ExecutorError> {
        let needs = spec.limits.needs_cgroup();
        let Some(hierarchy) = &self.hierarchy else {
            if let Some(reason) = &self.cgroup_unavailable {
                if needs {
                    return Err(CgroupError::Unavailable { reason: reason.clone() }.into());
                }
                warnings.push(format!("running without a cgroup ({reason}); resource usage is approximate"));
            } else if needs {
                return Err(CgroupError::Unavailable { reason: "cgroups are disabled".to_owned() }.into());
            }
            return Ok(None);
        };
        let cgroup = hierarchy.cgroup(id);
        match cgroup.create(&spec.limits) {
            Ok(()) => Ok(Some(cgroup)),
            Err(e) => {
                let _ = cgroup.remove();
                if needs {
                    return Err(e.into());
                }
                warnings.push(format!("running without a cgroup ({e}); resource usage is approximate"));
                Ok(None)
            }
        }
    }

    /// The standalone init when it speaks this executor's protocol, else `init_program`.
    fn init_program(&self) -> &Path {
        self.chosen_init.get_or_init(|| {
            let Some(standalone) = &self.config.standalone_init else {
                return self.config.init_program.clone();
            };
            let answer = Command::new(standalone)
                .arg(crate::PROTOCOL_ARG)
                .env_clear()
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output();
            match answer {
                Ok(out)
                    if out.status.success()
                        && out.stdout.trim_ascii() == crate::SANDBOX_PROTOCOL.as_bytes() =>
                {
                    standalone.clone()
                }
                _ => {
                    tracing::warn!(
                        "{} is not from this rbuild build; runs use {} instead (reinstall both programs)",
                        standalone.display(),
                        self.config.init_program.display()
                    );
                    self.config.init_program.clone()
                }
            }
        })
    }

    fn spawn_init(&self, channel: std::os::unix::net::UnixStream) -> Result<Child, ExecutorError> {
        // No pre_exec hook: std can then use posix_spawn (vfork-like) instead of fork,
        // which matters when the parent is large and multi-threaded.
        Command::new(self.init_program())
            .arg(INIT_ARG)
            .env_clear()
            .env(crate::init::orphan::PARENT_ENV, std::process::id().to_string())
            .stdin(Stdio::from(OwnedFd::from(channel)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| ExecutorError::io(format!("spawning {}", self.init_program().display()), e))
    }
}

/// Sends the request and half-closes the socket so that the init reads to EOF; the rest
/// of the socket carries the init's reports.
async fn send_request(
    channel: std::os::unix::net::UnixStream,
    request: &InitRequest,
) -> Result<UnixStream, ExecutorError> {
    let err = |e| ExecutorError::io("sending the request", e);
    let body = serde_json::to_vec(request).map_err(|e| err(e.into()))?;
    channel.set_nonblocking(true).map_err(err)?;
    let mut channel = UnixStream::from_std(channel).map_err(err)?;
    channel.write_all(&body).await.map_err(err)?;
    channel.shutdown().await.map_err(err)?;
    Ok(channel)
}

/// What the init reported while the run was being driven.
#[derive(Default)]
struct Session {
    stubs: Vec<String>,
    failure: Option<(FailStage, String)>,
    exit: Option<ExitStatus>,
    usage: Option<(u64, u64)>,
    cancelled: bool,
    timed_out: bool,
}

impl Session {
    fn on_message(&mut self, msg: InitMessage) {
        match msg {
            InitMessage::Stubs { paths } => self.stubs.extend(paths),
            // The first failure is the cause; later ones are consequences.
            InitMessage::Failed { stage, message } => {
                self.failure.get_or_insert((stage, message));
            }
            InitMessage::Exited { status } => self.exit = Some(status),
            InitMessage::Usage { cpu_us, max_rss_kib } => self.usage = Some((cpu_us, max_rss_kib)),
        }
    }

    /// Streams output and status until the init has exited and every pipe is closed.
    #[allow(clippy::too_many_arguments)]
    async fn drive(
        &mut self,
        guard: &mut RunGuard,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
        channel: Option<UnixStream>,
        output: &UnboundedSender<OutputChunk>,
        cancel: &CancellationToken,
        timeout: Option<Duration>,
    ) -> Result<(), ExecutorError> {
        let io_err = |what: &str| {
            let what = what.to_owned();
            move |e: std::io::Error| ExecutorError::io(what.clone(), e)
        };
        let receiver = |fd: Option<OwnedFd>| fd.map(pipe::Receiver::from_owned_fd).transpose();
        let mut out = receiver(stdout).map_err(io_err("reading stdout"))?;
        let mut err = receiver(stderr).map_err(io_err("reading stderr"))?;
        let mut status = channel;
        let child = guard.child.as_mut().expect("spawned");
        let pidfd = rustix::process::pidfd_open(
            rustix::process::Pid::from_child(child),
            rustix::process::PidfdFlags::empty(),
        )
        .map_err(|e| ExecutorError::io("watching the init", e.into()))?;
        // SAFETY: the AsyncFd owns the pidfd, which stays open and unchanged until it drops.
        let pidfd = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }
            .map_err(|e| ExecutorError::io("watching the init", e.into()))?;
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut exited = false;
        let mut killed = false;
        let (mut out_buf, mut err_buf, mut status_buf) =
            (vec![0u8; CHUNK], vec![0u8; CHUNK], vec![0u8; 4096]);
        let mut status_line: Vec<u8> = Vec::new();
        while !exited || out.is_some() || err.is_some() || status.is_some() {
            tokio::select! {
                r = read_some(&mut out, &mut out_buf), if out.is_some() => match r {
                    Some(n) => { let _ = output.send(OutputChunk { stream: OutputStream::Stdout, data: out_buf[..n].to_vec() }); }
                    None => out = None,
                },
                r = read_some(&mut err, &mut err_buf), if err.is_some() => match r {
                    Some(n) => { let _ = output.send(OutputChunk { stream: OutputStream::Stderr, data: err_buf[..n].to_vec() }); }
                    None => err = None,
                },
                r = read_some(&mut status, &mut status_buf), if status.is_some() => match r {
                    Some(n) => {
                        status_line.extend_from_slice(&status_buf[..n]);
                        while let Some(pos) = status_line.iter().position(|b| *b == b'\n') {
                            let line: Vec<u8> = status_line.drain(..=pos).collect();
                            if let Some(msg) = InitMessage::parse(&line[..line.len() - 1]) {
                                self.on_message(msg);
                            }
                        }
                    }
                    None => status = None,
                },
                r = pidfd.readable(), if !exited => {
                    let mut ready = r.map_err(io_err("watching the init"))?;
                    ready.retain_ready();
                    exited = true;
                },
                _ = cancel.cancelled(), if !killed => {
                    killed = true;
                    self.cancelled = true;
                    guard.kill_tree();
                },
                _ = sleep_until(deadline), if !killed && deadline.is_some() => {
                    killed = true;
                    self.timed_out = true;
                    guard.kill_tree();
                },
            }
        }
        // Reap the init now that the pidfd said it exited.
        if let Some(child) = guard.child.as_mut() {
            let _ = child.wait();
        }
        Ok(())
    }
}

async fn read_some<R: AsyncRead + Unpin>(rx: &mut Option<R>, buf: &mut [u8]) -> Option<usize> {
    let rx = rx.as_mut()?;
    match rx.read(buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Owns everything a run creates on the host; cleans it up on [`RunGuard::finish`], or in
/// a background thread when the run's future is dropped midway.
struct RunGuard {
    child: Option<Child>,
    cgroup: Option<Arc<Cgroup>>,
    run_dir: Option<RunDir>,
    upper: PathBuf,
    /// The rootfs mounted on the host (OCI runtime backend).
    host_mount: Option<PathBuf>,
    /// The container registered with the OCI runtime.
    oci: Option<oci::OciContainer>,
    cgroup_parent: String,
    finished: bool,
}

impl RunGuard {
    /// SIGKILL to the outer init (whose death takes pid 1 and so the whole pid namespace
    /// with it, via PR_SET_PDEATHSIG) and to everything in the cgroup.
    fn kill_tree(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
        }
        if let Some(Err(e)) = self.cgroup.as_ref().map(|cg| cg.kill_all()) {
            tracing::warn!(error = %e, "killing the run's cgroup failed");
        }
    }

    async fn finish(&mut self, stubs: &[String], warnings: &mut Vec<String>) {
        self.finished = true;
        let left = self.leftovers(stubs.to_vec());
        let cleanup = tokio::task::spawn_blocking(move || left.clean());
        match cleanup.await {
            Ok(w) => warnings.extend(w),
            Err(e) => warnings.push(format!("sandbox cleanup failed: {e}")),
        }
    }
}

/// What a run leaves on the host until cleanup.
struct Leftovers {
    oci: Option<oci::OciContainer>,
    /// `(cgroup parent, run id)` whose directories an OCI runtime may have created in
    /// every hierarchy.
    oci_cgroup: Option<(String, String)>,
    host_mount: Option<PathBuf>,
    cgroup: Option<Arc<Cgroup>>,
    run_dir: Option<RunDir>,
    upper: PathBuf,
    stubs: Vec<String>,
}

impl RunGuard {
    fn leftovers(&mut self, stubs: Vec<String>) -> Leftovers {
        Leftovers {
            oci_cgroup: self.oci.as_ref().map(|c| (self.cgroup_parent.clone(), c.id.clone())),
            oci: self.oci.take(),
            host_mount: self.host_mount.take(),
            cgroup: self.cgroup.take(),
            run_dir: self.run_dir.take(),
            upper: self.upper.clone(),
            stubs,
        }
    }
}

impl Leftovers {
    /// Deletes the runtime's container, unmounts a host-mounted rootfs, removes the cgroup
    /// (once its tasks are gone), the empty mount stubs and the run directory; returns
    /// warnings for what could not be removed.
    fn clean(self) -> Vec<String> {
        let mut warnings = Vec::new();
        if let Some(container) = &self.oci {
            container.delete();
        }
        if let Some(mount) = &self.host_mount
            && let Err(e) = nix::mount::umount2(mount, nix::mount::MntFlags::MNT_DETACH)
        {
            warnings.push(format!("could not unmount the rootfs at {}: {e}", mount.display()));
        }
        if let Some(cg) = &self.cgroup {
            // Normally empty: pid 1's exit killed the namespace. Anything left is killed.
            if cg.procs().map(|p| !p.is_empty()).unwrap_or(false) {
                let _ = cg.kill_all();
            }
            if let Err(e) = cg.remove() {
                warnings.push(format!("could not remove the run's cgroup: {e}"));
            }
        }
        if let Some((parent, id)) = &self.oci_cgroup
            && let Err(e) = crate::cgroups::remove_everywhere(parent, id)
        {
            warnings.push(format!("could not remove the runtime's cgroups: {e}"));
        }
        if !self.stubs.is_empty()
            && let Err(e) = remove_empty_stubs(&self.upper, &self.stubs)
        {
            warnings.push(format!("could not remove mount stubs from {}: {e}", self.upper.display()));
        }
        if let Some(dir) = &self.run_dir {
            dir.remove();
        }
        for w in &warnings {
            tracing::warn!("{w}");
        }
        warnings
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.kill_tree();
        let mut child = self.child.take();
        // Stubs are unknown here (the report may not have been read), so none are removed.
        let left = self.leftovers(Vec::new());
        let spawned = std::thread::Builder::new().name("rbuild-sandbox-cleanup".into()).spawn(move || {
            if let Some(child) = child.as_mut() {
                let _ = child.wait();
            }
            left.clean();
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the sandbox cleanup thread");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The solver spawns runs on a multi-threaded runtime.
    #[test]
    fn run_future_is_send() {
        fn assert_send<T: Send>(_: T) {}
        fn check(executor: &Executor, spec: Spec, tx: UnboundedSender<OutputChunk>) {
            assert_send(executor.run(spec, tx, CancellationToken::new()));
        }
        let _ = check;
        fn assert_sync<T: Send + Sync>() {}
        assert_sync::<Executor>();
    }

    #[test]
    fn missing_init_program_is_invalid() {
        let tmp = tempfile::tempdir().unwrap();
        let config = ExecutorConfig {
            init_program: tmp.path().join("nope"),
            standalone_init: None,
            state_dir: tmp.path().join("state"),
            cgroup_parent: "rbuild".into(),
        };
        let err = Executor::with_cgroup_driver(config, CgroupDriver::Disabled).unwrap_err();
        assert!(matches!(err, ExecutorError::InvalidSpec { .. }), "{err}");
    }
}

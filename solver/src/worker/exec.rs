//! `Exec`: one `RUN` in the sandbox, its root filesystem an overlay of the input chain with
//! a fresh layer on top that becomes the step's output.

use super::secrets::{SecretError, SecretFiles, SecretSource};
use super::ssh::{SshError, SshForward};
use super::{LocalWorker, Ref, store_err};
use crate::error::{ProcessEnd, SolveError};
use crate::ir::{self, ExecMount, MountKind};
use crate::progress::{Event, LogStream};
use crate::scheduler::Step;
use cache::fileop::{self, CopyAction, SourceRoot};
use cache::{CacheMount, CacheMountRequest, CacheSharing, Mounted};
use executor::{Mount, OutputStream, Rootfs, Spec};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Component, Path, PathBuf};

/// Lines of output kept for the error message of a failed step.
const TAIL_LINES: usize = 12;

/// How every `RUN` of a build runs, besides what its op says: the build's secrets, ssh
/// agents, resource limits and privileges.
#[derive(Clone, Debug, Default)]
pub struct RunConfig {
    /// Secret id → where its value comes from (`--secret`).
    pub secrets: BTreeMap<String, SecretSource>,
    /// ssh id → the agent socket steps reach through `RUN --mount=type=ssh` (`--ssh`).
    pub ssh: BTreeMap<String, PathBuf>,
    /// Limits of each step's process tree (`--memory`, `--cpus`, `--pids-limit`).
    pub limits: executor::Limits,
    /// Set `no_new_privs` for every step (`--security-opt no-new-privileges`).
    pub no_new_privileges: bool,
}

/// What a step holds while it runs: mounted views, scratch layers, cache directories,
/// secret files and ssh forwarders, all released when it is dropped.
#[derive(Default)]
struct Held {
    views: Vec<Mounted>,
    scratches: Vec<cache::MutableLayer>,
    caches: Vec<CacheMount>,
    secrets: SecretFiles,
    ssh: Vec<SshForward>,
}

/// Joins a selector below `root` without letting `..` escape it.
fn below(root: &Path, selector: &str) -> PathBuf {
    let mut out = root.to_path_buf();
    for c in Path::new(selector).components() {
        if let Component::Normal(part) = c {
            out.push(part);
        }
    }
    out
}

/// The command as BuildKit prints it in errors: the argv joined with spaces.
fn command_text(args: &[String]) -> String {
    args.join(" ")
}

pub async fn run(w: &LocalWorker, step: &Step, exec: &ir::Exec, inputs: &[Ref]) -> Result<Ref, SolveError> {
    super::emulation::check(&exec.platform, std::path::Path::new("/proc/sys/fs/binfmt_misc"))
        .map_err(|m| SolveError::msg(&step.name, m))?;
    let root_mount = exec.mounts.first().filter(|m| matches!(m.kind, MountKind::Layer));
    let chain: Vec<cache::LayerId> = match root_mount.and_then(|m| m.input) {
        Some(i) => inputs[i].chain(&step.name)?.to_vec(),
        None => Vec::new(),
    };
    let layer = w.store.new_layer().map_err(|e| store_err(&step.name, e))?;
    let rootfs = Rootfs::Overlay {
        lower: w.store.lower_dirs(&chain),
        upper: layer.diff_dir().to_path_buf(),
        work: layer.work_dir().to_path_buf(),
    };
    let mut held = Held::default();
    let mut mounts = Vec::new();
    let mut secret_env = Vec::new();
    for m in exec.mounts.iter().skip(usize::from(root_mount.is_some())) {
        let kind = match &m.kind {
            MountKind::Layer => {
                return Err(SolveError::msg(
                    &step.name,
                    format!("a second root mount at {} is not supported", m.dest),
                ));
            }
            MountKind::Bind => bind_mount(w, step, m, inputs, &mut held)?,
            MountKind::Tmpfs { size } => executor::MountKind::Tmpfs { size: *size },
            MountKind::Cache { .. } => {
                let cache = cache_mount(w, step, m, inputs).await?;
                let kind =
                    executor::MountKind::Bind { source: cache.path().to_path_buf(), readonly: m.readonly };
                held.caches.push(cache);
                kind
            }
            MountKind::Secret { id, required, mode, uid, gid, env } => {
                let data = match w.run.secrets.get(id) {
                    Some(source) => match source.read(id) {
                        Ok(data) => Some(data),
                        Err(SecretError::NotFound { .. }) if !required => None,
                        Err(e) => return Err(SolveError::step(&step.name, e.to_string(), e)),
                    },
                    None if *required => {
                        let e = SecretError::NotFound { id: id.clone(), detail: None };
                        return Err(SolveError::step(&step.name, e.to_string(), e));
                    }
                    None => None,
                };
                // An optional secret that was not given is skipped entirely, like BuildKit.
                let Some(data) = data else { continue };
                if let Some(name) = env {
                    if data.contains(&0) {
                        return Err(SolveError::msg(
                            &step.name,
                            format!("secret {id} contains a NUL byte and cannot be the variable {name}"),
                        ));
                    }
                    secret_env.push(format!("{name}={}", String::from_utf8_lossy(&data)));
                }
                if m.dest.is_empty() {
                    continue;
                }
                let source = held
                    .secrets
                    .add(id, &data, *mode, *uid, *gid)
                    .map_err(|e| SolveError::step(&step.name, e.to_string(), e))?;
                executor::MountKind::Bind { source, readonly: true }
            }
            MountKind::Ssh { id, required, mode, uid, gid } => {
                let Some(agent) = w.run.ssh.get(id) else {
                    if *required {
                        let e = SshError::NotForwarded { id: id.clone() };
                        return Err(SolveError::step(&step.name, e.to_string(), e));
                    }
                    continue;
                };
                let forward = SshForward::start(id, agent, *mode, *uid, *gid)
                    .map_err(|e| SolveError::step(&step.name, e.to_string(), e))?;
                let kind =
                    executor::MountKind::Bind { source: forward.socket().to_path_buf(), readonly: false };
                held.ssh.push(forward);
                kind
            }
        };
        mounts.push(Mount { dest: m.dest.clone(), kind });
    }

    let mut spec = Spec::new(exec.args.clone(), rootfs);
    spec.env = exec.env.iter().chain(&exec.proxy_env).cloned().collect();
    // Secrets last, so that they win over an ENV of the same name, as in BuildKit.
    for entry in secret_env {
        let name = entry.split('=').next().unwrap_or_default().to_string();
        spec.env.retain(|e| e.split('=').next() != Some(name.as_str()));
        spec.env.push(entry);
    }
    spec.cwd = exec.cwd.clone();
    spec.user = exec.user.clone();
    if let Some(h) = &exec.hostname {
        spec.hostname = h.clone();
    }
    spec.mounts = mounts;
    spec.network = match exec.network {
        ir::Network::Host => executor::Network::Host,
        ir::Network::None => executor::Network::None,
    };
    spec.insecure = matches!(exec.security, ir::Security::Insecure);
    spec.extra_hosts = exec.extra_hosts.clone();
    spec.limits = w.run.limits.clone();
    spec.no_new_privileges = w.run.no_new_privileges;
    let memory_limit = spec.limits.memory_bytes;

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<executor::OutputChunk>();
    let progress = step.progress.clone();
    let step_id = step.id.clone();
    let forward = tokio::spawn(async move {
        let mut tail: VecDeque<String> = VecDeque::new();
        let mut partial: Vec<u8> = Vec::new();
        while let Some(chunk) = rx.recv().await {
            let stream = match chunk.stream {
                OutputStream::Stdout => LogStream::Stdout,
                OutputStream::Stderr => LogStream::Stderr,
            };
            partial.extend_from_slice(&chunk.data);
            while let Some(pos) = partial.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = partial.drain(..=pos).collect();
                tail.push_back(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
                if tail.len() > TAIL_LINES {
                    tail.pop_front();
                }
            }
            progress.send(Event::Log { step: step_id.clone(), stream, data: chunk.data });
        }
        if !partial.is_empty() {
            tail.push_back(String::from_utf8_lossy(&partial).into_owned());
            if tail.len() > TAIL_LINES {
                tail.pop_front();
            }
        }
        tail
    });
    let outcome = w.executor.run(spec, tx, step.cancel.clone()).await;
    let tail: Vec<String> = forward.await.map(Vec::from).unwrap_or_default();
    drop(held);
    let outcome = match outcome {
        Ok(o) => o,
        Err(_) if step.cancel.is_cancelled() => return Err(SolveError::Cancelled),
        Err(e) => return Err(SolveError::step(&step.name, e.to_string(), e)),
    };
    for warning in &outcome.warnings {
        step.progress.send(Event::Warning { message: format!("{}: {warning}", step.name) });
    }
    {
        let mut stats = step.stats.lock().expect("stats lock");
        stats.peak_memory_bytes = outcome.stats.peak_memory_bytes;
        stats.cpu_usec = Some(outcome.stats.cpu_time.as_micros() as u64);
    }
    if step.cancel.is_cancelled() {
        return Err(SolveError::Cancelled);
    }
    let end = if outcome.oom_killed {
        Some(ProcessEnd::OutOfMemory(memory_limit))
    } else {
        match outcome.exit {
            executor::ExitStatus::Code(0) => None,
            executor::ExitStatus::Code(c) => Some(ProcessEnd::Code(c)),
            executor::ExitStatus::Signal(s) => Some(ProcessEnd::Signal(s)),
        }
    };
    if let Some(end) = end {
        return Err(SolveError::ProcessFailed {
            step: step.name.clone(),
            command: command_text(&exec.args),
            end,
            tail,
            location: None,
        });
    }
    let id = tokio::task::spawn_blocking(move || layer.commit())
        .await
        .map_err(|e| SolveError::Internal(format!("layer commit task: {e}")))?
        .map_err(|e| store_err(&step.name, e))?;
    let mut out = chain;
    out.push(id);
    Ok(Ref::Chain(out))
}

/// A bind mount of an input: the context directory, a read-only view of a stage, or a
/// writable overlay of it whose writes are dropped after the step (as in BuildKit).
fn bind_mount(
    w: &LocalWorker,
    step: &Step,
    m: &ExecMount,
    inputs: &[Ref],
    held: &mut Held,
) -> Result<executor::MountKind, SolveError> {
    let input = m.input.ok_or_else(|| SolveError::msg(&step.name, "bind mount without a source"))?;
    Ok(match &inputs[input] {
        Ref::Dir { path, .. } => {
            executor::MountKind::Bind { source: below(path, &m.selector), readonly: m.readonly }
        }
        Ref::Chain(c) if m.readonly => {
            let view = w.store.mount_readonly(c).map_err(|e| store_err(&step.name, e))?;
            let source = below(view.path(), &m.selector);
            held.views.push(view);
            executor::MountKind::Bind { source, readonly: true }
        }
        Ref::Chain(c) => {
            if !m.selector.is_empty() && m.selector != "/" {
                return Err(SolveError::msg(
                    &step.name,
                    format!("rw bind mount of a subpath ({}) of a stage is not supported yet", m.selector),
                ));
            }
            let scratch = w.store.new_layer().map_err(|e| store_err(&step.name, e))?;
            let kind = executor::MountKind::Overlay {
                lower: w.store.lower_dirs(c),
                upper_work: Some((scratch.diff_dir().to_path_buf(), scratch.work_dir().to_path_buf())),
            };
            held.scratches.push(scratch);
            kind
        }
    })
}

/// The cache directory of a `type=cache` mount, waiting for it with `sharing=locked`
/// (cancellable) and seeding a new copy from the `from=` input.
async fn cache_mount(
    w: &LocalWorker,
    step: &Step,
    m: &ExecMount,
    inputs: &[Ref],
) -> Result<CacheMount, SolveError> {
    let MountKind::Cache { id, sharing, mode, uid, gid } = &m.kind else {
        return Err(SolveError::Internal("cache_mount called for another mount kind".into()));
    };
    let selector = if m.selector.is_empty() { "/".to_string() } else { m.selector.clone() };
    // BuildKit keys a cache by its id plus the ref it starts from: a different `from=`
    // source, or a different owner or mode (a different mkdir on scratch), is another cache.
    let (variant, seed_root): (Option<String>, Option<(SourceRoot, Option<Mounted>)>) =
        match m.input.map(|i| &inputs[i]) {
            Some(Ref::Chain(chain)) => {
                let ids: Vec<&str> = chain.iter().map(|l| l.as_str()).collect();
                let view = w.store.mount_readonly(chain).map_err(|e| store_err(&step.name, e))?;
                let root = SourceRoot::new(view.path().to_path_buf());
                (Some(format!("from {} at {selector}", ids.join(","))), Some((root, Some(view))))
            }
            Some(Ref::Dir { path, excludes }) => (
                Some(format!("from {} at {selector}", path.display())),
                Some((SourceRoot::context(path.clone(), excludes.clone()), None)),
            ),
            None if (*mode, *uid, *gid) != (0o755, 0, 0) => {
                (Some(format!("mode {mode:o} owner {uid}:{gid}")), None)
            }
            None => (None, None),
        };
    let req = CacheMountRequest {
        id: id.clone(),
        variant,
        sharing: match sharing {
            ir::CacheSharing::Shared => CacheSharing::Shared,
            ir::CacheSharing::Private => CacheSharing::Private,
            ir::CacheSharing::Locked => CacheSharing::Locked,
        },
        mode: *mode,
        uid: *uid,
        gid: *gid,
    };
    let seed: Option<cache::Seed> = seed_root.map(|(root, view)| -> cache::Seed {
        Box::new(move |dir: &Path| {
            let _view = view;
            seed_cache(&root, &selector, dir)
        })
    });
    tokio::select! {
        mounted = w.store.cache_mount(&req, seed) => {
            mounted.map_err(|e| SolveError::step(&step.name, e.to_string(), e))
        }
        _ = step.cancel.cancelled() => Err(SolveError::Cancelled),
    }
}

/// Copies `selector` of `root` into a new cache copy, the copy's root taking the source
/// directory's owner and mode (what a mount of that subpath shows in BuildKit).
fn seed_cache(
    root: &SourceRoot,
    selector: &str,
    dir: &Path,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut copy = CopyAction::new(0, selector, "/");
    copy.allow_wildcard = false;
    copy.allow_empty_wildcard = false;
    fileop::apply(dir, std::slice::from_ref(root), &[fileop::FileAction::Copy(copy)])?;
    let source = below(&root.root, selector);
    // Not followed: a link in the source must not lead to a host path.
    let meta = std::fs::symlink_metadata(&source)?;
    if meta.is_dir() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let (uid, gid) = if root.reset_owner { (0, 0) } else { (meta.uid(), meta.gid()) };
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    Ok(())
}

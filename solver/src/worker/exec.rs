//! `Exec`: one `RUN` in the sandbox, its root filesystem an overlay of the input chain with
//! a fresh layer on top that becomes the step's output.

use super::{LocalWorker, Ref, store_err};
use crate::error::{ProcessEnd, SolveError};
use crate::ir::{self, MountKind};
use crate::progress::{Event, LogStream};
use crate::scheduler::Step;
use cache::Mounted;
use executor::{Mount, OutputStream, Rootfs, Spec};
use std::collections::VecDeque;
use std::path::{Component, Path, PathBuf};

/// Lines of output kept for the error message of a failed step.
const TAIL_LINES: usize = 12;

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
    // Guards that keep read-only views mounted until the process has ended.
    let mut views: Vec<Mounted> = Vec::new();
    // Scratch layers for writable binds of stages: dropped (deleted) after the run.
    let mut scratches: Vec<cache::MutableLayer> = Vec::new();
    let mut mounts = Vec::new();
    for m in exec.mounts.iter().skip(usize::from(root_mount.is_some())) {
        let kind = match &m.kind {
            MountKind::Layer => {
                return Err(SolveError::msg(
                    &step.name,
                    format!("a second root mount at {} is not supported", m.dest),
                ));
            }
            MountKind::Bind => {
                let input =
                    m.input.ok_or_else(|| SolveError::msg(&step.name, "bind mount without a source"))?;
                match &inputs[input] {
                    Ref::Dir { path, .. } => {
                        executor::MountKind::Bind { source: below(path, &m.selector), readonly: m.readonly }
                    }
                    Ref::Chain(c) if m.readonly => {
                        let view = w.store.mount_readonly(c).map_err(|e| store_err(&step.name, e))?;
                        let source = below(view.path(), &m.selector);
                        views.push(view);
                        executor::MountKind::Bind { source, readonly: true }
                    }
                    Ref::Chain(c) => {
                        // Writable binds of a stage keep their writes only for this step, like
                        // BuildKit: they go to a scratch layer that is dropped afterwards.
                        if !m.selector.is_empty() && m.selector != "/" {
                            return Err(SolveError::msg(
                                &step.name,
                                format!(
                                    "rw bind mount of a subpath ({}) of a stage is not supported yet",
                                    m.selector
                                ),
                            ));
                        }
                        let scratch = w.store.new_layer().map_err(|e| store_err(&step.name, e))?;
                        let kind = executor::MountKind::Overlay {
                            lower: w.store.lower_dirs(c),
                            upper_work: Some((
                                scratch.diff_dir().to_path_buf(),
                                scratch.work_dir().to_path_buf(),
                            )),
                        };
                        scratches.push(scratch);
                        kind
                    }
                }
            }
            MountKind::Tmpfs { size } => executor::MountKind::Tmpfs { size: *size },
            MountKind::Cache { id, mode, uid, gid, .. } => {
                let dir = w.cache_mount_dir(id, *mode, *uid, *gid).map_err(|e| store_err(&step.name, e))?;
                executor::MountKind::Bind { source: dir, readonly: m.readonly }
            }
            MountKind::Secret { id, .. } => {
                return Err(SolveError::msg(
                    &step.name,
                    format!("secret mounts are not supported yet (secret {id:?})"),
                ));
            }
            MountKind::Ssh { id, .. } => {
                return Err(SolveError::msg(
                    &step.name,
                    format!("ssh mounts are not supported yet (ssh {id:?})"),
                ));
            }
        };
        mounts.push(Mount { dest: m.dest.clone(), kind });
    }

    let mut spec = Spec::new(exec.args.clone(), rootfs);
    spec.env = exec.env.iter().chain(&exec.proxy_env).cloned().collect();
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
    drop(views);
    drop(scratches);
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
        Some(ProcessEnd::OutOfMemory(None))
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

impl LocalWorker {
    /// The directory behind `RUN --mount=type=cache,id=...`, created on first use. It lives
    /// outside every layer, so nothing in it is ever exported.
    fn cache_mount_dir(&self, id: &str, mode: u32, uid: u32, gid: u32) -> Result<PathBuf, cache::StoreError> {
        let name = registry::Digest::of_bytes(id.as_bytes());
        let dir = self.store.root().join("cache-mounts").join(&name.hex()[..32]);
        if !dir.exists() {
            std::fs::create_dir_all(&dir).map_err(|source| cache::StoreError::Io {
                op: "prepare cache mount",
                path: dir.clone(),
                source,
            })?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).map_err(|source| {
                cache::StoreError::Io { op: "prepare cache mount", path: dir.clone(), source }
            })?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(|source| cache::StoreError::Io {
                op: "prepare cache mount",
                path: dir.clone(),
                source,
            })?;
        }
        Ok(dir)
    }
}

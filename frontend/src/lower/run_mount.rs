//! `RUN --mount=...`: each mount type lowered to an [`ExecMount`] (BuildKit's
//! `convert_runmount.go`, `convert_secrets.go` and `convert_ssh.go`).

use super::LowerError;
use super::dispatch::{clean_path, resolve_in_workdir};
use super::stage::{Base, Lowering, StageState};
use crate::instructions::{CacheSharing, Instruction, MountSpec, MountType};
use solver::ir::{self, ExecMount, FileAction, FileOp, Mkdir, MountKind, Op, Owner, VertexId, VertexMeta};

/// Where secrets without a `target=` are mounted (BuildKit's choice).
const SECRETS_DIR: &str = "/run/secrets/";

/// Where the n-th ssh socket of a RUN goes without a `target=` (BuildKit's choice).
const SSH_SOCKET_PREFIX: &str = "/run/buildkit/ssh_agent.";

/// The ssh id used when a mount names none (`--ssh default`).
const DEFAULT_SSH_ID: &str = "default";

/// Where a cache mount's owner and mode are set on a `from=` source (BuildKit's choice).
const CACHE_PERMISSIONS_DIR: &str = "/cache";

/// The last path component, as Go's `path.Base`.
fn base_name(p: &str) -> String {
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return if p.is_empty() { ".".into() } else { "/".into() };
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.clone().filter(|s| !s.is_empty())
}

impl Lowering<'_> {
    /// Lowers one `--mount` of a RUN, adding the inputs it reads to `inputs`.
    pub(crate) fn run_mount(
        &mut self,
        state: &StageState,
        inst: &Instruction,
        m: &MountSpec,
        inputs: &mut Vec<VertexId>,
        mounts: &mut Vec<ExecMount>,
    ) -> Result<(), LowerError> {
        let target = m.target.clone().unwrap_or_default();
        let dest = if target.starts_with('/') {
            clean_path(&target, false)
        } else {
            resolve_in_workdir(&state.workdir(), &target, false)
        };
        let selector = m.source.clone().unwrap_or_else(|| "/".into());
        let kind = match m.kind {
            MountType::Bind => {
                let input = self.mount_source(state, inst, m, inputs)?;
                mounts.push(ExecMount { input, selector, dest, readonly: m.readonly, kind: MountKind::Bind });
                return Ok(());
            }
            MountType::Cache => return self.cache_mount(state, inst, m, dest, inputs, mounts),
            MountType::Tmpfs => {
                MountKind::Tmpfs { size: m.size.and_then(|s| u64::try_from(s).ok()).filter(|s| *s > 0) }
            }
            MountType::Secret => return self.secret_mount(state, inst, m, mounts),
            MountType::Ssh => {
                if non_empty(&m.source).is_some() {
                    return Err(self.errors.at(inst.span, "ssh does not support source").into());
                }
                let index = mounts.iter().filter(|m| matches!(m.kind, MountKind::Ssh { .. })).count();
                let dest = if target.is_empty() { format!("{SSH_SOCKET_PREFIX}{index}") } else { dest };
                mounts.push(ExecMount {
                    input: None,
                    selector: String::new(),
                    dest,
                    readonly: true,
                    kind: MountKind::Ssh {
                        id: non_empty(&m.id).unwrap_or_else(|| DEFAULT_SSH_ID.into()),
                        required: m.required,
                        mode: m.mode.unwrap_or(0o600),
                        uid: m.uid.unwrap_or(0),
                        gid: m.gid.unwrap_or(0),
                    },
                });
                return Ok(());
            }
        };
        mounts.push(ExecMount { input: None, selector: String::new(), dest, readonly: m.readonly, kind });
        Ok(())
    }

    /// The input a bind (or seeded cache) mount reads: the `from=` stage or image, else
    /// the build context. `None` for scratch, or while an image is still being resolved.
    fn mount_source(
        &mut self,
        state: &StageState,
        inst: &Instruction,
        m: &MountSpec,
        inputs: &mut Vec<VertexId>,
    ) -> Result<Option<usize>, LowerError> {
        let v = match &m.from {
            None => Some(self.context()),
            Some(from) => match self.resolve_from(from, inst.span)? {
                Base::Scratch => None,
                Base::Stage(j) => {
                    let Some(src) = self.states[j].as_ref() else {
                        return Err(self
                            .errors
                            .at(
                                inst.span,
                                format!(
                                    "cannot mount from stage {from:?}, it needs to be defined before current stage {:?}",
                                    state.display
                                ),
                            )
                            .into());
                    };
                    src.vertex
                }
                Base::Image(r) => {
                    let platform = state.platform.clone();
                    match self.image(&r, &platform, &format!("[internal] load {r}")) {
                        Some((v, _)) => v,
                        None => return Ok(None),
                    }
                }
                Base::Context(key) => self.named_source(&key),
            },
        };
        Ok(v.map(|v| {
            inputs.push(v);
            inputs.len() - 1
        }))
    }

    /// `type=cache`. Without `from=` the worker creates the directory with the mount's
    /// owner and mode. With `from=` the cache starts as a copy of that source's `source=`
    /// path; an owner or mode then applies to a `/cache` directory made on top of the source
    /// when no `source=` is given, as BuildKit does.
    fn cache_mount(
        &mut self,
        state: &StageState,
        inst: &Instruction,
        m: &MountSpec,
        dest: String,
        inputs: &mut Vec<VertexId>,
        mounts: &mut Vec<ExecMount>,
    ) -> Result<(), LowerError> {
        let sharing = match m.sharing.unwrap_or(CacheSharing::Shared) {
            CacheSharing::Shared => ir::CacheSharing::Shared,
            CacheSharing::Private => ir::CacheSharing::Private,
            CacheSharing::Locked => ir::CacheSharing::Locked,
        };
        let id = non_empty(&m.id).unwrap_or_else(|| dest.clone());
        let permissions_set = m.mode.is_some() || m.uid.is_some() || m.gid.is_some();
        let (mode, uid, gid) = (m.mode.unwrap_or(0o755), m.uid.unwrap_or(0), m.gid.unwrap_or(0));
        let (input, selector, kind) = if m.from.is_none() {
            (None, String::new(), MountKind::Cache { id, sharing, mode, uid, gid })
        } else {
            let mut input = self.mount_source(state, inst, m, inputs)?;
            let mut selector = clean_path(&format!("/{}", m.source.clone().unwrap_or_default()), false);
            if selector == "/" && permissions_set {
                let file = FileOp {
                    base: input,
                    actions: vec![FileAction::Mkdir(Mkdir {
                        path: CACHE_PERMISSIONS_DIR.into(),
                        mode,
                        make_parents: false,
                        owner: Some(Owner::Ids { uid, gid }),
                        timestamp: None,
                    })],
                };
                let meta = VertexMeta {
                    name: "[internal] settings cache mount permissions".into(),
                    ..Default::default()
                };
                let base: Vec<VertexId> = input.map(|i| inputs[i]).into_iter().collect();
                let v = self.graph.add(Op::File(file), base, meta).expect("inputs exist");
                // The file op reads the source; this mount reads the file op instead.
                if let Some(i) = input {
                    inputs[i] = v;
                } else {
                    inputs.push(v);
                    input = Some(inputs.len() - 1);
                }
                selector = CACHE_PERMISSIONS_DIR.into();
            }
            let kind = MountKind::Cache { id, sharing, mode: 0o755, uid: 0, gid: 0 };
            (input, selector, kind)
        };
        mounts.push(ExecMount { input, selector, dest, readonly: m.readonly, kind });
        Ok(())
    }

    /// `type=secret`: `id=` (or `source=`, or the target's file name), a file at `target=`
    /// (default `/run/secrets/<id>` unless `env=` is given) and/or an environment variable.
    fn secret_mount(
        &mut self,
        state: &StageState,
        inst: &Instruction,
        m: &MountSpec,
        mounts: &mut Vec<ExecMount>,
    ) -> Result<(), LowerError> {
        let target = non_empty(&m.target);
        let id = match (non_empty(&m.source).or_else(|| non_empty(&m.id)), &target) {
            (Some(id), _) => id,
            (None, Some(t)) => base_name(t),
            (None, None) => return Err(self.errors.at(inst.span, "one of source, target required").into()),
        };
        let dest = match (&target, &m.env) {
            (Some(t), _) => resolve_in_workdir(&state.workdir(), t, false),
            (None, None) => format!("{SECRETS_DIR}{}", base_name(&id)),
            // Only an environment variable: no file.
            (None, Some(_)) => String::new(),
        };
        mounts.push(ExecMount {
            input: None,
            selector: String::new(),
            dest,
            readonly: true,
            kind: MountKind::Secret {
                id,
                required: m.required,
                mode: m.mode.unwrap_or(0o400),
                uid: m.uid.unwrap_or(0),
                gid: m.gid.unwrap_or(0),
                env: m.env.clone().filter(|e| !e.is_empty()),
            },
        });
        Ok(())
    }
}

/// `SSH_AUTH_SOCK` pointing at the first ssh socket, unless the environment sets it (as
/// BuildKit adds it to the exec's environment).
pub(crate) fn ssh_auth_sock(mounts: &[ExecMount], env: &[String]) -> Option<String> {
    let first = mounts.iter().find(|m| matches!(m.kind, MountKind::Ssh { .. }))?;
    if env.iter().any(|e| e.starts_with("SSH_AUTH_SOCK=")) {
        return None;
    }
    Some(format!("SSH_AUTH_SOCK={}", first.dest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::{LowerOptions, lower};
    use registry::Platform;

    fn options(source: &str) -> LowerOptions {
        LowerOptions::for_test(source)
    }

    /// The last RUN's exec op and the ops of its inputs (kinds), or the error message.
    fn last_run(dockerfile: &str, opts: Option<LowerOptions>) -> Result<(ir::Exec, Vec<Op>), String> {
        let df = crate::parse(dockerfile, "Dockerfile").map_err(|e| e.to_string())?;
        let opts = opts.unwrap_or_else(|| options(dockerfile));
        let lowered = lower(&df, &opts).map_err(|e| e.to_string())?;
        let (_, v) =
            lowered.graph.vertices().filter(|(_, v)| matches!(v.op, Op::Exec(_))).last().ok_or("no exec")?;
        let Op::Exec(exec) = &v.op else { unreachable!() };
        let inputs = v.inputs.iter().map(|i| lowered.graph.vertex(*i).op.clone()).collect();
        Ok((exec.clone(), inputs))
    }

    fn mount(exec: &ir::Exec, index: usize) -> &ExecMount {
        &exec.mounts[index]
    }

    #[test]
    fn secret_mounts() {
        let secret = |id: &str, dest: &str, mode: u32, env: Option<&str>| {
            (
                dest.to_string(),
                MountKind::Secret {
                    id: id.into(),
                    required: false,
                    mode,
                    uid: 0,
                    gid: 0,
                    env: env.map(String::from),
                },
            )
        };
        let cases = [
            ("id=tok", secret("tok", "/run/secrets/tok", 0o400, None)),
            ("id=tok,target=/etc/tok,mode=0440", secret("tok", "/etc/tok", 0o440, None)),
            ("target=/etc/key.pem", secret("key.pem", "/etc/key.pem", 0o400, None)),
            ("source=tok,target=rel", secret("tok", "/app/rel", 0o400, None)),
            ("id=tok,env=TOKEN", secret("tok", "", 0o400, Some("TOKEN"))),
            ("id=tok,env=TOKEN,target=/t", secret("tok", "/t", 0o400, Some("TOKEN"))),
        ];
        for (flags, (dest, kind)) in cases {
            let df = format!("FROM scratch\nWORKDIR /app\nRUN --mount=type=secret,{flags} true\n");
            let (exec, _) = last_run(&df, None).unwrap();
            let m = mount(&exec, 1);
            assert_eq!((&m.dest, &m.kind, m.readonly), (&dest, &kind, true), "{flags}");
        }
        let (exec, _) =
            last_run("FROM scratch\nRUN --mount=type=secret,id=t,required,uid=1,gid=2 true\n", None).unwrap();
        assert!(matches!(mount(&exec, 1).kind, MountKind::Secret { required: true, uid: 1, gid: 2, .. }));
    }

    #[test]
    fn secret_values_never_reach_the_op() {
        // The op (and so the cache key) names the secret, never its value or source.
        let (exec, _) =
            last_run("FROM scratch\nRUN --mount=type=secret,id=tok,env=TOKEN echo $TOKEN\n", None).unwrap();
        assert!(!exec.env.iter().any(|e| e.starts_with("TOKEN=")), "{:?}", exec.env);
    }

    #[test]
    fn ssh_mounts_and_auth_sock() {
        let df =
            "FROM scratch\nRUN --mount=type=ssh --mount=type=ssh,id=work,target=/w.sock,mode=0660 true\n";
        let (exec, _) = last_run(df, None).unwrap();
        let ssh =
            |id: &str, mode: u32| MountKind::Ssh { id: id.into(), required: false, mode, uid: 0, gid: 0 };
        assert_eq!(
            (mount(&exec, 1).dest.as_str(), &mount(&exec, 1).kind),
            ("/run/buildkit/ssh_agent.0", &ssh("default", 0o600))
        );
        assert_eq!((mount(&exec, 2).dest.as_str(), &mount(&exec, 2).kind), ("/w.sock", &ssh("work", 0o660)));
        assert!(exec.env.contains(&"SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0".to_string()), "{:?}", exec.env);
        let df = "FROM scratch\nENV SSH_AUTH_SOCK=/mine\nRUN --mount=type=ssh true\n";
        let (exec, _) = last_run(df, None).unwrap();
        assert_eq!(exec.env.iter().filter(|e| e.starts_with("SSH_AUTH_SOCK=")).count(), 1);
        let err = last_run("FROM scratch\nRUN --mount=type=ssh,source=x true\n", None).unwrap_err();
        assert!(err.contains("ssh does not support source"), "{err}");
    }

    #[test]
    fn cache_mounts() {
        let cache =
            |id: &str, sharing, mode, uid, gid| MountKind::Cache { id: id.into(), sharing, mode, uid, gid };
        let df = "FROM scratch\nRUN --mount=type=cache,target=/c,sharing=locked,uid=1,gid=2,mode=0700 true\n";
        let (exec, inputs) = last_run(df, None).unwrap();
        assert_eq!(mount(&exec, 1).kind, cache("/c", ir::CacheSharing::Locked, 0o700, 1, 2));
        assert_eq!((mount(&exec, 1).input, inputs.len()), (None, 0));

        // from= with source=: seeded from that path of the stage.
        let df = "FROM scratch AS seed\nFROM scratch\nRUN --mount=type=cache,id=x,target=/c,from=seed,source=/sub true\n";
        let (exec, _) = last_run(df, None).unwrap();
        assert_eq!(
            (mount(&exec, 1).selector.as_str(), &mount(&exec, 1).kind),
            ("/sub", &cache("x", ir::CacheSharing::Shared, 0o755, 0, 0))
        );

        // from= with an owner and no source=: BuildKit's mkdir /cache on top of the source.
        let df = "FROM busybox AS seed\nFROM scratch\nCOPY --from=seed / /\nRUN --mount=type=cache,target=/c,from=seed,uid=5 true\n";
        let mut opts = options(df);
        opts.images.insert(
            crate::lower::ImageRequest { reference: "busybox".parse().unwrap(), platform: Platform::host() },
            crate::lower::BaseImage {
                pinned: format!("docker.io/library/busybox@sha256:{}", "a".repeat(64)).parse().unwrap(),
                config: registry::ImageConfig::default(),
            },
        );
        let (exec, inputs) = last_run(df, Some(opts)).unwrap();
        let m = mount(&exec, 1);
        assert_eq!(m.selector, "/cache");
        let Some(Op::File(file)) = m.input.map(|i| inputs[i].clone()) else { panic!("{inputs:?}") };
        assert!(
            matches!(&file.actions[0], FileAction::Mkdir(d) if d.path == "/cache" && d.owner == Some(Owner::Ids { uid: 5, gid: 0 }))
        );
    }

    #[test]
    fn default_network_comes_from_the_build() {
        let df = "FROM scratch\nRUN --network=default true\nRUN --network=host true\n";
        let mut opts = options(df);
        opts.default_network = ir::Network::None;
        let parsed = crate::parse(df, "Dockerfile").unwrap();
        let lowered = lower(&parsed, &opts).unwrap();
        let networks: Vec<ir::Network> = lowered
            .graph
            .vertices()
            .filter_map(|(_, v)| match &v.op {
                Op::Exec(e) => Some(e.network),
                _ => None,
            })
            .collect();
        assert_eq!(networks, vec![ir::Network::None, ir::Network::Host]);
    }

    #[test]
    fn base_names() {
        for (p, want) in [("/run/secrets/tok", "tok"), ("tok", "tok"), ("/a/b/", "b"), ("/", "/"), ("", ".")]
        {
            assert_eq!(base_name(p), want, "{p}");
        }
    }
}

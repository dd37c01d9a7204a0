//! How a build's `RUN` steps run besides what the Dockerfile says: secrets, ssh agents, the
//! default network, entitlements (`--allow`), resource limits and privileges. Turned into
//! the worker's [`RunConfig`] once per build.

use crate::ssh_agent::{KeyAgent, SshAgentError};
use solver::ir::{Graph, Op, Security, VertexId};
use solver::{RunConfig, SecretSource, SolveError};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where an ssh id's keys are (`--ssh default`, `--ssh id=SOCKET`, `--ssh id=KEY[,KEY]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SshSource {
    /// A running agent's socket (`$SSH_AUTH_SOCK` or the given path).
    Agent(PathBuf),
    /// Private key files, loaded into an agent that lives for the build.
    Keys(Vec<PathBuf>),
}

/// A privilege a build must be granted with `--allow` (BuildKit's entitlements).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Entitlement {
    /// `security.insecure`: `RUN --security=insecure` (every capability, no seccomp).
    SecurityInsecure,
    /// `network.host`: accepted for compatibility; host networking is rbuild's default.
    NetworkHost,
}

/// An `--allow` value that names no entitlement.
#[derive(Debug, thiserror::Error)]
#[error("unknown entitlement {0}")]
pub struct UnknownEntitlement(pub String);

impl std::str::FromStr for Entitlement {
    type Err = UnknownEntitlement;

    fn from_str(s: &str) -> Result<Entitlement, UnknownEntitlement> {
        match s {
            "security.insecure" => Ok(Entitlement::SecurityInsecure),
            "network.host" => Ok(Entitlement::NetworkHost),
            _ => Err(UnknownEntitlement(s.to_string())),
        }
    }
}

impl std::fmt::Display for Entitlement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Entitlement::SecurityInsecure => "security.insecure",
            Entitlement::NetworkHost => "network.host",
        })
    }
}

/// The sandbox side of a [`crate::BuildRequest`].
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// `--secret`: secret id → where its value comes from.
    pub secrets: BTreeMap<String, SecretSource>,
    /// `--ssh`: ssh id → agent socket or key files.
    pub ssh: BTreeMap<String, SshSource>,
    /// `--network`: network of `RUN` steps that do not choose one.
    pub network: solver::ir::Network,
    /// `--allow`: entitlements granted.
    pub allow: Vec<Entitlement>,
    /// `--memory`, `--cpu-quota`/`--cpu-period`/`--cpus`, `--pids-limit`: limits of every
    /// `RUN`'s process tree.
    pub limits: executor::Limits,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
}

/// The worker's run configuration plus what must stay alive while the build runs (agents
/// holding `--ssh` key files).
pub(crate) struct RunResources {
    pub(crate) config: RunConfig,
    _agents: Vec<KeyAgent>,
}

/// Starts what the options need (an agent per key-file ssh id). Blocking.
pub(crate) fn prepare(opts: &RunOptions) -> Result<RunResources, SshAgentError> {
    let mut agents = Vec::new();
    let mut ssh = BTreeMap::new();
    for (id, source) in &opts.ssh {
        let socket = match source {
            SshSource::Agent(path) => path.clone(),
            SshSource::Keys(keys) => {
                let agent = KeyAgent::start(id, keys)?;
                let socket = agent.socket().to_path_buf();
                agents.push(agent);
                socket
            }
        };
        ssh.insert(id.clone(), socket);
    }
    let config = RunConfig {
        secrets: opts.secrets.clone(),
        ssh,
        limits: opts.limits.clone(),
        no_new_privileges: opts.no_new_privileges,
    };
    Ok(RunResources { config, _agents: agents })
}

/// Fails, naming the first such step, when a step `targets` need asks for a privilege the
/// build was not granted (BuildKit checks the same before solving).
pub(crate) fn check_entitlements(
    graph: &Graph,
    targets: &[VertexId],
    allow: &[Entitlement],
) -> Result<(), SolveError> {
    if allow.contains(&Entitlement::SecurityInsecure) {
        return Ok(());
    }
    for v in graph.reachable(targets) {
        let vertex = graph.vertex(v);
        if let Op::Exec(exec) = &vertex.op
            && exec.security == Security::Insecure
        {
            let message = format!(
                "{} is not allowed: RUN --security=insecure needs `--allow {}`",
                Entitlement::SecurityInsecure,
                Entitlement::SecurityInsecure
            );
            return Err(SolveError::msg(&vertex.meta.name, message).at(&vertex.meta));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entitlement_names() {
        for name in ["security.insecure", "network.host"] {
            assert_eq!(name.parse::<Entitlement>().unwrap().to_string(), name);
        }
        assert_eq!("device".parse::<Entitlement>().unwrap_err().to_string(), "unknown entitlement device");
    }

    #[test]
    fn insecure_steps_need_the_entitlement() {
        let mut graph = Graph::new();
        let exec = |security| solver::ir::Exec {
            args: vec!["true".into()],
            env: Vec::new(),
            cwd: "/".into(),
            user: String::new(),
            mounts: Vec::new(),
            network: Default::default(),
            security,
            hostname: None,
            extra_hosts: Vec::new(),
            platform: registry::Platform::host(),
            proxy_env: Vec::new(),
        };
        let meta = |name: &str| solver::ir::VertexMeta { name: name.into(), ..Default::default() };
        let plain = graph.add(Op::Exec(exec(Security::Sandbox)), vec![], meta("plain")).unwrap();
        let insecure = graph.add(Op::Exec(exec(Security::Insecure)), vec![], meta("[2/2] RUN x")).unwrap();
        assert!(check_entitlements(&graph, &[plain], &[]).is_ok());
        let err = check_entitlements(&graph, &[insecure], &[]).unwrap_err();
        assert_eq!(err.step_name(), Some("[2/2] RUN x"));
        assert!(err.to_string().starts_with("security.insecure is not allowed"), "{err}");
        assert!(check_entitlements(&graph, &[insecure], &[Entitlement::SecurityInsecure]).is_ok());
    }
}

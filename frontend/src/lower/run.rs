//! `RUN`: the command line (shell/exec form, heredoc scripts), its mounts, and its history.

use super::LowerError;
use super::dispatch::{commit_history, with_shell};
use super::stage::{Lowering, StageState};
use crate::instructions::{CommandLine, Instruction, MountType, NetworkMode, RunCommand, SecurityMode};
use crate::syntax::{chomp_heredoc_content, must_parse_heredoc};
use solver::ir::{self, Exec, ExecMount, FileAction, FileOp, Mkfile, MountKind, Op, VertexId, VertexMeta};

/// Where the script of a `RUN <<EOF` with a shebang is mounted (BuildKit's choice).
const HEREDOC_PIPES: &str = "/dev/pipes/";

/// `RUN |2 A=1 B=2 /bin/sh -c make`: the ARGs in scope prefix the command in history.
fn run_command_string(
    args: &[String],
    build_args: &[(String, Option<String>)],
    env: &crate::shell::EnvList,
) -> String {
    use crate::shell::Env;
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (k, v) in build_args {
        let value = env.get(k).or_else(|| v.clone()).unwrap_or_default();
        match pairs.iter_mut().find(|(pk, _)| pk == k) {
            Some(slot) => slot.1 = value,
            None => pairs.push((k.clone(), value)),
        }
    }
    let mut parts: Vec<String> = Vec::new();
    if !pairs.is_empty() {
        parts.push(format!("|{}", pairs.len()));
        parts.extend(pairs.into_iter().map(|(k, v)| format!("{k}={v}")));
    }
    parts.extend(args.iter().cloned());
    parts.join(" ")
}

/// First line of a heredoc, with `...` when there is more (progress names).
fn summarize_heredoc(doc: &str) -> String {
    let doc = doc.trim();
    let mut lines = doc.split('\n');
    let first = lines.next().unwrap_or_default().trim_end_matches('\r').to_string();
    if lines.next().is_some() { first + "..." } else { first }
}

impl Lowering<'_> {
    pub(crate) fn dispatch_run(
        &mut self,
        state: &mut StageState,
        inst: &Instruction,
        run: &RunCommand,
    ) -> Result<(), LowerError> {
        let mut inputs: Vec<VertexId> = Vec::new();
        let mut mounts: Vec<ExecMount> = Vec::new();
        mounts.push(ExecMount {
            input: state.vertex.map(|v| {
                inputs.push(v);
                0
            }),
            selector: String::new(),
            dest: "/".into(),
            readonly: false,
            kind: MountKind::Layer,
        });

        let (mut args, shell_form) = match &run.cmd {
            CommandLine::Exec(a) => (a.clone(), false),
            CommandLine::Shell(s) => (vec![s.clone()], true),
        };
        let mut summary = String::new();
        if !run.heredocs.is_empty() {
            if args.len() != 1 || !shell_form {
                return Err(self
                    .errors
                    .at(inst.span, format!("parsing produced an invalid run command: {args:?}"))
                    .into());
            }
            if must_parse_heredoc(&args[0]).is_some() {
                let doc = &run.heredocs[0];
                let data = if doc.chomp { chomp_heredoc_content(&doc.content) } else { doc.content.clone() };
                if data.starts_with("#!") {
                    let file = FileOp {
                        base: None,
                        actions: vec![FileAction::Mkfile(Mkfile {
                            path: format!("/{}", doc.name),
                            mode: 0o755,
                            data: data.clone().into_bytes(),
                            owner: None,
                            timestamp: None,
                        })],
                    };
                    let meta = VertexMeta { name: "preparing inline document".into(), ..Default::default() };
                    let v = self.graph.add(Op::File(file), vec![], meta).expect("no inputs");
                    inputs.push(v);
                    mounts.push(ExecMount {
                        input: Some(inputs.len() - 1),
                        selector: "/".into(),
                        dest: HEREDOC_PIPES.into(),
                        readonly: true,
                        kind: MountKind::Bind,
                    });
                    args = vec![format!("{HEREDOC_PIPES}{}", doc.name)];
                } else {
                    args = vec![data];
                }
                summary = format!(" ({})", summarize_heredoc(&doc.content));
            } else {
                let mut script = args[0].clone();
                for doc in &run.heredocs {
                    script.push('\n');
                    script.push_str(&doc.content);
                    script.push_str(&doc.name);
                }
                args = vec![script];
            }
        }
        if shell_form {
            args = with_shell(state, &args);
        }

        for m in &run.mounts {
            self.run_mount(state, inst, m, &mut inputs, &mut mounts)?;
        }
        let mut env: Vec<String> = state.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.extend(super::run_mount::ssh_auth_sock(&mounts, &env));

        let exec = Exec {
            args: args.clone(),
            env,
            cwd: state.workdir(),
            user: state.user.clone(),
            mounts,
            network: match run.network {
                NetworkMode::Default => self.opts.default_network,
                NetworkMode::Host => ir::Network::Host,
                NetworkMode::None => ir::Network::None,
            },
            security: match run.security {
                SecurityMode::Sandbox => ir::Security::Sandbox,
                SecurityMode::Insecure => ir::Security::Insecure,
            },
            hostname: None,
            extra_hosts: Vec::new(),
            platform: state.platform.clone(),
            proxy_env: self.proxy_env.clone(),
        };
        // A secret's variable shows as `****` in the step name (BuildKit's secret env mask).
        let mut shown_env = state.env.clone();
        for m in run.mounts.iter().filter(|m| m.kind == MountType::Secret) {
            if let Some(name) = m.env.as_ref().filter(|e| !e.is_empty()) {
                shown_env.set(name.clone(), "****");
            }
        }
        let shown = self
            .lexer
            .raw_quotes(true)
            .skip_unset_env(true)
            .process_word(&inst.source_text, &shown_env)
            .unwrap_or_else(|_| inst.source_text.clone());
        let name = state.progress_name(&(uppercase_first(&shown) + &summary));
        let meta = self.meta(name, inst.span, state);
        let v = self.graph.add(Op::Exec(exec), inputs, meta).expect("inputs exist");
        state.vertex = Some(v);
        let history = format!("RUN {} # buildkit", run_command_string(&args, &state.build_args, &state.env));
        commit_history(state, history, true);
        Ok(())
    }
}

/// `run echo` → `RUN echo` (the keyword as BuildKit prints it).
pub(crate) fn uppercase_first(s: &str) -> String {
    match s.split_once(' ') {
        Some((first, rest)) => format!("{} {rest}", first.to_uppercase()),
        None => s.to_uppercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::EnvList;

    #[test]
    fn history_prefix_lists_args_in_scope() {
        let env = EnvList::from_pairs([("A", "1"), ("PATH", "/bin")]);
        let args = vec!["/bin/sh".to_string(), "-c".to_string(), "make".to_string()];
        assert_eq!(run_command_string(&args, &[], &env), "/bin/sh -c make");
        let build_args = vec![("A".to_string(), Some("0".to_string())), ("B".to_string(), None)];
        assert_eq!(run_command_string(&args, &build_args, &env), "|2 A=1 B= /bin/sh -c make");
        assert_eq!(summarize_heredoc("\necho hi\necho there\n"), "echo hi...");
        assert_eq!(uppercase_first("run echo $A"), "RUN echo $A");
    }
}

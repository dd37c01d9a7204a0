//! Dispatching one instruction onto a stage's state: the metadata instructions here, RUN
//! in `run.rs`, COPY/ADD in `copy.rs`.

use super::LowerError;
use super::stage::{Lowering, StageState};
use crate::instructions::{ArgDef, Command, CommandLine, Healthcheck, Instruction};
use registry::{EmptyObject, HealthConfig, History};
use solver::ir::{FileAction, FileOp, Mkdir, Op, Owner};
use std::collections::BTreeMap;

/// The history comment BuildKit writes on every entry.
pub(crate) const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// Appends a history entry (`created` is filled in by the exporter).
pub(crate) fn commit_history(state: &mut StageState, created_by: String, with_layer: bool) {
    state.image.history.push(History {
        created: None,
        created_by: Some(created_by),
        author: None,
        comment: Some(HISTORY_COMMENT.to_string()),
        empty_layer: !with_layer,
    });
}

/// Go's `%q` of a string slice: `["a" "b"]`.
pub(crate) fn go_quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| serde_json::to_string(s).unwrap_or_default()).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `%v` of a string slice: `[a b]`.
pub(crate) fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// The shell-form command line: SHELL (or `/bin/sh -c`) plus the joined words.
pub(crate) fn with_shell(state: &StageState, args: &[String]) -> Vec<String> {
    let mut shell = match &state.image.config.shell {
        Some(s) if !s.is_empty() => s.clone(),
        _ => vec!["/bin/sh".to_string(), "-c".to_string()],
    };
    shell.push(args.join(" "));
    shell
}

/// `user[:group]` as an owner to resolve in the destination.
pub(crate) fn owner_of(spec: &str) -> Option<Owner> {
    if spec.is_empty() {
        return None;
    }
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u.to_string(), Some(g.to_string())),
        None => (spec.to_string(), None),
    };
    match (user.parse::<u32>(), group.as_deref().map(str::parse::<u32>)) {
        (Ok(uid), Some(Ok(gid))) => Some(Owner::Ids { uid, gid }),
        _ => Some(Owner::Names { user, group }),
    }
}

/// Cleans an absolute path (`path.Clean`), keeping a trailing slash when `keep_slash`.
pub(crate) fn clean_path(p: &str, keep_slash: bool) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let mut out = format!("/{}", parts.join("/"));
    if keep_slash && (p.ends_with('/') || p.ends_with("/.")) && out != "/" {
        out.push('/');
    }
    out
}

/// A path relative to `workdir` made absolute (BuildKit's `pathRelativeToWorkingDir`).
pub(crate) fn resolve_in_workdir(workdir: &str, p: &str, keep_slash: bool) -> String {
    if p.starts_with('/') {
        return clean_path(p, keep_slash);
    }
    let p = if p.is_empty() || p == "." { "./" } else { p };
    clean_path(&format!("{workdir}/{p}"), keep_slash)
}

impl Lowering<'_> {
    pub(crate) fn dispatch(&mut self, state: &mut StageState, inst: &Instruction) -> Result<(), LowerError> {
        self.check_undefined_vars(state, inst);
        if let Command::Arg(defs) = &inst.command {
            return self.dispatch_arg(state, inst, defs);
        }
        let command = inst
            .command
            .expand(&self.lexer, &state.env)
            .map_err(|e| self.errors.at(inst.span, e.to_string()))?;
        match &command {
            Command::From(_) => Err(self.errors.at(inst.span, "FROM inside a stage").into()),
            Command::Arg(_) => unreachable!("handled above"),
            Command::Run(run) => self.dispatch_run(state, inst, run),
            Command::Copy(c) => self.dispatch_copy(state, inst, c),
            Command::Add(a) => self.dispatch_add(state, inst, a),
            Command::Env(pairs) => {
                let mut msg = String::from("ENV");
                for kv in pairs {
                    msg.push_str(&format!(" {}={}", kv.key, kv.value));
                    state.env.set(kv.key.clone(), kv.value.clone());
                    state.image.config.env_set(&kv.key, &kv.value);
                }
                commit_history(state, msg, false);
                Ok(())
            }
            Command::Label(pairs) => {
                let mut msg = String::from("LABEL");
                let labels = state.image.config.labels.get_or_insert_with(BTreeMap::new);
                for kv in pairs {
                    labels.insert(kv.key.clone(), kv.value.clone());
                    msg.push_str(&format!(" {}={}", kv.key, kv.value));
                }
                commit_history(state, msg, false);
                Ok(())
            }
            Command::Maintainer(m) => {
                state.image.author = Some(m.clone());
                commit_history(state, format!("MAINTAINER {m}"), false);
                Ok(())
            }
            Command::Expose(ports) => {
                let exposed = state.image.config.exposed_ports.get_or_insert_with(BTreeMap::new);
                let mut list = Vec::new();
                for p in ports {
                    let key = if p.contains('/') { p.to_lowercase() } else { format!("{p}/tcp") };
                    exposed.insert(key.clone(), EmptyObject {});
                    list.push(key);
                }
                list.sort();
                list.dedup();
                commit_history(state, format!("EXPOSE {}", go_list(&list)), false);
                Ok(())
            }
            Command::Workdir(path) => self.dispatch_workdir(state, inst, path),
            Command::User(user) => {
                state.user = user.clone();
                state.image.config.user = Some(user.clone());
                commit_history(state, format!("USER {user}"), false);
                Ok(())
            }
            Command::Volume(vols) => {
                let volumes = state.image.config.volumes.get_or_insert_with(BTreeMap::new);
                for v in vols {
                    if v.is_empty() {
                        return Err(self
                            .errors
                            .at(inst.span, "VOLUME specified can not be an empty string")
                            .into());
                    }
                    volumes.insert(v.clone(), EmptyObject {});
                }
                commit_history(state, format!("VOLUME {}", go_list(vols)), false);
                Ok(())
            }
            Command::StopSignal(sig) => {
                if !valid_signal(sig) {
                    return Err(self.errors.at(inst.span, format!("Invalid signal: {sig}")).into());
                }
                state.image.config.stop_signal = Some(sig.clone());
                commit_history(state, format!("STOPSIGNAL {sig}"), false);
                Ok(())
            }
            Command::Shell(shell) => {
                state.image.config.shell = Some(shell.clone());
                commit_history(state, format!("SHELL {}", go_list(shell)), false);
                Ok(())
            }
            Command::Cmd(line) => {
                let args = self.command_line(state, line);
                state.image.config.cmd = Some(args.clone());
                state.image.config.args_escaped = Some(true);
                state.cmd_set = true;
                commit_history(state, format!("CMD {}", go_quote_list(&args)), false);
                Ok(())
            }
            Command::Entrypoint(line) => {
                let args = self.command_line(state, line);
                state.image.config.entrypoint = Some(args.clone());
                if !state.cmd_set {
                    state.image.config.cmd = None;
                }
                commit_history(state, format!("ENTRYPOINT {}", go_quote_list(&args)), false);
                Ok(())
            }
            Command::Healthcheck(h) => {
                let config = match h {
                    Healthcheck::Disable => {
                        HealthConfig { test: Some(vec!["NONE".into()]), ..Default::default() }
                    }
                    Healthcheck::Check(spec) => HealthConfig {
                        test: Some(spec.test.clone()),
                        interval: Some(spec.interval).filter(|v| *v != 0),
                        timeout: Some(spec.timeout).filter(|v| *v != 0),
                        start_period: Some(spec.start_period).filter(|v| *v != 0),
                        start_interval: Some(spec.start_interval).filter(|v| *v != 0),
                        retries: Some(spec.retries).filter(|v| *v != 0),
                    },
                };
                let summary = format!(
                    "HEALTHCHECK {{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
                    go_list(config.test.as_deref().unwrap_or_default()),
                    go_duration(config.interval.unwrap_or(0)),
                    go_duration(config.timeout.unwrap_or(0)),
                    go_duration(config.start_period.unwrap_or(0)),
                    go_duration(config.start_interval.unwrap_or(0)),
                    config.retries.unwrap_or(0)
                );
                state.image.config.healthcheck = Some(config);
                commit_history(state, summary, false);
                Ok(())
            }
            Command::Onbuild(ob) => {
                state.onbuild.push(ob.expression.clone());
                state.image.config.on_build.get_or_insert_with(Vec::new).push(ob.expression.clone());
                Ok(())
            }
        }
    }

    /// CMD/ENTRYPOINT arguments: exec form as is, shell form through SHELL.
    fn command_line(&self, state: &StageState, line: &CommandLine) -> Vec<String> {
        match line {
            CommandLine::Exec(args) => args.clone(),
            CommandLine::Shell(s) => with_shell(state, std::slice::from_ref(s)),
        }
    }

    fn dispatch_arg(
        &mut self,
        state: &mut StageState,
        inst: &Instruction,
        defs: &[ArgDef],
    ) -> Result<(), LowerError> {
        let mut parts = Vec::new();
        for def in defs {
            self.consumed_args.insert(def.key.clone());
            let given = self.opts.build_args.get(&def.key).cloned();
            let value = match (&given, &def.value) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(default)) => Some(self.expand_word(default, &state.env, inst.span)?),
                // Declared without a default: inherit the global value, if any.
                (None, None) => {
                    self.global_args.iter().find(|(k, _)| *k == def.key).map(|(_, v)| v.to_string())
                }
            };
            if let Some(v) = &value {
                state.env.set(def.key.clone(), v.clone());
            }
            state.build_args.push((def.key.clone(), value.clone()));
            parts.push(match &value {
                Some(v) => format!("{}={v}", def.key),
                None => def.key.clone(),
            });
        }
        commit_history(state, format!("ARG {}", parts.join(" ")), false);
        Ok(())
    }

    fn dispatch_workdir(
        &mut self,
        state: &mut StageState,
        inst: &Instruction,
        path: &str,
    ) -> Result<(), LowerError> {
        state.workdir_set = true;
        let wd = resolve_in_workdir(&state.workdir(), path, false);
        state.image.config.working_dir = Some(wd.clone());
        let with_layer = wd != "/";
        if with_layer {
            let name = state.progress_name(&format!("WORKDIR {wd}"));
            let op = Op::File(FileOp {
                base: state.vertex.map(|_| 0),
                actions: vec![FileAction::Mkdir(Mkdir {
                    path: wd.clone(),
                    mode: 0o755,
                    make_parents: true,
                    owner: owner_of(&state.user),
                    timestamp: None,
                })],
            });
            let meta = self.meta(name, inst.span, state);
            let v = self.graph.add(op, state.vertex.into_iter().collect(), meta).expect("inputs exist");
            state.vertex = Some(v);
        }
        commit_history(state, format!("WORKDIR {wd}"), with_layer);
        Ok(())
    }
}

/// Signal names and numbers `STOPSIGNAL` accepts (moby/sys/signal.ParseSignal).
fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return n > 0 && n < 65;
    }
    let name = s.strip_prefix("SIG").unwrap_or(s);
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
        "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
        "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX",
    ];
    NAMES.contains(&name) || name.starts_with("RTMIN+") || name.starts_with("RTMAX-")
}

/// Go's `time.Duration` String() for whole nanoseconds (`0s`, `30s`, `1m30s`, `1.5s`).
fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let mut n = ns.unsigned_abs();
    let mut out = String::new();
    if n < 1_000_000_000 {
        let (unit, div) = if n < 1_000 {
            ("ns", 1)
        } else if n < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out = trim_fraction(n as f64 / div as f64) + unit;
    } else {
        let h = n / 3_600_000_000_000;
        n %= 3_600_000_000_000;
        let m = n / 60_000_000_000;
        n %= 60_000_000_000;
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&(trim_fraction(n as f64 / 1e9) + "s"));
    }
    if neg { format!("-{out}") } else { out }
}

fn trim_fraction(v: f64) -> String {
    let s = format!("{v:.9}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_rules() {
        assert_eq!(resolve_in_workdir("/", "foo", true), "/foo");
        assert_eq!(resolve_in_workdir("/app", "foo/", true), "/app/foo/");
        assert_eq!(resolve_in_workdir("/app", ".", true), "/app/");
        assert_eq!(resolve_in_workdir("/app", "", true), "/app/");
        assert_eq!(resolve_in_workdir("/app", "/x/../y", false), "/y");
        assert_eq!(resolve_in_workdir("/", ".", true), "/");
        assert_eq!(clean_path("/a//b/./c/", false), "/a/b/c");
    }

    #[test]
    fn owners_and_durations() {
        assert_eq!(owner_of("1:2"), Some(Owner::Ids { uid: 1, gid: 2 }));
        assert_eq!(owner_of("app"), Some(Owner::Names { user: "app".into(), group: None }));
        assert_eq!(owner_of(""), None);
        assert_eq!(go_duration(30_000_000_000), "30s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(0), "0s");
        assert!(valid_signal("SIGKILL") && valid_signal("9") && !valid_signal("SIGFOO"));
    }
}

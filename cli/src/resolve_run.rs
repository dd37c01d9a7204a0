//! Step two for the sandbox flags: `--secret`, `--ssh`, `--network`, `--allow`,
//! `--security-opt` and the resource limits become an `engine::RunOptions`, with the
//! checks docker buildx makes on the client (secret files exist and are small enough, ssh
//! paths exist, the agent socket is known).

use crate::UsageError;
use crate::run_args::{NetworkFlag, RunArgs};
use anyhow::Result;
use engine::{Entitlement, RunOptions, SshSource};
use solver::{MAX_SECRET_SIZE, SecretSource};
use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

/// Docker's smallest memory limit (the sandbox itself needs some).
const MIN_MEMORY: u64 = 6 * 1024 * 1024;

fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// The `RunOptions` of `args`; `env` looks up environment variables (the process's own in
/// the program, a table in tests).
pub fn run_options(args: &RunArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<RunOptions> {
    let mut secrets = BTreeMap::new();
    for value in &args.secrets {
        let (id, source) = secret(value, env)?;
        secrets.insert(id, source);
    }
    let mut ssh = BTreeMap::new();
    for value in &args.ssh {
        let (id, source) = ssh_source(value, env)?;
        if ssh.insert(id.clone(), source).is_some() {
            return Err(usage(format!("invalid duplicate ID {id}")));
        }
    }
    let mut allow = Vec::new();
    for value in &args.allow {
        let e: Entitlement = value.parse().map_err(|e: engine::UnknownEntitlement| usage(e.to_string()))?;
        if !allow.contains(&e) {
            allow.push(e);
        }
    }
    let mut no_new_privileges = false;
    for opt in &args.security_opts {
        let (key, value) = match opt.split_once(['=', ':']) {
            Some((k, v)) => (k, Some(v)),
            None => (opt.as_str(), None),
        };
        no_new_privileges = match (key, value) {
            ("no-new-privileges", None | Some("true")) => true,
            ("no-new-privileges", Some("false")) => false,
            _ => {
                return Err(usage(format!(
                    "unsupported --security-opt {opt:?}: rbuild supports no-new-privileges[=true|false]"
                )));
            }
        };
    }
    Ok(RunOptions {
        secrets,
        ssh,
        network: match args.network {
            None | Some(NetworkFlag::Default | NetworkFlag::Host) => solver::ir::Network::Host,
            Some(NetworkFlag::None) => solver::ir::Network::None,
        },
        allow,
        limits: limits(args)?,
        no_new_privileges,
    })
}

/// `--secret id=ID[,src=FILE|env=VAR][,type=file|env]`, as buildx parses it, then checked
/// like BuildKit's secret store does.
fn secret(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(String, SecretSource)> {
    let mut id = String::new();
    let mut file = String::new();
    let mut var = String::new();
    let mut kind = None;
    for field in value.split(',') {
        let Some((key, v)) = field.split_once('=') else {
            return Err(usage(format!("invalid field '{field}' must be a key=value pair")));
        };
        match key.to_lowercase().as_str() {
            "type" if v == "file" || v == "env" => kind = Some(v.to_string()),
            "type" => return Err(usage(format!("unsupported secret type {v:?}"))),
            "id" => id = v.to_string(),
            "source" | "src" => file = v.to_string(),
            "env" => var = v.to_string(),
            other => return Err(usage(format!("unexpected key '{other}' in '{field}'"))),
        }
    }
    if kind.as_deref() == Some("env") && var.is_empty() {
        var = std::mem::take(&mut file);
    }
    if id.is_empty() {
        return Err(usage("secret missing ID"));
    }
    if var.is_empty() && file.is_empty() {
        // Neither given: the variable named like the id when it is set, else the file.
        if env(&id).is_some() {
            var = id.clone();
        } else {
            file = id.clone();
        }
    }
    if !var.is_empty() {
        return Ok((id, SecretSource::Env(var)));
    }
    let path = std::path::absolute(&file).map_err(|e| usage(format!("failed to stat {file}: {e}")))?;
    let meta = std::fs::metadata(&path).map_err(|e| usage(format!("failed to stat {file}: {e}")))?;
    if meta.len() > MAX_SECRET_SIZE {
        return Err(usage(format!("secret {id} too big. max size 500KB")));
    }
    Ok((id, SecretSource::File(path)))
}

/// `--ssh default`, `--ssh ID=SOCKET`, `--ssh ID=KEY[,KEY]` (BuildKit's ssh agent provider).
fn ssh_source(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(String, SshSource)> {
    let (id, paths) = match value.split_once('=') {
        Some((id, paths)) => (id, paths.split(',').filter(|p| !p.is_empty()).map(String::from).collect()),
        None => (value, Vec::new()),
    };
    let id = if id.is_empty() { "default" } else { id };
    let paths: Vec<String> = if paths.is_empty() {
        match env("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) {
            Some(sock) => vec![sock],
            None => return Err(usage("invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set")),
        }
    } else {
        paths
    };
    let mut socket: Option<PathBuf> = None;
    let mut keys: Vec<PathBuf> = Vec::new();
    for p in &paths {
        if socket.is_some() {
            return Err(usage("only single socket allowed"));
        }
        let path = std::path::absolute(p).map_err(|e| usage(format!("ssh {id}: {p}: {e}")))?;
        let meta = std::fs::metadata(&path).map_err(|e| usage(format!("ssh {id}: {p}: {e}")))?;
        if meta.file_type().is_socket() {
            if !keys.is_empty() {
                return Err(usage("invalid combination of keys and sockets"));
            }
            socket = Some(path);
        } else {
            keys.push(path);
        }
    }
    let source = match socket {
        Some(s) => SshSource::Agent(s),
        None => SshSource::Keys(keys),
    };
    Ok((id.to_string(), source))
}

/// `--memory 512m`: docker's RAMInBytes (binary units; `b` suffix optional).
fn ram_in_bytes(s: &str) -> Option<u64> {
    let lower = s.trim().to_lowercase();
    let t = lower.strip_suffix('b').unwrap_or(&lower);
    let t = t.strip_suffix('i').unwrap_or(t);
    let (num, exp) = match t.chars().last() {
        Some(c @ ('k' | 'm' | 'g' | 't' | 'p')) => (&t[..t.len() - 1], "kmgtp".find(c)? as i32 + 1),
        _ => (t, 0),
    };
    let n: f64 = num.trim().parse().ok().filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    Some((n * 1024f64.powi(exp)) as u64)
}

fn limits(args: &RunArgs) -> Result<executor::Limits> {
    let mut limits = executor::Limits::default();
    if let Some(m) = &args.memory {
        let bytes = ram_in_bytes(m)
            .ok_or_else(|| usage(format!("invalid --memory {m:?}: expected e.g. 512m or 2g")))?;
        if bytes < MIN_MEMORY {
            return Err(usage("minimum memory limit allowed is 6MB"));
        }
        limits.memory_bytes = Some(bytes);
    }
    if let Some(cpus) = args.cpus {
        if args.cpu_quota.is_some() || args.cpu_period.is_some() {
            return Err(usage("conflicting options: --cpus and --cpu-quota/--cpu-period cannot both be set"));
        }
        if !cpus.is_finite() || cpus <= 0.0 {
            return Err(usage(format!("invalid --cpus {cpus}: must be a positive number")));
        }
        limits = limits.with_cpus(cpus);
    }
    if let Some(quota) = args.cpu_quota {
        if quota < 1000 {
            return Err(usage("CPU cfs quota cannot be less than 1ms (i.e. 1000)"));
        }
        limits.cpu_quota_us = Some(quota);
    }
    if let Some(period) = args.cpu_period {
        if !(1000..=1_000_000).contains(&period) {
            return Err(usage(
                "CPU cfs period cannot be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
            ));
        }
        limits.cpu_period_us = Some(period);
    }
    limits.pids = args.pids_limit.filter(|n| *n > 0).map(|n| n as u64);
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> RunArgs {
        RunArgs {
            secrets: Vec::new(),
            ssh: Vec::new(),
            network: None,
            allow: Vec::new(),
            security_opts: Vec::new(),
            memory: None,
            cpus: None,
            cpu_quota: None,
            cpu_period: None,
            pids_limit: None,
        }
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("t0ken".into()),
            "SSH_AUTH_SOCK" => Some("/nonexistent/agent.sock".into()),
            _ => None,
        }
    }

    #[test]
    fn secrets() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.txt");
        std::fs::write(&file, "v").unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![0u8; MAX_SECRET_SIZE as usize + 1]).unwrap();
        let f = file.display().to_string();
        type Case<'a> = (String, Result<(&'a str, SecretSource), String>);
        let cases: Vec<Case<'_>> = vec![
            (format!("id=a,src={f}"), Ok(("a", SecretSource::File(file.clone())))),
            (format!("id=a,source={f},type=file"), Ok(("a", SecretSource::File(file.clone())))),
            ("id=a,env=TOKEN".into(), Ok(("a", SecretSource::Env("TOKEN".into())))),
            ("id=a,src=TOKEN,type=env".into(), Ok(("a", SecretSource::Env("TOKEN".into())))),
            ("id=TOKEN".into(), Ok(("TOKEN", SecretSource::Env("TOKEN".into())))),
            ("id=a,env=UNSET_VAR".into(), Ok(("a", SecretSource::Env("UNSET_VAR".into())))),
            ("src=/x".into(), Err("secret missing ID".into())),
            ("id=a,type=ssh".into(), Err("unsupported secret type \"ssh\"".into())),
            ("id=a,foo=1".into(), Err("unexpected key 'foo' in 'foo=1'".into())),
            ("id=a,bare".into(), Err("invalid field 'bare' must be a key=value pair".into())),
            (format!("id=b,src={}", big.display()), Err("secret b too big. max size 500KB".into())),
            (
                "id=a,src=/nonexistent/secret".into(),
                Err("failed to stat /nonexistent/secret: No such file or directory (os error 2)".into()),
            ),
        ];
        for (value, want) in cases {
            let got = secret(&value, &env).map_err(|e| e.to_string());
            let want = want.map(|(id, s)| (id.to_string(), s));
            assert_eq!(got, want, "{value}");
        }
    }

    #[test]
    fn ssh_sources() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let key = dir.path().join("id_ed25519");
        std::fs::write(&key, "key").unwrap();
        let (s, k) = (sock.display().to_string(), key.display().to_string());
        type Case<'a> = (String, Result<(&'a str, SshSource), &'a str>);
        let cases: Vec<Case<'_>> = vec![
            (format!("default={s}"), Ok(("default", SshSource::Agent(sock.clone())))),
            (format!("work={k},{k}"), Ok(("work", SshSource::Keys(vec![key.clone(), key.clone()])))),
            (format!("x={s},{k}"), Err("only single socket allowed")),
            (format!("x={k},{s}"), Err("invalid combination of keys and sockets")),
        ];
        for (value, want) in cases {
            let got = ssh_source(&value, &env).map_err(|e| e.to_string());
            let want = want.map(|(id, s)| (id.to_string(), s)).map_err(String::from);
            assert_eq!(got, want, "{value}");
        }
        // Without a path: $SSH_AUTH_SOCK, which must exist.
        let err = ssh_source("default", &env).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/agent.sock"), "{err}");
        let err = ssh_source("default", &|_| None).unwrap_err().to_string();
        assert_eq!(err, "invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set");
    }

    #[test]
    fn limits_and_privileges() {
        let mut a = args();
        a.memory = Some("512m".into());
        a.cpus = Some(1.5);
        a.pids_limit = Some(64);
        a.security_opts = vec!["no-new-privileges".into()];
        a.allow = vec!["security.insecure".into()];
        a.network = Some(NetworkFlag::None);
        let o = run_options(&a, &env).unwrap();
        assert_eq!(o.limits.memory_bytes, Some(512 << 20));
        assert_eq!((o.limits.cpu_quota_us, o.limits.cpu_period_us), (Some(150_000), Some(100_000)));
        assert_eq!(o.limits.pids, Some(64));
        assert!(o.no_new_privileges);
        assert_eq!(o.allow, vec![Entitlement::SecurityInsecure]);
        assert_eq!(o.network, solver::ir::Network::None);

        type Edit = fn(&mut RunArgs);
        let bad: Vec<(Edit, &str)> = vec![
            (|a| a.memory = Some("lots".into()), "invalid --memory \"lots\": expected e.g. 512m or 2g"),
            (|a| a.memory = Some("1m".into()), "minimum memory limit allowed is 6MB"),
            (|a| a.allow = vec!["device".into()], "unknown entitlement device"),
            (
                |a| a.security_opts = vec!["seccomp=unconfined".into()],
                "unsupported --security-opt \"seccomp=unconfined\": rbuild supports no-new-privileges[=true|false]",
            ),
            (
                |a| {
                    a.cpus = Some(1.0);
                    a.cpu_quota = Some(50_000);
                },
                "conflicting options: --cpus and --cpu-quota/--cpu-period cannot both be set",
            ),
            (|a| a.cpu_quota = Some(10), "CPU cfs quota cannot be less than 1ms (i.e. 1000)"),
        ];
        for (edit, want) in bad {
            let mut a = args();
            edit(&mut a);
            assert_eq!(run_options(&a, &env).unwrap_err().to_string(), want);
        }
        assert_eq!(ram_in_bytes("1.5GiB"), Some(1536 << 20));
        assert_eq!(ram_in_bytes("1024"), Some(1024));
        let mut a = args();
        a.security_opts = vec!["no-new-privileges=true".into(), "no-new-privileges:false".into()];
        assert!(!run_options(&a, &env).unwrap().no_new_privileges);
    }
}

//! `rbuild login` and `rbuild logout`: registry credentials, saved where docker saves them
//! (`$DOCKER_CONFIG/config.json`, default `~/.docker/config.json`, as a base64 `auth` entry,
//! or through the `credsStore` / `credHelpers` helper the file names). The password is
//! checked with the registry before it is saved and never printed.

use anyhow::{Context, Result};
use clap::Args;
use registry::credentials;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `rbuild login --help` examples.
pub const LOGIN_EXAMPLES: &str = "Examples:
  rbuild login registry.example.com                     (asks for user name and password)
  echo \"$TOKEN\" | rbuild login -u ci --password-stdin registry.example.com
  rbuild login -u me 127.0.0.1:5000
  DOCKER_CONFIG=/tmp/ci-docker rbuild login -u ci --password-stdin registry.example.com < token";

/// `rbuild logout --help` examples.
pub const LOGOUT_EXAMPLES: &str = "Examples:
  rbuild logout registry.example.com
  rbuild logout                    (Docker Hub)";

/// The registry used when none is given, as docker.
const DEFAULT_REGISTRY: &str = "docker.io";

/// `rbuild login` flags.
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The registry (`host[:port]`; default: Docker Hub).
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,

    /// User name (asked for on a terminal when not given).
    #[arg(short, long, value_name = "USER")]
    pub username: Option<String>,

    /// Password or token. Insecure (it lands in the shell history and the process list):
    /// prefer --password-stdin.
    #[arg(short, long, value_name = "PASSWORD", conflicts_with = "password_stdin")]
    pub password: Option<String>,

    /// Read the password or token from standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

/// `rbuild logout` flags.
#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// The registry (`host[:port]`; default: Docker Hub).
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(crate::UsageError(message.into()))
}

/// The registry host of a server argument: docker accepts `https://host/v2/` too.
fn registry_host(server: Option<&str>) -> Result<String> {
    let Some(raw) = server else { return Ok(DEFAULT_REGISTRY.to_string()) };
    let trimmed = raw.trim();
    let without_scheme =
        trimmed.strip_prefix("https://").or_else(|| trimmed.strip_prefix("http://")).unwrap_or(trimmed);
    let host = without_scheme.split('/').next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(usage(format!("invalid registry {raw:?}: expected host[:port]")));
    }
    Ok(host.to_string())
}

fn config_dir() -> Result<PathBuf> {
    credentials::default_config_dir().ok_or_else(|| {
        anyhow::anyhow!("cannot find docker's configuration directory: set DOCKER_CONFIG or HOME")
    })
}

/// Reads one line from a terminal, without echo for secrets. Echo goes off before the
/// prompt appears, so nothing typed after the prompt is ever shown.
fn prompt(label: &str, secret: bool) -> Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let saved = if secret {
        let saved = tcgetattr(&stdin).context("cannot read the terminal settings")?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        quiet.local_flags.insert(LocalFlags::ECHONL);
        tcsetattr(&stdin, SetArg::TCSANOW, &quiet).context("cannot turn terminal echo off")?;
        Some(saved)
    } else {
        None
    };
    let mut line = String::new();
    let read = (|| -> std::io::Result<usize> {
        let mut err = std::io::stderr().lock();
        write!(err, "{label}: ")?;
        err.flush()?;
        drop(err);
        stdin.lock().read_line(&mut line)
    })();
    if let Some(saved) = saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    }
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// True when `config.json` sends this registry's credentials to a helper.
fn uses_helper(dir: &Path, registry: &str) -> bool {
    let Ok(text) = std::fs::read(dir.join("config.json")) else { return false };
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&text) else { return false };
    let key = credentials::config_key(registry);
    let named = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).is_some_and(|s| !s.is_empty());
    named(json.get("credHelpers").and_then(|h| h.get(&key))) || named(json.get("credsStore"))
}

/// `rbuild login`.
pub async fn login(args: &LoginArgs) -> Result<ExitCode> {
    let registry = registry_host(args.server.as_deref())?;
    let interactive = std::io::stdin().is_terminal();
    if args.password_stdin && args.username.is_none() {
        return Err(usage("--password-stdin needs --username"));
    }
    let username = match &args.username {
        Some(u) => u.clone(),
        None if interactive => prompt("Username", false)?,
        None => return Err(usage("no user name: give --username (standard input is not a terminal)")),
    };
    if username.is_empty() {
        return Err(usage("the user name is empty"));
    }
    let password = if let Some(p) = &args.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p.clone()
    } else if args.password_stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read the password from standard input")?;
        text.trim_end_matches(['\n', '\r']).to_string()
    } else if interactive {
        prompt("Password", true)?
    } else {
        return Err(usage("no password: use --password-stdin (standard input is not a terminal)"));
    };
    if password.is_empty() {
        return Err(usage("the password is empty"));
    }
    let settings = crate::settings();
    let client = registry::Client::new(registry::ClientConfig {
        insecure_registries: settings.registry.insecure.clone(),
        mirrors: settings.registry.mirrors.clone(),
        ..registry::ClientConfig::default()
    })?;
    client
        .verify_login(&registry, &username, &password)
        .await
        .with_context(|| format!("login to {registry} failed"))?;
    let dir = config_dir()?;
    let (store_dir, store_registry) = (dir.clone(), registry.clone());
    tokio::task::spawn_blocking(move || {
        credentials::store(&store_dir, &store_registry, &username, &password)
    })
    .await
    .context("credential store task failed")??;
    if !uses_helper(&dir, &registry) {
        eprintln!(
            "WARNING! Your credentials are stored unencrypted in '{}'.\n\
             Configure a credential helper (credsStore) to remove this warning.",
            dir.join("config.json").display()
        );
    }
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

/// `rbuild logout`: succeeds also when there was nothing to remove, as docker.
pub async fn logout(args: &LogoutArgs) -> Result<ExitCode> {
    let registry = registry_host(args.server.as_deref())?;
    let dir = config_dir()?;
    let key = credentials::config_key(&registry);
    let found = tokio::task::spawn_blocking(move || credentials::erase(&dir, &registry))
        .await
        .context("credential store task failed")??;
    if found {
        println!("Removing login credentials for {key}");
    } else {
        println!("Not logged in to {key}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_hosts_like_docker() {
        let cases: &[(Option<&str>, Option<&str>)] = &[
            (None, Some("docker.io")),
            (Some("127.0.0.1:5000"), Some("127.0.0.1:5000")),
            (Some("https://registry.example.com/v2/"), Some("registry.example.com")),
            (Some("http://localhost:5000"), Some("localhost:5000")),
            (Some(""), None),
            (Some("https://"), None),
            (Some("a b"), None),
        ];
        for (input, want) in cases {
            assert_eq!(registry_host(*input).ok().as_deref(), *want, "{input:?}");
        }
    }

    #[test]
    fn helpers_are_read_from_config_json() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!uses_helper(dir.path(), "r.example"));
        std::fs::write(dir.path().join("config.json"), r#"{"credHelpers":{"r.example":"pass"}}"#).unwrap();
        assert!(uses_helper(dir.path(), "r.example"));
        assert!(!uses_helper(dir.path(), "other.example"));
        std::fs::write(dir.path().join("config.json"), r#"{"credsStore":"secretservice"}"#).unwrap();
        assert!(uses_helper(dir.path(), "other.example"));
    }
}

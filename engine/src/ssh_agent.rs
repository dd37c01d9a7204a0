//! An ssh agent holding key files for one build (`--ssh id=KEYFILE`): BuildKit's client
//! loads the keys into an in-process agent; rbuild starts OpenSSH's `ssh-agent` on a
//! private socket and adds the keys with `ssh-add`.

use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long `ssh-agent` may take to create its socket.
const AGENT_START_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the key agent could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum SshAgentError {
    /// `ssh-agent` or `ssh-add` could not be started.
    #[error("ssh {id:?}: cannot run {program} (install openssh-client): {source}")]
    Spawn {
        /// The ssh id.
        id: String,
        /// The program.
        program: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// `ssh-agent` did not create its socket in time.
    #[error("ssh {id:?}: ssh-agent did not start")]
    NoSocket {
        /// The ssh id.
        id: String,
    },
    /// `ssh-add` refused a key (unreadable, not a key, or passphrase-protected).
    #[error("ssh {id:?}: cannot load key {key}: {reason}")]
    Key {
        /// The ssh id.
        id: String,
        /// The key file.
        key: PathBuf,
        /// What `ssh-add` said.
        reason: String,
    },
    /// The private directory for the socket could not be created.
    #[error("ssh {id:?}: creating a directory for the agent: {source}")]
    Dir {
        /// The ssh id.
        id: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A running `ssh-agent` with the build's keys; stopped (and its socket removed) on drop.
#[derive(Debug)]
pub(crate) struct KeyAgent {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

impl KeyAgent {
    /// Starts an agent for ssh id `id` holding `keys`. Blocking.
    pub(crate) fn start(id: &str, keys: &[PathBuf]) -> Result<KeyAgent, SshAgentError> {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("rbuild-agent-{}-{n}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|source| SshAgentError::Dir { id: id.into(), source })?;
        let socket = dir.join("agent.sock");
        let spawned = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(source) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(SshAgentError::Spawn { id: id.into(), program: "ssh-agent", source });
            }
        };
        let mut agent = KeyAgent { child, dir, socket };
        let started = Instant::now();
        while !agent.socket.exists() {
            if started.elapsed() > AGENT_START_TIMEOUT || agent.child.try_wait().ok().flatten().is_some() {
                return Err(SshAgentError::NoSocket { id: id.into() });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for key in keys {
            agent.add(id, key)?;
        }
        Ok(agent)
    }

    fn add(&self, id: &str, key: &Path) -> Result<(), SshAgentError> {
        let mut child = Command::new("ssh-add")
            .arg("-q")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            // Never prompt: a passphrase-protected key is an error, as in BuildKit.
            .env("SSH_ASKPASS_REQUIRE", "never")
            .env_remove("DISPLAY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| SshAgentError::Spawn { id: id.into(), program: "ssh-add", source })?;
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        let status = child.wait().map_err(|source| SshAgentError::Spawn {
            id: id.into(),
            program: "ssh-add",
            source,
        })?;
        if status.success() {
            return Ok(());
        }
        let reason = stderr.trim();
        Err(SshAgentError::Key {
            id: id.into(),
            key: key.to_path_buf(),
            reason: if reason.is_empty() { status.to_string() } else { reason.to_string() },
        })
    }

    /// The agent's socket.
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for KeyAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! `RUN --mount=type=ssh`: a socket private to one step that forwards every connection to
//! the user's ssh agent, as BuildKit's sshforward does. The step sees a socket with the
//! mount's owner and mode; the agent's own socket is never touched.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;

/// Why an ssh socket could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The build was given no agent for this id and the mount is required.
    #[error("no SSH key {id:?} forwarded from the client")]
    NotForwarded {
        /// The ssh id.
        id: String,
    },
    /// The forwarding socket could not be set up.
    #[error("ssh {id:?}: preparing the forwarding socket {path}: {source}")]
    Socket {
        /// The ssh id.
        id: String,
        /// The directory or socket.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// A forwarding socket for one step; stops forwarding and removes the socket on drop.
#[derive(Debug)]
pub(crate) struct SshForward {
    dir: PathBuf,
    socket: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl SshForward {
    /// Starts forwarding connections on a new socket (owned by `uid:gid`, with `mode`) to
    /// the agent at `agent`. Must be called inside the tokio runtime.
    pub(crate) fn start(
        id: &str,
        agent: &Path,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<SshForward, SshError> {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        // Short paths: a socket path must fit in 108 bytes.
        let dir = std::env::temp_dir().join(format!("rbuild-ssh-{}-{n}", std::process::id()));
        let err = |path: &Path| {
            let id = id.to_string();
            let path = path.to_path_buf();
            move |source| SshError::Socket { id, path, source }
        };
        fs::DirBuilder::new().mode(0o700).create(&dir).map_err(err(&dir))?;
        let socket = dir.join("agent.sock");
        let listener = match UnixListener::bind(&socket) {
            Ok(l) => l,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(err(&socket)(e));
            }
        };
        let prepared = std::os::unix::fs::chown(&socket, Some(uid), Some(gid))
            .and_then(|()| fs::set_permissions(&socket, fs::Permissions::from_mode(mode & 0o777)));
        if let Err(e) = prepared {
            let _ = fs::remove_dir_all(&dir);
            return Err(err(&socket)(e));
        }
        let agent = agent.to_path_buf();
        let task = tokio::spawn(async move {
            // Dropping the set (when the task is aborted) aborts every open connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut client, _)) = accepted else { break };
                        let agent = agent.clone();
                        connections.spawn(async move {
                            if let Ok(mut upstream) = UnixStream::connect(&agent).await {
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                            }
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(SshForward { dir, socket, task })
    }

    /// The socket to bind-mount into the sandbox.
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for SshForward {
    fn drop(&mut self) {
        self.task.abort();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A fake agent that answers every request with its reversed bytes.
    async fn echo_agent(path: &Path) -> tokio::task::JoinHandle<()> {
        let listener = UnixListener::bind(path).unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    if let Ok(n) = s.read(&mut buf).await {
                        buf[..n].reverse();
                        let _ = s.write_all(&buf[..n]).await;
                    }
                });
            }
        })
    }

    #[tokio::test]
    async fn forwards_connections_and_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let agent = tmp.path().join("agent");
        let _agent_task = echo_agent(&agent).await;
        let agent_mode = meta_mode(&agent);
        let forward = SshForward::start("default", &agent, 0o660, 1000, 1001).unwrap();
        let meta = fs::metadata(forward.socket()).unwrap();
        assert_eq!((meta.mode() & 0o777, meta.uid(), meta.gid()), (0o660, 1000, 1001));
        for _ in 0..2 {
            let mut c = UnixStream::connect(forward.socket()).await.unwrap();
            c.write_all(b"abc").await.unwrap();
            let mut out = [0u8; 3];
            c.read_exact(&mut out).await.unwrap();
            assert_eq!(&out, b"cba");
        }
        let socket = forward.socket().to_path_buf();
        drop(forward);
        assert!(!socket.exists());
        assert_eq!(meta_mode(&agent), agent_mode, "the agent's socket is left as it was");
    }

    fn meta_mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().mode() & 0o777
    }
}

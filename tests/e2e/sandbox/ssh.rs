//! `RUN --mount=type=ssh` with `--ssh`: a real `ssh-agent` (OpenSSH) is reachable from the
//! step, which lists its key with the real `ssh-add`; key files are served by an agent of
//! the build's own.

use super::{build_local, read};
use crate::harness::{self, Cmd, Rbuild, require_lab};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `ssh-agent` on a private socket; killed on drop.
struct Agent {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start() -> Agent {
        let dir = harness::tempdir();
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ssh-agent");
        let started = Instant::now();
        while !socket.exists() {
            assert!(started.elapsed() < Duration::from_secs(10), "ssh-agent did not create its socket");
            std::thread::sleep(Duration::from_millis(10));
        }
        Agent { child, socket, _dir: dir }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new ed25519 key with `comment`; returns the private key file.
fn keygen(dir: &Path, comment: &str) -> PathBuf {
    let key = dir.join(comment);
    Cmd::tool("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(&key)
        .expect_ok();
    key
}

/// The host's `ssh-add` and the shared libraries it needs, laid out under `root` at their
/// absolute paths (the busybox base image has no OpenSSH).
fn copy_ssh_add(root: &Path) {
    let ldd = Cmd::tool("ldd").arg("/usr/bin/ssh-add").expect_ok();
    let libs = ldd.stdout.split_whitespace().filter(|w| w.starts_with('/')).map(String::from);
    for file in std::iter::once("/usr/bin/ssh-add".to_string()).chain(libs) {
        let dest = root.join(file.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&file, &dest).unwrap_or_else(|e| panic!("copy {file}: {e}"));
    }
}

/// Why this host cannot run the ssh tests, if it cannot.
fn missing_openssh() -> Option<&'static str> {
    ["/usr/bin/ssh-agent", "/usr/bin/ssh-add", "/usr/bin/ssh-keygen", "/usr/bin/ldd"]
        .into_iter()
        .find(|p| !Path::new(p).exists())
}

#[test]
fn ssh_agent_is_reachable_from_run() {
    require_lab!();
    if let Some(tool) = missing_openssh() {
        eprintln!("skipped: {tool} is missing (Debian openssh-client, see scripts/setup.sh)");
        return;
    }
    let lab = harness::lab();
    let keys = harness::tempdir();
    let agent = Agent::start();
    let user_key = keygen(keys.path(), "e2e-agent-key");
    let o = Command::new("ssh-add")
        .arg("-q")
        .arg(&user_key)
        .env("SSH_AUTH_SOCK", &agent.socket)
        .output()
        .unwrap();
    assert!(o.status.success(), "ssh-add: {}", String::from_utf8_lossy(&o.stderr));
    let file_key = keygen(keys.path(), "e2e-file-key");

    let df = format!(
        "FROM {}\n\
         COPY tools/ /\n\
         RUN --mount=type=ssh echo \"$SSH_AUTH_SOCK\" > /sock && ssh-add -l > /default.keys\n\
         RUN --mount=type=ssh,id=deploy,target=/deploy.sock,uid=1000,mode=0600 \
             stat -c '%a %u' /deploy.sock > /deploy.stat && SSH_AUTH_SOCK=/deploy.sock ssh-add -l > /deploy.keys\n\
         RUN --mount=type=ssh,id=unknown [ ! -e /run ] && echo clean > /run.clean\n",
        lab.base
    );
    let ctx = harness::context(&[("Dockerfile", &df)]);
    copy_ssh_add(&ctx.path().join("tools"));
    let rb = Rbuild::new();
    let default = format!("default={}", agent.socket.display());
    let deploy = format!("deploy={}", file_key.display());
    let (o, out) = build_local(&rb, ctx.path(), &["--ssh", &default, "--ssh", &deploy]);
    assert_eq!(o.code, Some(0), "{o}");
    assert_eq!(read(out.path(), "sock").trim(), "/run/buildkit/ssh_agent.0");
    assert!(read(out.path(), "default.keys").contains("e2e-agent-key (ED25519)"), "{o}");
    assert!(read(out.path(), "deploy.keys").contains("e2e-file-key (ED25519)"), "{o}");
    assert_eq!(read(out.path(), "deploy.stat").trim(), "600 1000");
    // An optional ssh id nobody forwarded is skipped; no socket or stub is left behind.
    // (The base image has no /run: the socket's mount point was a stub, removed with its parents.)
    assert_eq!(read(out.path(), "run.clean").trim(), "clean", "mount stub left in /run");
    assert!(!out.path().join("deploy.sock").exists());

    // A required id that was not forwarded fails with BuildKit's message.
    let df = format!("FROM {}\nRUN --mount=type=ssh,id=gitlab,required true\n", lab.base);
    let ctx = harness::context(&[("Dockerfile", &df)]);
    let o = rb.build(ctx.path()).args(["--ssh", &default]).expect_fail();
    assert!(o.error_text().contains("no SSH key \"gitlab\" forwarded from the client"), "{o}");
}

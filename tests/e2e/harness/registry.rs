//! A real registry: Debian's `docker-registry` (CNCF distribution) on a free loopback port with
//! its own storage folder, optionally behind htpasswd basic auth.
//!
//! The registry runs under a small `sh` wrapper started with `setpriv --pdeathsig TERM` from a
//! thread that lives as long as the [`Registry`] value. Dropping the value, or the test process
//! ending without dropping it (a registry kept in a `static`), sends TERM to the wrapper, which
//! stops the registry and removes its folder: nothing outlives the test process.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// How long a fresh registry may take to answer `/v2/`.
const STARTUP: Duration = Duration::from_secs(15);

/// Stops the registry, waits for it, removes its folder; runs on TERM (drop or parent death).
const WRAPPER: &str = r#"
dir=$1; cfg=$2; log=$3
trap 'kill -TERM "$r" 2>/dev/null; wait "$r"; rm -rf "$dir"; exit 0' TERM INT HUP
"$REGISTRY_BIN" serve "$cfg" >"$log" 2>&1 &
r=$!
wait "$r"
"#;

/// A running registry; stopped (and its storage removed) on drop.
pub struct Registry {
    port: u16,
    dir: PathBuf,
    stop: Option<mpsc::Sender<()>>,
    keeper: Option<JoinHandle<()>>,
}

impl Registry {
    /// Starts a registry without auth.
    pub fn start() -> Registry {
        Registry::start_with(None)
    }

    /// Starts a registry that requires basic auth with `user`/`password`.
    pub fn start_with_auth(user: &str, password: &str) -> Registry {
        Registry::start_with(Some((user, password)))
    }

    fn start_with(account: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("rbuild-e2e-registry-")
            .tempdir()
            .expect("temp dir for the registry")
            .keep();
        std::fs::create_dir_all(dir.join("storage")).expect("registry storage dir");
        if let Some((user, password)) = account {
            // Cost 4 keeps the registry's check fast; distribution accepts any bcrypt cost.
            let hash = bcrypt::hash_with_result(password, 4)
                .expect("bcrypt hash")
                .format_for_version(bcrypt::Version::TwoA);
            std::fs::write(dir.join("htpasswd"), format!("{user}:{hash}\n")).expect("htpasswd");
        }
        let (ready_tx, ready_rx) = mpsc::channel::<Result<u16, String>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread_dir = dir.clone();
        let auth = account.is_some();
        // The registry's parent-death signal fires when the thread that spawned it ends, so the
        // spawning thread must live exactly as long as the registry is wanted.
        let keeper = std::thread::Builder::new()
            .name("registry-keeper".into())
            .spawn(move || {
                let mut child = match spawn_until_ready(&thread_dir, auth) {
                    Ok((child, port)) => {
                        let _ = ready_tx.send(Ok(port));
                        child
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = stop_rx.recv();
                terminate(&mut child);
            })
            .expect("registry keeper thread");
        let port = match ready_rx.recv() {
            Ok(Ok(port)) => port,
            Ok(Err(e)) => panic!("docker-registry did not start: {e}"),
            Err(_) => panic!("registry keeper thread died"),
        };
        Registry { port, dir, stop: Some(stop_tx), keeper: Some(keeper) }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT/<repo_and_tag>`.
    pub fn image(&self, repo_and_tag: &str) -> String {
        format!("{}/{repo_and_tag}", self.host())
    }

    /// The registry's access log so far (one line per request, `"HEAD /v2/... HTTP/1.1" 200`).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// Requests in the access log whose request line starts with `method` and contains `path_part`.
    pub fn requests(&self, method: &str, path_part: &str) -> Vec<String> {
        let prefix = format!("\"{method} ");
        self.access_log()
            .lines()
            .filter_map(|l| {
                let start = l.find(&prefix)?;
                let request = &l[start + 1..];
                request.contains(path_part).then(|| request.to_string())
            })
            .collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(k) = self.keeper.take() {
            let _ = k.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn_until_ready(dir: &Path, auth: bool) -> Result<(Child, u16), String> {
    let mut last_error = String::new();
    // A port found free can be taken by someone else before the registry binds it: retry.
    for _ in 0..5 {
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let cfg = dir.join("config.yml");
        std::fs::write(&cfg, config(dir, port, auth)).map_err(|e| e.to_string())?;
        let log = dir.join("registry.log");
        let mut child = Command::new("setpriv")
            .args(["--pdeathsig", "TERM", "--", "sh", "-c", WRAPPER, "sh"])
            .arg(dir)
            .arg(&cfg)
            .arg(&log)
            .env("REGISTRY_BIN", REGISTRY_BIN)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn setpriv/docker-registry: {e}"))?;
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                last_error = format!(
                    "docker-registry exited ({status}) on port {port}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default().trim()
                );
                break;
            }
            if answers_v2(port) {
                return Ok((child, port));
            }
            if Instant::now() > deadline {
                terminate(&mut child);
                return Err(format!("no answer on 127.0.0.1:{port}/v2/ within {STARTUP:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Err(last_error)
}

fn terminate(child: &mut Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// True when something that speaks the distribution API answers on `port`.
fn answers_v2(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = s.read_to_string(&mut response);
    response.starts_with("HTTP/1.")
        && response.to_ascii_lowercase().contains("docker-distribution-api-version")
}

fn config(dir: &Path, port: u16, auth: bool) -> String {
    let storage = dir.join("storage");
    let mut cfg = format!(
        "version: 0.1\n\
         log:\n  level: error\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
         \x20 maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: rbuild-e2e-{port}\n\
         health:\n  storagedriver:\n    enabled: false\n",
        storage = storage.display(),
    );
    if auth {
        cfg.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: rbuild-e2e\n    path: {}\n",
            dir.join("htpasswd").display()
        ));
    }
    cfg
}

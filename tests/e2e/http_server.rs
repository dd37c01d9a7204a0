//! A small HTTP/1.1 server for the remote-source tests, on a free loopback port: static files
//! with ETag, Last-Modified and `If-None-Match` support, a log of the requests it answered,
//! and git's smart HTTP protocol through `git http-backend` (as a CGI program) for
//! repositories under a root folder. One request per connection; stopped on drop.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A file the server answers with.
#[derive(Clone, Debug, Default)]
pub struct File {
    /// The body.
    pub body: Vec<u8>,
    /// `ETag` header (with its quotes).
    pub etag: Option<String>,
    /// `Last-Modified` header.
    pub last_modified: Option<String>,
    /// Status other than 200.
    pub status: Option<u16>,
}

impl File {
    /// A 200 response with `body`.
    pub fn new(body: &[u8]) -> File {
        File { body: body.to_vec(), ..File::default() }
    }
}

#[derive(Default)]
struct State {
    files: BTreeMap<String, File>,
    log: Vec<String>,
    git_root: Option<PathBuf>,
}

/// A running server.
pub struct Server {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Starts a server with no files.
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = handle(conn, &st);
                });
            }
        });
        Server { port, state, stop }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Serves `file` at `path` (replacing what was there).
    pub fn put(&self, path: &str, file: File) {
        self.state.lock().expect("server state").files.insert(path.to_string(), file);
    }

    /// Serves the git repositories under `root` at `/git/<name>` (smart HTTP).
    pub fn serve_git(&self, root: PathBuf) {
        self.state.lock().expect("server state").git_root = Some(root);
    }

    /// The requests answered so far, as `METHOD /path` (most recent last).
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().expect("server state").log.clone()
    }

    /// Forgets the request log.
    pub fn clear_log(&self) {
        self.state.lock().expect("server state").log.clear();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn handle(conn: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("/").to_string());
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let (git_root, file) = {
        let mut s = state.lock().expect("server state");
        s.log.push(format!("{method} {path}"));
        (s.git_root.clone(), s.files.get(path).cloned())
    };
    let mut out = conn;
    if let (Some(root), Some(rest)) = (git_root, path.strip_prefix("/git")) {
        return git_cgi(&mut out, &root, &method, rest, query, &headers, &body);
    }
    let Some(file) = file else {
        return respond(&mut out, 404, &[], b"not found\n", method == "HEAD");
    };
    let mut extra: Vec<(String, String)> = Vec::new();
    if let Some(e) = &file.etag {
        extra.push(("ETag".into(), e.clone()));
        let asked = headers.get("if-none-match").map(|v| v.split(',').any(|t| t.trim() == e));
        if asked == Some(true) && file.status.is_none() {
            return respond(&mut out, 304, &extra, b"", true);
        }
    }
    if let Some(m) = &file.last_modified {
        extra.push(("Last-Modified".into(), m.clone()));
    }
    respond(&mut out, file.status.unwrap_or(200), &extra, &file.body, method == "HEAD")
}

fn respond(
    out: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    no_body: bool,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    if !no_body && status != 304 {
        out.write_all(body)?;
    }
    out.flush()
}

/// Runs `git http-backend` for one request, CGI style.
fn git_cgi(
    out: &mut TcpStream,
    root: &std::path::Path,
    method: &str,
    path_info: &str,
    query: &str,
    headers: &BTreeMap<String, String>,
    body: &[u8],
) -> std::io::Result<()> {
    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", path_info)
        .env("QUERY_STRING", query)
        .env("REQUEST_METHOD", method)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (header, var) in [
        ("content-type", "CONTENT_TYPE"),
        ("git-protocol", "GIT_PROTOCOL"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
    ] {
        if let Some(v) = headers.get(header) {
            cmd.env(var, v);
        }
    }
    let mut child = cmd.spawn()?;
    child.stdin.take().expect("stdin").write_all(body)?;
    let output = child.wait_with_output()?;
    let raw = output.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, sep)) = split else { return respond(out, 500, &[], b"bad cgi output", false) };
    let mut status = 200;
    let mut extra = Vec::new();
    for line in String::from_utf8_lossy(&raw[..end]).lines() {
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("status") {
                status = v.split_whitespace().next().and_then(|s| s.parse().ok()).unwrap_or(500);
            } else {
                extra.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    respond(out, status, &extra, &raw[end + sep..], method == "HEAD")
}

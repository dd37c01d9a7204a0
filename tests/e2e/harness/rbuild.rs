//! Running the real program: a fresh store root per [`Rbuild`], commands with a timeout, and
//! their captured output.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The program under test.
pub const PROGRAM: &str = env!("CARGO_BIN_EXE_rbuild-e2e");

/// A command that takes longer than this is killed and the test fails.
const TIMEOUT: Duration = Duration::from_secs(180);

/// One store root (images and build cache), removed on drop; commands made from it share it.
pub struct Rbuild {
    root: tempfile::TempDir,
}

impl Rbuild {
    /// A fresh, empty store root.
    pub fn new() -> Rbuild {
        let root = tempfile::Builder::new().prefix("rbuild-e2e-root-").tempdir().expect("temp store root");
        std::fs::create_dir_all(root.path().join("docker-config")).expect("docker config dir");
        // An empty config file: the host's /etc/rbuild and ~/.config/rbuild never leak in.
        std::fs::write(root.path().join("rbuild.toml"), "").expect("config file");
        Rbuild { root }
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// This store's rbuild config file (`RBUILD_CONFIG`), empty unless a test writes it.
    pub fn config_file(&self) -> std::path::PathBuf {
        self.root.path().join("rbuild.toml")
    }

    /// `rbuild --root ROOT <args>`, with an empty docker config (no host credentials leak in).
    pub fn cmd<I, S>(&self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Cmd {
            program: PROGRAM.into(),
            args: vec!["--root".into(), self.root().into()],
            env: vec![
                ("DOCKER_CONFIG".into(), self.root().join("docker-config").into()),
                ("RBUILD_CONFIG".into(), self.config_file().into()),
            ],
            timeout: TIMEOUT,
            stdin: None,
        };
        cmd.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        cmd
    }

    /// `rbuild --root ROOT build --progress plain CONTEXT`; add flags with [`Cmd::arg`].
    pub fn build(&self, context: &Path) -> Cmd {
        let mut c = self.cmd(["build", "--progress", "plain"]);
        c.args.push(context.into());
        c
    }

    /// Stores basic-auth credentials for `registry` in this store's docker config (what
    /// `docker login` writes to `config.json`).
    pub fn login(&self, registry: &str, user: &str, password: &str) {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let config = serde_json::json!({ "auths": { registry: { "auth": auth } } });
        std::fs::write(self.root().join("docker-config/config.json"), config.to_string())
            .expect("config.json");
    }

    /// The output of `rbuild images`.
    pub fn images(&self) -> String {
        self.cmd(["images"]).expect_ok().stdout
    }
}

/// A command line to run once.
#[derive(Clone, Debug)]
pub struct Cmd {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    timeout: Duration,
    /// A file to feed as standard input (`None`: `/dev/null`).
    stdin: Option<PathBuf>,
}

impl Cmd {
    /// A command for any program (used for the independent tools: skopeo, umoci, tar).
    pub fn tool(program: &str) -> Cmd {
        Cmd { program: program.into(), args: Vec::new(), env: Vec::new(), timeout: TIMEOUT, stdin: None }
    }

    /// Adds one argument.
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Cmd {
        self.args.push(a.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the command.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Cmd {
        self.env.push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Feeds the file at `path` to the command's standard input.
    pub fn stdin_file(mut self, path: impl Into<PathBuf>) -> Cmd {
        self.stdin = Some(path.into());
        self
    }

    /// Kills the command after `limit` instead of the default.
    pub fn timeout(mut self, limit: Duration) -> Cmd {
        self.timeout = limit;
        self
    }

    /// The command line, for messages.
    pub fn display(&self) -> String {
        let mut s = self.program.display().to_string();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    /// The command as one `sh` line (`env K=V ... program args`, every word single-quoted),
    /// for running it where only a shell command can be given, such as inside tmux.
    pub fn shell_line(&self) -> String {
        let quote = |s: &OsStr| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"));
        let mut line = String::from("env");
        for (k, v) in &self.env {
            let mut pair = k.clone();
            pair.push("=");
            pair.push(v);
            line.push(' ');
            line.push_str(&quote(&pair));
        }
        line.push(' ');
        line.push_str(&quote(self.program.as_os_str()));
        for a in &self.args {
            line.push(' ');
            line.push_str(&quote(a));
        }
        line
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(match &self.stdin {
                Some(path) => Stdio::from(
                    std::fs::File::open(path).unwrap_or_else(|e| panic!("stdin {}: {e}", path.display())),
                ),
                None => Stdio::null(),
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that a timeout kills everything it started.
            .process_group(0);
        command
    }

    /// Starts the command in the background (see [`super::running::Running`]).
    pub fn spawn(&self) -> super::running::Running {
        let child = self.command().spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", self.display()));
        super::running::Running::new(child, self.display(), self.timeout)
    }

    /// Runs the command to the end (or kills it after the timeout) and captures its output.
    pub fn run(&self) -> Outcome {
        let mut child =
            self.command().spawn().unwrap_or_else(|e| panic!("cannot run {}: {e}", self.display()));
        let pid = child.id();
        let out = reader(child.stdout.take());
        let err = reader(child.stderr.take());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let (code, timed_out) = match rx.recv_timeout(self.timeout) {
            Ok(Ok(status)) => (status.code().or_else(|| status.signal().map(|s| 128 + s)), false),
            Ok(Err(e)) => panic!("waiting for {}: {e}", self.display()),
            Err(_) => {
                let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
                let _ = rx.recv();
                (None, true)
            }
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        Outcome { cmdline: self.display(), code, timed_out, stdout, stderr }
    }

    /// Runs and asserts exit code 0.
    #[track_caller]
    pub fn expect_ok(&self) -> Outcome {
        let o = self.run();
        if o.code != Some(0) {
            panic!("expected success:\n{o}");
        }
        o
    }

    /// Runs and asserts a non-zero exit (not a crash by signal, not a timeout).
    #[track_caller]
    pub fn expect_fail(&self) -> Outcome {
        let o = self.run();
        match o.code {
            Some(0) => panic!("expected failure:\n{o}"),
            Some(c) if (1..128).contains(&c) => o,
            _ => panic!("expected a clean failure, got a crash or timeout:\n{o}"),
        }
    }
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// What a finished command did.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The command line.
    pub cmdline: String,
    /// Exit code (128 + signal when killed by a signal); `None` after a timeout.
    pub code: Option<i32>,
    /// True when the command was killed for taking too long.
    pub timed_out: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Outcome {
    /// The error report of a failure: stderr from its first line that starts with `error`
    /// (progress lines before it may quote the Dockerfile and must not count as the message).
    pub fn error_text(&self) -> String {
        let lines: Vec<&str> = self.stderr.lines().collect();
        match lines.iter().position(|l| l.to_ascii_lowercase().starts_with("error")) {
            Some(i) => lines[i..].join("\n"),
            None => String::new(),
        }
    }

    /// The progress events of a `--progress rawjson` run (the JSON lines of stderr).
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "$ {}", self.cmdline)?;
        match (self.code, self.timed_out) {
            (_, true) => writeln!(f, "(killed: timeout)")?,
            (Some(c), _) => writeln!(f, "exit code {c}")?,
            (None, _) => writeln!(f, "no exit code")?,
        }
        writeln!(f, "--- stdout\n{}", tail(&self.stdout, 60))?;
        write!(f, "--- stderr\n{}", tail(&self.stderr, 80))
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

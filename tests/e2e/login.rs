//! `rbuild login` / `logout` against a registry with basic auth: the password is checked
//! before it is saved, saved where docker saves it (a base64 `auth` entry, or the configured
//! credential helper), never printed, and used by `push`.

use crate::harness::{self, Rbuild, Registry, require_lab};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const USER: &str = "e2e-user";
const PASSWORD: &str = "s3cret-Pa55word";

/// What one run printed.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// `rbuild --root ROOT <args>` with `stdin` on standard input (the harness gives commands
/// none) and `path` prepended to `PATH` when given; killed after a minute.
fn run_with_stdin(rb: &Rbuild, args: &[&str], stdin: &str, path: Option<&Path>) -> Run {
    let mut cmd = Command::new("timeout");
    cmd.arg("60")
        .arg(harness::rbuild::PROGRAM)
        .arg("--root")
        .arg(rb.root())
        .args(args)
        .env("DOCKER_CONFIG", rb.root().join("docker-config"))
        .env("RBUILD_CONFIG", rb.config_file())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = path {
        let old = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{old}", dir.display()));
    }
    let mut child = cmd.spawn().expect("spawn rbuild");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("wait for rbuild");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `rbuild --root ROOT <args>` in a terminal (util-linux `script` makes one) and types
/// each answer once its prompt has appeared. Returns everything the terminal showed.
fn run_in_terminal(rb: &Rbuild, args: &str, answers: &[(&str, &str)]) -> String {
    let cmdline = format!("{} --root {} {args}", harness::rbuild::PROGRAM, rb.root().display());
    let mut child = Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .env("DOCKER_CONFIG", rb.root().join("docker-config"))
        .env("RBUILD_CONFIG", rb.config_file())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn script (util-linux)");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut stdin = child.stdin.take().expect("stdin");
    let mut shown = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut next = 0;
    let mut seen_until = 0;
    loop {
        if let Some((prompt, answer)) = answers.get(next)
            && let Some(at) = shown[seen_until..].find(prompt)
        {
            seen_until += at + prompt.len();
            stdin.write_all(format!("{answer}\n").as_bytes()).expect("type an answer");
            next += 1;
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => shown.push_str(&String::from_utf8_lossy(&chunk)),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("no prompt {:?} within a minute; the terminal shows:\n{shown}", answers.get(next));
            }
        }
    }
    drop(stdin);
    let _ = child.wait();
    shown
}

fn config_json(rb: &Rbuild) -> serde_json::Value {
    let path = rb.root().join("docker-config/config.json");
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| panic!("config.json is not JSON: {e}")),
        Err(_) => serde_json::json!({}),
    }
}

#[test]
fn login_checks_saves_and_logout_forgets_like_docker() {
    require_lab!();
    let lab = harness::lab();
    let registry = Registry::start_with_auth(USER, PASSWORD);
    let host = registry.host();
    let target = registry.image("e2e/private:1");
    let rb = Rbuild::new();
    rb.cmd(["pull", "-q", &lab.base]).expect_ok();
    rb.cmd(["tag", &lab.base, &target]).expect_ok();
    let o = rb.cmd(["push", &target]).run();
    assert_eq!(o.code, Some(1), "push without login:\n{o}");

    // A wrong password is refused and nothing is saved.
    let o = run_with_stdin(&rb, &["login", "-u", USER, "--password-stdin", &host], "wrong\n", None);
    assert_eq!(o.code, Some(1), "{o}");
    assert!(config_json(&rb)["auths"].get(&host).is_none(), "a refused login was saved");

    let o = run_with_stdin(
        &rb,
        &["login", "-u", USER, "--password-stdin", &host],
        &format!("{PASSWORD}\n"),
        None,
    );
    assert_eq!(o.code, Some(0), "{o}");
    assert!(o.stdout.contains("Login Succeeded") && o.stderr.contains("unencrypted"), "{o}");
    assert!(!o.stdout.contains(PASSWORD) && !o.stderr.contains(PASSWORD), "the password was printed:\n{o}");
    use base64::Engine as _;
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    assert_eq!(config_json(&rb)["auths"][&host]["auth"], expected.as_str());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(rb.root().join("docker-config/config.json")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o077, 0, "config.json is readable by others: {mode:o}");
    let o = rb.cmd(["push", &target]).expect_ok();
    assert!(o.stdout.contains("digest: sha256:"), "{o}");

    let o = rb.cmd(["logout", &host]).expect_ok();
    assert!(o.stdout.contains(&format!("Removing login credentials for {host}")), "{o}");
    assert!(config_json(&rb)["auths"].get(&host).is_none(), "logout left the entry");
    let o = rb.cmd(["logout", &host]).expect_ok();
    assert!(o.stdout.contains("Not logged in"), "{o}");
    let o = rb.cmd(["pull", &target]).run();
    assert_eq!(o.code, Some(1), "pull after logout:\n{o}");
}

#[test]
fn login_on_a_terminal_asks_and_never_echoes_the_password() {
    require_lab!();
    let registry = Registry::start_with_auth(USER, PASSWORD);
    let host = registry.host();
    let rb = Rbuild::new();
    let shown =
        run_in_terminal(&rb, &format!("login {host}"), &[("Username: ", USER), ("Password: ", PASSWORD)]);
    assert!(shown.contains("Login Succeeded"), "{shown}");
    assert!(shown.contains(USER), "the user name is echoed as typed:\n{shown}");
    assert!(!shown.contains(PASSWORD), "the password was echoed:\n{shown}");
    use base64::Engine as _;
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    assert_eq!(config_json(&rb)["auths"][&host]["auth"], expected.as_str());
}

/// A `docker-credential-e2e` helper keeping one secret in `dir/secret.json`.
const HELPER: &str = r#"#!/bin/sh
dir=$(dirname "$0")
case "$1" in
  store) cat > "$dir/secret.json" ;;
  get) read server; if [ -f "$dir/secret.json" ]; then cat "$dir/secret.json"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  erase) read server; if [ -f "$dir/secret.json" ]; then rm "$dir/secret.json"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  *) exit 1 ;;
esac
"#;

#[test]
fn login_goes_through_the_configured_credential_helper() {
    require_lab!();
    let registry = Registry::start_with_auth(USER, PASSWORD);
    let host = registry.host();
    let rb = Rbuild::new();
    let bin = harness::tempdir();
    let helper = bin.path().join("docker-credential-e2e");
    std::fs::write(&helper, HELPER).unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(rb.root().join("docker-config/config.json"), r#"{"credsStore":"e2e"}"#).unwrap();

    let o =
        run_with_stdin(&rb, &["login", "-u", USER, "--password-stdin", &host], PASSWORD, Some(bin.path()));
    assert_eq!(o.code, Some(0), "{o}");
    assert!(!o.stderr.contains("unencrypted"), "warned although a helper stores it:\n{o}");
    let secret: serde_json::Value = serde_json::from_slice(
        &std::fs::read(bin.path().join("secret.json")).expect("the helper got nothing"),
    )
    .unwrap();
    assert_eq!((secret["Username"].as_str(), secret["Secret"].as_str()), (Some(USER), Some(PASSWORD)));
    let config = config_json(&rb);
    assert_eq!(config["auths"][&host], serde_json::json!({}), "the secret leaked into config.json: {config}");
    assert_eq!(config["credsStore"], "e2e", "other settings were lost: {config}");

    let o = run_with_stdin(&rb, &["logout", &host], "", Some(bin.path()));
    assert_eq!(o.code, Some(0), "{o}");
    assert!(!bin.path().join("secret.json").exists(), "logout did not erase the helper's secret");
}

#[test]
fn login_usage_errors_exit_2() {
    require_lab!();
    let rb = Rbuild::new();
    let cases: [(&[&str], &str, &str); 4] = [
        (&["login", "--password-stdin", "127.0.0.1:1"], "pw", "--username"),
        (&["login", "-u", "me", "127.0.0.1:1"], "", "--password-stdin"),
        (&["login", "-u", "me", "-p", "x", "--password-stdin", "127.0.0.1:1"], "pw", "cannot be used with"),
        (&["login", "-u", "me", "--password-stdin", "https://"], "pw", "invalid registry"),
    ];
    let mut wrong = Vec::new();
    for (args, stdin, needle) in cases {
        let o = run_with_stdin(&rb, args, stdin, None);
        if o.code != Some(2) || !o.stderr.contains(needle) {
            wrong.push(format!("{args:?}: want exit 2 and {needle:?}:\n{o}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}

//! What a user sees while building, pinned by golden files in `tests/e2e/golden/` (issue 8):
//! the whole `--progress plain` stderr of a cold and a cached multi-stage build, the
//! `--metadata-file` document and the `--iidfile`, and the `--progress tty` screen captured
//! in a real terminal (tmux) while a step runs and after the build. Durations, digests, the
//! registry port, temporary paths and sizes are masked (`harness::golden::mask`).
//! `UPDATE_GOLDEN=1` rewrites the files.

use crate::harness::{self, Cmd, Rbuild, golden, require_lab};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Two stages: `tools` runs a step with output; the final stage copies from it and from the
/// context. The final stage's first step needs `tools`, so no two steps can run at once
/// (after the base image is loaded) and the `#N` numbering is the same every run.
fn multi_stage_dockerfile(base: &str) -> String {
    format!(
        "FROM {base} AS tools\n\
         RUN echo making the tool && printf 'line one\\nline two\\n' && mkdir /out && echo tool > /out/tool.txt\n\
         \n\
         FROM {base}\n\
         COPY --from=tools /out/tool.txt /app/tool.txt\n\
         COPY hello.txt /app/hello.txt\n\
         RUN cat /app/tool.txt /app/hello.txt\n"
    )
}

#[test]
fn plain_progress_metadata_and_iidfile_match_golden_files() {
    require_lab!();
    let lab = harness::lab();
    let ctx = harness::context(&[
        ("Dockerfile", &multi_stage_dockerfile(&lab.base)),
        ("hello.txt", "hello from the context\n"),
    ]);
    let out = harness::tempdir();
    let meta = out.path().join("metadata.json");
    let iid = out.path().join("iid");
    let rb = Rbuild::new();
    let build = || {
        rb.build(ctx.path())
            .args(["-t", "e2e/golden:1", "--metadata-file"])
            .arg(&meta)
            .arg("--iidfile")
            .arg(&iid)
    };

    let cold = build().expect_ok();
    let cold_meta = read(&meta);
    let cold_iid = read(&iid);
    let cached = build().expect_ok();
    let cached_meta = read(&meta);

    // The ID is the config digest, written without a newline as docker does.
    assert!(
        cold_iid.starts_with("sha256:") && cold_iid.len() == 71 && !cold_iid.contains('\n'),
        "iidfile: {cold_iid:?}"
    );
    assert_eq!(cold_iid, read(&iid), "a cached rebuild gives the same image ID");
    golden::check_all(&[
        ("plain_cold.txt", &golden::mask(&cold.stderr)),
        ("plain_cached.txt", &golden::mask(&cached.stderr)),
        ("metadata_cold.json", &golden::mask(&cold_meta)),
        ("metadata_cached.json", &golden::mask(&cached_meta)),
        ("iidfile.txt", &golden::mask(&cold_iid)),
    ]);
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The tty view is only drawn on a terminal: piped, `--progress tty` prints what `plain` does.
#[test]
fn tty_progress_without_a_terminal_is_plain() {
    require_lab!();
    let lab = harness::lab();
    let ctx = harness::context(&[("Dockerfile", &format!("FROM {}\nRUN echo piped\n", lab.base))]);
    let rb = Rbuild::new();
    rb.build(ctx.path()).expect_ok();
    // Two equal builds of a warm store, one asking for plain and one for tty.
    let plain = golden::mask(&rb.build(ctx.path()).arg("--no-cache").expect_ok().stderr);
    let tty = rb.cmd(["build", "--progress", "tty", "--no-cache"]).arg(ctx.path()).expect_ok();
    assert_eq!(golden::mask(&tty.stderr), plain, "--progress tty into a pipe is not plain output");
}

/// Terminal size of the tmux pane the tty view is drawn in: wide enough for the
/// `image sha256:...` line, so that no line wraps.
const COLUMNS: u16 = 120;
const ROWS: u16 = 30;

/// A detached tmux server of its own (private socket) running one command in a fixed-size
/// pane; the server is killed on drop.
struct Tmux {
    dir: tempfile::TempDir,
}

impl Tmux {
    /// Starts `command` (an `sh` line) in a `COLUMNS`x`ROWS` pane, without a status line so
    /// the whole terminal is the pane.
    fn start(command: &str) -> Tmux {
        let dir = harness::tempdir();
        let conf = dir.path().join("tmux.conf");
        harness::write(&conf, "set -g status off\nset -g history-limit 2000\n");
        let tmux = Tmux { dir };
        tmux.tmux(&["-f"])
            .arg(&conf)
            .args(["new-session", "-d", "-s", "e2e", "-x", &COLUMNS.to_string(), "-y", &ROWS.to_string()])
            .arg(command)
            .expect_ok();
        tmux
    }

    fn tmux(&self, first: &[&str]) -> Cmd {
        Cmd::tool("tmux").arg("-S").arg(self.dir.path().join("socket")).args(first)
    }

    /// The visible pane as text (`escapes`: with colour and attribute escape sequences).
    fn capture(&self, escapes: bool) -> String {
        let mut c = self.tmux(&["capture-pane", "-p", "-t", "e2e"]);
        if escapes {
            c = c.arg("-e");
        }
        c.expect_ok().stdout
    }

    /// Polls the pane until `ready` holds for two captures in a row that are equal once
    /// masked (so a frame caught half drawn is not taken), and returns that capture.
    #[track_caller]
    fn wait_for(&self, what: &str, limit: Duration, ready: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        let mut previous: Option<String> = None;
        loop {
            let now = self.capture(false);
            if ready(&now) {
                let masked = golden::mask(&now);
                if previous.as_ref() == Some(&masked) {
                    return now;
                }
                previous = Some(masked);
            } else {
                previous = None;
            }
            assert!(start.elapsed() < limit, "tmux pane: no {what} after {limit:?}; the pane shows:\n{now}");
            std::thread::sleep(Duration::from_millis(80));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]).run();
    }
}

/// Why the tmux tests cannot run here, if they cannot.
fn missing_tmux() -> Option<String> {
    match Command::new("tmux").arg("-V").output() {
        Ok(o) if o.status.success() => None,
        _ => Some("tmux is not installed (scripts/setup.sh installs it)".into()),
    }
}

#[test]
fn tty_progress_in_a_terminal_matches_golden_files() {
    require_lab!();
    if let Some(reason) = missing_tmux() {
        eprintln!("skipped: {reason}");
        return;
    }
    let lab = harness::lab();
    let rb = Rbuild::new();
    // A first build leaves FROM and COPY in the cache, so the tty build shows CACHED steps.
    let warm = harness::context(&[
        ("Dockerfile", &format!("FROM {}\nCOPY hello.txt /hello.txt\n", lab.base)),
        ("hello.txt", "hello\n"),
    ]);
    rb.build(warm.path()).expect_ok();
    harness::write(
        &warm.path().join("Dockerfile"),
        &format!(
            "FROM {}\nCOPY hello.txt /hello.txt\nRUN echo first output && echo more output && sleep 3 && echo last output\n",
            lab.base
        ),
    );
    let build = rb.cmd(["build", "--progress", "tty", "-t", "e2e/tty:1"]).arg(warm.path());
    // TERM as in a common terminal emulator, NO_COLOR unset so colours are drawn; the shell
    // keeps the pane (and the final screen) after rbuild exits until the server is killed.
    let line = format!("env -u NO_COLOR TERM=xterm-256color {}; echo EXIT=$?; sleep 600", build.shell_line());
    let tmux = Tmux::start(&line);
    let limit = Duration::from_secs(120);
    let running = tmux.wait_for("running RUN step with its first output lines", limit, |pane| {
        // Output lines are shown as `   > line` under the step's line.
        let shown = |text: &str| pane.lines().any(|l| l.trim() == format!("> {text}"));
        shown("first output") && shown("more output") && !shown("last output")
    });
    let colored = tmux.capture(true);
    let done = tmux.wait_for("EXIT= line", limit, |pane| pane.contains("EXIT="));
    assert!(done.contains("EXIT=0"), "the build failed:\n{done}");
    // Colours are drawn when NO_COLOR is unset (CACHED is blue).
    assert!(colored.contains("\x1b[34m") || colored.contains("\x1b[38;5;4m"), "no colour:\n{colored:?}");
    drop(tmux);
    golden::check_all(&[
        ("tty_running.txt", &golden::mask(&running)),
        ("tty_done.txt", &golden::mask(&done)),
    ]);

    // NO_COLOR (https://no-color.org): the same view without colours or dim text.
    let line = format!("env NO_COLOR=1 TERM=xterm-256color {}; echo EXIT=$?; sleep 600", build.shell_line());
    let tmux = Tmux::start(&line);
    let done = tmux.wait_for("EXIT= line", limit, |pane| pane.contains("EXIT="));
    assert!(done.contains("EXIT=0") && done.contains("CACHED [3/3] RUN"), "cached rebuild:\n{done}");
    let plain = tmux.capture(true);
    assert!(!plain.contains("\x1b["), "colours despite NO_COLOR=1:\n{plain:?}");
}

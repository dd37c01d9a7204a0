//! `rbuild pull`: fetch an image from its registry into the local store, so that builds
//! `FROM` it need no network. Also the per-layer report that `push` shares.

use crate::progress::human_bytes;
use anyhow::Result;
use clap::Args;
use engine::{LayerStatus, TransferProgress};
use registry::{Digest, Platform};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `--help` examples.
pub const EXAMPLES: &str = "Examples:
  rbuild pull 127.0.0.1:5000/lab/busybox
  rbuild pull --platform linux/arm64 registry.example.com/team/base:1.2
  rbuild pull registry.example.com/team/base@sha256:0123…   (by manifest digest)
  rbuild pull -q registry.example.com/team/base:1.2          (print only the name)";

/// `rbuild pull` flags.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// The image: `[registry/]repository[:tag|@digest]`.
    #[arg(value_name = "NAME")]
    pub name: String,

    /// The platform to pull from a multi-platform image (default: the configured platform,
    /// else this machine's).
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,

    /// Print only the image's name.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `rbuild pull`.
pub async fn run(args: &PullArgs, root: PathBuf) -> Result<ExitCode> {
    let reference = super::tag::parse_name(&args.name, true)?;
    let platform = match args.platform.as_ref().or(crate::settings().platform.as_ref()) {
        Some(p) => p.parse::<Platform>().map_err(|e| anyhow::Error::new(crate::UsageError(e.to_string())))?,
        None => Platform::host(),
    };
    let engine = crate::open_engine(root)?;
    let report = TransferReport::new(args.quiet, true);
    if !args.quiet {
        let what = reference
            .digest
            .as_ref()
            .map_or_else(|| reference.tag.clone().unwrap_or_else(|| "latest".into()), |d| d.to_string());
        println!("{what}: Pulling from {}", reference.repository);
    }
    let outcome = engine.pull_image(&reference, &platform, &|p| report.event(p)).await;
    report.finish();
    let outcome = outcome?;
    let mut out = std::io::stdout().lock();
    if !args.quiet {
        writeln!(out, "Digest: {}", outcome.digest)?;
        let status = if outcome.updated { "Downloaded newer image for" } else { "Image is up to date for" };
        writeln!(out, "Status: {status} {}", reference.familiar())?;
    }
    writeln!(out, "{}", reference.familiar())?;
    Ok(ExitCode::SUCCESS)
}

/// Prints what happens to each layer of a pull or push as docker does (`0a1b2c3d4e5f: Pull
/// complete`) on stdout and, when stderr is a terminal, keeps a live line there with the
/// bytes moved, the total and the rate.
pub(crate) struct TransferReport {
    quiet: bool,
    pull: bool,
    live: bool,
    state: Mutex<LiveState>,
}

struct LiveState {
    /// Bytes done and total, per layer still moving.
    layers: BTreeMap<Digest, (u64, u64)>,
    /// Bytes of layers finished.
    finished: u64,
    start: Instant,
    last_draw: Option<Instant>,
    drawn: bool,
    /// The repository a push mounts layers from.
    mount: Option<String>,
}

impl TransferReport {
    /// A report for a pull (`pull`) or a push.
    pub(crate) fn new(quiet: bool, pull: bool) -> TransferReport {
        TransferReport {
            quiet,
            pull,
            live: !quiet && std::io::stderr().is_terminal(),
            state: Mutex::new(LiveState {
                layers: BTreeMap::new(),
                finished: 0,
                start: Instant::now(),
                last_draw: None,
                drawn: false,
                mount: None,
            }),
        }
    }

    /// Takes one progress event.
    pub(crate) fn event(&self, p: TransferProgress) {
        if self.quiet {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match p {
            TransferProgress::Bytes { digest, current, total } => {
                state.layers.insert(digest, (current, total));
                if self.live && state.last_draw.is_none_or(|t| t.elapsed() >= Duration::from_millis(100)) {
                    self.draw(&mut state);
                }
            }
            TransferProgress::MountFrom { repository } => state.mount = Some(repository),
            TransferProgress::Layer { digest, status } => {
                if let Some((_, total)) = state.layers.remove(&digest) {
                    state.finished += total;
                }
                self.clear(&mut state);
                let text = match (self.pull, status, &state.mount) {
                    (true, LayerStatus::AlreadyExists, _) => "Already exists".to_string(),
                    (true, _, _) => "Pull complete".to_string(),
                    (false, LayerStatus::AlreadyExists, _) => "Layer already exists".to_string(),
                    (false, LayerStatus::Mounted, Some(from)) => format!("Mounted from {from}"),
                    (false, LayerStatus::Mounted, None) => "Mounted from another repository".to_string(),
                    (false, _, _) => "Pushed".to_string(),
                };
                println!("{}: {text}", &digest.hex()[..12]);
            }
        }
    }

    /// Removes the live line.
    pub(crate) fn finish(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.clear(&mut state);
    }

    fn draw(&self, state: &mut LiveState) {
        let done: u64 = state.finished + state.layers.values().map(|(c, _)| c).sum::<u64>();
        let total: u64 = state.finished + state.layers.values().map(|(_, t)| t).sum::<u64>();
        let secs = state.start.elapsed().as_secs_f64().max(0.001);
        let verb = if self.pull { "downloading" } else { "uploading" };
        let rate = human_bytes((done as f64 / secs) as u64);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{verb} {} / {} ({rate}/s)", human_bytes(done), human_bytes(total));
        let _ = err.flush();
        state.last_draw = Some(Instant::now());
        state.drawn = true;
    }

    fn clear(&self, state: &mut LiveState) {
        if state.drawn {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
            state.drawn = false;
        }
    }
}

//! `rbuild build`: run one build with live progress, then report the image.

use crate::args::BuildArgs;
use anyhow::Result;
use engine::EngineError;
use solver::progress::ProgressSink;
use std::io::Write;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;

/// `rbuild build`.
pub async fn run(args: BuildArgs, root: std::path::PathBuf) -> Result<ExitCode> {
    let (req, _context_dirs) = crate::resolve::build_request(&args)?;
    let engine = crate::open_engine(root)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut renderer = crate::renderer(args.progress, args.quiet);
    if let Some(path) = &args.trace {
        renderer = Box::new(crate::progress::Trace::new(renderer, path.clone()));
    }
    let render = tokio::task::spawn_blocking(move || {
        let mut steps = crate::metadata_file::StepRecorder::default();
        while let Some(event) = rx.blocking_recv() {
            steps.observe(&event);
            renderer.event(&event);
        }
        renderer.finish();
        steps
    });
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let signal = tokio::select! {
            _ = tokio::signal::ctrl_c() => nix::sys::signal::Signal::SIGINT as i32,
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => nix::sys::signal::Signal::SIGTERM as i32,
        };
        crate::INTERRUPTED_BY.store(signal, std::sync::atomic::Ordering::SeqCst);
        on_signal.cancel();
    });
    let dockerfile = req.dockerfile.clone();
    let result = engine.build(req, ProgressSink::new(tx), cancel).await;
    let steps = render.await.unwrap_or_default();
    let outcome = match result {
        Ok(o) => o,
        Err(error @ EngineError::Solve(_)) => {
            // Where the failing step's whole output is kept.
            let hint = engine.build_logs().get(None).ok().and_then(|b| {
                let failed = b.steps.iter().find(|s| s.status == "failed")?;
                Some(format!("rbuild logs {} --step {}", b.id, failed.number))
            });
            return Err(crate::StepFailed { error, dockerfile, hint }.into());
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(path) = &args.iidfile {
        std::fs::write(path, outcome.image_id.as_str())?;
    }
    if let Some(path) = &args.metadata_file {
        crate::metadata_file::write(path, &outcome, &steps)?;
    }
    if args.quiet {
        println!("{}", outcome.image_id);
    } else {
        let mut err = std::io::stderr().lock();
        writeln!(
            err,
            "image {} ({} steps run, {} cached)",
            outcome.image_id, outcome.steps_ran, outcome.steps_cached
        )?;
        for name in &outcome.names {
            writeln!(err, "named {name}")?;
        }
        for (name, digest) in &outcome.pushed {
            writeln!(err, "pushed {name}@{digest}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

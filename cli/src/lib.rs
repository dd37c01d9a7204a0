//! `rbuild`: the command-line front of the builder. Parses flags (step one, `args.rs`),
//! resolves them into an engine request (step two, `resolve.rs`), runs the engine and
//! renders its progress (`progress/`). Exit codes: 0 success, 1 build failure, 2 usage error,
//! 128 + signal when SIGINT (130) or SIGTERM (143) cancelled the build.
//!
//! The whole program is this library's [`main`], so that the end-to-end tests can build the
//! same program under another binary name; `src/main.rs` only calls it.

mod args;
mod cache_spec;
mod commands;
mod config;
mod context_spec;
mod metadata_file;
mod output_spec;
mod progress;
mod resolve;
mod resolve_run;
mod run_args;

use anyhow::Result;
use args::{Cli, Command, DebugCommand, ProgressMode};
use clap::Parser;
use engine::{Engine, EngineConfig, EngineError};
use progress::Renderer;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// Exit code of a failed build.
const EXIT_BUILD_FAILED: u8 = 1;
/// Exit code of a usage error (clap uses it too).
const EXIT_USAGE: u8 = 2;

/// The `rbuild` program.
pub fn main() -> ExitCode {
    // The sandbox re-executes this binary; that path must run before any thread exists.
    executor::maybe_sandbox_init();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_BUILD_FAILED);
        }
    };
    let mut settings = match config::Config::load() {
        Ok(c) => c,
        Err(e) => {
            report(&e);
            return ExitCode::from(EXIT_BUILD_FAILED);
        }
    };
    let root = resolve::store_root(cli.root.clone().or_else(|| settings.root.clone()));
    if cli.runtime.is_some() {
        settings.runtime = cli.runtime.clone();
    }
    let _ = CONFIG.set(settings);
    match runtime.block_on(run(cli.command, root)) {
        Ok(code) => code,
        // `rbuild du | head` closing the pipe early is not an error worth a message.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            report(&e);
            ExitCode::from(exit_code_of(&e))
        }
    }
}

fn exit_code_of(e: &anyhow::Error) -> u8 {
    // A build stopped by Ctrl-C or SIGTERM exits like a program the signal killed (130 for
    // SIGINT, as `docker` and shells report it), whatever error the cancellation surfaced as.
    let signal = INTERRUPTED_BY.load(std::sync::atomic::Ordering::SeqCst);
    if signal > 0 {
        return 128u8.saturating_add(signal as u8);
    }
    match e.downcast_ref::<UsageError>() {
        Some(_) => EXIT_USAGE,
        None => EXIT_BUILD_FAILED,
    }
}

/// The signal (SIGINT, SIGTERM) that cancelled the running command, 0 when none did.
pub(crate) static INTERRUPTED_BY: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// An error in how rbuild was called (bad flag value), as opposed to a failed build.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub(crate) String);

/// A failed build step together with the Dockerfile text, so the report can show the lines.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub(crate) struct StepFailed {
    pub(crate) error: EngineError,
    pub(crate) dockerfile: String,
    /// The command that prints the failing step's whole output.
    pub(crate) hint: Option<String>,
}

/// `  --> Dockerfile:5` and the step's lines, as rustc shows a location.
fn write_location(out: &mut dyn Write, location: &solver::ir::SourceLocation, text: &str) {
    let _ = writeln!(out, "  --> {}:{}", location.file, location.start_line);
    let lines: Vec<&str> = text.lines().collect();
    let width = location.end_line.to_string().len();
    let _ = writeln!(out, "{:>width$} |", "");
    for n in location.start_line..=location.end_line {
        if let Some(line) = lines.get(n as usize - 1) {
            let _ = writeln!(out, "{n:>width$} | {line}");
        }
    }
    let _ = writeln!(out, "{:>width$} |", "");
}

fn report(e: &anyhow::Error) {
    let mut err = std::io::stderr().lock();
    if let Some(EngineError::Dockerfile(failure)) = e.downcast_ref::<EngineError>() {
        let _ = write!(err, "{}", failure.error.render(&failure.text));
        return;
    }
    if let Some(StepFailed { error: EngineError::Solve(solve), dockerfile, hint }) =
        e.downcast_ref::<StepFailed>()
    {
        match solve.step_name() {
            Some(step) if !step.is_empty() => {
                let _ = writeln!(err, "error: {step}: {solve}");
            }
            _ => {
                let _ = writeln!(err, "error: {solve}");
            }
        }
        if let Some(location) = solve.location() {
            write_location(&mut err, location, dockerfile);
        }
        if let solver::SolveError::ProcessFailed { tail, .. } = solve
            && !tail.is_empty()
        {
            let _ = writeln!(err, "  last output:");
            for line in tail {
                let _ = writeln!(err, "  | {line}");
            }
        }
        if let Some(hint) = hint {
            let _ = writeln!(err, "  whole output: {hint}");
        }
        return;
    }
    let _ = writeln!(err, "error: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !e.to_string().contains(&text) {
            let _ = writeln!(err, "  caused by: {text}");
        }
        source = s.source();
    }
}

pub(crate) fn renderer(mode: ProgressMode, quiet: bool) -> Box<dyn Renderer> {
    let mode = if quiet { ProgressMode::Quiet } else { mode };
    match mode {
        ProgressMode::Plain => Box::new(progress::Plain::new(std::io::stderr())),
        ProgressMode::Tty => Box::new(progress::Tty::new()),
        ProgressMode::Auto if std::io::stderr().is_terminal() => Box::new(progress::Tty::new()),
        ProgressMode::Auto => Box::new(progress::Plain::new(std::io::stderr())),
        ProgressMode::Rawjson => Box::new(progress::RawJson),
        ProgressMode::Quiet => Box::new(progress::Quiet),
    }
}

/// The configuration files' settings, read once in [`main`].
static CONFIG: std::sync::OnceLock<config::Config> = std::sync::OnceLock::new();

/// The loaded configuration (defaults when none was loaded).
pub(crate) fn settings() -> &'static config::Config {
    CONFIG.get_or_init(config::Config::default)
}

/// File name of the standalone sandbox init (`src/bin/rbuild-sandbox-init.rs`).
const STANDALONE_INIT: &str = "rbuild-sandbox-init";

pub(crate) fn open_engine(root: std::path::PathBuf) -> Result<Engine> {
    let init_program = std::env::current_exe()?;
    // Installed next to rbuild (`cargo install` and the release archive put it there).
    let standalone_init = init_program.parent().map(|dir| dir.join(STANDALONE_INIT)).filter(|p| p.is_file());
    let settings = settings();
    let registry = registry::ClientConfig {
        insecure_registries: settings.registry.insecure.clone(),
        mirrors: settings.registry.mirrors.clone(),
        ..registry::ClientConfig::default()
    };
    let config = EngineConfig {
        root,
        init_program,
        standalone_init,
        registry,
        max_parallel_exec: settings
            .parallelism
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        keep_storage: settings.keep_storage_bytes(),
        runtime: resolve::runtime(settings.runtime.as_deref())?,
    };
    let mut told = false;
    Ok(Engine::open(config, |pid| {
        if !told {
            match pid {
                Some(p) => eprintln!("waiting for another rbuild (pid {p}) to release the store"),
                None => eprintln!("waiting for another rbuild to release the store"),
            }
            told = true;
        }
    })?)
}

async fn run(command: Command, root: std::path::PathBuf) -> Result<ExitCode> {
    match command {
        Command::Build(args) if args.check => commands::check::run(&args, root).await,
        Command::Build(args) => commands::build::run(args, root).await,
        Command::Images => commands::images::run(&open_engine(root)?),
        Command::Builds => commands::builds::list(&open_engine(root)?),
        Command::Logs { build, step } => commands::builds::logs(&open_engine(root)?, build.as_deref(), step),
        Command::Du { verbose } => commands::store::du(open_engine(root)?.store(), verbose),
        Command::Prune { all, filters, keep_storage } => {
            let policy = commands::store::prune_policy(all, &filters, keep_storage.as_deref())?;
            let engine = open_engine(root)?;
            if policy.all {
                engine.build_logs().retain(0)?;
            }
            commands::store::prune(engine.store(), &policy)
        }
        Command::Debug(DebugCommand::Ir { format, build }) => commands::debug::ir(format, &build, root).await,
        Command::Debug(DebugCommand::Why { build }) => commands::debug::why(&build, root).await,
        Command::Inspect(args) => commands::inspect::run(&args, root),
        Command::History(args) => commands::history::run(&args, root),
        Command::Tag(args) => commands::tag::run(&args, root),
        Command::Rmi(args) => commands::rmi::run(&args, root),
        Command::Push(args) => commands::push::run(&args, root).await,
        Command::Pull(args) => commands::pull::run(&args, root).await,
        Command::Save(args) => commands::save::run(&args, root).await,
        Command::Load(args) => commands::load::run(&args, root).await,
        Command::Login(args) => commands::login::login(&args).await,
        Command::Logout(args) => commands::login::logout(&args).await,
        Command::Version(args) => commands::version::run(&args),
        Command::Completion(args) => commands::completion::run(&args),
        Command::Debug(DebugCommand::Parse { file, context }) => commands::debug_parse::run(file, &context),
    }
}

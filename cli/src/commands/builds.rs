//! `rbuild builds` (recent builds) and `rbuild logs` (a build's full step output).

use anyhow::Result;
use engine::Engine;
use std::io::Write;
use std::process::ExitCode;

/// Lists recent builds, newest first.
pub fn list(engine: &Engine) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<18} {:<20} {:<8} {:>8} {:>6} {:>6}  CONTEXT",
        "BUILD", "STARTED", "RESULT", "TIME", "RAN", "CACHED"
    )?;
    for b in engine.build_logs().list()? {
        let result = if b.error.is_some() { "failed" } else { "ok" };
        writeln!(
            out,
            "{:<18} {:<20} {:<8} {:>7.1}s {:>6} {:>6}  {} ({})",
            b.id,
            ago(b.started_unix),
            result,
            b.seconds,
            b.steps_ran,
            b.steps_cached,
            b.context,
            b.dockerfile
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn ago(unix: i64) -> String {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    match now - unix {
        s if s < 60 => format!("{s} seconds ago"),
        s if s < 3600 => format!("{} minutes ago", s / 60),
        s if s < 86400 => format!("{} hours ago", s / 3600),
        s => format!("{} days ago", s / 86400),
    }
}

/// Prints a build's steps, or one step's whole output.
pub fn logs(engine: &Engine, build: Option<&str>, step: Option<usize>) -> Result<ExitCode> {
    let logs = engine.build_logs();
    let summary = logs.get(build)?;
    let mut out = std::io::stdout().lock();
    match step {
        Some(n) => out.write_all(&logs.step_log(&summary.id, n)?)?,
        None => {
            writeln!(out, "build {} ({:.1}s)", summary.id, summary.seconds)?;
            if let Some(e) = &summary.error {
                writeln!(out, "error: {e}")?;
            }
            for s in &summary.steps {
                let time = s.seconds.map(|t| format!(" {t:.1}s")).unwrap_or_default();
                writeln!(
                    out,
                    "#{} {} [{}{time}, {} bytes of output]",
                    s.number, s.name, s.status, s.log_bytes
                )?;
            }
            writeln!(out, "(rbuild logs {} --step N prints a step's whole output)", summary.id)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

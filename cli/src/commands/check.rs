//! `rbuild build --check`: BuildKit's build checks without building, reported the way
//! `docker build --check` does (on stdout), exit code 1 when any check fails.

use crate::args::BuildArgs;
use anyhow::Result;
use solver::progress::ProgressSink;
use std::io::Write;
use std::process::ExitCode;

/// `rbuild build --check`.
pub async fn run(args: &BuildArgs, root: std::path::PathBuf) -> Result<ExitCode> {
    let (req, _context_dirs) = crate::resolve::build_request(args)?;
    let engine = crate::open_engine(root)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut renderer = crate::renderer(args.progress, args.quiet);
    let render = tokio::task::spawn_blocking(move || {
        while let Some(event) = rx.blocking_recv() {
            renderer.event(&event);
        }
        renderer.finish();
    });
    let result = engine.check(&req, &ProgressSink::new(tx)).await;
    let _ = render.await;
    let report = result?;
    let mut out = std::io::stdout().lock();
    out.write_all(render_report(&report.warnings, &req.dockerfile_name, &req.dockerfile).as_bytes())?;
    if let Some(e) = &report.lint_error {
        writeln!(out, "\nerror: {e}")?;
    }
    let failed = !report.warnings.is_empty() || report.lint_error.is_some();
    Ok(if failed { ExitCode::from(crate::EXIT_BUILD_FAILED) } else { ExitCode::SUCCESS })
}

/// The report buildx prints for a lint request.
pub(crate) fn render_report(warnings: &[frontend::Warning], file: &str, text: &str) -> String {
    let mut out = String::new();
    match warnings.len() {
        0 => {
            out.push_str("Check complete, no warnings found.\n");
            return out;
        }
        1 => out.push_str("Check complete, 1 warning has been found!\n"),
        n => out.push_str(&format!("Check complete, {n} warnings have been found!\n")),
    }
    let mut sorted: Vec<&frontend::Warning> = warnings.iter().collect();
    sorted.sort_by_key(|w| w.span.start_line);
    for w in sorted {
        out.push_str(&format!("\nWARNING: {}", w.rule));
        if !w.url.is_empty() {
            out.push_str(&format!(" - {}", w.url));
        }
        out.push_str(&format!("\n{}\n", w.message));
        out.push_str(&source_excerpt(file, text, w.span.start_line, w.span.end_line));
    }
    out
}

/// BuildKit's `errdefs.Source.Print`: the lines with some context, the named ones marked.
fn source_excerpt(file: &str, text: &str, first: usize, last: usize) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    if first < 1 || first > lines.len() {
        return String::new();
    }
    let (mut start, mut end) = (first, last.max(first).min(lines.len()));
    let pad = if start == end { 4 } else { 2 };
    let mut p = 0;
    while p < pad {
        if start > 1 {
            start -= 1;
            p += 1;
        }
        if end != lines.len() {
            end += 1;
            p += 1;
        }
        p += 1;
    }
    let mut out = format!("{file}:{first}\n--------------------\n");
    for i in start..=end {
        let marker = if (first..=last.max(first)).contains(&i) { ">>>" } else { "   " };
        out.push_str(&format!(" {i:>3} | {marker} {}\n", lines[i - 1]));
    }
    out.push_str("--------------------\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_like_buildx() {
        let text = "FROM busybox as b\nRUN true\n";
        let df = frontend::parse(text, "Dockerfile").unwrap();
        let report = render_report(&df.warnings, "Dockerfile", text);
        let want = "Check complete, 1 warning has been found!

WARNING: FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/
'as' and 'FROM' keywords' casing do not match
Dockerfile:1
--------------------
   1 | >>> FROM busybox as b
   2 |     RUN true
   3 |     
--------------------
";
        assert_eq!(report, want);
        assert_eq!(render_report(&[], "Dockerfile", text), "Check complete, no warnings found.\n");
    }
}

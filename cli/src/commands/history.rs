//! `rbuild history`: one line per build step of an image, newest first, in the columns of
//! `docker history`.

use crate::progress::human_bytes;
use anyhow::Result;
use clap::{ArgAction, Args};
use engine::HistoryEntry;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `--help` examples.
pub const EXAMPLES: &str = "Examples:
  rbuild history app:latest
  rbuild history --no-trunc app
  rbuild history --human=false app     (sizes in bytes, times in RFC 3339)
  rbuild history -q app";

/// How many characters of CREATED BY docker shows without `--no-trunc`.
const CREATED_BY_WIDTH: usize = 45;

/// `rbuild history` flags.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// The image: a name, an image ID (or a unique prefix) or `name@sha256:…`.
    #[arg(value_name = "IMAGE")]
    pub image: String,

    /// Do not truncate image IDs and commands.
    #[arg(long)]
    pub no_trunc: bool,

    /// Sizes and dates in human-readable form (`--human=false`: bytes and RFC 3339 times).
    #[arg(
        short = 'H',
        long,
        value_name = "BOOL",
        default_value_t = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = ArgAction::Set
    )]
    pub human: bool,

    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `rbuild history`.
pub fn run(args: &HistoryArgs, root: PathBuf) -> Result<ExitCode> {
    let engine = crate::open_engine(root)?;
    let entries = engine.image_history(&args.image)?;
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let mut out = std::io::stdout().lock();
    let ids: Vec<String> = entries.iter().map(|e| image_column(e, args.no_trunc)).collect();
    if args.quiet {
        for id in ids {
            writeln!(out, "{id}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"].map(String::from)];
    for (e, id) in entries.iter().zip(ids) {
        rows.push([
            id,
            created_column(e, args.human, now),
            created_by_column(&e.created_by, args.no_trunc),
            if args.human { human_bytes(e.size) } else { e.size.to_string() },
            e.comment.clone(),
        ]);
    }
    write_table(&mut out, &rows)?;
    Ok(ExitCode::SUCCESS)
}

fn image_column(e: &HistoryEntry, no_trunc: bool) -> String {
    match &e.id {
        Some(id) if no_trunc => id.to_string(),
        Some(id) => id.hex().chars().take(12).collect(),
        None => "<missing>".to_string(),
    }
}

fn created_column(e: &HistoryEntry, human: bool, now: i64) -> String {
    match (human, e.created_unix) {
        (true, Some(t)) => format!("{} ago", human_duration(now.saturating_sub(t))),
        _ => e.created.clone().unwrap_or_default(),
    }
}

fn created_by_column(created_by: &str, no_trunc: bool) -> String {
    let one_line: String = created_by.chars().map(|c| if c == '\t' || c == '\n' { ' ' } else { c }).collect();
    if no_trunc || one_line.chars().count() <= CREATED_BY_WIDTH {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(CREATED_BY_WIDTH - 1).collect();
    cut.push('…');
    cut
}

/// docker's `units.HumanDuration`: "Less than a second", "About a minute", "3 weeks".
fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (minutes, hours) = (s / 60, s / 3600);
    match () {
        _ if s < 1 => "Less than a second".into(),
        _ if s == 1 => "1 second".into(),
        _ if s < 60 => format!("{s} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

/// Columns padded to their widest cell plus three spaces (docker's tabwriter padding).
fn write_table(out: &mut dyn Write, rows: &[[String; 5]]) -> std::io::Result<()> {
    let mut widths = [0usize; 5];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                line.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count() + 3));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_docker() {
        let cases: &[(i64, &str)] = &[
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (90, "About a minute"),
            (600, "10 minutes"),
            (3_700, "About an hour"),
            (5 * 3600, "5 hours"),
            (3 * 86_400, "3 days"),
            (20 * 86_400, "2 weeks"),
            (100 * 86_400, "3 months"),
            (3 * 365 * 86_400, "3 years"),
        ];
        for (s, want) in cases {
            assert_eq!(human_duration(*s), *want, "{s}s");
        }
    }

    #[test]
    fn created_by_is_truncated_to_45_characters() {
        let long = "RUN /bin/sh -c apk add --no-cache curl ca-certificates git # buildkit";
        let cut = created_by_column(long, false);
        assert_eq!(cut.chars().count(), 45);
        assert!(cut.ends_with('…') && long.starts_with(cut.trim_end_matches('…')));
        assert_eq!(created_by_column(long, true), long);
        assert_eq!(created_by_column("a\tb\nc", false), "a b c");
    }

    #[test]
    fn table_pads_columns() {
        let rows = [
            ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"].map(String::from),
            ["abc", "1 second ago", "RUN x", "0B", ""].map(String::from),
        ];
        let mut out = Vec::new();
        write_table(&mut out, &rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "IMAGE   CREATED        CREATED BY   SIZE   COMMENT\nabc     1 second ago   RUN x        0B\n"
        );
    }
}

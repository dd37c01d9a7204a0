//! Source positions and the crate-level error that points into a Dockerfile.

use serde::{Deserialize, Serialize};

/// A byte range of the Dockerfile source plus the 1-based lines it covers.
///
/// Lines are what BuildKit reports in its source maps; the byte range is what a renderer
/// needs to underline the exact text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Span {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
    /// 1-based line of `start`.
    pub start_line: usize,
    /// 1-based line of the last byte (equal to `start_line` for a one-line span).
    pub end_line: usize,
}

impl Span {
    /// A span covering `start..end`, with lines looked up in `index`.
    pub fn new(index: &LineIndex, start: usize, end: usize) -> Span {
        let end = end.max(start);
        let last = if end > start { end - 1 } else { start };
        Span { start, end, start_line: index.line_of(start), end_line: index.line_of(last) }
    }
}

/// Maps byte offsets of one source text to lines and columns.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
    len: usize,
}

impl LineIndex {
    /// Indexes `source`.
    pub fn new(source: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(source.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i + 1));
        LineIndex { starts, len: source.len() }
    }

    /// 1-based line of the byte at `offset` (offsets past the end belong to the last line).
    pub fn line_of(&self, offset: usize) -> usize {
        let offset = offset.min(self.len);
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    /// Byte offset where 1-based `line` starts (clamped to the text).
    pub fn line_start(&self, line: usize) -> usize {
        let i = line.saturating_sub(1).min(self.starts.len() - 1);
        self.starts[i]
    }

    /// Byte offset where 1-based `line` ends, excluding its line break.
    pub fn line_end(&self, source: &str, line: usize) -> usize {
        let start = self.line_start(line);
        let rest = &source[start.min(source.len())..];
        start + rest.find('\n').unwrap_or(rest.len())
    }

    /// 1-based (line, column) of `offset`; the column counts characters.
    pub fn line_col(&self, source: &str, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(source, offset.min(source.len()));
        let line = self.line_of(offset);
        let start = self.line_start(line).min(offset);
        (line, source[start..offset].chars().count() + 1)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// An error in a Dockerfile: where it is, what is wrong, and how to fix it when obvious.
///
/// `Display` gives the one-line form `Dockerfile:3:1: unknown instruction: RUNN (did you mean
/// RUN?)`; [`DockerfileError::render`] gives a multi-line report with the offending line and a
/// caret under the span.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{file}:{line}:{column}: {message}{}", help.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
pub struct DockerfileError {
    /// Name of the Dockerfile as given to [`crate::parse`].
    pub file: String,
    /// 1-based line of the start of the span.
    pub line: usize,
    /// 1-based column (in characters) of the start of the span.
    pub column: usize,
    /// The offending source text.
    pub span: Span,
    /// What is wrong (BuildKit's wording where BuildKit has one).
    pub message: String,
    /// A suggested fix, e.g. `did you mean RUN?`.
    pub help: Option<String>,
}

impl DockerfileError {
    /// An error at byte range `start..end` of `source`.
    pub fn at(
        file: &str,
        source: &str,
        index: &LineIndex,
        start: usize,
        end: usize,
        message: impl Into<String>,
    ) -> DockerfileError {
        let span = Span::new(index, start, end);
        let (line, column) = index.line_col(source, start);
        DockerfileError { file: file.to_string(), line, column, span, message: message.into(), help: None }
    }

    /// Adds a suggested fix.
    pub fn with_help(mut self, help: Option<String>) -> DockerfileError {
        self.help = help;
        self
    }

    /// The message followed by the help in BuildKit's `(did you mean X?)` form.
    pub fn full_message(&self) -> String {
        match &self.help {
            Some(h) => format!("{} ({h})", self.message),
            None => self.message.clone(),
        }
    }

    /// A rustc-style report: the message, the location, the offending lines and carets.
    ///
    /// `source` must be the text the error was produced from.
    pub fn render(&self, source: &str) -> String {
        let index = LineIndex::new(source);
        let mut out = format!("error: {}\n", self.message);
        let last_line = self.span.end_line.max(self.line);
        let width = last_line.to_string().len();
        out.push_str(&format!("{:width$}--> {}:{}:{}\n", "", self.file, self.line, self.column));
        out.push_str(&format!("{:width$} |\n", ""));
        // Long spans (a whole RUN with heredocs) show their first and last lines only.
        let lines: Vec<usize> = if last_line - self.line > 3 {
            vec![self.line, usize::MAX, last_line]
        } else {
            (self.line..=last_line).collect()
        };
        for line in lines {
            if line == usize::MAX {
                out.push_str(&format!("{:width$} | ...\n", ""));
                continue;
            }
            let start = index.line_start(line).min(source.len());
            let end = index.line_end(source, line).min(source.len());
            let text = source[start..end].trim_end_matches('\r');
            out.push_str(&format!("{line:>width$} | {}\n", text.replace('\t', "    ")));
            let from = self.span.start.max(start).min(start + text.len());
            let to = self.span.end.min(start + text.len()).max(from);
            if to > from || line == self.line {
                let pad = expanded_width(&text[..from - start]);
                let marks = expanded_width(&text[from - start..to - start]).max(1);
                out.push_str(&format!("{:width$} | {}{}", "", " ".repeat(pad), "^".repeat(marks)));
                if let Some(help) = self.help.as_ref().filter(|_| line == last_line) {
                    out.push_str(&format!(" {help}"));
                }
                out.push('\n');
            }
        }
        out
    }
}

fn expanded_width(s: &str) -> usize {
    s.chars().map(|c| if c == '\t' { 4 } else { 1 }).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_maps_offsets() {
        let src = "ab\ncd\n\nef";
        let idx = LineIndex::new(src);
        let cases = [(0, (1, 1)), (1, (1, 2)), (3, (2, 1)), (6, (3, 1)), (7, (4, 1)), (9, (4, 3))];
        for (off, want) in cases {
            assert_eq!(idx.line_col(src, off), want, "offset {off}");
        }
        assert_eq!(idx.line_end(src, 2), 5);
    }

    #[test]
    fn display_and_render() {
        let src = "FROM x\nRUNN echo\n";
        let idx = LineIndex::new(src);
        let e = DockerfileError::at("Dockerfile", src, &idx, 7, 11, "unknown instruction: RUNN")
            .with_help(Some("did you mean RUN?".into()));
        assert_eq!(e.to_string(), "Dockerfile:2:1: unknown instruction: RUNN (did you mean RUN?)");
        let r = e.render(src);
        assert!(r.contains("2 | RUNN echo"), "{r}");
        assert!(r.contains("  | ^^^^ did you mean RUN?"), "{r}");
    }
}

//! The raw Dockerfile parser: lines, continuations, comments, parser directives, heredocs,
//! flags and per-instruction argument splitting, exactly as BuildKit's `parser` package does
//! it. The result ([`RawDockerfile`]) is untyped; [`crate::instructions`] turns it into
//! typed instructions.
//!
//! [`RawDockerfile::dump`] prints BuildKit's S-expression dump, the format of its parser
//! test `result` files.

mod directives;
mod dump;
mod heredoc;
mod json;
mod line_parsers;
mod split;

use serde::{Deserialize, Serialize};

pub(crate) use directives::scan_lines;
pub use directives::{Directive, DirectiveParser, FoundDirective, detect_syntax, parse_directive};
pub use dump::go_quote;
pub use heredoc::{Heredoc, chomp_heredoc_content, heredocs_from_line, must_parse_heredoc, parse_heredoc};
pub use json::{JsonArrayError, NOT_STRINGS_MESSAGE, parse_json_array};
pub use line_parsers::parse_words;

use crate::error::{DockerfileError, LineIndex, Span};
use line_parsers::{Shape, parse_args, shape_of};

/// BuildKit's limit: a physical line of 65536 bytes or more is an error.
pub const MAX_LINE_LEN: usize = 65535;

/// The URL BuildKit attaches to the empty-continuation-line warning.
const NO_EMPTY_CONTINUATION_URL: &str = "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/";

/// One argument of a raw instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RawArg {
    /// A word (or, for shell form, the whole rest of the line).
    Word(String),
    /// The trigger instruction of an `ONBUILD`.
    Instruction(Box<RawInstruction>),
}

impl RawArg {
    /// The word, or the trigger's keyword.
    pub fn text(&self) -> &str {
        match self {
            RawArg::Word(w) => w,
            RawArg::Instruction(i) => &i.keyword,
        }
    }
}

/// One instruction as the parser sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawInstruction {
    /// The keyword as written (`RUN`, `run`, or an unknown word).
    pub keyword: String,
    /// The leading `--flag[=value]` words, quotes removed.
    pub flags: Vec<String>,
    /// The arguments (shape depends on the instruction).
    pub args: Vec<RawArg>,
    /// True when the arguments came from a JSON array (exec form).
    pub json: bool,
    /// Heredoc bodies attached to the instruction, in marker order.
    pub heredocs: Vec<Heredoc>,
    /// The logical line after joining continuations (without heredoc bodies).
    pub original: String,
    /// The comment lines directly above the instruction, `#` removed.
    pub prev_comment: Vec<String>,
    /// The whole instruction including continuation lines and heredoc bodies.
    pub span: Span,
    /// The keyword.
    pub keyword_span: Span,
    /// Each flag, as written.
    pub flag_spans: Vec<Span>,
    /// The text after keyword and flags.
    pub rest_span: Span,
}

impl RawInstruction {
    /// The arguments as strings; an `ONBUILD` trigger is flattened into its keyword and
    /// arguments (BuildKit's `nodeArgs`).
    pub fn arg_strings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for a in &self.args {
            match a {
                RawArg::Word(w) => out.push(w.clone()),
                RawArg::Instruction(i) => {
                    out.push(i.keyword.clone());
                    out.extend(i.arg_strings());
                }
            }
        }
        out
    }

    /// Whether heredoc markers of this instruction (or of its ONBUILD trigger) are honoured.
    fn can_contain_heredoc(&self) -> bool {
        let node = match (self.keyword.to_lowercase().as_str(), self.args.first()) {
            ("onbuild", Some(RawArg::Instruction(i))) => i.as_ref(),
            _ => self,
        };
        matches!(node.keyword.to_lowercase().as_str(), "add" | "copy" | "run") && !node.json
    }
}

/// A warning the parser itself produces (empty continuation lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParseWarning {
    /// Short text, `Empty continuation line found in: <instruction>`.
    pub short: String,
    /// Longer explanation.
    pub detail: String,
    /// Documentation link.
    pub url: String,
    /// The line where the instruction ends (BuildKit reports that line).
    pub span: Span,
}

/// A parsed Dockerfile before typing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawDockerfile {
    /// The instructions in order.
    pub instructions: Vec<RawInstruction>,
    /// The parser directives at the head of the file.
    pub directives: Vec<Directive>,
    /// The escape character (`\` or `` ` ``).
    pub escape: char,
    /// Parser warnings.
    pub warnings: Vec<ParseWarning>,
}

/// A physical line: its text including the line break, and where it starts.
#[derive(Clone, Copy)]
struct PhysLine<'a> {
    text: &'a str,
    start: usize,
}

struct Lines<'a> {
    src: &'a str,
    pos: usize,
    too_long: Option<usize>,
}

impl<'a> Iterator for Lines<'a> {
    type Item = PhysLine<'a>;

    fn next(&mut self) -> Option<PhysLine<'a>> {
        if self.too_long.is_some() || self.pos >= self.src.len() {
            return None;
        }
        let rest = &self.src[self.pos..];
        let len = rest.find('\n').map(|i| i + 1).unwrap_or(rest.len());
        let text = &rest[..len];
        if text.strip_suffix('\n').unwrap_or(text).len() > MAX_LINE_LEN {
            self.too_long = Some(self.pos);
            return None;
        }
        let line = PhysLine { text, start: self.pos };
        self.pos += len;
        Some(line)
    }
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(s: &str) -> bool {
    s.trim_start().starts_with('#')
}

/// The continuation rule: a line ending in the escape character (plus spaces/tabs) continues,
/// unless that escape character is itself escaped. Returns the kept prefix and whether the
/// instruction ends here.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    let Some(before) = body.strip_suffix(escape) else {
        return (line, true);
    };
    match before.chars().last() {
        None => ("", false),
        Some(c) if c == escape => (line, true),
        Some(_) => (before, false),
    }
}

/// A logical line assembled from pieces of the source, with a map back to source offsets.
#[derive(Default)]
struct Logical {
    text: String,
    /// (offset in `text`, offset in the source) for each piece.
    pieces: Vec<(usize, usize)>,
}

impl Logical {
    fn push(&mut self, piece: &str, source_at: usize) {
        self.pieces.push((self.text.len(), source_at));
        self.text.push_str(piece);
    }

    fn source_offset(&self, at: usize) -> usize {
        let i = match self.pieces.binary_search_by(|p| p.0.cmp(&at)) {
            Ok(i) => i,
            Err(0) => return self.pieces.first().map(|p| p.1).unwrap_or(0),
            Err(i) => i - 1,
        };
        // Prefer the piece that starts here over an empty piece ending here.
        let mut i = i;
        while i + 1 < self.pieces.len() && self.pieces[i + 1].0 == at {
            i += 1;
        }
        let (l, s) = self.pieces[i];
        s + (at - l)
    }
}

struct Ctx<'a> {
    file: &'a str,
    src: &'a str,
    index: &'a LineIndex,
}

impl Ctx<'_> {
    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.index, start, end)
    }

    fn error(&self, start: usize, end: usize, message: impl Into<String>) -> DockerfileError {
        DockerfileError::at(self.file, self.src, self.index, start, end, message)
    }
}

/// Builds one instruction from (part of) a logical line; `base` is where `line` starts in
/// `logical.text`.
fn node_from_line(
    ctx: &Ctx<'_>,
    logical: &Logical,
    base: usize,
    line: &str,
    escape: char,
    comments: Vec<String>,
) -> Result<RawInstruction, DockerfileError> {
    let split = split::split_command(line);
    let at = |off: usize| logical.source_offset(base + off);
    let keyword_span = ctx.span(at(split.keyword_at), at(split.keyword_at + split.keyword.len()));
    let flag_spans = split
        .flags
        .iter()
        .map(|(_, off)| {
            let end = line[*off..].find(char::is_whitespace).map(|e| off + e).unwrap_or(line.len());
            ctx.span(at(*off), at(end))
        })
        .collect();
    let rest_span = ctx.span(at(split.rest_at), at(split.rest_at + split.rest.len()));
    let keyword_lower = split.keyword.to_lowercase();
    let shape = shape_of(&keyword_lower);
    let (args, json) = if shape == Shape::SubCommand {
        if split.rest.is_empty() {
            (vec![], false)
        } else {
            let child = node_from_line(ctx, logical, base + split.rest_at, split.rest, escape, vec![])?;
            (vec![RawArg::Instruction(Box::new(child))], false)
        }
    } else {
        let parsed = parse_args(shape, split.rest, escape).map_err(|e| {
            // Point at the offending word when it can be found, else at the instruction.
            let word_at =
                e.word.as_deref().and_then(|w| split.rest.find(w).map(|i| (split.rest_at + i, w.len())));
            let (from, to) = match word_at {
                Some((i, len)) => (at(i), at(i + len)),
                None => (keyword_span.start, at(line.trim_end().len()).max(keyword_span.end)),
            };
            ctx.error(from, to, e.message).with_help(e.help)
        })?;
        (parsed.words.into_iter().map(RawArg::Word).collect(), parsed.json)
    };
    Ok(RawInstruction {
        keyword: split.keyword.to_string(),
        flags: split.flags.into_iter().map(|f| f.0).collect(),
        args,
        json,
        heredocs: vec![],
        original: line.to_string(),
        prev_comment: comments,
        span: keyword_span,
        keyword_span,
        flag_spans,
        rest_span,
    })
}

/// Parses `source` into raw instructions. `file` names the Dockerfile in errors.
pub fn parse_raw(source: &str, file: &str) -> Result<RawDockerfile, DockerfileError> {
    let index = LineIndex::new(source);
    let ctx = Ctx { file, src: source, index: &index };
    let mut lines = Lines { src: source, pos: 0, too_long: None };
    let mut escape = '\\';
    let mut dparser = DirectiveParser::new();
    let mut directives = Vec::new();
    let mut instructions: Vec<RawInstruction> = Vec::new();
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    let mut first = true;

    // Runs the directive parser on a line; Ok(true) when it was a directive.
    let mut directive = |line: &str, start: usize, escape: &mut char| -> Result<bool, DockerfileError> {
        let found = dparser.parse_line(line).map_err(|m| ctx.error(start, start + line.len(), m))?;
        let Some(d) = found else {
            return Ok(false);
        };
        if d.name == "escape" {
            match d.value.as_str() {
                "\\" => *escape = '\\',
                "`" => *escape = '`',
                v => {
                    return Err(ctx
                        .error(
                            start,
                            start + line.len(),
                            format!("invalid escape token '{v}' does not match ` or \\"),
                        )
                        .with_help(Some("use `# escape=\\` or `# escape=``".into())));
                }
            }
        }
        directives.push(d);
        Ok(true)
    };

    while let Some(pl) = lines.next() {
        let mut text = pl.text;
        let mut start = pl.start;
        if first {
            if let Some(t) = text.strip_prefix('\u{FEFF}') {
                text = t;
                start += '\u{FEFF}'.len_utf8();
            }
            first = false;
        }
        if is_comment(text) {
            let mut chars = text.chars();
            chars.next();
            let c = chars.as_str().trim();
            if c.is_empty() {
                comments.clear();
            } else {
                comments.push(c.to_string());
            }
        }
        let trimmed = trim_newline(text);
        let lead = trimmed.len() - trimmed.trim_start().len();
        let token = &trimmed[lead..];
        let token_at = start + lead;
        if directive(token, token_at, &mut escape)? {
            comments.pop();
        }
        let processed = if is_comment(token) { "" } else { token };
        let (first_part, mut is_end) = trim_continuation(processed, escape);
        if is_end && first_part.is_empty() {
            continue;
        }
        let inst_start = token_at;
        let mut logical = Logical::default();
        logical.push(first_part, token_at);
        let mut end_offset = token_at + processed.len();
        let mut has_empty = false;
        while !is_end {
            let Some(cl) = lines.next() else {
                break;
            };
            let raw = trim_newline(cl.text);
            directive(raw, cl.start, &mut escape)?;
            // Like BuildKit, the instruction ends on the last line consumed, even a comment.
            end_offset = cl.start + raw.len();
            if is_comment(cl.text) {
                continue;
            }
            if raw.trim_start().is_empty() {
                has_empty = true;
                continue;
            }
            let (part, end) = trim_continuation(raw, escape);
            logical.push(part, cl.start);
            is_end = end;
        }
        let mut node =
            node_from_line(&ctx, &logical, 0, &logical.text, escape, std::mem::take(&mut comments))?;
        let line = &node.original;
        node.span = ctx.span(inst_start, end_offset.max(inst_start + 1));
        if has_empty {
            let last = index.line_of(end_offset.saturating_sub(1).max(inst_start));
            let ls = index.line_start(last);
            warnings.push(ParseWarning {
                short: format!("Empty continuation line found in: {line}"),
                detail: "Empty continuation lines will become errors in a future release".into(),
                url: NO_EMPTY_CONTINUATION_URL.into(),
                span: ctx.span(ls, index.line_end(source, last)),
            });
        }
        if node.can_contain_heredoc() && line.contains("<<") {
            let line = line.clone();
            let docs = heredocs_from_line(&line)
                .map_err(|e| ctx.error(node.span.start, node.span.end, e.message))?;
            for mut doc in docs {
                let mut terminated = false;
                let mut body_end = end_offset;
                for hl in lines.by_ref() {
                    body_end = hl.start + hl.text.len();
                    let mut candidate = trim_newline(hl.text);
                    if doc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == doc.name {
                        terminated = true;
                        body_end = hl.start + trim_newline(hl.text).len();
                        break;
                    }
                    doc.content.push_str(hl.text);
                }
                if !terminated {
                    let marker =
                        line.find(&format!("<<{}", doc.name)).or_else(|| line.find("<<")).unwrap_or(0);
                    let from = logical.source_offset(marker);
                    let to = from + line[marker..].find(char::is_whitespace).unwrap_or(line.len() - marker);
                    return Err(ctx.error(from, to, "unterminated heredoc").with_help(Some(format!(
                        "end the heredoc with a line containing only `{}`",
                        doc.name
                    ))));
                }
                end_offset = body_end;
                node.heredocs.push(doc);
            }
            node.span = ctx.span(inst_start, end_offset.max(inst_start + 1));
        }
        instructions.push(node);
    }

    if instructions.is_empty() {
        let end = source.len();
        return Err(ctx.error(end, end, "file with no instructions"));
    }
    if let Some(at) = lines.too_long {
        let end = source[at..].find('\n').map(|i| at + i).unwrap_or(source.len());
        return Err(ctx.error(
            at,
            end,
            format!("dockerfile line greater than max allowed size of {MAX_LINE_LEN}"),
        ));
    }
    Ok(RawDockerfile { instructions, directives, escape, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(src: &str) -> String {
        parse_raw(src, "Dockerfile").unwrap().dump()
    }

    #[test]
    fn basics() {
        let cases = [
            ("FROM a AS b\n", r#"(from "a" "AS" "b")"#),
            ("run echo \\\n  hi # x\n", r#"(run "echo   hi # x")"#),
            ("CMD [\"a\",\"b\"]", r#"(cmd "a" "b")"#),
            ("ENV a b c", r#"(env "a" "b c" "")"#),
            ("ENV a=b c=\"d e\"", r#"(env "a" "b" "=" "c" "\"d e\"" "=")"#),
            ("ONBUILD RUN [\"x\"]", r#"(onbuild (run "x"))"#),
            ("foo bar", r#"(foo "")"#),
            ("# escape=`\nRUN a `\n b", r#"(run "a  b")"#),
            ("RUN a\\\\\nRUN b", "(run \"a\\\\\\\\\")\n(run \"b\")"),
        ];
        for (src, want) in cases {
            assert_eq!(dump(src), want, "{src:?}");
        }
    }

    #[test]
    fn heredoc_bodies_and_spans() {
        let src = "FROM x\nRUN <<EOF cat\nhello\nEOF\nRUN y\n";
        let raw = parse_raw(src, "Dockerfile").unwrap();
        let run = &raw.instructions[1];
        assert_eq!(run.heredocs[0].content, "hello\n");
        assert_eq!((run.span.start_line, run.span.end_line), (2, 4));
        assert_eq!(raw.instructions[2].span.start_line, 5);
    }

    #[test]
    fn errors() {
        let cases = [
            ("", "file with no instructions"),
            ("# only\n", "file with no instructions"),
            ("FROM x\nRUN <<EOF\nx\n", "unterminated heredoc"),
            ("CMD [\"a\", 1]", NOT_STRINGS_MESSAGE),
            ("ENV PATH", "ENV must have two arguments"),
            ("# escape=x\nFROM a", "invalid escape token 'x' does not match ` or \\"),
        ];
        for (src, want) in cases {
            let err = parse_raw(src, "Dockerfile").unwrap_err();
            assert_eq!(err.message, want, "{src:?}");
        }
    }
}

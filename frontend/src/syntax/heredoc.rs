//! Heredoc markers (`<<EOF`, `<<-EOF`, `3<<"EOF"`) and their bodies, as BuildKit's
//! `parser/parser.go` reads them.

use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::shell::{Lexer, NoEnv, ShellError};

/// A heredoc attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heredoc {
    /// The delimiter with quotes removed (`EOF` for `<<'EOF'`).
    pub name: String,
    /// The file descriptor before `<<` (`3<<EOF`), 0 when absent.
    pub file_descriptor: u64,
    /// False when any part of the delimiter was quoted: the body is then used verbatim.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the body when it is used
    /// (see [`chomp_heredoc_content`]); [`Heredoc::content`] still has them.
    pub chomp: bool,
    /// The body: every line up to the terminator, each with its line break.
    pub content: String,
}

fn heredoc_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^([0-9]*)<<(-?)[\t\n\x0c\r ]*([^<]*)$")
            .unwrap_or_else(|_| unreachable!("static pattern"))
    })
}

/// BuildKit's `ParseHeredoc`: `Ok(None)` when `word` is not a heredoc marker, an error when
/// it is one with unbalanced quotes.
pub fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, ShellError> {
    let Some(caps) = heredoc_regex().captures(word) else {
        return Ok(None);
    };
    let fd = match &caps[1] {
        "" => 0,
        digits => digits.parse::<u64>().unwrap_or(u64::MAX),
    };
    let chomp = &caps[2] == "-";
    let rest = &caps[3];
    if rest.is_empty() {
        return Ok(None);
    }
    let lex = Lexer::new('\\').skip_unset_env(true);
    // Lex the delimiter with and without quote removal: a difference in the number of quote
    // characters means part of it was quoted, which turns expansion off.
    let words = lex.process_words(rest, &NoEnv)?;
    if words.len() != 1 {
        return Ok(None);
    }
    let raw = lex.raw_quotes(true).process_words(rest, &NoEnv)?;
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    let expand = raw.len() == 1 && quotes(&words[0]) == quotes(&raw[0]);
    Ok(Some(Heredoc { name: words[0].clone(), file_descriptor: fd, expand, chomp, content: String::new() }))
}

/// [`parse_heredoc`] with errors treated as "not a heredoc" (BuildKit's `MustParseHeredoc`).
pub fn must_parse_heredoc(word: &str) -> Option<Heredoc> {
    parse_heredoc(word).ok().flatten()
}

/// The heredoc markers of one instruction line, in order (BuildKit's `heredocsFromLine`).
pub fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, ShellError> {
    let lex = Lexer::new('\\').raw_quotes(true).raw_escapes(true).skip_unset_env(true);
    // Like BuildKit, a line the lexer cannot split (unbalanced quotes) has no heredocs.
    let words = lex.process_words(line, &NoEnv).unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(h) = parse_heredoc(&word)? {
            docs.push(h);
        }
    }
    Ok(docs)
}

/// Removes leading tabs from every line of a `<<-` heredoc body.
pub fn chomp_heredoc_content(content: &str) -> String {
    content.split_inclusive('\n').map(|l| l.trim_start_matches('\t')).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers() {
        type Want = Option<(&'static str, bool, bool, u64)>;
        let cases: &[(&str, Want)] = &[
            ("<<EOF", Some(("EOF", true, false, 0))),
            ("<<-'EOF'", Some(("EOF", false, true, 0))),
            ("3<<EOF", Some(("EOF", true, false, 3))),
            ("<<eo\\'f", Some(("eo'f", true, false, 0))),
            ("<<", None),
            ("<<<EOF", None),
            ("<EOF", None),
        ];
        for (word, want) in cases {
            let got = parse_heredoc(word).unwrap().map(|h| (h.name, h.expand, h.chomp, h.file_descriptor));
            assert_eq!(got, want.map(|(n, e, c, f)| (n.to_string(), e, c, f)), "{word}");
        }
        assert!(parse_heredoc("<<'EOF").is_err());
    }

    #[test]
    fn chomp() {
        assert_eq!(chomp_heredoc_content("\thello\n\t\tworld\n"), "hello\nworld\n");
    }
}

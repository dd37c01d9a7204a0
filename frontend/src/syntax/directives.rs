//! Parser directives (`# syntax=`, `# escape=`, `# check=`) and BuildKit's `DetectSyntax` /
//! `ParseDirective` helpers that look for them before a Dockerfile is parsed.

use std::collections::HashSet;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// The directives BuildKit knows; any other `# key=value` line ends the directive block.
const VALID: [&str; 3] = ["syntax", "escape", "check"];

/// One parser directive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directive {
    /// Lower-cased name (`syntax`, `escape`, `check`).
    pub name: String,
    /// The value, trimmed.
    pub value: String,
    /// 1-based line of the directive.
    pub line: usize,
}

/// Reads directives line by line until the first line that is not one.
#[derive(Debug)]
pub struct DirectiveParser {
    line: usize,
    re: Regex,
    seen: HashSet<String>,
    done: bool,
}

fn directive_regex(prefix: &str) -> Regex {
    // Go's `\s` is [\t\n\f\r ]; `.` excludes only `\n`.
    let pat = format!(
        r"^{}[\t\n\x0c\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\x0c\r ]*=[\t\n\x0c\r ]*(.+?)[\t\n\x0c\r ]*$",
        regex::escape(prefix)
    );
    Regex::new(&pat).unwrap_or_else(|_| unreachable!("static directive pattern"))
}

impl DirectiveParser {
    /// A parser for `# key=value` lines.
    pub fn new() -> DirectiveParser {
        DirectiveParser::with_prefix("#", 0)
    }

    fn with_prefix(prefix: &str, line: usize) -> DirectiveParser {
        DirectiveParser { line, re: directive_regex(prefix), seen: HashSet::new(), done: false }
    }

    /// True once a non-directive line was seen.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Looks at the next line; `Err` when a directive is repeated.
    pub fn parse_line(&mut self, line: &str) -> Result<Option<Directive>, String> {
        self.line += 1;
        if self.done {
            return Ok(None);
        }
        let Some(caps) = self.re.captures(line) else {
            self.done = true;
            return Ok(None);
        };
        let name = caps[1].to_lowercase();
        if !VALID.contains(&name.as_str()) {
            self.done = true;
            return Ok(None);
        }
        if !self.seen.insert(name.clone()) {
            return Err(format!("only one {name} parser directive can be used"));
        }
        Ok(Some(Directive { name, value: caps[2].to_string(), line: self.line }))
    }

    /// All directives at the head of `text`.
    pub fn parse_all(&mut self, text: &str) -> Result<Vec<Directive>, String> {
        let (found, err) = self.parse_all_partial(text);
        match err {
            Some(e) => Err(e),
            None => Ok(found),
        }
    }

    /// Like [`DirectiveParser::parse_all`], keeping what was found before an error.
    fn parse_all_partial(&mut self, text: &str) -> (Vec<Directive>, Option<String>) {
        let mut out = Vec::new();
        for line in scan_lines(text) {
            if self.done {
                break;
            }
            match self.parse_line(line) {
                Ok(Some(d)) => out.push(d),
                Ok(None) => {}
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }
}

impl Default for DirectiveParser {
    fn default() -> Self {
        DirectiveParser::new()
    }
}

/// Lines the way Go's `bufio.ScanLines` yields them (`\n` split, one trailing `\r` dropped).
pub(crate) fn scan_lines(text: &str) -> impl Iterator<Item = &str> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let empty = text.is_empty();
    body.split('\n').filter(move |_| !empty).map(|l| l.strip_suffix('\r').unwrap_or(l))
}

/// A directive found by [`detect_syntax`] or [`parse_directive`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundDirective {
    /// The value up to the first space (for `syntax`, the frontend image reference).
    pub value: String,
    /// The whole value.
    pub cmdline: String,
    /// 1-based line where it was found.
    pub line: usize,
}

/// BuildKit's `DetectSyntax`: the `syntax` directive as `# syntax=`, `// syntax=` or a JSON
/// object `{"syntax": "..."}`, after an optional BOM and `#!` shebang line.
pub fn detect_syntax(text: &str) -> Option<FoundDirective> {
    find_directive("syntax", text, true)
}

/// BuildKit's `ParseDirective`: directive `key` in `# key=` form only.
pub fn parse_directive(key: &str, text: &str) -> Option<FoundDirective> {
    find_directive(key, text, false)
}

fn find_directive(key: &str, text: &str, any_format: bool) -> Option<FoundDirective> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
    let (text, line) = if first.starts_with("#!") { (rest, 1) } else { (text, 0) };
    let from_parser = |prefix: &str| {
        let mut p = DirectiveParser::with_prefix(prefix, line);
        // Like BuildKit, directives before a repeated one still count.
        let (found, _) = p.parse_all_partial(text);
        found.into_iter().find(|d| d.name == key).map(|d| FoundDirective {
            value: d.value.split(' ').next().unwrap_or_default().to_string(),
            cmdline: d.value,
            line: d.line,
        })
    };
    if let Some(found) = from_parser("#") {
        return Some(found);
    }
    if !any_format {
        return None;
    }
    if let Some(found) = from_parser("//") {
        return Some(found);
    }
    let obj: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text).ok()?;
    let value = obj.get(key)?.as_str()?.to_string();
    Some(FoundDirective { value: value.clone(), cmdline: value, line })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_is_an_error() {
        let mut p = DirectiveParser::new();
        assert!(p.parse_line("# escape=`").unwrap().is_some());
        assert!(p.parse_line("#ESCAPE = \\").is_err());
    }

    #[test]
    fn unknown_key_ends_block() {
        let mut p = DirectiveParser::new();
        assert_eq!(p.parse_all("# key = x\n# syntax=foo\n").unwrap(), vec![]);
    }
}

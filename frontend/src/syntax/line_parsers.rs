//! Per-instruction argument splitting (BuildKit's `line_parsers.go`). Nothing here removes
//! quotes or expands variables; that happens later in the shell lexer.

use super::dump::go_quote;
use super::json::{JsonArrayError, NOT_STRINGS_MESSAGE, parse_json_array};
use super::split::is_ws_class;

/// Arguments of one instruction as the parser splits them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Args {
    pub words: Vec<String>,
    pub json: bool,
}

impl Args {
    fn words(words: Vec<String>) -> Args {
        Args { words, json: false }
    }
}

/// How an instruction's arguments are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    MaybeJsonToList,
    NameOrNameVal,
    MaybeJson,
    Env,
    Label,
    WhitespaceDelimited,
    HealthConfig,
    String,
    SubCommand,
    Ignore,
}

pub(super) fn shape_of(keyword_lower: &str) -> Shape {
    match keyword_lower {
        "add" | "copy" | "volume" => Shape::MaybeJsonToList,
        "arg" => Shape::NameOrNameVal,
        "cmd" | "entrypoint" | "run" | "shell" => Shape::MaybeJson,
        "env" => Shape::Env,
        "label" => Shape::Label,
        "expose" | "from" => Shape::WhitespaceDelimited,
        "healthcheck" => Shape::HealthConfig,
        "maintainer" | "stopsignal" | "user" | "workdir" => Shape::String,
        "onbuild" => Shape::SubCommand,
        _ => Shape::Ignore,
    }
}

/// Why arguments could not be split.
#[derive(Debug)]
pub(super) struct ArgsError {
    pub message: String,
    /// The word at fault, when there is one.
    pub word: Option<String>,
    pub help: Option<String>,
}

impl From<String> for ArgsError {
    fn from(message: String) -> ArgsError {
        ArgsError { message, word: None, help: None }
    }
}

/// Splits `rest` for every shape but [`Shape::SubCommand`].
pub(super) fn parse_args(shape: Shape, rest: &str, escape: char) -> Result<Args, ArgsError> {
    match shape {
        Shape::MaybeJsonToList => Ok(parse_maybe_json_to_list(rest)?),
        Shape::NameOrNameVal => Ok(Args::words(parse_words(rest, escape))),
        Shape::MaybeJson => Ok(parse_maybe_json(rest)?),
        Shape::Env => parse_name_val(rest, "ENV", escape).map(Args::words),
        Shape::Label => parse_name_val(rest, "LABEL", escape).map(Args::words),
        Shape::WhitespaceDelimited => Ok(Args::words(whitespace_delimited(rest))),
        Shape::HealthConfig => Ok(parse_health_config(rest)?),
        Shape::String => Ok(Args::words(if rest.is_empty() { vec![] } else { vec![rest.to_string()] })),
        Shape::Ignore => Ok(Args::words(vec![String::new()])),
        Shape::SubCommand => Ok(Args::default()),
    }
}

#[derive(PartialEq)]
enum Phase {
    Spaces,
    Word,
    Quote,
}

/// Splits on whitespace outside quotes, keeping quotes and escapes in the words
/// (BuildKit's `parseWords`).
pub fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let char_at = |pos: usize| rest[pos..].chars().next();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    loop {
        let Some(mut ch) = char_at(pos) else {
            if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        };
        let mut next = pos + ch.len_utf8();
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                pos = next;
                continue;
            }
            phase = Phase::Word;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos = next;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                let Some(c) = char_at(next) else {
                    pos = next;
                    continue;
                };
                // An escape outside quotes keeps itself and the next character, even a quote.
                word.push(ch);
                ch = c;
                next += c.len_utf8();
            }
            word.push(ch);
            pos = next;
            continue;
        }
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            let Some(c) = char_at(next) else {
                phase = Phase::Word;
                pos = next;
                continue;
            };
            word.push(ch);
            ch = c;
            next += c.len_utf8();
        }
        word.push(ch);
        pos = next;
    }
    words
}

/// Go's `regexp.MustCompile("[\t\v\f\r ]+").Split(s, n)`.
pub(super) fn regex_split(s: &str, n: usize) -> Vec<String> {
    if s.is_empty() {
        return vec![String::new()];
    }
    let mut out = Vec::new();
    let mut beg = 0;
    let mut end = 0;
    let mut i = 0;
    let bytes_len = s.len();
    while i < bytes_len {
        let c = s[i..].chars().next().unwrap_or('\0');
        if is_ws_class(c) {
            let m_start = i;
            let mut m_end = i;
            while let Some(c2) = s[m_end..].chars().next().filter(|c| is_ws_class(*c)) {
                m_end += c2.len_utf8();
            }
            if n > 0 && out.len() == n - 1 {
                break;
            }
            end = m_start;
            if m_end != 0 {
                out.push(s[beg..end].to_string());
            }
            beg = m_end;
            i = m_end;
        } else {
            i += c.len_utf8();
        }
    }
    if end != bytes_len {
        out.push(s[beg..].to_string());
    }
    out
}

fn whitespace_delimited(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return vec![];
    }
    regex_split(rest, 0)
}

/// `ENV`/`LABEL` arguments as `key value sep` triples; `sep` is `=` or empty for the legacy
/// `KEY value` form.
pub(super) fn parse_name_val(rest: &str, key: &str, escape: char) -> Result<Vec<String>, ArgsError> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(vec![]);
    };
    if !first.contains('=') {
        let parts = regex_split(rest, 2);
        if parts.len() < 2 {
            return Err(ArgsError {
                message: format!("{key} must have two arguments"),
                word: Some(first.clone()),
                help: Some(format!("give {first} a value: `{key} {first}=<value>`")),
            });
        }
        return Ok(vec![parts[0].clone(), parts[1].clone(), String::new()]);
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for word in &words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(ArgsError {
                message: format!(
                    "Syntax error - can't find = in {}. Must be of the form: name=value",
                    go_quote(word)
                ),
                word: Some(word.clone()),
                help: Some(format!("write `{word}=<value>`")),
            });
        };
        out.extend([k.to_string(), v.to_string(), "=".to_string()]);
    }
    Ok(out)
}

fn parse_maybe_json(rest: &str) -> Result<Args, String> {
    if rest.is_empty() {
        return Ok(Args::default());
    }
    match parse_json_array(rest) {
        Ok(words) => Ok(Args { words, json: true }),
        Err(JsonArrayError::NotStrings) => Err(NOT_STRINGS_MESSAGE.into()),
        Err(_) => Ok(Args::words(vec![rest.to_string()])),
    }
}

fn parse_maybe_json_to_list(rest: &str) -> Result<Args, String> {
    match parse_json_array(rest) {
        Ok(words) => Ok(Args { words, json: true }),
        Err(JsonArrayError::NotStrings) => Err(NOT_STRINGS_MESSAGE.into()),
        Err(_) => Ok(Args::words(whitespace_delimited(rest))),
    }
}

fn parse_health_config(rest: &str) -> Result<Args, String> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Ok(Args::default());
    }
    let next = rest[sep..].find(|c: char| !c.is_whitespace()).map(|i| sep + i).unwrap_or(rest.len());
    let mut cmd = parse_maybe_json(&rest[next..])?;
    cmd.words.insert(0, rest[..sep].to_string());
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_like_go() {
        let cases: &[(&str, usize, &[&str])] = &[
            ("a b", 0, &["a", "b"]),
            ("a  b\tc", 0, &["a", "b", "c"]),
            ("a b c", 2, &["a", "b c"]),
            ("a ", 0, &["a", ""]),
            ("", 0, &[""]),
        ];
        for (s, n, want) in cases {
            assert_eq!(regex_split(s, *n), *want, "{s:?}");
        }
    }

    #[test]
    fn words_keep_quotes() {
        assert_eq!(parse_words("foo bar 'abc xyz'", '\\'), ["foo", "bar", "'abc xyz'"]);
        assert_eq!(parse_words("foo\\ bar", '\\'), ["foo\\ bar"]);
        assert_eq!(parse_words("a=\"x y\" b", '\\'), ["a=\"x y\"", "b"]);
    }
}

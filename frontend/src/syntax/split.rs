//! Splitting a logical line into keyword, `--flags` and the rest (BuildKit's
//! `split_command.go`).

/// A logical line split into its parts; offsets are byte offsets into the line.
pub(super) struct SplitLine<'a> {
    pub keyword: &'a str,
    pub keyword_at: usize,
    /// Flags with quotes removed and `\` escapes applied, with the offset of their `--`.
    pub flags: Vec<(String, usize)>,
    pub rest: &'a str,
    pub rest_at: usize,
}

/// BuildKit's `[\t\v\f\r ]` whitespace class.
pub(super) fn is_ws_class(c: char) -> bool {
    matches!(c, '\t' | '\u{0b}' | '\u{0c}' | '\r' | ' ')
}

pub(super) fn split_command(line: &str) -> SplitLine<'_> {
    let lead = line.len() - line.trim_start().len();
    let trimmed = line.trim();
    let kw_end = trimmed.find(is_ws_class).unwrap_or(trimmed.len());
    let keyword = &trimmed[..kw_end];
    let mut after = &trimmed[kw_end..];
    let mut after_at = lead + kw_end;
    // The keyword is followed by a run of separator characters.
    let sep = after.len() - after.trim_start_matches(is_ws_class).len();
    if kw_end == trimmed.len() {
        return SplitLine { keyword, keyword_at: lead, flags: Vec::new(), rest: "", rest_at: lead + kw_end };
    }
    after = &after[sep..];
    after_at += sep;
    let (rest_rel, flags) = extract_builder_flags(after);
    let rest_raw = &after[rest_rel..];
    let rest = rest_raw.trim();
    let rest_at = after_at + rest_rel + (rest_raw.len() - rest_raw.trim_start().len());
    let flags = flags.into_iter().map(|(f, at)| (f, at + after_at)).collect();
    SplitLine { keyword, keyword_at: lead, flags, rest, rest_at }
}

#[derive(PartialEq)]
enum Phase {
    Spaces,
    Word,
    Quote,
}

/// Returns the offset where the non-flag rest begins and the flags found before it.
fn extract_builder_flags(line: &str) -> (usize, Vec<(String, usize)>) {
    let char_at = |pos: usize| line[pos..].chars().next();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut word_at = 0;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    loop {
        let Some(mut ch) = char_at(pos) else {
            if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
                words.push((word, word_at));
            }
            break;
        };
        let mut next = pos + ch.len_utf8();
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                pos = next;
                continue;
            }
            if ch != '-' || char_at(next) != Some('-') {
                return (pos, words);
            }
            phase = Phase::Word;
            word_at = pos;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (pos, words);
                }
                if blank_ok || !word.is_empty() {
                    words.push((std::mem::take(&mut word), word_at));
                }
                word.clear();
                blank_ok = false;
                pos = next;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos = next;
                continue;
            }
        } else if ch == quote {
            phase = Phase::Word;
            pos = next;
            continue;
        }
        if ch == '\\' {
            match char_at(next) {
                // A trailing backslash is dropped.
                None => {
                    if phase == Phase::Quote {
                        phase = Phase::Word;
                    }
                    pos = next;
                    continue;
                }
                Some(c) => {
                    ch = c;
                    next += c.len_utf8();
                }
            }
        }
        word.push(ch);
        pos = next;
    }
    (line.len(), words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_rest() {
        let cases: &[(&str, &str, &[&str], &str)] = &[
            ("COPY foo /tmp/", "COPY", &[], "foo /tmp/"),
            ("COPY --user=me --doit=true foo /tmp/", "COPY", &["--user=me", "--doit=true"], "foo /tmp/"),
            ("COPY --doit=true -- foo /tmp/", "COPY", &["--doit=true"], "foo /tmp/"),
            ("CMD --doit -- [ ]", "CMD", &["--doit"], "[ ]"),
            ("RUN --mount=\"type=a b\" x", "RUN", &["--mount=type=a b"], "x"),
            ("  FROM", "FROM", &[], ""),
            ("RUN --a", "RUN", &["--a"], ""),
        ];
        for (line, kw, flags, rest) in cases {
            let s = split_command(line);
            assert_eq!(s.keyword, *kw, "{line}");
            let got: Vec<&str> = s.flags.iter().map(|f| f.0.as_str()).collect();
            assert_eq!(got, *flags, "{line}");
            assert_eq!(s.rest, *rest, "{line}");
            assert_eq!(&line[s.rest_at..s.rest_at + s.rest.len()], *rest);
        }
    }
}

//! `.dockerignore` files: turns the text into cleaned patterns exactly as
//! `moby/patternmatcher/ignorefile.ReadAll` does. Matching is done elsewhere.

/// Go's `path.Clean` (`filepath.Clean` on Unix).
pub fn clean_path(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// The patterns of a `.dockerignore` file, in order: comment lines (starting with `#`) and
/// blank lines dropped, whitespace trimmed, paths cleaned, a leading `/` removed, `!`
/// exceptions kept as `!pattern`.
pub fn parse(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut out = Vec::new();
    for line in crate::syntax_lines(text) {
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut p = String::new();
        if !pattern.is_empty() {
            p = clean_path(pattern);
            if p.len() > 1 && p.starts_with('/') {
                p.remove(0);
            }
        }
        out.push(if invert { format!("!{p}") } else { p });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean() {
        let cases = [
            ("", "."),
            ("a/b/../c", "a/c"),
            ("/../a", "/a"),
            ("../../a", "../../a"),
            ("a/./b//", "a/b"),
            ("/", "/"),
            ("a/..", "."),
        ];
        for (input, want) in cases {
            assert_eq!(clean_path(input), want, "{input}");
        }
    }

    #[test]
    fn patterns() {
        let text = "\u{feff}# comment\n  # not a comment?\n\n*.md\r\n/abs/./x\n! keep.md \n!/a/../b\n/\n!\n";
        assert_eq!(parse(text), ["# not a comment?", "*.md", "abs/x", "!keep.md", "!b", "/", "!"]);
    }
}

//! Path patterns with the semantics of `moby/patternmatcher` (used for `.dockerignore`,
//! `COPY --exclude` and include filters) and Go's `filepath.Match` (used for wildcards in
//! `COPY` sources and `rm`).
//!
//! Both work on slash-separated paths relative to some root. A pattern matcher holds an
//! ordered list of patterns; a later pattern overrides an earlier one, and a pattern that
//! starts with `!` re-includes what earlier patterns matched. `*` and `?` never match `/`,
//! `**` matches any number of path components, and a pattern that matches a directory also
//! matches everything below it.

use regex::Regex;

/// Why a pattern is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The pattern is not valid `filepath.Match` syntax (unclosed `[`, trailing `\`, ...).
    #[error("syntax error in pattern {pattern:?}")]
    Syntax {
        /// The offending pattern.
        pattern: String,
    },
    /// A lone `!`.
    #[error("illegal exclusion pattern: \"!\"")]
    LoneExclusion,
}

/// Results for a directory, handed down to its children so that each pattern is evaluated
/// once per path component instead of once per ancestor (patternmatcher's `MatchInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// An ordered list of patterns, as in a `.dockerignore` file.
#[derive(Debug, Clone)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

#[derive(Debug, Clone)]
struct Pattern {
    cleaned: String,
    exclusion: bool,
    kind: MatchKind,
}

#[derive(Debug, Clone)]
enum MatchKind {
    Exact,
    /// `foo/**`: everything starting with the text before `**`.
    Prefix(String),
    /// `**/foo`: everything ending with the text after `**`.
    Suffix(String),
    Regexp(Regex),
}

impl PatternMatcher {
    /// Compiles `patterns`. Blank patterns are skipped; each pattern is cleaned like Go's
    /// `filepath.Clean` (so `./a/` is `a`) but a leading `/` is kept, as patternmatcher does:
    /// callers that read `.dockerignore` files strip it first.
    pub fn new(patterns: &[String]) -> Result<PatternMatcher, PatternError> {
        let mut out = Vec::with_capacity(patterns.len());
        let mut exclusions = false;
        for raw in patterns {
            let p = raw.trim();
            if p.is_empty() {
                continue;
            }
            let mut p = clean(p);
            let mut exclusion = false;
            if let Some(rest) = p.strip_prefix('!') {
                if rest.is_empty() {
                    return Err(PatternError::LoneExclusion);
                }
                exclusion = true;
                exclusions = true;
                p = rest.to_string();
            }
            // Go validates with filepath.Match(p, ".") so that a pattern that could never be
            // evaluated is reported up front.
            glob_match(&p, ".")?;
            let kind = compile(&p)?;
            out.push(Pattern { cleaned: p, exclusion, kind });
        }
        Ok(PatternMatcher { patterns: out, exclusions })
    }

    /// True when `rel_path` (slash-separated, relative, clean) or one of its parent
    /// directories is matched by the patterns and not re-included by a later `!` pattern
    /// (patternmatcher's `MatchesOrParentMatches`).
    pub fn matches(&self, rel_path: &str) -> bool {
        let parent = match rel_path.rfind('/') {
            Some(i) => &rel_path[..i],
            None => "",
        };
        let mut matched = false;
        for pattern in &self.patterns {
            // An inclusion only matters while nothing matched yet, an exclusion only after.
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.matches(rel_path);
            if !hit && !parent.is_empty() {
                hit = parent_prefixes(parent).any(|prefix| pattern.matches(prefix));
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// True when `rel_path` itself (no parent-directory rule) is matched.
    pub fn matches_exact(&self, rel_path: &str) -> bool {
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            if pattern.matches(rel_path) {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// Like [`PatternMatcher::matches`] for a walker: `parent` is what this call returned for
    /// the parent directory (or `MatchInfo::default()` at the top of a walk, in which case the
    /// parent directories are checked from the path itself). Returns the decision and the
    /// information to hand to this path's children (patternmatcher's
    /// `MatchesUsingParentResults`).
    pub fn matches_with_parent(&self, rel_path: &str, parent: &MatchInfo) -> (bool, MatchInfo) {
        let known = parent.parent_matched.len() == self.patterns.len() && !self.patterns.is_empty();
        let mut info = MatchInfo { parent_matched: vec![false; self.patterns.len()] };
        let mut matched = false;
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut hit = known && parent.parent_matched[i];
            if !hit {
                if pattern.exclusion != matched {
                    continue;
                }
                hit = pattern.matches(rel_path);
                if !hit
                    && !known
                    && let Some(idx) = rel_path.rfind('/')
                {
                    hit = parent_prefixes(&rel_path[..idx]).any(|prefix| pattern.matches(prefix));
                }
            }
            info.parent_matched[i] = hit;
            if hit {
                matched = !pattern.exclusion;
            }
        }
        (matched, info)
    }

    /// True when some pattern starts with `!`. A walker must then not skip an excluded
    /// directory, because something inside it may be re-included.
    pub fn exclusions(&self) -> bool {
        self.exclusions
    }

    /// True when there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The cleaned patterns, `!` prefixes restored, in order.
    pub fn patterns(&self) -> Vec<String> {
        self.patterns
            .iter()
            .map(|p| if p.exclusion { format!("!{}", p.cleaned) } else { p.cleaned.clone() })
            .collect()
    }
}

/// `a`, `a/b`, `a/b/c` for `a/b/c`.
fn parent_prefixes(parent: &str) -> impl Iterator<Item = &str> {
    parent.match_indices('/').map(move |(i, _)| &parent[..i]).chain(std::iter::once(parent))
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            MatchKind::Exact => path == self.cleaned,
            MatchKind::Prefix(prefix) => path.starts_with(prefix.as_str()),
            MatchKind::Suffix(suffix) => {
                path.ends_with(suffix.as_str()) || suffix.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            MatchKind::Regexp(re) => re.is_match(path),
        }
    }
}

/// Translates a pattern the way patternmatcher does: `*` → `[^/]*`, `?` → `[^/]`,
/// `**/` and a trailing `**` → any number of components, with shortcuts for the plain
/// prefix (`dir/**`) and suffix (`**/name`) forms.
fn compile(pattern: &str) -> Result<MatchKind, PatternError> {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regexp,
    }
    let syntax = || PatternError::Syntax { pattern: pattern.to_string() };
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut detected = Detected::Exact;
    let mut pos = 0;
    let mut token = 0;
    while pos < chars.len() {
        let ch = chars[pos];
        pos += 1;
        match ch {
            '*' => {
                if chars.get(pos) == Some(&'*') {
                    pos += 1;
                    if chars.get(pos) == Some(&'/') {
                        pos += 1;
                    }
                    if pos == chars.len() {
                        if detected == Detected::Exact {
                            detected = Detected::Prefix;
                        } else {
                            re.push_str(".*");
                            detected = Detected::Regexp;
                        }
                    } else {
                        re.push_str("(.*/)?");
                        detected = Detected::Regexp;
                    }
                    if token == 0 {
                        detected = Detected::Suffix;
                    }
                } else {
                    re.push_str("[^/]*");
                    detected = Detected::Regexp;
                }
            }
            '?' => {
                re.push_str("[^/]");
                detected = Detected::Regexp;
            }
            '\\' => {
                if let Some(&next) = chars.get(pos) {
                    pos += 1;
                    re.push_str(&regex::escape(&next.to_string()));
                    detected = Detected::Regexp;
                } else {
                    return Err(syntax());
                }
            }
            '[' => {
                let (class, used) = class_regex(&chars[pos..]).ok_or_else(syntax)?;
                re.push_str(&class);
                pos += used;
                detected = Detected::Regexp;
            }
            _ => re.push_str(&regex::escape(&ch.to_string())),
        }
        token += 1;
    }
    Ok(match detected {
        Detected::Exact => MatchKind::Exact,
        Detected::Prefix => MatchKind::Prefix(pattern[..pattern.len() - 2].to_string()),
        Detected::Suffix => MatchKind::Suffix(pattern[2..].to_string()),
        Detected::Regexp => {
            re.push('$');
            MatchKind::Regexp(Regex::new(&re).map_err(|_| syntax())?)
        }
    })
}

/// Converts the character class after a `[` (Go `filepath.Match` grammar: optional `^`,
/// then ranges `lo` or `lo-hi` with `\` escapes, closed by `]`) into a regex class with
/// every character escaped. Returns the class and how many chars it consumed.
fn class_regex(chars: &[char]) -> Option<(String, usize)> {
    let mut pos = 0;
    let mut out = String::from("[");
    if chars.first() == Some(&'^') {
        out.push('^');
        pos += 1;
    }
    let mut nrange = 0;
    loop {
        if chars.get(pos) == Some(&']') && nrange > 0 {
            pos += 1;
            break;
        }
        let (lo, used) = class_char(&chars[pos..])?;
        pos += used;
        out.push_str(&regex::escape(&lo.to_string()));
        if chars.get(pos) == Some(&'-') {
            let (hi, used) = class_char(&chars[pos + 1..])?;
            pos += 1 + used;
            out.push('-');
            out.push_str(&regex::escape(&hi.to_string()));
        }
        nrange += 1;
    }
    out.push(']');
    Some((out, pos))
}

/// One (possibly escaped) character inside a class; `None` where Go reports a bad pattern.
fn class_char(chars: &[char]) -> Option<(char, usize)> {
    let mut pos = 0;
    match chars.first() {
        None | Some('-') | Some(']') => return None,
        Some('\\') => pos += 1,
        _ => {}
    }
    let c = *chars.get(pos)?;
    pos += 1;
    // Go requires something after the character (at least the closing bracket).
    if pos >= chars.len() {
        return None;
    }
    Some((c, pos))
}

/// Go's `filepath.Match` on Unix: `*` matches any run of non-`/` characters, `?` one
/// non-`/` character, `[...]` a class, `\` escapes. The whole `name` must match.
pub fn glob_match(pattern: &str, name: &str) -> Result<bool, PatternError> {
    let syntax = || PatternError::Syntax { pattern: pattern.to_string() };
    let mut pattern = pattern.as_bytes();
    let mut name = name.as_bytes();
    'outer: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing star matches the rest of the name unless it has a separator.
            return Ok(!name.contains(&b'/'));
        }
        let (t, ok, err) = match_chunk(chunk, name);
        // With more pattern to come a partial match is fine; at the end it must be total.
        if ok && (t.is_empty() || !pattern.is_empty()) {
            name = t;
            continue;
        }
        if err {
            return Err(syntax());
        }
        if star {
            // Let the star eat characters (never a separator) and retry the chunk.
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                let (t, ok, err) = match_chunk(chunk, &name[i + 1..]);
                if ok {
                    if pattern.is_empty() && !t.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = t;
                    continue 'outer;
                }
                if err {
                    return Err(syntax());
                }
                i += 1;
            }
        }
        // Report a syntax error in the rest of the pattern even though this is a mismatch.
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            if match_chunk(chunk, b"").2 {
                return Err(syntax());
            }
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

fn scan_chunk(mut pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let mut star = false;
    while pattern.first() == Some(&b'*') {
        pattern = &pattern[1..];
        star = true;
    }
    let mut in_range = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (star, &pattern[..i], &pattern[i..])
}

/// Matches `chunk` (no stars) against the start of `s`; returns the rest of `s`, whether it
/// matched, and whether the chunk is malformed.
fn match_chunk<'a>(mut chunk: &[u8], mut s: &'a [u8]) -> (&'a [u8], bool, bool) {
    // After a mismatch keep scanning the chunk so that syntax errors are still found.
    let mut failed = false;
    while !chunk.is_empty() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match chunk[0] {
            b'[' => {
                let mut r = '\0';
                if !failed {
                    let (c, n) = decode_char(s);
                    r = c;
                    s = &s[n..];
                }
                chunk = &chunk[1..];
                let mut negated = false;
                if chunk.first() == Some(&b'^') {
                    negated = true;
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut nrange = 0;
                loop {
                    if chunk.first() == Some(&b']') && nrange > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let Some((lo, rest)) = get_esc(chunk) else { return (&[], false, true) };
                    chunk = rest;
                    let mut hi = lo;
                    if chunk[0] == b'-' {
                        let Some((h, rest)) = get_esc(&chunk[1..]) else { return (&[], false, true) };
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    nrange += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if s[0] == b'/' {
                        failed = true;
                    }
                    let (_, n) = decode_char(s);
                    s = &s[n..];
                }
                chunk = &chunk[1..];
            }
            c => {
                let c = if c == b'\\' {
                    chunk = &chunk[1..];
                    match chunk.first() {
                        Some(&c) => c,
                        None => return (&[], false, true),
                    }
                } else {
                    c
                };
                if !failed {
                    if c != s[0] {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    if failed { (&[], false, false) } else { (s, true, false) }
}

fn get_esc(chunk: &[u8]) -> Option<(char, &[u8])> {
    let mut chunk = match chunk.first() {
        None | Some(b'-') | Some(b']') => return None,
        Some(b'\\') => &chunk[1..],
        _ => chunk,
    };
    if chunk.is_empty() {
        return None;
    }
    let (r, n) = decode_char(chunk);
    if r == char::REPLACEMENT_CHARACTER && n == 1 {
        return None;
    }
    chunk = &chunk[n..];
    if chunk.is_empty() {
        return None;
    }
    Some((r, chunk))
}

/// Decodes one UTF-8 character; invalid bytes decode as U+FFFD of length 1, like Go.
fn decode_char(s: &[u8]) -> (char, usize) {
    let len = match s.first() {
        None => return (char::REPLACEMENT_CHARACTER, 0),
        Some(b) if *b < 0x80 => 1,
        Some(b) if *b >= 0xF0 => 4,
        Some(b) if *b >= 0xE0 => 3,
        Some(b) if *b >= 0xC0 => 2,
        _ => 1,
    };
    match s.get(..len).and_then(|b| std::str::from_utf8(b).ok()).and_then(|t| t.chars().next()) {
        Some(c) => (c, len),
        None => (char::REPLACEMENT_CHARACTER, 1),
    }
}

/// True when `name` has an unescaped `*`, `?` or `[` (fsutil's `containsWildcards`).
pub fn contains_wildcards(name: &str) -> bool {
    let b = name.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Splits `path` into the part before the first component with a wildcard and the rest,
/// both cleaned (fsutil's `splitWildcards`): `/a/b*/c` → (`/a`, `b*/c`).
pub fn split_wildcards(path: &str) -> (String, String) {
    let mut before = Vec::new();
    let mut after = Vec::new();
    let mut found = false;
    for part in path.split('/') {
        if !found && contains_wildcards(part) {
            found = true;
        }
        let part = if part.is_empty() { "/" } else { part };
        if found {
            after.push(part);
        } else {
            before.push(part);
        }
    }
    (join_clean(&before), join_clean(&after))
}

/// Go's `filepath.Join`: join the non-empty elements with `/` and clean; "" when all empty.
fn join_clean(parts: &[&str]) -> String {
    let nonempty: Vec<&str> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    if nonempty.is_empty() {
        return String::new();
    }
    clean(&nonempty.join("/"))
}

/// Go's `path.Clean`: the shortest lexically equivalent path (`.` for empty, no trailing
/// slash, `..` resolved where possible, rooted paths never go above `/`).
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_panic_on_arbitrary_input() {
        // A cheap deterministic fuzz: short strings over the characters that matter.
        let alphabet: Vec<char> = "ab/*?[]^-\\!.☺".chars().collect();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as usize % n
        };
        for _ in 0..20_000 {
            let len = next(9);
            let pattern: String = (0..len).map(|_| alphabet[next(alphabet.len())]).collect();
            let len = next(7);
            let name: String = (0..len).map(|_| alphabet[next(alphabet.len())]).collect();
            let _ = glob_match(&pattern, &name);
            if let Ok(m) = PatternMatcher::new(std::slice::from_ref(&pattern)) {
                let _ = m.matches(&name);
                let _ = m.matches_with_parent(&name, &MatchInfo::default());
            }
            let _ = split_wildcards(&pattern);
            let _ = clean(&pattern);
        }
    }

    #[test]
    fn wildcard_helpers() {
        assert!(contains_wildcards("a*"));
        assert!(!contains_wildcards("a\\*"));
        assert_eq!(split_wildcards("/a/b*/c"), ("/a".to_string(), "b*/c".to_string()));
        assert_eq!(split_wildcards("/a/b/"), ("/a/b".to_string(), String::new()));
        assert_eq!(split_wildcards("/*"), ("/".to_string(), "*".to_string()));
        assert_eq!(clean("/a/../../b/./c/"), "/b/c");
        assert_eq!(clean("a/../.."), "..");
        assert_eq!(clean(""), ".");
        assert_eq!(clean("/.."), "/");
    }
}

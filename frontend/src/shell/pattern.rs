//! Shell glob patterns of `${VAR#pat}`, `${VAR%pat}` and `${VAR/pat/repl}`, turned into
//! regular expressions the way BuildKit's `convertShellPatternToRegex` does (`*`, `?` and
//! backslash escapes; no bracket expressions).

use regex::Regex;

fn to_regex(pattern: &str, greedy: bool, anchored: bool) -> Result<Regex, String> {
    let mut out = String::with_capacity(pattern.len() + 4);
    if anchored {
        out.push('^');
    }
    let star = if greedy { ".*" } else { ".*?" };
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let tok = chars[i];
        i += 1;
        match tok {
            '*' => out.push_str(star),
            '?' => out.push('.'),
            '\\' => {
                // `}` and `/` are escaped only so they do not end the `${}`; the escape is not
                // part of the pattern.
                if matches!(chars.get(i), Some('}') | Some('/')) {
                    continue;
                }
                let next = chars.get(i).copied();
                i += 1;
                match next {
                    Some(c @ ('*' | '?' | '\\')) => {
                        out.push('\\');
                        out.push(c);
                    }
                    other => return Err(format!("invalid escape '\\{}'", other.unwrap_or('\u{FFFD}'))),
                }
            }
            '[' | ']' | '{' | '}' | '.' | '+' | '(' | ')' | '|' | '^' | '$' => {
                out.push('\\');
                out.push(tok);
            }
            c => out.push(c),
        }
    }
    Regex::new(&out).map_err(|e| e.to_string())
}

fn invalid(pattern: &str, err: String) -> String {
    format!("invalid pattern ({pattern}) in substitution: {err}")
}

/// `${value#pattern}` (shortest) or `${value##pattern}` (greedy).
pub(super) fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let re = to_regex(pattern, greedy, true).map_err(|e| invalid(pattern, e))?;
    Ok(match re.find(value) {
        Some(m) => value[m.end()..].to_string(),
        None => value.to_string(),
    })
}

/// Reverses a pattern while keeping escapes in front of the character they escape.
fn reverse_pattern(pattern: &str) -> String {
    let runes: Vec<char> = pattern.chars().collect();
    let mut out = vec!['\0'; runes.len()];
    let Some(last) = runes.len().checked_sub(1) else {
        return String::new();
    };
    let mut i = 0;
    while i <= last {
        let tok = runes[i];
        let out_idx = last - i;
        if tok == '\\' && i != last {
            out[out_idx - 1] = tok;
            out[out_idx] = runes[i + 1];
            i += 2;
        } else {
            out[out_idx] = tok;
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// `${value%pattern}` (shortest) or `${value%%pattern}` (greedy).
pub(super) fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    // A regex finds the leftmost match only, so search the reversed value with the reversed
    // pattern to find the rightmost one.
    let reversed: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

/// `${value/pattern/replacement}` or, with `all`, `${value//pattern/replacement}`.
pub(super) fn replace(pattern: &str, value: &str, replacement: &str, all: bool) -> Result<String, String> {
    let re = to_regex(pattern, true, false).map_err(|e| invalid(pattern, e))?;
    if all {
        // Like Go's ReplaceAllString, `$name` in the replacement refers to capture groups.
        return Ok(re.replace_all(value, replacement).into_owned());
    }
    Ok(match re.find(value) {
        Some(m) => format!("{}{}{}", &value[..m.start()], replacement, &value[m.end()..]),
        None => value.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_keeps_escapes() {
        assert_eq!(reverse_pattern("a\\*c"), "c\\*a");
        assert_eq!(reverse_pattern(""), "");
    }

    #[test]
    fn trims() {
        assert_eq!(trim_prefix("*x", "xxyy", true).unwrap(), "yy");
        assert_eq!(trim_suffix("\\**", "xx**", true).unwrap(), "xx");
        assert!(trim_prefix("\\a", "x", false).is_err());
    }
}

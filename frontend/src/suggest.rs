//! "Did you mean ...?" suggestions, as BuildKit's `util/suggest` makes them: the closest
//! option within an edit distance below 3.

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

fn match_case(option: &str, original: &str) -> String {
    if original == original.to_lowercase() {
        option.to_lowercase()
    } else if original == original.to_uppercase() {
        option.to_uppercase()
    } else {
        option.to_string()
    }
}

/// The option closest to `value`, or `None` when nothing is close or `value` is itself an
/// option (then the error is about something else).
pub(crate) fn search(value: &str, options: &[&str], case_sensitive: bool) -> Option<String> {
    let val = if case_sensitive { value.to_string() } else { value.to_lowercase() };
    let mut best: Option<&str> = None;
    let mut min = 3;
    for opt in options {
        let o = if case_sensitive { opt.to_string() } else { opt.to_lowercase() };
        if o == val {
            return None;
        }
        let d = levenshtein(&val, &o);
        if d < min {
            min = d;
            best = Some(opt);
        }
    }
    best.map(|b| if case_sensitive { b.to_string() } else { match_case(b, value) })
}

/// `search` formatted as BuildKit's help text.
pub(crate) fn did_you_mean(value: &str, options: &[&str], case_sensitive: bool) -> Option<String> {
    search(value, options, case_sensitive).map(|m| format!("did you mean {m}?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(search("FNTRYPOINT", &["ENTRYPOINT", "RUN"], false).as_deref(), Some("ENTRYPOINT"));
        assert_eq!(search("runn", &["RUN"], false).as_deref(), Some("run"));
        assert_eq!(search("mont", &["mount", "network"], true).as_deref(), Some("mount"));
        assert_eq!(search("xyzzy", &["mount"], true), None);
        assert_eq!(search("RUN", &["run"], false), None);
    }
}

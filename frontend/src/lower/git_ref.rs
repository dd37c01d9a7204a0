//! Which ADD sources are git repositories, and what their URL says: BuildKit's
//! `dfgitutil.ParseGitRef` (with `gitutil.ParseURL` and the scp-style rule of `sshutil`).
//!
//! A source is a git repository when it is
//! - an `http://` or `https://` URL whose path ends in `.git`,
//! - a `git://` or `ssh://` URL,
//! - scp-style `[user@]host:path` (`git@github.com:moby/buildkit.git`).
//!
//! The fragment names the ref and subdirectory (`#ref:subdir`, or `##ref=…,subdir=…`), the
//! query can too (`?ref=…&subdir=…&tag=…&branch=…&checksum=…&keep-git-dir=…`).
//! `./x`, `../x` and the deprecated `github.com/…` form are local paths for ADD.

/// A git source as the URL describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GitRef {
    /// What `git` fetches from (no fragment, no query).
    pub remote: String,
    /// Branch, tag or commit (`None`: the default branch).
    pub reference: Option<String>,
    /// Expected commit (`?checksum=` or `?commit=`).
    pub checksum: Option<String>,
    /// Subdirectory to take.
    pub subdir: Option<String>,
    /// `?keep-git-dir=`.
    pub keep_git_dir: Option<bool>,
}

/// Parses `src`: `Ok(None)` when it is not a git repository, an error (BuildKit's message)
/// when it is one with invalid options.
pub fn parse(src: &str) -> Result<Option<GitRef>, String> {
    if src.starts_with("./") || src.starts_with("../") || src.starts_with("github.com/") {
        return Ok(None);
    }
    if let Some(scheme_end) = scheme_end(src) {
        let scheme = src[..scheme_end].to_ascii_lowercase();
        if !matches!(scheme.as_str(), "http" | "https" | "ssh" | "git") {
            return Ok(None);
        }
        let (without_fragment, fragment) = match src.split_once('#') {
            Some((u, f)) => (u, Some(f)),
            None => (src, None),
        };
        let (remote, query) = match without_fragment.split_once('?') {
            Some((u, q)) => (u, Some(q)),
            None => (without_fragment, None),
        };
        let after_scheme = &remote[scheme_end + 3..];
        let path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
        if matches!(scheme.as_str(), "http" | "https") && !path.ends_with(".git") {
            return Ok(None);
        }
        let mut out = GitRef { remote: remote.to_string(), ..GitRef::default() };
        apply_fragment(&mut out, fragment)?;
        if let Some(q) = query {
            load_query(&mut out, q)?;
        }
        return Ok(Some(out));
    }
    match scp_style(src) {
        Some((remote, fragment)) => {
            let mut out = GitRef { remote: remote.to_string(), ..GitRef::default() };
            apply_fragment(&mut out, fragment)?;
            Ok(Some(out))
        }
        None => Ok(None),
    }
}

/// End of the scheme when `s` starts with `[a-zA-Z0-9]+://`.
fn scheme_end(s: &str) -> Option<usize> {
    let end = s.find("://")?;
    (end > 0 && s[..end].bytes().all(|b| b.is_ascii_alphanumeric())).then_some(end)
}

/// `[user@]host:path[#fragment]` with BuildKit's character classes.
fn scp_style(s: &str) -> Option<(&str, Option<&str>)> {
    let (remote, fragment) = match s.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (s, None),
    };
    let (host_part, _path) = remote.split_once(':')?;
    let host = match host_part.split_once('@') {
        Some((user, host)) => {
            if user.is_empty() || !user.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return None;
            }
            host
        }
        None => host_part,
    };
    let host_ok =
        !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    host_ok.then_some((remote, fragment))
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// `#ref:subdir`, or the CSV form `##ref=…,commit=…,subdir=…`.
fn apply_fragment(out: &mut GitRef, fragment: Option<&str>) -> Result<(), String> {
    let Some(fragment) = fragment else { return Ok(()) };
    if let Some(csv) = fragment.strip_prefix('#') {
        let mut commit = None;
        for field in csv.split(',').filter(|f| !f.is_empty()) {
            let Some((key, value)) = field.split_once('=') else {
                return Err(format!("invalid field '{field}' must be a key=value pair"));
            };
            match key.to_ascii_lowercase().as_str() {
                "ref" => out.reference = non_empty(value),
                "commit" => commit = non_empty(value),
                "subdir" => out.subdir = non_empty(value),
                other => {
                    return Err(format!(
                        "unexpected key '{other}' in '{field}' (supported keys: ref, commit, subdir)"
                    ));
                }
            }
        }
        if out.reference.is_none() {
            out.reference = commit.clone();
        }
        out.checksum = commit;
        return Ok(());
    }
    let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
    out.reference = non_empty(reference);
    out.subdir = non_empty(subdir);
    Ok(())
}

/// `%XX` and `+` decoded, as Go's `url.ParseQuery` does.
fn query_unescape(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
                let Some(b) = hex else { return Err(format!("invalid URL escape {:?}", &s[i..])) };
                out.push(b);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("invalid query {s:?}"))
}

fn parse_bool(key: &str, v: Option<&str>) -> Result<bool, String> {
    match v {
        None => Ok(true),
        Some(v) => crate::instructions::go_parse_bool(v).ok_or_else(|| format!("invalid {key} value: {v:?}")),
    }
}

/// BuildKit's `GitRef.loadQuery`.
fn load_query(out: &mut GitRef, query: &str) -> Result<(), String> {
    let mut values: Vec<(String, Vec<String>)> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (query_unescape(k)?, query_unescape(v)?);
        match values.iter_mut().find(|(key, _)| *key == k) {
            Some((_, list)) => list.push(v),
            None => values.push((k, vec![v])),
        }
    }
    let (mut tag, mut branch) = (None, None);
    for (k, v) in &values {
        if v.len() > 1 {
            return Err(format!("query {k:?} has multiple values"));
        }
        let value = v.first().map(String::as_str).filter(|s| !s.is_empty());
        if value.is_none() && !matches!(k.as_str(), "submodules" | "keep-git-dir") {
            return Err(format!("query {k:?} has no value"));
        }
        let value_or_empty = value.unwrap_or_default();
        match k.as_str() {
            "ref" => {
                if let Some(r) = &out.reference
                    && r != value_or_empty
                {
                    return Err(format!("ref conflicts: {r:?} vs {value_or_empty:?}"));
                }
                out.reference = non_empty(value_or_empty);
            }
            "tag" => tag = non_empty(value_or_empty),
            "branch" => branch = non_empty(value_or_empty),
            "subdir" => {
                if let Some(s) = &out.subdir
                    && s != value_or_empty
                {
                    return Err(format!("subdir conflicts: {s:?} vs {value_or_empty:?}"));
                }
                out.subdir = non_empty(value_or_empty);
            }
            "checksum" | "commit" => out.checksum = non_empty(value_or_empty),
            "keep-git-dir" => out.keep_git_dir = Some(parse_bool("keep-git-dir", value)?),
            // Submodules are always fetched; the option is accepted as BuildKit accepts it.
            "submodules" => {
                parse_bool("submodules", value)?;
            }
            other => return Err(format!("unexpected query {other:?}")),
        }
    }
    if let Some(t) = tag {
        let t = if t.starts_with("refs/tags/") { t } else { format!("refs/tags/{t}") };
        if let Some(r) = out.reference.as_ref().filter(|r| **r != t) {
            return Err(format!("ref conflicts: {r:?} vs {t:?}"));
        }
        out.reference = Some(t);
    }
    if let Some(b) = branch {
        if out.reference.as_deref().is_some_and(|r| r.starts_with("refs/tags/"))
            && values.iter().any(|(k, _)| k == "tag")
        {
            return Err("branch conflicts with tag".into());
        }
        let b = if b.starts_with("refs/heads/") { b } else { format!("refs/heads/{b}") };
        if let Some(r) = out.reference.as_ref().filter(|r| **r != b) {
            return Err(format!("ref conflicts: {r:?} vs {b:?}"));
        }
        out.reference = Some(b);
    }
    if out.checksum.is_some() && out.reference.is_none() {
        out.reference = out.checksum.clone();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(remote: &str, reference: Option<&str>, subdir: Option<&str>) -> Option<GitRef> {
        Some(GitRef {
            remote: remote.into(),
            reference: reference.map(String::from),
            subdir: subdir.map(String::from),
            ..GitRef::default()
        })
    }

    #[test]
    fn buildkit_git_ref_cases() {
        let cases: Vec<(&str, Option<GitRef>)> = vec![
            ("https://example.com/", None),
            ("https://example.com/foo", None),
            ("https://example.com/foo.git", git("https://example.com/foo.git", None, None)),
            (
                "https://example.com/foo.git#deadbeef",
                git("https://example.com/foo.git", Some("deadbeef"), None),
            ),
            (
                "https://example.com/foo.git#release/1.2",
                git("https://example.com/foo.git", Some("release/1.2"), None),
            ),
            ("https://example.com/foo.git/", None),
            ("https://example.com/foo.git.bar", None),
            ("git://example.com/foo", git("git://example.com/foo", None, None)),
            ("github.com/moby/buildkit", None),
            ("custom.xyz/moby/buildkit.git", None),
            ("https://github.com/moby/buildkit", None),
            (
                "https://foo:bar@github.com/moby/buildkit.git",
                git("https://foo:bar@github.com/moby/buildkit.git", None, None),
            ),
            ("git@github.com:moby/buildkit", git("git@github.com:moby/buildkit", None, None)),
            ("git@github.com:moby/buildkit.git", git("git@github.com:moby/buildkit.git", None, None)),
            (
                "https://github.com/foo/bar.git#baz/qux:quux/quuz",
                git("https://github.com/foo/bar.git", Some("baz/qux"), Some("quux/quuz")),
            ),
            ("http://github.com/docker/docker.git:#branch", None),
            (
                "https://github.com/docker/docker.git#:myfolder",
                git("https://github.com/docker/docker.git", None, Some("myfolder")),
            ),
            ("./.git", None),
            (".git", None),
            ("file:///tmp/repo.git", None),
            (
                "https://github.com/docker/docker.git?ref=v1.0.0&subdir=/subdir",
                git("https://github.com/docker/docker.git", Some("v1.0.0"), Some("/subdir")),
            ),
            (
                "https://example.com/r.git##ref=main,subdir=docs",
                git("https://example.com/r.git", Some("main"), Some("docs")),
            ),
            ("app.txt", None),
            ("dir/sub/", None),
        ];
        for (src, want) in cases {
            assert_eq!(parse(src).unwrap(), want, "{src}");
        }
    }

    #[test]
    fn query_options_and_errors() {
        let r = parse("https://e.com/r.git?tag=v1&keep-git-dir=true").unwrap().unwrap();
        assert_eq!(r.reference.as_deref(), Some("refs/tags/v1"));
        assert_eq!(r.keep_git_dir, Some(true));
        let r = parse("https://e.com/r.git?checksum=abc123").unwrap().unwrap();
        assert_eq!((r.reference.as_deref(), r.checksum.as_deref()), (Some("abc123"), Some("abc123")));
        let r = parse("https://e.com/r.git?branch=dev&keep-git-dir").unwrap().unwrap();
        assert_eq!((r.reference.as_deref(), r.keep_git_dir), (Some("refs/heads/dev"), Some(true)));
        assert!(parse("https://e.com/r.git?foo=bar").is_err());
        assert!(parse("https://e.com/r.git?ref=a&ref=b").is_err());
        assert!(parse("https://e.com/r.git?keep-git-dir=maybe").is_err());
        assert!(parse("https://e.com/r.git##bogus=1").is_err());
        assert!(parse("https://e.com/r.git?ref=").is_err());
        assert!(parse("https://e.com/r.git?tag=v1&branch=main").is_err());
    }
}

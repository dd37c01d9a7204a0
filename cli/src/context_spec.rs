//! What a context argument names, with docker buildx's spellings: the positional CONTEXT
//! (`DIR`, `-`, a git URL `URL#ref:subdir`) and `--build-context NAME=VALUE` (`DIR`,
//! `docker-image://REF`, a git URL). Parsing only; nothing is read or fetched here.
//!
//! Git URLs are those of BuildKit (`https://…/x.git`, `git://…`, `ssh://…`, `git@host:path`,
//! with `#ref:subdir` or `?ref=…&subdir=…`), plus `file:///path/repo` and a local path to a
//! repository followed by a `#ref[:subdir]` fragment.

use engine::GitContext;
use registry::Reference;
use std::path::{Path, PathBuf};

/// A context argument that cannot be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SpecError {
    /// `--build-context` without `NAME=VALUE` shape, or with a bad name.
    #[error("invalid --build-context {value:?}: {reason}")]
    BuildContext {
        /// The flag's value.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A kind of context rbuild does not build from (yet).
    #[error("{what} is not supported yet: {value}")]
    Unsupported {
        /// The kind (`a remote tarball context`).
        what: &'static str,
        /// The argument.
        value: String,
    },
    /// A git URL with invalid options.
    #[error("invalid git context {value:?}: {reason}")]
    Git {
        /// The argument.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

/// The positional build context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MainContext {
    /// A local directory.
    Dir(PathBuf),
    /// `-`: a Dockerfile or a context tar on stdin.
    Stdin,
    /// A git repository.
    Git(GitContext),
}

/// A `--build-context` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NamedValue {
    /// A local directory.
    Dir(PathBuf),
    /// `docker-image://REF`.
    Image(Reference),
    /// A git repository.
    Git(GitContext),
}

/// Parses the positional CONTEXT.
pub(crate) fn parse_main(arg: &Path) -> Result<MainContext, SpecError> {
    let Some(text) = arg.to_str() else { return Ok(MainContext::Dir(arg.to_path_buf())) };
    if text == "-" {
        return Ok(MainContext::Stdin);
    }
    if let Some(git) = parse_git(text)? {
        return Ok(MainContext::Git(git));
    }
    if is_http(text) {
        return Err(SpecError::Unsupported {
            what: "a remote tarball or Dockerfile context",
            value: text.into(),
        });
    }
    Ok(MainContext::Dir(arg.to_path_buf()))
}

/// Parses one `--build-context NAME=VALUE`.
pub(crate) fn parse_named(flag: &str) -> Result<(String, NamedValue), SpecError> {
    let bad = |reason: &str| SpecError::BuildContext { value: flag.into(), reason: reason.into() };
    let Some((name, value)) = flag.split_once('=') else {
        return Err(bad("expected NAME=VALUE (VALUE: a directory, docker-image://REF or a git URL)"));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(bad("the name is empty"));
    }
    if value.is_empty() {
        return Err(bad("the value is empty"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b)) {
        return Err(bad("a name may only contain letters, digits and . _ - / : @"));
    }
    if name.eq_ignore_ascii_case("scratch") || name.eq_ignore_ascii_case("context") {
        return Err(bad("the names scratch and context are reserved"));
    }
    if let Some(reference) = value.strip_prefix("docker-image://") {
        let r = reference
            .parse::<Reference>()
            .map_err(|e| bad(&format!("invalid image reference: {}", e.reason)))?;
        return Ok((name.to_string(), NamedValue::Image(r)));
    }
    if value.starts_with("oci-layout://") {
        return Err(SpecError::Unsupported { what: "an oci-layout:// build context", value: flag.into() });
    }
    if value.starts_with("target:") {
        return Err(SpecError::Unsupported {
            what: "a target: build context (bake only)",
            value: flag.into(),
        });
    }
    if let Some(git) = parse_git(value)? {
        return Ok((name.to_string(), NamedValue::Git(git)));
    }
    if is_http(value) {
        return Err(SpecError::Unsupported { what: "a remote tarball build context", value: flag.into() });
    }
    Ok((name.to_string(), NamedValue::Dir(PathBuf::from(value))))
}

fn is_http(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// A git repository URL (see the module docs), or `None`.
pub(crate) fn parse_git(text: &str) -> Result<Option<GitContext>, SpecError> {
    let git_err = |reason: String| SpecError::Git { value: text.into(), reason };
    if let Some(rest) = text.strip_prefix("file://") {
        let (path, fragment) = split_fragment(rest);
        if path.is_empty() {
            return Err(git_err("the repository path is empty".into()));
        }
        return Ok(Some(with_fragment(format!("file://{path}"), fragment)));
    }
    // A local repository with a fragment: `./repo#v1:sub`.
    if let (path, Some(fragment)) = split_fragment(text)
        && !path.contains("://")
        && is_local_repository(Path::new(path))
    {
        let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
        return Ok(Some(with_fragment(format!("file://{}", absolute.display()), Some(fragment))));
    }
    let Some(parsed) = frontend::lower::parse_git_ref(text).map_err(git_err)? else { return Ok(None) };
    if parsed.keep_git_dir == Some(true) {
        return Err(SpecError::Unsupported { what: "keep-git-dir for a git context", value: text.into() });
    }
    if parsed.checksum.is_some() {
        return Err(SpecError::Unsupported { what: "a checksum for a git context", value: text.into() });
    }
    Ok(Some(GitContext { remote: parsed.remote, reference: parsed.reference, subdir: parsed.subdir }))
}

fn split_fragment(s: &str) -> (&str, Option<&str>) {
    match s.split_once('#') {
        Some((p, f)) => (p, Some(f)),
        None => (s, None),
    }
}

/// `#ref:subdir` applied to `remote`.
fn with_fragment(remote: String, fragment: Option<&str>) -> GitContext {
    let (reference, subdir) = fragment.map(|f| f.split_once(':').unwrap_or((f, ""))).unwrap_or(("", ""));
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    GitContext { remote, reference: non_empty(reference), subdir: non_empty(subdir) }
}

/// A work tree with `.git`, or a bare repository.
fn is_local_repository(path: &Path) -> bool {
    path.join(".git").exists() || (path.join("HEAD").is_file() && path.join("objects").is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(remote: &str, reference: Option<&str>, subdir: Option<&str>) -> GitContext {
        GitContext {
            remote: remote.into(),
            reference: reference.map(String::from),
            subdir: subdir.map(String::from),
        }
    }

    #[test]
    fn main_context_kinds() {
        let cases: Vec<(&str, Result<MainContext, ()>)> = vec![
            (".", Ok(MainContext::Dir(".".into()))),
            ("app/dir", Ok(MainContext::Dir("app/dir".into()))),
            ("-", Ok(MainContext::Stdin)),
            ("https://example.com/r.git", Ok(MainContext::Git(git("https://example.com/r.git", None, None)))),
            (
                "https://example.com/r.git#v1:docker",
                Ok(MainContext::Git(git("https://example.com/r.git", Some("v1"), Some("docker")))),
            ),
            ("git://host/r", Ok(MainContext::Git(git("git://host/r", None, None)))),
            (
                "ssh://git@host/r.git#main",
                Ok(MainContext::Git(git("ssh://git@host/r.git", Some("main"), None))),
            ),
            ("git@github.com:me/r.git", Ok(MainContext::Git(git("git@github.com:me/r.git", None, None)))),
            ("file:///srv/r.git", Ok(MainContext::Git(git("file:///srv/r.git", None, None)))),
            (
                "file:///srv/r#v2:sub/dir",
                Ok(MainContext::Git(git("file:///srv/r", Some("v2"), Some("sub/dir")))),
            ),
            ("file:///srv/r#:sub", Ok(MainContext::Git(git("file:///srv/r", None, Some("sub"))))),
            ("https://example.com/ctx.tar.gz", Err(())),
            ("https://example.com/r.git?keep-git-dir=true", Err(())),
            ("https://example.com/r.git?bogus=1", Err(())),
            ("file://#main", Err(())),
        ];
        for (arg, want) in cases {
            let got = parse_main(Path::new(arg)).map_err(|_| ());
            assert_eq!(got, want, "{arg}");
        }
    }

    #[test]
    fn a_local_repository_with_a_fragment_is_git() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("repo/.git")).unwrap();
        let repo = dir.path().join("repo");
        let arg = format!("{}#v1:sub", repo.display());
        let want =
            git(&format!("file://{}", repo.canonicalize().unwrap().display()), Some("v1"), Some("sub"));
        assert_eq!(parse_main(Path::new(&arg)).unwrap(), MainContext::Git(want));
        // Without a fragment it is a directory, as with docker.
        assert_eq!(parse_main(&repo).unwrap(), MainContext::Dir(repo.clone()));
    }

    #[test]
    fn named_context_values() {
        let image: Reference = "127.0.0.1:5000/base:1".parse().unwrap();
        type Case<'a> = (&'a str, Result<(&'a str, NamedValue), &'a str>);
        let cases: Vec<Case> = vec![
            ("deps=./vendor", Ok(("deps", NamedValue::Dir("./vendor".into())))),
            ("Deps=/abs/dir", Ok(("Deps", NamedValue::Dir("/abs/dir".into())))),
            ("alpine=docker-image://127.0.0.1:5000/base:1", Ok(("alpine", NamedValue::Image(image)))),
            (
                "alpine:3.20=docker-image://127.0.0.1:5000/base:1",
                Ok(("alpine:3.20", NamedValue::Image("127.0.0.1:5000/base:1".parse().unwrap()))),
            ),
            (
                "src=https://example.com/r.git#main",
                Ok(("src", NamedValue::Git(git("https://example.com/r.git", Some("main"), None)))),
            ),
            ("src=file:///r#v1:sub", Ok(("src", NamedValue::Git(git("file:///r", Some("v1"), Some("sub")))))),
            ("novalue", Err("expected NAME=VALUE")),
            ("=dir", Err("the name is empty")),
            ("name=", Err("the value is empty")),
            ("bad name=dir", Err("may only contain")),
            ("scratch=dir", Err("reserved")),
            ("x=docker-image://UPPER/Case", Err("invalid image reference")),
            ("x=oci-layout:///tmp/layout", Err("not supported yet")),
            ("x=https://example.com/ctx.tar", Err("not supported yet")),
        ];
        for (flag, want) in cases {
            match (parse_named(flag), want) {
                (Ok((name, value)), Ok((want_name, want_value))) => {
                    assert_eq!((name.as_str(), value), (want_name, want_value), "{flag}")
                }
                (Err(e), Err(needle)) => assert!(e.to_string().contains(needle), "{flag}: {e}"),
                (got, want) => panic!("{flag}: got {got:?}, want {want:?}"),
            }
        }
    }
}

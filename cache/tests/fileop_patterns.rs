//! Pattern semantics pinned by moby/patternmatcher's and Go's `filepath.Match` test tables
//! (the Unix cases), plus the walker form of the matcher agreeing with the plain one.

use cache::patterns::{MatchInfo, PatternError, PatternMatcher, glob_match};

fn pm(patterns: &[&str]) -> PatternMatcher {
    PatternMatcher::new(&patterns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

#[test]
fn glob_match_table() {
    // (pattern, name, match) — Go's filepath.Match test table, Unix entries.
    let cases: &[(&str, &str, Result<bool, ()>)] = &[
        ("abc", "abc", Ok(true)),
        ("*", "abc", Ok(true)),
        ("*c", "abc", Ok(true)),
        ("a*", "a", Ok(true)),
        ("a*", "abc", Ok(true)),
        ("a*", "ab/c", Ok(false)),
        ("a*/b", "abc/b", Ok(true)),
        ("a*/b", "a/c/b", Ok(false)),
        ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
        ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
        ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
        ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
        ("ab[c]", "abc", Ok(true)),
        ("ab[b-d]", "abc", Ok(true)),
        ("ab[e-g]", "abc", Ok(false)),
        ("ab[^c]", "abc", Ok(false)),
        ("ab[^b-d]", "abc", Ok(false)),
        ("ab[^e-g]", "abc", Ok(true)),
        ("a\\*b", "a*b", Ok(true)),
        ("a\\*b", "ab", Ok(false)),
        ("a?b", "a☺b", Ok(true)),
        ("a[^a]b", "a☺b", Ok(true)),
        ("a???b", "a☺b", Ok(false)),
        ("a[^a][^a][^a]b", "a☺b", Ok(false)),
        ("[a-ζ]*", "α", Ok(true)),
        ("*[a-ζ]", "A", Ok(false)),
        ("a?b", "a/b", Ok(false)),
        ("a*b", "a/b", Ok(false)),
        ("[\\]a]", "]", Ok(true)),
        ("[\\-]", "-", Ok(true)),
        ("[x\\-]", "x", Ok(true)),
        ("[x\\-]", "-", Ok(true)),
        ("[x\\-]", "z", Ok(false)),
        ("[\\-x]", "x", Ok(true)),
        ("[\\-x]", "-", Ok(true)),
        ("[\\-x]", "a", Ok(false)),
        ("[]a]", "]", Err(())),
        ("[-]", "-", Err(())),
        ("[x-]", "x", Err(())),
        ("[x-]", "-", Err(())),
        ("[x-]", "z", Err(())),
        ("[-x]", "x", Err(())),
        ("[-x]", "-", Err(())),
        ("[-x]", "a", Err(())),
        ("\\", "a", Err(())),
        ("[a-b-c]", "a", Err(())),
        ("[", "a", Err(())),
        ("[^", "a", Err(())),
        ("[^bc", "a", Err(())),
        ("a[", "a", Err(())),
        ("a[", "ab", Err(())),
        ("a[", "x", Err(())),
        ("a/b[", "x", Err(())),
        ("*x", "xxx", Ok(true)),
    ];
    for (pattern, name, want) in cases {
        let got = glob_match(pattern, name).map_err(|_| ());
        assert_eq!(&got, want, "Match({pattern:?}, {name:?})");
    }
}

#[test]
fn matcher_table() {
    // (patterns, path, MatchesOrParentMatches) — from patternmatcher's tests.
    let cases: &[(&[&str], &str, bool)] = &[
        (&["**"], "file", true),
        (&["**"], "file/", true),
        (&["**/"], "file", true),
        (&["**/"], "file/", true),
        (&["**"], "/", true),
        (&["**/"], "/", true),
        (&["**"], "dir/file", true),
        (&["**/"], "dir/file", true),
        (&["**"], "dir/file/", true),
        (&["**/"], "dir/file/", true),
        (&["**/**"], "dir/file", true),
        (&["**/**"], "dir/file/", true),
        (&["dir/**"], "dir/file", true),
        (&["dir/**"], "dir/file/", true),
        (&["dir/**"], "dir/dir2/file", true),
        (&["dir/**"], "dir/dir2/file/", true),
        (&["**/dir"], "dir", true),
        (&["**/dir"], "dir/file", true),
        (&["**/dir2/*"], "dir/dir2/file", true),
        (&["**/dir2/*"], "dir/dir2/file/", true),
        (&["**/dir2/**"], "dir/dir2/dir3/file", true),
        (&["**/dir2/**"], "dir/dir2/dir3/file/", true),
        (&["**file"], "file", true),
        (&["**file"], "dir/file", true),
        (&["**/file"], "dir/file", true),
        (&["**file"], "dir/dir/file", true),
        (&["**/file"], "dir/dir/file", true),
        (&["**/file*"], "dir/dir/file", true),
        (&["**/file*"], "dir/dir/file.txt", true),
        (&["**/file*txt"], "dir/dir/file.txt", true),
        (&["**/file*.txt"], "dir/dir/file.txt", true),
        (&["**/file*.txt*"], "dir/dir/file.txt", true),
        (&["**/**/*.txt"], "dir/dir/file.txt", true),
        (&["**/**/*.txt2"], "dir/dir/file.txt", false),
        (&["**/*.txt"], "file.txt", true),
        (&["**/**/*.txt"], "file.txt", true),
        (&["a**/*.txt"], "a/file.txt", true),
        (&["a**/*.txt"], "a/dir/file.txt", true),
        (&["a**/*.txt"], "a/dir/dir/file.txt", true),
        (&["a/*.txt"], "a/dir/file.txt", false),
        (&["a/*.txt"], "a/file.txt", true),
        (&["a/*.txt**"], "a/file.txt", true),
        (&["a[b-d]e"], "ae", false),
        (&["a[b-d]e"], "ace", true),
        (&["a[b-d]e"], "aae", false),
        (&["a[^b-d]e"], "aze", true),
        (&[".*"], ".foo", true),
        (&[".*"], "foo", false),
        (&["abc.def"], "abcdef", false),
        (&["abc.def"], "abc.def", true),
        (&["abc.def"], "abcZdef", false),
        (&["abc?def"], "abcZdef", true),
        (&["abc?def"], "abcdef", false),
        (&["a\\\\"], "a\\", true),
        (&["**/foo/bar"], "foo/bar", true),
        (&["**/foo/bar"], "dir/foo/bar", true),
        (&["**/foo/bar"], "dir/dir2/foo/bar", true),
        (&["abc/**"], "abc", false),
        (&["abc/**"], "abc/def", true),
        (&["abc/**"], "abc/def/ghi", true),
        (&["**/.foo"], ".foo", true),
        (&["**/.foo"], "bar.foo", false),
        (&["a(b)c/def"], "a(b)c/def", true),
        (&["a(b)c/def"], "a(b)c/xyz", false),
        (&["a.|)$(}+{bc"], "a.|)$(}+{bc", true),
        (
            &["dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            true,
        ),
        (&["dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", true),
        // Parent directories and exceptions.
        (&["docs"], "docs/README.md", true),
        (&["docs", "!docs/README.md"], "docs/README.md", false),
        (&["docs", "!docs/README.md"], "docs/other.md", true),
        (&["ba*", "!bay"], "bar", true),
        (&["ba*", "!bay"], "bay", false),
        (&["*", "!keep"], "keep", false),
        (&["*/*.png"], "dir1/file.png", true),
        (&["*/*.png"], "file.png", false),
        (&["./a/"], "a/b", true),
    ];
    for (patterns, path, want) in cases {
        let m = pm(patterns);
        assert_eq!(m.matches(path), *want, "{patterns:?} vs {path:?}");
    }
}

#[test]
fn with_parent_agrees_with_matches() {
    let sets: &[&[&str]] = &[
        &["docs", "!docs/README.md"],
        &["**/*.go", "!vendor/**"],
        &["a/*/c", "!a/b/c/keep"],
        &["*", "!dir/sub"],
    ];
    let paths = [
        "docs",
        "docs/README.md",
        "docs/x",
        "vendor",
        "vendor/a.go",
        "x/a.go",
        "a",
        "a/b",
        "a/b/c",
        "a/b/c/keep",
        "a/b/c/other",
        "dir",
        "dir/sub",
        "dir/sub/f",
        "dir/other",
    ];
    for set in sets {
        let m = pm(set);
        for path in paths {
            // Walk down from the top like a tree walker would.
            let mut info = MatchInfo::default();
            let mut got = false;
            let mut prefix = String::new();
            for comp in path.split('/') {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(comp);
                let (m2, i2) = m.matches_with_parent(&prefix, &info);
                got = m2;
                info = i2;
            }
            assert_eq!(got, m.matches(path), "{set:?} vs {path:?}");
        }
    }
}

#[test]
fn invalid_patterns() {
    assert_eq!(PatternMatcher::new(&["!".to_string()]).unwrap_err(), PatternError::LoneExclusion);
    assert!(matches!(PatternMatcher::new(&["[".to_string()]), Err(PatternError::Syntax { .. })));
    assert!(!pm(&["  ", ""]).exclusions());
    assert!(pm(&["a", "!b"]).exclusions());
}

//! `.dockerignore` parsing as `moby/patternmatcher/ignorefile.ReadAll` does it.

use frontend::dockerignore::parse;

#[test]
fn patterns_like_moby() {
    let cases: &[(&str, &[&str])] = &[
        ("", &[]),
        ("# comment\n\n", &[]),
        ("node_modules\n*.log\n", &["node_modules", "*.log"]),
        ("  spaced  \n\t./a/../b/\n", &["spaced", "b"]),
        ("/root-anchored\n!/keep/this\n", &["root-anchored", "!keep/this"]),
        ("!  exception  \n", &["!exception"]),
        ("**/*.tmp\r\nlast-no-newline", &["**/*.tmp", "last-no-newline"]),
        (" # leading space is not a comment\n", &["# leading space is not a comment"]),
        ("\u{feff}bom\n", &["bom"]),
        ("..\n/..\n", &["..", "/"]),
    ];
    for (text, want) in cases {
        assert_eq!(parse(text), *want, "{text:?}");
    }
}

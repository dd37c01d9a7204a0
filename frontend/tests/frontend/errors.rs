//! Golden files for error reports: `tests/golden/errors/<case>.Dockerfile` must fail to
//! parse with exactly the report in `<case>.txt` (the one-line form, a blank line, the
//! rendered report). `RBUILD_BLESS=1` rewrites the `.txt` files.

use std::path::PathBuf;

#[test]
fn error_reports_match_golden_files() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/errors");
    let bless = std::env::var_os("RBUILD_BLESS").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "Dockerfile"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no golden cases in {}", dir.display());
    let mut mismatches = Vec::new();
    for case in cases {
        let src = std::fs::read_to_string(&case).unwrap();
        let err = match frontend::parse(&src, "Dockerfile") {
            Ok(_) => {
                mismatches.push(format!("{}: parsed without error", case.display()));
                continue;
            }
            Err(e) => e,
        };
        let got = format!("{err}\n\n{}", err.render(&src));
        let golden = case.with_extension("txt");
        if bless {
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if got != want {
            mismatches.push(format!("{}:\n--- want\n{want}\n--- got\n{got}", case.display()));
        }
    }
    assert!(
        mismatches.is_empty(),
        "golden mismatches (RBUILD_BLESS=1 to rewrite):\n{}",
        mismatches.join("\n")
    );
}

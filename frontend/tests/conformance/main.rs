//! Conformance against BuildKit's own Dockerfile frontend test data, read in place from
//! `../shared/conformance` (or `$RBUILD_CONFORMANCE_DIR`). Each suite prints
//! `conformance <suite>: N/M passed` and the failing case ids; when the data is absent the
//! suites print a notice and pass.
//!
//! Ratchet: every suite asserts a pass-count floor (`FLOOR` in each module). Raise it when
//! cases start passing; never special-case a case id.

mod instructions;
mod parser;
mod shell;

use std::path::PathBuf;

/// The conformance folder, or `None` (with a notice) when it is not there.
fn conformance_dir(suite: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("RBUILD_CONFORMANCE_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance"),
    };
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("conformance {suite}: skipped, no conformance data at {}", dir.display());
        None
    }
}

/// Pass/fail bookkeeping of one suite.
struct Report {
    suite: &'static str,
    passed: usize,
    total: usize,
    failures: Vec<(String, String)>,
    deferred: Vec<String>,
}

impl Report {
    fn new(suite: &'static str) -> Report {
        Report { suite, passed: 0, total: 0, failures: vec![], deferred: vec![] }
    }

    /// Records one case.
    fn check(&mut self, id: impl Into<String>, result: Result<(), String>) {
        self.total += 1;
        match result {
            Ok(()) => self.passed += 1,
            Err(why) => self.failures.push((id.into(), why)),
        }
    }

    /// A case that needs more than the frontend (a real build); counted apart.
    fn defer(&mut self, id: impl Into<String>) {
        self.deferred.push(id.into());
    }

    /// Prints the summary and asserts the floor.
    fn finish(self, floor: usize) {
        println!("conformance {}: {}/{} passed", self.suite, self.passed, self.total);
        if !self.deferred.is_empty() {
            println!(
                "  {} cases need a real build and are left to the build scenarios:",
                self.deferred.len()
            );
            for id in &self.deferred {
                println!("    deferred {id}");
            }
        }
        for (id, why) in &self.failures {
            println!("  FAIL {id}: {why}");
        }
        assert!(
            self.passed >= floor,
            "conformance {}: {} passed, below the floor of {floor}",
            self.suite,
            self.passed
        );
    }
}

/// Compares with a readable message.
fn expect_eq<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want { Ok(()) } else { Err(format!("{what}: got {got:?}, want {want:?}")) }
}

fn read_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap_or_default().to_string()).collect())
        .unwrap_or_default()
}

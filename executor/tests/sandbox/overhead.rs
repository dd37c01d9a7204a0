//! Sandbox start+stop overhead of a trivial run (issue 6 asks for < 15 ms per RUN).

use std::time::{Duration, Instant};

use crate::harness::Sandbox;
use crate::require_root;

#[tokio::test]
async fn trivial_runs_are_cheap() {
    require_root!();
    let sb = Sandbox::new();
    let mut spec = sb.spec("");
    spec.args = vec!["/bin/true".into()];
    // Warm up page cache and the init binary.
    sb.run(spec.clone()).await.ok();
    let n = 30;
    let started = Instant::now();
    for _ in 0..n {
        sb.run(spec.clone()).await.ok();
    }
    let per_run = started.elapsed() / n;
    eprintln!(
        "sandbox overhead: {per_run:?} per trivial run ({} cgroup)",
        match sb.executor.cgroup_version() {
            Some(v) => format!("v{v}"),
            None => "no".to_owned(),
        }
    );
    // Generous bound for loaded CI machines; the figure above is what matters.
    assert!(per_run < Duration::from_millis(250), "{per_run:?}");
}

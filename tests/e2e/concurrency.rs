//! Two rbuild processes on one store: the second waits for the first (and says so), the
//! steps they share run once, and the store is consistent afterwards.

use crate::harness::{self, Outcome, Rbuild, Steps, require_lab};

fn image_id(o: &Outcome) -> String {
    o.stderr
        .lines()
        .find_map(|l| l.strip_prefix("image "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no image line:\n{o}"))
        .to_string()
}

#[test]
fn two_builds_started_together_on_one_root() {
    require_lab!();
    let base = &harness::lab().base;
    let ctx = harness::context(&[(
        "Dockerfile",
        &format!("FROM {base}\nRUN sleep 1 && echo one > /one\nRUN echo two > /two\n"),
    )]);
    let rb = Rbuild::new();
    let build = || rb.cmd(["build", "--progress", "rawjson"]).arg(ctx.path()).spawn();
    let (first, second) = (build(), build());
    let (a, b) = (first.wait(), second.wait());
    for o in [&a, &b] {
        assert_eq!(o.code, Some(0), "a concurrent build failed:\n{o}");
    }
    let waited: Vec<&Outcome> =
        [&a, &b].into_iter().filter(|o| o.stderr.contains("waiting for another rbuild (pid ")).collect();
    assert_eq!(waited.len(), 1, "exactly one build must wait for the other:\n{a}\n{b}");

    let (sa, sb) = (Steps::of(&a), Steps::of(&b));
    for step in ["FROM ", "RUN sleep 1", "RUN echo two"] {
        let runs = sa.runs_of(step) + sb.runs_of(step);
        assert_eq!(runs, 1, "{step} ran {runs} times in the two builds: {:?} / {:?}", sa.ran, sb.ran);
    }
    assert_eq!(image_id(&a), image_id(&b));

    // Consistent afterwards: usage is readable, and a rebuild is served from the cache.
    let du = rb.cmd(["du"]).expect_ok();
    assert!(du.stdout.contains("cache records:"), "{du}");
    let again = rb.cmd(["build", "--progress", "rawjson"]).arg(ctx.path()).expect_ok();
    let steps = Steps::of(&again);
    assert!(steps.ran.is_empty(), "a rebuild after the concurrent builds ran {:?}", steps.ran);
    assert_eq!(image_id(&again), image_id(&a));
}

//! Build history and logs: every build is listed by `rbuild builds`, every step's whole
//! output is kept (`rbuild logs --step N`), a failed build says how to see it, and `--trace`
//! writes a Chrome trace covering every step.

use crate::harness::{self, Rbuild, require_lab};

#[test]
fn logs_are_kept_whole_and_failures_point_at_them() {
    require_lab!();
    let lab = harness::lab();
    let ctx = harness::context(&[(
        "Dockerfile",
        &format!(
            "FROM {}\nRUN for i in $(seq 1 500); do echo line-$i; done\nRUN echo failing; exit 3\n",
            lab.base
        ),
    )]);
    let rb = Rbuild::new();
    let o = rb.build(ctx.path()).expect_fail();
    let hint = o
        .stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("whole output: "))
        .unwrap_or_else(|| panic!("no hint in:\n{o}"))
        .to_string();
    let args: Vec<&str> = hint.split_whitespace().skip(1).collect();
    let failed = rb.cmd(args).expect_ok();
    assert_eq!(failed.stdout, "failing\n", "{failed}");

    let builds = rb.cmd(["builds"]).expect_ok();
    assert!(builds.stdout.lines().nth(1).is_some_and(|l| l.contains("failed")), "{builds}");

    // The 500 lines of the first RUN are all there, not clipped.
    let steps = rb.cmd(["logs"]).expect_ok();
    let number = steps
        .stdout
        .lines()
        .find(|l| l.contains("seq 1 500"))
        .and_then(|l| l.trim_start_matches('#').split_whitespace().next())
        .unwrap_or_else(|| panic!("no RUN step in:\n{steps}"))
        .to_string();
    let log = rb.cmd(["logs", "--step", &number]).expect_ok();
    assert_eq!(log.stdout.lines().count(), 500, "{}", harness::rbuild::tail(&log.stdout, 5));
    assert!(log.stdout.ends_with("line-500\n"));
    let bad = rb.cmd(["logs", "--step", "999"]).expect_fail();
    assert!(bad.error_text().contains("no step #999"), "{bad}");
}

#[test]
fn trace_covers_every_step_with_parallel_lanes() {
    require_lab!();
    let lab = harness::lab();
    let ctx = harness::context(&[(
        "Dockerfile",
        &format!(
            "FROM {b} AS a\nRUN sleep 0.5 && echo a > /a\nFROM {b} AS b\nRUN sleep 0.5 && echo b > /b\n\
             FROM {b}\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n",
            b = lab.base
        ),
    )]);
    let out = harness::tempdir();
    let trace = out.path().join("trace.json");
    let rb = Rbuild::new();
    let o = rb.build(ctx.path()).arg("--trace").arg(&trace).expect_ok();
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&trace).unwrap()).expect("trace is JSON");
    let events = doc["traceEvents"].as_array().expect("traceEvents");
    let spans: Vec<&serde_json::Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    for step in ["RUN sleep 0.5 && echo a", "RUN sleep 0.5 && echo b", "COPY --from=a", "COPY --from=b"] {
        assert!(
            spans.iter().any(|e| e["name"].as_str().is_some_and(|n| n.contains(step))),
            "no span for {step}:\n{o}"
        );
    }
    let runs: Vec<&&serde_json::Value> =
        spans.iter().filter(|e| e["name"].as_str().is_some_and(|n| n.contains("RUN sleep"))).collect();
    assert_ne!(runs[0]["tid"], runs[1]["tid"], "the parallel RUNs share a lane");
    // A cached rebuild marks every step as an instant "cached" event.
    let again = out.path().join("again.json");
    rb.build(ctx.path()).arg("--trace").arg(&again).expect_ok();
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&again).unwrap()).unwrap();
    let cached =
        doc["traceEvents"].as_array().unwrap().iter().filter(|e| e["args"]["status"] == "cached").count();
    assert!(cached >= 4, "{doc}");
}

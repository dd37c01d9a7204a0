//! Resource limits of every RUN (`--memory`, `--cpus`, `--pids-limit`), the OOM report, and
//! per-step statistics in `--metadata-file`.

use super::{build_local, read};
use crate::harness::{self, Rbuild, require_lab};

/// The value of a cgroup file as the step sees it: v1 (`/sys/fs/cgroup/<ctl>/<v1>`) or v2
/// (`/sys/fs/cgroup/<v2>`), whichever exists.
fn cgroup_probe(ctl: &str, v1: &str, v2: &str, out: &str) -> String {
    format!("(cat /sys/fs/cgroup/{ctl}/{v1} 2>/dev/null || cat /sys/fs/cgroup/{v2}) > {out}")
}

#[test]
fn limits_apply_to_every_run() {
    require_lab!();
    let lab = harness::lab();
    let df = format!(
        "FROM {}\n\
         RUN {} && {} && {}\n\
         RUN (for i in $(seq 40); do sleep 2 & done; wait) 2> /fork.err; grep -c \"can't fork\" /fork.err > /fork.failures || true\n",
        lab.base,
        cgroup_probe("memory", "memory.limit_in_bytes", "memory.max", "/memory"),
        cgroup_probe("pids", "pids.max", "pids.max", "/pids"),
        cgroup_probe("cpu", "cpu.cfs_quota_us", "cpu.max", "/cpu"),
    );
    let ctx = harness::context(&[("Dockerfile", &df)]);
    let (o, out) =
        build_local(&Rbuild::new(), ctx.path(), &["--memory", "256m", "--pids-limit", "20", "--cpus", "0.5"]);
    assert_eq!(o.code, Some(0), "{o}");
    assert_eq!(read(out.path(), "memory").trim(), (256u64 << 20).to_string());
    assert_eq!(read(out.path(), "pids").trim(), "20");
    let cpu = read(out.path(), "cpu");
    assert!(cpu.trim() == "50000" || cpu.trim() == "50000 100000", "cpu quota: {cpu}");
    let failures: u32 = read(out.path(), "fork.failures").trim().parse().unwrap_or(0);
    assert!(failures > 0, "40 background processes under --pids-limit 20 all started");
}

#[test]
fn oom_is_reported_with_the_limit() {
    require_lab!();
    let lab = harness::lab();
    let df = format!("FROM {}\nRUN echo start && head -c 200m /dev/zero | tail\n", lab.base);
    let ctx = harness::context(&[("Dockerfile", &df)]);
    let o = Rbuild::new().build(ctx.path()).args(["--memory", "32m"]).expect_fail();
    let report = o.error_text();
    assert!(report.contains("killed: out of memory, limit 32 MiB"), "{o}");
    assert!(report.contains("did not complete successfully"), "{o}");
    assert!(report.contains("Dockerfile:2"), "{o}");
}

#[test]
fn metadata_file_has_the_image_and_per_step_stats() {
    require_lab!();
    let lab = harness::lab();
    let df = format!("FROM {}\nRUN head -c 20m /dev/zero | wc -c > /bytes\n", lab.base);
    let ctx = harness::context(&[("Dockerfile", &df)]);
    let dir = harness::tempdir();
    let meta_path = dir.path().join("metadata.json");
    let iid = dir.path().join("iid");
    let rb = Rbuild::new();
    rb.build(ctx.path())
        .args(["-t", "e2e/metadata:1", "--metadata-file"])
        .arg(&meta_path)
        .arg("--iidfile")
        .arg(&iid)
        .expect_ok();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    let image_id = std::fs::read_to_string(&iid).unwrap();
    assert_eq!(meta["containerimage.config.digest"], image_id.trim());
    let digest = meta["containerimage.digest"].as_str().unwrap();
    assert!(digest.starts_with("sha256:"), "{meta:#}");
    assert_eq!(meta["containerimage.descriptor"]["digest"], digest);
    assert_eq!(meta["image.name"], "docker.io/e2e/metadata:1");
    let steps = meta["rbuild.build.steps"].as_array().expect("steps");
    let run = steps
        .iter()
        .find(|s| s["name"].as_str().is_some_and(|n| n.contains("RUN head")))
        .unwrap_or_else(|| panic!("no RUN step in {meta:#}"));
    assert_eq!(run["cached"], false);
    assert!(run["seconds"].as_f64().is_some_and(|s| s > 0.0), "{run}");
    assert!(run["peak_memory_bytes"].as_u64().is_some_and(|b| b > 0), "{run}");
    assert!(run["cpu_usec"].as_u64().is_some(), "{run}");

    // A cached rebuild says so.
    rb.build(ctx.path()).arg("--metadata-file").arg(&meta_path).expect_ok();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    let steps = meta["rbuild.build.steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["name"].as_str().is_some_and(|n| n.contains("RUN head")) && s["cached"] == true)
    );
}

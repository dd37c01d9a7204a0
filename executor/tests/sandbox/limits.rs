//! Resource limits and accounting (the host's default hierarchy: cgroup v1 here).

use std::time::{Duration, Instant};

use executor::{ExitStatus, Limits};

use crate::harness::Sandbox;
use crate::require_root;

#[tokio::test]
async fn memory_hog_is_oom_killed() {
    require_root!();
    let sb = Sandbox::new();
    if sb.executor.cgroup_version().is_none() {
        eprintln!("skipped: no cgroup hierarchy");
        return;
    }
    let mut spec = sb.spec("dd if=/dev/zero of=/dev/null bs=64M count=1");
    spec.limits = Limits { memory_bytes: Some(32 << 20), ..Limits::default() };
    let ran = sb.run(spec).await;
    let outcome = ran.outcome();
    assert!(outcome.oom_killed, "{outcome:?} {}", ran.stderr);
    assert_eq!(outcome.exit, ExitStatus::Signal(9), "{} {}", ran.stdout, ran.stderr);
    assert!(sb.leftover_cgroups().is_empty(), "{:?}", sb.leftover_cgroups());

    // The same command fits without a limit, and the peak is reported.
    let ran = sb.run(sb.spec("dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null")).await;
    let outcome = ran.outcome();
    assert!(!outcome.oom_killed && outcome.exit.success(), "{outcome:?}");
    assert!(outcome.stats.peak_memory_bytes.unwrap() >= 64 << 20, "{:?}", outcome.stats);
}

#[tokio::test]
async fn pids_limit_contains_a_fork_bomb() {
    require_root!();
    let sb = Sandbox::new();
    if sb.executor.cgroup_version().is_none() {
        eprintln!("skipped: no cgroup hierarchy");
        return;
    }
    // A shell that cannot fork gives up, hence the subshell.
    let mut spec = sb.spec("(for i in $(seq 1 40); do sleep 1 & done; wait) 2>&1; echo done");
    spec.limits = Limits { pids: Some(16), ..Limits::default() };
    let ran = sb.run(spec).await;
    assert!(ran.ok().contains("done"));
    assert!(
        ran.stdout.contains("fork") || ran.stdout.contains("Resource temporarily unavailable"),
        "{}",
        ran.stdout
    );

    // A real fork bomb: contained by the pids limit, ended by the timeout.
    // The bomb starts in a subshell so that the main shell's only fork happens before the
    // pids limit is reached; it then waits (exec, no fork) for the timeout.
    let mut spec = sb.spec("(bomb() { bomb | bomb & }; bomb) & exec sleep 30");
    spec.limits = Limits { pids: Some(64), timeout: Some(Duration::from_secs(2)), ..Limits::default() };
    let started = Instant::now();
    let ran = sb.run(spec).await;
    let outcome = ran.outcome();
    assert!(outcome.timed_out, "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert!(sb.leftover_cgroups().is_empty(), "{:?}", sb.leftover_cgroups());
}

#[tokio::test]
async fn cpu_quota_throttles_and_time_is_accounted() {
    require_root!();
    let sb = Sandbox::new();
    if sb.executor.cgroup_version() != Some(1) {
        eprintln!("skipped: cpu quota is checked on the v1 hierarchy only (v2 here has no cpu controller)");
        return;
    }
    let mut spec = sb.spec("timeout 1 sh -c 'while :; do :; done'; true");
    spec.limits = Limits::default().with_cpus(0.2);
    let outcome = sb.run(spec).await.outcome().clone();
    let cpu = outcome.stats.cpu_time;
    assert!(cpu > Duration::from_millis(50) && cpu < Duration::from_millis(600), "cpu time {cpu:?}");
    assert!(outcome.stats.cpu_throttled_periods.unwrap_or(0) > 0, "{:?}", outcome.stats);
    assert!(outcome.stats.wall_time >= Duration::from_secs(1));
}

#[tokio::test]
async fn timeout_kills_and_reports() {
    require_root!();
    let sb = Sandbox::new();
    let mut spec = sb.spec("sleep 30");
    spec.limits.timeout = Some(Duration::from_millis(300));
    let started = Instant::now();
    let outcome = sb.run(spec).await.outcome().clone();
    assert!(outcome.timed_out);
    assert_eq!(outcome.exit, ExitStatus::Signal(9));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn without_cgroups_limits_are_refused_and_usage_comes_from_rusage() {
    require_root!();
    let sb = Sandbox::with_driver(executor::CgroupDriver::Disabled);
    assert_eq!(sb.executor.cgroup_version(), None);
    let ran = sb.run(sb.spec("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done")).await;
    let outcome = ran.outcome();
    assert!(outcome.exit.success());
    assert!(outcome.stats.cpu_time > Duration::ZERO, "{:?}", outcome.stats);
    assert!(outcome.stats.peak_memory_bytes.unwrap_or(0) > 0, "{:?}", outcome.stats);
    let mut spec = sb.spec("true");
    spec.limits.memory_bytes = Some(64 << 20);
    let result = sb.run(spec).await.result;
    assert!(
        matches!(result, Err(executor::ExecutorError::Cgroup(executor::CgroupError::Unavailable { .. }))),
        "{result:?}"
    );
}

#[tokio::test]
async fn the_run_sees_its_own_limits_read_only() {
    require_root!();
    let sb = Sandbox::new();
    let file = match sb.executor.cgroup_version() {
        Some(1) => "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        Some(2) => "/sys/fs/cgroup/memory.max",
        _ => {
            eprintln!("skipped: no cgroup hierarchy");
            return;
        }
    };
    let mut spec = sb.spec(&format!(
        "cat {file}; echo 1 > {file} 2>/dev/null; echo write=$?; grep -c cgroup /proc/self/mountinfo"
    ));
    spec.limits.memory_bytes = Some(96 << 20);
    let out = sb.run(spec).await.ok().to_owned();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], (96u64 << 20).to_string());
    assert_eq!(lines[1], "write=1");
    assert!(lines[2].parse::<u32>().unwrap() >= 1, "{out}");
}

#[tokio::test]
async fn child_cgroups_made_by_an_insecure_run_are_removed() {
    require_root!();
    let sb = Sandbox::new();
    let dir = match sb.executor.cgroup_version() {
        Some(1) => "/sys/fs/cgroup/pids",
        Some(2) => "/sys/fs/cgroup",
        _ => {
            eprintln!("skipped: no cgroup hierarchy");
            return;
        }
    };
    let mut spec = sb.spec(&format!("mkdir {dir}/sub && echo $$ > {dir}/sub/cgroup.procs && echo moved"));
    spec.insecure = true;
    assert_eq!(sb.run(spec).await.ok(), "moved\n");
    assert!(sb.leftover_cgroups().is_empty(), "{:?}", sb.leftover_cgroups());
}

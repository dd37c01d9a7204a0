//! The cgroup v2 path against a real cgroup2 mount (the unified hierarchy of this hybrid
//! host, or /sys/fs/cgroup on a v2 host).

use std::path::PathBuf;
use std::time::Duration;

use executor::{CgroupDriver, CgroupError, ExecutorError, Limits};
use tokio_util::sync::CancellationToken;

use crate::harness::{Sandbox, eventually, host_processes_with};
use crate::require_root;

fn cgroup2_mount() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        if post.split(' ').next()? != "cgroup2" {
            return None;
        }
        Some(PathBuf::from(pre.split(' ').nth(4)?))
    })
}

fn v2_sandbox() -> Option<(Sandbox, PathBuf)> {
    let Some(mount) = cgroup2_mount() else {
        eprintln!("skipped: no cgroup2 file system is mounted on this host");
        return None;
    };
    Some((Sandbox::with_driver(CgroupDriver::V2 { mount_point: mount.clone() }), mount))
}

#[tokio::test]
async fn v2_runs_in_its_own_cgroup_namespace() {
    require_root!();
    let Some((sb, _)) = v2_sandbox() else { return };
    assert_eq!(sb.executor.cgroup_version(), Some(2));
    let ran = sb
        .run(sb.spec("grep '^0::' /proc/self/cgroup; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"))
        .await;
    assert_eq!(ran.ok(), "0::/\n");
    let outcome = ran.outcome();
    // cpu.stat exists in every v2 cgroup, with or without the cpu controller.
    assert!(outcome.stats.cpu_time > Duration::ZERO, "{:?}", outcome.stats);
    assert!(sb.leftover_cgroups().is_empty(), "{:?}", sb.leftover_cgroups());
}

#[tokio::test]
async fn v2_cancel_uses_the_cgroup() {
    require_root!();
    let Some((sb, _)) = v2_sandbox() else { return };
    let marker = format!("sleep {}", 700_000 + std::process::id() % 1000);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let check = marker.clone();
    tokio::spawn(async move {
        eventually(10, || host_processes_with(&check).len() >= 2).await;
        trigger.cancel();
    });
    let ran = sb.run_with(sb.spec(&format!("{marker} & {marker}")), cancel).await;
    assert!(matches!(ran.result, Err(ExecutorError::Cancelled)), "{:?}", ran.result);
    assert!(host_processes_with(&marker).is_empty());
    assert!(sb.leftover_cgroups().is_empty(), "{:?}", sb.leftover_cgroups());
}

#[tokio::test]
async fn v2_limits_need_their_controller() {
    require_root!();
    let Some((sb, mount)) = v2_sandbox() else { return };
    let mut spec = sb.spec("true");
    spec.limits = Limits { pids: Some(10), ..Limits::default() };
    let controllers = std::fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
    let result = sb.run(spec).await.result;
    if controllers.split_whitespace().any(|c| c == "pids") {
        // A real v2 host: the limit applies (or delegation is refused with a clear error).
        match result {
            Ok(o) => assert!(o.exit.success()),
            Err(ExecutorError::Cgroup(e)) => eprintln!("pids not delegable here: {e}"),
            Err(e) => panic!("{e:?}"),
        }
    } else {
        // Hybrid host: the controllers live in v1, so a pids limit cannot be honoured.
        assert!(
            matches!(
                result,
                Err(ExecutorError::Cgroup(CgroupError::MissingController { controller: "pids", .. }))
            ),
            "{result:?}"
        );
    }
    assert!(sb.leftover_cgroups().is_empty(), "{:?}", sb.leftover_cgroups());
}

#[tokio::test]
async fn without_a_usable_cgroup_runs_warn_or_fail() {
    require_root!();
    let Some(mount) = cgroup2_mount() else {
        eprintln!("skipped: no cgroup2 file system is mounted on this host");
        return;
    };
    // A parent below a file cannot be created: runs without limits go ahead with a
    // warning, runs with limits fail.
    let sb = Sandbox::with_driver_and_parent(CgroupDriver::V2 { mount_point: mount }, "cgroup.procs/rbuild");
    let ran = sb.run(sb.spec("true")).await;
    let outcome = ran.outcome();
    assert!(outcome.exit.success());
    assert!(
        outcome.warnings.iter().any(|w| w.contains("running without a cgroup")),
        "{:?}",
        outcome.warnings
    );
    let mut spec = sb.spec("true");
    spec.limits = Limits { pids: Some(10), ..Limits::default() };
    assert!(matches!(sb.run(spec).await.result, Err(ExecutorError::Cgroup(_))));
}

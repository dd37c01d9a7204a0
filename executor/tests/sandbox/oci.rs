//! The OCI runtime backend (runc): the same sandbox through a bundle.

use std::time::Duration;

use executor::{ExecutorError, ExitStatus, Limits, Mount, MountKind};
use tokio_util::sync::CancellationToken;

use crate::harness::{Sandbox, eventually, host_processes_with};
use crate::require_root;

#[tokio::test]
async fn oci_exit_output_user_and_privileges() {
    require_root!();
    let Some(sb) = Sandbox::with_oci_runtime() else { return };
    assert_eq!(sb.run(sb.spec("exit 7")).await.outcome().exit, ExitStatus::Code(7));
    // The command is pid 1 of the container here (runc has no init), so it cannot kill
    // itself; a child killed by a signal comes back through the shell as 128+n.
    assert_eq!(sb.run(sb.spec("sh -c 'kill -KILL $$'; exit $?")).await.outcome().exit, ExitStatus::Signal(9));
    let grep = "hostname; id -u; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t ' ' '; ls -d /proc/[0-9]* | wc -l";
    let out = sb.sh(grep).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..5],
        ["buildkitsandbox", "0", "CapEff: 00000000a80425fb", "NoNewPrivs: 0", "Seccomp: 2"],
        "{out}"
    );
    let mut spec = sb.spec("id -u; id -G");
    spec.user = "app".into();
    assert_eq!(sb.run(spec).await.ok(), "1000\n1000 10 29\n");
    let mut spec = sb.spec("true");
    spec.user = "nobody".into();
    assert!(matches!(sb.run(spec).await.result, Err(ExecutorError::User { .. })));
    let mut spec = sb.spec("");
    spec.args = vec!["no-such-tool".into()];
    let result = sb.run(spec).await.result;
    assert!(matches!(&result, Err(ExecutorError::Exec { .. })), "{result:?}");
    assert!(sb.leftover_cgroups().is_empty(), "{:?}", sb.leftover_cgroups());
    assert_eq!(std::fs::read_dir(sb.path("state/runs")).unwrap().count(), 0);
}

#[tokio::test]
async fn oci_mounts_stubs_and_limits() {
    require_root!();
    let Some(sb) = Sandbox::with_oci_runtime() else { return };
    let cache = sb.path("cache");
    std::fs::create_dir(&cache).unwrap();
    let mut spec = sb.spec(
        "echo data > /mnt/cache/file; cat /etc/hosts | head -1; touch /etc/hosts 2>/dev/null; echo ro=$?",
    );
    spec.cwd = "/app".into();
    spec.mounts = vec![
        Mount { dest: "/mnt/cache".into(), kind: MountKind::Bind { source: cache.clone(), readonly: false } },
        Mount { dest: "/scratch".into(), kind: MountKind::Tmpfs { size: Some(1 << 20) } },
    ];
    let ran = sb.run(spec).await;
    assert_eq!(ran.ok(), "127.0.0.1\tlocalhost buildkitsandbox\nro=1\n");
    assert_eq!(std::fs::read_to_string(cache.join("file")).unwrap(), "data\n");
    let mut left: Vec<String> = std::fs::read_dir(sb.path("upper"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec!["app", "etc"], "mount stubs left in upper");
    assert!(sb.leftover_cgroups().is_empty(), "{:?}", sb.leftover_cgroups());
    assert_eq!(std::fs::read_dir(sb.path("state/runs")).unwrap().count(), 0);

    if sb.executor.cgroup_version() == Some(1) {
        let mut spec = sb.spec("dd if=/dev/zero of=/dev/null bs=64M count=1");
        spec.limits = Limits { memory_bytes: Some(32 << 20), ..Limits::default() };
        let ran = sb.run(spec).await;
        assert!(ran.outcome().oom_killed, "{:?} {}", ran.outcome(), ran.stderr);
        assert!(sb.leftover_cgroups().is_empty(), "{:?}", sb.leftover_cgroups());
    }
}

#[tokio::test]
async fn oci_cancel_kills_and_cleans_up() {
    require_root!();
    let Some(sb) = Sandbox::with_oci_runtime() else { return };
    let marker = format!("sleep {}", 600_000 + std::process::id() % 1000);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let check = marker.clone();
    tokio::spawn(async move {
        eventually(10, || host_processes_with(&check).len() >= 2).await;
        trigger.cancel();
    });
    let ran = sb.run_with(sb.spec(&format!("{marker} & {marker}")), cancel).await;
    assert!(matches!(ran.result, Err(ExecutorError::Cancelled)), "{:?}", ran.result);
    assert!(eventually(5, || host_processes_with(&marker).is_empty()).await, "sleeps survived");
    assert!(sb.leftover_cgroups().is_empty(), "{:?}", sb.leftover_cgroups());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(sb.path("state").to_str().unwrap()), "rootfs still mounted on the host");
    let _ = Duration::ZERO;
}

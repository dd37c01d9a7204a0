//! Cancellation and dropping the run: the whole tree dies, nothing is left behind.

use std::time::{Duration, Instant};

use executor::ExecutorError;
use tokio_util::sync::CancellationToken;

use crate::harness::{Sandbox, eventually, host_processes_with};
use crate::require_root;

#[tokio::test]
async fn cancel_kills_the_tree_and_cleans_up() {
    require_root!();
    let sb = Sandbox::new();
    let marker = format!("sleep {}", 900_000 + std::process::id() % 1000);
    let cancel = CancellationToken::new();
    let spec = sb.spec(&format!("{marker} & {marker} & ({marker}) & {marker}"));
    let trigger = cancel.clone();
    let check = marker.clone();
    tokio::spawn(async move {
        // Cancel once the tree is up.
        eventually(10, || host_processes_with(&check).len() >= 4).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let ran = sb.run_with(spec, cancel).await;
    assert!(matches!(ran.result, Err(ExecutorError::Cancelled)), "{:?}", ran.result);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(host_processes_with(&marker).is_empty(), "sleeps survived");
    assert!(sb.leftover_cgroups().is_empty(), "{:?}", sb.leftover_cgroups());
    assert_eq!(std::fs::read_dir(sb.path("state/runs")).unwrap().count(), 0, "run directory left");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(sb.path("state").to_str().unwrap()), "mount leaked to the host");
}

#[tokio::test]
async fn dropping_the_future_kills_the_tree() {
    require_root!();
    let sb = Sandbox::new();
    let marker = format!("sleep {}", 800_000 + std::process::id() % 1000);
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let spec = sb.spec(&format!("{marker} & {marker}"));
    let check = marker.clone();
    let run = sb.executor.run(spec, tx, CancellationToken::new());
    tokio::select! {
        r = run => panic!("run ended: {r:?}"),
        _ = eventually(10, || host_processes_with(&check).len() >= 2) => {}
    }
    // The run future is dropped here; a background thread finishes the cleanup.
    assert!(eventually(10, || host_processes_with(&marker).is_empty()).await, "sleeps survived");
    assert!(eventually(10, || sb.leftover_cgroups().is_empty()).await, "{:?}", sb.leftover_cgroups());
    assert!(eventually(10, || std::fs::read_dir(sb.path("state/runs")).unwrap().count() == 0).await);
}

#[tokio::test]
async fn concurrent_runs_are_independent() {
    require_root!();
    let sb = Sandbox::new();
    let mut runs = Vec::new();
    for i in 0..4 {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let mut spec = sb.spec(&format!("exit {i}"));
        let upper = sb.path(&format!("upper{i}"));
        let work = sb.path(&format!("work{i}"));
        std::fs::create_dir(&upper).unwrap();
        std::fs::create_dir(&work).unwrap();
        spec.rootfs = executor::Rootfs::Overlay { lower: vec![sb.path("lower")], upper, work };
        runs.push(sb.executor.run(spec, tx, CancellationToken::new()));
    }
    let results = futures_join_all(runs).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap().exit, executor::ExitStatus::Code(i as i32));
    }
}

async fn futures_join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    // Poll all together so that the runs overlap.
    let mut results: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if results[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => results[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.extend(results.into_iter().map(|r| r.unwrap()));
    out
}

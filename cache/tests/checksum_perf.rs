//! Timing of checksums and copies on a big tree (the `small-files` bench workload: 20,001
//! files, ~100 MB). Ignored by default; run with
//! `cargo test --release -p cache --test checksum_perf -- --ignored --nocapture`
//! after `../shared/bench/workloads/small-files/gen.sh` (or point `RBUILD_PERF_TREE` at any
//! directory).

use cache::checksum::{self, ChecksumCache, Selector};
use cache::fileop::{self, CopyAction, FileAction, SourceRoot};
use std::path::PathBuf;
use std::time::Instant;

fn perf_tree() -> Option<PathBuf> {
    let p = std::env::var_os("RBUILD_PERF_TREE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/rbuild-lab/ctx/small-files"));
    p.is_dir().then_some(p)
}

#[test]
#[ignore = "timing run on a large tree; see the module doc"]
fn small_files_checksum_timings() {
    let Some(root) = perf_tree() else {
        println!("skipping: no tree (run the small-files gen.sh or set RBUILD_PERF_TREE)");
        return;
    };
    let ctx = SourceRoot::context(&root, vec![]);
    let sel = Selector::path("/");

    // Cold: nothing remembered (the page cache is warm). Best of three.
    let mut cold_time = std::time::Duration::MAX;
    let mut cache = ChecksumCache::new();
    let mut cold = None;
    for _ in 0..3 {
        cache = ChecksumCache::new();
        let t = Instant::now();
        cold = Some(checksum::checksum(&ctx, &sel, &cache).unwrap());
        cold_time = cold_time.min(t.elapsed());
    }
    let cold = cold.unwrap();
    // The machine is shared: report the best of a few cached runs.
    let mut warm_time = std::time::Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let warm = checksum::checksum(&ctx, &sel, &cache).unwrap();
        warm_time = warm_time.min(t.elapsed());
        assert_eq!(cold, warm);
    }
    println!("checksum cold (no cache, best of 3): {cold_time:?}, entries read: {}", cache.misses());
    println!("checksum cached (best of 5): {warm_time:?}, entries served from cache: {}", cache.hits() / 5);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("checksums");
    let t = Instant::now();
    cache.save(&file).unwrap();
    let save_time = t.elapsed();
    let t = Instant::now();
    let loaded = ChecksumCache::load(&file).unwrap();
    let load_time = t.elapsed();
    let t = Instant::now();
    assert_eq!(checksum::checksum(&ctx, &sel, &loaded).unwrap(), cold);
    println!(
        "cache save {save_time:?}, load {load_time:?} ({} entries, {} bytes), checksum after load {:?}",
        loaded.len(),
        std::fs::metadata(&file).unwrap().len(),
        t.elapsed()
    );
}

#[test]
#[ignore = "timing run on a large tree; see the module doc"]
fn small_files_copy_timings() {
    let Some(root) = perf_tree() else {
        println!("skipping: no tree (run the small-files gen.sh or set RBUILD_PERF_TREE)");
        return;
    };
    let ctx = SourceRoot::context(&root, vec![]);
    let dest = tempfile::tempdir_in("/var/tmp").unwrap();
    let t = Instant::now();
    fileop::apply(dest.path(), &[ctx], &[FileAction::Copy(CopyAction::new(0, "/", "/copy/"))]).unwrap();
    let copy_time = t.elapsed();
    let cp_dest = dest.path().join("cp");
    let t = Instant::now();
    let status = std::process::Command::new("cp").arg("-a").arg(&root).arg(&cp_dest).status().unwrap();
    assert!(status.success());
    println!("fileop copy: {copy_time:?}; cp -a: {:?}", t.elapsed());
}

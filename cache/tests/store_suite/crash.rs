//! Crash safety and the store lock, with real processes: the test binary re-runs itself as
//! a child (selected by an environment variable) that opens the store and is then killed
//! or released.

use crate::support::{TarBuilder, TestStore, mounts_under, names, put_layer_blob, require_root};
use cache::{CacheRecord, PrunePolicy, Store, StoreError};
use registry::{Compression, Digest};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const CHILD_ENV: &str = "RBUILD_STORE_TEST_CHILD";

/// Not a test of its own: the body of the child processes the tests below start. Without
/// the environment variable (a normal test run) it returns at once.
#[test]
fn child_process_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let (mode, root) = spec.split_once(':').unwrap();
    let root = PathBuf::from(root);
    let store = Store::open(&root).unwrap();
    let say = |line: &str| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    };
    match mode {
        "hold" => {
            say("ready");
            // Hold the store until the parent closes our stdin.
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        }
        // "crash": the records live in the journal only; "crash-durable": a durable commit
        // (a tag, here a kv write) has flushed them into the database.
        "crash" | "crash-durable" => {
            let tar = TarBuilder::new().file("base/file", b"base", 0o644).finish();
            let (desc, diff_id) = put_layer_blob(&store, &tar, Compression::Gzip);
            let l1 = store.import_layer(&[], &desc, &diff_id).unwrap();
            store
                .meta()
                .put_cache(&Digest::of_bytes(b"k1"), &CacheRecord::new(vec![l1.clone()], "base"))
                .unwrap();
            if mode == "crash-durable" {
                store.meta().put_kv("test", "durable", b"1").unwrap();
            }
            let upper = store.new_layer().unwrap();
            let m = store.mount_writable(std::slice::from_ref(&l1), &upper).unwrap();
            std::fs::write(m.path().join("written"), b"w").unwrap();
            let loose = store.new_layer().unwrap();
            std::fs::write(loose.diff_dir().join("half"), b"h").unwrap();
            let _partial = store.content().writer().unwrap();
            say(&format!("ready {l1}"));
            std::thread::sleep(Duration::from_secs(600));
            drop((m, upper, loose));
        }
        "churn" => {
            say("ready");
            for i in 0u32.. {
                let mut b = TarBuilder::new();
                for f in 0..100 {
                    b.file(&format!("d{i}/f{f}"), format!("{i}-{f}").as_bytes(), 0o644);
                }
                let tar = b.finish();
                let (desc, diff_id) = put_layer_blob(&store, &tar, Compression::Gzip);
                let id = store.import_layer(&[], &desc, &diff_id).unwrap();
                let key = Digest::of_bytes(&i.to_le_bytes());
                store.meta().put_cache(&key, &CacheRecord::new(vec![id], format!("layer {i}"))).unwrap();
                let upper = store.new_layer().unwrap();
                std::fs::write(upper.diff_dir().join("x"), i.to_string()).unwrap();
                if i % 2 == 0 {
                    upper.commit().unwrap();
                }
            }
        }
        other => panic!("unknown child mode {other}"),
    }
}

struct ChildProc {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl ChildProc {
    fn start(mode: &str, root: &Path) -> ChildProc {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash::child_process_entry", "--nocapture", "--test-threads=1", "--quiet"])
            .env(CHILD_ENV, format!("{mode}:{}", root.display()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        ChildProc { child, out }
    }

    /// Waits for the child's "ready" line and returns what follows the word.
    fn ready(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(self.out.read_line(&mut line).unwrap() > 0, "child exited before it was ready");
            if let Some(rest) = line.trim_end().strip_prefix("ready") {
                return rest.trim().to_string();
            }
        }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_second_process_waits_for_the_store_lock() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let mut holder = ChildProc::start("hold", &root);
    holder.ready();
    let holder_pid = holder.child.id();

    let (notice_tx, notice_rx) = mpsc::channel();
    let (open_tx, open_rx) = mpsc::channel();
    let waiter_root = root.clone();
    let waiter = std::thread::spawn(move || {
        let store = Store::open_with_wait_notice(&waiter_root, |pid| notice_tx.send(pid).unwrap());
        open_tx.send(store.is_ok()).unwrap();
    });
    let pid = notice_rx.recv_timeout(Duration::from_secs(30)).expect("no wait notice");
    assert_eq!(pid, Some(holder_pid));
    assert!(
        open_rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "must wait while the child holds the lock"
    );

    drop(holder.child.stdin.take());
    holder.child.wait().unwrap();
    assert!(open_rx.recv_timeout(Duration::from_secs(30)).unwrap(), "opens once the holder exits");
    waiter.join().unwrap();
}

#[test]
fn opening_a_root_twice_in_one_process_is_an_error() {
    require_root!();
    let t = TestStore::new();
    assert!(matches!(Store::open(&t.root()), Err(StoreError::AlreadyOpen { .. })));
    let root = t.root();
    drop(t.store);
    let again = Store::open(&root).unwrap();
    drop(again);
}

#[test]
fn a_killed_process_leaves_a_recoverable_store() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let root = root.canonicalize().unwrap();
    let mut child = ChildProc::start("crash", &root);
    let l1: cache::LayerId = child.ready().parse().unwrap();
    child.kill();
    assert_eq!(mounts_under(&root.join("mnt")).len(), 1, "the killed process left its overlay mounted");
    assert_eq!(names(&root.join("layers")).len(), 3);

    let (store, recovery) = Store::open_with_recovery(&root).unwrap();
    assert_eq!(recovery.stale_mounts, 1);
    assert_eq!(recovery.uncommitted_layers, 2);
    assert_eq!(recovery.dropped_records, 0);
    assert!(
        recovery.replayed_records >= 2,
        "the layer and cache records come from the journal: {recovery:?}"
    );
    assert!(mounts_under(&root.join("mnt")).is_empty());
    assert!(names(&root.join("mnt")).is_empty());
    assert_eq!(names(&root.join("layers")), [l1.to_string()]);
    assert!(names(&root.join("blobs/tmp")).is_empty(), "partial blob writes are removed");
    let rec = store.meta().get_cache(&Digest::of_bytes(b"k1")).unwrap().unwrap();
    let m = store.mount_readonly(&rec.chain).unwrap();
    assert_eq!(std::fs::read(m.path().join("base/file")).unwrap(), b"base");
}

#[test]
fn killing_a_busy_process_at_any_point_keeps_the_store_consistent() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    for delay_ms in [30u64, 120, 350] {
        let mut child = ChildProc::start("churn", &root);
        child.ready();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill();
        let store = Store::open(&root).unwrap();
        assert_consistent(&store);
    }
    let store = Store::open(&root).unwrap();
    let report = store.prune(&PrunePolicy { all: true, ..Default::default() }).unwrap();
    assert!(!report.removed.is_empty());
    let usage = store.usage().unwrap();
    assert!(usage.records.is_empty());
    assert_eq!((usage.layers_bytes, usage.blobs_bytes, usage.unreferenced_bytes), (0, 0, 0));
    assert!(names(&store.root().join("layers")).is_empty());
}

/// Every record names present layers and blobs, every layer directory has a record, and
/// nothing is mounted.
fn assert_consistent(store: &Store) {
    let layers = store.meta().list_layers().unwrap();
    let mut on_disk = names(&store.root().join("layers"));
    let mut recorded: Vec<String> = layers.iter().map(|(id, _)| id.to_string()).collect();
    on_disk.sort();
    recorded.sort();
    assert_eq!(on_disk, recorded);
    for (id, rec) in &layers {
        assert!(store.layer_dir(id).is_dir());
        for b in &rec.blobs {
            assert!(store.content().contains(&b.descriptor.digest));
        }
    }
    for (key, rec) in store.meta().list_cache().unwrap() {
        for id in &rec.chain {
            assert!(store.meta().layer(id).unwrap().is_some(), "record {key} names missing layer {id}");
        }
    }
    assert!(mounts_under(&store.root().join("mnt")).is_empty());
    // Usage accounts for every byte: nothing is counted that is not on disk.
    let usage = store.usage().unwrap();
    assert!(usage.total_bytes >= usage.layers_bytes + usage.blobs_bytes);
}

#[test]
fn layers_not_flushed_before_a_power_failure_are_dropped() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let mut child = ChildProc::start("crash-durable", &root);
    let l1: cache::LayerId = child.ready().parse().unwrap();
    child.kill();
    // Pretend the machine rebooted since: the layer was recorded in another boot and its
    // files were never flushed, so they cannot be trusted.
    {
        const UNSYNCED: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("unsynced");
        let db = redb::Database::open(root.join("meta.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(UNSYNCED).unwrap();
            let ids: Vec<String> = {
                use redb::ReadableTable;
                t.iter().unwrap().map(|e| e.unwrap().0.value().to_string()).collect()
            };
            assert_eq!(ids, [l1.to_string()]);
            for id in ids {
                t.insert(id.as_str(), "an-earlier-boot").unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let (store, recovery) = Store::open_with_recovery(&root).unwrap();
    assert_eq!(recovery.unflushed_layers, 1);
    assert_eq!(recovery.uncommitted_layers, 2);
    assert_eq!(recovery.dropped_records, 1, "the cache record naming the lost layer");
    assert!(store.meta().layer(&l1).unwrap().is_none());
    assert!(store.meta().get_cache(&Digest::of_bytes(b"k1")).unwrap().is_none());
    assert!(names(&root.join("layers")).is_empty());
    assert!(mounts_under(&root.join("mnt")).is_empty());
}

#[test]
fn a_journal_from_an_earlier_boot_is_dropped_with_its_layers() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let mut child = ChildProc::start("crash", &root);
    child.ready();
    child.kill();
    // Pretend the machine rebooted since: what only the journal held was never flushed.
    let journal = root.join("meta.journal");
    let text = std::fs::read_to_string(&journal).unwrap();
    let (header, rest) = text.split_once('\n').unwrap();
    assert!(header.starts_with("rbuild-meta-journal 1 "), "{header}");
    std::fs::write(&journal, format!("rbuild-meta-journal 1 an-earlier-boot\n{rest}")).unwrap();
    let (store, recovery) = Store::open_with_recovery(&root).unwrap();
    assert_eq!(recovery.replayed_records, 0);
    assert_eq!(recovery.uncommitted_layers, 3, "{recovery:?}");
    assert!(store.meta().get_cache(&Digest::of_bytes(b"k1")).unwrap().is_none());
    assert!(names(&root.join("layers")).is_empty());
    assert_eq!(std::fs::metadata(&journal).unwrap().len(), 0);
}

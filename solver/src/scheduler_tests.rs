//! Scheduler behaviour against a small in-memory worker: parallelism, caching, failure.

use crate::error::SolveError;
use crate::ir::*;
use crate::key::{CacheKey, LocalSelection};
use crate::progress::{Event, ProgressSink};
use crate::scheduler::{SolveOptions, Solver, Step, Worker};
use registry::{Digest, Platform};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct FakeWorker {
    files: Mutex<HashMap<String, String>>,
    store: Mutex<HashMap<Digest, String>>,
    spans: Mutex<Vec<(String, Instant, Instant)>>,
}

impl Worker for FakeWorker {
    type Output = String;

    fn checksum_local(
        &self,
        _source: &LocalSource,
        selection: &LocalSelection,
    ) -> Result<Digest, SolveError> {
        let files = self.files.lock().unwrap();
        let content = files.get(&selection.path).cloned().unwrap_or_default();
        Ok(Digest::of_bytes(content.as_bytes()))
    }
    fn load(&self, key: &CacheKey, _vertex: &Vertex) -> Result<Option<String>, SolveError> {
        Ok(self.store.lock().unwrap().get(&key.key).cloned())
    }
    fn save(&self, key: &CacheKey, _vertex: &Vertex, output: &String) -> Result<(), SolveError> {
        self.store.lock().unwrap().insert(key.key.clone(), output.clone());
        Ok(())
    }
    fn cacheable(&self, vertex: &Vertex) -> bool {
        !matches!(vertex.op, Op::Source(Source::Local(_)))
    }
    async fn execute(&self, step: Step, vertex: Vertex, inputs: Vec<String>) -> Result<String, SolveError> {
        let start = Instant::now();
        let out = match &vertex.op {
            Op::Exec(e) => {
                let cmd = e.args.join(" ");
                if let Some(ms) = cmd.strip_prefix("sleep ") {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())) => {}
                        _ = step.cancel.cancelled() => return Err(SolveError::Cancelled),
                    }
                }
                if cmd == "fail" {
                    return Err(SolveError::ProcessFailed {
                        step: step.name,
                        command: cmd,
                        end: crate::ProcessEnd::Code(1),
                        tail: vec![],
                        location: None,
                    });
                }
                format!("{}+{}", inputs.join(","), cmd)
            }
            other => format!("{}({})", other.kind(), inputs.join(",")),
        };
        self.spans.lock().unwrap().push((step.name.clone(), start, Instant::now()));
        Ok(out)
    }
}

fn exec(g: &mut Graph, root: VertexId, cmd: &str) -> VertexId {
    exec_with(g, root, cmd, false)
}

fn exec_with(g: &mut Graph, root: VertexId, cmd: &str, ignore_cache: bool) -> VertexId {
    let op = Op::Exec(Exec {
        args: cmd.split(' ').map(String::from).collect(),
        env: vec![],
        cwd: "/".into(),
        user: String::new(),
        mounts: vec![ExecMount {
            input: Some(0),
            selector: String::new(),
            dest: "/".into(),
            readonly: false,
            kind: MountKind::Layer,
        }],
        network: Network::Host,
        security: Security::Sandbox,
        hostname: None,
        extra_hosts: vec![],
        platform: Platform::host(),
        proxy_env: vec![],
    });
    g.add(op, vec![root], VertexMeta { name: cmd.into(), ignore_cache, ..Default::default() }).unwrap()
}

fn base(g: &mut Graph) -> VertexId {
    let op = Op::File(FileOp { base: None, actions: vec![] });
    g.add(op, vec![], VertexMeta { name: "base".into(), ..Default::default() }).unwrap()
}

fn copy_from_context(g: &mut Graph, dest: VertexId, path: &str) -> VertexId {
    let ctx = g
        .add(
            Op::Source(Source::Local(LocalSource { name: "context".into(), excludes: vec![] })),
            vec![],
            VertexMeta::default(),
        )
        .unwrap();
    let op = Op::File(FileOp {
        base: Some(0),
        actions: vec![FileAction::Copy(Copy {
            source: 1,
            src: path.into(),
            dest: "/".into(),
            owner: None,
            mode: None,
            follow_symlinks: true,
            dir_copy_contents: true,
            attempt_unpack: false,
            create_dest_path: true,
            allow_wildcard: true,
            allow_empty_wildcard: false,
            include_patterns: vec![],
            exclude_patterns: vec![],
            parents: false,
            always_replace_existing: false,
            timestamp: None,
        })],
    });
    g.add(op, vec![dest, ctx], VertexMeta { name: format!("COPY {path}"), ..Default::default() }).unwrap()
}

fn solver(worker: &Arc<FakeWorker>) -> (Solver<FakeWorker>, tokio::sync::mpsc::UnboundedReceiver<Event>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let opts = SolveOptions { max_parallel_exec: 4, ignore_cache: false };
    (Solver::new(worker.clone(), ProgressSink::new(tx), opts), rx)
}

#[tokio::test]
async fn independent_vertices_overlap_in_time() {
    let worker = Arc::new(FakeWorker::default());
    let mut g = Graph::new();
    let b = base(&mut g);
    let a = exec(&mut g, b, "sleep 200");
    let c = exec(&mut g, b, "sleep 201");
    let g = Arc::new(g);
    let (s, _rx) = solver(&worker);
    let started = Instant::now();
    let sol = s.solve(g, &[a, c], CancellationToken::new()).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(380), "took {:?}", started.elapsed());
    assert_eq!(sol.ran.len(), 3);
    let spans = worker.spans.lock().unwrap();
    let find = |n: &str| spans.iter().find(|s| s.0 == n).unwrap().clone();
    let (x, y) = (find("sleep 200"), find("sleep 201"));
    assert!(x.1 < y.2 && y.1 < x.2, "spans do not overlap");
}

#[tokio::test]
async fn second_solve_is_fully_cached_and_reports_every_step() {
    let worker = Arc::new(FakeWorker::default());
    let mut g = Graph::new();
    let b = base(&mut g);
    let one = exec(&mut g, b, "echo one");
    let two = exec(&mut g, one, "echo two");
    let g = Arc::new(g);
    let (s, _rx) = solver(&worker);
    let first = s.solve(g.clone(), &[two], CancellationToken::new()).await.unwrap();
    let (s, mut rx) = solver(&worker);
    let second = s.solve(g, &[two], CancellationToken::new()).await.unwrap();
    assert_eq!(first.outputs, second.outputs);
    assert!(second.ran.is_empty());
    let mut cached = 0;
    while let Ok(ev) = rx.try_recv() {
        assert!(!matches!(ev, Event::Started { .. }), "{ev:?}");
        cached += matches!(ev, Event::Cached { .. }) as usize;
    }
    assert_eq!(cached, 3);
}

#[tokio::test]
async fn context_edits_rerun_only_steps_that_select_the_file() {
    let worker = Arc::new(FakeWorker::default());
    worker.files.lock().unwrap().insert("a.txt".into(), "A".into());
    worker.files.lock().unwrap().insert("b.txt".into(), "B".into());
    let mut g = Graph::new();
    let b = base(&mut g);
    let ca = copy_from_context(&mut g, b, "a.txt");
    let run = exec(&mut g, ca, "echo after-a");
    let cb = copy_from_context(&mut g, run, "b.txt");
    let g = Arc::new(g);
    let (s, _) = solver(&worker);
    s.solve(g.clone(), &[cb], CancellationToken::new()).await.unwrap();

    // Editing b.txt re-runs only the COPY of b.txt.
    worker.files.lock().unwrap().insert("b.txt".into(), "B2".into());
    let (s, _) = solver(&worker);
    let sol = s.solve(g.clone(), &[cb], CancellationToken::new()).await.unwrap();
    let names: Vec<&str> = sol.ran.iter().map(|v| g.vertex(*v).meta.name.as_str()).collect();
    assert!(names.contains(&"COPY b.txt") && !names.contains(&"echo after-a"), "{names:?}");

    // Editing a.txt re-runs everything from the COPY of a.txt.
    worker.files.lock().unwrap().insert("a.txt".into(), "A2".into());
    let (s, _) = solver(&worker);
    let sol = s.solve(g.clone(), &[cb], CancellationToken::new()).await.unwrap();
    let names: Vec<&str> = sol.ran.iter().map(|v| g.vertex(*v).meta.name.as_str()).collect();
    assert!(
        names.contains(&"COPY a.txt") && names.contains(&"echo after-a") && names.contains(&"COPY b.txt")
    );
}

#[tokio::test]
async fn a_failure_cancels_running_siblings_and_is_reported() {
    let worker = Arc::new(FakeWorker::default());
    let mut g = Graph::new();
    let b = base(&mut g);
    let slow = exec(&mut g, b, "sleep 5000");
    let bad = exec(&mut g, b, "fail");
    let g = Arc::new(g);
    let (s, _) = solver(&worker);
    let started = Instant::now();
    let err = s.solve(g, &[slow, bad], CancellationToken::new()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(err, SolveError::ProcessFailed { .. }), "{err}");
    assert_eq!(err.to_string(), "process \"fail\" did not complete successfully: exit code: 1");
}

#[tokio::test]
async fn no_cache_runs_everything_again() {
    let worker = Arc::new(FakeWorker::default());
    let mut g = Graph::new();
    let b = base(&mut g);
    let one = exec(&mut g, b, "echo one");
    let g = Arc::new(g);
    let (s, _) = solver(&worker);
    s.solve(g.clone(), &[one], CancellationToken::new()).await.unwrap();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let s = Solver::new(
        worker.clone(),
        ProgressSink::new(tx),
        SolveOptions { max_parallel_exec: 1, ignore_cache: true },
    );
    let sol = s.solve(g, &[one], CancellationToken::new()).await.unwrap();
    assert_eq!(sol.ran.len(), 2);
}

/// `--no-cache-filter`: the bypassed step runs again and so does what is built on it, while
/// the steps before it stay cached.
#[tokio::test]
async fn a_bypassed_step_reruns_its_dependents_too() {
    let worker = Arc::new(FakeWorker::default());
    let graph = |bypass: bool| {
        let mut g = Graph::new();
        let b = base(&mut g);
        let one = exec(&mut g, b, "echo one");
        let two = exec_with(&mut g, one, "echo two", bypass);
        let three = exec(&mut g, two, "echo three");
        (Arc::new(g), three)
    };
    let (g, target) = graph(false);
    let (s, _) = solver(&worker);
    s.solve(g, &[target], CancellationToken::new()).await.unwrap();
    let (g, target) = graph(true);
    let (s, _) = solver(&worker);
    let sol = s.solve(g.clone(), &[target], CancellationToken::new()).await.unwrap();
    let names = |vs: &[VertexId]| vs.iter().map(|v| g.vertex(*v).meta.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&sol.ran), ["echo two", "echo three"]);
    assert_eq!(names(&sol.cached), ["base", "echo one"]);
}

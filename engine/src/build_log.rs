//! Build history: every build's summary and the full output of each of its steps, kept in
//! the store (`<root>/builds/<id>/`) so that `rbuild builds` lists recent builds and
//! `rbuild logs` prints a step's output unclipped. The most recent builds are kept
//! ([`KEEP_BUILDS`]); `rbuild prune --all` removes the rest.
//!
//! Steps are numbered in the order they first appear in the event stream, exactly as the
//! plain progress output numbers them (`#5`), so `rbuild logs --step 5` is the `#5` the user saw.

use serde::{Deserialize, Serialize};
use solver::progress::{Event, ProgressSink};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How many builds' logs are kept.
pub const KEEP_BUILDS: usize = 50;

/// One step of a recorded build.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StepSummary {
    /// `#N` in the progress output.
    pub number: usize,
    /// Display name.
    pub name: String,
    /// `cached`, `done`, `failed`, `cancelled` or `running` (never finished).
    pub status: String,
    /// Seconds it ran.
    pub seconds: Option<f64>,
    /// Bytes of output kept.
    pub log_bytes: u64,
}

/// One recorded build.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BuildSummary {
    /// Build id (sortable by time).
    pub id: String,
    /// Start, Unix seconds.
    pub started_unix: i64,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Context directory.
    pub context: String,
    /// Dockerfile name.
    pub dockerfile: String,
    /// `--target`, if any.
    pub target: Option<String>,
    /// The image ID on success.
    pub image_id: Option<String>,
    /// The error on failure.
    pub error: Option<String>,
    /// Steps that ran.
    pub steps_ran: usize,
    /// Steps served from the cache.
    pub steps_cached: usize,
    /// Every step.
    pub steps: Vec<StepSummary>,
}

/// Why build logs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BuildLogError {
    /// No build with this id (or no build at all).
    #[error("no build {0:?} in the store (see `rbuild builds`)")]
    NotFound(String),
    /// No step with this number in the build.
    #[error("build {build} has no step #{step}")]
    NoStep {
        /// The build.
        build: String,
        /// The step asked for.
        step: usize,
    },
    /// Reading the files failed.
    #[error("build logs {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildLogError + '_ {
    move |source| BuildLogError::Io { path: path.to_path_buf(), source }
}

/// Collects one build's events into its directory.
pub(crate) struct Recorder {
    dir: PathBuf,
    numbers: HashMap<String, usize>,
    steps: Vec<StepSummary>,
    logs: HashMap<usize, std::fs::File>,
}

impl Recorder {
    fn new(dir: PathBuf) -> Recorder {
        Recorder { dir, numbers: HashMap::new(), steps: Vec::new(), logs: HashMap::new() }
    }

    fn number(&mut self, step: &str, name: Option<&str>) -> usize {
        if let Some(n) = self.numbers.get(step) {
            return *n;
        }
        let n = self.steps.len() + 1;
        self.numbers.insert(step.to_string(), n);
        self.steps.push(StepSummary {
            number: n,
            name: name.unwrap_or_default().to_string(),
            status: "running".into(),
            seconds: None,
            log_bytes: 0,
        });
        n
    }

    fn observe(&mut self, event: &Event) {
        match event {
            Event::Started { step, name, .. } => {
                self.number(step, Some(name));
            }
            Event::Cached { step, name } => {
                let n = self.number(step, Some(name));
                self.steps[n - 1].status = "cached".into();
            }
            Event::Log { step, data, .. } => {
                let n = self.number(step, None);
                let file = self.logs.entry(n).or_insert_with(|| {
                    let path = self.dir.join(format!("step-{n}.log"));
                    std::fs::File::create(path).unwrap_or_else(|_| {
                        std::fs::File::create("/dev/null").expect("/dev/null opens for writing")
                    })
                });
                if file.write_all(data).is_ok() {
                    self.steps[n - 1].log_bytes += data.len() as u64;
                }
            }
            Event::Done { step, seconds, .. } => {
                let n = self.number(step, None);
                self.steps[n - 1].status = "done".into();
                self.steps[n - 1].seconds = Some(*seconds);
            }
            Event::Failed { step, .. } => {
                let n = self.number(step, None);
                self.steps[n - 1].status = "failed".into();
            }
            Event::Cancelled { step } => {
                let n = self.number(step, None);
                self.steps[n - 1].status = "cancelled".into();
            }
            Event::Transfer { .. } | Event::Warning { .. } | Event::Note { .. } => {}
        }
    }
}

/// The build logs of a store.
pub struct BuildLogs {
    dir: PathBuf,
}

/// A build being recorded: events sent to [`Recording::sink`] are kept and forwarded.
pub(crate) struct Recording {
    /// Where the build sends its events.
    pub sink: ProgressSink,
    task: tokio::task::JoinHandle<Recorder>,
    id: String,
    dir: PathBuf,
    started: std::time::Instant,
    started_unix: i64,
}

impl BuildLogs {
    /// The build logs under `root/builds`.
    pub fn new(root: &Path) -> BuildLogs {
        BuildLogs { dir: root.join("builds") }
    }

    /// Starts recording a build whose events also go to `forward`.
    pub(crate) fn start(&self, forward: ProgressSink) -> Recording {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let id = format!("{}-{:06}", now.as_secs(), now.subsec_micros());
        let dir = self.dir.join(&id);
        let _ = std::fs::create_dir_all(&dir);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
        let mut recorder = Recorder::new(dir.clone());
        let task = tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                recorder.observe(&event);
                forward.send(event);
            }
            recorder
        });
        Recording {
            sink: ProgressSink::new(tx),
            task,
            id,
            dir,
            started: std::time::Instant::now(),
            started_unix: now.as_secs() as i64,
        }
    }

    /// Recorded builds, newest first.
    pub fn list(&self) -> Result<Vec<BuildSummary>, BuildLogError> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(BuildLogError::Io { path: self.dir.clone(), source: e }),
        };
        for entry in entries.flatten() {
            if let Ok(bytes) = std::fs::read(entry.path().join("build.json"))
                && let Ok(summary) = serde_json::from_slice::<BuildSummary>(&bytes)
            {
                out.push(summary);
            }
        }
        out.sort_by(|a, b| b.id.cmp(&a.id));
        Ok(out)
    }

    /// The build `id` (a unique prefix is enough), or the newest when `None`.
    pub fn get(&self, id: Option<&str>) -> Result<BuildSummary, BuildLogError> {
        let all = self.list()?;
        let found: Vec<&BuildSummary> = match id {
            None => all.iter().take(1).collect(),
            Some(id) => all.iter().filter(|b| b.id.starts_with(id)).collect(),
        };
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            _ => Err(BuildLogError::NotFound(id.unwrap_or("latest").to_string())),
        }
    }

    /// The full output of step `number` of build `id`.
    pub fn step_log(&self, id: &str, number: usize) -> Result<Vec<u8>, BuildLogError> {
        let build = self.get(Some(id))?;
        if !build.steps.iter().any(|s| s.number == number) {
            return Err(BuildLogError::NoStep { build: build.id, step: number });
        }
        let path = self.dir.join(&build.id).join(format!("step-{number}.log"));
        match std::fs::read(&path) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Removes all but the newest `keep` builds.
    pub fn retain(&self, keep: usize) -> Result<usize, BuildLogError> {
        let mut ids: Vec<String> = match std::fs::read_dir(&self.dir) {
            Ok(e) => e.flatten().filter_map(|e| e.file_name().into_string().ok()).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(BuildLogError::Io { path: self.dir.clone(), source: e }),
        };
        ids.sort();
        let remove = ids.len().saturating_sub(keep);
        for id in &ids[..remove] {
            let path = self.dir.join(id);
            std::fs::remove_dir_all(&path).map_err(io(&path))?;
        }
        Ok(remove)
    }
}

/// What a finished build adds to its summary.
pub(crate) struct Finish<'a> {
    pub context: &'a Path,
    pub dockerfile: &'a str,
    pub target: Option<&'a str>,
    pub image_id: Option<String>,
    pub error: Option<String>,
    pub steps_ran: usize,
    pub steps_cached: usize,
}

impl Recording {
    /// The build's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Waits for the last event and writes the summary.
    pub async fn finish(self, finish: Finish<'_>) -> Option<BuildSummary> {
        let Recording { sink, task, id, dir, started, started_unix } = self;
        drop(sink);
        let recorder = task.await.ok()?;
        let summary = BuildSummary {
            id,
            started_unix,
            seconds: started.elapsed().as_secs_f64(),
            context: finish.context.display().to_string(),
            dockerfile: finish.dockerfile.to_string(),
            target: finish.target.map(str::to_string),
            image_id: finish.image_id,
            error: finish.error,
            steps_ran: finish.steps_ran,
            steps_cached: finish.steps_cached,
            steps: recorder.steps,
        };
        let bytes = serde_json::to_vec_pretty(&summary).ok()?;
        std::fs::write(dir.join("build.json"), bytes).ok()?;
        Some(summary)
    }
}

//! `--metadata-file FILE`: docker buildx's build result as JSON (image digests and names),
//! plus rbuild's per-step record (cached or run, seconds, peak memory, CPU time) under
//! `rbuild.build.steps`.

use engine::BuildOutcome;
use serde_json::{Map, Value, json};
use solver::progress::{Event, StepStats};
use std::path::Path;

/// What one step did, as progress events told it.
#[derive(Debug, Default, Clone)]
struct StepRecord {
    id: String,
    name: String,
    cached: bool,
    seconds: Option<f64>,
    stats: StepStats,
    error: Option<String>,
}

/// Collects per-step records from the progress stream.
#[derive(Debug, Default)]
pub struct StepRecorder {
    steps: Vec<StepRecord>,
}

impl StepRecorder {
    fn record(&mut self, id: &str) -> &mut StepRecord {
        let index = match self.steps.iter().position(|s| s.id == id) {
            Some(i) => i,
            None => {
                self.steps.push(StepRecord { id: id.to_string(), ..StepRecord::default() });
                self.steps.len() - 1
            }
        };
        &mut self.steps[index]
    }

    /// Takes one progress event into account.
    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::Started { step, name, .. } => self.record(step).name = name.clone(),
            Event::Cached { step, name } => {
                let r = self.record(step);
                r.name = name.clone();
                r.cached = true;
            }
            Event::Done { step, seconds, stats, .. } => {
                let r = self.record(step);
                r.seconds = Some(*seconds);
                r.stats = *stats;
            }
            Event::Failed { step, message, .. } => self.record(step).error = Some(message.clone()),
            _ => {}
        }
    }

    fn to_json(&self) -> Value {
        let steps: Vec<Value> = self
            .steps
            .iter()
            .filter(|s| !s.name.is_empty())
            .map(|s| {
                let mut o = Map::new();
                o.insert("step".into(), json!(s.id));
                o.insert("name".into(), json!(s.name));
                o.insert("cached".into(), json!(s.cached));
                if let Some(secs) = s.seconds {
                    o.insert("seconds".into(), json!(secs));
                }
                if let Some(peak) = s.stats.peak_memory_bytes {
                    o.insert("peak_memory_bytes".into(), json!(peak));
                }
                if let Some(cpu) = s.stats.cpu_usec {
                    o.insert("cpu_usec".into(), json!(cpu));
                }
                if let Some(e) = &s.error {
                    o.insert("error".into(), json!(e));
                }
                Value::Object(o)
            })
            .collect();
        Value::Array(steps)
    }
}

/// The metadata document of a finished build.
pub fn document(outcome: &BuildOutcome, steps: &StepRecorder) -> Value {
    let mut doc = Map::new();
    doc.insert("containerimage.config.digest".into(), json!(outcome.image_id.as_str()));
    doc.insert(
        "containerimage.descriptor".into(),
        serde_json::to_value(&outcome.manifest).unwrap_or(Value::Null),
    );
    doc.insert("containerimage.digest".into(), json!(outcome.manifest.digest.as_str()));
    if !outcome.names.is_empty() {
        doc.insert("image.name".into(), json!(outcome.names.join(",")));
    }
    doc.insert("rbuild.build.steps".into(), steps.to_json());
    Value::Object(doc)
}

/// Writes the metadata document to `path` (replacing it atomically).
pub fn write(path: &Path, outcome: &BuildOutcome, steps: &StepRecorder) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(&document(outcome, steps)).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("rbuild-tmp");
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn steps_from_events() {
        let mut r = StepRecorder::default();
        let stats = StepStats { peak_memory_bytes: Some(4096), cpu_usec: Some(1500) };
        for e in [
            Event::Started { step: "sha256:a".into(), name: "[1/2] FROM x".into(), at: SystemTime::now() },
            Event::Cached { step: "sha256:b".into(), name: "[2/2] COPY a /".into() },
            Event::Done { step: "sha256:a".into(), at: SystemTime::now(), seconds: 0.5, stats },
        ] {
            r.observe(&e);
        }
        assert_eq!(
            r.to_json(),
            json!([
                {"step": "sha256:a", "name": "[1/2] FROM x", "cached": false, "seconds": 0.5,
                 "peak_memory_bytes": 4096, "cpu_usec": 1500},
                {"step": "sha256:b", "name": "[2/2] COPY a /", "cached": true},
            ])
        );
    }
}

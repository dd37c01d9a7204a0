//! `--trace FILE`: the build as a Chrome trace-event JSON file (opens in Perfetto or
//! `chrome://tracing`). Each step is a complete event (`ph: X`) on a lane (`tid`) of its own
//! while it overlaps others, so parallel work shows as parallel tracks; cached steps are
//! instant events. Arguments carry the cache status and resource use.

use super::Renderer;
use serde_json::{Value, json};
use solver::progress::Event;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

fn micros(t: &SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Wraps another renderer and writes the trace when the build ends.
pub struct Trace {
    inner: Box<dyn Renderer>,
    path: PathBuf,
    started: HashMap<String, (String, u64)>,
    /// End time of the last span on each lane.
    lanes: Vec<u64>,
    events: Vec<Value>,
}

impl Trace {
    /// A trace written to `path`, passing every event on to `inner`.
    pub fn new(inner: Box<dyn Renderer>, path: PathBuf) -> Trace {
        Trace { inner, path, started: HashMap::new(), lanes: Vec::new(), events: Vec::new() }
    }

    fn lane(&mut self, start: u64, end: u64) -> usize {
        match self.lanes.iter().position(|free_at| *free_at <= start) {
            Some(i) => {
                self.lanes[i] = end;
                i
            }
            None => {
                self.lanes.push(end);
                self.lanes.len() - 1
            }
        }
    }

    fn span(&mut self, step: &str, end: u64, status: &str, args: Value) {
        let Some((name, start)) = self.started.remove(step) else { return };
        let lane = self.lane(start, end);
        self.events.push(json!({
            "name": name, "cat": "step", "ph": "X", "ts": start, "dur": end.saturating_sub(start),
            "pid": 1, "tid": lane + 1,
            "args": { "status": status, "step": step, "details": args },
        }));
    }
}

impl Renderer for Trace {
    fn event(&mut self, event: &Event) {
        match event {
            Event::Started { step, name, at } => {
                self.started.insert(step.clone(), (name.clone(), micros(at)));
            }
            Event::Cached { step, name } => {
                let now = micros(&SystemTime::now());
                self.events.push(json!({
                    "name": name, "cat": "step", "ph": "i", "s": "g", "ts": now, "pid": 1, "tid": 0,
                    "args": { "status": "cached", "step": step },
                }));
            }
            Event::Done { step, at, stats, .. } => {
                let args =
                    json!({ "peak_memory_bytes": stats.peak_memory_bytes, "cpu_usec": stats.cpu_usec });
                self.span(step, micros(at), "done", args);
            }
            Event::Failed { step, at, message } => {
                self.span(step, micros(at), "failed", json!({ "error": message }))
            }
            Event::Cancelled { step } => {
                self.span(step, micros(&SystemTime::now()), "cancelled", Value::Null)
            }
            _ => {}
        }
        self.inner.event(event);
    }

    fn finish(&mut self) {
        self.inner.finish();
        let mut events = std::mem::take(&mut self.events);
        events
            .push(json!({ "name": "process_name", "ph": "M", "pid": 1, "args": { "name": "rbuild build" } }));
        events.push(
            json!({ "name": "thread_name", "ph": "M", "pid": 1, "tid": 0, "args": { "name": "cached" } }),
        );
        for lane in 0..self.lanes.len() {
            events.push(json!({ "name": "thread_name", "ph": "M", "pid": 1, "tid": lane + 1,
                "args": { "name": format!("lane {}", lane + 1) } }));
        }
        let doc = json!({ "traceEvents": events, "displayTimeUnit": "ms" });
        if let Err(e) = std::fs::write(&self.path, doc.to_string()) {
            eprintln!("warning: cannot write trace {}: {e}", self.path.display());
        }
    }
}

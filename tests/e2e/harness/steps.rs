//! What a build did, read from its `--progress rawjson` events: which graph steps ran, which
//! were served from the cache, and the `--explain` note.

use super::rbuild::Outcome;
use serde_json::Value;

/// The steps of one build.
#[derive(Clone, Debug, Default)]
pub struct Steps {
    /// Names of graph steps that ran, in start order.
    pub ran: Vec<String>,
    /// Names of graph steps served from the cache.
    pub cached: Vec<String>,
    /// `note` events (the `--explain` line among them).
    pub notes: Vec<String>,
    /// Every event.
    pub events: Vec<Value>,
}

impl Steps {
    /// Reads the events of a `--progress rawjson` run. Graph steps are named by their vertex
    /// digest; resolving, exporting and loading the context have other ids or run every time.
    pub fn of(outcome: &Outcome) -> Steps {
        let mut steps = Steps { events: outcome.events(), ..Steps::default() };
        for e in &steps.events {
            let name = e["name"].as_str().unwrap_or_default().to_string();
            let is_vertex = e["step"].as_str().is_some_and(|s| s.starts_with("sha256:"))
                && !name.starts_with("[internal]");
            match e["event"].as_str() {
                Some("started") if is_vertex => steps.ran.push(name),
                Some("cached") if is_vertex => steps.cached.push(name),
                Some("note") => steps.notes.push(e["message"].as_str().unwrap_or_default().to_string()),
                _ => {}
            }
        }
        steps
    }

    /// How many steps whose name contains `needle` ran.
    pub fn runs_of(&self, needle: &str) -> usize {
        self.ran.iter().filter(|n| n.contains(needle)).count()
    }

    /// The `--explain` line (`cache miss: ...`), if the build explained a miss.
    pub fn explanation(&self) -> Option<&str> {
        self.notes.iter().map(String::as_str).find(|n| n.starts_with("cache miss:"))
    }
}

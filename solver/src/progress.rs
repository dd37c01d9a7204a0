//! Progress events: one typed stream per build, rendered by the CLI (tty, plain, rawjson)
//! and forwarded unchanged by the daemon.

use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// Identifies a progress step: a vertex digest, or a synthetic id for work outside the graph
/// (`export`, `push`, `resolve:<image>`).
pub type StepId = String;

/// Which output stream a log chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Resource use of one step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepStats {
    /// Peak memory in bytes, when measured.
    pub peak_memory_bytes: Option<u64>,
    /// CPU time (user + system) in microseconds, when measured.
    pub cpu_usec: Option<u64>,
}

/// One progress event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A step started running.
    Started {
        /// Step.
        step: StepId,
        /// Display name (`[build 2/4] RUN make`).
        name: String,
        /// Wall-clock start.
        at: SystemTime,
    },
    /// A step was served from the cache without running.
    Cached {
        /// Step.
        step: StepId,
        /// Display name.
        name: String,
    },
    /// A step finished successfully.
    Done {
        /// Step.
        step: StepId,
        /// Wall-clock end.
        at: SystemTime,
        /// Duration in seconds.
        seconds: f64,
        /// Resource use, when measured.
        stats: StepStats,
    },
    /// A step failed.
    Failed {
        /// Step.
        step: StepId,
        /// Wall-clock end.
        at: SystemTime,
        /// Why.
        message: String,
    },
    /// A step was cancelled because another failed or the user interrupted.
    Cancelled {
        /// Step.
        step: StepId,
    },
    /// Output of a running step.
    Log {
        /// Step.
        step: StepId,
        /// Stream.
        stream: LogStream,
        /// Raw bytes (usually whole lines).
        data: Vec<u8>,
    },
    /// Byte progress of a transfer inside a step (pull, push, export).
    Transfer {
        /// Step.
        step: StepId,
        /// What is transferred (a layer digest, a file name).
        item: String,
        /// Bytes done.
        current: u64,
        /// Total bytes, when known.
        total: Option<u64>,
    },
    /// A warning to show at the end of the build.
    Warning {
        /// The message.
        message: String,
    },
    /// Information for the user shown as it happens (e.g. why a step missed the cache).
    Note {
        /// The message.
        message: String,
    },
}

/// Where events go. Cheap to clone; sending never blocks and never fails the build (a
/// closed receiver just drops events).
#[derive(Clone, Debug)]
pub struct ProgressSink {
    tx: Option<tokio::sync::mpsc::UnboundedSender<Event>>,
}

impl ProgressSink {
    /// A sink feeding `tx`.
    pub fn new(tx: tokio::sync::mpsc::UnboundedSender<Event>) -> ProgressSink {
        ProgressSink { tx: Some(tx) }
    }

    /// A sink that drops everything.
    pub fn discard() -> ProgressSink {
        ProgressSink { tx: None }
    }

    /// Sends one event.
    pub fn send(&self, event: Event) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(event);
        }
    }

    /// `Started` now.
    pub fn started(&self, step: &str, name: &str) {
        self.send(Event::Started { step: step.into(), name: name.into(), at: SystemTime::now() });
    }

    /// `Done` now, for a step that started at `start`.
    pub fn done(&self, step: &str, start: std::time::Instant, stats: StepStats) {
        self.send(Event::Done {
            step: step.into(),
            at: SystemTime::now(),
            seconds: start.elapsed().as_secs_f64(),
            stats,
        });
    }

    /// `Failed` now.
    pub fn failed(&self, step: &str, message: String) {
        self.send(Event::Failed { step: step.into(), at: SystemTime::now(), message });
    }
}
